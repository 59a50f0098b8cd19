package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"

	"github.com/ceskit/ceskit/identity"
	idv2 "github.com/ceskit/ceskit/identity/ciliumv2"
	"github.com/ceskit/ceskit/internal/testenv"
	"github.com/ceskit/ceskit/slicer"
	"github.com/ceskit/ceskit/slicer/ciliumv2"
)

// Short leases for the tests: followers take over 2 s after the last renewal they saw, the
// leader stops writing 1.5 s after its last successful renewal.
var testElectionArgs = []string{
	"--leader-elect-lease-duration=2s", "--leader-elect-renew-deadline=1500ms", "--leader-elect-retry-period=300ms",
	"--identity-gc-interval=200ms", "--identity-gc-min-age=1ms", "--identity-gc-grace-period=500ms",
	"--heartbeat-interval=1s",
}

// sections records when each replica's writer section starts and stops, and every start that
// happened while another replica's section ran. Events are recorded under one mutex, so their
// order is the order in which they happened.
type sections struct {
	mu       sync.Mutex
	start    time.Time
	running  map[string]bool
	events   []string
	overlaps []string
}

func newSections() *sections { return &sections{start: time.Now(), running: map[string]bool{}} }

func (s *sections) hook(name string) func(bool) {
	return func(on bool) {
		s.mu.Lock()
		defer s.mu.Unlock()
		at := time.Since(s.start).Round(time.Millisecond)
		if on {
			for other, r := range s.running {
				if r {
					s.overlaps = append(s.overlaps, fmt.Sprintf("t=%s %s started writing while %s was writing", at, name, other))
				}
			}
		}
		s.running[name] = on
		verb := "stopped"
		if on {
			verb = "started"
		}
		s.events = append(s.events, fmt.Sprintf("t=%s %s %s", at, name, verb))
	}
}

// leaders returns the replicas whose section runs.
func (s *sections) leaders() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for name, r := range s.running {
		if r {
			out = append(out, name)
		}
	}
	return out
}

func (s *sections) report(t *testing.T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t.Logf("writer sections:\n  %s", strings.Join(s.events, "\n  "))
	for _, o := range s.overlaps {
		t.Errorf("two writers: %s", o)
	}
}

// partition makes the election Lease unreachable for one replica while set, as a network
// partition between it and the API server would, for that Lease only.
type partition struct {
	rt      http.RoundTripper
	path    string
	blocked *atomic.Bool
}

func (p *partition) RoundTrip(r *http.Request) (*http.Response, error) {
	if p.blocked.Load() && strings.HasSuffix(r.URL.Path, p.path) {
		return nil, errors.New("test partition: election lease unreachable")
	}
	return p.rt.RoundTrip(r)
}

// syncBuffer collects a replica's logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// replica is one operator instance, built and run as main does.
type replica struct {
	name    string
	op      *operator
	mux     http.Handler // --listen's
	admin   http.Handler // --admin-listen's
	cancel  context.CancelFunc
	done    chan error
	blocked atomic.Bool
	logs    syncBuffer
	stopped sync.Once
}

func startReplica(t *testing.T, name string, cfg *rest.Config, args []string, rec *sections) *replica {
	t.Helper()
	o, err := parseFlags(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{name: name, done: make(chan error, 1)}
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return &partition{rt: rt, path: "/leases/" + o.election.Name, blocked: &r.blocked}
	})
	logger := slog.New(slog.NewTextHandler(&r.logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("replica", name)
	if r.op, err = newOperator(cfg, o, logger); err != nil {
		t.Fatal(err)
	}
	r.op.onSection = rec.hook(name)
	r.mux = newMux(r.op, r.op.reg, logger)
	r.admin = newAdminMux(r.op, logger)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- r.op.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the replica and waits for Run to return, once.
func (r *replica) stop(t *testing.T) {
	t.Helper()
	r.stopped.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("%s: Run: %v", r.name, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("%s: Run did not return 30s after cancel", r.name)
		}
		if logs := r.logs.String(); strings.Contains(logs, "forbidden") {
			t.Errorf("%s: a call was forbidden: rbac.yaml misses a permission; logs:\n%s", r.name, logs)
		}
	})
}

