package identity_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/ceskit/ceskit/identity"
	"github.com/ceskit/ceskit/internal/chaos"
)

var cidGVR = schema.GroupVersionResource{Group: "cilium.io", Version: "v2", Resource: "ciliumidentities"}

// chaosFaults: 10 % of the requests fail (409/429/500 in equal parts), every request is
// delayed 2–22 ms, 1 % time out, and every watch stream is cut within 5 s.
func chaosFaults(seed int64) chaos.Faults {
	return chaos.Faults{
		ErrorRate: 0.1,
		Latency:   2 * time.Millisecond, Jitter: 20 * time.Millisecond,
		TimeoutRate: 0.01, Timeout: 300 * time.Millisecond,
		WatchDisconnectRate: 1, WatchMaxDuration: 5 * time.Second,
		Seed: seed,
	}
}

// TestChaosAllocatorsAndGC: four allocators (agents) and a collector with a short grace period,
// each behind its own fault injector, serve workers that allocate identities for 40 label sets
// (in a range only 10 IDs larger, so IDs collide and get collected and reused), create
// CiliumEndpoints that use them, delete endpoints and release. Allocators are killed at random
// points and restarted with the same holder name; the collector once. Every allocation is
// retried until it succeeds (bounded). Afterwards, faults off: every allocator allocates every
// set, and the test checks that they agree, that no label set has two identities, that every
// endpoint's identity exists with its labels, and, replaying the identities' and endpoints'
// watch events in etcd order, that no identity was deleted while an endpoint used it and that
// no label set was ever used with two identities at once.
func TestChaosAllocatorsAndGC(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	leaks := []goleak.Option{
		goleak.IgnoreCurrent(),
		goleak.IgnoreAnyFunction("k8s.io/klog/v2.(*flushDaemon).run.func1"),
		goleak.IgnoreAnyFunction("net/http.(*http2ClientConn).readLoop"),
		goleak.IgnoreAnyFunction("golang.org/x/net/http2.(*ClientConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
	}
	t.Cleanup(func() {
		_ = e.c.Dynamic.Resource(cepGVR).Namespace(e.ns).DeleteCollection(context.Background(), metav1.DeleteOptions{}, metav1.ListOptions{})
	})
	const nsets, nallocators, workers = 40, 4, 6
	sets := make([]identity.Labels, nsets)
	keys := make([]string, nsets)
	for k := range sets {
		sets[k] = podLabels(t, []string{"shop", "bank"}[k%2], fmt.Sprintf("app%02d", k), nil)
		keys[k] = sets[k].Key()
	}
	churn := 12 * time.Second
	if testing.Short() {
		churn = 4 * time.Second
	}

	log := &refLog{keys: keys}
	stopLog := log.follow(t, e)

	conflicts := &conflictCounter{}
	var ins []*chaos.Injector
	newInjector := func(seed int64) (*chaos.Injector, *identity.Client) {
		in := chaos.New(chaosFaults(seed))
		c, err := identity.NewClient(in.WrapConfig(api(t)))
		if err != nil {
			t.Fatal(err)
		}
		ins = append(ins, in)
		return in, c
	}
	allocs := make([]*chaos.Proc[*identity.CRDAllocator], nallocators)
	for i := range allocs {
		in, c := newInjector(int64(100 + i))
		allocs[i] = chaos.NewProc(in, func() (*identity.CRDAllocator, error) {
			return identity.NewCRDAllocator(c, identity.Config{
				Holder:              fmt.Sprintf("node-%d", i),
				Namespace:           e.ns,
				Range:               identity.Range{Min: 6000, Max: 6000 + nsets + 9},
				HolderLeaseDuration: 3 * time.Second,
				HolderSyncDelay:     100 * time.Millisecond,
				RestoreGracePeriod:  3 * time.Second,
				Metrics:             conflicts,
			})
		})
		if _, err := allocs[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	gcIn, gcClient := newInjector(200)
	gc := chaos.NewProc(gcIn, func() (*identity.GC, error) {
		return identity.NewGC(gcClient, identity.GCConfig{
			Namespace:        e.ns,
			Interval:         250 * time.Millisecond,
			MinAge:           500 * time.Millisecond,
			GracePeriod:      2 * time.Second,
			ClaimGracePeriod: 2 * time.Second,
		})
	})
	if _, err := gc.Start(); err != nil {
		t.Fatal(err)
	}
	stopAll := func() {
		for _, p := range allocs {
			killedLog(t, "allocator", p.Kill())
		}
		killedLog(t, "gc", gc.Kill())
	}
	t.Cleanup(stopAll)

	// Workers.
	var counts allocCounts
	var endpoints atomic.Int64
	churnCtx, stopChurn := context.WithTimeout(ctx, churn)
	defer stopChurn()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			type use struct {
				proc int
				a    *identity.CRDAllocator
				id   identity.NumericIdentity
				name string
			}
			var uses []use
			rng := rand.New(rand.NewPCG(uint64(w), 11))
			for n := 0; churnCtx.Err() == nil; n++ {
				i, k := rng.IntN(nallocators), rng.IntN(nsets)
				a, id, err := allocateRetrying(churnCtx, allocs[i], sets[k], &counts)
				if churnCtx.Err() != nil {
					break
				}
				if err != nil {
					t.Errorf("worker %d: allocation of set %d on allocator %d never succeeded: %v", w, k, i, err)
					return
				}
				name := fmt.Sprintf("w%d-%d", w, n)
				if err := createRefCEP(ctx, e, name, k, id); err != nil {
					t.Errorf("create endpoint %s: %v", name, err)
					return
				}
				endpoints.Add(1)
				uses = append(uses, use{i, a, id, name})
				for len(uses) > 2 || (len(uses) > 0 && rng.IntN(3) == 0) {
					j := rng.IntN(len(uses))
					u := uses[j]
					uses = slices.Delete(uses, j, j+1)
					if err := e.c.Dynamic.Resource(cepGVR).Namespace(e.ns).Delete(ctx, u.name, metav1.DeleteOptions{}); err != nil {
						t.Errorf("delete endpoint %s: %v", u.name, err)
					}
					// An allocator restarted since holds its identities only until its restore
					// grace ends; the one that allocated is gone.
					if cur, ok := allocs[u.proc].Current(); ok && cur == u.a {
						if _, err := u.a.Release(ctx, u.id); err != nil {
							t.Errorf("release %d: %v", u.id, err)
						}
					}
				}
				time.Sleep(time.Duration(10+rng.IntN(20)) * time.Millisecond)
			}
		})
	}

	// Kills: five allocator kills at random points, the collector once.
	rng := rand.New(rand.NewPCG(5, 5))
	type kill struct {
		at   time.Duration
		proc int // -1: the collector
	}
	var kills []kill
	for range 5 {
		kills = append(kills, kill{time.Duration(rng.Int64N(int64(churn * 9 / 10))), rng.IntN(nallocators)})
	}
	kills = append(kills, kill{churn / 2, -1})
	slices.SortFunc(kills, func(a, b kill) int { return int(a.at - b.at) })
	start := time.Now()
	var events []string
	for _, k := range kills {
		select {
		case <-churnCtx.Done():
		case <-time.After(time.Until(start.Add(k.at))):
		}
		if churnCtx.Err() != nil {
			break
		}
		pause := time.Duration(rng.Int64N(int64(time.Second)))
		if k.proc < 0 {
			killedLog(t, "gc", gc.Kill())
			time.Sleep(pause)
			if _, err := gc.Start(); err != nil {
				t.Fatal(err)
			}
			events = append(events, fmt.Sprintf("gc at %s (down %s)", k.at.Round(time.Millisecond), pause.Round(time.Millisecond)))
			continue
		}
		killedLog(t, "allocator", allocs[k.proc].Kill())
		time.Sleep(pause)
		if _, err := allocs[k.proc].Start(); err != nil {
			t.Fatal(err)
		}
		events = append(events, fmt.Sprintf("node-%d at %s (down %s)", k.proc, k.at.Round(time.Millisecond), pause.Round(time.Millisecond)))
	}
	<-churnCtx.Done()
	wg.Wait()

	// Convergence: faults off; every allocator allocates every set; the API agrees.
	for _, in := range ins {
		in.SetFaults(chaos.Faults{})
	}
	converged := time.Now()
	final := make([][]identity.NumericIdentity, nsets)
	for i, p := range allocs {
		for k := range sets {
			_, id, err := allocateRetrying(ctx, p, sets[k], &counts)
			if err != nil {
				t.Fatalf("final allocation of set %d on allocator %d: %v", k, i, err)
			}
			final[k] = append(final[k], id)
		}
	}
	for k, ids := range final {
		if slices.Min(ids) != slices.Max(ids) {
			t.Errorf("label set %d: allocators disagree: %v", k, ids)
		}
	}
	took, v := chaos.Await(ctx, 60*time.Second, 100*time.Millisecond, func(ctx context.Context) ([]string, error) {
		return apiViolations(ctx, e, keys, final)
	})
	took += time.Since(converged) - took // the final allocations count too
	if len(v) > 0 {
		t.Fatalf("no convergence in %s:\n%s", took.Round(time.Millisecond), strings.Join(v, "\n"))
	}
	ids := e.identities()

	stopAll()
	stopLog()
	for _, v := range log.replay() {
		t.Error(v)
	}
	if err := goleak.Find(leaks...); err != nil {
		t.Errorf("goroutines left after every component stopped: %v", err)
	}
	var stats chaos.Stats
	for _, in := range ins {
		stats = stats.Add(in.Stats())
	}
	crashes := 0
	var crashErr error
	for _, p := range allocs {
		if n, err := p.Crashes(); n > 0 {
			crashes, crashErr = crashes+n, err
		}
	}
	gcCrashes, gcErr := gc.Crashes()
	t.Logf("converged %s after the faults stopped (final round of %d allocations included)", took.Round(time.Millisecond), nallocators*nsets)
	t.Logf("%d allocations, %d failed and retried (e.g. %q), %d retries while the allocator was down; %d endpoints, %d identity deletions, %d identities at the end; races resolved %v",
		counts.ok.Load(), counts.failed.Load(), counts.samples, counts.waits.Load(), endpoints.Load(), log.deletions(), len(ids), conflicts.snapshot())
	t.Logf("kills: %s; crashes (Run returned by itself): allocators %d (last: %v), collector %d (last: %v)",
		strings.Join(events, ", "), crashes, crashErr, gcCrashes, gcErr)
	t.Logf("injected: %s", stats)
}

