// Package bpftest holds what the privileged tests of datapath, datapath/monitor and the agent
// share: loading a Datapath (closed when the test ends), mounting a bpffs for pinning, running
// bounded commands and code inside network namespaces the tests create, and the
// rule that such a test skips with its reason where the machine cannot run it, and fails instead
// under CI (CI=true), where it must run.
package bpftest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ceskit/ceskit/datapath"
)

// Unsupported skips the test with reason, or fails it when the CI environment variable is set.
func Unsupported(tb testing.TB, reason string) {
	tb.Helper()
	if os.Getenv("CI") != "" {
		tb.Fatalf("privileged BPF test cannot run in CI: %s", reason)
	}
	tb.Skipf("skipping privileged BPF test: %s", reason)
}

// RequireRoot checks that the process is root and that the named commands (e.g. iproute2's
// "ip") are on PATH; otherwise the test is Unsupported.
func RequireRoot(tb testing.TB, commands ...string) {
	tb.Helper()
	if os.Geteuid() != 0 {
		Unsupported(tb, "not running as root (needs CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN)")
	}
	for _, c := range commands {
		if _, err := exec.LookPath(c); err != nil {
			Unsupported(tb, c+" not found: "+err.Error())
		}
	}
}

// Load loads a datapath from spec and closes it when the test ends. Not root, or a kernel that
// refuses (datapath.ErrNotSupported), makes the test Unsupported.
func Load(tb testing.TB, spec datapath.Spec) *datapath.Datapath {
	tb.Helper()
	RequireRoot(tb)
	d, err := datapath.Load(spec)
	if errors.Is(err, datapath.ErrNotSupported) {
		Unsupported(tb, err.Error())
	}
	if err != nil {
		tb.Fatalf("load datapath: %v", err)
	}
	tb.Cleanup(func() {
		if err := d.Close(); err != nil {
			tb.Errorf("close datapath: %v", err)
		}
	})
	return d
}

// MountBPFFS mounts a bpffs of the test's own (a temporary directory, unmounted when the test
// ends) and returns its path, for Spec.PinPath below it.
func MountBPFFS(tb testing.TB) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "bpffs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	if err := unix.Mount("bpf", dir, "bpf", 0, ""); err != nil {
		Unsupported(tb, "mount bpffs: "+err.Error())
	}
	tb.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			tb.Errorf("unmount bpffs: %v", err)
		}
	})
	return dir
}

// Run runs a command (ip, sysctl, …), bounded to 10 s, and fails the test when it fails.
func Run(tb testing.TB, name string, args ...string) {
	tb.Helper()
	if err := RunErr(name, args...); err != nil {
		tb.Fatal(err)
	}
}

// RunErr runs a command, bounded to 10 s, and returns an error with its output when it fails.
func RunErr(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// InNetns runs fn on an OS thread that has joined the named network namespace (under
// /var/run/netns). Sockets fn opens belong to that namespace and may be used from any goroutine
// afterwards. The thread never returns to the Go scheduler: it exits with its goroutine.
func InNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: a locked goroutine that exits takes its thread with it.
		f, err := os.Open(filepath.Join("/var/run/netns", ns))
		if err != nil {
			errc <- err
			return
		}
		err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
		f.Close()
		if err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
