package slicer_test

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/ceskit/ceskit/slicer"
	"github.com/ceskit/ceskit/slicer/ciliumv2"
	"github.com/ceskit/ceskit/slicer/ciliumv2alpha1"
)

// The benchmarks run against the real API server of TestMain, once each:
//
//	go test -run '^$' -bench . -benchtime 1x ./slicer/
//
// CESKIT_BENCH_CHURN sets the churn phase of BenchmarkPropagation (default 20s).

// sliceWatcher follows every CiliumEndpointSlice event and tells when an expected change to an
// endpoint first becomes visible: the endpoint listed with an identity, or listed nowhere.
type sliceWatcher struct {
	mu      sync.Mutex
	members map[string]map[string]int64 // slice → endpoint key → identity
	where   map[string]map[string]bool  // endpoint key → slices listing it
	expect  map[string]*expectation
	lat     []time.Duration // from write sent to slice seen
	latAck  []time.Duration // from write acknowledged to slice seen (0 when seen first)
}

type expectation struct {
	id    int64     // 0: expect the endpoint in no slice
	start time.Time // the write was sent
	seen  time.Time // a slice showed the change (zero: not yet)
	ack   time.Time // the write was acknowledged (zero: not yet)
}

func newSliceWatcher() *sliceWatcher {
	return &sliceWatcher{members: map[string]map[string]int64{}, where: map[string]map[string]bool{}, expect: map[string]*expectation{}}
}

// watchSlices feeds a new sliceWatcher from a slice informer, which re-lists and re-watches
// on its own when the API server closes a watch (as it does to slow watchers under load). stop
// ends it and waits.
func watchSlices(b *testing.B, e *env) (sw *sliceWatcher, stop func()) {
	sw = newSliceWatcher()
	inf := e.c.NewSliceInformer()
	handle := func(t watch.EventType) func(any) {
		return func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if s, ok := obj.(*ciliumv2alpha1.CiliumEndpointSlice); ok {
				sw.apply(t, s, time.Now())
			}
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    handle(watch.Added),
		UpdateFunc: func(_, obj any) { handle(watch.Modified)(obj) },
		DeleteFunc: handle(watch.Deleted),
	}); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { inf.RunWithContext(ctx); close(done) }()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		b.Fatal("slice informer did not sync")
	}
	return sw, func() { cancel(); <-done }
}

// apply records one slice event and checks the expectations of the endpoints it touches.
func (sw *sliceWatcher) apply(t watch.EventType, s *ciliumv2alpha1.CiliumEndpointSlice, now time.Time) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	touched := map[string]bool{}
	for key := range sw.members[s.Name] {
		delete(sw.where[key], s.Name)
		touched[key] = true
	}
	delete(sw.members, s.Name)
	if t != watch.Deleted {
		m := map[string]int64{}
		for _, ep := range s.Endpoints {
			key := s.Namespace + "/" + ep.Name
			m[key] = ep.IdentityID
			if sw.where[key] == nil {
				sw.where[key] = map[string]bool{}
			}
			sw.where[key][s.Name] = true
			touched[key] = true
		}
		sw.members[s.Name] = m
	}
	for key := range touched {
		sw.check(key, now)
	}
}

func (sw *sliceWatcher) check(key string, now time.Time) {
	exp, ok := sw.expect[key]
	if !ok {
		return
	}
	met := len(sw.where[key]) == 0
	if exp.id != 0 {
		met = false
		for s := range sw.where[key] {
			if sw.members[s][key] == exp.id {
				met = true
			}
		}
	}
	if met {
		exp.seen = now
		sw.lat = append(sw.lat, now.Sub(exp.start))
		sw.finish(key, exp)
	}
}

// finish records the acknowledged-to-seen latency once both are known.
func (sw *sliceWatcher) finish(key string, exp *expectation) {
	if exp.seen.IsZero() || exp.ack.IsZero() {
		return
	}
	sw.latAck = append(sw.latAck, max(0, exp.seen.Sub(exp.ack)))
	delete(sw.expect, key)
}

