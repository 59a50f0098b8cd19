package chaos_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ceskit/ceskit/internal/chaos"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeAPI serves one ConfigMap (get, update) and a watch that sends an event every 10 ms. It
// counts the requests that reached it.
type fakeAPI struct {
	*httptest.Server
	hits atomic.Int64
}

func newFakeAPI(t *testing.T) *fakeAPI {
	t.Helper()
	f := &fakeAPI{}
	cm := corev1.ConfigMap{TypeMeta: metav1.TypeMeta{Kind: "ConfigMap", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "ns", ResourceVersion: "1"}}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("watch") == "true" {
			fl := w.(http.Flusher)
			w.WriteHeader(http.StatusOK)
			fl.Flush()
			for i := 0; ; i++ {
				select {
				case <-r.Context().Done():
					return
				case <-time.After(10 * time.Millisecond):
				}
				obj := cm
				obj.ResourceVersion = fmt.Sprint(i + 2)
				_ = json.NewEncoder(w).Encode(metav1.WatchEvent{Type: "MODIFIED", Object: runtimeRaw(t, &obj)})
				fl.Flush()
			}
		}
		_ = json.NewEncoder(w).Encode(&cm)
	}))
	t.Cleanup(f.Close)
	return f
}

func runtimeRaw(t *testing.T, obj any) runtime.RawExtension {
	b, err := json.Marshal(obj)
	if err != nil {
		t.Error(err)
	}
	return runtime.RawExtension{Raw: b}
}

func clientFor(t *testing.T, api *fakeAPI, in *chaos.Injector) *kubernetes.Clientset {
	t.Helper()
	cfg := &rest.Config{Host: api.URL, QPS: -1}
	if in != nil {
		cfg = in.WrapConfig(cfg)
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func getCM(ctx context.Context, c *kubernetes.Clientset) error {
	// No retries, so that a 429 shows instead of being waited out by client-go.
	return c.CoreV1().RESTClient().Get().Namespace("ns").Resource("configmaps").Name("cm").MaxRetries(0).Do(ctx).Error()
}

func updateCM(ctx context.Context, c *kubernetes.Clientset) error {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "ns", ResourceVersion: "1"}}
	return c.CoreV1().RESTClient().Put().Namespace("ns").Resource("configmaps").Name("cm").Body(cm).MaxRetries(0).Do(ctx).Error()
}

func TestInjectedErrorsAreAPIErrors(t *testing.T) {
	api := newFakeAPI(t)
	for _, tc := range []struct {
		name   string
		f      chaos.Faults
		call   func(context.Context, *kubernetes.Clientset) error
		is     func(error) bool
		reason metav1.StatusReason
	}{
		{"conflict on update", chaos.Faults{ErrorRate: 1, ConflictWeight: 1}, updateCM, apierrors.IsConflict, metav1.StatusReasonConflict},
		{"too many requests", chaos.Faults{ErrorRate: 1, TooManyRequestsWeight: 1}, getCM, apierrors.IsTooManyRequests, metav1.StatusReasonTooManyRequests},
		{"internal error", chaos.Faults{ErrorRate: 1, InternalErrorWeight: 1}, getCM, apierrors.IsInternalError, metav1.StatusReasonInternalError},
		{"no conflict on a read", chaos.Faults{ErrorRate: 1, ConflictWeight: 1, InternalErrorWeight: 1}, getCM, apierrors.IsInternalError, metav1.StatusReasonInternalError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := chaos.New(tc.f)
			before := api.hits.Load()
			err := tc.call(t.Context(), clientFor(t, api, in))
			if !tc.is(err) || apierrors.ReasonForError(err) != tc.reason {
				t.Fatalf("error = %v (reason %q), want reason %q", err, apierrors.ReasonForError(err), tc.reason)
			}
			if got := api.hits.Load() - before; got != 0 {
				t.Errorf("an injected error reached the server %d times", got)
			}
			if tc.reason == metav1.StatusReasonTooManyRequests {
				if s, ok := apierrors.SuggestsClientDelay(err); !ok || s != 1 {
					t.Errorf("Retry-After = %d, %v; want 1 s", s, ok)
				}
			}
			if tc.reason == metav1.StatusReasonConflict && !strings.Contains(err.Error(), `configmaps "cm": the object has been modified`) {
				t.Errorf("conflict message %q is not the server's", err)
			}
			if s := in.Stats(); s.Errors() != 1 || s.Requests != 1 {
				t.Errorf("stats = %s, want 1 request and 1 error", s)
			}
		})
	}
}

