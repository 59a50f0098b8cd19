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

func counts(tr *tracker) map[string]int64 {
	got := map[string]int64{}
	for _, stage := range []string{stageSlice, stageNode, stageSliceDelete, stageNodeDelete} {
		for _, phase := range []string{phaseSeed, phaseChurn} {
			if n := tr.stats(stage, phase).N; n > 0 {
				got[stage+"/"+phase] = n
			}
		}
	}
	return got
}

// TestTrackerSlices checks that creates, identity changes and deletes are matched with the first
// slice event that shows them, and nothing else.
func TestTrackerSlices(t *testing.T) {
	tr := newTracker(0, true)
	later := time.Now().Add(time.Hour)

	tr.expect("web/a", 1, phaseSeed)
	tr.expect("web/b", 1, phaseSeed)
	tr.observeSlice(slice("ces-1", "web", map[string]int64{"a": 1}), false, later)
	tr.observeSlice(slice("ces-1", "web", map[string]int64{"a": 1, "b": 2}), false, later) // b with another identity: no match
	if got := tr.stats(stageSlice, phaseSeed).N; got != 1 {
		t.Fatalf("seed samples = %d after one matching event, want 1", got)
	}
	tr.observeSlice(slice("ces-1", "web", map[string]int64{"a": 1, "b": 1}), false, later)

	tr.expect("web/a", 7, phaseChurn) // identity change
	tr.observeSlice(slice("ces-1", "web", map[string]int64{"a": 1, "b": 1}), false, later)
	tr.observeSlice(slice("ces-2", "web", map[string]int64{"a": 7}), false, later) // listed in two slices
	tr.expectGone("web/a", phaseChurn)
	tr.observeSlice(slice("ces-2", "web", map[string]int64{}), false, later) // still in ces-1
	if s, _ := tr.pending(); s != 1 {
		t.Fatalf("pending = %d while web/a is still listed in ces-1, want 1", s)
	}
	tr.observeSlice(slice("ces-1", "web", nil), true, later) // gone from every slice

	tr.expectGone("web/never-listed", phaseChurn) // nothing to propagate
	if s, n := tr.pending(); s != 0 || n != 0 {
		t.Errorf("pending = %d, %d, want 0, 0", s, n)
	}
	want := map[string]int64{"slice/seed": 2, "slice/churn": 1, "slice-delete/churn": 1}
	if diff := cmp.Diff(want, counts(tr)); diff != "" {
		t.Errorf("samples (-want +got):\n%s", diff)
	}
	if len(tr.keys) != 0 { // ces-1 went with both
		t.Errorf("tracker keeps %d endpoints, want 0", len(tr.keys))
	}
}

// TestTrackerNodes checks that every node watcher records each write once, that a delete waits
// only for the watchers that listed the endpoint, and that a superseded write is dropped.
func TestTrackerNodes(t *testing.T) {
	tr := newTracker(2, false) // two watchers, no slice observer
	now := time.Now()
	tr.expect("web/a", 1, phaseSeed)
	tr.observe(1, "web/a", 1, false, now)
	tr.observe(1, "web/a", 1, false, now) // again: no second sample
	if _, n := tr.pending(); n != 1 {
		t.Fatalf("pending nodes = %d with watcher 2 still waiting, want 1", n)
	}
	tr.observe(2, "web/a", 1, false, now)

	tr.expect("web/b", 5, phaseChurn)
	tr.expect("web/b", 6, phaseChurn) // supersedes 5
	tr.observe(1, "web/b", 5, false, now)
	tr.observe(1, "web/b", 6, false, now)
	tr.observe(2, "web/b", 6, false, now)

	// A relabel and its reverse in one slice batch: the watchers show 6, see nothing new, and
	// must not be waited for.
	tr.expect("web/b", 7, phaseChurn)
	tr.expect("web/b", 6, phaseChurn)

	tr.expect("web/c", 9, phaseChurn)
	tr.observe(1, "web/c", 9, false, now) // watcher 2 never sees c
	tr.expectGone("web/c", phaseChurn)    // only watcher 1 can see it go
	tr.observe(1, "web/c", 0, true, now)

	if s, n := tr.pending(); s != 0 || n != 0 {
		t.Errorf("pending = %d, %d, want 0, 0", s, n)
	}
	want := map[string]int64{"node/seed": 2, "node/churn": 3, "node-delete/churn": 1}
	if diff := cmp.Diff(want, counts(tr)); diff != "" {
		t.Errorf("samples (-want +got):\n%s", diff)
	}
	iv := tr.cut()
	if iv[stageNode].N != 5 || iv[stageNodeDelete].N != 1 {
		t.Errorf("interval = %+v, want 5 node and 1 delete samples", iv)
	}
	if iv := tr.cut(); len(iv) != 0 {
		t.Errorf("second cut = %+v, want empty", iv)
	}
}

func TestReservoirLatency(t *testing.T) {
	var r reservoir
	for i := 1; i <= 100; i++ {
		r.add(time.Duration(i)*time.Millisecond+40*time.Microsecond, nil)
	}
	got := r.latency()
	want := Latency{N: 100, P50Ms: 51, P99Ms: 100, MaxMs: 100}
	if got != want {
		t.Errorf("latency = %+v, want %+v", got, want)
	}
	if s := got.String(); s != "p50=51.0ms p99=100.0ms max=100.0ms (n=100)" {
		t.Errorf("String() = %q", s)
	}
	var empty *reservoir
	if got := empty.latency(); got != (Latency{}) || got.String() != "-" {
		t.Errorf("empty latency = %+v %q", got, got.String())
	}
}