func (r *replica) get(t *testing.T, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h := r.mux
	if adminPaths[path] {
		h = r.admin
	}
	h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), "GET", path, nil))
	return rec.Code, rec.Body.String()
}

func (r *replica) status(t *testing.T) replicaStatus {
	t.Helper()
	code, body := r.get(t, "/status")
	var resp statusResponse
	if err := json.Unmarshal([]byte(body), &resp); code != 200 || err != nil {
		t.Fatalf("%s: /status = %d %q (%v)", r.name, code, body, err)
	}
	return resp.Replica
}

// eventually polls cond every 50ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// applyRBAC creates the objects of deploy/rbac.yaml.
func applyRBAC(t *testing.T, kube kubernetes.Interface) {
	t.Helper()
	m := readManifests(t, "rbac.yaml")
	ctx := t.Context()
	create := func(kind, name string, err error) {
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create %s %s: %v", kind, name, err)
		}
	}
	for _, o := range m.serviceAccounts {
		_, err := kube.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		create("ServiceAccount", o.Name, err)
	}
	for _, o := range m.clusterRoles {
		_, err := kube.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
		create("ClusterRole", o.Name, err)
	}
	for _, o := range m.clusterRoleBindings {
		_, err := kube.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
		create("ClusterRoleBinding", o.Name, err)
	}
	for _, o := range m.roles {
		_, err := kube.RbacV1().Roles(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		create("Role", o.Name, err)
	}
	for _, o := range m.roleBindings {
		_, err := kube.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		create("RoleBinding", o.Name, err)
	}
}

func testCEP(ns, name string, id int64, host int) *ciliumv2.CiliumEndpoint {
	return &ciliumv2.CiliumEndpoint{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Status: ciliumv2.EndpointStatus{
			ID:       int64(host),
			Identity: &ciliumv2.EndpointIdentity{ID: id, Labels: []string{"k8s:io.kubernetes.pod.namespace=" + ns}},
			Networking: &ciliumv2.EndpointNetworking{
				Addressing: ciliumv2.AddressPairList{{IPV4: fmt.Sprintf("10.0.0.%d", host)}},
				NodeIP:     "192.168.0.1",
			},
			State: "ready",
		},
	}
}

