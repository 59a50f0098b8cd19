package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ceskit/ceskit/slicer/ciliumv2alpha1"
)

// Stages of propagation the tracker measures, each for upserts (an endpoint created or given a
// new identity) and deletes.
const (
	stageSlice       = "slice"        // endpoint write → first slice event that lists it so
	stageNode        = "node"         // endpoint write → a node watcher's handler sees it so
	stageSliceDelete = "slice-delete" // endpoint delete → first event after which no slice lists it
	stageNodeDelete  = "node-delete"  // endpoint delete → a node watcher reports it deleted
)

// Phases of the simulation.
const (
	phaseSeed  = "seed"
	phaseChurn = "churn"
)

// maxSamples bounds the latency samples a reservoir keeps for percentiles.
const maxSamples = 100_000

// sliceObserver is the tracker's observer index of the slice watch; node watcher i is i+1.
const sliceObserver = 0

// tracker matches endpoint writes with the first event of each observer (the slice watch and
// every node watcher) that shows them, and keeps the latencies by stage and phase, overall and
// for the current interval. It is safe for concurrent use.
type tracker struct {
	mu          sync.Mutex
	rng         *rand.Rand
	observers   int  // 1 + node watchers
	sliceActive bool // the slice observer takes part (a controller writes slices)

	keys   map[string]*keyState
	slices map[string]map[string]int64 // slice name → endpoint key → identity, as last seen
	in     map[string]int              // endpoint key → number of slices listing it

	total    map[string]*reservoir // stage + "/" + phase → latencies
	interval map[string]*reservoir // stage → latencies since the last cut
}

// keyState is what the tracker knows of one endpoint.
type keyState struct {
	present []bool  // per observer: the endpoint is in its view
	seen    []int64 // per observer: the identity it last showed (while present)
	w       *pendingWrite
}

// pendingWrite is the last write of an endpoint, waiting for observers to see it.
type pendingWrite struct {
	identity int64 // 0: the endpoint was deleted
	at       time.Time
	phase    string
	waiting  []bool // per observer
	left     int
}

func newTracker(watchers int, sliceActive bool) *tracker {
	return &tracker{
		rng:         rand.New(rand.NewPCG(1, 2)),
		observers:   watchers + 1,
		sliceActive: sliceActive,
		keys:        map[string]*keyState{},
		slices:      map[string]map[string]int64{},
		in:          map[string]int{},
		total:       map[string]*reservoir{},
		interval:    map[string]*reservoir{},
	}
}

func (t *tracker) state(k string) *keyState {
	ks := t.keys[k]
	if ks == nil {
		ks = &keyState{present: make([]bool, t.observers), seen: make([]int64, t.observers)}
		t.keys[k] = ks
	}
	return ks
}

// gc forgets an endpoint nobody lists and nothing waits for. t.mu is held.
func (t *tracker) gc(k string, ks *keyState) {
	if ks.w == nil && !slices.Contains(ks.present, true) {
		delete(t.keys, k)
	}
}

// expect records that endpoint k is about to be written with identity id. A previous write not
// yet seen everywhere is superseded. An observer that already shows id does not wait: a node
// watcher reports changes only, so a write that comes back to what it shows (a relabel and its
// reverse within one slice batch) never reaches it as an event.
func (t *tracker) expect(k string, id int64, phase string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ks := t.keys[k]
	w := &pendingWrite{identity: id, at: time.Now(), phase: phase, waiting: make([]bool, t.observers)}
	for o := range t.observers {
		if ks != nil && ks.present[o] && ks.seen[o] == id {
			continue
		}
		if o != sliceObserver || t.sliceActive {
			w.waiting[o] = true
			w.left++
		}
	}
	if w.left == 0 {
		if ks != nil {
			ks.w = nil
			t.gc(k, ks)
		}
		return
	}
	t.state(k).w = w
}

// expectGone records that endpoint k is about to be deleted. Only observers that list it can
// see it go; when none does there is nothing to propagate.
func (t *tracker) expectGone(k, phase string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ks := t.keys[k]
	if ks == nil {
		return
	}
	w := &pendingWrite{at: time.Now(), phase: phase, waiting: make([]bool, t.observers)}
	for o, p := range ks.present {
		if p && (o != sliceObserver || t.sliceActive) {
			w.waiting[o] = true
			w.left++
		}
	}
	ks.w = nil
	if w.left > 0 {
		ks.w = w
	}
	t.gc(k, ks)
}

// cancel forgets the pending write of a write that failed.
func (t *tracker) cancel(k string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ks := t.keys[k]; ks != nil {
		ks.w = nil
		t.gc(k, ks)
	}
}

// observe takes in what observer o sees of endpoint k at now: listed with identity id, or gone.
func (t *tracker) observe(o int, k string, id int64, deleted bool, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.observeLocked(o, k, id, deleted, now)
}

