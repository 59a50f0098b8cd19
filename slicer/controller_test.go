package slicer_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/retry"

	"github.com/ceskit/ceskit/internal/chaos"
	"github.com/ceskit/ceskit/internal/testenv"
	"github.com/ceskit/ceskit/slicer"
	"github.com/ceskit/ceskit/slicer/ciliumv2"
	"github.com/ceskit/ceskit/slicer/ciliumv2alpha1"
)

func TestEndpointLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	a, b := e.namespace("life-a", nil), e.namespace("life-b", nil)
	const max = 20
	ctl := e.start(slicer.Config{MaxEndpointsPerSlice: max})

	e.createCEPs(ctx, a, "web", 45, 3)
	e.createCEPs(ctx, b, "db", 10, 1)
	st := e.converge(ctl, max)
	if n := len(slicesOf(st, a)); n != 3 {
		t.Errorf("namespace %s: 45 endpoints at %d per slice in %d slices, want 3", a, max, n)
	}
	if n := len(slicesOf(st, b)); n != 1 {
		t.Errorf("namespace %s: %d slices, want 1", b, n)
	}

	t.Run("identity change", func(t *testing.T) {
		before := ctl.Status()
		e.mutateCEP(ctx, a, "web-7", func(c *ciliumv2.CiliumEndpoint) { c.Status.Identity.ID = 777 })
		e.converge(ctl, max)
		if got := writes(ctl.Status()) - writes(before); got != 1 {
			t.Errorf("identity change cost %d writes, want 1", got)
		}
	})
	t.Run("field outside the slice", func(t *testing.T) {
		before := ctl.Status()
		e.mutateCEP(ctx, a, "web-8", func(c *ciliumv2.CiliumEndpoint) { c.Status.State = "regenerating" })
		time.Sleep(200 * time.Millisecond)
		e.converge(ctl, max)
		if got := writes(ctl.Status()) - writes(before); got != 0 {
			t.Errorf("a change that does not reach the slice cost %d writes, want 0", got)
		}
	})
	t.Run("delete", func(t *testing.T) {
		for i := range 10 {
			e.deleteCEP(ctx, a, fmt.Sprintf("web-%d", i))
		}
		e.converge(ctl, max)
	})
	t.Run("empty slices are deleted", func(t *testing.T) {
		for i := range 10 {
			e.deleteCEP(ctx, b, fmt.Sprintf("db-%d", i))
		}
		st := e.converge(ctl, max)
		if n := len(slicesOf(st, b)); n != 0 {
			t.Errorf("namespace %s without endpoints keeps %d slices", b, n)
		}
	})
	s := ctl.Status()
	if s.EchoesSuppressed < writes(s)-s.Deletes {
		t.Errorf("%d echoes suppressed for %d creates and updates: every write's echo must be recognised", s.EchoesSuppressed, writes(s)-s.Deletes)
	}
	if s.Degraded || s.FailedSyncs != 0 {
		t.Errorf("status after a clean run: degraded=%v failed=%d last error %q", s.Degraded, s.FailedSyncs, s.LastError)
	}
}

func TestGroupByIdentityMoves(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	ns := e.namespace("ident", nil)
	const max = 10
	ctl := e.start(slicer.Config{MaxEndpointsPerSlice: max, GroupByIdentity: true})
	e.createCEPs(ctx, ns, "p", 30, 2)
	st := e.converge(ctl, max)
	for _, s := range st.slices {
		for _, ep := range s.Endpoints {
			if ep.IdentityID != s.Endpoints[0].IdentityID {
				t.Fatalf("slice %s mixes identities %d and %d", s.Name, s.Endpoints[0].IdentityID, ep.IdentityID)
			}
		}
	}
	// Moving endpoints between identity groups: watch that no endpoint is ever missing from
	// every slice.
	w, err := e.c.CiliumEndpointSlices().Watch(ctx, metav1.ListOptions{ResourceVersion: ""})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	missing := make(chan string, 1)
	var wg sync.WaitGroup
	wg.Go(func() { watchPresence(w, st.slices, missing) })
	for i := 0; i < 10; i += 2 {
		e.mutateCEP(ctx, ns, fmt.Sprintf("p-%d", i), func(c *ciliumv2.CiliumEndpoint) { c.Status.Identity.ID = 1999 })
	}
	e.converge(ctl, max)
	w.Stop()
	wg.Wait()
	select {
	case key := <-missing:
		t.Errorf("endpoint %s was missing from every slice during a move", key)
	default:
	}
}

