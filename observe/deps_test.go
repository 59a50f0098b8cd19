package observe_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies fails when observe imports a sibling capability package: imports flow from
// the capabilities to observe, never back (see STYLE.md, "Layout and independence").
func TestDependencies(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("dependency check needs the go command under CI: %v", err)
		}
		t.Skipf("skipping dependency check: %v", err)
	}
	out, err := exec.CommandContext(t.Context(), gobin, "list", "-deps", "github.com/ceskit/ceskit/observe").Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list -deps: %v\n%s", err, stderr)
	}
	forbidden := []string{"slicer", "identity", "policy", "datapath", "azure"}
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			prefix := "github.com/ceskit/ceskit/" + f
			if pkg == prefix || strings.HasPrefix(pkg, prefix+"/") {
				t.Errorf("observe depends on %s; it must not import %s", pkg, prefix)
			}
		}
	}
}
