package slicer_test

import (
	"testing"

	"github.com/ceskit/ceskit/internal/depcheck"
)

// TestDependencies keeps imports flowing one way: slicer may use identity and observe, never
// policy, datapath or azure; and its library code does not pull in controller-runtime (only its
// tests may).
func TestDependencies(t *testing.T) {
	const m = "github.com/ceskit/ceskit/"
	depcheck.Deps(t, m+"slicer", m+"policy", m+"datapath", m+"azure", m+"examples", "sigs.k8s.io/controller-runtime")
}