func TestTooManyRequestsRetriedByClientGo(t *testing.T) {
	api := newFakeAPI(t)
	in := chaos.New(chaos.Faults{ErrorRate: 1, TooManyRequestsWeight: 1})
	c := clientFor(t, api, in)
	errc := make(chan error, 1)
	go func() {
		_, err := c.CoreV1().ConfigMaps("ns").Get(t.Context(), "cm", metav1.GetOptions{})
		errc <- err
	}()
	// client-go honours Retry-After: the first 429 is waited out, and the retry succeeds.
	time.Sleep(100 * time.Millisecond)
	in.SetFaults(chaos.Faults{})
	if err := <-errc; err != nil {
		t.Fatalf("get after a 429: %v", err)
	}
	if s := in.Stats(); s.TooManyRequests != 1 || s.Requests != 2 {
		t.Errorf("stats = %s, want 2 requests, 1×429", s)
	}
}

func TestTimeouts(t *testing.T) {
	api := newFakeAPI(t)
	in := chaos.New(chaos.Faults{TimeoutRate: 1, Timeout: 20 * time.Millisecond, Seed: 3})
	c := clientFor(t, api, in)
	before := api.hits.Load()
	for range 20 {
		start := time.Now()
		err := updateCM(t.Context(), c)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("error = %v, want a network timeout", err)
		}
		if d := time.Since(start); d < 20*time.Millisecond {
			t.Errorf("timed out after %s, want 20ms", d)
		}
	}
	s := in.Stats()
	if s.Timeouts != 20 || s.TimeoutsSent == 0 || s.TimeoutsSent == 20 {
		t.Errorf("stats = %s, want 20 timeouts, some but not all sent", s)
	}
	if got := api.hits.Load() - before; got != s.TimeoutsSent {
		t.Errorf("server saw %d requests, injector says %d were sent", got, s.TimeoutsSent)
	}
}

func TestLatency(t *testing.T) {
	api := newFakeAPI(t)
	in := chaos.New(chaos.Faults{Latency: 30 * time.Millisecond, Jitter: 10 * time.Millisecond})
	c := clientFor(t, api, in)
	start := time.Now()
	if err := getCM(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("request took %s, want at least 30ms", d)
	}
	if s := in.Stats(); s.Delayed != 1 {
		t.Errorf("stats = %s, want 1 delayed", s)
	}
}

func TestWatchDisconnect(t *testing.T) {
	api := newFakeAPI(t)
	in := chaos.New(chaos.Faults{WatchDisconnectRate: 1, WatchMaxDuration: 100 * time.Millisecond})
	c := clientFor(t, api, in)
	w, err := c.CoreV1().ConfigMaps("ns").Watch(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	deadline := time.After(5 * time.Second)
	events := 0
	for open := true; open; {
		select {
		case _, open = <-w.ResultChan():
			if open {
				events++
			}
		case <-deadline:
			t.Fatal("watch not cut within 5s")
		}
	}
	if s := in.Stats(); s.WatchDisconnects != 1 {
		t.Errorf("stats = %s, want 1 watch cut", s)
	}
	t.Logf("watch cut after %d events", events)
}

func TestSetDown(t *testing.T) {
	api := newFakeAPI(t)
	in := chaos.New(chaos.Faults{})
	c := clientFor(t, api, in)
	w, err := c.CoreV1().ConfigMaps("ns").Watch(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	<-w.ResultChan()
	in.SetDown(true)
	select {
	case <-waitClosed(w.ResultChan()):
	case <-time.After(5 * time.Second):
		t.Fatal("open watch not cut by SetDown")
	}
	if err := getCM(t.Context(), c); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("request while down = %v, want connection refused", err)
	}
	in.SetDown(false)
	if err := getCM(t.Context(), c); err != nil {
		t.Errorf("request after SetDown(false): %v", err)
	}
	if s := in.Stats(); s.Refused != 1 || s.WatchDisconnects != 1 {
		t.Errorf("stats = %s, want 1 refused, 1 watch cut", s)
	}
}

func waitClosed[T any](ch <-chan T) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		for range ch {
		}
		close(done)
	}()
	return done
}

func TestOnly(t *testing.T) {
	api := newFakeAPI(t)
	in := chaos.New(chaos.Faults{ErrorRate: 1, InternalErrorWeight: 1, Only: chaos.Writes})
	c := clientFor(t, api, in)
	if err := getCM(t.Context(), c); err != nil {
		t.Errorf("read with writes-only faults: %v", err)
	}
	if err := updateCM(t.Context(), c); !apierrors.IsInternalError(err) {
		t.Errorf("write = %v, want an internal error", err)
	}
	in.SetFaults(chaos.Faults{ErrorRate: 1, InternalErrorWeight: 1, Only: chaos.Resources("secrets")})
	if err := updateCM(t.Context(), c); err != nil {
		t.Errorf("configmap write with secrets-only faults: %v", err)
	}
	if s := in.Stats(); s.Requests != 3 || s.Eligible != 1 {
		t.Errorf("stats = %s, want 3 requests, 1 eligible", s)
	}
}

