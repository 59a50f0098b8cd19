package slicer_test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/ceskit/ceskit/internal/chaos"
	"github.com/ceskit/ceskit/slicer"
	"github.com/ceskit/ceskit/slicer/ciliumv2"
)

// recorder is a Handler that replays the event stream into its own view and records every event
// that contradicts it: an add of a known endpoint, an update or delete of an unknown one, an old
// value that is not the last one reported.
type recorder struct {
	mu         sync.Mutex
	view       map[string]*slicer.Endpoint
	deletes    map[string]int
	updates    map[string]int
	violations []string
	// silent: the view was corrupted behind the handler's back, so repairs contradict it.
	silent bool
}

func newRecorder() *recorder {
	return &recorder{view: map[string]*slicer.Endpoint{}, deletes: map[string]int{}, updates: map[string]int{}}
}

func (r *recorder) EndpointUpdated(old, new *slicer.Endpoint) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := new.Key()
	cur := r.view[key]
	switch {
	case old == nil && cur != nil:
		r.violations = append(r.violations, "duplicate add of "+key)
	case old != nil && !equality.Semantic.DeepEqual(old, cur):
		r.violations = append(r.violations, "update of "+key+" with an old value that was never reported")
	}
	if old != nil {
		r.updates[key]++
	}
	r.view[key] = new
}

func (r *recorder) EndpointDeleted(old *slicer.Endpoint) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := old.Key()
	if r.view[key] == nil {
		r.violations = append(r.violations, "delete of unknown "+key)
	}
	r.deletes[key]++
	delete(r.view, key)
}

// truth is the ground truth: the ready CiliumEndpoints of the given namespaces.
func truth(t *testing.T, e *env, nss ...string) map[string]*slicer.Endpoint {
	t.Helper()
	out := map[string]*slicer.Endpoint{}
	for _, ns := range nss {
		list, err := e.c.CiliumEndpoints(ns).List(t.Context(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range list.Items {
			core, ready, err := slicer.CoreEndpointFromCEP(&list.Items[i])
			if err == nil && ready {
				ep := &slicer.Endpoint{Namespace: ns, CoreCiliumEndpoint: core}
				out[ep.Key()] = ep
			}
		}
	}
	return out
}

// agrees waits until both the watcher's and the recorder's views equal the ground truth of nss.
func agrees(t *testing.T, e *env, w *slicer.Watcher, r *recorder, nss ...string) {
	t.Helper()
	var last string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		want := truth(t, e, nss...)
		got := map[string]*slicer.Endpoint{}
		for _, ep := range w.List() {
			if inNS(ep.Namespace, nss) {
				got[ep.Key()] = &ep
			}
		}
		r.mu.Lock()
		rec := map[string]*slicer.Endpoint{}
		for k, v := range r.view {
			if inNS(v.Namespace, nss) {
				rec[k] = v
			}
		}
		r.mu.Unlock()
		if equality.Semantic.DeepEqual(want, got) && equality.Semantic.DeepEqual(want, rec) {
			return
		}
		last = fmt.Sprintf("truth %d endpoints, watcher %d, handler %d", len(want), len(got), len(rec))
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("node view never matched the CiliumEndpoints: %s", last)
}

func inNS(ns string, nss []string) bool {
	for _, n := range nss {
		if n == ns {
			return true
		}
	}
	return false
}

func startWatcher(t *testing.T, e *env, cfg slicer.WatcherConfig) (*slicer.Watcher, *recorder) {
	t.Helper()
	return startWatcherWith(t, e.c, cfg)
}

// startWatcherWith starts a watcher on client c (say, one behind a fault injector).
func startWatcherWith(t *testing.T, c *slicer.Client, cfg slicer.WatcherConfig) (*slicer.Watcher, *recorder) {
	t.Helper()
	r := newRecorder()
	if cfg.CheckInterval == 0 {
		cfg.CheckInterval = 200 * time.Millisecond
	}
	if cfg.DeleteGrace == 0 {
		cfg.DeleteGrace = 500 * time.Millisecond
	}
	cfg.Logger = testLogger(t)
	w, err := slicer.NewWatcher(c, r, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watcher Run: %v", err)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, v := range r.violations {
			if !r.silent {
				t.Errorf("event stream: %s", v)
			}
		}
	})
	eventually(t, "watcher synced", func() bool { return w.Status().Synced })
	return w, r
}

