package slicer_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/ceskit/ceskit/slicer"
	"github.com/ceskit/ceskit/slicer/ciliumv2"
	"github.com/ceskit/ceskit/slicer/ciliumv2alpha1"
)

// env is one test's view of the shared API server. Its cleanup deletes every CiliumEndpoint,
// Pod and slice the test left, so tests do not see each other's objects.
type env struct {
	tb testing.TB
	c  *slicer.Client
	mu sync.Mutex
	ns []string
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	c, err := slicer.NewClient(api(tb))
	if err != nil {
		tb.Fatal(err)
	}
	e := &env{tb: tb, c: c}
	tb.Cleanup(e.cleanup)
	return e
}

func (e *env) cleanup() {
	ctx := context.Background()
	for _, ns := range e.ns {
		_ = e.c.CiliumEndpoints(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
		_ = e.c.Kube.CoreV1().Pods(ns).DeleteCollection(ctx, *metav1.NewDeleteOptions(0), metav1.ListOptions{})
	}
	_ = e.c.CiliumEndpointSlices().DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
	_ = e.c.Kube.CoreV1().Nodes().DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
}

// namespace creates a namespace with a unique name built from prefix.
func (e *env) namespace(prefix string, annotations map[string]string) string {
	e.tb.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-", Annotations: annotations}}
	got, err := e.c.Kube.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{})
	if err != nil {
		e.tb.Fatal(err)
	}
	e.mu.Lock()
	e.ns = append(e.ns, got.Name)
	e.mu.Unlock()
	return got.Name
}

func newCEP(ns, name string, id int64, n int) *ciliumv2.CiliumEndpoint {
	return &ciliumv2.CiliumEndpoint{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Status: ciliumv2.EndpointStatus{
			ID:       int64(n%4000 + 1),
			Identity: &ciliumv2.EndpointIdentity{ID: id},
			Networking: &ciliumv2.EndpointNetworking{
				Addressing: ciliumv2.AddressPairList{{IPV4: fmt.Sprintf("10.%d.%d.%d", n>>16&0xff, n>>8&0xff, n&0xff)}},
				NodeIP:     fmt.Sprintf("192.168.%d.%d", n/250%250, n%250+1),
			},
			State:      "ready",
			NamedPorts: ciliumv2.NamedPorts{{Name: "http", Port: 8080, Protocol: "TCP"}},
		},
	}
}

func (e *env) createCEP(ctx context.Context, cep *ciliumv2.CiliumEndpoint) {
	e.tb.Helper()
	if _, err := e.c.CiliumEndpoints(cep.Namespace).Create(ctx, cep, metav1.CreateOptions{}); err != nil {
		e.tb.Fatalf("create cep %s/%s: %v", cep.Namespace, cep.Name, err)
	}
}

// createCEPs creates n endpoints named prefix-i in ns, with identity 1000+i%ids, in parallel.
func (e *env) createCEPs(ctx context.Context, ns, prefix string, n, ids int) {
	e.tb.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			cep := newCEP(ns, fmt.Sprintf("%s-%d", prefix, i), int64(1000+i%ids), i)
			if _, err := e.c.CiliumEndpoints(ns).Create(ctx, cep, metav1.CreateOptions{}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		e.tb.Fatalf("create ceps: %v", err)
	}
}

