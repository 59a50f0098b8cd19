package identity_test

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps identity at the bottom of the import graph: it needs nothing of ours
// but its own CRD types and internal plumbing, and its library code does not pull in
// controller-runtime (only its tests may, through envtest). See STYLE.md, "Layout and
// independence".
func TestDependencies(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("dependency check needs the go command under CI: %v", err)
		}
		t.Skipf("skipping dependency check: %v", err)
	}
	const module = "github.com/ceskit/ceskit/"
	out, err := exec.CommandContext(t.Context(), gobin, "list", "-deps", module+"identity").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list -deps: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list -deps: %v", err)
	}
	allowed := func(pkg string) bool {
		rel := strings.TrimPrefix(pkg, module)
		return rel == "identity" || rel == "identity/ciliumv2" || strings.HasPrefix(rel, "internal/")
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, module) && !allowed(pkg) {
			t.Errorf("identity depends on %s; it may use only identity/ciliumv2 and internal/... of this module", pkg)
		}
		if pkg == "sigs.k8s.io/controller-runtime" || strings.HasPrefix(pkg, "sigs.k8s.io/controller-runtime/") {
			t.Errorf("identity's library code pulls in %s (only its tests may)", pkg)
		}
	}
}
