package monitor_test

import (
	"errors"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/ceskit/ceskit/datapath"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// requireBPF loads a datapath from spec and closes it when the test ends. Where the process
// cannot use BPF (not root, or the kernel lacks a feature: datapath.ErrNotSupported) it skips
// the test with the reason, and fails it instead when the CI environment variable is set.
func requireBPF(tb testing.TB, spec datapath.Spec) *datapath.Datapath {
	tb.Helper()
	unsupported := func(reason string) {
		tb.Helper()
		if os.Getenv("CI") != "" {
			tb.Fatalf("privileged BPF test cannot run in CI: %s", reason)
		}
		tb.Skipf("skipping privileged BPF test: %s", reason)
	}
	if os.Geteuid() != 0 {
		unsupported("not running as root")
	}
	d, err := datapath.Load(spec)
	if errors.Is(err, datapath.ErrNotSupported) {
		unsupported(err.Error())
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
