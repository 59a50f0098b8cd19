package main

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ceskit/ceskit/slicer/ciliumv2alpha1"
)

func slice(name, ns string, eps map[string]int64) *ciliumv2alpha1.CiliumEndpointSlice {
	ces := &ciliumv2alpha1.CiliumEndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: name}, Namespace: ns}
	for ep, id := range eps {
		ces.Endpoints = append(ces.Endpoints, ciliumv2alpha1.CoreCiliumEndpoint{Name: ep, IdentityID: id})
	}
	return ces
}

// TestTracker checks that creates, identity changes and deletes are matched with the first
// slice event that shows them, and nothing else.
func TestTracker(t *testing.T) {
	tr := newTracker()
	now := time.Now()
	later := func(d time.Duration) time.Time { return now.Add(d) }

	tr.expect("web/a", 1, "seed")
	tr.expect("web/b", 1, "seed")
	tr.observe(slice("ces-1", "web", map[string]int64{"a": 1}), false, later(time.Hour))
	tr.observe(slice("ces-1", "web", map[string]int64{"a": 1, "b": 2}), false, later(time.Hour)) // b with another identity: no match
	if got := tr.stats("seed").n; got != 1 {
		t.Fatalf("seed samples = %d after one matching event, want 1", got)
	}
	tr.observe(slice("ces-1", "web", map[string]int64{"a": 1, "b": 1}), false, later(time.Hour))

	tr.expect("web/a", 7, "churn") // identity change
	tr.observe(slice("ces-1", "web", map[string]int64{"a": 1, "b": 1}), false, later(time.Hour))
	tr.observe(slice("ces-2", "web", map[string]int64{"a": 7}), false, later(time.Hour)) // listed in two slices
	tr.expectGone("web/a", "churn")
	tr.observe(slice("ces-2", "web", map[string]int64{}), false, later(time.Hour)) // still in ces-1
	if got := tr.pendingCount(); got != 1 {
		t.Fatalf("pending = %d while web/a is still listed in ces-1, want 1", got)
	}
	tr.observe(slice("ces-1", "web", nil), true, later(time.Hour)) // gone from every slice

	tr.expectGone("web/never-listed", "churn") // nothing to propagate
	if got := tr.pendingCount(); got != 0 {
		t.Errorf("pending = %d, want 0", got)
	}
	got := map[string]int64{}
	for _, phase := range []string{"all", "seed", "churn"} {
		got[phase] = tr.stats(phase).n
	}
	if diff := cmp.Diff(map[string]int64{"all": 4, "seed": 2, "churn": 2}, got); diff != "" {
		t.Errorf("samples by phase (-want +got):\n%s", diff)
	}
}

func TestReservoirLatency(t *testing.T) {
	var r reservoir
	for i := 1; i <= 100; i++ {
		r.add(time.Duration(i)*time.Millisecond, nil)
	}
	got := r.latency()
	want := latency{n: 100, p50: 51 * time.Millisecond, p99: 100 * time.Millisecond, max: 100 * time.Millisecond}
	if got != want {
		t.Errorf("latency = %+v, want %+v", got, want)
	}
	if s := got.String(); s != "p50=51.0ms p99=100.0ms max=100.0ms (n=100)" {
		t.Errorf("String() = %q", s)
	}
}
