package datapath_test

import (
	"testing"

	"github.com/ceskit/ceskit/internal/depcheck"
)

// TestDependencies: datapath takes its own entry type and must not import policy (an adapter in
// tests or examples converts), nor slicer, azure or any API client.
func TestDependencies(t *testing.T) {
	const m = "github.com/ceskit/ceskit/"
	depcheck.Deps(t, m+"datapath", m+"policy", m+"slicer", m+"azure", m+"identity", m+"examples", "k8s.io/client-go")
}