// watchPresence replays slice events over an initial state and reports an endpoint that is in no
// slice after an event.
func watchPresence(w watch.Interface, initial []ciliumv2alpha1.CiliumEndpointSlice, missing chan<- string) {
	cur := map[string][]string{}
	count := map[string]int{}
	set := func(name string, eps []string, sign int) {
		for _, k := range eps {
			count[k] += sign
		}
		if sign > 0 {
			cur[name] = eps
		} else {
			delete(cur, name)
		}
	}
	names := func(s *ciliumv2alpha1.CiliumEndpointSlice) []string {
		var out []string
		for _, ep := range s.Endpoints {
			out = append(out, s.Namespace+"/"+ep.Name)
		}
		return out
	}
	for i := range initial {
		set(initial[i].Name, names(&initial[i]), 1)
	}
	for ev := range w.ResultChan() {
		s, ok := ev.Object.(*ciliumv2alpha1.CiliumEndpointSlice)
		if !ok {
			continue
		}
		set(s.Name, cur[s.Name], -1)
		if ev.Type != watch.Deleted {
			set(s.Name, names(s), 1)
		}
		for k, n := range count {
			if n == 0 {
				select {
				case missing <- k:
				default:
				}
			}
		}
	}
}

func TestNamespaceDeletion(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	ns, keep := e.namespace("gone", nil), e.namespace("stay", nil)
	ctl := e.start(slicer.Config{})
	e.createCEPs(ctx, ns, "p", 150, 5)
	e.createCEPs(ctx, keep, "p", 5, 1)
	e.converge(ctl, 100)
	// envtest runs no namespace controller: delete what it would, then the namespace.
	if err := e.c.CiliumEndpoints(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	st := e.converge(ctl, 100)
	if n := len(slicesOf(st, ns)); n != 0 {
		t.Errorf("deleted namespace keeps %d slices", n)
	}
	if n := len(slicesOf(st, keep)); n != 1 {
		t.Errorf("other namespace has %d slices, want 1", n)
	}
}

func TestRestart(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	nss := []string{e.namespace("rs-a", nil), e.namespace("rs-b", nil), e.namespace("rs-c", nil)}
	const max = 25
	cfg := slicer.Config{MaxEndpointsPerSlice: max, WriteQPS: 200}
	for _, ns := range nss {
		e.createCEPs(ctx, ns, "p", 60, 4)
	}
	first := e.start(cfg)
	e.converge(first, max)

	t.Run("mid-churn", func(t *testing.T) {
		churnCtx, stopChurn := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() { churn(churnCtx, e, nss, 60, 400*time.Millisecond) })
		time.Sleep(150 * time.Millisecond)
		first.stop()
		time.Sleep(100 * time.Millisecond)
		second := e.start(cfg)
		time.Sleep(100 * time.Millisecond)
		stopChurn()
		wg.Wait()
		e.converge(second, max)
		second.stop()
	})
	t.Run("converged state costs no write", func(t *testing.T) {
		before, err := e.read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		third := e.start(cfg)
		time.Sleep(500 * time.Millisecond)
		e.converge(third, max)
		if s := third.Status(); writes(s) != 0 {
			t.Errorf("restart on converged state wrote %d times (creates %d, updates %d, deletes %d), want 0", writes(s), s.Creates, s.Updates, s.Deletes)
		}
		after, err := e.read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rv := map[string]string{}
		for _, s := range before.slices {
			rv[s.Name] = s.ResourceVersion
		}
		for _, s := range after.slices {
			if rv[s.Name] != s.ResourceVersion {
				t.Errorf("slice %s rewritten on restart", s.Name)
			}
		}
	})
}

