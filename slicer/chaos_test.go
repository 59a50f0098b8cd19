package slicer_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"go.uber.org/goleak"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/ceskit/ceskit/internal/chaos"
	"github.com/ceskit/ceskit/internal/testenv"
	"github.com/ceskit/ceskit/slicer"
	"github.com/ceskit/ceskit/slicer/ciliumv2"
)

// The chaos tests run the controller and node watchers (simulated nodes) behind fault injectors
// (internal/chaos) while endpoints churn through an un-faulted client: the truth. After the
// churn the faults stop, and each test waits for convergence and checks, against the API
// server's state: every live endpoint in exactly one slice with its current content, no deleted
// endpoint in any slice, every node's view (and the view replayed from its handler's events)
// equal to the endpoints, no contradictory event (duplicate add, unknown delete), and no
// goroutine left once everything is stopped. Each logs its time to converge and what was
// injected; the figures are in README.md, "Reliability".

// chaosFaults are the faults of scenario (a), used as the background of the others: 10 % of the
// requests fail (409/429/500 in equal parts), every request is delayed 2–22 ms, 1 % time out,
// and every watch stream is cut within 5 s.
func chaosFaults(seed int64) chaos.Faults {
	return chaos.Faults{
		ErrorRate: 0.1,
		Latency:   2 * time.Millisecond, Jitter: 20 * time.Millisecond,
		TimeoutRate: 0.01, Timeout: 300 * time.Millisecond,
		WatchDisconnectRate: 1, WatchMaxDuration: 5 * time.Second,
		Seed: seed,
	}
}

func churnTime() time.Duration {
	if testing.Short() {
		return 4 * time.Second
	}
	return 12 * time.Second
}

// chaosRig is one scenario's components and truth.
type chaosRig struct {
	t     *testing.T
	e     *env
	base  *rest.Config
	nss   []string
	names int // endpoint names per namespace: ep-0 … ep-(names-1)
	max   int
	lease string
	// resync is the controllers' ResyncPeriod (0: the default).
	resync time.Duration
	ctls   []*chaos.Proc[*slicer.Controller]
	ctlIn  []*chaos.Injector
	nodes  []*chaosNode
	leaks  []goleak.Option
	ops    atomic.Int64
	// switches counts the nodes' source switches by reason (up to its first colon).
	switches switchCounter
}

type switchCounter struct {
	slicer.NopWatcherMetrics
	mu sync.Mutex
	n  map[string]int
}

func (c *switchCounter) SourceSwitch(_, to, reason string) {
	if i := strings.Index(reason, ":"); i > 0 {
		reason = reason[:i]
	}
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n["to "+to+": "+reason]++
	c.mu.Unlock()
}

