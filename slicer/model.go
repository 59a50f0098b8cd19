package slicer

import (
	"cmp"
	"container/heap"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/ceskit/ceskit/slicer/ciliumv2alpha1"
)

// model is the controller's desired state: which endpoint goes in which slice. It is not safe for
// concurrent use; the controller guards it with its mutex. It knows nothing of the API: the
// controller feeds it endpoint changes and observed slices, and asks it what each slice should
// hold.
type model struct {
	max             int
	groupByIdentity bool
	rand            *rand.Rand
	// dirty is called for every slice whose desired content may have changed.
	dirty func(*slice)

	endpoints map[string]*endpoint // by "namespace/name"
	slices    map[string]*slice    // by name
	groups    map[string]*group    // by group key
}

type endpoint struct {
	key   string
	ns    string
	core  ciliumv2alpha1.CoreCiliumEndpoint
	group string
	// slice is where the endpoint belongs. nil: not placed (only transiently, or before adoption).
	slice *slice
	// leaving is the slice the endpoint is moving out of: it stays listed there until slice has
	// been written with it, so it is never missing from every slice.
	leaving *slice
}

type slice struct {
	name  string
	ns    string
	group *group
	// members includes endpoints leaving this slice: they are still listed in it.
	members  map[string]*endpoint
	draining bool // being compacted away: takes no new endpoints
	heapIdx  int  // index in group.open, -1 when not there

	// observed is the newest version of the object known to exist in the API (from the
	// controller's own writes or from watch events), nil when it does not exist.
	observed *ciliumv2alpha1.CiliumEndpointSlice
	// ownGeneration is the generation of the controller's last write, for echo suppression.
	ownGeneration int64
	ownUID        string
	// inflight is the content of a write under way: its watch event may arrive before the write
	// returns, and is an echo too.
	inflight *ciliumv2alpha1.CiliumEndpointSlice

	dirtySince time.Time     // first change not yet written
	lastWrite  time.Time     // end of the last write
	window     time.Duration // current coalescing window
	failures   int           // consecutive failed syncs
}

type group struct {
	key    string
	ns     string
	slices map[string]*slice
	open   sliceHeap // slices with room, fullest first
	size   int       // endpoints in the group, each counted once
}

func newModel(max int, groupByIdentity bool, seed uint64, dirty func(*slice)) *model {
	return &model{
		max: max, groupByIdentity: groupByIdentity, dirty: dirty,
		rand:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		endpoints: map[string]*endpoint{},
		slices:    map[string]*slice{},
		groups:    map[string]*group{},
	}
}

func (m *model) groupKey(ns string, id int64) string {
	if m.groupByIdentity {
		return ns + "/" + strconv.FormatInt(id, 10)
	}
	return ns
}

func (m *model) group(key, ns string) *group {
	g := m.groups[key]
	if g == nil {
		g = &group{key: key, ns: ns, slices: map[string]*slice{}}
		m.groups[key] = g
	}
	return g
}

// newSlice adds an empty slice to g, named in Cilium's format unless name is given.
func (m *model) newSlice(g *group, name string) *slice {
	if name == "" {
		name = newSliceName(m.rand, func(n string) bool { return m.slices[n] != nil })
	}
	s := &slice{name: name, ns: g.ns, group: g, members: map[string]*endpoint{}, heapIdx: -1}
	m.slices[name] = s
	g.slices[name] = s
	m.fix(s)
	return s
}

// fix restores s's place in its group's heap of slices with room.
func (m *model) fix(s *slice) {
	open := len(s.members) < m.max && !s.draining
	switch {
	case open && s.heapIdx < 0:
		heap.Push(&s.group.open, s)
	case open:
		heap.Fix(&s.group.open, s.heapIdx)
	case s.heapIdx >= 0:
		heap.Remove(&s.group.open, s.heapIdx)
	}
}

func (m *model) add(s *slice, e *endpoint) {
	s.members[e.key] = e
	m.fix(s)
	m.dirty(s)
}

func (m *model) drop(s *slice, e *endpoint) {
	if s == nil {
		return
	}
	delete(s.members, e.key)
	m.fix(s)
	m.dirty(s)
}

// place puts an unplaced endpoint into the fullest slice of its group with room, or a new one:
// O(log n) in the group's slices.
func (m *model) place(e *endpoint) {
	g := m.group(e.group, e.ns)
	var s *slice
	if len(g.open) > 0 {
		s = g.open[0]
	} else {
		s = m.newSlice(g, "")
	}
	e.slice = s
	g.size++
	m.add(s, e)
}

