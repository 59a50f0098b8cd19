package identity_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ceskit/ceskit/identity"
	"github.com/ceskit/ceskit/identity/ciliumv2"
)

// BenchmarkConcurrentAllocate: N allocators (N agents, each with its own informer) allocate the
// same fresh label sets at the same moment, in random order. Reported: duplicates (label sets that
// ended with more than one CiliumIdentity in the API; must be 0), allocs/s (Allocate calls
// answered per second, all allocators together), identities/s (distinct label sets resolved per
// second), writes/identity and the p99 latency of one Allocate.
//
// The "cilium-crd-model" variant runs a model of Cilium's CRD-mode algorithm (reference §6.3: look
// up by key in the cache, else create a random free ID; AlreadyExists → next ID; no lock) on the
// same harness, to show what the claim protocol prevents. It is a model written from the
// reference, not Cilium's code.
func BenchmarkConcurrentAllocate(b *testing.B) {
	for _, bc := range []struct {
		allocators, sets int
		model            bool
	}{
		{20, 200, false},
		{50, 100, false},
		{20, 200, true},
	} {
		name := fmt.Sprintf("allocators=%d/sets=%d", bc.allocators, bc.sets)
		if bc.model {
			name = "cilium-crd-model/" + name
		}
		b.Run(name, func(b *testing.B) {
			benchConcurrentAllocate(b, bc.allocators, bc.sets, bc.model)
		})
	}
}

func benchConcurrentAllocate(b *testing.B, allocators, sets int, model bool) {
	e := newEnv(b)
	lat := &latencies{}
	m := newCountingMetrics()
	as := make([]*identity.CRDAllocator, allocators)
	for i := range as {
		as[i] = e.allocator(identity.Config{Holder: name("agent", i), Metrics: multiMetrics{m, lat}})
	}
	var dups, calls, resolved int
	var elapsed time.Duration
	b.ResetTimer()
	for iter := range b.N {
		lbls := make([]identity.Labels, sets)
		for j := range lbls {
			lbls[j] = podLabels(b, name("ns", j%10), fmt.Sprintf("i%d-app%03d", iter, j), nil)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		var n atomic.Int64
		for i, a := range as {
			wg.Go(func() {
				<-start
				for _, j := range rand.Perm(sets) {
					var err error
					if model {
						t := time.Now()
						_, err = ciliumModelAllocate(b.Context(), e, a, lbls[j], m)
						lat.Allocation("model", time.Since(t))
					} else {
						_, err = a.Allocate(b.Context(), lbls[j])
					}
					if err != nil {
						b.Errorf("allocator %d: %v", i, err)
						return
					}
					n.Add(1)
				}
			})
		}
		t0 := time.Now()
		close(start)
		wg.Wait()
		elapsed += time.Since(t0)
		calls += int(n.Load())
		resolved += sets
		d, _ := duplicates(e.identities())
		dups += d
		b.StopTimer()
		// Fresh state for the next iteration: the allocators' holds and the API objects.
		for _, a := range as {
			for _, id := range a.Held() {
				for {
					if rel, err := a.Release(b.Context(), id); err != nil || rel {
						break
					}
				}
			}
		}
		_ = e.c.CiliumIdentities().DeleteCollection(b.Context(), metav1.DeleteOptions{}, metav1.ListOptions{})
		_ = e.c.Kube.CoordinationV1().Leases(e.ns).DeleteCollection(b.Context(), metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: identity.LeaseKindLabel + "=claim"})
		b.StartTimer()
	}
	b.StopTimer()
	_, writes := m.snapshot()
	perIdentity := func(resource string) float64 {
		n := 0
		for w, c := range writes {
			if strings.HasSuffix(w, " "+resource) {
				n += c
			}
		}
		return float64(n) / float64(resolved)
	}
	b.ReportMetric(float64(dups), "duplicates")
	b.ReportMetric(float64(calls)/elapsed.Seconds(), "allocs/s")
	b.ReportMetric(float64(resolved)/elapsed.Seconds(), "identities/s")
	// Every API write request, including creates that failed with AlreadyExists. Leases are
	// claims and holder records.
	b.ReportMetric(perIdentity("ciliumidentities"), "cid-writes/identity")
	b.ReportMetric(perIdentity("leases"), "lease-writes/identity")
	b.ReportMetric(lat.percentile(0.99).Seconds()*1000, "p99-ms")
	b.ReportMetric(0, "ns/op")
}

// ciliumModelAllocate models Cilium's CRD-mode allocation (reference §6.3) with a's cache: reuse
// the oldest identity with the key, else create a random free ID, retrying on AlreadyExists up to
// 16 times. There is no lock, so allocators can create different IDs for the same labels.
func ciliumModelAllocate(ctx context.Context, e *env, a *identity.CRDAllocator, lbls identity.Labels, m identity.Metrics) (identity.NumericIdentity, error) {
	for range 16 {
		if id, ok := a.LookupByLabels(lbls); ok {
			return id, nil
		}
		id := identity.NumericIdentity(256 + rand.IntN(65535-256))
		if _, ok := a.Lookup(id); ok {
			continue
		}
		cid := &ciliumv2.CiliumIdentity{
			ObjectMeta:     metav1.ObjectMeta{Name: id.String(), Labels: map[string]string{identity.LabelNamespace: lbls.Namespace()}},
			SecurityLabels: lbls.SecurityLabels(),
		}
		_, err := e.c.CiliumIdentities().Create(ctx, cid, metav1.CreateOptions{})
		m.Write("create", "ciliumidentities")
		if err == nil {
			return id, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return 0, err
		}
	}
	return 0, fmt.Errorf("model: no free ID after 16 attempts")
}

