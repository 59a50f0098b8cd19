// Package testenv starts a real kube-apiserver and etcd for ceskit's integration tests, benchmarks
// and lab, through controller-runtime's envtest. The binaries are built from source by
// hack/build-controlplane.sh (make controlplane) into the repository's bin/ folder; no download
// happens here.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/ceskit/ceskit/internal/crdinstall"
)

// BinDirEnv names the environment variable that overrides where the control-plane binaries are.
const BinDirEnv = "CESKIT_CONTROLPLANE_BIN"

// ErrNoBinaries is returned when kube-apiserver or etcd is not in the binary directory.
var ErrNoBinaries = errors.New("control-plane binaries not found (run `make controlplane`)")

// BinDir returns the folder holding kube-apiserver and etcd: $CESKIT_CONTROLPLANE_BIN, else the
// repository's bin/ folder.
func BinDir() string {
	if d := os.Getenv(BinDirEnv); d != "" {
		return d
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "bin"
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "bin")
}

// ControlPlane is a running kube-apiserver + etcd pair.
type ControlPlane struct {
	env *envtest.Environment
	// Config reaches the API server as a cluster administrator.
	Config *rest.Config
	// certDir holds the API server's serving and client-CA certificates. It is ours, not
	// envtest's, so that it survives RestartAPIServer (envtest deletes a directory it created
	// when the API server stops) and existing rest.Configs keep working; Stop removes it.
	certDir string
}

// Options tune the control plane.
type Options struct {
	// CRDs are installed before Start returns.
	CRDs []*apiextensionsv1.CustomResourceDefinition
	// APIServerArgs are extra kube-apiserver flags, name → value.
	APIServerArgs map[string]string
	// Output attaches the processes' output to this process's stdout and stderr.
	Output bool
}

// Start starts a control plane from the binaries in [BinDir]. The caller must Stop it.
func Start(opts Options) (*ControlPlane, error) {
	dir := BinDir()
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return nil, fmt.Errorf("%w: %s", ErrNoBinaries, filepath.Join(dir, b))
		}
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    dir,
		CRDs:                     opts.CRDs,
		ErrorIfCRDPathMissing:    false,
		ControlPlaneStartTimeout: 90 * time.Second,
		ControlPlaneStopTimeout:  30 * time.Second,
		AttachControlPlaneOutput: opts.Output,
	}
	certDir, err := os.MkdirTemp("", "ceskit-apiserver-")
	if err != nil {
		return nil, fmt.Errorf("start control plane: %w", err)
	}
	api := env.ControlPlane.GetAPIServer()
	api.CertDir = certDir
	// Benchmarks and the lab create tens of thousands of objects quickly.
	api.Configure().Set("max-requests-inflight", "2000").Set("max-mutating-requests-inflight", "1000")
	for k, v := range opts.APIServerArgs {
		api.Configure().Set(k, v)
	}
	cfg, err := env.Start()
	if err != nil {
		_ = env.Stop()
		_ = os.RemoveAll(certDir)
		return nil, fmt.Errorf("start control plane: %w", err)
	}
	cfg.QPS, cfg.Burst = -1, 0
	return &ControlPlane{env: env, Config: cfg, certDir: certDir}, nil
}

// Stop stops the API server and etcd and removes their data.
func (c *ControlPlane) Stop() error {
	err := c.env.Stop()
	if c.certDir != "" {
		_ = os.RemoveAll(c.certDir)
	}
	return err
}

// RestartAPIServer stops the kube-apiserver process (SIGTERM, as a rolling update of the control
// plane does) and starts it again on the same etcd, port, serving certificate and client CA, so
// the data and every existing rest.Config survive. It returns once the new process is healthy.
// Clients see their connections drop and requests fail while it is down. It must not run
// concurrently with Stop or another RestartAPIServer.
func (c *ControlPlane) RestartAPIServer() error {
	api := c.env.ControlPlane.GetAPIServer()
	if err := api.Stop(); err != nil {
		return fmt.Errorf("restart api server: stop: %w", err)
	}
	if err := api.Start(); err != nil {
		return fmt.Errorf("restart api server: start: %w", err)
	}
	return nil
}

// New starts a control plane for a test or benchmark and stops it when the test ends. When the
// binaries are missing it skips with the reason, or fails when the CI environment variable is set.
func New(tb testing.TB, opts Options) *ControlPlane {
	tb.Helper()
	cp, err := Start(opts)
	if errors.Is(err, ErrNoBinaries) {
		if os.Getenv("CI") != "" {
			tb.Fatalf("integration test needs a control plane under CI: %v", err)
		}
		tb.Skipf("skipping integration test: %v", err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			tb.Errorf("stop control plane: %v", err)
		}
	})
	return cp
}

// Kubeconfig returns a kubeconfig file's content that reaches the API server of cfg with the
// same credentials, for kubectl.
func Kubeconfig(cfg *rest.Config) ([]byte, error) {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["ceskit"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["ceskit"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["ceskit"] = &clientcmdapi.Context{Cluster: "ceskit", AuthInfo: "ceskit"}
	kc.CurrentContext = "ceskit"
	b, err := clientcmd.Write(*kc)
	if err != nil {
		return nil, fmt.Errorf("write kubeconfig: %w", err)
	}
	return b, nil
}

// RunShared is the body of a TestMain whose package's tests share one control plane: it starts
// it with opts and hands its config to use (or, when the binaries are missing outside CI, a nil
// config and the reason, so that tests can skip), runs the tests, stops the control plane and,
// when the tests passed, fails on leaked goroutines. It returns the exit code for os.Exit.
func RunShared(m *testing.M, opts Options, use func(cfg *rest.Config, missing error)) int {
	cp, err := Start(opts)
	switch {
	case errors.Is(err, ErrNoBinaries) && os.Getenv("CI") == "":
		use(nil, err)
	case err != nil:
		fmt.Fprintln(os.Stderr, "integration tests need a control plane:", err)
		return 1
	default:
		use(cp.Config, nil)
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

// ReadCRDs reads the CRD manifests matching pattern (a filepath.Glob pattern), for tests of a
// package that must not import the package owning them.
func ReadCRDs(pattern string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("find CRD manifests %s: %v (found %d)", pattern, err, len(files))
	}
	docs := make([][]byte, 0, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		docs = append(docs, b)
	}
	return crdinstall.Decode(docs...)
}
