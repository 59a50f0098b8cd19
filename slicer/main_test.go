package slicer_test

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
	"k8s.io/client-go/rest"

	"github.com/ceskit/ceskit/internal/testenv"
	"github.com/ceskit/ceskit/slicer"
)

// The package's integration tests and benchmarks share one real kube-apiserver + etcd.
var (
	apiConfig *rest.Config
	noAPI     error
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	crds, err := slicer.CRDs()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cp, err := testenv.Start(testenv.Options{CRDs: crds})
	switch {
	case errors.Is(err, testenv.ErrNoBinaries) && os.Getenv("CI") == "":
		noAPI = err
	case err != nil:
		fmt.Fprintln(os.Stderr, "integration tests need a control plane:", err)
		return 1
	default:
		apiConfig = cp.Config
	}
	code := m.Run()
	if cp != nil {
		if err := cp.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop control plane:", err)
		}
	}
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreAnyFunction("k8s.io/klog/v2.(*flushDaemon).run.func1")); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			return 1
		}
	}
	return code
}

// api returns the shared control plane's config, or skips the test when there is none.
func api(tb testing.TB) *rest.Config {
	tb.Helper()
	if apiConfig == nil {
		tb.Skipf("skipping integration test: %v", noAPI)
	}
	return rest.CopyConfig(apiConfig)
}
