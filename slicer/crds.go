package slicer

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

// CRDs returns the CustomResourceDefinitions of the CiliumEndpoint (cilium.io/v2, short name cep)
// and CiliumEndpointSlice (cilium.io/v2alpha1, short name ces) types, generated from the Go types
// by controller-gen. Each call returns fresh copies.
func CRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	var docs [][]byte
	for _, name := range []string{"crds/cilium.io_ciliumendpoints.yaml", "crds/cilium.io_ciliumendpointslices.yaml"} {
		b, err := crdFS.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read embedded %s: %w", name, err)
		}
		docs = append(docs, b)
	}
	return crdinstall.Decode(docs...)
}

// InstallCRDs creates or updates the slicer's CRDs and waits until the API server serves them.
// On a cluster that runs Cilium they already exist; do not install ours over Cilium's there.
func InstallCRDs(ctx context.Context, cfg *rest.Config) error {
	crds, err := CRDs()
	if err != nil {
		return err
	}
	return crdinstall.Install(ctx, cfg, crds)
}
