package policy_test

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ceskit/ceskit/identity"
	"github.com/ceskit/ceskit/policy"
)

// world is a small cluster: namespaces prod and dev, pods web and db in each, plus one external
// address.
type world struct {
	t *testing.T
	e *policy.Engine
}

func newWorld(t *testing.T, cfg policy.Config) *world {
	t.Helper()
	e, err := policy.NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, e: e}
	for i, ns := range []string{"prod", "dev"} {
		for j, app := range []string{"web", "db"} {
			ep := policy.Endpoint{
				ID:              ns + "/" + app,
				Namespace:       ns,
				Labels:          map[string]string{"app": app},
				NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": ns, "env": ns},
				IPs:             []netip.Addr{netip.AddrFrom4([4]byte{10, 0, byte(i), byte(j + 1)})},
				NamedPorts:      []policy.NamedPort{{Name: "http", Port: uint16(8080 + j), Protocol: policy.ProtoTCP}},
			}
			if _, err := e.UpsertEndpoint(ep); err != nil {
				t.Fatal(err)
			}
		}
	}
	return w
}

func (w *world) apply(doc string) policy.Update {
	w.t.Helper()
	ps, err := policy.Decode([]byte(doc))
	if err != nil {
		w.t.Fatal(err)
	}
	var last policy.Update
	for _, p := range ps {
		if last, err = w.e.UpsertPolicy(p); err != nil {
			w.t.Fatal(err)
		}
	}
	return last
}

func (w *world) explain(src, dst string, proto policy.Protocol, port uint16) policy.Explanation {
	w.t.Helper()
	peer := func(s string) policy.Peer {
		if ip, err := netip.ParseAddr(s); err == nil {
			return policy.Peer{IP: ip}
		}
		return policy.Peer{Endpoint: s}
	}
	x, err := w.e.Explain(peer(src), peer(dst), proto, port)
	if err != nil {
		w.t.Fatal(err)
	}
	return x
}

func (w *world) expect(src, dst string, proto policy.Protocol, port uint16, want bool) {
	w.t.Helper()
	x := w.explain(src, dst, proto, port)
	if x.Allowed != want {
		w.t.Errorf("%s → %s %s/%d: allowed=%v, want %v\n  egress:  %s\n  ingress: %s", src, dst, proto, port, x.Allowed, want, x.Egress, x.Ingress)
	}
}

// TestDenyWinsOverAllow: a CiliumNetworkPolicy deny beats a NetworkPolicy allow, whatever the
// order, and Explain names the deny rule.
func TestDenyWinsOverAllow(t *testing.T) {
	w := newWorld(t, policy.Config{})
	w.apply(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-web, namespace: prod}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: no-5432, namespace: prod}
spec:
  endpointSelector: {matchLabels: {app: db}}
  ingressDeny:
  - fromEndpoints: [{matchLabels: {app: web}}]
    toPorts: [{ports: [{port: "5432", protocol: TCP}]}]
`)
	w.expect("prod/web", "prod/db", policy.ProtoTCP, 80, true)
	w.expect("prod/web", "prod/db", policy.ProtoTCP, 5432, false)
	w.expect("dev/web", "prod/db", policy.ProtoTCP, 80, false)
	x := w.explain("prod/web", "prod/db", policy.ProtoTCP, 5432)
	want := []policy.RuleRef{{Policy: policy.PolicyRef{Kind: "CiliumNetworkPolicy", Namespace: "prod", Name: "no-5432"}, Section: "ingressDeny"}}
	if diff := cmp.Diff(want, x.Ingress.Rules); diff != "" || x.Ingress.Verdict != policy.Deny {
		t.Errorf("deny attribution (-want +got):\n%s (verdict %s)", diff, x.Ingress.Verdict)
	}
	x = w.explain("dev/web", "prod/db", policy.ProtoTCP, 80)
	if x.Ingress.Reason != "default deny" || len(x.Ingress.Rules) != 2 {
		t.Errorf("default deny explanation = %s", x.Ingress)
	}
}

// TestPolicyTypesHonoured: an Egress-only NetworkPolicy with an ingress section does not isolate
// ingress (Cilium #48703 enforces it).
func TestPolicyTypesHonoured(t *testing.T) {
	w := newWorld(t, policy.Config{})
	w.apply(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-only, namespace: prod}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Egress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
  egress:
  - to: [{podSelector: {matchLabels: {app: web}}}]
`)
	w.expect("dev/web", "prod/db", policy.ProtoTCP, 80, true) // ingress not isolated
	w.expect("prod/db", "dev/web", policy.ProtoTCP, 80, false)
	w.expect("prod/db", "prod/web", policy.ProtoTCP, 80, true)
}

