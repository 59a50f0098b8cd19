package policymap

import (
	"fmt"
	"net/netip"
	"os"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ceskit/ceskit/datapath"
	"github.com/ceskit/ceskit/identity"
	"github.com/ceskit/ceskit/observe"
	"github.com/ceskit/ceskit/policy"
)

var (
	refNP   = policy.PolicyRef{Kind: "NetworkPolicy", Namespace: "prod", Name: "db"}
	refCNP  = policy.PolicyRef{Kind: "CiliumNetworkPolicy", Namespace: "prod", Name: "no-ssh"}
	refCCNP = policy.PolicyRef{Kind: "CiliumClusterwideNetworkPolicy", Name: "base"}
	allow0  = policy.RuleRef{Policy: refNP, Section: "ingress", Index: 0}
	allow1  = policy.RuleRef{Policy: refNP, Section: "ingress", Index: 1}
	deny0   = policy.RuleRef{Policy: refCNP, Section: "ingressDeny", Index: 0}
	ccnp0   = policy.RuleRef{Policy: refCCNP, Spec: 2, Section: "egress", Index: 3}
)

func TestEntries(t *testing.T) {
	ms := policy.MapState{
		{Identity: 300, Direction: policy.Ingress, Protocol: policy.ProtoTCP, Port: 5432, PortPrefixLen: 16}: {
			Verdict: policy.Allow, Precedence: policy.PrecedenceAllow, Rules: []policy.RuleRef{allow0, allow1},
		},
		{Identity: 0, Direction: policy.Ingress, Protocol: policy.ProtoUDP, Port: 32768, PortPrefixLen: 1}: {
			Verdict: policy.Allow, Precedence: policy.PrecedenceAllow, Rules: []policy.RuleRef{allow1},
		},
		{Identity: 301, Direction: policy.Ingress, Protocol: policy.ProtoTCP, Port: 22, PortPrefixLen: 16}: {
			Verdict: policy.Deny, Precedence: policy.PrecedenceDeny, Rules: []policy.RuleRef{deny0},
		},
		{Identity: 302, Direction: policy.Ingress, Protocol: policy.ProtoTCP}: {
			Verdict: policy.Audit, Precedence: policy.PrecedenceAuditDeny, Rules: []policy.RuleRef{deny0},
		},
		{Identity: 0, Direction: policy.Egress, Protocol: policy.ProtoAny}: {
			Verdict: policy.Allow, Precedence: policy.PrecedenceAllow,
		},
	}
	c := &Cookies{}
	want := []datapath.Entry{
		{Identity: 0, Direction: datapath.Ingress, Protocol: datapath.ProtoUDP, Port: 32768, PortPrefixLen: 1,
			Verdict: datapath.Allow, Precedence: policy.PrecedenceAllow, Cookie: c.Cookie(allow1)},
		{Identity: 300, Direction: datapath.Ingress, Protocol: datapath.ProtoTCP, Port: 5432, PortPrefixLen: 16,
			Verdict: datapath.Allow, Precedence: policy.PrecedenceAllow, Cookie: c.Cookie(allow0)},
		{Identity: 301, Direction: datapath.Ingress, Protocol: datapath.ProtoTCP, Port: 22, PortPrefixLen: 16,
			Verdict: datapath.Deny, Precedence: policy.PrecedenceDeny, Cookie: c.Cookie(deny0)},
		{Identity: 302, Direction: datapath.Ingress, Protocol: datapath.ProtoTCP,
			Verdict: datapath.Audit, Precedence: policy.PrecedenceAuditDeny, Cookie: c.Cookie(deny0)},
		{Identity: 0, Direction: datapath.Egress, Protocol: datapath.ProtoAny,
			Verdict: datapath.Allow, Precedence: policy.PrecedenceAllow},
	}
	if diff := cmp.Diff(want, Entries(ms, c)); diff != "" {
		t.Errorf("Entries (-want +got):\n%s", diff)
	}
	for _, e := range Entries(ms, nil) {
		if e.Cookie != 0 {
			t.Errorf("without cookies: entry %+v has a cookie", e)
		}
	}
	if got := Entries(policy.MapState{}, c); len(got) != 0 {
		t.Errorf("empty map state: %v", got)
	}
}

