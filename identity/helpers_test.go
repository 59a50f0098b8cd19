package identity_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ceskit/ceskit/identity"
)

// env is one test's view of the shared API server: its own namespace for claims and holder
// records. Its cleanup deletes every CiliumIdentity and Lease, so tests do not see each other's.
type env struct {
	tb testing.TB
	c  *identity.Client
	ns string
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	c, err := identity.NewClient(api(tb))
	if err != nil {
		tb.Fatal(err)
	}
	ns, err := c.Kube.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "ids-"}}, metav1.CreateOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	e := &env{tb: tb, c: c, ns: ns.Name}
	tb.Cleanup(func() {
		ctx := context.Background()
		_ = c.CiliumIdentities().DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
		_ = c.Kube.CoordinationV1().Leases(e.ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
		_ = c.Kube.CoreV1().Namespaces().Delete(ctx, e.ns, metav1.DeleteOptions{})
	})
	return e
}

// allocator starts a CRDAllocator with cfg (Namespace set to the env's) and waits for its cache;
// it is stopped, and its goroutines awaited, when the test ends.
func (e *env) allocator(cfg identity.Config) *identity.CRDAllocator {
	e.tb.Helper()
	a, stop := e.startAllocator(cfg)
	e.tb.Cleanup(stop)
	return a
}