func (t *tracker) observeLocked(o int, k string, id int64, deleted bool, now time.Time) {
	ks := t.keys[k]
	if ks == nil {
		if deleted {
			return
		}
		ks = t.state(k)
	}
	ks.present[o] = !deleted
	ks.seen[o] = id
	if w := ks.w; w != nil && w.waiting[o] && (deleted && w.identity == 0 || !deleted && w.identity == id && id != 0) {
		stage := stageNode
		switch {
		case o == sliceObserver && deleted:
			stage = stageSliceDelete
		case o == sliceObserver:
			stage = stageSlice
		case deleted:
			stage = stageNodeDelete
		}
		t.record(stage, w.phase, now.Sub(w.at))
		w.waiting[o] = false
		if w.left--; w.left == 0 {
			ks.w = nil
		}
	}
	t.gc(k, ks)
}

// relistSlices replaces the known slices with a full list.
func (t *tracker) relistSlices(items []ciliumv2alpha1.CiliumEndpointSlice, now time.Time) {
	listed := map[string]bool{}
	for i := range items {
		listed[items[i].Name] = true
		t.observeSlice(&items[i], false, now)
	}
	t.mu.Lock()
	var gone []string
	for name := range t.slices {
		if !listed[name] {
			gone = append(gone, name)
		}
	}
	t.mu.Unlock()
	for _, name := range gone {
		t.observeSlice(&ciliumv2alpha1.CiliumEndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: name}}, true, now)
	}
}

// observeSlice takes in one slice event seen at now. An endpoint counts as gone from the slices
// when no slice lists it any more (a move lists it in two for a while).
func (t *tracker) observeSlice(ces *ciliumv2alpha1.CiliumEndpointSlice, deleted bool, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.slices[ces.Name]
	cur := map[string]int64{}
	if !deleted {
		for _, ep := range ces.Endpoints {
			cur[ces.Namespace+"/"+ep.Name] = ep.IdentityID
		}
	}
	for k, id := range cur {
		if _, ok := old[k]; !ok {
			t.in[k]++
		}
		t.observeLocked(sliceObserver, k, id, false, now)
	}
	for k := range old {
		if _, ok := cur[k]; ok {
			continue
		}
		if t.in[k]--; t.in[k] > 0 {
			continue
		}
		delete(t.in, k)
		t.observeLocked(sliceObserver, k, 0, true, now)
	}
	if deleted {
		delete(t.slices, ces.Name)
	} else {
		t.slices[ces.Name] = cur
	}
}

// record adds a sample. t.mu is held.
func (t *tracker) record(stage, phase string, d time.Duration) {
	for _, key := range []string{stage + "/" + phase, stage + "/all"} {
		r := t.total[key]
		if r == nil {
			r = &reservoir{}
			t.total[key] = r
		}
		r.add(d, t.rng)
	}
	r := t.interval[stage]
	if r == nil {
		r = &reservoir{}
		t.interval[stage] = r
	}
	r.add(d, t.rng)
}

// stats summarises the samples of a stage in a phase ("all" for every phase).
func (t *tracker) stats(stage, phase string) Latency {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.total[stage+"/"+phase].latency()
}

// cut returns the latencies of each stage since the previous cut and starts a new interval.
func (t *tracker) cut() map[string]Latency {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]Latency{}
	for stage, r := range t.interval {
		out[stage] = r.latency()
	}
	t.interval = map[string]*reservoir{}
	return out
}

// pending returns how many writes the slice observer and the node observers (any of them)
// still wait for.
func (t *tracker) pending() (slice, node int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ks := range t.keys {
		if ks.w == nil {
			continue
		}
		if ks.w.waiting[sliceObserver] {
			slice++
		}
		if slices.Contains(ks.w.waiting[1:], true) {
			node++
		}
	}
	return slice, node
}

// reservoir keeps a uniform sample of at most maxSamples latencies, their count and maximum. A
// nil reservoir is empty.
type reservoir struct {
	n       int64
	max     time.Duration
	samples []time.Duration
}

func (r *reservoir) add(d time.Duration, rng *rand.Rand) {
	r.n++
	r.max = max(r.max, d)
	if len(r.samples) < maxSamples {
		r.samples = append(r.samples, d)
	} else if i := rng.Int64N(r.n); i < maxSamples {
		r.samples[i] = d
	}
}

// Latency summarises latencies in milliseconds, rounded to 0.1 ms (so that the status page and
// the report show the same figures).
type Latency struct {
	N     int64   `json:"n"`
	P50Ms float64 `json:"p50Ms"`
	P99Ms float64 `json:"p99Ms"`
	MaxMs float64 `json:"maxMs"`
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Millisecond)*10) / 10 }

func (r *reservoir) latency() Latency {
	if r == nil || r.n == 0 {
		return Latency{}
	}
	s := slices.Clone(r.samples)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return Latency{N: r.n, P50Ms: ms(at(0.50)), P99Ms: ms(at(0.99)), MaxMs: ms(r.max)}
}

// String returns e.g. "p50=12.3ms p99=45.6ms max=78.9ms (n=100)", or "-" without samples.
func (l Latency) String() string {
	if l.N == 0 {
		return "-"
	}
	return fmt.Sprintf("p50=%.1fms p99=%.1fms max=%.1fms (n=%d)", l.P50Ms, l.P99Ms, l.MaxMs, l.N)
}
