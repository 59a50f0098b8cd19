package slicer

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ceskit/ceskit/slicer/ciliumv2alpha1"
)

func testModel(max int, byIdentity bool) (*model, map[string]int) {
	dirty := map[string]int{}
	m := newModel(max, byIdentity, 1, func(s *slice) { dirty[s.name]++ })
	return m, dirty
}

func ep(name string, id int64) ciliumv2alpha1.CoreCiliumEndpoint {
	return ciliumv2alpha1.CoreCiliumEndpoint{Name: name, IdentityID: id}
}

// sizes returns the member counts of the slices of namespace ns, keyed by slice name.
func sizes(m *model) map[string]int {
	out := map[string]int{}
	for name, s := range m.slices {
		out[name] = len(s.members)
	}
	return out
}

// assertPlacement checks the model invariants: every endpoint is a member of its slice (and of
// the slice it leaves, if any), no slice exceeds max, one namespace per slice.
func assertPlacement(t *testing.T, m *model) {
	t.Helper()
	for key, e := range m.endpoints {
		if e.slice == nil || e.slice.members[key] != e {
			t.Errorf("endpoint %s not a member of its slice", key)
		}
		if e.leaving != nil && e.leaving.members[key] != e {
			t.Errorf("endpoint %s not listed in the slice it leaves", key)
		}
	}
	for name, s := range m.slices {
		if len(s.members) > m.max {
			t.Errorf("slice %s holds %d > %d", name, len(s.members), m.max)
		}
		for key, e := range s.members {
			if e.ns != s.ns {
				t.Errorf("slice %s of namespace %s holds %s", name, s.ns, key)
			}
			if m.endpoints[key] != e || (e.slice != s && e.leaving != s) {
				t.Errorf("slice %s holds stale member %s", name, key)
			}
		}
	}
}

func TestPlacementFillsFullestFirst(t *testing.T) {
	m, _ := testModel(3, false)
	for i := range 7 {
		m.upsert(fmt.Sprintf("a/p%d", i), "a", ep(fmt.Sprintf("p%d", i), 1000))
	}
	assertPlacement(t, m)
	got := []int{}
	for _, n := range sizes(m) {
		got = append(got, n)
	}
	if len(m.slices) != 3 {
		t.Fatalf("7 endpoints at 3 per slice: got %d slices %v, want 3", len(m.slices), got)
	}
	// Free one place in a full slice: the next endpoint goes to the fullest slice with room (2 of
	// 3), not to the one with a single endpoint.
	m.remove("a/p0")
	m.upsert("a/q", "a", ep("q", 1000))
	if s := m.endpoints["a/q"].slice; len(s.members) != 3 {
		t.Errorf("new endpoint went to a slice with %d members, want the fullest (3 after placing)", len(s.members))
	}
	assertPlacement(t, m)
}

func TestMoveStaysListedUntilWritten(t *testing.T) {
	m, _ := testModel(10, true)
	m.upsert("a/p", "a", ep("p", 1000))
	old := m.endpoints["a/p"].slice
	m.upsert("a/p", "a", ep("p", 2000))
	e := m.endpoints["a/p"]
	if e.slice == old || e.leaving != old {
		t.Fatalf("identity change: slice=%v leaving=%v, want a new slice and leaving the old", e.slice.name, e.leaving)
	}
	if old.members["a/p"] == nil {
		t.Fatal("moved endpoint dropped from its old slice before the new one was written")
	}
	assertPlacement(t, m)
	m.written(e.slice, []string{"a/p"})
	if e.leaving != nil || old.members["a/p"] != nil {
		t.Fatal("move not confirmed after the new slice was written")
	}
	// Moving back before the move is confirmed cancels it: the endpoint stays in the slice that
	// never stopped listing it, and the slice it was heading to drops it.
	home := e.slice
	m.upsert("a/p", "a", ep("p", 1000))
	via := e.slice
	if e.leaving != home || via == home {
		t.Fatalf("second move: slice=%s leaving=%v, want a new slice leaving %s", via.name, e.leaving, home.name)
	}
	m.upsert("a/p", "a", ep("p", 2000))
	if e.slice != home || e.leaving != nil || via.members["a/p"] != nil {
		t.Fatalf("moving back: slice=%s leaving=%v, want %s and no move", e.slice.name, e.leaving, home.name)
	}
	assertPlacement(t, m)
}

func TestAdoptConvergedWritesNothing(t *testing.T) {
	m, dirty := testModel(2, false)
	live := map[string]ciliumv2alpha1.CoreCiliumEndpoint{"a/x": ep("x", 7), "a/y": ep("y", 7), "a/z": ep("z", 8)}
	ns := map[string]string{"a/x": "a", "a/y": "a", "a/z": "a"}
	existing := []*ciliumv2alpha1.CiliumEndpointSlice{
		{Namespace: "a", Endpoints: []ciliumv2alpha1.CoreCiliumEndpoint{ep("y", 7), ep("x", 7)}},
		{Namespace: "a", Endpoints: []ciliumv2alpha1.CoreCiliumEndpoint{ep("z", 8)}},
	}
	existing[0].Name, existing[1].Name = "ces-one", "ces-two"
	m.adopt(existing, live, ns)
	if len(dirty) != 0 {
		t.Errorf("converged state marked dirty: %v", dirty)
	}
	// Stale, duplicate and foreign-namespace entries make their slices dirty.
	m2, dirty2 := testModel(2, false)
	existing2 := []*ciliumv2alpha1.CiliumEndpointSlice{
		{Namespace: "a", Endpoints: []ciliumv2alpha1.CoreCiliumEndpoint{ep("x", 7), ep("gone", 7)}},
		{Namespace: "a", Endpoints: []ciliumv2alpha1.CoreCiliumEndpoint{ep("x", 7), ep("z", 8)}},
	}
	existing2[0].Name, existing2[1].Name = "ces-one", "ces-two"
	m2.adopt(existing2, live, ns)
	if diff := cmp.Diff([]string{"ces-one", "ces-two"}, slices.Sorted(maps.Keys(dirty2))); diff != "" {
		t.Errorf("dirty slices (-want +got):\n%s", diff)
	}
	assertPlacement(t, m2)
}

