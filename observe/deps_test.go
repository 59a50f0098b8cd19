package observe_test

import (
	"testing"

	"github.com/ceskit/ceskit/internal/depcheck"
)

// TestDependencies fails when observe imports a sibling capability package: imports flow from
// the capabilities to observe, never back (see STYLE.md, "Layout and independence").
func TestDependencies(t *testing.T) {
	const m = "github.com/ceskit/ceskit/"
	depcheck.Deps(t, m+"observe", m+"slicer", m+"identity", m+"policy", m+"datapath", m+"azure")
}
