// Package depcheck keeps ceskit's imports flowing one way: each package's deps_test.go states
// what the package must not depend on, and Deps fails the test when `go list -deps` says it does.
package depcheck

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Deps fails t for every package that pkg depends on (transitively) and that is, or lies under,
// one of banned. Without the go command it skips, or fails when the CI environment variable is
// set.
func Deps(t *testing.T, pkg string, banned ...string) {
	t.Helper()
	check(t, []string{"list", "-deps", pkg}, pkg+" depends on", banned)
}

// Imports is Deps for the direct imports of pkgs only.
func Imports(t *testing.T, pkgs []string, banned ...string) {
	t.Helper()
	args := append([]string{"list", "-f", `{{join .Imports "\n"}}`}, pkgs...)
	check(t, args, strings.Join(pkgs, ", ")+" imports", banned)
}

func check(t *testing.T, args []string, what string, banned []string) {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("dependency check needs the go command under CI: %v", err)
		}
		t.Skipf("skipping dependency check: %v", err)
	}
	out, err := exec.CommandContext(t.Context(), gobin, args...).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, b := range banned {
			if dep == b || strings.HasPrefix(dep, b+"/") {
				t.Errorf("%s %s", what, dep)
			}
		}
	}
}
