package monitor_test

import (
	"testing"

	"github.com/ceskit/ceskit/internal/depcheck"
)

// TestDependencies: the monitor joins datapath and observe only; names come through its
// Resolver, not from the policy, identity or Kubernetes packages.
func TestDependencies(t *testing.T) {
	const m = "github.com/ceskit/ceskit/"
	depcheck.Deps(t, m+"datapath/monitor", m+"policy", m+"slicer", m+"azure", m+"identity", m+"examples", "k8s.io/client-go")
}
