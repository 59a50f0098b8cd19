package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// recorder is a Metrics that records every call as a string, and the last gauge values.
type recorder struct {
	mu    sync.Mutex
	calls []string

	enforcement map[string]int
	entries     int
	capacity    int
	selectors   int
	identities  int
	policies    int
	revision    uint64
	negative    bool // an Update with a negative duration
}

var _ Metrics = (*recorder)(nil)

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf(format, args...))
}

// take returns the calls recorded since the last take.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

func (r *recorder) PolicyChange(op, outcome string) { r.add("PolicyChange(%s, %s)", op, outcome) }

func (r *recorder) Policies(n int) {
	r.policies = n
	r.add("Policies(%d)", n)
}

func (r *recorder) Revision(rev uint64) {
	r.revision = rev
	r.add("Revision(%d)", rev)
}

func (r *recorder) Update(scope string, d time.Duration, recomputed int) {
	if d < 0 {
		r.negative = true
	}
	r.add("Update(%s, %d)", scope, recomputed)
}

func (r *recorder) Enforcement(c map[string]int) {
	if len(c) != 4 {
		r.add("Enforcement with keys %v", c)
		return
	}
	r.enforcement = c
	r.add("Enforcement(ingress=%d egress=%d both=%d none=%d)", c["ingress"], c["egress"], c["both"], c["none"])
}

func (r *recorder) MapPressure(entries, capacity int) {
	r.entries, r.capacity = entries, capacity
	r.add("MapPressure(%d, %d)", entries, capacity)
}

func (r *recorder) Overflow() { r.add("Overflow()") }

func (r *recorder) SelectorCache(selectors, identities int) {
	r.selectors, r.identities = selectors, identities
	r.add("SelectorCache(%d, %d)", selectors, identities)
}

func metricsEndpoint(id, app string, ip byte) Endpoint {
	ns, _, _ := strings.Cut(id, "/")
	return Endpoint{
		ID: id, Namespace: ns, Labels: map[string]string{"app": app},
		NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": ns},
		IPs:             []netip.Addr{netip.AddrFrom4([4]byte{10, 0, 0, ip})},
	}
}

func decodeOne(t *testing.T, doc string) *Policy {
	t.Helper()
	ps, err := Decode([]byte(doc))
	if err != nil || len(ps) != 1 {
		t.Fatalf("Decode = %v, %v", ps, err)
	}
	return ps[0]
}

