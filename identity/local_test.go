package identity

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustLabels(t testing.TB, ss ...string) Labels {
	t.Helper()
	l, err := ParseLabels(ss...)
	if err != nil {
		t.Fatalf("ParseLabels(%q): %v", ss, err)
	}
	return l
}

func TestLocalAllocatorRefcount(t *testing.T) {
	a := NewLocalAllocator()
	cidr := mustLabels(t, "cidr:10.0.0.0/8", "reserved:world")
	fqdn := mustLabels(t, "fqdn:*.example.com")

	id1, isNew, err := a.Allocate(cidr)
	if err != nil || !isNew || id1 != MinLocal {
		t.Fatalf("Allocate(cidr) = %d, %v, %v; want %d, true, nil", id1, isNew, err, MinLocal)
	}
	if id1.Scope() != ScopeLocal {
		t.Errorf("scope = %v, want local", id1.Scope())
	}
	id2, isNew, err := a.Allocate(fqdn)
	if err != nil || !isNew || id2 != MinLocal+1 {
		t.Fatalf("Allocate(fqdn) = %d, %v, %v; want %d, true, nil", id2, isNew, err, MinLocal+1)
	}
	again, isNew, err := a.Allocate(mustLabels(t, "reserved:world", "cidr:10.0.0.0/8"))
	if err != nil || isNew || again != id1 {
		t.Fatalf("Allocate(cidr again) = %d, %v, %v; want %d, false, nil", again, isNew, err, id1)
	}
	if got := a.Len(); got != 2 {
		t.Errorf("Len() = %d, want 2", got)
	}
	if got, ok := a.Lookup(id1); !ok || !got.Equal(cidr) {
		t.Errorf("Lookup(%d) = %v, %v", id1, got, ok)
	}
	if got, ok := a.LookupByLabels(fqdn); !ok || got != id2 {
		t.Errorf("LookupByLabels(fqdn) = %d, %v", got, ok)
	}

	// Two references on id1: the first release keeps it.
	if a.Release(id1) {
		t.Error("first Release(id1) = true, want false (one reference left)")
	}
	if _, ok := a.Lookup(id1); !ok {
		t.Error("id1 gone after first release")
	}
	if !a.Release(id1) {
		t.Error("second Release(id1) = false, want true")
	}
	if _, ok := a.Lookup(id1); ok {
		t.Error("id1 still allocated")
	}
	if _, ok := a.LookupByLabels(cidr); ok {
		t.Error("cidr labels still allocated")
	}
	if a.Release(id1) {
		t.Error("Release of a free id = true")
	}
	if a.Release(12345) {
		t.Error("Release of an unknown id = true")
	}

	// The lowest free number is reused first.
	other := mustLabels(t, "cidr:192.168.0.0/16")
	id3, isNew, err := a.Allocate(other)
	if err != nil || !isNew || id3 != id1 {
		t.Fatalf("Allocate(other) = %d, %v, %v; want reused %d", id3, isNew, err, id1)
	}
	id4, _, err := a.Allocate(mustLabels(t, "cidrgroup:office"))
	if err != nil || id4 != MinLocal+2 {
		t.Fatalf("Allocate(cidrgroup) = %d, %v; want %d", id4, err, MinLocal+2)
	}
}

