package metrics_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ceskit/ceskit/observe/metrics"
)

func TestValidate(t *testing.T) {
	ok := metrics.Opts{Name: "ceskit_x_total", Help: "x", Labels: []string{"a", "b"}, Buckets: []float64{1, 2}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid opts: %v", err)
	}
	for _, tc := range []struct {
		name string
		o    metrics.Opts
		want string
	}{
		{"bad name", metrics.Opts{Name: "9x", Help: "x"}, `Name "9x"`},
		{"empty name", metrics.Opts{Help: "x"}, `Name ""`},
		{"no help", metrics.Opts{Name: "x"}, "Help of x"},
		{"bad label", metrics.Opts{Name: "x", Help: "x", Labels: []string{"ok", "a-b"}}, `Labels[1] of x: "a-b"`},
		{"reserved label", metrics.Opts{Name: "x", Help: "x", Labels: []string{"__a"}}, `Labels[0] of x: "__a"`},
		{"repeated label", metrics.Opts{Name: "x", Help: "x", Labels: []string{"a", "a"}}, `"a" is repeated`},
		{"buckets", metrics.Opts{Name: "x", Help: "x", Buckets: []float64{1, 1}}, "index 1"},
	} {
		err := tc.o.Validate()
		if !errors.Is(err, metrics.ErrInvalidOpts) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want ErrInvalidOpts naming %s", tc.name, err, tc.want)
		}
	}
}

func TestNop(t *testing.T) {
	r := metrics.Nop()
	c, err := r.Counter(metrics.Opts{Name: "a_total", Help: "a", Labels: []string{"l"}})
	if err != nil {
		t.Fatal(err)
	}
	c.Add(1, "v")
	c.Add(1) // wrong label count: discarded, no panic
	g, err := r.Gauge(metrics.Opts{Name: "g", Help: "g"})
	if err != nil {
		t.Fatal(err)
	}
	g.Set(1)
	g.Add(-1)
	h, err := r.Histogram(metrics.Opts{Name: "h", Help: "h"})
	if err != nil {
		t.Fatal(err)
	}
	h.Observe(0.5)
	if _, err := r.Gauge(metrics.Opts{Name: "bad name", Help: "g"}); err == nil {
		t.Fatal("Nop accepted an invalid name")
	}
}

// Nop validates what it is given, so instrumentation mistakes surface without a backend.
func ExampleNop() {
	_, err := metrics.Nop().Counter(metrics.Opts{Name: "requests-total", Help: "requests"})
	fmt.Println(err)
	// Output: invalid metric options: Name "requests-total" is not a valid metric name
}
