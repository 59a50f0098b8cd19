package identity_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/client-go/rest"

	"github.com/ceskit/ceskit/identity"
	"github.com/ceskit/ceskit/internal/crdinstall"
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
	os.Exit(run(m))
}

func run(m *testing.M) int {
	crds, err := allCRDs()
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

func allCRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	crds, err := identity.CRDs()
	if err != nil {
		return nil, err
	}
	files, err := filepath.Glob("../slicer/crds/*.yaml")
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("find the slicer's CRD manifests: %v", err)
	}
	var docs [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		docs = append(docs, b)
	}
	more, err := crdinstall.Decode(docs...)
	if err != nil {
		return nil, err
	}
	return append(crds, more...), nil
}

// api returns the shared control plane's config, or skips the test when there is none.
func api(tb testing.TB) *rest.Config {
	tb.Helper()
	if apiConfig == nil {
		tb.Skipf("skipping integration test: %v", noAPI)
	}
	return rest.CopyConfig(apiConfig)
}
