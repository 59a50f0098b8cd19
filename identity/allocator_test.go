package identity_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ceskit/ceskit/identity"
	"github.com/ceskit/ceskit/identity/ciliumv2"
)

// TestConcurrentAllocatorsAgree races 50 allocators (each with its own informer, as 50 agents
// would) on overlapping label sets, three rounds with fresh sets. The range is barely larger than
// the number of sets, so different label sets also collide on candidate IDs. Every label set must
// end with exactly one CiliumIdentity, and every allocator must have reported that one.
func TestConcurrentAllocatorsAgree(t *testing.T) {
	e := newEnv(t)
	const allocators, sets, rounds = 50, 30, 3
	rng := identity.Range{Min: 3000, Max: 3000 + sets*rounds + 9}
	metrics := newCountingMetrics()
	conflicts := &conflictCounter{}
	as := make([]*identity.CRDAllocator, allocators)
	for i := range as {
		as[i] = e.allocator(identity.Config{
			Holder:  name("agent", i),
			Range:   rng,
			Metrics: multiMetrics{metrics, conflicts},
		})
	}
	for round := range rounds {
		lbls := make([]identity.Labels, sets)
		for j := range lbls {
			lbls[j] = podLabels(t, "shop", fmt.Sprintf("r%d-app%02d", round, j), map[string]string{"team": "a"})
		}
		type result struct {
			set int
			id  identity.NumericIdentity
		}
		results := make(chan result, allocators*sets)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, a := range as {
			wg.Go(func() {
				<-start
				order := rand.Perm(sets)
				for _, j := range order {
					// Overlapping subsets: every allocator takes set 0 and two thirds of the rest.
					if j != 0 && (i+j)%3 == 0 {
						continue
					}
					id, err := a.Allocate(t.Context(), lbls[j])
					if err != nil {
						t.Errorf("allocator %d, set %d: %v", i, j, err)
						return
					}
					results <- result{j, id}
				}
			})
		}
		close(start)
		wg.Wait()
		close(results)
		got := make(map[int]map[identity.NumericIdentity]int)
		for r := range results {
			if got[r.set] == nil {
				got[r.set] = map[identity.NumericIdentity]int{}
			}
			got[r.set][r.id]++
		}
		for j := range sets {
			if len(got[j]) != 1 {
				t.Errorf("round %d: label set %d got %d different identities: %v", round, j, len(got[j]), got[j])
			}
		}
		ids := e.identities()
		dups, byKey := duplicates(ids)
		if dups != 0 {
			t.Errorf("round %d: %d label sets have duplicate identities", round, dups)
		}
		for j, l := range lbls {
			apiIDs := byKey[l.Key()]
			if len(apiIDs) != 1 {
				t.Errorf("round %d: label set %d has %d CiliumIdentities in the API: %v", round, j, len(apiIDs), apiIDs)
				continue
			}
			for id := range got[j] {
				if id != apiIDs[0] {
					t.Errorf("round %d: label set %d: allocators reported %d, the API has %d", round, j, id, apiIDs[0])
				}
			}
		}
	}
	if len(e.identities()) != sets*rounds {
		t.Errorf("%d identities exist, want %d", len(e.identities()), sets*rounds)
	}
	c := conflicts.snapshot()
	t.Logf("races resolved: %v", c)
	if c["claim"] == 0 {
		t.Error("no allocator ever lost a claim race: the test did not exercise the protocol")
	}
}

// TestCollisionMovesClaim sets up the state a claim is in when its ID was taken by other labels
// (a writer that does not use claims, or a collected identity reused): the allocator must move
// the claim and create the identity elsewhere, once.
func TestCollisionMovesClaim(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	web := podLabels(t, "shop", "web", nil)
	other := podLabels(t, "shop", "other", nil)
	createCID(t, e, 4000, other)
	claim := &coordinationLease{ns: e.ns, key: web.Key(), id: 4000}
	claim.create(t, e)

	a := e.allocator(identity.Config{Holder: "node-a", Range: identity.Range{Min: 4000, Max: 4009}})
	id, err := a.Allocate(ctx, web)
	if err != nil {
		t.Fatal(err)
	}
	if id == 4000 {
		t.Fatalf("web got identity 4000, which belongs to other labels")
	}
	_, byKey := duplicates(e.identities())
	if got := byKey[web.Key()]; len(got) != 1 || got[0] != id {
		t.Errorf("API identities of web = %v, want [%d]", got, id)
	}
	if got := claim.get(t, e); got != id {
		t.Errorf("claim points at %d, want %d", got, id)
	}
}