// BenchmarkLookup measures the cache paths with 10,000 identities known: Lookup by ID,
// LookupByLabels, and Allocate of a label set the allocator already holds (a refcount).
func BenchmarkLookup(b *testing.B) {
	e := newEnv(b)
	const n = 10000
	fixture := identityFixture(b, e, n)
	a := e.allocator(identity.Config{Holder: "node-a"})
	waitFor(b, "10,000 identities in the cache", func() bool { return a.Status().Known >= n })
	// make bench runs every benchmark once (-benchtime 1x), so each iteration does many calls
	// and reports the time per call.
	const calls = 200000
	perCall := func(b *testing.B, call func(i int)) {
		var total time.Duration
		for range b.N {
			t0 := time.Now()
			for i := range calls {
				call(i)
			}
			total += time.Since(t0)
		}
		b.ReportMetric(float64(total.Nanoseconds())/float64(calls*b.N), "ns/call")
	}
	b.Run("Lookup", func(b *testing.B) {
		perCall(b, func(i int) {
			if _, ok := a.Lookup(fixture[i%n].id); !ok {
				b.Fatal("not found")
			}
		})
	})
	b.Run("LookupByLabels", func(b *testing.B) {
		perCall(b, func(i int) {
			if _, ok := a.LookupByLabels(fixture[i%n].labels); !ok {
				b.Fatal("not found")
			}
		})
	})
	b.Run("Allocate-held", func(b *testing.B) {
		ctx := b.Context()
		for _, f := range fixture[:100] {
			if _, err := a.Allocate(ctx, f.labels); err != nil {
				b.Fatal(err)
			}
		}
		perCall(b, func(i int) {
			if _, err := a.Allocate(ctx, fixture[i%100].labels); err != nil {
				b.Fatal(err)
			}
		})
	})
}

// BenchmarkGC measures how long the collector takes to reclaim 10,000 unused identities (marked,
// then deleted after the grace period, every write through the rate limiter): reclaim-s from the
// collector's start to the last deletion, with the defaults (30 s grace, 250 writes/s) and with a
// faster setting (5 s grace, 2,000 writes/s, 32 workers). Cilium's operator needs 15–30 min at
// about 5 deletions/s (reference §6.3–6.4).
func BenchmarkGC(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  identity.GCConfig
	}{
		{"defaults", identity.GCConfig{Interval: time.Second}},
		{"grace=5s,qps=2000", identity.GCConfig{Interval: time.Second, GracePeriod: 5 * time.Second, WriteQPS: 2000, Workers: 32}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			const n = 10000
			var total time.Duration
			var writes int
			for range b.N {
				b.StopTimer()
				e := newEnv(b)
				identityFixture(b, e, n)
				time.Sleep(time.Second) // the fixture's youngest are older than MinAge's 1 ms
				m := &gcCounter{}
				cfg := bc.cfg
				cfg.MinAge = time.Millisecond
				cfg.IgnoreEndpoints = true
				cfg.Metrics = m
				b.StartTimer()
				t0 := time.Now()
				e.gc(cfg)
				deadline := time.Now().Add(10 * time.Minute)
				for m.deleted.Load() < n {
					if time.Now().After(deadline) {
						b.Fatalf("reclaimed %d of %d in 10 minutes", m.deleted.Load(), n)
					}
					time.Sleep(50 * time.Millisecond)
				}
				total += time.Since(t0)
				b.StopTimer()
				writes += int(m.writes.Load())
				if left := len(e.identities()); left != 0 {
					b.Fatalf("%d identities left after the collector reported %d deletions", left, n)
				}
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "reclaim-s")
			b.ReportMetric(float64(n*b.N)/total.Seconds(), "deletes/s")
			b.ReportMetric(float64(writes)/float64(n*b.N), "writes/identity")
			b.ReportMetric(0, "ns/op")
		})
	}
}

type fixtureIdentity struct {
	id     identity.NumericIdentity
	labels identity.Labels
}

// identityFixture creates n identities with distinct labels directly through the API (16 in
// flight), IDs 10000 upwards.
func identityFixture(b *testing.B, e *env, n int) []fixtureIdentity {
	b.Helper()
	out := make([]fixtureIdentity, n)
	for i := range out {
		out[i] = fixtureIdentity{id: identity.NumericIdentity(10000 + i), labels: podLabels(b, name("ns", i%50), name("app", i), nil)}
	}
	work := make(chan fixtureIdentity)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for f := range work {
				cid := &ciliumv2.CiliumIdentity{
					ObjectMeta:     metav1.ObjectMeta{Name: f.id.String(), Labels: map[string]string{identity.LabelNamespace: f.labels.Namespace()}},
					SecurityLabels: f.labels.SecurityLabels(),
				}
				if _, err := e.c.CiliumIdentities().Create(context.Background(), cid, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
					b.Error(err)
				}
			}
		})
	}
	for _, f := range out {
		work <- f
	}
	close(work)
	wg.Wait()
	return out
}

// latencies collects Allocate durations.
type latencies struct {
	identity.NopMetrics
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) Allocation(_ string, d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) percentile(p float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	s := slices.Clone(l.d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// gcCounter sums the collector's deletions and writes.
type gcCounter struct {
	identity.NopMetrics
	deleted, writes atomic.Int64
}

func (g *gcCounter) GCEntries(status string, n int) {
	if status == "deleted" {
		g.deleted.Add(int64(n))
	}
}

func (g *gcCounter) Write(string, string) { g.writes.Add(1) }