// acked records that the write behind key's expectation was acknowledged.
func (sw *sliceWatcher) acked(key string, at time.Time) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if exp := sw.expect[key]; exp != nil {
		exp.ack = at
		sw.finish(key, exp)
	}
}

// want registers an expectation before the write that causes it.
func (sw *sliceWatcher) want(key string, id int64, start time.Time) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	sw.expect[key] = &expectation{id: id, start: start}
	sw.check(key, start)
}

// wait blocks until every expectation is met or d passes, and returns the latencies from write
// sent and from write acknowledged, and how many expectations are still unmet.
func (sw *sliceWatcher) wait(d time.Duration) (sent, acked []time.Duration, unmet int) {
	deadline := time.Now().Add(d)
	for {
		sw.mu.Lock()
		unmet = len(sw.expect)
		sent, acked = slices.Clone(sw.lat), slices.Clone(sw.latAck)
		sw.mu.Unlock()
		if unmet == 0 || time.Now().After(deadline) {
			slices.Sort(sent)
			slices.Sort(acked)
			return sent, acked, unmet
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func pct(lat []time.Duration, p float64) float64 {
	if len(lat) == 0 {
		return 0
	}
	i := min(len(lat)-1, int(float64(len(lat))*p))
	return float64(lat[i].Microseconds()) / 1000
}

func createNodes(b *testing.B, c *slicer.Client, n int) {
	ctx := context.Background()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%04d", i)}}
			if _, err := c.Kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				b.Error(err)
			}
		})
	}
	wg.Wait()
}

func BenchmarkPropagation(b *testing.B) {
	// The default slice size (Cilium's 100), and half of it: the API server validates every
	// entry of a slice on each write, so smaller slices cost it less per change.
	for _, bc := range []struct {
		name string
		max  int
	}{{"pods=5000,nodes=500", 0}, {"pods=5000,nodes=500,slice=50", 50}} {
		b.Run(bc.name, func(b *testing.B) { benchPropagation(b, bc.max) })
	}
}

func benchPropagation(b *testing.B, maxPerSlice int) {
	{
		e := newEnv(b)
		ctx := context.Background()
		const nsCount, perNS, rate = 50, 100, 50
		churnFor := 20 * time.Second
		if d, err := time.ParseDuration(os.Getenv("CESKIT_BENCH_CHURN")); err == nil {
			churnFor = d
		}
		createNodes(b, e.c, 500)
		nss := make([]string, nsCount)
		for i := range nss {
			nss[i] = e.namespace(fmt.Sprintf("prop-%02d", i), nil)
			e.createCEPs(ctx, nss[i], "p", perNS, 10)
		}
		own := &propagationMetrics{}
		ctl := e.start(slicer.Config{MaxEndpointsPerSlice: maxPerSlice, Metrics: own})
		e.converge(ctl, cmp.Or(maxPerSlice, 100))
		b.ResetTimer()
		for b.Loop() {
			sw, stopWatch := watchSlices(b, e)
			own.reset()
			before := ctl.Status()
			ch := newChangeMix(b, e, nss, 7, 5000, "p")
			tick := time.NewTicker(time.Second / rate)
			end := time.Now().Add(churnFor)
			changes := 0
			var writeLat []time.Duration
			var wg sync.WaitGroup
			var latMu sync.Mutex
			// Each tick picks its change in order and sends it without waiting for the previous
			// one, so the API server's latency does not lower the rate.
			for now := range tick.C {
				if now.After(end) {
					break
				}
				key, id, send := ch.next(ctx, changes)
				sw.want(key, id, time.Now())
				changes++
				wg.Go(func() {
					start := time.Now()
					if err := send(); err != nil {
						b.Error(err)
					}
					sw.acked(key, time.Now())
					latMu.Lock()
					writeLat = append(writeLat, time.Since(start))
					latMu.Unlock()
				})
			}
			wg.Wait()
			tick.Stop()
			sent, acked, unmet := sw.wait(30 * time.Second)
			stopWatch()
			after := ctl.Status()
			if unmet > 0 {
				b.Fatalf("%d of %d changes never reached a slice; controller status %+v", unmet, changes, after)
			}
			// From the CEP write's acknowledgement (the change exists) to a watcher seeing it.
			b.ReportMetric(pct(acked, 0.50), "p50-ms")
			b.ReportMetric(pct(acked, 0.99), "p99-ms")
			b.ReportMetric(pct(acked, 1), "max-ms")
			// The same from the moment the CEP write was sent, and that write's own latency:
			// the API server's share on this machine.
			slices.Sort(writeLat)
			b.ReportMetric(pct(sent, 0.99), "e2e-p99-ms")
			b.ReportMetric(pct(writeLat, 0.99), "cep-write-p99-ms")
			// The controller's own share: from seeing a change to its slice write acknowledged.
			b.ReportMetric(pct(own.sorted(), 0.99), "controller-p99-ms")
			b.ReportMetric(float64(writes(after)-writes(before))/float64(changes), "writes/change")
			b.ReportMetric(float64(after.BytesWritten-before.BytesWritten)/float64(changes), "bytes/change")
			b.ReportMetric(float64(changes)/churnFor.Seconds(), "changes/s")
		}
	}
}

