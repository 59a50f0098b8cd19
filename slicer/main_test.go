package slicer_test

import (
	"fmt"
	"os"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
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
	crds, err := allCRDs()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(testenv.RunShared(m, testenv.Options{CRDs: crds}, func(cfg *rest.Config, missing error) {
		apiConfig, noAPI = cfg, missing
	}))
}

// api returns the shared control plane's config, or skips the test when there is none.
func api(tb testing.TB) *rest.Config {
	tb.Helper()
	if apiConfig == nil {
		tb.Skipf("skipping integration test: %v", noAPI)
	}
	return rest.CopyConfig(apiConfig)
}

func allCRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) { return slicer.CRDs() }
