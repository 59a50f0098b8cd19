package identity_test

import (
	"testing"

	"github.com/ceskit/ceskit/internal/depcheck"
)

// TestDependencies keeps identity at the bottom of the import graph: it needs nothing of ours
// but its own CRD types and internal plumbing, and its library code does not pull in
// controller-runtime (only its tests may, through envtest). See STYLE.md, "Layout and
// independence".
func TestDependencies(t *testing.T) {
	const m = "github.com/ceskit/ceskit/"
	depcheck.Deps(t, m+"identity", m+"slicer", m+"policy", m+"datapath", m+"azure", m+"observe", m+"examples",
		"sigs.k8s.io/controller-runtime")
}