// TestAdoptsExistingIdentities: identities a Cilium agent created (no claim, possibly duplicated)
// are reused, the oldest first as Cilium's agents pick, and no new one is created.
func TestAdoptsExistingIdentities(t *testing.T) {
	e := newEnv(t)
	web := podLabels(t, "shop", "web", nil)
	createCID(t, e, 4100, web)
	createCID(t, e, 4101, web) // a duplicate, as Cilium's CRD mode makes them
	m := newCountingMetrics()
	a := e.allocator(identity.Config{Holder: "node-a", Metrics: m})
	if id, ok := a.LookupByLabels(web); !ok || id != 4100 {
		t.Errorf("LookupByLabels = %d, %v; want 4100", id, ok)
	}
	if got := a.Status().Duplicates; got != 1 {
		t.Errorf("Status().Duplicates = %d, want 1", got)
	}
	id, err := a.Allocate(t.Context(), web)
	if err != nil {
		t.Fatal(err)
	}
	if id != 4100 {
		t.Errorf("Allocate = %d, want the oldest existing identity 4100", id)
	}
	if _, w := m.snapshot(); w["create ciliumidentities"] != 0 {
		t.Errorf("created %d identities, want 0", w["create ciliumidentities"])
	}
}

// TestRestartRestore: a restarted allocator with the same holder name holds its identities again
// from its holder record, returns the same IDs without writing, and lets go of restored
// identities nobody allocates again within RestoreGracePeriod.
func TestRestartRestore(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	cfg := identity.Config{Holder: "node-a", HolderLeaseDuration: 3 * time.Second, RestoreGracePeriod: 2 * time.Second}
	a1, stop := e.startAllocator(cfg)
	lbls := make([]identity.Labels, 5)
	want := make([]identity.NumericIdentity, 5)
	for i := range lbls {
		lbls[i] = podLabels(t, "shop", name("app", i), nil)
		id, err := a1.Allocate(ctx, lbls[i])
		if err != nil {
			t.Fatal(err)
		}
		want[i] = id
	}
	waitFor(t, "holder record with 5 identities", func() bool { return len(holderIDs(t, e, "node-a")) == 5 })
	stop()

	m := newCountingMetrics()
	cfg.Metrics = m
	a2 := e.allocator(cfg)
	if s := a2.Status(); s.Restored != 5 || s.Held != 5 {
		t.Fatalf("after restart: Restored=%d Held=%d, want 5 and 5", s.Restored, s.Held)
	}
	for i := range 4 { // the fifth is not allocated again
		id, err := a2.Allocate(ctx, lbls[i])
		if err != nil {
			t.Fatal(err)
		}
		if id != want[i] {
			t.Errorf("label set %d: got %d after restart, want %d", i, id, want[i])
		}
	}
	outcomes, writes := m.snapshot()
	if outcomes["held"] != 4 {
		t.Errorf("outcomes = %v, want 4 held", outcomes)
	}
	for w, n := range writes {
		if w != "update leases" { // holder-record renewals are the only writes expected
			t.Errorf("restart wrote %d × %s, want only holder-record updates", n, w)
		}
	}
	waitFor(t, "restored-but-unused identity to leave the holder record", func() bool {
		return slices.Equal(holderIDs(t, e, "node-a"), sorted(want[:4]))
	})
	if s := a2.Status(); s.Restored != 0 || s.Held != 4 {
		t.Errorf("after the grace period: Restored=%d Held=%d, want 0 and 4", s.Restored, s.Held)
	}
}