func (e *env) mutateCEP(ctx context.Context, ns, name string, f func(*ciliumv2.CiliumEndpoint)) {
	e.tb.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cep, err := e.c.CiliumEndpoints(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		f(cep)
		_, err = e.c.CiliumEndpoints(ns).Update(ctx, cep, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		e.tb.Fatalf("update cep %s/%s: %v", ns, name, err)
	}
}

func (e *env) deleteCEP(ctx context.Context, ns, name string) {
	e.tb.Helper()
	if err := e.c.CiliumEndpoints(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		e.tb.Fatalf("delete cep %s/%s: %v", ns, name, err)
	}
}

// running is a controller started by a test.
type running struct {
	*slicer.Controller
	stop func()
}

func testLogger(tb testing.TB) *slog.Logger {
	if os.Getenv("CESKIT_TEST_LOGS") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// start runs a controller until the test ends (or stop is called) and waits for it to sync.
func (e *env) start(cfg slicer.Config) *running {
	e.tb.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(e.tb)
	}
	ctl, err := slicer.New(e.c, cfg)
	if err != nil {
		e.tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ctl.Run(ctx) }()
	var once sync.Once
	r := &running{Controller: ctl, stop: func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				e.tb.Errorf("controller Run: %v", err)
			}
		})
	}}
	e.tb.Cleanup(r.stop)
	deadline := time.Now().Add(30 * time.Second)
	for !ctl.HasSynced() {
		if time.Now().After(deadline) {
			e.tb.Fatal("controller did not sync in 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return r
}

// state is what the API server holds.
type state struct {
	ceps   []ciliumv2.CiliumEndpoint
	slices []ciliumv2alpha1.CiliumEndpointSlice
}

func (e *env) read(ctx context.Context) (state, error) {
	ceps, err := e.c.CiliumEndpoints("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return state{}, err
	}
	ces, err := e.c.CiliumEndpointSlices().List(ctx, metav1.ListOptions{})
	if err != nil {
		return state{}, err
	}
	return state{ceps: ceps.Items, slices: ces.Items}, nil
}

// violations checks the slice invariants against the endpoints that exist: every live, ready
// endpoint is in exactly one slice with the content it should have; no slice holds a deleted
// endpoint or exceeds max; one namespace per slice. It returns every violation found.
func violations(st state, max int) []string {
	var out []string
	live := map[string]ciliumv2alpha1.CoreCiliumEndpoint{}
	for i := range st.ceps {
		core, ready, err := slicer.CoreEndpointFromCEP(&st.ceps[i])
		if err == nil && ready {
			live[st.ceps[i].Namespace+"/"+st.ceps[i].Name] = core
		}
	}
	seen := map[string][]string{}
	for _, s := range st.slices {
		if s.Namespace == "" {
			out = append(out, fmt.Sprintf("slice %s has no namespace", s.Name))
		}
		if len(s.Endpoints) > max {
			out = append(out, fmt.Sprintf("slice %s holds %d endpoints > %d", s.Name, len(s.Endpoints), max))
		}
		if len(s.Endpoints) == 0 {
			out = append(out, fmt.Sprintf("slice %s is empty", s.Name))
		}
		for _, ep := range s.Endpoints {
			key := s.Namespace + "/" + ep.Name
			want, ok := live[key]
			switch {
			case !ok:
				out = append(out, fmt.Sprintf("slice %s holds deleted endpoint %s", s.Name, key))
			case !equality.Semantic.DeepEqual(want, ep):
				out = append(out, fmt.Sprintf("slice %s holds stale %s: id %d, want %d", s.Name, key, ep.IdentityID, want.IdentityID))
			}
			seen[key] = append(seen[key], s.Name)
		}
	}
	for key := range live {
		switch n := len(seen[key]); {
		case n == 0:
			out = append(out, fmt.Sprintf("endpoint %s in no slice", key))
		case n > 1:
			out = append(out, fmt.Sprintf("endpoint %s in %d slices %v", key, n, seen[key]))
		}
	}
	slices.Sort(out)
	return out
}

// converge waits until the API server's slices satisfy every invariant and the controller has
// nothing left to write, and returns the final state.
func (e *env) converge(ctl *running, max int) state {
	e.tb.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	var last []string
	for {
		st, err := e.read(ctx)
		if err == nil {
			last = violations(st, max)
			status := ctl.Status()
			if len(last) == 0 && status.OutOfSync == 0 && status.QueuePriority+status.QueueStandard == 0 {
				return st
			}
			if len(last) == 0 {
				last = []string{fmt.Sprintf("controller still has %d slices out of sync", status.OutOfSync)}
			}
		}
		if time.Now().After(deadline) {
			if len(last) > 10 {
				last = append(last[:10], fmt.Sprintf("... and %d more", len(last)-10))
			}
			e.tb.Fatalf("slices did not converge in 60s:\n%s", strings.Join(last, "\n"))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func slicesOf(st state, ns string) []ciliumv2alpha1.CiliumEndpointSlice {
	var out []ciliumv2alpha1.CiliumEndpointSlice
	for _, s := range st.slices {
		if s.Namespace == ns {
			out = append(out, s)
		}
	}
	return out
}

func writes(s slicer.Status) int64 { return s.Creates + s.Updates + s.Deletes }

// eventually polls cond every 20 ms for up to 30 s.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not reached in 30s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