func TestWatcherFollowsSlicesExactlyOnce(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	ns := e.namespace("node", nil)
	// Identity grouping makes every identity change a move between slices.
	ctl := e.start(slicer.Config{MaxEndpointsPerSlice: 10, GroupByIdentity: true, HeartbeatInterval: time.Second})
	e.createCEPs(ctx, ns, "p", 40, 4)
	e.converge(ctl, 10)
	w, r := startWatcher(t, e, slicer.WatcherConfig{})
	agrees(t, e, w, r, ns)
	if s := w.Status(); s.Source != slicer.SourceSlices || s.Deletes != 0 {
		t.Fatalf("watcher status %+v, want slices and no delete", s)
	}

	// Moves: 20 identity changes; deletes: 5; creates: 5.
	for i := range 20 {
		e.mutateCEP(ctx, ns, fmt.Sprintf("p-%d", i), func(c *ciliumv2.CiliumEndpoint) { c.Status.Identity.ID = 3000 + int64(i%3) })
	}
	for i := 35; i < 40; i++ {
		e.deleteCEP(ctx, ns, fmt.Sprintf("p-%d", i))
	}
	for i := 40; i < 45; i++ {
		e.createCEP(ctx, newCEP(ns, fmt.Sprintf("p-%d", i), 1000, i))
	}
	e.converge(ctl, 10)
	agrees(t, e, w, r, ns)
	time.Sleep(time.Second) // let any late delete surface
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, n := range r.deletes {
		want := 0
		for i := 35; i < 40; i++ {
			if key == fmt.Sprintf("%s/p-%d", ns, i) {
				want = 1
			}
		}
		if n != want {
			t.Errorf("%s deleted %d times, want %d", key, n, want)
		}
	}
	for i := range 20 {
		if n := r.updates[fmt.Sprintf("%s/p-%d", ns, i)]; n != 1 {
			t.Errorf("p-%d: %d updates for one identity change (a move), want 1", i, n)
		}
	}
	ep, ok := w.LookupIP(netip.MustParseAddr("10.0.0.40"))
	if !ok || ep.Name != "p-40" {
		t.Errorf("LookupIP(10.0.0.40) = %v, %v, want p-40", ep.Name, ok)
	}
	if _, ok := w.Get(ns, "p-39"); ok {
		t.Error("deleted endpoint still in the view")
	}
}

