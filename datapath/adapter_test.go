package datapath_test

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ceskit/ceskit/datapath"
	"github.com/ceskit/ceskit/identity"
	"github.com/ceskit/ceskit/policy"
)

// The adapter between the policy engine and the datapath lives in the tests (and, later, in a
// composition package): datapath must not import policy, so it takes its own Entry, which has
// the layout of a policy.Key and policy.Entry.

// adaptMapState converts one endpoint's map state into datapath entries, one per key, sorted as
// MapState.Keys sorts them: identity, direction, protocol and port prefix as they are; verdict and
// precedence as they are (both packages order precedences alike, higher wins); the cookie of the
// entry's first rule (0 when the entry has no rule, e.g. the allow-all of an endpoint no policy
// isolates, or when the rule has no cookie).
func adaptMapState(ms policy.MapState, cookies map[policy.RuleRef]uint32) []datapath.Entry {
	out := make([]datapath.Entry, 0, len(ms))
	for _, k := range ms.Keys() {
		e := ms[k]
		var cookie uint32
		if len(e.Rules) > 0 {
			cookie = cookies[e.Rules[0]]
		}
		out = append(out, datapath.Entry{
			Identity:      uint32(k.Identity),
			Direction:     adaptDirection(k.Direction),
			Protocol:      uint8(k.Protocol),
			Port:          k.Port,
			PortPrefixLen: k.PortPrefixLen,
			Verdict:       adaptVerdict(e.Verdict),
			Precedence:    e.Precedence,
			Cookie:        cookie,
		})
	}
	return out
}

func adaptDirection(d policy.Direction) datapath.Direction {
	if d == policy.Egress {
		return datapath.Egress
	}
	return datapath.Ingress
}

func adaptVerdict(v policy.Verdict) datapath.Verdict {
	switch v {
	case policy.Allow:
		return datapath.Allow
	case policy.Audit:
		return datapath.Audit
	}
	return datapath.Deny
}

// adaptCookies numbers the rules the map states reference from 1, in the order of their names, and
// returns the mapping both ways.
func adaptCookies(states ...policy.MapState) (map[policy.RuleRef]uint32, map[uint32]policy.RuleRef) {
	seen := map[policy.RuleRef]bool{}
	var refs []policy.RuleRef
	for _, ms := range states {
		for _, e := range ms {
			for _, r := range e.Rules {
				if !seen[r] {
					seen[r] = true
					refs = append(refs, r)
				}
			}
		}
	}
	slices.SortFunc(refs, func(a, b policy.RuleRef) int {
		switch sa, sb := a.String(), b.String(); {
		case sa < sb:
			return -1
		case sa > sb:
			return 1
		}
		return 0
	})
	byRef := make(map[policy.RuleRef]uint32, len(refs))
	byCookie := make(map[uint32]policy.RuleRef, len(refs))
	for i, r := range refs {
		byRef[r] = uint32(i + 1)
		byCookie[uint32(i+1)] = r
	}
	return byRef, byCookie
}

// adaptSync writes what a policy engine computed into a datapath: the map state of every
// endpoint of eps that ids gives a datapath endpoint id (SyncEndpoint), and an ipcache mapping
// the addresses of all of eps to their endpoint's effective identity (SetIdentities, host
// prefixes). It returns the rule behind each cookie, for reading events.
func adaptSync(d *datapath.Datapath, e *policy.Engine, eps []policy.Endpoint, ids map[string]uint32) (map[uint32]policy.RuleRef, error) {
	states := map[string]policy.MapState{}
	var all []policy.MapState
	for _, ep := range eps {
		if _, ok := ids[ep.ID]; !ok {
			continue
		}
		ms, err := e.MapState(ep.ID)
		if err != nil {
			return nil, fmt.Errorf("map state of %s: %w", ep.ID, err)
		}
		states[ep.ID] = ms
		all = append(all, ms)
	}
	cookies, rules := adaptCookies(all...)
	ipc := map[netip.Prefix]uint32{}
	for _, ep := range eps {
		id, err := e.Identity(ep.ID)
		if err != nil {
			return nil, fmt.Errorf("identity of %s: %w", ep.ID, err)
		}
		for _, a := range ep.IPs {
			ipc[netip.PrefixFrom(a, a.BitLen())] = uint32(id)
		}
	}
	if err := d.SetIdentities(ipc); err != nil {
		return nil, fmt.Errorf("set identities: %w", err)
	}
	for _, ep := range eps {
		ms, ok := states[ep.ID]
		if !ok {
			continue
		}
		if _, err := d.SyncEndpoint(ids[ep.ID], adaptMapState(ms, cookies)); err != nil {
			return nil, fmt.Errorf("sync endpoint %s: %w", ep.ID, err)
		}
	}
	return rules, nil
}

