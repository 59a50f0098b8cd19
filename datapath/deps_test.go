package datapath_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies: datapath takes its own entry type and must not import policy (an adapter in
// tests or examples converts), nor slicer, azure or any API client.
func TestDependencies(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("dependency check needs the go command under CI: %v", err)
		}
		t.Skipf("skipping dependency check: %v", err)
	}
	out, err := exec.CommandContext(t.Context(), gobin, "list", "-deps", "github.com/ceskit/ceskit/datapath").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{
			"github.com/ceskit/ceskit/policy", "github.com/ceskit/ceskit/slicer", "github.com/ceskit/ceskit/azure",
			"github.com/ceskit/ceskit/identity", "github.com/ceskit/ceskit/examples", "k8s.io/client-go",
		} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("datapath depends on %s", dep)
			}
		}
	}
}