func TestLocalAllocatorLookupCopies(t *testing.T) {
	a := NewLocalAllocator()
	id, _, err := a.Allocate(mustLabels(t, "cidr:10.0.0.0/8"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := a.Lookup(id)
	got[0].Key = "changed"
	again, _ := a.Lookup(id)
	if diff := cmp.Diff(mustLabels(t, "cidr:10.0.0.0/8"), again); diff != "" {
		t.Errorf("Lookup result aliases internal state (-want +got):\n%s", diff)
	}
}

func TestLocalAllocatorRejects(t *testing.T) {
	tests := []struct {
		name      string
		labels    Labels
		wantField string
	}{
		{name: "empty", labels: nil, wantField: "labels"},
		{name: "k8s", labels: mustLabels(t, "k8s:app=web"), wantField: "source"},
		{name: "cidr with k8s", labels: mustLabels(t, "cidr:10.0.0.0/8", "k8s:app=web"), wantField: "source"},
		{name: "reserved only", labels: mustLabels(t, "reserved:world"), wantField: "labels"},
		{name: "invalid", labels: Labels{{SourceCIDR, "a;b", ""}}, wantField: "key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := NewLocalAllocator()
			id, isNew, err := a.Allocate(tt.labels)
			var le *LabelError
			if !errors.As(err, &le) || le.Field != tt.wantField || !errors.Is(err, ErrInvalidLabels) {
				t.Fatalf("Allocate = %d, %v, %v; want LabelError field %q", id, isNew, err, tt.wantField)
			}
			if a.Len() != 0 {
				t.Errorf("Len() = %d after a rejected allocation", a.Len())
			}
		})
	}
}

func TestLocalAllocatorExhausted(t *testing.T) {
	a := newLocalAllocator(3)
	for i := range 3 {
		if _, _, err := a.Allocate(mustLabels(t, fmt.Sprintf("cidr:10.0.%d.0/24", i))); err != nil {
			t.Fatalf("Allocate %d: %v", i, err)
		}
	}
	_, _, err := a.Allocate(mustLabels(t, "cidr:10.0.9.0/24"))
	if !errors.Is(err, ErrLocalExhausted) {
		t.Fatalf("Allocate on a full allocator: %v, want ErrLocalExhausted", err)
	}
	const want = "allocate local identity for cidr:10.0.9.0/24: all 3 identities in use: local identity space exhausted"
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	// Existing labels still resolve while full.
	if _, isNew, err := a.Allocate(mustLabels(t, "cidr:10.0.1.0/24")); err != nil || isNew {
		t.Errorf("Allocate(existing) on a full allocator = %v, %v", isNew, err)
	}
	if !a.Release(MinLocal+2) || a.Release(MinLocal+1) || !a.Release(MinLocal+1) {
		t.Fatal("releases did not free as expected")
	}
	id, _, err := a.Allocate(mustLabels(t, "cidr:10.0.9.0/24"))
	if err != nil || id != MinLocal+1 {
		t.Fatalf("Allocate after release = %d, %v; want %d", id, err, MinLocal+1)
	}
}

func TestLocalAllocatorConcurrent(t *testing.T) {
	a := NewLocalAllocator()
	const workers, sets = 8, 50
	var wg sync.WaitGroup
	ids := make([][]NumericIdentity, workers)
	labels := make([]Labels, sets)
	for i := range labels {
		labels[i] = mustLabels(t, fmt.Sprintf("cidr:10.%d.0.0/16", i))
	}
	for w := range workers {
		wg.Go(func() {
			for _, l := range labels {
				id, _, err := a.Allocate(l)
				if err != nil {
					t.Error(err)
					return
				}
				ids[w] = append(ids[w], id)
				if got, ok := a.LookupByLabels(l); !ok || got != id {
					t.Errorf("LookupByLabels = %d, %v; want %d", got, ok, id)
				}
			}
		})
	}
	wg.Wait()
	for w := 1; w < workers; w++ {
		if diff := cmp.Diff(ids[0], ids[w]); diff != "" {
			t.Fatalf("worker %d saw different ids (-want +got):\n%s", w, diff)
		}
	}
	if a.Len() != sets {
		t.Fatalf("Len() = %d, want %d", a.Len(), sets)
	}
	for w := range workers {
		wg.Go(func() {
			for _, id := range ids[w] {
				a.Release(id)
			}
		})
	}
	wg.Wait()
	if a.Len() != 0 {
		t.Errorf("Len() = %d after releasing every reference, want 0", a.Len())
	}
}