// TestExhaustion fills a 20-ID range: the warning is logged at 90 %, the 21st label set gets an
// ExhaustedError with the usage and writes nothing, and space freed by the collector is reused
// (with an all-clear log once usage drops below 90 %).
func TestExhaustion(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	logs := &syncBuffer{}
	m := newCountingMetrics()
	const size = 20
	a := e.allocator(identity.Config{
		Holder:  "node-a",
		Range:   identity.Range{Min: 5000, Max: 5000 + size - 1},
		Logger:  newLogger(logs),
		Metrics: m,
	})
	var ids []identity.NumericIdentity
	for i := range size {
		id, err := a.Allocate(ctx, podLabels(t, "shop", name("app", i), nil))
		if err != nil {
			t.Fatalf("label set %d: %v", i, err)
		}
		ids = append(ids, id)
		if i == 16 && strings.Contains(logs.String(), "nearly exhausted") {
			t.Errorf("warned at 17/20 used")
		}
	}
	waitFor(t, "usage 20/20", func() bool { return a.Status().Used == size })
	if !strings.Contains(logs.String(), "identity space nearly exhausted") {
		t.Errorf("no exhaustion warning logged; logs:\n%s", logs)
	}
	m.mu.Lock()
	usage := m.usage
	m.mu.Unlock()
	if usage != [2]int{size, size} {
		t.Errorf("usage metric = %v, want [20 20]", usage)
	}
	before := m.totalWrites()
	extra := podLabels(t, "shop", "app-extra", nil)
	_, err := a.Allocate(ctx, extra)
	var ex *identity.ExhaustedError
	if !errors.Is(err, identity.ErrExhausted) || !errors.As(err, &ex) {
		t.Fatalf("Allocate on a full range: err = %v, want an ExhaustedError", err)
	}
	if ex.Used != size || ex.Range.Size() != size || !strings.Contains(err.Error(), "5000-5019") {
		t.Errorf("ExhaustedError = %+v (%v), want 20 of 20 used in 5000-5019", ex, err)
	}
	if got := m.totalWrites(); got != before {
		t.Errorf("a failed allocation wrote %d times", got-before)
	}
	if _, err := e.c.Kube.CoordinationV1().Leases(e.ns).Get(ctx, identity.ClaimName(extra.Key()), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a claim exists for the label set that did not fit: %v", err)
	}

	// Free three: release them, let the collector take them, and the extra label set fits.
	for _, id := range ids[:3] {
		if released, err := a.Release(ctx, id); err != nil || !released {
			t.Fatalf("Release(%d) = %v, %v", id, released, err)
		}
	}
	waitFor(t, "holder record without the released identities", func() bool { return len(holderIDs(t, e, "node-a")) == size-3 })
	g := e.gc(identity.GCConfig{GracePeriod: 100 * time.Millisecond, MinAge: time.Millisecond, IgnoreEndpoints: true})
	waitFor(t, "the collector to delete the released identities", func() bool {
		if _, err := g.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		return a.Status().Used == size-3
	})
	if !strings.Contains(logs.String(), "back below the warning ratio") {
		t.Errorf("no all-clear logged when usage dropped; logs:\n%s", logs)
	}
	id, err := a.Allocate(ctx, extra)
	if err != nil {
		t.Fatalf("Allocate after space was freed: %v", err)
	}
	if !slices.Contains(ids[:3], id) {
		t.Errorf("got %d, want one of the freed %v", id, ids[:3])
	}
}