// allocCounts counts the failed Allocate calls (with a few samples, other than the refusals of
// an allocator being killed) and the waits for a killed allocator to come back.
type allocCounts struct {
	ok, failed, waits atomic.Int64
	mu                sync.Mutex
	samples           []string
}

// allocateRetrying allocates lbls on p's running instance until it succeeds, retrying for at
// most 20 s, as an agent retries a pod's endpoint.
func allocateRetrying(ctx context.Context, p *chaos.Proc[*identity.CRDAllocator], lbls identity.Labels, c *allocCounts) (*identity.CRDAllocator, identity.NumericIdentity, error) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		var err error
		if a, ok := p.Current(); ok {
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			var id identity.NumericIdentity
			id, err = a.Allocate(actx, lbls)
			cancel()
			if err == nil {
				c.ok.Add(1)
				return a, id, nil
			}
			c.failed.Add(1)
			c.mu.Lock()
			if msg := err.Error(); len(c.samples) < 3 && !strings.Contains(msg, "connection refused") {
				if len(msg) > 120 {
					msg = "…" + msg[len(msg)-120:]
				}
				c.samples = append(c.samples, msg)
			}
			c.mu.Unlock()
		} else {
			c.waits.Add(1)
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return nil, 0, fmt.Errorf("gave up: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func killedLog(t *testing.T, what string, err error) {
	if err != nil {
		t.Logf("%s killed: Run returned %v", what, err)
	}
}

// createRefCEP creates a CiliumEndpoint that uses id, labelled with its label set's index.
func createRefCEP(ctx context.Context, e *env, name string, set int, id identity.NumericIdentity) error {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cilium.io/v2", "kind": "CiliumEndpoint",
		"metadata": map[string]any{"name": name, "namespace": e.ns, "labels": map[string]any{"chaos-set": strconv.Itoa(set)}},
		"status":   map[string]any{"identity": map[string]any{"id": int64(id)}, "state": "ready"},
	}}
	_, err := e.c.Dynamic.Resource(cepGVR).Namespace(e.ns).Create(ctx, u, metav1.CreateOptions{})
	return err
}