func TestAdaptMapState(t *testing.T) {
	np := policy.PolicyRef{Kind: "NetworkPolicy", Namespace: "prod", Name: "db"}
	cnp := policy.PolicyRef{Kind: "CiliumNetworkPolicy", Namespace: "prod", Name: "no-ssh"}
	allow0 := policy.RuleRef{Policy: np, Section: "ingress", Index: 0}
	allow1 := policy.RuleRef{Policy: np, Section: "ingress", Index: 1}
	deny0 := policy.RuleRef{Policy: cnp, Section: "ingressDeny", Index: 0}
	ms := policy.MapState{
		{Identity: 300, Direction: policy.Ingress, Protocol: policy.ProtoTCP, Port: 5432, PortPrefixLen: 16}: {
			Verdict: policy.Allow, Precedence: policy.PrecedenceAllow, Rules: []policy.RuleRef{allow1, allow0},
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
	cookies, rules := adaptCookies(ms)
	// Sorted by name: "CiliumNetworkPolicy …" before "NetworkPolicy …".
	wantCookies := map[policy.RuleRef]uint32{deny0: 1, allow0: 2, allow1: 3}
	if diff := cmp.Diff(wantCookies, cookies); diff != "" {
		t.Errorf("adaptCookies (-want +got):\n%s", diff)
	}
	for ref, c := range cookies {
		if rules[c] != ref {
			t.Errorf("cookie %d names %v, want %v", c, rules[c], ref)
		}
	}
	want := []datapath.Entry{
		{Identity: 0, Direction: datapath.Ingress, Protocol: datapath.ProtoUDP, Port: 32768, PortPrefixLen: 1,
			Verdict: datapath.Allow, Precedence: policy.PrecedenceAllow, Cookie: 3},
		{Identity: 300, Direction: datapath.Ingress, Protocol: datapath.ProtoTCP, Port: 5432, PortPrefixLen: 16,
			Verdict: datapath.Allow, Precedence: policy.PrecedenceAllow, Cookie: 3},
		{Identity: 301, Direction: datapath.Ingress, Protocol: datapath.ProtoTCP, Port: 22, PortPrefixLen: 16,
			Verdict: datapath.Deny, Precedence: policy.PrecedenceDeny, Cookie: 1},
		{Identity: 302, Direction: datapath.Ingress, Protocol: datapath.ProtoTCP,
			Verdict: datapath.Audit, Precedence: policy.PrecedenceAuditDeny, Cookie: 1},
		{Identity: 0, Direction: datapath.Egress, Protocol: datapath.ProtoAny,
			Verdict: datapath.Allow, Precedence: policy.PrecedenceAllow},
	}
	if diff := cmp.Diff(want, adaptMapState(ms, cookies)); diff != "" {
		t.Errorf("adaptMapState (-want +got):\n%s", diff)
	}
	if got := adaptMapState(policy.MapState{}, nil); len(got) != 0 {
		t.Errorf("adaptMapState(empty) = %v, want no entries", got)
	}
}

// TestAdaptConstants pins the numbering both packages share: a changed constant on one side
// would silently change verdicts.
func TestAdaptConstants(t *testing.T) {
	type pair struct{ p, d uint8 }
	for name, c := range map[string]pair{
		"ProtoAny":  {uint8(policy.ProtoAny), datapath.ProtoAny},
		"ProtoICMP": {uint8(policy.ProtoICMP), datapath.ProtoICMP},
		"ProtoTCP":  {uint8(policy.ProtoTCP), datapath.ProtoTCP},
		"ProtoUDP":  {uint8(policy.ProtoUDP), datapath.ProtoUDP},
		"ProtoSCTP": {uint8(policy.ProtoSCTP), datapath.ProtoSCTP},
		"ICMPv6":    {uint8(policy.ProtoICMPv6), datapath.ProtoICMPv6},
		"Ingress":   {uint8(policy.Ingress), uint8(datapath.Ingress)},
		"Egress":    {uint8(policy.Egress), uint8(datapath.Egress)},
		"Deny":      {uint8(policy.Deny), uint8(datapath.Deny)},
		"Allow":     {uint8(policy.Allow), uint8(datapath.Allow)},
		"Audit":     {uint8(policy.Audit), uint8(datapath.Audit)},
	} {
		if c.p != c.d {
			t.Errorf("%s: policy %d, datapath %d", name, c.p, c.d)
		}
	}
}

// adaptWorld is a small cluster with allow, deny, range, audit and default-deny rules, for the
// adapter tests.
type adaptWorld struct {
	engine *policy.Engine
	eps    []policy.Endpoint
}

const adaptPolicies = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: prod}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: 5432}, {protocol: UDP, port: 30000, endPort: 30999}]
  - from: [{namespaceSelector: {}}]
    ports: [{protocol: TCP, port: 9090}]
  egress:
  - to: [{podSelector: {matchLabels: {app: web}}}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: no-admin, namespace: prod}
