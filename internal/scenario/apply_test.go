package scenario_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/client-go/rest"

	"github.com/ceskit/ceskit/internal/scenario"
	"github.com/ceskit/ceskit/slicer"
)

// fakeAPI is just enough of an API server for Seed and Churn.Run: it stores which objects exist
// and, per endpoint, the writes in the order they arrived, answering each after a random delay
// so that concurrent writes overtake one another.
type fakeAPI struct {
	mu      sync.Mutex
	objects map[string]bool     // "kind/namespace/name"
	writes  map[string][]string // endpoint key → writes
	failOn  string              // endpoint name whose create fails with 500
	rng     *rand.Rand
}

func newFakeAPI(t *testing.T) (*fakeAPI, *slicer.Client) {
	f := &fakeAPI{objects: map[string]bool{}, writes: map[string][]string{}, rng: rand.New(rand.NewPCG(1, 1))}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/namespaces", f.create("Namespace", "v1"))
	mux.HandleFunc("POST /api/v1/nodes", f.create("Node", "v1"))
	mux.HandleFunc("POST /apis/cilium.io/v2/namespaces/{ns}/ciliumendpoints", f.create("CiliumEndpoint", "cilium.io/v2"))
	mux.HandleFunc("DELETE /apis/cilium.io/v2/namespaces/{ns}/ciliumendpoints/{name}", f.delete)
	mux.HandleFunc("PATCH /apis/cilium.io/v2/namespaces/{ns}/ciliumendpoints/{name}", f.patch)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	// JSON: the core clientset speaks protobuf by default, which the fake does not.
	json := rest.ContentConfig{ContentType: "application/json", AcceptContentTypes: "application/json"}
	c, err := slicer.NewClient(&rest.Config{Host: srv.URL, ContentConfig: json})
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

func (f *fakeAPI) delay() {
	f.mu.Lock()
	d := time.Duration(f.rng.IntN(1500)) * time.Microsecond
	f.mu.Unlock()
	time.Sleep(d)
}

func writeStatus(w http.ResponseWriter, code int, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":%q,"code":%d,"message":"fake"}`, reason, code)
}

type object struct {
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Status struct {
		Identity *struct {
			ID int64 `json:"id"`
		} `json:"identity"`
	} `json:"status"`
}

func (f *fakeAPI) create(kind, apiVersion string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.delay()
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			writeStatus(w, http.StatusBadRequest, "BadRequest")
			return
		}
		raw, _ := json.Marshal(body)
		var obj object
		_ = json.Unmarshal(raw, &obj)
		ns := r.PathValue("ns")
		id := kind + "/" + ns + "/" + obj.Metadata.Name
		f.mu.Lock()
		exists := f.objects[id]
		fail := kind == "CiliumEndpoint" && obj.Metadata.Name == f.failOn
		if !exists && !fail {
			f.objects[id] = true
			if kind == "CiliumEndpoint" {
				k := ns + "/" + obj.Metadata.Name
				f.writes[k] = append(f.writes[k], fmt.Sprintf("create:%d", obj.Status.Identity.ID))
			}
		}
		f.mu.Unlock()
		switch {
		case fail:
			writeStatus(w, http.StatusInternalServerError, "InternalError")
			return
		case exists:
			writeStatus(w, http.StatusConflict, "AlreadyExists")
			return
		}
		body["kind"], body["apiVersion"] = kind, apiVersion
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(body)
	}
}