// startAllocator is allocator with an explicit stop.
func (e *env) startAllocator(cfg identity.Config) (*identity.CRDAllocator, func()) {
	e.tb.Helper()
	cfg.Namespace = e.ns
	a, err := identity.NewCRDAllocator(e.c, cfg)
	if err != nil {
		e.tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			e.tb.Errorf("allocator Run: %v", err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for !a.HasSynced() {
		if time.Now().After(deadline) {
			stop()
			e.tb.Fatal("allocator did not sync within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return a, stop
}

// gc starts a collector with cfg (Namespace set to the env's); passes run only when the test
// calls RunOnce unless cfg.Interval is set.
func (e *env) gc(cfg identity.GCConfig) *identity.GC {
	e.tb.Helper()
	cfg.Namespace = e.ns
	if cfg.Interval == 0 {
		cfg.Interval = time.Hour
	}
	g, err := identity.NewGC(e.c, cfg)
	if err != nil {
		e.tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	e.tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.tb.Errorf("gc Run: %v", err)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !g.HasSynced() {
		if time.Now().After(deadline) {
			e.tb.Fatal("gc did not sync within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return g
}

// identities lists the CiliumIdentities from the API server: ID → label key.
func (e *env) identities() map[identity.NumericIdentity]string {
	e.tb.Helper()
	list, err := e.c.CiliumIdentities().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		e.tb.Fatal(err)
	}
	out := make(map[identity.NumericIdentity]string, len(list.Items))
	for _, cid := range list.Items {
		id, err := identity.ParseNumericIdentity(cid.Name)
		if err != nil {
			e.tb.Fatalf("identity with a bad name %q", cid.Name)
		}
		lbls, err := identity.LabelsFromSecurityLabels(cid.SecurityLabels)
		if err != nil {
			e.tb.Fatalf("identity %s: %v", cid.Name, err)
		}
		out[id] = lbls.Key()
	}
	return out
}

// duplicates counts label keys with more than one CiliumIdentity.
func duplicates(ids map[identity.NumericIdentity]string) (dups int, byKey map[string][]identity.NumericIdentity) {
	byKey = make(map[string][]identity.NumericIdentity)
	for id, k := range ids {
		byKey[k] = append(byKey[k], id)
	}
	for _, v := range byKey {
		if len(v) > 1 {
			dups++
		}
	}
	return dups, byKey
}

// podLabels builds the identity-relevant labels of a pod of app in namespace ns (the default
// filter drops the pod-template-hash label it also carries).
func podLabels(tb testing.TB, ns, app string, nsLabels map[string]string) identity.Labels {
	tb.Helper()
	l, err := identity.PodLabels(ns, map[string]string{"app": app, "pod-template-hash": "abc123"}, nsLabels, "default", "default")
	if err != nil {
		tb.Fatal(err)
	}
	rel, _ := identity.DefaultFilter().Filter(l)
	return rel
}

// waitFor polls cond every 10 ms until it holds or 30 s pass.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// countingMetrics records allocation outcomes and writes.
type countingMetrics struct {
	identity.NopMetrics
	mu       sync.Mutex
	outcomes map[string]int
	writes   map[string]int
	usage    [2]int
}

func newCountingMetrics() *countingMetrics {
	return &countingMetrics{outcomes: map[string]int{}, writes: map[string]int{}}
}

func (m *countingMetrics) Allocation(outcome string, _ time.Duration) {
	m.mu.Lock()
	m.outcomes[outcome]++
	m.mu.Unlock()
}

func (m *countingMetrics) Write(verb, resource string) {
	m.mu.Lock()
	m.writes[verb+" "+resource]++
	m.mu.Unlock()
}

func (m *countingMetrics) Usage(used, size int) {
	m.mu.Lock()
	m.usage = [2]int{used, size}
	m.mu.Unlock()
}

func (m *countingMetrics) snapshot() (outcomes, writes map[string]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.outcomes), maps.Clone(m.writes)
}

func (m *countingMetrics) totalWrites() int {
	_, w := m.snapshot()
	n := 0
	for _, v := range w {
		n += v
	}
	return n
}

func name(prefix string, i int) string { return fmt.Sprintf("%s-%03d", prefix, i) }

// conflictCounter records lost races by kind.
type conflictCounter struct {
	identity.NopMetrics
	mu sync.Mutex
	n  map[string]int
}

func (c *conflictCounter) Conflict(kind string) {
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[kind]++
	c.mu.Unlock()
}

func (c *conflictCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

// multiMetrics sends every measurement to all of its members.
type multiMetrics []identity.Metrics

func (m multiMetrics) Allocation(o string, d time.Duration) {
	for _, x := range m {
		x.Allocation(o, d)
	}
}

func (m multiMetrics) Usage(u, s int) {
	for _, x := range m {
		x.Usage(u, s)
	}
}

func (m multiMetrics) Conflict(k string) {
	for _, x := range m {
		x.Conflict(k)
	}
}

func (m multiMetrics) Write(v, r string) {
	for _, x := range m {
		x.Write(v, r)
	}
}

func (m multiMetrics) GCEntries(s string, n int) {
	for _, x := range m {
		x.GCEntries(s, n)
	}
}

func (m multiMetrics) GCRun(o string, d time.Duration) {
	for _, x := range m {
		x.GCRun(o, d)
	}
}

// coordinationLease is a claim Lease written by hand, to set up protocol states.
type coordinationLease struct {
	ns, key string
	id      identity.NumericIdentity
}

func (c *coordinationLease) create(tb testing.TB, e *env) {
	tb.Helper()
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{
		Name:        identity.ClaimName(c.key),
		Namespace:   c.ns,
		Labels:      map[string]string{identity.LeaseKindLabel: "claim", identity.ClaimIDLabel: c.id.String()},
		Annotations: map[string]string{identity.ClaimKeyAnnotation: c.key},
	}}
	if _, err := e.c.Kube.CoordinationV1().Leases(c.ns).Create(context.Background(), l, metav1.CreateOptions{}); err != nil {
		tb.Fatal(err)
	}
}

func (c *coordinationLease) get(tb testing.TB, e *env) identity.NumericIdentity {
	tb.Helper()
	l, err := e.c.Kube.CoordinationV1().Leases(c.ns).Get(context.Background(), identity.ClaimName(c.key), metav1.GetOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	id, err := identity.ParseNumericIdentity(l.Labels[identity.ClaimIDLabel])
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// syncBuffer is a bytes.Buffer safe for concurrent writes, for captured logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