// TestNamespaceRelabel changes a namespace's labels while 20 agents allocate the new label sets
// and an operator runs RelabelNamespace: each of the ten new label sets gets exactly one identity
// and everybody agrees on it.
func TestNamespaceRelabel(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	const apps, agents = 10, 20
	op := e.allocator(identity.Config{Holder: "operator"})
	as := make([]*identity.CRDAllocator, agents)
	for i := range as {
		as[i] = e.allocator(identity.Config{Holder: name("agent", i)})
	}
	oldLabels := map[string]string{"team": "a"}
	newLabels := map[string]string{"team": "b", "tier": "gold"}
	var old, next []identity.Labels
	for i := range apps {
		l := podLabels(t, "shop", name("app", i), oldLabels)
		if _, err := as[i%agents].Allocate(ctx, l); err != nil {
			t.Fatal(err)
		}
		old = append(old, l)
		next = append(next, podLabels(t, "shop", name("app", i), newLabels))
	}
	// Another namespace's identities must not move.
	if _, err := as[0].Allocate(ctx, podLabels(t, "bank", "vault", oldLabels)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "operator cache", func() bool { return op.Status().Known == apps+1 })
	before := len(e.identities())

	var wg sync.WaitGroup
	var res identity.RelabelResult
	var relabelErr error
	start := make(chan struct{})
	wg.Go(func() {
		<-start
		res, relabelErr = op.RelabelNamespace(ctx, "shop", newLabels)
	})
	agentIDs := make([]map[int]identity.NumericIdentity, agents)
	for i, a := range as {
		agentIDs[i] = map[int]identity.NumericIdentity{}
		wg.Go(func() {
			<-start
			for _, j := range rand.Perm(apps) {
				id, err := a.Allocate(ctx, next[j])
				if err != nil {
					t.Errorf("agent %d: %v", i, err)
					return
				}
				agentIDs[i][j] = id
			}
		})
	}
	close(start)
	wg.Wait()
	if relabelErr != nil {
		t.Fatal(relabelErr)
	}
	if len(res.Moved) != apps {
		t.Errorf("RelabelNamespace moved %d identities, want %d", len(res.Moved), apps)
	}
	ids := e.identities()
	if dups, _ := duplicates(ids); dups != 0 {
		t.Errorf("%d label sets have duplicates after the relabel", dups)
	}
	if got := len(ids) - before; got != apps {
		t.Errorf("the relabel created %d identities, want %d", got, apps)
	}
	_, byKey := duplicates(ids)
	for j := range apps {
		want := byKey[next[j].Key()]
		if len(want) != 1 {
			t.Fatalf("app %d: %d identities for the new labels", j, len(want))
		}
		oldID, _ := op.LookupByLabels(old[j])
		if res.Moved[oldID] != want[0] {
			t.Errorf("app %d: RelabelNamespace moved %d to %d, the API has %d", j, oldID, res.Moved[oldID], want[0])
		}
		for i := range agents {
			if agentIDs[i][j] != want[0] {
				t.Errorf("agent %d, app %d: got %d, want %d", i, j, agentIDs[i][j], want[0])
			}
		}
	}
}