// upsert records an endpoint's current content and places, updates or moves it.
func (m *model) upsert(key, ns string, core ciliumv2alpha1.CoreCiliumEndpoint) {
	e := m.endpoints[key]
	gk := m.groupKey(ns, core.IdentityID)
	if e == nil {
		e = &endpoint{key: key, ns: ns, core: core, group: gk}
		m.endpoints[key] = e
		m.place(e)
		return
	}
	if equality.Semantic.DeepEqual(e.core, core) {
		return
	}
	e.core = core
	if e.slice == nil {
		e.group = gk
		m.place(e)
		return
	}
	if gk == e.group {
		m.dirty(e.slice)
		if e.leaving != nil {
			m.dirty(e.leaving)
		}
		return
	}
	m.move(e, gk)
}

// move takes e to a slice of group gk. It stays listed in the slice it leaves until its new slice
// is written ([model.written] confirms the move).
func (m *model) move(e *endpoint, gk string) {
	m.group(e.group, e.ns).size--
	e.group = gk
	switch {
	case e.leaving != nil && e.leaving.group.key == gk && !e.leaving.draining:
		// Moving back before the move was confirmed: cancel it.
		m.drop(e.slice, e)
		e.slice, e.leaving = e.leaving, nil
		m.dirty(e.slice)
		m.group(gk, e.ns).size++
		return
	case e.leaving != nil:
		m.drop(e.slice, e)
	default:
		e.leaving = e.slice
		m.dirty(e.leaving)
	}
	e.slice = nil
	m.place(e)
}

// remove forgets a deleted endpoint.
func (m *model) remove(key string) {
	e := m.endpoints[key]
	if e == nil {
		return
	}
	delete(m.endpoints, key)
	if e.slice != nil {
		m.group(e.group, e.ns).size--
	}
	m.drop(e.slice, e)
	m.drop(e.leaving, e)
	e.slice, e.leaving = nil, nil
}

// desired returns the content s should have: its members sorted by name. nil means s should not
// exist.
func (m *model) desired(s *slice) *ciliumv2alpha1.CiliumEndpointSlice {
	if len(s.members) == 0 {
		return nil
	}
	eps := make([]ciliumv2alpha1.CoreCiliumEndpoint, 0, len(s.members))
	for _, e := range s.members {
		eps = append(eps, *e.core.DeepCopy())
	}
	slices.SortFunc(eps, func(a, b ciliumv2alpha1.CoreCiliumEndpoint) int { return cmp.Compare(a.Name, b.Name) })
	out := &ciliumv2alpha1.CiliumEndpointSlice{Namespace: s.ns, Endpoints: eps}
	out.Name = s.name
	out.APIVersion, out.Kind = ciliumv2alpha1.SchemeGroupVersion.String(), "CiliumEndpointSlice"
	return out
}

// inSync reports whether the observed object already holds the desired content. It copies
// nothing: it is called for every event, sync, resync and status.
func (m *model) inSync(s *slice) bool {
	o := s.observed
	if len(s.members) == 0 || o == nil {
		return len(s.members) == 0 && o == nil
	}
	if o.Namespace != s.ns || len(o.Endpoints) != len(s.members) {
		return false
	}
	// Equal lengths and every observed entry matching a distinct member means the same set; the
	// entries are distinct when sorted strictly by name (as this controller writes them),
	// otherwise a set tells.
	var seen map[string]bool
	if !slices.IsSortedFunc(o.Endpoints, func(x, y ciliumv2alpha1.CoreCiliumEndpoint) int { return cmp.Compare(x.Name, y.Name) }) {
		seen = make(map[string]bool, len(o.Endpoints))
	}
	for i := range o.Endpoints {
		ep := &o.Endpoints[i]
		if i > 0 && seen == nil && o.Endpoints[i-1].Name == ep.Name {
			return false
		}
		if seen != nil {
			if seen[ep.Name] {
				return false
			}
			seen[ep.Name] = true
		}
		e := s.members[s.ns+"/"+ep.Name]
		if e == nil || !equality.Semantic.DeepEqual(e.core, *ep) {
			return false
		}
	}
	return true
}

func sameContent(a, b *ciliumv2alpha1.CiliumEndpointSlice) bool {
	if a.Namespace != b.Namespace || len(a.Endpoints) != len(b.Endpoints) {
		return false
	}
	// Order is not part of a slice's meaning; compare as sets keyed by name.
	if slices.IsSortedFunc(b.Endpoints, func(x, y ciliumv2alpha1.CoreCiliumEndpoint) int { return cmp.Compare(x.Name, y.Name) }) {
		return equality.Semantic.DeepEqual(a.Endpoints, b.Endpoints)
	}
	byName := make(map[string]*ciliumv2alpha1.CoreCiliumEndpoint, len(b.Endpoints))
	for i := range b.Endpoints {
		byName[b.Endpoints[i].Name] = &b.Endpoints[i]
	}
	for i := range a.Endpoints {
		o := byName[a.Endpoints[i].Name]
		if o == nil || !equality.Semantic.DeepEqual(a.Endpoints[i], *o) {
			return false
		}
	}
	return true
}