spec:
  endpointSelector: {matchLabels: {app: db}}
  ingressDeny:
  - fromEndpoints: [{matchLabels: {app: admin}}]
    toPorts: [{ports: [{port: "9090", protocol: TCP}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: prod, annotations: {policy.ceskit.io/audit: "true"}}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: admin}}}]
    ports: [{protocol: TCP, port: 8000, endPort: 8100}]
`

func newAdaptWorld(t *testing.T) *adaptWorld {
	t.Helper()
	e, err := policy.NewEngine(policy.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ep := func(name, app, ip string) policy.Endpoint {
		return policy.Endpoint{ID: "prod/" + name, Namespace: "prod", Labels: map[string]string{"app": app},
			IPs: []netip.Addr{netip.MustParseAddr(ip)}}
	}
	w := &adaptWorld{engine: e, eps: []policy.Endpoint{
		ep("db", "db", "10.198.0.10"), ep("web", "web", "10.198.0.11"),
		ep("admin", "admin", "10.198.0.12"), ep("other", "other", "10.198.0.13"),
	}}
	if _, err := e.UpsertEndpoints(w.eps...); err != nil {
		t.Fatal(err)
	}
	ps, err := policy.Decode([]byte(adaptPolicies))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.UpsertPolicies(ps...); err != nil {
		t.Fatal(err)
	}
	return w
}

// adaptFlow is one flow the adapter tests check, from the endpoint's point of view.
type adaptFlow struct {
	remote identity.NumericIdentity
	dir    policy.Direction
	proto  policy.Protocol
	port   uint16
}

// flows lists flows from and to every endpoint, the reserved host and world identities, at ports
// at and around every rule's edges.
func (w *adaptWorld) flows(t *testing.T) []adaptFlow {
	t.Helper()
	remotes := []identity.NumericIdentity{identity.ReservedHost, identity.ReservedWorld}
	for _, ep := range w.eps {
		id, err := w.engine.Identity(ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		remotes = append(remotes, id)
	}
	var out []adaptFlow
	for _, id := range remotes {
		for _, dir := range []policy.Direction{policy.Ingress, policy.Egress} {
			for _, proto := range []policy.Protocol{policy.ProtoTCP, policy.ProtoUDP, policy.ProtoICMP} {
				for _, port := range []uint16{0, 22, 5432, 7999, 8000, 8100, 8101, 9090, 29999, 30000, 30500, 30999, 31000, 65535} {
					out = append(out, adaptFlow{id, dir, proto, port})
				}
			}
		}
	}
	return out
}

// TestAdaptLookupAgrees: for every endpoint of a cluster, the datapath's Go model of the lookup on
// the adapted entries gives the verdict and the first rule the policy engine's map state gives.
func TestAdaptLookupAgrees(t *testing.T) {
	w := newAdaptWorld(t)
	for _, ep := range w.eps {
		ms, err := w.engine.MapState(ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		cookies, rules := adaptCookies(ms)
		entries := adaptMapState(ms, cookies)
		if len(entries) != len(ms) {
			t.Fatalf("%s: %d entries for %d keys", ep.ID, len(entries), len(ms))
		}
		for _, f := range w.flows(t) {
			pe, pok := ms.Lookup(f.remote, f.dir, f.proto, f.port)
			de, dok := datapath.Lookup(entries, uint32(f.remote), adaptDirection(f.dir), uint8(f.proto), f.port)
			name := fmt.Sprintf("%s %s id=%d %s/%d", ep.ID, f.dir, f.remote, f.proto, f.port)
			if pok != dok {
				t.Errorf("%s: policy found=%v, datapath found=%v", name, pok, dok)
				continue
			}
			if !pok {
				continue
			}
			if adaptVerdict(pe.Verdict) != de.Verdict {
				t.Errorf("%s: policy %s, datapath %s", name, pe.Verdict, de.Verdict)
			}
			var want policy.RuleRef
			if len(pe.Rules) > 0 {
				want = pe.Rules[0]
			}
			if got := rules[de.Cookie]; got != want {
				t.Errorf("%s: datapath cookie %d names %v, policy's first rule is %v", name, de.Cookie, got, want)
			}
		}
	}
}

// TestAdaptSyncEngine syncs a whole engine into a loaded datapath and runs one packet per flow
// through each endpoint's programs (BPF_PROG_TEST_RUN, conntrack off so every packet is looked
// up): allowed and audited flows return TCX_NEXT, the rest TCX_DROP, as the map state decides.
func TestAdaptSyncEngine(t *testing.T) {
	d := e2eLoad(t, datapath.Spec{DisableConntrack: true})
	w := newAdaptWorld(t)
	ids := map[string]uint32{}
	for i, ep := range w.eps {
		ids[ep.ID] = uint32(i + 1)
	}
	if _, err := adaptSync(d, w.engine, w.eps, ids); err != nil {
		t.Fatal(err)
	}
	addrOf := map[identity.NumericIdentity]netip.Addr{
		identity.ReservedWorld: netip.MustParseAddr("192.0.2.1"), // not in the ipcache: world
	}
	for _, ep := range w.eps {
		id, err := w.engine.Identity(ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		addrOf[id] = ep.IPs[0]
	}
	checked := map[uint32]int{} // by expected return code
	for _, ep := range w.eps {
		ms, err := w.engine.MapState(ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range w.flows(t) {
			remote, ok := addrOf[f.remote]
			if !ok || f.proto == policy.ProtoICMP {
				continue // the host has no address here; ICMP "ports" are types, checked elsewhere
			}
			prog, err := d.Program(ids[ep.ID], adaptDirection(f.dir))
			if err != nil {
				t.Fatal(err)
			}
			src, dst := remote, ep.IPs[0]
			if f.dir == policy.Egress {
				src, dst = dst, remote
			}
			pkt := benchPacket(src, dst, uint8(f.proto), 40000, f.port)
			ret, _, err := prog.Test(pkt)
			if err != nil {
				t.Fatal(err)
			}
			pe, pok := ms.Lookup(f.remote, f.dir, f.proto, f.port)
			want := uint32(benchTCXDrop)
			if pok && pe.Verdict != policy.Deny {
				want = benchTCXNext
			}
			if ret != want {
				t.Errorf("%s %s %s→%s %s/%d: program returned %d, map state says %d (%+v found=%v)",
					ep.ID, f.dir, src, dst, f.proto, f.port, int32(ret), int32(want), pe, pok)
			}
			checked[want]++
		}
	}
	if checked[benchTCXNext] == 0 || checked[benchTCXDrop] == 0 {
		t.Fatalf("checked %d allowed and %d denied flows, want some of each", checked[benchTCXNext], checked[benchTCXDrop])
	}
	t.Logf("checked %d allowed and %d denied flows", checked[benchTCXNext], checked[benchTCXDrop])
}
