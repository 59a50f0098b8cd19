package identity

import (
	"context"
	"embed"
	"fmt"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/client-go/rest"

	"github.com/ceskit/ceskit/internal/crdinstall"
)

//go:embed crds/*.yaml
var crdFS embed.FS

// CRDs returns the CustomResourceDefinition of the CiliumIdentity type (cilium.io/v2, short name
// ciliumid), generated from the Go type by controller-gen. Each call returns fresh copies.
func CRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	b, err := crdFS.ReadFile("crds/cilium.io_ciliumidentities.yaml")
	if err != nil {
		return nil, fmt.Errorf("read embedded identity crd: %w", err)
	}
	return crdinstall.Decode(b)
}

// InstallCRDs creates or updates the CiliumIdentity CRD and waits until the API server serves it.
// On a cluster that runs Cilium it already exists; do not install ours over Cilium's there.
func InstallCRDs(ctx context.Context, cfg *rest.Config) error {
	crds, err := CRDs()
	if err != nil {
		return err
	}
	return crdinstall.Install(ctx, cfg, crds)
}
