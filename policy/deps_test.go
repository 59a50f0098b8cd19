package policy_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps policy pure: it may use identity (and observe's interfaces), never
// slicer, datapath or azure, nor kernel access (cilium/ebpf); and its own code imports no API
// client (client-go comes in only through identity's allocator, which policy does not use).
func TestDependencies(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("dependency check needs the go command under CI: %v", err)
		}
		t.Skipf("skipping dependency check: %v", err)
	}
	out, err := exec.CommandContext(t.Context(), gobin, "list", "-deps", "github.com/ceskit/ceskit/policy").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{
			"github.com/ceskit/ceskit/slicer", "github.com/ceskit/ceskit/datapath", "github.com/ceskit/ceskit/azure",
			"github.com/ceskit/ceskit/examples", "github.com/cilium/ebpf", "sigs.k8s.io/controller-runtime",
		} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("policy depends on %s", dep)
			}
		}
	}
	out, err = exec.CommandContext(t.Context(), gobin, "list", "-f", "{{join .Imports \"\\n\"}}", "github.com/ceskit/ceskit/policy", "github.com/ceskit/ceskit/policy/ciliumv2").Output()
	if err != nil {
		t.Fatalf("go list imports: %v", err)
	}
	for _, imp := range strings.Fields(string(out)) {
		if strings.HasPrefix(imp, "k8s.io/client-go") {
			t.Errorf("policy imports %s directly", imp)
		}
	}
}