func TestWatcherFallsBackAndReturns(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	ns := e.namespace("fallback", nil)
	cfg := slicer.Config{MaxEndpointsPerSlice: 10, HeartbeatInterval: time.Second, ErrorThreshold: 3, RetryMaxDelay: 100 * time.Millisecond}
	ctl := e.start(cfg)
	e.createCEPs(ctx, ns, "p", 30, 3)
	e.converge(ctl, 10)
	w, r := startWatcher(t, e, slicer.WatcherConfig{StaleAfter: 3 * time.Second})
	agrees(t, e, w, r, ns)

	t.Run("controller stopped", func(t *testing.T) {
		ctl.stop()
		eventually(t, "fallback to CiliumEndpoints", func() bool { return w.Status().Source == slicer.SourceCiliumEndpoints })
		if s := w.Status(); !strings.Contains(s.Reason, "stopped") {
			t.Errorf("reason %q", s.Reason)
		}
		// Changes while the slices are frozen still reach the node.
		e.deleteCEP(ctx, ns, "p-0")
		e.createCEP(ctx, newCEP(ns, "late-1", 1000, 99))
		e.mutateCEP(ctx, ns, "p-1", func(c *ciliumv2.CiliumEndpoint) { c.Status.Identity.ID = 4444 })
		agrees(t, e, w, r, ns)
	})
	t.Run("controller restarted", func(t *testing.T) {
		ctl = e.start(cfg)
		e.converge(ctl, 10)
		eventually(t, "back to slices", func() bool { return w.Status().Source == slicer.SourceSlices })
		agrees(t, e, w, r, ns)
	})
	t.Run("degraded", func(t *testing.T) {
		lift := denySlices(t, e, ns)
		e.createCEP(ctx, newCEP(ns, "late-2", 1000, 98))
		eventually(t, "fallback on Degraded", func() bool {
			s := w.Status()
			return s.Source == slicer.SourceCiliumEndpoints && strings.Contains(s.Reason, "degraded")
		})
		agrees(t, e, w, r, ns) // late-2 is in no slice, yet the node has it
		lift()
		e.converge(ctl, 10)
		eventually(t, "back to slices", func() bool { return w.Status().Source == slicer.SourceSlices })
		agrees(t, e, w, r, ns)
	})
	t.Run("stale heartbeat", func(t *testing.T) {
		ctl.stop()
		// A heartbeat that says ready but was last renewed a minute ago.
		old := metav1.NewMicroTime(time.Now().Add(-time.Minute))
		leases := e.c.Kube.CoordinationV1().Leases("kube-system")
		l, err := leases.Get(ctx, "ceskit-slicer", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		l.Annotations[slicer.StateAnnotation] = slicer.StateReady
		l.Spec.RenewTime = &old
		if _, err := leases.Update(ctx, l, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "fallback on a stale heartbeat", func() bool {
			s := w.Status()
			return s.Source == slicer.SourceCiliumEndpoints && strings.Contains(s.Reason, "stale")
		})
		agrees(t, e, w, r, ns)
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := r.deletes[ns+"/p-0"]; n != 1 || len(r.deletes) != 1 {
		t.Errorf("deletes %v, want exactly one of p-0: a switch must delete nothing", r.deletes)
	}
	if s := w.Status(); s.Switches < 4 {
		t.Errorf("%d switches, want at least 4", s.Switches)
	}
}

// TestWatcherReadErrors fails every read of the heartbeat Lease by one watcher's client with a
// 500: below ReadErrorThreshold the watcher stays on the slices and holds deletes (the slices'
// health is unknown), reports them once the reads succeed again, and falls back to
// CiliumEndpoints only when the threshold is reached.
func TestWatcherReadErrors(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	ns := e.namespace("readerr", nil)
	ctl := e.start(slicer.Config{MaxEndpointsPerSlice: 10, HeartbeatInterval: time.Second})
	e.createCEPs(ctx, ns, "p", 20, 2)
	e.converge(ctl, 10)
	leaseGets := func(r *http.Request) bool { return r.Method == http.MethodGet && chaos.Resources("leases")(r) }
	newClient := func(in *chaos.Injector) *slicer.Client {
		c, err := slicer.NewClient(in.WrapConfig(api(t)))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	failing := chaos.Faults{ErrorRate: 1, InternalErrorWeight: 1, Only: leaseGets}

	t.Run("below the threshold", func(t *testing.T) {
		in := chaos.New(chaos.Faults{})
		w, r := startWatcherWith(t, newClient(in), slicer.WatcherConfig{ReadErrorThreshold: 100})
		agrees(t, e, w, r, ns)
		in.SetFaults(failing)
		eventually(t, "3 failed reads in a row", func() bool { return w.Status().ConsecutiveReadErrors >= 3 })
		e.deleteCEP(ctx, ns, "p-0")
		// The controller drops p-0 from its slice; the watcher sees that but may not report
		// the delete while it cannot read the heartbeat.
		eventually(t, "p-0 out of every slice", func() bool {
			st, err := e.read(ctx)
			if err != nil {
				return false
			}
			for _, sl := range st.slices {
				for _, ep := range sl.Endpoints {
					if sl.Namespace == ns && ep.Name == "p-0" {
						return false
					}
				}
			}
			return true
		})
		held := w.Status().ConsecutiveReadErrors
		eventually(t, "5 more failed reads", func() bool { return w.Status().ConsecutiveReadErrors >= held+5 })
		st := w.Status()
		if _, ok := w.Get(ns, "p-0"); !ok || st.Source != slicer.SourceSlices || st.Switches != 0 || st.PendingDeletes == 0 {
			t.Fatalf("while the heartbeat cannot be read: p-0 in view %t, status %+v; want p-0 held, slices, no switch, a pending delete", ok, st)
		}
		in.SetFaults(chaos.Faults{})
		agrees(t, e, w, r, ns)
		st = w.Status()
		if st.ConsecutiveReadErrors != 0 || st.ReadErrors < 8 || st.Switches != 0 {
			t.Errorf("after the reads recovered: %+v; want no consecutive read errors, at least 8 in all, no switch", st)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.deletes) != 1 || r.deletes[ns+"/p-0"] != 1 {
			t.Errorf("deletes %v, want p-0 once", r.deletes)
		}
	})

	t.Run("at the threshold", func(t *testing.T) {
		in := chaos.New(chaos.Faults{})
		w, r := startWatcherWith(t, newClient(in), slicer.WatcherConfig{ReadErrorThreshold: 2})
		agrees(t, e, w, r, ns)
		in.SetFaults(failing)
		eventually(t, "fallback after 2 failed reads", func() bool {
			s := w.Status()
			return s.Source == slicer.SourceCiliumEndpoints && strings.Contains(s.Reason, "cannot read controller heartbeat")
		})
		e.createCEP(ctx, newCEP(ns, "late", 1000, 55))
		agrees(t, e, w, r, ns)
		in.SetFaults(chaos.Faults{})
		eventually(t, "back to slices", func() bool { return w.Status().Source == slicer.SourceSlices })
		agrees(t, e, w, r, ns)
		if s := w.Status(); s.Switches != 2 {
			t.Errorf("%d switches, want 2 (away and back)", s.Switches)
		}
	})
}

// TestWatcherCRDRemoved deletes the CiliumEndpointSlice CRD, which deletes every slice: the node
// must delete nothing, fall back to CiliumEndpoints, and return once the CRD and controller are
// back.
func TestWatcherCRDRemoved(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	ns := e.namespace("nocrd", nil)
	cfg := slicer.Config{HeartbeatInterval: time.Second}
	ctl := e.start(cfg)
	e.createCEPs(ctx, ns, "p", 25, 2)
	e.converge(ctl, 100)
	w, r := startWatcher(t, e, slicer.WatcherConfig{})
	agrees(t, e, w, r, ns)
	ctl.stop()
	ext, err := apiextensionsclient.NewForConfig(api(t))
	if err != nil {
		t.Fatal(err)
	}
	crds := ext.ApiextensionsV1().CustomResourceDefinitions()
	t.Cleanup(func() {
		if err := slicer.InstallCRDs(context.Background(), api(t)); err != nil {
			t.Errorf("restore CRDs: %v", err)
		}
	})
	if err := crds.Delete(ctx, "ciliumendpointslices.cilium.io", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "CRD gone", func() bool {
		_, err := crds.Get(ctx, "ciliumendpointslices.cilium.io", metav1.GetOptions{})
		return err != nil
	})
	eventually(t, "fallback", func() bool { return w.Status().Source == slicer.SourceCiliumEndpoints })
	e.createCEP(ctx, newCEP(ns, "while-gone", 1000, 77))
	agrees(t, e, w, r, ns)
	if err := slicer.InstallCRDs(ctx, api(t)); err != nil {
		t.Fatal(err)
	}
	ctl = e.start(cfg)
	e.converge(ctl, 100)
	eventually(t, "back to slices", func() bool { return w.Status().Source == slicer.SourceSlices })
	agrees(t, e, w, r, ns)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.deletes) != 0 {
		t.Errorf("removing the CRD deleted %d endpoints on the node", len(r.deletes))
	}
}

func TestWatcherConsistencyRepairsDrift(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	ns := e.namespace("drift", nil)
	ctl := e.start(slicer.Config{HeartbeatInterval: time.Second})
	e.createCEPs(ctx, ns, "p", 10, 1)
	e.converge(ctl, 100)
	w, r := startWatcher(t, e, slicer.WatcherConfig{})
	agrees(t, e, w, r, ns)
	if n, err := w.CheckConsistency(ctx); err != nil || n != 0 {
		t.Fatalf("consistent view: drift %d, %v", n, err)
	}
	// A missed update, a missed delete and a missed add.
	wrong, _ := w.Get(ns, "p-1")
	wrong.IdentityID = 1
	w.CorruptViewForTest(ns+"/p-1", &wrong)
	ghost := wrong
	ghost.Name = "ghost"
	w.CorruptViewForTest(ns+"/ghost", &ghost)
	w.CorruptViewForTest(ns+"/p-2", nil)
	r.mu.Lock()
	r.silent = true
	r.mu.Unlock()
	n, err := w.CheckConsistency(ctx)
	if err != nil || n != 3 {
		t.Fatalf("drift = %d, %v, want 3", n, err)
	}
	if s := w.Status(); s.Drift != 3 {
		t.Errorf("status drift %d, want 3", s.Drift)
	}
	wantView := truth(t, e, ns)
	for key, ep := range wantView {
		got, ok := w.Get(ns, ep.Name)
		if !ok || !equality.Semantic.DeepEqual(*ep, got) {
			t.Errorf("%s not repaired", key)
		}
	}
	if _, ok := w.Get(ns, "ghost"); ok {
		t.Error("ghost endpoint not removed")
	}
}

func TestWatcherBadConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg   slicer.WatcherConfig
		field string
	}{
		{slicer.WatcherConfig{HeartbeatLease: "no-slash"}, "HeartbeatLease=no-slash"},
		{slicer.WatcherConfig{HeartbeatLease: "kube-system/Bad_Name"}, "HeartbeatLease"},
		{slicer.WatcherConfig{StaleAfter: time.Millisecond}, "StaleAfter=1ms"},
		{slicer.WatcherConfig{CheckInterval: time.Hour}, "CheckInterval=1h0m0s"},
		{slicer.WatcherConfig{DeleteGrace: -time.Second}, "DeleteGrace=-1s"},
		{slicer.WatcherConfig{ConsistencyPeriod: time.Millisecond}, "ConsistencyPeriod=1ms"},
		{slicer.WatcherConfig{ReadErrorThreshold: 101}, "ReadErrorThreshold=101"},
		{slicer.WatcherConfig{ReadErrorThreshold: -1}, "ReadErrorThreshold=-1"},
	} {
		if _, err := slicer.NewWatcher(&slicer.Client{}, slicer.HandlerFuncs{}, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("NewWatcher(%+v) = %v, want an error naming %s", tc.cfg, err, tc.field)
		}
	}
}

// TestWatcherWithoutCRDRead runs a watcher as a user that may not read CRDs (an embedder's
// narrower role): the deletion check is skipped, not counted as a failed read, so the watcher
// stays on the slices even with ReadErrorThreshold 1.
func TestWatcherWithoutCRDRead(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	ns := e.namespace("nocrdread", nil)
	ctl := e.start(slicer.Config{HeartbeatInterval: time.Second})
	e.createCEPs(ctx, ns, "p", 5, 1)
	e.converge(ctl, 100)
	const user = "ceskit-test-no-crd-read"
	rbac := e.c.Kube.RbacV1()
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: user}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"cilium.io"}, Resources: []string{"ciliumendpointslices", "ciliumendpoints"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get"}},
	}}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: user},
		Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: user}}}
	if _, err := rbac.ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rbac.ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = rbac.ClusterRoleBindings().Delete(context.Background(), user, metav1.DeleteOptions{})
		_ = rbac.ClusterRoles().Delete(context.Background(), user, metav1.DeleteOptions{})
	})
	cfg := api(t)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"system:authenticated"}}
	c, err := slicer.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, "ciliumendpointslices.cilium.io", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("reading the CRD as %s: %v, want Forbidden", user, err)
	}
	w, r := startWatcherWith(t, c, slicer.WatcherConfig{ReadErrorThreshold: 1})
	agrees(t, e, w, r, ns)
	time.Sleep(1500 * time.Millisecond) // several checks at the tests' 200 ms interval
	if s := w.Status(); s.Source != slicer.SourceSlices || s.ReadErrors != 0 || s.Switches != 0 {
		t.Errorf("status %+v: want the slices, no read errors, no switch", s)
	}
}