// TestDeterministicAndConcurrent: one seed gives one sequence of decisions; concurrent use is
// safe (run with -race) and every request is counted once.
func TestDeterministicAndConcurrent(t *testing.T) {
	api := newFakeAPI(t)
	f := chaos.Faults{ErrorRate: 0.3, TimeoutRate: 0.05, Timeout: time.Millisecond, Seed: 42}
	sequence := func(f chaos.Faults) []string {
		in := chaos.New(f)
		c := clientFor(t, api, in)
		var out []string
		for range 100 {
			err := updateCM(t.Context(), c)
			out = append(out, fmt.Sprint(apierrors.ReasonForError(err), err != nil))
		}
		return out
	}
	a, b := sequence(f), sequence(f)
	if strings.Join(a, ",") != strings.Join(b, ",") {
		t.Error("two injectors with one seed decided differently")
	}
	f.Seed = 43
	if strings.Join(a, ",") == strings.Join(sequence(f), ",") {
		t.Error("two seeds gave the same 100 decisions")
	}

	in := chaos.New(chaos.Faults{ErrorRate: 0.3, Seed: 1})
	c := clientFor(t, api, in)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if updateCM(t.Context(), c) != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	s := in.Stats()
	if s.Requests != 400 || s.Errors() != failed.Load() {
		t.Errorf("stats = %s; %d calls failed, want 400 requests and as many errors as failures", s, failed.Load())
	}
	if s.Errors() < 80 || s.Errors() > 160 {
		t.Errorf("%d errors in 400 requests at a 30%% rate", s.Errors())
	}
}

type fakeComponent struct {
	running *atomic.Int64
}

func (f fakeComponent) Run(ctx context.Context) error {
	f.running.Add(1)
	defer f.running.Add(-1)
	<-ctx.Done()
	return nil
}

func TestProcKillRestart(t *testing.T) {
	var running atomic.Int64
	in := chaos.New(chaos.Faults{})
	p := chaos.NewProc(in, func() (fakeComponent, error) { return fakeComponent{&running}, nil })
	if _, err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Start(); !errors.Is(err, chaos.ErrRunning) {
		t.Errorf("second Start = %v, want ErrRunning", err)
	}
	took, v := chaos.Await(t.Context(), time.Second, time.Millisecond, func(context.Context) ([]string, error) {
		if running.Load() != 1 {
			return []string{"not running"}, nil
		}
		return nil, nil
	})
	if v != nil {
		t.Fatalf("Await: %v after %s", v, took)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if running.Load() != 0 {
		t.Error("Kill returned before Run did")
	}
	if !isDown(t, in) {
		t.Error("Kill did not set the injector down")
	}
	if _, err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Current(); !ok || isDown(t, in) {
		t.Error("Restart: not running, or injector still down")
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if p.Starts() != 2 || p.Kills() != 2 {
		t.Errorf("starts %d kills %d, want 2 and 2", p.Starts(), p.Kills())
	}
	_, v = chaos.Await(t.Context(), 20*time.Millisecond, 5*time.Millisecond, func(context.Context) ([]string, error) {
		return []string{"b", "a"}, nil
	})
	if strings.Join(v, ",") != "a,b" {
		t.Errorf("Await on a check that never holds = %v, want its sorted violations", v)
	}
}

// isDown tells whether the injector refuses requests.
func isDown(t *testing.T, in *chaos.Injector) bool {
	api := newFakeAPI(t)
	before := in.Stats().Refused
	_ = getCM(t.Context(), clientFor(t, api, in))
	return in.Stats().Refused > before
}

type crashing struct{ runs *atomic.Int64 }

func (c crashing) Run(ctx context.Context) error {
	if c.runs.Add(1) == 1 {
		return errors.New("transient failure at start")
	}
	<-ctx.Done()
	return nil
}

func TestProcReplacesCrashedInstance(t *testing.T) {
	var runs atomic.Int64
	p := chaos.NewProc(nil, func() (crashing, error) { return crashing{&runs}, nil })
	if _, err := p.Start(); err != nil {
		t.Fatal(err)
	}
	took, v := chaos.Await(t.Context(), 5*time.Second, 10*time.Millisecond, func(context.Context) ([]string, error) {
		if runs.Load() < 2 {
			return []string{"not replaced"}, nil
		}
		return nil, nil
	})
	if v != nil {
		t.Fatalf("crashed instance not replaced in %s", took)
	}
	if took < chaos.CrashBackoff/2 {
		t.Errorf("replaced after %s, want about %s", took, chaos.CrashBackoff)
	}
	if n, err := p.Crashes(); n != 1 || err == nil {
		t.Errorf("Crashes() = %d, %v; want 1 and the error", n, err)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if p.Starts() != 2 || p.Kills() != 1 {
		t.Errorf("starts %d kills %d, want 2 and 1", p.Starts(), p.Kills())
	}
}