// churn deletes, recreates and relabels random endpoints in nss (named p-0…p-(n-1)) until ctx
// ends or for at most d.
func churn(ctx context.Context, e *env, nss []string, n int, d time.Duration) {
	r := rand.New(rand.NewPCG(1, 2))
	end := time.Now().Add(d)
	for i := 0; ctx.Err() == nil && time.Now().Before(end); i++ {
		ns, name := nss[r.IntN(len(nss))], fmt.Sprintf("p-%d", r.IntN(n))
		api := e.c.CiliumEndpoints(ns)
		switch i % 3 {
		case 0:
			_ = api.Delete(ctx, name, metav1.DeleteOptions{})
		case 1:
			_, _ = api.Create(ctx, newCEP(ns, name, int64(1000+r.IntN(4)), r.IntN(1<<16)), metav1.CreateOptions{})
		default:
			_ = retry.RetryOnConflict(retry.DefaultRetry, func() error {
				c, err := api.Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					return nil
				}
				c.Status.Identity = &ciliumv2.EndpointIdentity{ID: int64(1000 + r.IntN(4))}
				_, err = api.Update(ctx, c, metav1.UpdateOptions{})
				return err
			})
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSecondWriter(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	ns := e.namespace("rival", nil)
	const max = 20
	ctl := e.start(slicer.Config{MaxEndpointsPerSlice: max})
	e.createCEPs(ctx, ns, "p", 60, 3)
	st := e.converge(ctl, max)

	// A rival writer strips entries and injects stale ones while endpoints keep changing. A 409
	// needs the controller to write before it sees the rival's write, which is a race: repeat the
	// (bounded) round until at least one conflict happened.
	for round := 0; round < 5 && ctl.Status().Conflicts == 0; round++ {
		rivalRound(ctx, e, st, ns, uint64(round))
	}
	e.converge(ctl, max)
	s := ctl.Status()
	t.Logf("second writer: %d conflicts, %d updates, %d failed syncs", s.Conflicts, s.Updates, s.FailedSyncs)
	if s.Conflicts == 0 {
		t.Error("no conflict observed: the rival did not race the controller")
	}
	if s.Degraded {
		t.Errorf("degraded after conflicts: %s", s.DegradedReason)
	}
}

// rivalRound runs a rival slice writer and endpoint churn for one second.
func rivalRound(ctx context.Context, e *env, st state, ns string, seed uint64) {
	rivalCtx, stop := context.WithTimeout(ctx, time.Second)
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() {
		r := rand.New(rand.NewPCG(3, seed))
		for i := 0; rivalCtx.Err() == nil && i < 200; i++ {
			name := st.slices[r.IntN(len(st.slices))].Name
			_ = retry.RetryOnConflict(retry.DefaultRetry, func() error {
				s, err := e.c.CiliumEndpointSlices().Get(rivalCtx, name, metav1.GetOptions{})
				if err != nil {
					return nil
				}
				if len(s.Endpoints) > 1 {
					s.Endpoints = s.Endpoints[1:]
				}
				s.Endpoints = append(s.Endpoints, ciliumv2alpha1.CoreCiliumEndpoint{Name: "ghost", IdentityID: 5})
				_, err = e.c.CiliumEndpointSlices().Update(rivalCtx, s, metav1.UpdateOptions{})
				return err
			})
			time.Sleep(2 * time.Millisecond)
		}
	})
	wg.Go(func() { churn(rivalCtx, e, []string{ns}, 60, time.Second) })
	wg.Wait()
}

func TestPriorityNamespaceIsNotStarving(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	flood := e.namespace("flood", map[string]string{slicer.PriorityAnnotation: slicer.PriorityValue})
	quiet := e.namespace("quiet", nil)
	const max = 10
	e.createCEPs(ctx, flood, "p", 300, 1) // 30 priority slices
	e.createCEPs(ctx, quiet, "q", 3, 1)   // 1 standard slice

	w, err := e.c.CiliumEndpointSlices().Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ctl := e.start(slicer.Config{MaxEndpointsPerSlice: max, Workers: 1, WriteQPS: 50, WriteBurst: 1, PriorityWeight: 4})
	pos := 0
	for ev := range w.ResultChan() {
		s, ok := ev.Object.(*ciliumv2alpha1.CiliumEndpointSlice)
		if !ok || ev.Type != watch.Added {
			continue
		}
		pos++
		if s.Namespace == quiet {
			break
		}
	}
	// Strict priority (Cilium) writes the standard slice 31st; 4:1 fair share by the 6th.
	if pos > 6 {
		t.Errorf("standard namespace's slice was the %dth written behind a priority flood, want ≤ 6", pos)
	}
	e.converge(ctl, max)
}

func TestShadowModeWritesNothing(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	ns := e.namespace("shadow", nil)
	e.createCEPs(ctx, ns, "p", 5, 1)
	var ceps []ciliumv2.CiliumEndpoint
	list, err := e.c.CiliumEndpoints(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ceps = list.Items
	// Another operator's slice: p-0…p-3, a stale entry, p-4 missing.
	owned := &ciliumv2alpha1.CiliumEndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "ces-other-owner"}, Namespace: ns}
	for i := range ceps {
		core, _, _ := slicer.CoreEndpointFromCEP(&ceps[i])
		if core.Name != "p-4" {
			owned.Endpoints = append(owned.Endpoints, core)
		}
	}
	owned.Endpoints = append(owned.Endpoints, ciliumv2alpha1.CoreCiliumEndpoint{Name: "stale", IdentityID: 9})
	created, err := e.c.CiliumEndpointSlices().Create(ctx, owned, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctl := e.start(slicer.Config{Shadow: true})
	var diff []slicer.SliceDiff
	eventually(t, "shadow diff", func() bool { diff = ctl.Diff(); return len(diff) == 1 })
	want := slicer.SliceDiff{Slice: "ces-other-owner", Namespace: ns, Op: "update", Added: []string{"p-4"}, Removed: []string{"stale"}}
	if fmt.Sprint(diff[0]) != fmt.Sprint(want) {
		t.Errorf("diff = %+v, want %+v", diff[0], want)
	}
	// New endpoints, deletions: still nothing written.
	e.createCEPs(ctx, ns, "n", 3, 1)
	e.deleteCEP(ctx, ns, "p-0")
	time.Sleep(500 * time.Millisecond)
	got, err := e.c.CiliumEndpointSlices().Get(ctx, "ces-other-owner", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != created.ResourceVersion {
		t.Error("shadow mode modified a slice")
	}
	all, err := e.c.CiliumEndpointSlices().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Items) != 1 {
		t.Errorf("shadow mode created slices: %d exist", len(all.Items))
	}
	if s := ctl.Status(); writes(s) != 0 || !s.Shadow {
		t.Errorf("shadow status: %d writes, shadow=%v", writes(s), s.Shadow)
	}
}

func TestBadInput(t *testing.T) {
	t.Run("config", func(t *testing.T) {
		for _, tc := range []struct {
			cfg   slicer.Config
			field string
		}{
			{slicer.Config{MaxEndpointsPerSlice: 1001}, "MaxEndpointsPerSlice=1001"},
			{slicer.Config{MaxEndpointsPerSlice: -1}, "MaxEndpointsPerSlice=-1"},
			{slicer.Config{Source: "kvstore"}, "Source=kvstore"},
			{slicer.Config{Source: slicer.SourcePods}, "IdentityFunc"},
			{slicer.Config{BatchMinDelay: time.Second, BatchMaxDelay: time.Millisecond}, "BatchMaxDelay=1ms"},
			{slicer.Config{WriteQPS: -5}, "WriteQPS=-5"},
			{slicer.Config{RateLimits: []slicer.RateLimitStep{{Nodes: 10, Limit: 5, Burst: 5}}}, "RateLimits"},
			{slicer.Config{RateLimits: []slicer.RateLimitStep{{Nodes: 0, Limit: 0, Burst: 5}}}, "RateLimits[nodes=0].limit=0"},
			{slicer.Config{Workers: 65}, "Workers=65"},
			{slicer.Config{PriorityNamespaces: []string{"a", ""}}, "PriorityNamespaces[1]"},
			{slicer.Config{PriorityWeight: 101}, "PriorityWeight=101"},
			{slicer.Config{ErrorThreshold: -2}, "ErrorThreshold=-2"},
			{slicer.Config{ConflictRetries: 21}, "ConflictRetries=21"},
			{slicer.Config{ResyncPeriod: time.Millisecond}, "ResyncPeriod=1ms"},
			{slicer.Config{CompactionThreshold: 1.5}, "CompactionThreshold=1.5"},
		} {
			_, err := slicer.New(&slicer.Client{}, tc.cfg)
			if !errors.Is(err, slicer.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("New(%+v) = %v, want an invalid-config error naming %s", tc.cfg, err, tc.field)
			}
		}
		if _, err := slicer.ParseRateLimits(`[{"nodes":0,"limit":"ten"}]`); !errors.Is(err, slicer.ErrInvalidConfig) {
			t.Errorf("ParseRateLimits of a bad table: %v", err)
		}
		steps, err := slicer.ParseRateLimits(`[{"nodes":0,"limit":10,"burst":20},{"nodes":100,"limit":50,"burst":100}]`)
		if err != nil || fmt.Sprint(steps) != fmt.Sprint(slicer.DefaultRateLimits) {
			t.Errorf("ParseRateLimits of Cilium's Helm default = %v, %v", steps, err)
		}
	})

	t.Run("malformed endpoints", func(t *testing.T) {
		e := newEnv(t)
		ctx := t.Context()
		ns := e.namespace("bad", nil)
		ctl := e.start(slicer.Config{})
		e.createCEPs(ctx, ns, "ok", 3, 1)
		bad := newCEP(ns, "bad-ip", 1000, 9)
		bad.Status.Networking.Addressing[0].IPV4 = "999.1.1.1"
		e.createCEP(ctx, bad)
		e.converge(ctl, 100)
		st := ctl.Status()
		if len(st.InvalidEndpoints) != 1 || !strings.Contains(st.InvalidEndpoints[0], "status.networking.addressing[0].ipv4") || !strings.Contains(st.InvalidEndpoints[0], "999.1.1.1") {
			t.Errorf("invalid endpoints = %q, want one naming the field and value", st.InvalidEndpoints)
		}
		// A placed endpoint that turns malformed keeps its last valid entry.
		e.mutateCEP(ctx, ns, "ok-1", func(c *ciliumv2.CiliumEndpoint) {
			c.Status.Networking.Addressing[0].IPV4 = "not-an-ip"
			c.Status.Identity.ID = 4321
		})
		eventually(t, "second invalid endpoint", func() bool { return len(ctl.Status().InvalidEndpoints) == 2 })
		time.Sleep(200 * time.Millisecond)
		list, err := e.c.CiliumEndpointSlices().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, s := range list.Items {
			for _, ep := range s.Endpoints {
				if ep.Name == "ok-1" {
					found = ep.IdentityID == 1000 && ep.Networking.Addressing[0].IPV4 != "not-an-ip"
				}
			}
		}
		if !found {
			t.Error("endpoint with a malformed update lost its last valid slice entry")
		}
	})
}

func TestManualResyncCompacts(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	ns := e.namespace("compact", nil)
	const max = 10
	ctl := e.start(slicer.Config{MaxEndpointsPerSlice: max, ResyncPeriod: time.Hour})
	e.createCEPs(ctx, ns, "p", 50, 2)
	e.converge(ctl, max)
	for i := range 50 {
		if i%5 != 0 {
			e.deleteCEP(ctx, ns, fmt.Sprintf("p-%d", i))
		}
	}
	st := e.converge(ctl, max)
	if n := len(slicesOf(st, ns)); n < 2 {
		t.Fatalf("after deleting 40 of 50: %d slices; the test needs sparse slices kept until a resync", n)
	}
	n, err := ctl.Resync(ctx, "no-such-namespace")
	if err != nil || n != 0 {
		t.Errorf("resync of an unknown namespace = %d, %v", n, err)
	}
	// Annotating the namespace triggers a resync, which compacts it.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		nso, err := e.c.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if nso.Annotations == nil {
			nso.Annotations = map[string]string{}
		}
		nso.Annotations[slicer.ResyncAnnotation] = "1"
		_, err = e.c.Kube.CoreV1().Namespaces().Update(ctx, nso, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "compaction", func() bool {
		st, err := e.read(ctx)
		return err == nil && len(slicesOf(st, ns)) == 1 && len(violations(st, max)) == 0
	})
	e.converge(ctl, max)
	if n, err := ctl.Resync(ctx, ns); err != nil || n != 0 {
		t.Errorf("resync of a converged namespace = %d, %v, want 0", n, err)
	}
}