// TestConstants pins the numbering policy and datapath share: a changed constant on one
// side would silently change verdicts.
func TestConstants(t *testing.T) {
	for name, c := range map[string][2]uint8{
		"ProtoAny": {uint8(policy.ProtoAny), datapath.ProtoAny}, "ProtoICMP": {uint8(policy.ProtoICMP), datapath.ProtoICMP},
		"ProtoTCP": {uint8(policy.ProtoTCP), datapath.ProtoTCP}, "ProtoUDP": {uint8(policy.ProtoUDP), datapath.ProtoUDP},
		"ProtoSCTP": {uint8(policy.ProtoSCTP), datapath.ProtoSCTP}, "ICMPv6": {uint8(policy.ProtoICMPv6), datapath.ProtoICMPv6},
		"Ingress": {uint8(policy.Ingress), uint8(datapath.Ingress)}, "Egress": {uint8(policy.Egress), uint8(datapath.Egress)},
		"Deny": {uint8(policy.Deny), uint8(Verdict(policy.Deny))}, "Allow": {uint8(policy.Allow), uint8(Verdict(policy.Allow))},
		"Audit": {uint8(policy.Audit), uint8(Verdict(policy.Audit))},
	} {
		if c[0] != c[1] {
			t.Errorf("%s: policy %d, datapath %d", name, c[0], c[1])
		}
	}
}

