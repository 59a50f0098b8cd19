package policymap_test

import (
	"testing"

	"github.com/ceskit/ceskit/internal/depcheck"
)

// TestDependencies: the adapter joins policy, datapath and observe, and nothing of slicer, azure
// or the examples. (It reaches client-go through policy, which takes identity's types.)
func TestDependencies(t *testing.T) {
	const m = "github.com/ceskit/ceskit/"
	depcheck.Deps(t, m+"datapath/policymap", m+"slicer", m+"azure", m+"examples")
}