// TestMetricsCalls walks an engine through every kind of change and checks the exact calls each
// makes.
func TestMetricsCalls(t *testing.T) {
	r := &recorder{}
	e, err := NewEngine(Config{Metrics: r})
	if err != nil {
		t.Fatal(err)
	}
	check := func(step string, want ...string) {
		t.Helper()
		if diff := cmp.Diff(want, r.take()); diff != "" {
			t.Errorf("%s: calls (-want +got):\n%s", step, diff)
		}
	}
	must := func(u Update, err error) Update {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	upd := func(scope string, u Update) string { return fmt.Sprintf("Update(%s, %d)", scope, u.Recomputed) }

	u := must(e.UpsertEndpoints(metricsEndpoint("x/a", "a", 1), metricsEndpoint("x/b", "b", 2), metricsEndpoint("x/c", "c", 3)))
	if u.Recomputed != 3 {
		t.Errorf("Recomputed = %d, want 3", u.Recomputed)
	}
	// Unisolated maps: allow all in and out, 2 entries.
	check("endpoints", "Update(endpoint, 3)", "Enforcement(ingress=0 egress=0 both=0 none=3)", "MapPressure(2, 16384)", "SelectorCache(0, 0)")

	ingress := decodeOne(t, `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ingress, namespace: x}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress: [{from: [{podSelector: {matchLabels: {app: b}}}], ports: [{port: 80}]}]
`)
	u = must(e.UpsertPolicy(ingress))
	if u.Recomputed == 0 {
		t.Error("ingress policy recomputed nothing")
	}
	// x/a: host in, b → TCP/80, egress allow all: 3 entries. Selectors app=a and app=b.
	check("ingress-only policy", "PolicyChange(update, success)", "Policies(1)", "Revision(1)", upd("policy", u),
		"Enforcement(ingress=1 egress=0 both=0 none=2)", "MapPressure(3, 16384)", "SelectorCache(2, 2)")
	if got := e.Revision(); got != 1 {
		t.Errorf("Revision() = %d, want 1", got)
	}

	egress := decodeOne(t, `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress, namespace: x}
spec:
  podSelector: {matchLabels: {app: b}}
  policyTypes: [Egress]
  egress: [{to: [{podSelector: {matchLabels: {app: c}}}]}]
`)
	u = must(e.UpsertPolicy(egress))
	check("egress-only policy", "PolicyChange(update, success)", "Policies(2)", "Revision(2)", upd("policy", u),
		"Enforcement(ingress=1 egress=1 both=0 none=1)", "MapPressure(3, 16384)", "SelectorCache(3, 3)")

	both := decodeOne(t, `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: both, namespace: x}
spec:
  podSelector: {matchLabels: {app: c}}
  policyTypes: [Ingress, Egress]
`)
	u = must(e.UpsertPolicy(both))
	check("ingress and egress policy", "PolicyChange(update, success)", "Policies(3)", "Revision(3)", upd("policy", u),
		"Enforcement(ingress=1 egress=1 both=1 none=0)", "MapPressure(3, 16384)", "SelectorCache(3, 3)")

	u = must(e.UpsertEndpoint(metricsEndpoint("x/d", "d", 4)))
	check("unselected endpoint", upd("endpoint", u), "Enforcement(ingress=1 egress=1 both=1 none=1)", "MapPressure(3, 16384)", "SelectorCache(3, 3)")

	// A call that fails changes nothing: every policy in it fails, no gauges.
	if _, err := e.UpsertPolicies(ingress, nil); err == nil {
		t.Error("UpsertPolicies with a nil policy succeeded")
	}
	check("invalid policy", "PolicyChange(update, failure)", "PolicyChange(update, failure)")
	if got := e.Revision(); got != 3 {
		t.Errorf("Revision() after a failure = %d, want 3", got)
	}

	// Two policies in one call: one change each, one revision.
	u = must(e.UpsertPolicies(ingress, egress))
	check("two policies", "PolicyChange(update, success)", "PolicyChange(update, success)", "Policies(3)", "Revision(4)", upd("policy", u),
		"Enforcement(ingress=1 egress=1 both=1 none=1)", "MapPressure(3, 16384)", "SelectorCache(3, 3)")

	// The fullest map (x/a, 3 entries) shrinks to 2; selector app=a goes.
	u = must(e.DeletePolicy(ingress.Ref()))
	check("delete policy", "PolicyChange(delete, success)", "Policies(2)", "Revision(5)", upd("policy", u),
		"Enforcement(ingress=0 egress=1 both=1 none=2)", "MapPressure(2, 16384)", "SelectorCache(2, 2)")

	if _, err := e.DeletePolicy(ingress.Ref()); err == nil {
		t.Error("deleting a deleted policy succeeded")
	}
	check("delete missing policy", "PolicyChange(delete, failure)")

	u = must(e.DeleteEndpoint("x/d"))
	check("delete endpoint", upd("endpoint", u), "Enforcement(ingress=0 egress=1 both=1 none=1)", "MapPressure(2, 16384)", "SelectorCache(2, 2)")

	if _, err := e.DeleteEndpoint("x/d"); err == nil {
		t.Error("deleting a deleted endpoint succeeded")
	}
	if _, err := e.UpsertEndpoint(Endpoint{ID: "bad"}); err == nil {
		t.Error("invalid endpoint accepted")
	}
	check("failed endpoint calls")

	u = must(e.UpsertNode(Node{Name: "n1", IPs: []netip.Addr{netip.MustParseAddr("192.168.0.1")}, Local: true}))
	check("node", upd("node", u), "MapPressure(2, 16384)", "SelectorCache(2, 2)")
	u = must(e.DeleteNode("n1"))
	check("delete node", upd("node", u), "MapPressure(2, 16384)", "SelectorCache(2, 2)")

	u = e.ObserveDNS(DNSAnswer{Name: "example.com", IPs: []netip.Addr{netip.MustParseAddr("93.184.216.34")}, TTL: time.Hour})
	check("dns", upd("dns", u), "MapPressure(2, 16384)", "SelectorCache(2, 2)")
	u = e.ExpireDNS()
	check("expire dns", upd("dns", u), "MapPressure(2, 16384)", "SelectorCache(2, 2)")

	if r.negative {
		t.Error("an Update reported a negative duration")
	}
}

// TestMetricsFQDNSelectorCache: identities learned from DNS enter the selector cache.
func TestMetricsFQDNSelectorCache(t *testing.T) {
	r := &recorder{}
	e, err := NewEngine(Config{Metrics: r})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.UpsertEndpoint(metricsEndpoint("x/a", "a", 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.UpsertPolicy(decodeOne(t, `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: fqdn, namespace: x}
spec:
  endpointSelector: {matchLabels: {app: a}}
  egress: [{toFQDNs: [{matchPattern: "*.example.com"}]}]
`)); err != nil {
		t.Fatal(err)
	}
	r.take()
	u := e.ObserveDNS(DNSAnswer{Name: "api.example.com", IPs: []netip.Addr{netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("93.184.216.35")}, TTL: time.Hour})
	// x/a: ingress allow all, egress to two addresses: 3 entries. Selectors: subject and fqdn.
	want := []string{fmt.Sprintf("Update(dns, %d)", u.Recomputed), "MapPressure(3, 16384)", "SelectorCache(2, 3)"}
	if u.Recomputed != 1 {
		t.Errorf("Recomputed = %d, want 1", u.Recomputed)
	}
	if diff := cmp.Diff(want, r.take()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

// TestMetricsOverflow: an endpoint over a small MapCapacity is counted on every recomputation
// that overflows, and counts as an empty map for MapPressure.
func TestMetricsOverflow(t *testing.T) {
	r := &recorder{}
	e, err := NewEngine(Config{Metrics: r, MapCapacity: 256})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.UpsertEndpoints(metricsEndpoint("x/a", "a", 1), metricsEndpoint("x/b", "b", 2)); err != nil {
		t.Fatal(err)
	}
	var ports []string
	for p := range 300 {
		ports = append(ports, fmt.Sprintf("{port: %d}", 1000+p))
	}
	big := decodeOne(t, `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: big, namespace: x}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress: [{from: [{podSelector: {matchLabels: {app: b}}}], ports: [`+strings.Join(ports, ", ")+`]}]
`)
	r.take()
	u, err := e.UpsertPolicy(big)
	if err != nil {
		t.Fatal(err)
	}
	// x/a would need 300 + host + egress = 302 entries; it fails closed with none, x/b has 2.
	want := []string{"Overflow()", "PolicyChange(update, success)", "Policies(1)", "Revision(1)", fmt.Sprintf("Update(policy, %d)", u.Recomputed),
		"Enforcement(ingress=1 egress=0 both=0 none=1)", "MapPressure(2, 256)", "SelectorCache(2, 2)"}
	if diff := cmp.Diff(want, r.take()); diff != "" {
		t.Errorf("overflowing policy: calls (-want +got):\n%s", diff)
	}
	if _, err := e.MapState("x/a"); err == nil {
		t.Fatal("x/a did not overflow")
	}
	// A second endpoint of the same identity overflows too, though its map is computed once.
	if _, err := e.UpsertEndpoint(metricsEndpoint("x/a2", "a", 3)); err != nil {
		t.Fatal(err)
	}
	if got := r.take(); len(got) == 0 || got[0] != "Overflow()" || strings.Count(strings.Join(got, " "), "Overflow()") != 1 {
		t.Errorf("second overflowing endpoint: calls %v, want one Overflow() first", got)
	}
	// Without the policy nothing overflows.
	u, err = e.DeletePolicy(big.Ref())
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"PolicyChange(delete, success)", "Policies(0)", "Revision(2)", fmt.Sprintf("Update(policy, %d)", u.Recomputed),
		"Enforcement(ingress=0 egress=0 both=0 none=3)", "MapPressure(2, 256)", "SelectorCache(0, 0)"}
	if diff := cmp.Diff(want, r.take()); diff != "" {
		t.Errorf("delete overflowing policy: calls (-want +got):\n%s", diff)
	}
}

// TestMetricsMapPressureFullest: the reported size follows the fullest endpoint when it is
// deleted or shrinks, and stays while another endpoint of the same size remains.
func TestMetricsMapPressureFullest(t *testing.T) {
	r := &recorder{}
	e, err := NewEngine(Config{Metrics: r})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.UpsertEndpoints(metricsEndpoint("x/a", "a", 1), metricsEndpoint("x/a2", "a", 2), metricsEndpoint("x/b", "b", 3)); err != nil {
		t.Fatal(err)
	}
	p := decodeOne(t, `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a, namespace: x}
spec:
  podSelector: {matchLabels: {app: a}}
  ingress: [{from: [{podSelector: {matchLabels: {app: b}}}], ports: [{port: 80}, {port: 81}, {port: 82}]}]
`)
	for _, step := range []struct {
		name string
		do   func() error
		want int
	}{
		{"policy", func() error { _, err := e.UpsertPolicy(p); return err }, 5},
		{"delete one of two fullest", func() error { _, err := e.DeleteEndpoint("x/a"); return err }, 5},
		{"delete the fullest", func() error { _, err := e.DeleteEndpoint("x/a2"); return err }, 2},
		{"fullest again", func() error { _, err := e.UpsertEndpoint(metricsEndpoint("x/a", "a", 1)); return err }, 5},
		{"fullest relabelled", func() error { _, err := e.UpsertEndpoint(metricsEndpoint("x/a", "c", 1)); return err }, 2},
		{"fullest again 2", func() error { _, err := e.UpsertEndpoint(metricsEndpoint("x/a", "a", 1)); return err }, 5},
		{"fullest shrinks", func() error { _, err := e.DeletePolicy(p.Ref()); return err }, 2},
	} {
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		r.take()
		if r.entries != step.want || r.capacity != DefaultMapCapacity {
			t.Errorf("%s: MapPressure(%d, %d), want (%d, %d)", step.name, r.entries, r.capacity, step.want, DefaultMapCapacity)
		}
	}
}

// TestMetricsNop: the zero Config reports to NopMetrics.
func TestMetricsNop(t *testing.T) {
	e, err := NewEngine(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := e.metrics.(NopMetrics); !ok {
		t.Errorf("default metrics = %T, want NopMetrics", e.metrics)
	}
	if _, err := e.UpsertEndpoint(metricsEndpoint("x/a", "a", 1)); err != nil {
		t.Fatal(err)
	}
}

// TestMetricsAggregatesMatchState applies random changes and checks after each that the reported
// gauges, maintained incrementally, equal what a full pass over the engine's state gives.
func TestMetricsAggregatesMatchState(t *testing.T) {
	for seed := range uint64(6) {
		for _, mode := range []Mode{ModeAKS, ModeSpec} {
			t.Run(fmt.Sprintf("seed=%d/%s", seed, mode), func(t *testing.T) {
				metricsRandomRun(t, seed, mode)
			})
		}
	}
}

func metricsRandomRun(t *testing.T, seed uint64, mode Mode) {
	rng := rand.New(rand.NewPCG(seed, 7))
	r := &recorder{}
	e, err := NewEngine(Config{Mode: mode, Metrics: r, MapCapacity: 256})
	if err != nil {
		t.Fatal(err)
	}
	apps := []string{"a", "b", "c", "d"}
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	randomPolicy := func(name string) *Policy {
		types := pick([]string{"[Ingress]", "[Egress]", "[Ingress, Egress]", "[]"})
		ports := "[{port: 80}]"
		if rng.IntN(6) == 0 { // too many entries for 256
			var ps []string
			for p := range 260 {
				ps = append(ps, fmt.Sprintf("{port: %d}", 2000+p))
			}
			ports = "[" + strings.Join(ps, ", ") + "]"
		}
		peer := fmt.Sprintf("{podSelector: {matchLabels: {app: %s}}}", pick(apps))
		if rng.IntN(3) == 0 {
			peer = pick([]string{"{ipBlock: {cidr: 10.0.0.0/28, except: [10.0.0.4/30]}}", "{ipBlock: {cidr: 10.0.0.0/24}}",
				fmt.Sprintf("{ipBlock: {cidr: 10.0.0.%d/30}}", 4*rng.IntN(4))})
		}
		doc := fmt.Sprintf(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: %s, namespace: x}
spec:
  podSelector: {matchLabels: {app: %s}}
  ingress: [{from: [%s], ports: %s}]
  egress: [{to: [%s]}]
`, name, pick(apps), peer, ports, peer)
		if types != "[]" {
			doc += "  policyTypes: " + types + "\n"
		}
		return decodeOne(t, doc)
	}
	fqdn := decodeOne(t, `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: fqdn, namespace: x}
spec:
  endpointSelector: {matchLabels: {app: a}}
  egress: [{toFQDNs: [{matchPattern: "*.example.com"}]}]
`)
	for step := range 150 {
		var err error
		switch op := rng.IntN(8); op {
		case 0, 1:
			i := rng.IntN(8)
			_, err = e.UpsertEndpoint(metricsEndpoint(fmt.Sprintf("x/p%d", i), pick(apps), byte(i)))
		case 2:
			_, err = e.DeleteEndpoint(fmt.Sprintf("x/p%d", rng.IntN(8)))
		case 3, 4:
			_, err = e.UpsertPolicy(randomPolicy(fmt.Sprint("p", rng.IntN(4))))
		case 5:
			ref := PolicyRef{Kind: "NetworkPolicy", Namespace: "x", Name: fmt.Sprint("p", rng.IntN(4))}
			if rng.IntN(4) == 0 {
				ref = fqdn.Ref()
			}
			_, err = e.DeletePolicy(ref)
		case 6:
			if rng.IntN(2) == 0 {
				_, err = e.UpsertPolicy(fqdn)
			} else {
				e.ObserveDNS(DNSAnswer{Name: fmt.Sprintf("h%d.example.com", rng.IntN(3)), IPs: []netip.Addr{netip.AddrFrom4([4]byte{93, 0, 0, byte(rng.IntN(4))})}, TTL: time.Hour})
			}
		case 7:
			name := fmt.Sprint("n", rng.IntN(2))
			if rng.IntN(3) == 0 {
				_, err = e.DeleteNode(name)
			} else {
				_, err = e.UpsertNode(Node{Name: name, IPs: []netip.Addr{netip.AddrFrom4([4]byte{10, 0, 0, byte(8 + rng.IntN(8))})}, Local: name == "n0"})
			}
		}
		if err != nil && !strings.Contains(err.Error(), "not found") {
			t.Fatalf("step %d: %v", step, err)
		}
		r.take()
		e.mu.Lock()
		enf := map[string]int{"ingress": 0, "egress": 0, "both": 0, "none": 0}
		most := 0
		for _, st := range e.endpoints {
			in, out := len(st.isolated[Ingress]) > 0, len(st.isolated[Egress]) > 0
			switch {
			case in && out:
				enf["both"]++
			case in:
				enf["ingress"]++
			case out:
				enf["egress"]++
			default:
				enf["none"]++
			}
			most = max(most, len(st.ms))
		}
		ids := 0
		for _, s := range e.sels {
			ids += len(s.ids)
		}
		sels, pols, rev := len(e.sels), len(e.policies), e.revision
		e.mu.Unlock()
		if r.enforcement != nil {
			if diff := cmp.Diff(enf, r.enforcement); diff != "" {
				t.Fatalf("step %d: Enforcement (-state +reported):\n%s", step, diff)
			}
		}
		if r.entries != most || r.selectors != sels || r.identities != ids {
			t.Fatalf("step %d: reported MapPressure %d, SelectorCache(%d, %d); state has %d, (%d, %d)", step, r.entries, r.selectors, r.identities, most, sels, ids)
		}
		if r.policies != pols || r.revision != rev {
			t.Fatalf("step %d: reported Policies(%d), Revision(%d); state has %d, %d", step, r.policies, r.revision, pols, rev)
		}
	}
}