// apiViolations checks the API server's state: one identity per label set, the one every
// allocator reported; every endpoint's identity exists and holds its set's labels.
func apiViolations(ctx context.Context, e *env, keys []string, final [][]identity.NumericIdentity) ([]string, error) {
	list, err := e.c.CiliumIdentities().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	byID := map[identity.NumericIdentity]string{}
	byKey := map[string][]identity.NumericIdentity{}
	for _, cid := range list.Items {
		id, err := identity.ParseNumericIdentity(cid.Name)
		if err != nil {
			return nil, err
		}
		l, err := identity.LabelsFromSecurityLabels(cid.SecurityLabels)
		if err != nil {
			return nil, err
		}
		byID[id] = l.Key()
		byKey[l.Key()] = append(byKey[l.Key()], id)
	}
	var out []string
	for k, key := range keys {
		if ids := byKey[key]; len(ids) != 1 || ids[0] != final[k][0] {
			out = append(out, fmt.Sprintf("label set %d: identities %v in the API, allocators said %d", k, ids, final[k][0]))
		}
	}
	ceps, err := e.c.Dynamic.Resource(cepGVR).Namespace(e.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for _, u := range ceps.Items {
		set, _ := strconv.Atoi(u.GetLabels()["chaos-set"])
		raw, _, _ := unstructured.NestedInt64(u.Object, "status", "identity", "id")
		if got := byID[identity.NumericIdentity(raw)]; got != keys[set] {
			out = append(out, fmt.Sprintf("endpoint %s uses identity %d, which holds %q, not set %d", u.GetName(), raw, got, set))
		}
	}
	return out, nil
}

// refEvent is a change of a CiliumIdentity or CiliumEndpoint, placed in etcd's order by its
// resourceVersion (an etcd revision: one counter for every object of the cluster).
type refEvent struct {
	rv      uint64
	cep     bool
	deleted bool
	name    string
	id      identity.NumericIdentity
	key     string
}

// refLog follows CiliumIdentities and the test's CiliumEndpoints through an un-faulted client.
type refLog struct {
	keys   []string
	mu     sync.Mutex
	events []refEvent
	errs   []string
}

func (l *refLog) add(ev refEvent) {
	l.mu.Lock()
	l.events = append(l.events, ev)
	l.mu.Unlock()
}

// follow lists and watches both resources from now on; the returned func stops it.
func (l *refLog) follow(t *testing.T, e *env) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var done []<-chan struct{}
	for _, cep := range []bool{false, true} {
		var res interface {
			List(context.Context, metav1.ListOptions) (*unstructured.UnstructuredList, error)
			Watch(context.Context, metav1.ListOptions) (watch.Interface, error)
		}
		if cep {
			res = e.c.Dynamic.Resource(cepGVR).Namespace(e.ns)
		} else {
			res = e.c.Dynamic.Resource(cidGVR)
		}
		list, err := res.List(ctx, metav1.ListOptions{})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		rv, _ := strconv.ParseUint(list.GetResourceVersion(), 10, 64)
		for i := range list.Items {
			l.add(l.event(&list.Items[i], cep, false, rv))
		}
		rw, err := watchtools.NewRetryWatcherWithContext(ctx, list.GetResourceVersion(), &cache.ListWatch{WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return res.Watch(ctx, o)
		}})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		done = append(done, rw.Done())
		go func() {
			for ev := range rw.ResultChan() {
				u, ok := ev.Object.(*unstructured.Unstructured)
				if !ok {
					l.mu.Lock()
					l.errs = append(l.errs, fmt.Sprintf("watch: %v %T", ev.Type, ev.Object))
					l.mu.Unlock()
					continue
				}
				rv, _ := strconv.ParseUint(u.GetResourceVersion(), 10, 64)
				l.add(l.event(u, cep, ev.Type == watch.Deleted, rv))
			}
		}()
	}
	return func() {
		cancel()
		for _, d := range done {
			<-d
		}
	}
}