func (f *fakeAPI) delete(w http.ResponseWriter, r *http.Request) {
	f.delay()
	ns, name := r.PathValue("ns"), r.PathValue("name")
	f.mu.Lock()
	id := "CiliumEndpoint/" + ns + "/" + name
	exists := f.objects[id]
	delete(f.objects, id)
	if exists {
		f.writes[ns+"/"+name] = append(f.writes[ns+"/"+name], "delete")
	}
	f.mu.Unlock()
	if !exists {
		writeStatus(w, http.StatusNotFound, "NotFound")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Success"}`)
}

func (f *fakeAPI) patch(w http.ResponseWriter, r *http.Request) {
	f.delay()
	ns, name := r.PathValue("ns"), r.PathValue("name")
	var obj object
	if err := json.NewDecoder(r.Body).Decode(&obj); err != nil || obj.Status.Identity == nil {
		writeStatus(w, http.StatusBadRequest, "BadRequest")
		return
	}
	f.mu.Lock()
	exists := f.objects["CiliumEndpoint/"+ns+"/"+name]
	if exists {
		f.writes[ns+"/"+name] = append(f.writes[ns+"/"+name], fmt.Sprintf("identity:%d", obj.Status.Identity.ID))
	}
	f.mu.Unlock()
	if !exists {
		writeStatus(w, http.StatusNotFound, "NotFound")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"kind":"CiliumEndpoint","apiVersion":"cilium.io/v2","metadata":{"name":%q,"namespace":%q},"status":{"identity":{"id":%d}}}`,
		name, ns, obj.Status.Identity.ID)
}

func (f *fakeAPI) count(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for id := range f.objects {
		if strings.HasPrefix(id, prefix) {
			n++
		}
	}
	return n
}

func TestSeed(t *testing.T) {
	f, c := newFakeAPI(t)
	s := mustNew(t, scenario.Config{Seed: 3, Endpoints: 200, Namespaces: 6, Nodes: 20})
	var progress []scenario.Progress
	var sends, dones atomic.Int64
	opts := scenario.SeedOptions{
		Workers:  8,
		Progress: func(p scenario.Progress) { progress = append(progress, p) },
		OnSend: func(op scenario.Op, _ time.Time) {
			if op.Kind == scenario.Create {
				sends.Add(1)
			}
		},
		OnDone: func(op scenario.Op, _, _ time.Time, err error) {
			if op.Kind == scenario.Create && err == nil {
				dones.Add(1)
			}
		},
	}
	if err := s.Seed(t.Context(), c, opts); err != nil {
		t.Fatal(err)
	}
	if sends.Load() != 200 || dones.Load() != 200 {
		t.Errorf("OnSend called %d times, OnDone without error %d, want 200 each", sends.Load(), dones.Load())
	}
	got := map[string]int{"namespaces": f.count("Namespace/"), "nodes": f.count("Node/"), "endpoints": f.count("CiliumEndpoint/")}
	if diff := cmp.Diff(map[string]int{"namespaces": 6, "nodes": 20, "endpoints": 200}, got); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
	final := map[scenario.Phase]int{}
	for _, p := range progress {
		if p.Done == p.Total {
			final[p.Phase] = p.Total
		}
	}
	if diff := cmp.Diff(map[scenario.Phase]int{scenario.PhaseNamespaces: 6, scenario.PhaseNodes: 20, scenario.PhaseEndpoints: 200}, final); diff != "" {
		t.Errorf("final progress (-want +got):\n%s", diff)
	}
	if len(progress) > 0 && !strings.Contains(progress[len(progress)-1].String(), "endpoints 200/200") {
		t.Errorf("Progress.String() = %q", progress[len(progress)-1])
	}

	// Again: everything exists already, which is fine.
	if err := s.Seed(t.Context(), c, scenario.SeedOptions{}); err != nil {
		t.Fatalf("second Seed: %v", err)
	}

	// A create that fails stops the seed with an error naming the endpoint.
	f2, c2 := newFakeAPI(t)
	f2.failOn = scenario.EndpointName(123)
	err := s.Seed(t.Context(), c2, scenario.SeedOptions{Workers: 4})
	if err == nil || !strings.Contains(err.Error(), "seed endpoints: create endpoint sim-003/pod-0000123") {
		t.Fatalf("Seed with a failing create: %v", err)
	}
}

// TestRun checks that Run sends the churn's operations, in order for each endpoint, at about the
// requested rate, and reports each through the callbacks.
func TestRun(t *testing.T) {
	f, c := newFakeAPI(t)
	s := mustNew(t, scenario.Config{Seed: 9, Endpoints: 40, Namespaces: 3, Nodes: 10})
	if err := s.Seed(t.Context(), c, scenario.SeedOptions{}); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	clear(f.writes)
	f.mu.Unlock()

	if _, err := s.NewChurn().Run(t.Context(), c, scenario.ChurnOptions{}); err == nil {
		t.Error("Run with Rate 0: no error")
	}

	var mu sync.Mutex
	sent := map[string][]string{}
	var errs []error
	ctx, cancel := context.WithTimeout(t.Context(), 400*time.Millisecond)
	defer cancel()
	st, err := s.NewChurn().Run(ctx, c, scenario.ChurnOptions{
		Rate:        2000,
		MaxInFlight: 16,
		OnSend: func(op scenario.Op, _ time.Time) {
			mu.Lock()
			defer mu.Unlock()
			sent[op.Key()] = append(sent[op.Key()], write(op))
		},
		OnDone: func(_ scenario.Op, s, d time.Time, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			if d.Before(s) {
				errs = append(errs, fmt.Errorf("done %s before sent %s", d, s))
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(errs) > 0 || st.Failed > 0 {
		t.Fatalf("%d failed writes: %v", st.Failed, errs)
	}
	// 800 at the requested rate; far fewer on a loaded machine under the race detector.
	if st.Ops < 40 || st.Creates+st.Deletes+st.IdentityChanges != st.Ops {
		t.Fatalf("stats %+v: want at least 40 ops, by kind adding up", st)
	}
	t.Logf("stats %+v, %.0f ops/s", st, st.Rate())

	// The operations are the churn's, in its order for each endpoint, on the client and the server.
	want := map[string][]string{}
	ref := s.NewChurn()
	repeated := 0
	for range st.Ops {
		op := ref.Next()
		want[op.Key()] = append(want[op.Key()], write(op))
		if len(want[op.Key()]) == 2 {
			repeated++
		}
	}
	if repeated == 0 {
		t.Fatal("no endpoint written twice: the order check checks nothing")
	}
	if diff := cmp.Diff(want, sent); diff != "" {
		t.Errorf("writes sent per endpoint (-want +got):\n%s", diff)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if diff := cmp.Diff(want, f.writes); diff != "" {
		t.Errorf("writes received per endpoint (-want +got):\n%s", diff)
	}
}

func write(op scenario.Op) string {
	switch op.Kind {
	case scenario.Delete:
		return "delete"
	case scenario.ChangeIdentity:
		return fmt.Sprintf("identity:%d", op.Identity())
	}
	return fmt.Sprintf("create:%d", op.Identity())
}