// written records that s was written with the given members: moves into s are confirmed and the
// endpoints leave their old slices.
func (m *model) written(s *slice, members []string) {
	for _, key := range members {
		e := m.endpoints[key]
		if e == nil || e.slice != s || e.leaving == nil {
			continue
		}
		old := e.leaving
		e.leaving = nil
		m.drop(old, e)
	}
}

// forget removes an empty slice from the model once it is gone from the API.
func (m *model) forget(s *slice) {
	if len(s.members) > 0 || m.slices[s.name] != s {
		return
	}
	delete(m.slices, s.name)
	delete(s.group.slices, s.name)
	if s.heapIdx >= 0 {
		heap.Remove(&s.group.open, s.heapIdx)
	}
	if len(s.group.slices) == 0 && s.group.size == 0 {
		delete(m.groups, s.group.key)
	}
}

// adopt seeds the model from the slices that exist, before any endpoint is placed: each live
// endpoint keeps the first slice (by name) that lists it, so a restart on converged state writes
// nothing. Stale entries, duplicates, overflow and entries of the wrong namespace are left out,
// which makes those slices differ from their observed content, so they get rewritten.
func (m *model) adopt(existing []*ciliumv2alpha1.CiliumEndpointSlice, live map[string]ciliumv2alpha1.CoreCiliumEndpoint, liveNS map[string]string) {
	existing = slices.Clone(existing)
	slices.SortFunc(existing, func(a, b *ciliumv2alpha1.CiliumEndpointSlice) int { return cmp.Compare(a.Name, b.Name) })
	for _, obj := range existing {
		var g *group
		var members []string
		for _, ep := range obj.Endpoints {
			key := obj.Namespace + "/" + ep.Name
			core, ok := live[key]
			if !ok || liveNS[key] != obj.Namespace || m.endpoints[key] != nil {
				continue
			}
			gk := m.groupKey(obj.Namespace, core.IdentityID)
			if g == nil {
				g = m.group(gk, obj.Namespace)
			}
			if gk != g.key || len(members) >= m.max {
				continue
			}
			members = append(members, key)
			m.endpoints[key] = &endpoint{key: key, ns: obj.Namespace, core: core, group: gk}
		}
		if g == nil {
			g = m.group(m.groupKey(obj.Namespace, 0), obj.Namespace)
		}
		s := m.newSlice(g, obj.Name)
		s.observed = obj
		for _, key := range members {
			e := m.endpoints[key]
			e.slice = s
			g.size++
			s.members[key] = e
		}
		m.fix(s)
	}
	keys := make([]string, 0, len(live))
	for key := range live {
		if m.endpoints[key] == nil {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	for _, key := range keys {
		m.upsert(key, liveNS[key], live[key])
	}
	for _, s := range m.slices {
		if !m.inSync(s) {
			m.dirty(s)
		}
	}
}

// compact drains the emptiest slices of every group whose average fill is below threshold and
// that would need fewer slices if packed. It returns the number of slices set to drain.
func (m *model) compact(threshold float64, only func(*group) bool) int {
	drained := 0
	for _, g := range m.groups {
		if only != nil && !only(g) {
			continue
		}
		active := make([]*slice, 0, len(g.slices))
		for _, s := range g.slices {
			if !s.draining {
				active = append(active, s)
			}
		}
		need := (g.size + m.max - 1) / m.max
		if len(active) <= need || len(active) == 0 || float64(g.size) >= threshold*float64(len(active)*m.max) {
			continue
		}
		// Emptiest first; ties by name for determinism.
		slices.SortFunc(active, func(a, b *slice) int {
			return cmp.Or(cmp.Compare(len(a.members), len(b.members)), cmp.Compare(a.name, b.name))
		})
		for _, victim := range active[:len(active)-need] {
			victim.draining = true
			m.fix(victim)
			drained++
			keys := make([]string, 0, len(victim.members))
			for key, e := range victim.members {
				if e.slice == victim {
					keys = append(keys, key)
				}
			}
			slices.Sort(keys)
			for _, key := range keys {
				e := m.endpoints[key]
				if e.leaving != nil {
					// Already moving out of another slice, which still lists it: keep that one
					// as the slice it leaves and take it out of the victim at once.
					delete(victim.members, key)
				} else {
					e.leaving = victim
				}
				e.slice = nil
				g.size--
				m.place(e)
			}
			m.dirty(victim)
		}
	}
	return drained
}

// sliceHeap orders slices with room fullest first, ties by name.
type sliceHeap []*slice

func (h sliceHeap) Len() int { return len(h) }
func (h sliceHeap) Less(i, j int) bool {
	if a, b := len(h[i].members), len(h[j].members); a != b {
		return a > b
	}
	return h[i].name < h[j].name
}
func (h sliceHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *sliceHeap) Push(x any) {
	s := x.(*slice)
	s.heapIdx = len(*h)
	*h = append(*h, s)
}
func (h *sliceHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	s.heapIdx = -1
	*h = old[:len(old)-1]
	return s
}