// TestLeaderElection runs two replicas, as the ServiceAccount of deploy/rbac.yaml and with the
// Deployment's arguments (shorter leases), on one real API server: exactly one writes, the other
// takes over when the leader stops and when the leader is cut off from the Lease, and at no
// time do both run their writers.
func TestLeaderElection(t *testing.T) {
	slicerCRDs, err := slicer.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	idCRDs, err := identity.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	cp := testenv.New(t, testenv.Options{CRDs: append(slicerCRDs, idCRDs...)})
	// client-go (informers, leader election) logs through klog: collect it, to find calls
	// rbac.yaml does not allow.
	var klogs syncBuffer
	klog.SetSlogLogger(slog.New(slog.NewTextHandler(&klogs, nil)))
	t.Cleanup(func() {
		klog.ClearLogger()
		if strings.Contains(klogs.String(), "forbidden") {
			t.Errorf("client-go: a call was forbidden: rbac.yaml misses a permission; logs:\n%s", klogs.String())
		}
	})
	admin, err := slicer.NewClient(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	adminIDs, err := identity.NewClient(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	applyRBAC(t, admin.Kube)
	m := readManifests(t, "deployment.yaml")
	args := append(append([]string{}, m.deployments[0].Spec.Template.Spec.Containers[0].Args...), testElectionArgs...)
	sa := rest.CopyConfig(cp.Config)
	sa.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:kube-system:ceskit-operator"}

	ctx := t.Context()
	const ns = "web"
	if _, err := admin.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const usedID, unusedID = 4242, 4343
	hosts := 0
	addEndpoints := func(n int) {
		t.Helper()
		for range n {
			hosts++
			if _, err := admin.CiliumEndpoints(ns).Create(ctx, testCEP(ns, fmt.Sprintf("pod-%d", hosts), usedID, hosts), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// inSlices waits until every endpoint created so far is listed in a slice.
	inSlices := func(what string) {
		t.Helper()
		eventually(t, 15*time.Second, what, func() bool {
			list, err := admin.CiliumEndpointSlices().List(ctx, metav1.ListOptions{})
			if err != nil {
				return false
			}
			n := 0
			for _, ces := range list.Items {
				n += len(ces.Endpoints)
			}
			return n == hosts
		})
	}
	addEndpoints(3)

	rec := newSections()
	defer rec.report(t)
	a := startReplica(t, "a", sa, args, rec)
	b := startReplica(t, "b", sa, args, rec)
	replicas := map[string]*replica{"a": a, "b": b}

	// Exactly one leads, and writes.
	eventually(t, 15*time.Second, "a leader", func() bool { return len(rec.leaders()) == 1 })
	leader := replicas[rec.leaders()[0]]
	follower := a
	if leader == a {
		follower = b
	}
	inSlices("initial endpoints in slices")
	t.Logf("leader %s (%s), follower %s (%s)", leader.name, leader.op.identity, follower.name, follower.op.identity)

	// Probes and status.
	eventually(t, 15*time.Second, "leader ready", func() bool { code, _ := leader.get(t, "/readyz"); return code == 200 })
	if code, body := leader.get(t, "/readyz"); body != "ok: leading\n" {
		t.Errorf("leader /readyz = %d %q, want 200 \"ok: leading\"", code, body)
	}
	eventually(t, 5*time.Second, "follower observes the leader", func() bool { return follower.status(t).Leader == leader.op.identity })
	if code, body := follower.get(t, "/readyz"); code != 200 || body != "ok: follower standing by; leader: "+leader.op.identity+"\n" {
		t.Errorf("follower /readyz = %d %q, want 200 and standing by", code, body)
	}
	for _, r := range []*replica{leader, follower} {
		if code, body := r.get(t, "/healthz"); code != 200 || body != "ok\n" {
			t.Errorf("%s /healthz = %d %q, want 200 ok", r.name, code, body)
		}
	}
	if st := leader.status(t); !st.Leading || st.Leader != leader.op.identity || st.Mode != modeElected || !st.IdentityGC {
		t.Errorf("leader /status replica = %+v, want leading, leader itself, leader-election, identity gc", st)
	}
	if st := follower.status(t); st.Leading {
		t.Errorf("follower /status replica = %+v, want not leading", st)
	}
	if code, _ := follower.get(t, "/diff"); code != http.StatusServiceUnavailable {
		t.Errorf("follower /diff = %d, want 503", code)
	}
	if code, body := leader.get(t, "/metrics"); code != 200 || !strings.Contains(body, `leader_election_master_status{name="ceskit-operator"} 1`) {
		t.Errorf("leader /metrics = %d, want leader_election_master_status 1", code)
	}

	// The leader's identity GC deletes an unused identity and keeps the one endpoints use.
	for _, id := range []int{usedID, unusedID} {
		cid := &idv2.CiliumIdentity{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint(id)},
			SecurityLabels: map[string]string{"k8s:io.kubernetes.pod.namespace": ns, "k8s:app": fmt.Sprint("app-", id)}}
		if _, err := adminIDs.CiliumIdentities().Create(ctx, cid, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 15*time.Second, "unused identity collected", func() bool {
		_, err := adminIDs.CiliumIdentities().Get(ctx, fmt.Sprint(unusedID), metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	if _, err := adminIDs.CiliumIdentities().Get(ctx, fmt.Sprint(usedID), metav1.GetOptions{}); err != nil {
		t.Errorf("identity in use: %v", err)
	}

	// The leader shuts down: it stops writing, releases the Lease, and the follower takes over
	// at once and keeps the slices right.
	leader.stop(t)
	d := eventually(t, 5*time.Second, "takeover after the leader stopped", func() bool {
		l := rec.leaders()
		return len(l) == 1 && l[0] == follower.name
	})
	t.Logf("takeover after release: %s", d.Round(time.Millisecond))
	addEndpoints(3)
	inSlices("endpoints created after the takeover in slices")

	// A replica restarted from the stopped one stands by; then the leader is cut off from the
	// Lease: it stops writing before its Lease can expire, and the other takes over after it.
	c := startReplica(t, "c", sa, args, rec)
	eventually(t, 5*time.Second, "restarted replica observes the leader", func() bool { return c.status(t).Leader == follower.op.identity })
	if l := rec.leaders(); len(l) != 1 || l[0] != follower.name {
		t.Fatalf("leaders = %q, want only %s", l, follower.name)
	}
	cut := time.Now()
	follower.blocked.Store(true)
	d = eventually(t, 10*time.Second, "takeover from a leader cut off from the Lease", func() bool {
		l := rec.leaders()
		return len(l) == 1 && l[0] == c.name
	})
	t.Logf("takeover after the partition: %s", d.Round(time.Millisecond))
	if d := time.Since(cut); d < 2*time.Second-300*time.Millisecond {
		t.Errorf("takeover %s after the partition, before the lease duration could pass", d)
	}
	if code, body := follower.get(t, "/readyz"); code != 200 || !strings.HasPrefix(body, "ok: follower standing by") {
		t.Errorf("cut-off replica /readyz = %d %q, want a follower", code, body)
	}
	if code, _ := follower.get(t, "/healthz"); code != 200 {
		t.Errorf("cut-off replica /healthz = %d, want 200: its writers stopped in time", code)
	}
	follower.blocked.Store(false)
	addEndpoints(3)
	inSlices("endpoints created after the second takeover in slices")
	eventually(t, 5*time.Second, "healed replica observes the new leader", func() bool { return follower.status(t).Leader == c.op.identity })
	if l := rec.leaders(); len(l) != 1 || l[0] != c.name {
		t.Errorf("leaders after the partition healed = %q, want only %s", l, c.name)
	}
}

// fakeLock records the calls that reach the Lease.
type fakeLock struct {
	resourcelock.Interface // nil: other methods panic
	id                     string
	calls                  []string
	fail                   error
}

func (f *fakeLock) Identity() string { return f.id }
func (f *fakeLock) Update(_ context.Context, ler resourcelock.LeaderElectionRecord) error {
	f.calls = append(f.calls, "update holder="+ler.HolderIdentity)
	return f.fail
}

// TestFencedLock checks that the writers stop before a release reaches the Lease, and that only
// successful renewals by this replica are stamped.
func TestFencedLock(t *testing.T) {
	inner := &fakeLock{id: "me"}
	l := &fencedLock{Interface: inner, beforeRelease: func() { inner.calls = append(inner.calls, "writers stopped") }}
	before := time.Now()
	if err := l.Update(t.Context(), resourcelock.LeaderElectionRecord{HolderIdentity: "me"}); err != nil {
		t.Fatal(err)
	}
	stamp := l.lastRenewal()
	if stamp.Before(before) {
		t.Errorf("renewal stamped %s, before the call at %s", stamp, before)
	}
	inner.fail = errors.New("timeout")
	_ = l.Update(t.Context(), resourcelock.LeaderElectionRecord{HolderIdentity: "me"})
	inner.fail = nil
	_ = l.Update(t.Context(), resourcelock.LeaderElectionRecord{}) // client-go's release
	if got := l.lastRenewal(); !got.Equal(stamp) {
		t.Errorf("stamp moved to %s by a failed renewal or a release", got)
	}
	want := []string{"update holder=me", "update holder=me", "writers stopped", "update holder="}
	if diff := cmp.Diff(want, inner.calls); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

// TestGate checks that stop waits for the section, and that nothing starts after stop.
func TestGate(t *testing.T) {
	var g gate
	var wg sync.WaitGroup
	var returned atomic.Bool
	started := make(chan struct{})
	if !g.start(t.Context(), &wg, func(ctx context.Context) {
		close(started)
		<-ctx.Done()
		time.Sleep(20 * time.Millisecond)
		returned.Store(true)
	}) {
		t.Fatal("start = false on a new gate")
	}
	<-started
	if running, _ := g.state(); !running {
		t.Error("state: not running after start")
	}
	g.stop()
	if !returned.Load() {
		t.Error("stop returned before the section did")
	}
	if running, stopAt := g.state(); running || stopAt.IsZero() {
		t.Errorf("state after stop = %t, %s; want stopped, with the stop time", running, stopAt)
	}
	if g.start(t.Context(), &wg, func(context.Context) { t.Error("section ran after stop") }) {
		t.Error("start = true after stop")
	}
	g.stop() // idempotent
	wg.Wait()

	var never gate
	never.stop() // before any start: nothing to wait for
	if never.start(t.Context(), &wg, func(context.Context) { t.Error("section ran after stop") }) {
		t.Error("start = true after stop")
	}
}