// TestCIDRModes: an ipBlock over the pod network selects pods only in ModeSpec; external
// addresses in both modes; except holes are honoured.
func TestCIDRModes(t *testing.T) {
	doc := `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: cidr, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.0.1.0/24]}}]
`
	for _, tc := range []struct {
		mode policy.Mode
		pod  bool
	}{{policy.ModeSpec, true}, {policy.ModeAKS, false}} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			w := newWorld(t, policy.Config{Mode: tc.mode})
			w.apply(doc)
			w.expect("prod/web", "prod/db", policy.ProtoTCP, 80, tc.pod)    // 10.0.0.2: in the CIDR
			w.expect("prod/web", "dev/db", policy.ProtoTCP, 80, false)      // 10.0.1.2: in the except
			w.expect("prod/web", "10.9.9.9", policy.ProtoTCP, 80, true)     // external, in the CIDR
			w.expect("prod/web", "10.0.1.77", policy.ProtoTCP, 80, false)   // external, in the except
			w.expect("prod/web", "192.168.1.1", policy.ProtoTCP, 80, false) // outside
		})
	}
}

// TestEntitiesAndCIDRSet covers fromEntities/toEntities and toCIDRSet with except.
func TestEntitiesAndCIDRSet(t *testing.T) {
	w := newWorld(t, policy.Config{})
	if _, err := w.e.UpsertNode(policy.Node{Name: "n1", IPs: []netip.Addr{netip.MustParseAddr("192.168.0.10")}, Local: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.e.UpsertNode(policy.Node{Name: "n2", IPs: []netip.Addr{netip.MustParseAddr("192.168.0.11")}}); err != nil {
		t.Fatal(err)
	}
	w.apply(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: ents, namespace: prod}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEntities: [cluster]
  egress:
  - toEntities: [kube-apiserver, remote-node]
  - toCIDRSet: [{cidr: 203.0.113.0/24, except: [203.0.113.128/25]}]
    toPorts: [{ports: [{port: "443", protocol: TCP}]}]
`)
	w.expect("dev/db", "prod/web", policy.ProtoTCP, 80, true)       // cluster
	w.expect("8.8.8.8", "prod/web", policy.ProtoTCP, 80, false)     // world
	w.expect("192.168.0.11", "prod/web", policy.ProtoUDP, 53, true) // remote node is in the cluster
	w.expect("prod/web", "192.168.0.11", policy.ProtoTCP, 10250, true)
	w.expect("prod/web", "203.0.113.5", policy.ProtoTCP, 443, true)
	w.expect("prod/web", "203.0.113.200", policy.ProtoTCP, 443, false)
	w.expect("prod/web", "203.0.113.5", policy.ProtoTCP, 80, false)
	w.expect("prod/web", "dev/db", policy.ProtoTCP, 80, false)
}

// TestNamedPortsAndRanges: named ports resolve against the destination (per pod), port ranges
// become prefix keys and match exactly their range.
func TestNamedPortsAndRanges(t *testing.T) {
	w := newWorld(t, policy.Config{})
	w.apply(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: named, namespace: dev}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress:
  - ports: [{port: http}]
  - ports: [{port: 30000, endPort: 30010, protocol: UDP}]
`)
	w.expect("dev/web", "prod/web", policy.ProtoTCP, 8080, true) // prod/web's http is 8080
	w.expect("dev/web", "prod/db", policy.ProtoTCP, 8081, true)  // prod/db's http is 8081
	w.expect("dev/web", "prod/db", policy.ProtoTCP, 8080, false)
	w.expect("dev/web", "8.8.8.8", policy.ProtoTCP, 8080, false) // a name does not resolve for an IP
	for port, want := range map[uint16]bool{29999: false, 30000: true, 30007: true, 30010: true, 30011: false} {
		w.expect("dev/web", "8.8.8.8", policy.ProtoUDP, port, want)
	}
	w.expect("dev/web", "8.8.8.8", policy.ProtoTCP, 30005, false)
	ms, err := w.e.MapState("dev/web")
	if err != nil {
		t.Fatal(err)
	}
	var udp int
	for k := range ms {
		if k.Protocol == policy.ProtoUDP {
			udp++
		}
	}
	if udp != 3 { // 30000-30007, 30008-30009, 30010
		t.Errorf("the range 30000-30010 became %d keys, want 3:\n%s", udp, ms)
	}
}

// TestAudit: audited policies (annotation, Config.AuditPolicies, Config.AuditNamespaces) allow
// what they would deny and report it as Audit with the rule; an enforced policy still denies.
func TestAudit(t *testing.T) {
	denyAll := func(ns, name string, annotate bool) string {
		a := ""
		if annotate {
			a = "annotations: {policy.ceskit.io/audit: \"true\"}"
		}
		return `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ` + name + `, namespace: ` + ns + `, ` + a + `}
spec: {podSelector: {}, policyTypes: [Ingress]}
`
	}
	for _, tc := range []struct {
		name string
		cfg  policy.Config
		doc  string
	}{
		{"annotation", policy.Config{}, denyAll("prod", "deny", true)},
		{"policy", policy.Config{AuditPolicies: []policy.PolicyRef{{Kind: "NetworkPolicy", Namespace: "prod", Name: "deny"}}}, denyAll("prod", "deny", false)},
		{"namespace", policy.Config{AuditNamespaces: []string{"prod"}}, denyAll("prod", "deny", false)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.cfg)
			w.apply(tc.doc)
			x := w.explain("dev/web", "prod/db", policy.ProtoTCP, 80)
			if !x.Allowed || x.Ingress.Verdict != policy.Audit || len(x.Ingress.Rules) != 1 || x.Ingress.Rules[0].Policy.Name != "deny" {
				t.Errorf("audited default deny: %+v", x.Ingress)
			}
			w.expect("dev/web", "dev/db", policy.ProtoTCP, 80, true) // dev is not affected
		})
	}
	// An enforced policy next to the audited one still isolates.
	w := newWorld(t, policy.Config{AuditNamespaces: []string{"prod"}})
	w.apply(denyAll("prod", "audited", false))
	w.apply(`
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: enforced}
spec:
  endpointSelector: {matchLabels: {app: db}}
  ingress: [{fromEntities: [cluster]}]
  ingressDeny:
  - fromEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: dev}}]
`)
	w.expect("prod/web", "prod/db", policy.ProtoTCP, 80, true)
	w.expect("dev/web", "prod/db", policy.ProtoTCP, 80, false)
}