func (c *switchCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

// chaosNode is a simulated node: a Watcher whose handler replays the event stream.
type chaosNode struct {
	in   *chaos.Injector
	proc *chaos.Proc[*slicer.Watcher]
	mu   sync.Mutex
	rec  *recorder   // the running instance's handler
	all  []*recorder // every instance's
}

func newChaosRig(t *testing.T, e *env, base *rest.Config, name string) *chaosRig {
	t.Helper()
	r := &chaosRig{
		t: t, e: e, base: base, names: 100, max: 10,
		lease: "kube-system/chaos-" + name,
		// Goroutines that exist now are not this test's; HTTP connections come and go.
		leaks: []goleak.Option{
			goleak.IgnoreCurrent(),
			goleak.IgnoreAnyFunction("k8s.io/klog/v2.(*flushDaemon).run.func1"),
			goleak.IgnoreAnyFunction("net/http.(*http2ClientConn).readLoop"),
			goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
			goleak.IgnoreAnyFunction("golang.org/x/net/http2.(*ClientConn).readLoop"),
			// The restarted kube-apiserver's process, owned by its control plane.
			goleak.IgnoreAnyFunction("sigs.k8s.io/controller-runtime/pkg/internal/testing/process.(*State).Start.func1"),
		},
	}
	for i := range 3 {
		r.nss = append(r.nss, e.namespace(fmt.Sprintf("chaos-%s-%d", name, i), nil))
	}
	t.Cleanup(r.stop)
	return r
}

func (r *chaosRig) client(in *chaos.Injector) *slicer.Client {
	r.t.Helper()
	c, err := slicer.NewClient(in.WrapConfig(r.base))
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

// controller adds a controller behind its own injector and starts it.
func (r *chaosRig) controller(f chaos.Faults) *chaos.Proc[*slicer.Controller] {
	r.t.Helper()
	in := chaos.New(f)
	c := r.client(in)
	p := chaos.NewProc(in, func() (*slicer.Controller, error) {
		return slicer.New(c, slicer.Config{
			MaxEndpointsPerSlice: r.max,
			WriteQPS:             100,
			HeartbeatLease:       r.lease,
			HeartbeatInterval:    time.Second,
			ResyncPeriod:         r.resync,
			Logger:               testLogger(r.t),
		})
	})
	if _, err := p.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.ctls, r.ctlIn = append(r.ctls, p), append(r.ctlIn, in)
	return p
}

// node adds a node watcher behind its own injector and starts it.
func (r *chaosRig) node(f chaos.Faults) *chaosNode {
	r.t.Helper()
	n := &chaosNode{in: chaos.New(f)}
	c := r.client(n.in)
	n.proc = chaos.NewProc(n.in, func() (*slicer.Watcher, error) {
		rec := newRecorder()
		w, err := slicer.NewWatcher(c, rec, slicer.WatcherConfig{
			HeartbeatLease: r.lease,
			StaleAfter:     5 * time.Second,
			CheckInterval:  500 * time.Millisecond,
			DeleteGrace:    500 * time.Millisecond,
			Logger:         testLogger(r.t),
			Metrics:        &r.switches,
		})
		if err == nil {
			n.mu.Lock()
			n.rec, n.all = rec, append(n.all, rec)
			n.mu.Unlock()
		}
		return w, err
	})
	if _, err := n.proc.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.nodes = append(r.nodes, n)
	return n
}

// setFaults sets the faults of every component.
func (r *chaosRig) setFaults(f chaos.Faults) {
	for _, in := range r.ctlIn {
		in.SetFaults(f)
	}
	for _, n := range r.nodes {
		n.in.SetFaults(f)
	}
}

func (r *chaosRig) stats() (ctl, nodes chaos.Stats) {
	for _, in := range r.ctlIn {
		ctl = ctl.Add(in.Stats())
	}
	for _, n := range r.nodes {
		nodes = nodes.Add(n.in.Stats())
	}
	return ctl, nodes
}

// stop kills every component.
func (r *chaosRig) stop() {
	for _, p := range r.ctls {
		killed(r.t, "controller", p.Kill())
	}
	for _, n := range r.nodes {
		killed(r.t, "watcher", n.proc.Kill())
	}
}

// killed logs what Run returned when it was killed: an instance killed while it starts may
// return the cancellation or the refused connection, which is the kill's doing.
func killed(t *testing.T, what string, err error) {
	if err != nil {
		t.Logf("%s killed: Run returned %v", what, err)
	}
}

// populate creates the first 60 endpoints of every namespace.
func (r *chaosRig) populate(ctx context.Context) {
	for _, ns := range r.nss {
		r.e.createCEPs(ctx, ns, "ep", 60, 4)
	}
}

// churn creates, deletes and changes (identity or address) random endpoints through the truth
// client until ctx ends, about 40 operations a second. Errors are ignored: an operation refused
// while the API server is down simply did not happen.
func (r *chaosRig) churn(ctx context.Context, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	for ctx.Err() == nil {
		ns, i := r.nss[rng.IntN(len(r.nss))], rng.IntN(r.names)
		name := fmt.Sprintf("ep-%d", i)
		api := r.e.c.CiliumEndpoints(ns)
		cur, err := api.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = api.Create(ctx, newCEP(ns, name, int64(1000+rng.IntN(4)), rng.IntN(1<<16)), metav1.CreateOptions{})
		case err != nil:
		case rng.IntN(10) < 4:
			err = api.Delete(ctx, name, metav1.DeleteOptions{})
		default:
			if rng.IntN(2) == 0 {
				cur.Status.Identity = &ciliumv2.EndpointIdentity{ID: int64(1000 + rng.IntN(4))}
			} else {
				cur.Status.Networking.Addressing[0].IPV4 = fmt.Sprintf("10.%d.%d.%d", 100+rng.IntN(100), rng.IntN(256), rng.IntN(256))
			}
			_, err = api.Update(ctx, cur, metav1.UpdateOptions{})
		}
		if err == nil {
			r.ops.Add(1)
		}
		time.Sleep(time.Duration(15+rng.IntN(10)) * time.Millisecond)
	}
}

// check returns every invariant that does not hold now.
func (r *chaosRig) check(ctx context.Context) ([]string, error) {
	st, err := r.e.read(ctx)
	if err != nil {
		return nil, err
	}
	out := violations(st, r.max)
	for i, p := range r.ctls {
		ctl, ok := p.Current()
		if !ok {
			continue
		}
		s := ctl.Status()
		if s.StandingBy != "" {
			// A stand-by writes nothing; its differences from the holder's slices are expected.
			if !s.Synced {
				out = append(out, fmt.Sprintf("controller %d (standing by): not synced", i))
			}
			continue
		}
		if !s.Synced || s.OutOfSync > 0 || s.QueuePriority+s.QueueStandard > 0 {
			out = append(out, fmt.Sprintf("controller %d: synced %v, %d slices out of sync, %d queued", i, s.Synced, s.OutOfSync, s.QueuePriority+s.QueueStandard))
		}
	}
	want := map[string]*slicer.Endpoint{}
	for i := range st.ceps {
		core, ready, err := slicer.CoreEndpointFromCEP(&st.ceps[i])
		if err == nil && ready && inNS(st.ceps[i].Namespace, r.nss) {
			ep := &slicer.Endpoint{Namespace: st.ceps[i].Namespace, CoreCiliumEndpoint: core}
			want[ep.Key()] = ep
		}
	}
	for i, n := range r.nodes {
		w, ok := n.proc.Current()
		if !ok || !w.Status().Synced {
			out = append(out, fmt.Sprintf("node %d not running or not synced", i))
			continue
		}
		got := map[string]*slicer.Endpoint{}
		for _, ep := range w.List() {
			if inNS(ep.Namespace, r.nss) {
				got[ep.Key()] = &ep
			}
		}
		n.mu.Lock()
		rec := n.rec
		n.mu.Unlock()
		rec.mu.Lock()
		replayed := map[string]*slicer.Endpoint{}
		for k, v := range rec.view {
			if inNS(v.Namespace, r.nss) {
				replayed[k] = v
			}
		}
		rec.mu.Unlock()
		out = append(out, viewDiff(fmt.Sprintf("node %d view", i), want, got)...)
		out = append(out, viewDiff(fmt.Sprintf("node %d handler", i), want, replayed)...)
	}
	return out, nil
}

func viewDiff(what string, want, got map[string]*slicer.Endpoint) []string {
	var out []string
	for k, w := range want {
		switch g := got[k]; {
		case g == nil:
			out = append(out, fmt.Sprintf("%s lacks %s", what, k))
		case !equality.Semantic.DeepEqual(w, g):
			out = append(out, fmt.Sprintf("%s has stale %s", what, k))
		}
	}
	for k := range got {
		if want[k] == nil {
			out = append(out, fmt.Sprintf("%s holds deleted %s", what, k))
		}
	}
	return out
}

// converge turns the faults off, waits (at most 60 s) for every invariant to hold, fails the
// test with what does not, and returns the time it took.
func (r *chaosRig) converge(ctx context.Context) time.Duration {
	r.t.Helper()
	r.setFaults(chaos.Faults{})
	took, v := chaos.Await(ctx, 60*time.Second, 100*time.Millisecond, r.check)
	if len(v) > 0 {
		if len(v) > 15 {
			v = append(v[:15], fmt.Sprintf("... and %d more", len(v)-15))
		}
		r.t.Fatalf("no convergence in %s:\n%s", took.Round(time.Millisecond), strings.Join(v, "\n"))
	}
	return took
}

// finish stops everything, checks the event streams and goroutines, and logs the run.
func (r *chaosRig) finish(took time.Duration) {
	r.t.Helper()
	ctlStats, nodeStats := r.stats()
	var writes, conflicts, failed int64
	for _, p := range r.ctls {
		if c, ok := p.Current(); ok {
			s := c.Status()
			writes += writesOf(s)
			conflicts += s.Conflicts
			failed += s.FailedSyncs
		}
	}
	r.stop()
	for i, n := range r.nodes {
		n.mu.Lock()
		for _, rec := range n.all {
			rec.mu.Lock()
			for _, v := range rec.violations {
				r.t.Errorf("node %d event stream: %s", i, v)
			}
			rec.mu.Unlock()
		}
		n.mu.Unlock()
	}
	if err := goleak.Find(r.leaks...); err != nil {
		r.t.Errorf("goroutines left after every component stopped: %v", err)
	}
	r.t.Logf("converged %s after the faults stopped; %d churn operations", took.Round(time.Millisecond), r.ops.Load())
	r.t.Logf("controller (running instance): %d writes, %d conflicts, %d failed syncs; injected %s", writes, conflicts, failed, ctlStats)
	r.t.Logf("nodes: source switches %v; injected %s", r.switches.snapshot(), nodeStats)
	for i, p := range r.ctls {
		if n, err := p.Crashes(); n > 0 {
			r.t.Logf("controller %d: %d crashes (Run returned by itself), last: %v", i, n, err)
		}
	}
	for i, n := range r.nodes {
		if c, err := n.proc.Crashes(); c > 0 {
			r.t.Logf("node %d: %d crashes, last: %v", i, c, err)
		}
	}
}

func writesOf(s slicer.Status) int64 { return s.Creates + s.Updates + s.Deletes }

// runChurn churns for d, calling at(elapsed) every 100 ms from another goroutine so that the
// scenario can inject its event.
func (r *chaosRig) runChurn(ctx context.Context, d time.Duration, at func(time.Duration)) {
	churnCtx, stop := context.WithTimeout(ctx, d)
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { r.churn(churnCtx, 1) })
	wg.Go(func() { r.churn(churnCtx, 2) })
	start := time.Now()
	for churnCtx.Err() == nil && at != nil {
		at(time.Since(start))
		select {
		case <-churnCtx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	wg.Wait()
}

// (a) 10 % errors, latency, timeouts and watch cuts for the whole run.
func TestChaosErrorsDuringChurn(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	r := newChaosRig(t, e, api(t), "errors")
	r.controller(chaosFaults(1))
	for i := range 3 {
		r.node(chaosFaults(int64(10 + i)))
	}
	r.populate(ctx)
	r.runChurn(ctx, churnTime(), nil)
	r.finish(r.converge(ctx))
}

// (b) The API server restarts in the middle of the churn (etcd kept); background faults on.
func TestChaosAPIServerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own control plane")
	}
	api(t) // skip without binaries
	crds, err := slicer.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	// envtest logs through controller-runtime's logger, which complains with a stack trace
	// when nobody set it this long after the process started.
	ctrllog.SetLogger(logr.Discard())
	cp := testenv.New(t, testenv.Options{CRDs: crds})
	c, err := slicer.NewClient(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{tb: t, c: c}
	ctx := t.Context()
	r := newChaosRig(t, e, cp.Config, "restart")
	r.controller(chaosFaults(2))
	for i := range 2 {
		r.node(chaosFaults(int64(20 + i)))
	}
	r.populate(ctx)
	var down time.Duration
	restarted := false
	r.runChurn(ctx, churnTime(), func(elapsed time.Duration) {
		if restarted || elapsed < churnTime()/3 {
			return
		}
		restarted = true
		start := time.Now()
		if err := cp.RestartAPIServer(); err != nil {
			t.Error(err)
		}
		down = time.Since(start)
	})
	took := r.converge(ctx)
	t.Logf("API server restart took %s", down.Round(time.Millisecond))
	r.finish(took)
}

// (c) The controller is killed at random points (its connection cut first, so it dies without
// a last write) and restarted after a random pause; one node's watcher is killed and restarted
// too (a restarted agent starts from an empty view). Background faults on.
func TestChaosControllerKilled(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	r := newChaosRig(t, e, api(t), "kills")
	ctl := r.controller(chaosFaults(3))
	for i := range 2 {
		r.node(chaosFaults(int64(30 + i)))
	}
	r.populate(ctx)
	rng := rand.New(rand.NewPCG(3, 3))
	d := churnTime()
	var kills []time.Duration
	for range 4 {
		kills = append(kills, time.Duration(rng.Int64N(int64(d*9/10))))
	}
	nodeKilled := false
	var events []string
	r.runChurn(ctx, d, func(elapsed time.Duration) {
		for i, at := range kills {
			if at < 0 || elapsed < at {
				continue
			}
			kills[i] = -1
			pause := time.Duration(rng.Int64N(int64(1500 * time.Millisecond)))
			killed(t, "controller", ctl.Kill())
			time.Sleep(pause)
			if _, err := ctl.Start(); err != nil {
				t.Fatal(err)
			}
			events = append(events, fmt.Sprintf("killed at %s, down %s", elapsed.Round(time.Millisecond), pause.Round(time.Millisecond)))
		}
		if !nodeKilled && elapsed >= d/2 {
			nodeKilled = true
			killed(t, "watcher", r.nodes[1].proc.Kill())
			time.Sleep(500 * time.Millisecond)
			if _, err := r.nodes[1].proc.Start(); err != nil {
				t.Fatal(err)
			}
		}
	})
	took := r.converge(ctx)
	t.Logf("controller %s", strings.Join(events, "; "))
	r.finish(took)
}

// (d) A second controller runs beside the first, without leader election, from a quarter of the
// churn on. The heartbeat Lease is a single-writer guard: the second finds it held and stands by
// (computes, writes nothing), so the two never fight; while nothing changes, the stand-by writes
// nothing, no endpoint is missing from the slices and no node sees a delete. Then the holder is
// killed without a goodbye (its connection cut first): the stand-by must take the guard once the
// Lease expires (3 × HeartbeatInterval), re-list, and converge alone. Background faults on
// during the churn.
func TestChaosTwoControllers(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	r := newChaosRig(t, e, api(t), "two")
	first := r.controller(chaosFaults(4))
	for i := range 2 {
		r.node(chaosFaults(int64(40 + i)))
	}
	r.populate(ctx)
	var second *chaos.Proc[*slicer.Controller]
	r.runChurn(ctx, churnTime(), func(elapsed time.Duration) {
		if second == nil && elapsed >= churnTime()/4 {
			second = r.controller(chaosFaults(5))
		}
	})
	// Quiet overlap: faults off, no endpoint changes.
	r.setFaults(chaos.Faults{})
	if took, v := chaos.Await(ctx, 30*time.Second, 100*time.Millisecond, r.check); len(v) > 0 {
		t.Fatalf("two controllers did not converge in %s: %v", took, v)
	}
	// Exactly one holds the guard; under the faults it may have moved to the second controller.
	fc, _ := first.Current()
	sc, _ := second.Current()
	holder, standby, holderProc := fc, sc, first
	if fc.Status().StandingBy != "" {
		holder, standby, holderProc = sc, fc, second
	}
	if holder.Status().StandingBy != "" || standby.Status().StandingBy == "" {
		t.Fatalf("want exactly one controller standing by: first %q, second %q",
			fc.Status().StandingBy, sc.Status().StandingBy)
	}
	q := r.quiet(ctx, 3*time.Second)
	t.Logf("two controllers, %s without endpoint changes: writes %v; endpoints missing from every slice in %d of %d samples; node events: %d adds, %d deletes",
		q.d, q.writes, q.missingSamples, q.samples, q.nodeAdds, q.nodeDeletes)
	standbyWrites := q.writes[1]
	if standby == fc {
		standbyWrites = q.writes[0]
	}
	if standbyWrites != 0 || q.missingSamples != 0 || q.nodeDeletes != 0 {
		t.Errorf("the stand-by wrote %d times, endpoints were missing in %d samples, nodes saw %d deletes; want 0, 0, 0",
			standbyWrites, q.missingSamples, q.nodeDeletes)
	}
	// The holder dies; the stand-by takes over and must converge alone, with new changes too.
	killed(t, "the controller holding the guard", holderProc.Kill())
	e.createCEPs(ctx, r.nss[0], "after", 3, 1)
	took := r.converge(ctx)
	if standby.Status().StandingBy != "" {
		t.Errorf("the stand-by still stands by after the holder died: %+v", standby.Status())
	}
	r.finish(took)
}

// TestChaosSliceDeletedDuringWatchGap: a slice the controller wrote and that another client
// deleted while the controller's slice watch was down was once believed to exist for ever (the
// informer never saw the object, so its re-list reported no deletion, and the anti-entropy pass
// compared with that same belief). The anti-entropy pass now re-lists the slices from the API
// server; with a 2 s period the slice must come back.
func TestChaosSliceDeletedDuringWatchGap(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	r := newChaosRig(t, e, api(t), "gap")
	r.resync = 2 * time.Second
	ctl := r.controller(chaos.Faults{})
	e.createCEPs(ctx, r.nss[0], "ep", 5, 1)
	if took, v := chaos.Await(ctx, 30*time.Second, 50*time.Millisecond, r.check); v != nil {
		t.Fatalf("no convergence in %s: %v", took, v)
	}
	// The slice informer goes blind (its lists and watches fail, its open watch is cut); the
	// controller's writes and reads of single slices still pass.
	blind := func(req *http.Request) bool {
		return req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/ciliumendpointslices")
	}
	in := r.ctlIn[0]
	in.SetFaults(chaos.Faults{ErrorRate: 1, InternalErrorWeight: 1, Only: blind})
	in.SetDown(true)
	in.SetDown(false)
	e.createCEPs(ctx, r.nss[1], "x", 1, 1)
	var name string
	chaos.Await(ctx, 10*time.Second, 20*time.Millisecond, func(ctx context.Context) ([]string, error) {
		st, err := e.read(ctx)
		if s := slicesOf(st, r.nss[1]); err == nil && len(s) > 0 {
			name = s[0].Name
			return nil, nil
		}
		return []string{"no slice yet"}, err
	})
	if err := e.c.CiliumEndpointSlices().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	in.SetFaults(chaos.Faults{})
	took, v := chaos.Await(ctx, 20*time.Second, 100*time.Millisecond, r.check)
	if len(v) > 0 {
		c, _ := ctl.Current()
		t.Errorf("slice %s deleted during the watch outage: not repaired in %s (controller: %d slices out of sync): %v",
			name, took.Round(time.Millisecond), c.Status().OutOfSync, v)
	}
	r.finish(took)
}

// quietStats is what happened while no endpoint changed.
type quietStats struct {
	d                                   time.Duration
	writes                              [2]int64
	samples, missingSamples, maxMissing int
	distinctMissing                     int
	nodeAdds, nodeDeletes               int64
	sources                             []slicer.Source
}

// quiet samples the slices every 100 ms for d while nothing changes the endpoints, and counts
// the controllers' writes, the endpoints missing from every slice and the node events.
func (r *chaosRig) quiet(ctx context.Context, d time.Duration) quietStats {
	q := quietStats{d: d}
	status := func() (w [2]int64, adds, deletes int64) {
		for i, p := range r.ctls[:2] {
			if c, ok := p.Current(); ok {
				w[i] = writesOf(c.Status())
			}
		}
		for _, n := range r.nodes {
			if w, ok := n.proc.Current(); ok {
				s := w.Status()
				adds, deletes = adds+s.Adds, deletes+s.Deletes
			}
		}
		return w, adds, deletes
	}
	w0, a0, d0 := status()
	missing := map[string]bool{}
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		st, err := r.e.read(ctx)
		if err != nil {
			continue
		}
		q.samples++
		n := 0
		for _, v := range violations(st, r.max) {
			if key, ok := strings.CutPrefix(v, "endpoint "); ok && strings.HasSuffix(key, " in no slice") {
				n++
				missing[strings.TrimSuffix(key, " in no slice")] = true
			}
		}
		if n > 0 {
			q.missingSamples++
		}
		q.maxMissing = max(q.maxMissing, n)
	}
	w1, a1, d1 := status()
	for _, n := range r.nodes {
		if w, ok := n.proc.Current(); ok {
			q.sources = append(q.sources, w.Status().Source)
		}
	}
	q.writes = [2]int64{w1[0] - w0[0], w1[1] - w0[1]}
	q.nodeAdds, q.nodeDeletes = a1-a0, d1-d0
	q.distinctMissing = len(missing)
	return q
}
