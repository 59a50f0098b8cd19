// Package bpftest holds what the privileged tests of datapath, datapath/monitor and the agent
// share: loading a Datapath (closed when the test ends), mounting a bpffs for pinning, and the
// rule that such a test skips with its reason where the machine cannot run it, and fails instead
// under CI (CI=true), where it must run.
package bpftest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

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
