package policy_test

import (
	"testing"

	"github.com/ceskit/ceskit/internal/depcheck"
)

// TestDependencies keeps policy pure: it may use identity (and observe's interfaces), never
// slicer, datapath or azure, nor kernel access (cilium/ebpf); and its own code imports no API
// client (client-go comes in only through identity's allocator, which policy does not use).
func TestDependencies(t *testing.T) {
	const m = "github.com/ceskit/ceskit/"
	depcheck.Deps(t, m+"policy", m+"slicer", m+"datapath", m+"azure", m+"examples",
		"github.com/cilium/ebpf", "sigs.k8s.io/controller-runtime")
	depcheck.Imports(t, []string{m + "policy", m + "policy/ciliumv2"}, "k8s.io/client-go")
}