// ceps lists the endpoints of ns.
func ceps(b *testing.B, e *env, ns string) []*ciliumv2.CiliumEndpoint {
	list, err := e.c.CiliumEndpoints(ns).List(context.Background(), metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		b.Fatal(err)
	}
	out := make([]*ciliumv2.CiliumEndpoint, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out
}

// big is the shared fixture of the cold-start and restart benchmarks: 20,000 CiliumEndpoints in
// 100 namespaces and 500 nodes, created once and left for the control plane's end.
var big struct {
	once sync.Once
	e    *env
}

func setupBig(b *testing.B) *env {
	big.once.Do(func() {
		c, err := slicer.NewClient(api(b))
		if err != nil {
			b.Fatal(err)
		}
		e := &env{tb: b, c: c}
		createNodes(b, c, 500)
		for i := range 100 {
			ns := e.namespace(fmt.Sprintf("big-%03d", i), nil)
			e.createCEPs(context.Background(), ns, "p", 200, 20)
		}
		big.e = e
	})
	if big.e == nil {
		b.Fatal("fixture setup failed")
	}
	big.e.tb = b
	return big.e
}

func clearSlices(b *testing.B, e *env) {
	if err := e.c.CiliumEndpointSlices().DeleteCollection(context.Background(), metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		b.Fatal(err)
	}
	eventually(b, "slices deleted", func() bool {
		l, err := e.c.CiliumEndpointSlices().List(context.Background(), metav1.ListOptions{})
		return err == nil && len(l.Items) == 0
	})
}

// coldSync starts a controller over the existing endpoints and measures, per endpoint, the time
// from the start until a watcher sees it in a slice.
func coldSync(b *testing.B, e *env, cfg slicer.Config, endpoints int) {
	sw, stopWatch := watchSlices(b, e)
	start := time.Now()
	for _, ns := range e.ns {
		for _, c := range ceps(b, e, ns) {
			sw.want(ns+"/"+c.Name, c.Status.Identity.ID, start)
			sw.acked(ns+"/"+c.Name, start)
		}
	}
	ctl := e.start(cfg)
	lat, _, unmet := sw.wait(5 * time.Minute)
	syncS := time.Since(start).Seconds()
	e.converge(ctl, 100)
	stopWatch()
	if unmet > 0 {
		b.Fatalf("%d of %d endpoints never reached a slice", unmet, endpoints)
	}
	s := ctl.Status()
	ctl.stop()
	if len(lat) > 0 {
		syncS = lat[len(lat)-1].Seconds()
	}
	b.ReportMetric(syncS, "sync-s")
	b.ReportMetric(float64(writes(s)), "writes")
	b.ReportMetric(pct(lat, 0.99), "p99-ms")
	b.ReportMetric(float64(s.Slices), "slices")
}

func BenchmarkInitialSync(b *testing.B) {
	// With 500 nodes the default table gives 50 writes/s, burst 100 (Cilium's Helm default).
	b.Run("pods=20000", func(b *testing.B) {
		e := setupBig(b)
		for b.Loop() {
			clearSlices(b, e)
			coldSync(b, e, slicer.Config{}, 20000)
		}
	})
	// Cilium's measured baseline (reference §4) ran at its non-Helm default: 10 writes/s, burst 20.
	b.Run("pods=20000,qps=10", func(b *testing.B) {
		e := setupBig(b)
		for b.Loop() {
			clearSlices(b, e)
			coldSync(b, e, slicer.Config{WriteQPS: 10, WriteBurst: 20}, 20000)
		}
	})
}

func BenchmarkRestart(b *testing.B) {
	b.Run("pods=20000", func(b *testing.B) {
		e := setupBig(b)
		first := e.start(slicer.Config{}) // converge, in case this benchmark runs alone
		e.converge(first, 100)
		first.stop()
		for b.Loop() {
			start := time.Now()
			ctl := e.start(slicer.Config{})
			syncS := time.Since(start).Seconds()
			time.Sleep(2 * time.Second) // time for any write a restart would make
			e.converge(ctl, 100)
			s := ctl.Status()
			ctl.stop()
			b.ReportMetric(float64(writes(s)), "writes")
			b.ReportMetric(syncS, "sync-s")
		}
	})
}

// propagationMetrics records the controller's Propagation measurements.
type propagationMetrics struct {
	slicer.NopMetrics
	mu  sync.Mutex
	lat []time.Duration
}

func (m *propagationMetrics) Propagation(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lat = append(m.lat, d)
}

func (m *propagationMetrics) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lat = nil
}

