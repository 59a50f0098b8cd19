package azure_test

import (
	"testing"

	"github.com/ceskit/ceskit/internal/depcheck"
)

// TestDependencies fails when azure imports a sibling capability package, an example, or the
// Kubernetes client: azure talks to ARM only, and may use observe (see STYLE.md, "Layout and
// independence").
func TestDependencies(t *testing.T) {
	const m = "github.com/ceskit/ceskit/"
	depcheck.Deps(t, m+"azure", m+"slicer", m+"identity", m+"policy", m+"datapath", m+"examples", "k8s.io/client-go")
}