func (l *refLog) event(u *unstructured.Unstructured, cep, deleted bool, rv uint64) refEvent {
	ev := refEvent{rv: rv, cep: cep, deleted: deleted, name: u.GetName()}
	if cep {
		raw, _, _ := unstructured.NestedInt64(u.Object, "status", "identity", "id")
		ev.id = identity.NumericIdentity(raw)
		if set, err := strconv.Atoi(u.GetLabels()["chaos-set"]); err == nil && set < len(l.keys) {
			ev.key = l.keys[set]
		}
		return ev
	}
	ev.id, _ = identity.ParseNumericIdentity(u.GetName())
	sl, _, _ := unstructured.NestedStringMap(u.Object, "security-labels")
	if lbls, err := identity.LabelsFromSecurityLabels(sl); err == nil {
		ev.key = lbls.Key()
	}
	return ev
}

func (l *refLog) deletions() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, ev := range l.events {
		if !ev.cep && ev.deleted {
			n++
		}
	}
	return n
}

// replay goes through the events in etcd order and returns every violation: an identity deleted
// while an endpoint used it, an endpoint created with an identity that did not exist or held
// other labels, a label set used by endpoints with two identities at once.
func (l *refLog) replay() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := slices.Clone(l.errs)
	evs := slices.Clone(l.events)
	slices.SortStableFunc(evs, func(a, b refEvent) int {
		switch {
		case a.rv < b.rv:
			return -1
		case a.rv > b.rv:
			return 1
		}
		return 0
	})
	ids := map[identity.NumericIdentity]string{}                       // live identity → key
	users := map[identity.NumericIdentity]map[string]bool{}            // identity → live endpoints
	inUse := map[string]map[identity.NumericIdentity]map[string]bool{} // key → identity → endpoints
	live := map[string]refEvent{}
	for _, ev := range evs {
		switch {
		case !ev.cep && ev.deleted:
			if n := len(users[ev.id]); n > 0 {
				out = append(out, fmt.Sprintf("identity %d deleted (rv %d) while %d endpoints used it: %v", ev.id, ev.rv, n, slices.Sorted(maps.Keys(users[ev.id]))))
			}
			delete(ids, ev.id)
		case !ev.cep:
			ids[ev.id] = ev.key
		case ev.deleted:
			prev, ok := live[ev.name]
			if !ok {
				continue
			}
			delete(live, ev.name)
			delete(users[prev.id], ev.name)
			delete(inUse[prev.key][prev.id], ev.name)
			if len(inUse[prev.key][prev.id]) == 0 {
				delete(inUse[prev.key], prev.id)
			}
		default:
			if _, ok := live[ev.name]; ok {
				continue // an update: these endpoints never change
			}
			live[ev.name] = ev
			if got, ok := ids[ev.id]; !ok || got != ev.key {
				out = append(out, fmt.Sprintf("endpoint %s created (rv %d) with identity %d, which does not hold its labels (exists %v)", ev.name, ev.rv, ev.id, ok))
			}
			if users[ev.id] == nil {
				users[ev.id] = map[string]bool{}
			}
			users[ev.id][ev.name] = true
			if inUse[ev.key] == nil {
				inUse[ev.key] = map[identity.NumericIdentity]map[string]bool{}
			}
			if inUse[ev.key][ev.id] == nil {
				inUse[ev.key][ev.id] = map[string]bool{}
			}
			inUse[ev.key][ev.id][ev.name] = true
			if len(inUse[ev.key]) > 1 {
				out = append(out, fmt.Sprintf("label set %q used with %d identities at once (rv %d): %v", ev.key, len(inUse[ev.key]), ev.rv, slices.Sorted(maps.Keys(inUse[ev.key]))))
			}
		}
	}
	return out
}