func (m *propagationMetrics) sorted() []time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := slices.Clone(m.lat)
	slices.Sort(out)
	return out
}

// changeMix generates a 1:1:1 mix of identity changes, deletes and creates of CiliumEndpoints over
// namespaces, tracking which endpoints live so each change is real: a repeated identity patch
// would be a no-op, which the API server does not even report as an event.
type changeMix struct {
	e      *env
	r      *rand.Rand
	nss    []string
	live   map[string][]string
	idBase int64  // identities are drawn from [idBase, idBase+50000)
	prefix string // names of created endpoints
	seq    int
}

func newChangeMix(b *testing.B, e *env, nss []string, seed uint64, idBase int64, prefix string) *changeMix {
	ch := &changeMix{e: e, r: rand.New(rand.NewPCG(seed, 12)), nss: nss, live: map[string][]string{}, idBase: idBase, prefix: prefix}
	for _, ns := range nss {
		for _, c := range ceps(b, e, ns) {
			ch.live[ns] = append(ch.live[ns], c.Name)
		}
	}
	return ch
}

// total is the number of live endpoints.
func (ch *changeMix) total() int {
	n := 0
	for _, names := range ch.live {
		n += len(names)
	}
	return n
}

// next picks change number i: the endpoint key it affects, the identity it will have (0 when
// deleted), and the API call that makes it.
func (ch *changeMix) next(ctx context.Context, i int) (key string, id int64, send func() error) {
	ns := ch.nss[ch.r.IntN(len(ch.nss))]
	api := ch.e.c.CiliumEndpoints(ns)
	names := ch.live[ns]
	j := ch.r.IntN(len(names))
	victim := names[j]
	switch i % 3 {
	case 0: // identity change
		id = ch.idBase + int64(ch.r.IntN(50000))
		patch := fmt.Appendf(nil, `{"status":{"identity":{"id":%d}}}`, id)
		return ns + "/" + victim, id, func() error {
			_, err := api.Patch(ctx, victim, types.MergePatchType, patch, metav1.PatchOptions{})
			return err
		}
	case 1: // pod deleted
		ch.live[ns] = slices.Delete(names, j, j+1)
		return ns + "/" + victim, 0, func() error { return api.Delete(ctx, victim, metav1.DeleteOptions{}) }
	default: // pod created
		ch.seq++
		name := fmt.Sprintf("%s-new-%d", ch.prefix, ch.seq)
		ch.live[ns] = append(names, name)
		cep := newCEP(ns, name, 1001, ch.seq)
		return ns + "/" + name, 1001, func() error {
			_, err := api.Create(ctx, cep, metav1.CreateOptions{})
			return err
		}
	}
}
