package slicer_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps imports flowing one way: slicer may use identity and observe, never
// policy, datapath or azure.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/ceskit/ceskit/slicer").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"policy", "datapath", "azure", "examples"} {
			if dep == "github.com/ceskit/ceskit/"+banned || strings.HasPrefix(dep, "github.com/ceskit/ceskit/"+banned+"/") {
				t.Errorf("slicer imports %s", dep)
			}
		}
		if strings.HasPrefix(dep, "sigs.k8s.io/controller-runtime") {
			t.Errorf("slicer's library code pulls in %s (only its tests may)", dep)
		}
	}
}