// TestRunRetriesDiscovery fails the discovery reads of an allocator and a collector with 500s:
// Run must keep retrying instead of returning, and start once discovery answers.
func TestRunRetriesDiscovery(t *testing.T) {
	e := newEnv(t)
	in := chaos.New(chaos.Faults{ErrorRate: 1, InternalErrorWeight: 1, Only: func(r *http.Request) bool {
		return strings.HasPrefix(r.URL.Path, "/apis/cilium.io/")
	}})
	c, err := identity.NewClient(in.WrapConfig(api(t)))
	if err != nil {
		t.Fatal(err)
	}
	a, err := identity.NewCRDAllocator(c, identity.Config{Holder: "node-a", Namespace: e.ns})
	if err != nil {
		t.Fatal(err)
	}
	g, err := identity.NewGC(c, identity.GCConfig{Namespace: e.ns})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 2)
	go func() { done <- a.Run(ctx) }()
	go func() { done <- g.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for in.Stats().InternalErrors < 6 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d failed discovery reads in 30s", in.Stats().InternalErrors)
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned on a transient discovery error: %v", err)
	default:
	}
	in.SetFaults(chaos.Faults{})
	for !a.HasSynced() || !g.HasSynced() {
		if time.Now().After(deadline) {
			t.Fatalf("not synced after discovery recovered: allocator %t, gc %t", a.HasSynced(), g.HasSynced())
		}
		time.Sleep(20 * time.Millisecond)
	}
	lbls, err := identity.ParseLabels("k8s:app=web")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Allocate(ctx, lbls); err != nil {
		t.Errorf("Allocate after the retried start: %v", err)
	}
	cancel()
	for range 2 {
		if err := <-done; err != nil {
			t.Errorf("Run = %v after cancel, want nil", err)
		}
	}
}