// TestCapacityFailsClosed: an endpoint whose map would exceed MapCapacity gets an OverflowError
// and an empty map (everything denied), never a partial one; other endpoints are unaffected.
func TestCapacityFailsClosed(t *testing.T) {
	w := newWorld(t, policy.Config{MapCapacity: 256})
	var b strings.Builder
	b.WriteString(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: many-ports, namespace: prod}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress:
  - toEntities: [world]
    toPorts:
`)
	for p := 1000; p < 1300; p++ {
		if p%40 == 0 { // Cilium allows 40 ports per toPorts entry
			b.WriteString("    - ports:\n")
		}
		b.WriteString("      - {port: \"" + strconv.Itoa(p) + "\", protocol: TCP}\n")
	}
	u := w.apply(b.String())
	d, ok := u.Diffs["prod/web"]
	var ov *policy.OverflowError
	if !ok || !errors.As(d.Err, &ov) || ov.Needed <= 256 || ov.Capacity != 256 {
		t.Fatalf("diff for prod/web = %+v, want an OverflowError", d)
	}
	ms, err := w.e.MapState("prod/web")
	if !errors.Is(err, policy.ErrOverflow) || len(ms) != 0 {
		t.Errorf("MapState = %d entries, %v; want 0 and ErrOverflow", len(ms), err)
	}
	w.expect("prod/web", "8.8.8.8", policy.ProtoTCP, 1000, false)
	w.expect("prod/web", "prod/db", policy.ProtoTCP, 80, false) // fail closed: everything
	w.expect("prod/db", "dev/db", policy.ProtoTCP, 80, true)    // others unaffected
	if _, err := w.e.MapState("prod/db"); err != nil {
		t.Errorf("prod/db: %v", err)
	}
	// Shrinking the policy lifts the lockdown.
	if _, err := w.e.DeletePolicy(policy.PolicyRef{Kind: "CiliumNetworkPolicy", Namespace: "prod", Name: "many-ports"}); err != nil {
		t.Fatal(err)
	}
	w.expect("prod/web", "prod/db", policy.ProtoTCP, 80, true)
}

// TestIncremental: a change recomputes only the endpoints it affects and returns their diffs.
func TestIncremental(t *testing.T) {
	w := newWorld(t, policy.Config{})
	u := w.apply(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: prod}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {role: client}}}]
    ports: [{port: 5432}]
`)
	if u.Recomputed != 1 || len(u.Diffs) != 1 {
		t.Errorf("policy add: recomputed %d, diffs %v; want only prod/db", u.Recomputed, keysOf(u.Diffs))
	}
	// prod/web becomes a client: prod/db gains an entry for web's (new) identity.
	u, err := w.e.UpsertEndpoint(policy.Endpoint{
		ID: "prod/web", Namespace: "prod", Labels: map[string]string{"app": "web", "role": "client"},
		NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": "prod", "env": "prod"},
		IPs:             []netip.Addr{netip.MustParseAddr("10.0.0.1")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := u.Diffs["prod/db"]; !ok || len(u.Diffs["prod/db"].Added) != 1 {
		t.Errorf("relabel: diffs %v, want prod/db to gain one entry", u.Diffs)
	}
	if u.Recomputed > 2 {
		t.Errorf("relabel recomputed %d endpoints, want at most 2 (prod/web and prod/db)", u.Recomputed)
	}
	w.expect("prod/web", "prod/db", policy.ProtoTCP, 5432, true)
	// Deleting it removes exactly that entry.
	u, err = w.e.DeleteEndpoint("prod/web")
	if err != nil {
		t.Fatal(err)
	}
	if d := u.Diffs["prod/db"]; len(d.Removed) != 1 || len(d.Added) != 0 {
		t.Errorf("delete: prod/db diff = %+v", d)
	}
}

// TestExplainDefaultAndHost: unisolated endpoints allow everything; the local host reaches
// isolated pods unless DenyHostIngress.
func TestExplainDefaultAndHost(t *testing.T) {
	for _, deny := range []bool{false, true} {
		w := newWorld(t, policy.Config{DenyHostIngress: deny})
		if _, err := w.e.UpsertNode(policy.Node{Name: "local", IPs: []netip.Addr{netip.MustParseAddr("192.168.0.10")}, Local: true}); err != nil {
			t.Fatal(err)
		}
		x := w.explain("prod/web", "prod/db", policy.ProtoUDP, 53)
		if !x.Allowed || x.Ingress.Isolated || !strings.Contains(x.Ingress.Reason, "no policy isolates") {
			t.Errorf("unisolated: %+v", x)
		}
		w.apply(`{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"deny","namespace":"prod"},"spec":{"podSelector":{}}}`)
		w.expect("192.168.0.10", "prod/db", policy.ProtoTCP, 10250, !deny)
		w.expect("prod/web", "prod/db", policy.ProtoTCP, 80, false)
	}
}

// TestFQDN: addresses learned from DNS answers for names a toFQDNs selector matches are allowed;
// others and expired ones are not.
func TestFQDN(t *testing.T) {
	w := newWorld(t, policy.Config{})
	w.apply(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: fqdn, namespace: prod}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress:
  - toFQDNs: [{matchPattern: "*.example.com"}]
    toPorts: [{ports: [{port: "443", protocol: TCP}]}]
`)
	w.expect("prod/web", "93.184.216.34", policy.ProtoTCP, 443, false)
	u := w.e.ObserveDNS(policy.DNSAnswer{Name: "api.example.com", IPs: []netip.Addr{netip.MustParseAddr("93.184.216.34")}, TTL: 3600e9})
	if _, ok := u.Diffs["prod/web"]; !ok {
		t.Errorf("learning an address changed no map: %v", u.Diffs)
	}
	w.e.ObserveDNS(policy.DNSAnswer{Name: "example.org", IPs: []netip.Addr{netip.MustParseAddr("93.184.216.35")}, TTL: 3600e9})
	w.expect("prod/web", "93.184.216.34", policy.ProtoTCP, 443, true)
	w.expect("prod/web", "93.184.216.34", policy.ProtoTCP, 80, false)
	w.expect("prod/web", "93.184.216.35", policy.ProtoTCP, 443, false)
}

// TestBadInput: invalid policies are rejected whole with the field named; invalid endpoints and
// configs too.
func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		name, doc, field string
	}{
		{"except outside cidr", `{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"x","namespace":"a"},"spec":{"podSelector":{},"egress":[{"to":[{"ipBlock":{"cidr":"10.0.0.0/16","except":["10.1.0.0/24"]}}]}]}}`, "spec.egress[0].to[0].ipBlock.except[0]"},
		{"endPort below port", `{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"x","namespace":"a"},"spec":{"podSelector":{},"ingress":[{"ports":[{"port":90,"endPort":80}]}]}}`, "spec.ingress[0].ports[0].endPort"},
		{"unknown protocol", `{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"x","namespace":"a"},"spec":{"podSelector":{},"ingress":[{"ports":[{"protocol":"ICMP"}]}]}}`, "spec.ingress[0].ports[0].protocol"},
		{"bad selector", `{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"x","namespace":"a"},"spec":{"podSelector":{"matchExpressions":[{"key":"app","operator":"In"}]}}}`, "spec.podSelector.matchExpressions[0].values"},
		{"cnp endPort", `{"apiVersion":"cilium.io/v2","kind":"CiliumNetworkPolicy","metadata":{"name":"x","namespace":"a"},"spec":{"endpointSelector":{},"ingress":[{"toPorts":[{"ports":[{"port":"90","endPort":80}]}]}]}}`, "spec.ingress[0].toPorts[0].ports[0].endPort"},
		{"cnp protocol", `{"apiVersion":"cilium.io/v2","kind":"CiliumNetworkPolicy","metadata":{"name":"x","namespace":"a"},"spec":{"endpointSelector":{},"ingress":[{"toPorts":[{"ports":[{"port":"80","protocol":"GRE"}]}]}]}}`, "spec.ingress[0].toPorts[0].ports[0].protocol"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := policy.Decode([]byte(tc.doc))
			if !errors.Is(err, policy.ErrInvalidPolicy) || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("Decode = %v, want ErrInvalidPolicy naming %s", err, tc.field)
			}
		})
	}
	e, err := policy.NewEngine(policy.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range []policy.Endpoint{
		{Namespace: "a"},
		{ID: "a/x"},
		{ID: "a/x", Namespace: "a", Labels: map[string]string{"bad key": "v"}},
		{ID: "a/x", Namespace: "a", NamedPorts: []policy.NamedPort{{Name: "Not_Valid", Port: 80}}},
		{ID: "a/x", Namespace: "a", Identity: 5},
	} {
		if _, err := e.UpsertEndpoint(ep); !errors.Is(err, policy.ErrInvalidEndpoint) {
			t.Errorf("UpsertEndpoint(%+v) = %v, want ErrInvalidEndpoint", ep, err)
		}
	}
	if len(e.Endpoints()) != 0 {
		t.Errorf("invalid endpoints were kept: %v", e.Endpoints())
	}
	for _, cfg := range []policy.Config{{MapCapacity: 10}, {Mode: 7}, {AuditNamespaces: []string{"Not A Namespace"}}} {
		if _, err := policy.NewEngine(cfg); !errors.Is(err, policy.ErrInvalidConfig) {
			t.Errorf("NewEngine(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
	}
	// Identity hints must be consistent.
	if _, err := e.UpsertEndpoint(policy.Endpoint{ID: "a/1", Namespace: "a", Labels: map[string]string{"app": "x"}, Identity: 1000}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.UpsertEndpoint(policy.Endpoint{ID: "a/2", Namespace: "a", Labels: map[string]string{"app": "y"}, Identity: 1000}); !errors.Is(err, policy.ErrInvalidEndpoint) {
		t.Errorf("two label sets with one identity: %v", err)
	}
}

// TestMapStateLookup checks the datapath emulation's arbitration: deny by precedence across the
// specific and wildcard identity, longest prefix within one identity.
func TestMapStateLookup(t *testing.T) {
	allow := policy.Entry{Verdict: policy.Allow, Precedence: policy.PrecedenceAllow}
	deny := policy.Entry{Verdict: policy.Deny, Precedence: policy.PrecedenceDeny}
	ms := policy.MapState{
		{Identity: 300, Direction: policy.Ingress, Protocol: policy.ProtoTCP, Port: 80, PortPrefixLen: 16}: allow,
		{Identity: 0, Direction: policy.Ingress, Protocol: policy.ProtoTCP, Port: 0, PortPrefixLen: 0}:     deny,
		{Identity: 400, Direction: policy.Ingress, Protocol: policy.ProtoAny}:                              allow,
	}
	for _, tc := range []struct {
		id    identity.NumericIdentity
		proto policy.Protocol
		port  uint16
		want  policy.Verdict
		found bool
	}{
		{300, policy.ProtoTCP, 80, policy.Deny, true},  // wildcard deny has higher precedence
		{400, policy.ProtoUDP, 53, policy.Allow, true}, // only the specific allow matches
		{400, policy.ProtoTCP, 22, policy.Deny, true},
		{500, policy.ProtoUDP, 53, 0, false},
	} {
		e, ok := ms.Lookup(tc.id, policy.Ingress, tc.proto, tc.port)
		if ok != tc.found || (ok && e.Verdict != tc.want) {
			t.Errorf("Lookup(%d, %s/%d) = %v %v, want %v %v", tc.id, tc.proto, tc.port, e.Verdict, ok, tc.want, tc.found)
		}
	}
}

func keysOf(m map[string]policy.Diff) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