// TestInvalidInput: bad configs and labels are rejected with the field and value named, and an
// allocation with bad labels writes nothing.
func TestInvalidInput(t *testing.T) {
	for _, tc := range []struct {
		cfg   identity.Config
		field string
		value string
	}{
		{identity.Config{Range: identity.Range{Min: 10, Max: 20}}, "Range", "10-20"},
		{identity.Config{Range: identity.Range{Min: 900, Max: 800}}, "Range", "900-800"},
		{identity.Config{Holder: "Node_A"}, "Holder", "Node_A"},
		{identity.Config{Namespace: "Kube System"}, "Namespace", "Kube System"},
		{identity.Config{HolderLeaseDuration: time.Second}, "HolderLeaseDuration", "1s"},
		{identity.Config{WarnRatio: 1.5}, "WarnRatio", "1.5"},
		{identity.Config{MaxAttempts: -1}, "MaxAttempts", "-1"},
	} {
		t.Run(tc.field+"="+tc.value, func(t *testing.T) {
			err := tc.cfg.Validate()
			var ce *identity.ConfigError
			if !errors.Is(err, identity.ErrInvalidConfig) || !errors.As(err, &ce) {
				t.Fatalf("Validate() = %v, want a ConfigError", err)
			}
			if ce.Field != tc.field || ce.Value != tc.value || !strings.Contains(err.Error(), tc.field+"="+tc.value) {
				t.Errorf("ConfigError = %q (field %q, value %q), want field %q value %q", err, ce.Field, ce.Value, tc.field, tc.value)
			}
		})
	}
	for _, tc := range []struct {
		cfg   identity.GCConfig
		field string
	}{
		{identity.GCConfig{GracePeriod: -time.Second}, "GracePeriod"},
		{identity.GCConfig{WriteQPS: -1}, "WriteQPS"},
		{identity.GCConfig{Namespace: "a/b"}, "Namespace"},
	} {
		var ce *identity.ConfigError
		if err := tc.cfg.Validate(); !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("GCConfig %+v: Validate() = %v, want a ConfigError for %s", tc.cfg, err, tc.field)
		}
	}

	e := newEnv(t)
	m := newCountingMetrics()
	a := e.allocator(identity.Config{Holder: "node-a", Metrics: m})
	before := len(e.identities())
	for _, tc := range []struct {
		name   string
		lbls   identity.Labels
		inErr  string
		isSent error
	}{
		{"bad key", identity.Labels{{Source: "k8s", Key: "bad key", Value: "x"}}, `"bad key"`, identity.ErrInvalidLabels},
		{"bad value", identity.Labels{{Source: "k8s", Key: "app", Value: "white space"}}, `"white space"`, identity.ErrInvalidLabels},
		{"conflicting", identity.Labels{{Source: "k8s", Key: "app", Value: "a"}, {Source: "k8s", Key: "app", Value: "b"}}, `app`, identity.ErrInvalidLabels},
		{"nothing relevant", identity.Labels{{Source: "k8s", Key: "pod-template-hash", Value: "abc"}}, `pod-template-hash`, identity.ErrInvalidLabels},
		{"empty", nil, `labels`, identity.ErrInvalidLabels},
		{"unknown reserved", identity.Labels{{Source: "reserved", Key: "bogus"}}, `bogus`, identity.ErrInvalidLabels},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.Allocate(t.Context(), tc.lbls)
			if !errors.Is(err, tc.isSent) || !strings.Contains(err.Error(), tc.inErr) {
				t.Errorf("Allocate(%v) = %v, want %v naming %s", tc.lbls, err, tc.isSent, tc.inErr)
			}
		})
	}
	if got := m.totalWrites(); got != 0 {
		t.Errorf("bad labels caused %d writes", got)
	}
	if after := len(e.identities()); after != before {
		t.Errorf("bad labels changed the identity count from %d to %d", before, after)
	}
	if _, err := a.Release(t.Context(), 12345); !errors.Is(err, identity.ErrNotHeld) {
		t.Errorf("Release of an identity never allocated = %v, want ErrNotHeld", err)
	}
	if _, err := identity.NewCRDAllocator(nil, identity.Config{}); !errors.Is(err, identity.ErrInvalidConfig) {
		t.Errorf("NewCRDAllocator(nil) = %v, want ErrInvalidConfig", err)
	}
}

// TestReservedAndLocal: reserved and CIDR/FQDN label sets never reach the API.
func TestReservedAndLocal(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	m := newCountingMetrics()
	a := e.allocator(identity.Config{Holder: "node-a", Metrics: m})
	host, err := identity.ParseLabels("reserved:host")
	if err != nil {
		t.Fatal(err)
	}
	if id, err := a.Allocate(ctx, host); err != nil || id != identity.ReservedHost {
		t.Errorf("Allocate(reserved:host) = %d, %v; want %d", id, err, identity.ReservedHost)
	}
	if l, ok := a.Lookup(identity.ReservedWorld); !ok || l.String() != "reserved:world" {
		t.Errorf("Lookup(world) = %v, %v", l, ok)
	}
	cidr, err := identity.ParseLabels("cidr:10.0.0.0/8", "reserved:world")
	if err != nil {
		t.Fatal(err)
	}
	id, err := a.Allocate(ctx, cidr)
	if err != nil {
		t.Fatal(err)
	}
	if id.Scope() != identity.ScopeLocal {
		t.Errorf("CIDR identity %d has scope %s, want local", id, id.Scope())
	}
	if again, _ := a.Allocate(ctx, cidr); again != id {
		t.Errorf("second CIDR allocation = %d, want %d", again, id)
	}
	if l, ok := a.Lookup(id); !ok || !l.Equal(cidr) {
		t.Errorf("Lookup(%d) = %v, %v", id, l, ok)
	}
	if rel, err := a.Release(ctx, id); err != nil || rel {
		t.Errorf("first Release = %v, %v; want false (one reference left)", rel, err)
	}
	if rel, err := a.Release(ctx, id); err != nil || !rel {
		t.Errorf("second Release = %v, %v; want true", rel, err)
	}
	if got := m.totalWrites(); got != 0 {
		t.Errorf("reserved and local identities caused %d API writes", got)
	}
}