// TestEntriesLookupAgree: for every endpoint of a small cluster, the datapath's model of its
// lookup on the converted entries gives the verdict and the rule (through the cookie) that the
// engine's map state gives.
func TestEntriesLookupAgree(t *testing.T) {
	e, err := policy.NewEngine(policy.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var eps []policy.Endpoint
	for i, app := range []string{"db", "web", "admin", "other"} {
		eps = append(eps, policy.Endpoint{ID: "prod/" + app, Namespace: "prod", Labels: map[string]string{"app": app},
			IPs: []netip.Addr{netip.AddrFrom4([4]byte{10, 198, 0, byte(10 + i)})}})
	}
	if _, err := e.UpsertEndpoints(eps...); err != nil {
		t.Fatal(err)
	}
	manifests, err := os.ReadFile("testdata/cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ps, err := policy.Decode(manifests)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.UpsertPolicies(ps...); err != nil {
		t.Fatal(err)
	}
	remotes := []identity.NumericIdentity{identity.ReservedHost, identity.ReservedWorld}
	for _, ep := range eps {
		id, err := e.Identity(ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		remotes = append(remotes, id)
	}
	cookies := &Cookies{}
	checked := 0
	for _, ep := range eps {
		ms, err := e.MapState(ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		entries := Entries(ms, cookies)
		for _, id := range remotes {
			for _, dir := range []policy.Direction{policy.Ingress, policy.Egress} {
				for _, proto := range []policy.Protocol{policy.ProtoTCP, policy.ProtoUDP} {
					for _, port := range []uint16{0, 22, 5432, 7999, 8000, 8100, 8101, 9090, 29999, 30000, 30999, 31000, 65535} {
						name := fmt.Sprintf("%s %s id=%d %s/%d", ep.ID, dir, id, proto, port)
						pe, pok := ms.Lookup(id, dir, proto, port)
						de, dok := datapath.Lookup(entries, uint32(id), Direction(dir), uint8(proto), port)
						checked++
						if pok != dok {
							t.Errorf("%s: policy found=%v, datapath found=%v", name, pok, dok)
							continue
						}
						if !pok {
							continue
						}
						if Verdict(pe.Verdict) != de.Verdict {
							t.Errorf("%s: policy %s, datapath %s", name, pe.Verdict, de.Verdict)
						}
						var want policy.RuleRef
						if len(pe.Rules) > 0 {
							want = pe.Rules[0]
						}
						got, _ := cookies.Rule(de.Cookie)
						if got != want {
							t.Errorf("%s: cookie %d names %v, the engine's first rule is %v", name, de.Cookie, got, want)
						}
					}
				}
			}
		}
	}
	t.Logf("%d flows agree", checked)
}

func TestCookies(t *testing.T) {
	a, b := &Cookies{}, &Cookies{}
	// Stable: the same rule gets the same cookie whatever the order and the instance (so after a
	// restart, and on every node).
	rules := []policy.RuleRef{allow0, allow1, deny0, ccnp0}
	for _, r := range rules {
		a.Cookie(r)
	}
	for i := len(rules) - 1; i >= 0; i-- {
		b.Cookie(rules[i])
	}
	seen := map[uint32]bool{}
	for _, r := range rules {
		c := a.Cookie(r)
		if c == 0 || c != b.Cookie(r) || c != hash32(r.String()) || seen[c] {
			t.Errorf("cookie of %v: %d and %d (hash %d), want the same, non-zero, distinct", r, c, b.Cookie(r), hash32(r.String()))
		}
		seen[c] = true
		if got, ok := a.Rule(c); !ok || got != r {
			t.Errorf("Rule(%d) = %v, %v; want %v", c, got, ok, r)
		}
	}
	if a.Len() != 4 {
		t.Errorf("Len = %d, want 4", a.Len())
	}

	// Resolution back to Hubble's policy names.
	ps, rule, ok := a.Policy(a.Cookie(deny0))
	wantPolicy := []observe.Policy{{Kind: "CiliumNetworkPolicy", Namespace: "prod", Name: "no-ssh", Labels: []string{
		"k8s:io.cilium.k8s.policy.derived-from=CiliumNetworkPolicy", "k8s:io.cilium.k8s.policy.name=no-ssh", "k8s:io.cilium.k8s.policy.namespace=prod"}}}
	if diff := cmp.Diff(wantPolicy, ps); diff != "" || !ok || rule != "CiliumNetworkPolicy prod/no-ssh ingressDeny[0]" {
		t.Errorf("Policy(deny0) = %q, %v (-want +got):\n%s", rule, ok, diff)
	}
	ps, rule, _ = a.Policy(a.Cookie(ccnp0))
	if len(ps) != 1 || ps[0].Namespace != "" || ps[0].Name != "base" || len(ps[0].Labels) != 2 || rule != "CiliumClusterwideNetworkPolicy base specs[1] egress[3]" {
		t.Errorf("Policy(ccnp0) = %+v, %q", ps, rule)
	}
	if _, _, ok := a.Policy(0); ok {
		t.Error("cookie 0 resolved")
	}
	if _, _, ok := a.Policy(12345); ok {
		t.Error("unknown cookie resolved")
	}

	// Forget drops a policy's rules only; they get the same cookies back.
	c0, c1, cd := a.Cookie(allow0), a.Cookie(allow1), a.Cookie(deny0)
	a.Forget(refNP)
	if _, ok := a.Rule(c0); ok {
		t.Error("forgotten rule still resolves")
	}
	if _, ok := a.Rule(cd); !ok || a.Len() != 2 {
		t.Errorf("Forget(NP) dropped other rules: len %d", a.Len())
	}
	if a.Cookie(allow1) != c1 || a.Cookie(allow0) != c0 {
		t.Error("a forgotten rule came back with another cookie")
	}
	if got := a.Policies(); !cmp.Equal(got, []policy.PolicyRef{refCCNP, refCNP, refNP}) {
		t.Errorf("Policies = %v", got)
	}

	// A collision takes the next free value.
	col := &Cookies{}
	h := hash32(allow0.String())
	col.byRule = map[policy.RuleRef]uint32{deny0: h, ccnp0: h + 1}
	col.byCookie = map[uint32]policy.RuleRef{h: deny0, h + 1: ccnp0}
	if got := col.Cookie(allow0); got != h+2 {
		t.Errorf("colliding cookie = %d, want %d", got, h+2)
	}

	// Safe for concurrent use.
	var wg sync.WaitGroup
	cc := &Cookies{}
	for i := range 8 {
		wg.Go(func() {
			for j := range 200 {
				r := policy.RuleRef{Policy: refNP, Section: "ingress", Index: (i*200 + j) % 300}
				if got, _ := cc.Rule(cc.Cookie(r)); got != r {
					t.Errorf("round trip of %v gave %v", r, got)
				}
			}
		})
	}
	wg.Wait()
	if cc.Len() != 300 {
		t.Errorf("concurrent: %d cookies, want 300", cc.Len())
	}
}