func TestCompactionWithHysteresis(t *testing.T) {
	m, _ := testModel(10, false)
	for i := range 40 {
		m.upsert(fmt.Sprintf("a/p%02d", i), "a", ep(fmt.Sprintf("p%02d", i), 1))
	}
	for i := range 40 {
		if i%4 != 0 {
			m.remove(fmt.Sprintf("a/p%02d", i))
		}
	}
	// 10 endpoints in 4 slices: 25 % full, one slice would do.
	if n := m.compact(0.5, nil); n != 3 {
		t.Fatalf("compact drained %d slices, want 3", n)
	}
	assertPlacement(t, m)
	for _, s := range m.slices {
		if !s.draining {
			m.written(s, keys(s.members))
		}
	}
	for _, s := range m.slices {
		if s.draining && len(s.members) != 0 {
			t.Errorf("drained slice %s still holds %d", s.name, len(s.members))
		}
		if len(s.members) == 0 {
			m.forget(s)
		}
	}
	if len(m.slices) != 1 {
		t.Errorf("after compaction: %v, want one slice", sizes(m))
	}
	// 6 of 10 in one slice: above the threshold, nothing to do.
	if n := m.compact(0.5, nil); n != 0 {
		t.Errorf("compacted a packed namespace: %d", n)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestFairQueueNeverStarves(t *testing.T) {
	q := &fairQueue{classify: func(k string) bool { return k[0] == 'p' }, weight: 4, clock: realClock{}, metrics: NopMetrics{}}
	for i := range 20 {
		q.Push(fmt.Sprintf("p%d", i))
	}
	q.Push("s0")
	q.Push("s1")
	var order []string
	for q.Len() > 0 {
		order = append(order, q.Pop())
	}
	want := []string{"p0", "p1", "p2", "p3", "s0", "p4", "p5", "p6", "p7", "s1"}
	if diff := cmp.Diff(want, order[:10]); diff != "" {
		t.Errorf("service order (-want +got):\n%s", diff)
	}
}

func TestWriteLimiterFollowsNodeCount(t *testing.T) {
	w := newWriteLimiter(realClock{}, DefaultRateLimits)
	for _, tc := range []struct {
		nodes int
		want  RateLimitStep
	}{{0, DefaultRateLimits[0]}, {99, DefaultRateLimits[0]}, {100, DefaultRateLimits[1]}, {5000, DefaultRateLimits[1]}, {3, DefaultRateLimits[0]}} {
		w.setNodes(tc.nodes)
		if got := w.current(); got != tc.want {
			t.Errorf("nodes=%d: step %+v, want %+v", tc.nodes, got, tc.want)
		}
	}
}

func TestSliceNames(t *testing.T) {
	m, _ := testModel(1, false)
	for i := range 50 {
		m.upsert(fmt.Sprintf("a/p%d", i), "a", ep("p", 1))
	}
	for name := range m.slices {
		if len(name) != 19 || name[:4] != "ces-" || name[13] != '-' {
			t.Errorf("slice name %q not in Cilium's format", name)
		}
		for _, r := range name[4:13] + name[14:] {
			if !containsRune(sliceNameAlphabet, r) {
				t.Errorf("slice name %q uses %q outside Cilium's alphabet", name, r)
			}
		}
	}
}

func containsRune(s string, r rune) bool {
	for _, c := range s {
		if c == r {
			return true
		}
	}
	return false
}

func TestInSyncComparesAsSets(t *testing.T) {
	m, _ := testModel(10, false)
	m.upsert("a/x", "a", ep("x", 1))
	m.upsert("a/y", "a", ep("y", 2))
	s := m.endpoints["a/x"].slice
	obs := func(eps ...ciliumv2alpha1.CoreCiliumEndpoint) *ciliumv2alpha1.CiliumEndpointSlice {
		return &ciliumv2alpha1.CiliumEndpointSlice{Namespace: "a", Endpoints: eps}
	}
	for _, tc := range []struct {
		name string
		obs  *ciliumv2alpha1.CiliumEndpointSlice
		want bool
	}{
		{"same, sorted", obs(ep("x", 1), ep("y", 2)), true},
		{"same, unsorted", obs(ep("y", 2), ep("x", 1)), true},
		{"duplicate, sorted", obs(ep("x", 1), ep("x", 1)), false},
		{"duplicate, unsorted", obs(ep("y", 2), ep("x", 1), ep("y", 2)), false},
		{"changed identity", obs(ep("x", 1), ep("y", 3)), false},
		{"missing", obs(ep("x", 1)), false},
		{"other namespace", &ciliumv2alpha1.CiliumEndpointSlice{Namespace: "b", Endpoints: []ciliumv2alpha1.CoreCiliumEndpoint{ep("x", 1), ep("y", 2)}}, false},
		{"absent", nil, false},
	} {
		s.observed = tc.obs
		got := m.inSync(s)
		if got != tc.want {
			t.Errorf("%s: inSync = %v, want %v", tc.name, got, tc.want)
		}
		// The allocation-free check agrees with comparing the built object.
		if tc.obs != nil && sameContent(m.desired(s), tc.obs) != got {
			t.Errorf("%s: inSync disagrees with sameContent", tc.name)
		}
	}
}