// TestAllocateRetriesNetworkErrors times out every write of an allocator (half of them after
// reaching the server, so some were applied): Allocate must keep trying rounds rather than
// return the network error, and succeed with one identity per label set once writes get through.
func TestAllocateRetriesNetworkErrors(t *testing.T) {
	e := newEnv(t)
	in := chaos.New(chaos.Faults{})
	c, err := identity.NewClient(in.WrapConfig(api(t)))
	if err != nil {
		t.Fatal(err)
	}
	a, err := identity.NewCRDAllocator(c, identity.Config{Holder: "node-net", Namespace: e.ns})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	for !a.HasSynced() {
		time.Sleep(10 * time.Millisecond)
	}
	in.SetFaults(chaos.Faults{TimeoutRate: 1, Timeout: 30 * time.Millisecond, Seed: 5, Only: chaos.Writes})
	type result struct {
		id  identity.NumericIdentity
		err error
	}
	results := make(chan result, 4)
	for i := range 4 {
		lbls, err := identity.ParseLabels("k8s:app=net-" + strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			id, err := a.Allocate(ctx, lbls)
			results <- result{id, err}
		}()
	}
	deadline := time.Now().Add(20 * time.Second)
	for in.Stats().Timeouts < 8 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d writes timed out", in.Stats().Timeouts)
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case r := <-results:
		t.Fatalf("Allocate returned while every write timed out: %d, %v", r.id, r.err)
	default:
	}
	in.SetFaults(chaos.Faults{})
	seen := map[identity.NumericIdentity]bool{}
	for range 4 {
		r := <-results
		if r.err != nil || r.id == 0 || seen[r.id] {
			t.Errorf("Allocate = %d, %v; want a distinct identity", r.id, r.err)
		}
		seen[r.id] = true
	}
	st := in.Stats()
	t.Logf("%d writes timed out (%d of them sent), then 4 identities allocated", st.Timeouts, st.TimeoutsSent)
}