func TestSlimModeFromPods(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	ns := e.namespace("slim", nil)
	identity := func(p *corev1.Pod) (int64, bool) {
		switch p.Labels["app"] {
		case "web":
			return 2001, true
		case "db":
			return 2002, true
		}
		return 0, false
	}
	ctl := e.start(slicer.Config{Source: slicer.SourcePods, IdentityFunc: identity})
	mk := func(name, app, ip string, hostNet bool) {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": app}},
			Spec: corev1.PodSpec{HostNetwork: hostNet, ServiceAccountName: "sa", Containers: []corev1.Container{{
				Name: "c", Image: "x", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 80}},
			}}},
		}
		got, err := e.c.Kube.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got.Status = corev1.PodStatus{Phase: corev1.PodRunning, HostIP: "192.168.1.1", PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
		if _, err := e.c.Kube.CoreV1().Pods(ns).UpdateStatus(ctx, got, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mk("web-1", "web", "10.1.0.1", false)
	mk("db-1", "db", "10.1.0.2", false)
	mk("unknown-1", "batch", "10.1.0.3", false) // identity unknown: pending
	mk("host-1", "web", "192.168.1.1", true)    // host network: never in a slice
	var got []ciliumv2alpha1.CoreCiliumEndpoint
	eventually(t, "slim slice", func() bool {
		list, err := e.c.CiliumEndpointSlices().List(ctx, metav1.ListOptions{})
		if err != nil || len(list.Items) != 1 {
			return false
		}
		got = list.Items[0].Endpoints
		return len(got) == 2
	})
	if got[0].Name != "db-1" || got[0].IdentityID != 2002 || got[1].Name != "web-1" || got[1].IdentityID != 2001 ||
		got[1].Networking.Addressing[0].IPV4 != "10.1.0.1" || got[1].ServiceAccount != "sa" || got[1].PodUID == "" ||
		len(got[1].NamedPorts) != 1 || got[1].NamedPorts[0].Port != 80 {
		t.Errorf("slim slice entries = %+v", got)
	}
	if s := ctl.Status(); s.PendingEndpoints != 2 {
		t.Errorf("pending endpoints = %d, want 2 (unknown identity, host network)", s.PendingEndpoints)
	}
}

func TestRunWithoutCRDs(t *testing.T) {
	cp := testenv.New(t, testenv.Options{}) // a control plane without Cilium's CRDs
	c, err := slicer.NewClient(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := slicer.New(c, slicer.Config{})
	if err != nil {
		t.Fatal(err)
	}
	err = ctl.Run(t.Context())
	if !errors.Is(err, slicer.ErrCRDMissing) || !strings.Contains(err.Error(), "ciliumendpointslices.cilium.io/v2alpha1") || !strings.Contains(err.Error(), "ciliumendpoints.cilium.io/v2 ") {
		t.Errorf("Run without CRDs = %v, want ErrCRDMissing naming the resource", err)
	}
}

// TestRunRetriesDiscovery fails the controller's discovery reads with 500s: Run must keep
// retrying instead of returning, and start once discovery answers.
func TestRunRetriesDiscovery(t *testing.T) {
	in := chaos.New(chaos.Faults{ErrorRate: 1, InternalErrorWeight: 1, Only: func(r *http.Request) bool {
		return strings.HasPrefix(r.URL.Path, "/apis/cilium.io/")
	}})
	c, err := slicer.NewClient(in.WrapConfig(api(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := slicer.New(c, slicer.Config{Logger: testLogger(t), HeartbeatLease: "-"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- ctl.Run(ctx) }()
	eventually(t, "3 failed discovery reads", func() bool { return in.Stats().InternalErrors >= 3 })
	select {
	case err := <-done:
		t.Fatalf("Run returned on a transient discovery error: %v", err)
	default:
	}
	in.SetFaults(chaos.Faults{})
	eventually(t, "synced once discovery answers", ctl.HasSynced)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v after cancel, want nil", err)
	}
}

// TestDegradedAndRecovery makes the API server reject slice writes with a real admission policy:
// the controller must report Degraded after ErrorThreshold failures, keep retrying, and write the
// slice and clear Degraded once the policy is gone.
func TestDegradedAndRecovery(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	ns := e.namespace("denied", nil)
	lift := denySlices(t, e, ns)
	ctl := e.start(slicer.Config{ErrorThreshold: 3, RetryBaseDelay: 5 * time.Millisecond, RetryMaxDelay: 50 * time.Millisecond})
	e.createCEPs(ctx, ns, "p", 3, 1)
	eventually(t, "degraded", func() bool { return ctl.Status().Degraded })
	s := ctl.Status()
	if !strings.Contains(s.LastError, "denied") || s.DegradedReason == "" {
		t.Errorf("degraded status: reason %q, last error %q", s.DegradedReason, s.LastError)
	}
	lift()
	e.converge(ctl, 100)
	if s := ctl.Status(); s.Degraded {
		t.Errorf("still degraded after recovery: %s", s.DegradedReason)
	}
}

// denySlices makes the API server reject slices of namespace ns through a real
// ValidatingAdmissionPolicy, and returns a function that lifts the denial.
func denySlices(t *testing.T, e *env, ns string) (lift func()) {
	t.Helper()
	ctx := t.Context()
	adm := e.c.Kube.AdmissionregistrationV1()
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "deny-" + ns},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{"cilium.io"}, APIVersions: []string{"v2alpha1"}, Resources: []string{"ciliumendpointslices"}},
				},
			}}},
			Validations: []admissionregistrationv1.Validation{{Expression: fmt.Sprintf("object.namespace != %q", ns), Message: "slices of this namespace are denied"}},
		},
	}
	if _, err := adm.ValidatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = adm.ValidatingAdmissionPolicies().Delete(context.Background(), policy.Name, metav1.DeleteOptions{})
	})
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: policy.Name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName: policy.Name, ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
		},
	}
	if _, err := adm.ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Wait until the policy is enforced.
	probe := &ciliumv2alpha1.CiliumEndpointSlice{ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-"}, Namespace: ns, Endpoints: []ciliumv2alpha1.CoreCiliumEndpoint{{Name: "x"}}}
	eventually(t, "admission policy enforced", func() bool {
		_, err := e.c.CiliumEndpointSlices().Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && strings.Contains(err.Error(), "denied")
	})

	return func() {
		if err := adm.ValidatingAdmissionPolicyBindings().Delete(ctx, binding.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func ptr[T any](v T) *T { return &v }
