package identity_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/ceskit/ceskit/identity"
)

var (
	cepGVR = schema.GroupVersionResource{Group: "cilium.io", Version: "v2", Resource: "ciliumendpoints"}
	cesGVR = schema.GroupVersionResource{Group: "cilium.io", Version: "v2alpha1", Resource: "ciliumendpointslices"}
)

// TestGCNeverDeletesInUse: identities referenced by a CiliumEndpoint, a CiliumEndpointSlice, a
// live allocation (holder record) or the InUse hook survive every pass; unreferenced ones are
// marked, then deleted after the grace period; an identity whose last reference goes is collected
// next.
func TestGCNeverDeletesInUse(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	a := e.allocator(identity.Config{Holder: "node-a"})
	alloc := func(app string) identity.NumericIdentity {
		id, err := a.Allocate(ctx, podLabels(t, "shop", app, nil))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	release := func(id identity.NumericIdentity) {
		if _, err := a.Release(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	held := alloc("held")
	byCEP, byCES, byHook, unused1, unused2 := alloc("cep"), alloc("ces"), alloc("hook"), alloc("unused1"), alloc("unused2")
	for _, id := range []identity.NumericIdentity{byCEP, byCES, byHook, unused1, unused2} {
		release(id)
	}
	waitFor(t, "holder record with only the held identity", func() bool {
		return slices.Equal(holderIDs(t, e, "node-a"), []identity.NumericIdentity{held})
	})
	createCEP(t, e, "web-0", byCEP)
	createCES(t, e, "ces-test-1", byCES)

	g := e.gc(identity.GCConfig{
		GracePeriod: 300 * time.Millisecond,
		MinAge:      time.Millisecond,
		InUse:       func() map[identity.NumericIdentity]struct{} { return map[identity.NumericIdentity]struct{}{byHook: {}} },
	})
	if got := g.Sources(); !slices.Equal(got, []string{"ciliumendpoints", "ciliumendpointslices"}) {
		t.Errorf("Sources() = %v", got)
	}
	res, err := g.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Marked != 2 || res.Deleted != 0 || res.Alive < 4 {
		t.Errorf("first pass = %+v, want 2 marked, 0 deleted, at least 4 alive", res)
	}
	time.Sleep(400 * time.Millisecond)
	waitFor(t, "the unused identities to be deleted", func() bool {
		if _, err := g.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		ids := e.identities()
		_, a := ids[unused1]
		_, b := ids[unused2]
		return !a && !b
	})
	ids := e.identities()
	for _, id := range []identity.NumericIdentity{held, byCEP, byCES, byHook} {
		if _, ok := ids[id]; !ok {
			t.Errorf("in-use identity %d was deleted", id)
		}
		if marked(t, e, id) {
			t.Errorf("in-use identity %d carries a mark", id)
		}
	}

	// The CiliumEndpoint goes: its identity is collected next.
	if err := e.c.Dynamic.Resource(cepGVR).Namespace(e.ns).Delete(ctx, "web-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the identity of the deleted endpoint to be collected", func() bool {
		if _, err := g.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		_, ok := e.identities()[byCEP]
		return !ok
	})
	if _, ok := e.identities()[byCES]; !ok {
		t.Error("identity referenced by the slice was deleted")
	}
}

// TestGCReuseUnmarks: an allocator that reuses a marked identity removes the mark, and the
// collector's delete (preconditioned on the marked resourceVersion) then fails instead of deleting
// an identity in use.
func TestGCReuseUnmarks(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	a := e.allocator(identity.Config{Holder: "node-a"})
	web := podLabels(t, "shop", "web", nil)
	id, err := a.Allocate(ctx, web)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Release(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "empty holder record", func() bool { return len(holderIDs(t, e, "node-a")) == 0 })
	g := e.gc(identity.GCConfig{GracePeriod: time.Hour, MinAge: time.Millisecond})
	if res, err := g.RunOnce(ctx); err != nil || res.Marked != 1 {
		t.Fatalf("RunOnce = %+v, %v; want 1 marked", res, err)
	}
	if !marked(t, e, id) {
		t.Fatal("identity not marked")
	}
	markedRV := get(t, e, id).ResourceVersion

	// Another agent reuses it: it must see the mark (its cache) and remove it.
	b := e.allocator(identity.Config{Holder: "node-b"})
	waitFor(t, "node-b to see the mark", func() bool {
		return b.Status().Known > 0
	})
	got, err := b.Allocate(ctx, web)
	if err != nil {
		t.Fatal(err)
	}
	if got != id {
		t.Fatalf("reuse got %d, want %d", got, id)
	}
	if marked(t, e, id) {
		t.Error("reused identity still marked")
	}
	// A collector acting on its stale view (the marked version) must fail.
	uid := get(t, e, id).UID
	err = e.c.CiliumIdentities().Delete(ctx, id.String(), metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &markedRV}})
	if !apierrors.IsConflict(err) {
		t.Errorf("delete preconditioned on the marked version = %v, want a conflict", err)
	}
	if _, ok := e.identities()[id]; !ok {
		t.Error("reused identity was deleted")
	}
}

// TestGCClaimsAndHolders: claims whose identity is gone and holder records that expired are
// deleted after ClaimGracePeriod; a live holder's record and a claim with its identity stay.
func TestGCClaimsAndHolders(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	a, stop := e.startAllocator(identity.Config{Holder: "gone", HolderLeaseDuration: 3 * time.Second})
	web := podLabels(t, "shop", "web", nil)
	id, err := a.Allocate(ctx, web)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "holder record", func() bool { return len(holderIDs(t, e, "gone")) == 1 })
	stop()
	live := e.allocator(identity.Config{Holder: "live", HolderLeaseDuration: 3 * time.Second})
	api, err := live.Allocate(ctx, podLabels(t, "shop", "api", nil))
	if err != nil {
		t.Fatal(err)
	}
	// web's identity goes (as after a collection), its claim stays behind.
	if err := e.c.CiliumIdentities().Delete(ctx, id.String(), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	g := e.gc(identity.GCConfig{GracePeriod: time.Hour, MinAge: time.Hour, ClaimGracePeriod: time.Second})
	leases := func() []string {
		list, err := e.c.Kube.CoordinationV1().Leases(e.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, l := range list.Items {
			names = append(names, l.Name)
		}
		slices.Sort(names)
		return names
	}
	want := []string{
		identity.ClaimName(podLabels(t, "shop", "api", nil).Key()),
		identity.HolderName("live"),
	}
	slices.Sort(want)
	waitFor(t, "the orphaned claim and the expired holder record to be deleted", func() bool {
		if _, err := g.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		return slices.Equal(leases(), want)
	})
	if _, ok := e.identities()[api]; !ok {
		t.Error("the live allocator's identity was deleted")
	}
}

// TestHolderIDsEncoding round-trips identity sets through both encodings of holder records.
func TestHolderIDsEncoding(t *testing.T) {
	var sparse []identity.NumericIdentity
	for id := identity.NumericIdentity(256); id < 20000; id += 2 {
		sparse = append(sparse, id)
	}
	for _, tc := range []struct {
		name   string
		ids    []identity.NumericIdentity
		prefix string
	}{
		{"empty", nil, ""},
		{"one", []identity.NumericIdentity{300}, "300"},
		{"ranges", []identity.NumericIdentity{256, 257, 258, 300, 400, 401}, "256-258,300,400-401"},
		{"sparse uses the bitmap", sparse, "b64:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := identity.EncodeHolderIDs(tc.ids)
			if len(s) < len(tc.prefix) || s[:len(tc.prefix)] != tc.prefix {
				t.Errorf("encoded = %.40q…, want prefix %q", s, tc.prefix)
			}
			got, err := identity.DecodeHolderIDs(s)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.ids, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []string{"x", "5-3", "b64:!!", "1-"} {
		if _, err := identity.DecodeHolderIDs(bad); err == nil {
			t.Errorf("DecodeHolderIDs(%q) = nil error", bad)
		}
	}
}

func createCEP(t *testing.T, e *env, name string, id identity.NumericIdentity) {
	t.Helper()
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cilium.io/v2", "kind": "CiliumEndpoint",
		"metadata": map[string]any{"name": name, "namespace": e.ns},
		"status":   map[string]any{"identity": map[string]any{"id": int64(id)}, "state": "ready"},
	}}
	if _, err := e.c.Dynamic.Resource(cepGVR).Namespace(e.ns).Create(t.Context(), u, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.c.Dynamic.Resource(cepGVR).Namespace(e.ns).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
}

func createCES(t *testing.T, e *env, name string, id identity.NumericIdentity) {
	t.Helper()
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "cilium.io/v2alpha1", "kind": "CiliumEndpointSlice",
		"metadata":  map[string]any{"name": name},
		"namespace": e.ns,
		"endpoints": []any{map[string]any{"name": "web-1", "id": int64(id), "networking": map[string]any{"addressing": []any{map[string]any{"ipv4": "10.0.0.1"}}}}},
	}}
	if _, err := e.c.Dynamic.Resource(cesGVR).Create(t.Context(), u, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.c.Dynamic.Resource(cesGVR).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
}

func get(t *testing.T, e *env, id identity.NumericIdentity) *metav1.ObjectMeta {
	t.Helper()
	cid, err := e.c.CiliumIdentities().Get(t.Context(), id.String(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &cid.ObjectMeta
}

func marked(t *testing.T, e *env, id identity.NumericIdentity) bool {
	t.Helper()
	return get(t, e, id).Annotations[identity.HeartbeatAnnotation] != ""
}
