package identity_test

import (
	"fmt"
	"os"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/client-go/rest"

	"github.com/ceskit/ceskit/identity"
	"github.com/ceskit/ceskit/internal/testenv"
)

// The package's integration tests and benchmarks share one real kube-apiserver + etcd, with the
// CiliumIdentity CRD and, so that the collector sees real references, the CiliumEndpoint and
// CiliumEndpointSlice CRDs (read from the slicer's manifests: identity must not import slicer).
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

func allCRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	crds, err := identity.CRDs()
	if err != nil {
		return nil, err
	}
	more, err := testenv.ReadCRDs("../slicer/crds/*.yaml")
	return append(crds, more...), err
}

// api returns the shared control plane's config, or skips the test when there is none.
func api(tb testing.TB) *rest.Config {
	tb.Helper()
	if apiConfig == nil {
		tb.Skipf("skipping integration test: %v", noAPI)
	}
	return rest.CopyConfig(apiConfig)
}