// TestWireFormat: what the allocator writes is what Cilium writes (name = ID, security-labels,
// only the namespace in metadata.labels), and an identity written by Cilium, as raw JSON, is
// read back.
func TestWireFormat(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	a := e.allocator(identity.Config{Holder: "node-a"})
	web := podLabels(t, "shop", "web", map[string]string{"team": "a"})
	id, err := a.Allocate(ctx, web)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := e.c.Kube.Discovery().RESTClient().Get().AbsPath("/apis/cilium.io/v2/ciliumidentities/" + id.String()).DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"kind":"CiliumIdentity"`,
		`"name":"` + id.String() + `"`,
		`"labels":{"io.kubernetes.pod.namespace":"shop"}`,
		`"security-labels":{`,
		`"k8s:app":"web"`,
		`"k8s:io.cilium.k8s.namespace.labels.team":"a"`,
		`"k8s:io.kubernetes.pod.namespace":"shop"`,
	} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("identity JSON lacks %s:\n%s", want, raw)
		}
	}
	if strings.Contains(string(raw), "pod-template-hash") {
		t.Errorf("identity JSON carries a label the default filter drops:\n%s", raw)
	}

	// An identity as Cilium's agent writes it.
	cilium := `{"apiVersion":"cilium.io/v2","kind":"CiliumIdentity","metadata":{"name":"31337",` +
		`"labels":{"io.kubernetes.pod.namespace":"kube-system"}},"security-labels":{` +
		`"k8s:io.cilium.k8s.policy.cluster":"default","k8s:io.cilium.k8s.policy.serviceaccount":"coredns",` +
		`"k8s:io.kubernetes.pod.namespace":"kube-system","k8s:k8s-app":"kube-dns"}}`
	if err := e.c.Kube.Discovery().RESTClient().Post().AbsPath("/apis/cilium.io/v2/ciliumidentities").
		SetHeader("Content-Type", "application/json").Body([]byte(cilium)).Do(ctx).Error(); err != nil {
		t.Fatal(err)
	}
	dns, err := identity.PodLabels("kube-system", map[string]string{"k8s-app": "kube-dns"}, nil, "coredns", "default")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the Cilium-written identity in the cache", func() bool {
		l, ok := a.Lookup(31337)
		return ok && l.Equal(dns)
	})
	if id, err := a.Allocate(ctx, dns); err != nil || id != 31337 {
		t.Errorf("Allocate(kube-dns labels) = %d, %v; want the Cilium-written 31337", id, err)
	}
}

// createCID writes a CiliumIdentity directly, as a Cilium agent would.
func createCID(t *testing.T, e *env, id identity.NumericIdentity, l identity.Labels) {
	t.Helper()
	cid := &ciliumv2.CiliumIdentity{
		ObjectMeta:     metav1.ObjectMeta{Name: id.String(), Labels: map[string]string{identity.LabelNamespace: l.Namespace()}},
		SecurityLabels: l.SecurityLabels(),
	}
	if _, err := e.c.CiliumIdentities().Create(t.Context(), cid, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func sorted(ids []identity.NumericIdentity) []identity.NumericIdentity {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

// holderIDs reads a holder record's identities from the API.
func holderIDs(t *testing.T, e *env, holder string) []identity.NumericIdentity {
	t.Helper()
	l, err := e.c.Kube.CoordinationV1().Leases(e.ns).Get(context.Background(), identity.HolderName(holder), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	ids, err := identity.DecodeHolderIDs(l.Annotations[identity.HolderIDsAnnotation])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}
