package policy_test

// Property and fuzz tests: random small clusters and random NetworkPolicies and Cilium
// policies, every flow between pods and between pods and non-pod addresses decided by the
// engine (Explain) and by the reference evaluator of reference_test.go, in both modes.

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/ceskit/ceskit/identity"
	"github.com/ceskit/ceskit/policy"
	"github.com/ceskit/ceskit/policy/ciliumv2"
)

var (
	refSeed   = flag.Uint64("ref.seed", 20260901, "first seed of TestEngineMatchesReference; world i uses seed+i")
	refWorlds = flag.Int("ref.worlds", 300, "number of random worlds TestEngineMatchesReference checks (each in both modes)")
)

// These tests found four engine bugs, all fixed since and covered by the generator: a bare
// address in fromCIDR/toCIDR was rejected; an audited deny turned an enforced default deny into
// Audit; a named port with protocol ANY opened its number on every protocol; ModeSpec CIDR rules
// did not select node addresses.

// refKV is a label key and the values the generator uses for it.
type refKV struct {
	key    string
	values []string
}

// The generator's vocabulary. Small on purpose, so that selectors often select something.
var (
	refPodKVs = []refKV{{"app", []string{"a", "b", "c"}}, {"tier", []string{"web", "db"}}, {"role", []string{"x", "y"}}}
	refNSKVs  = []refKV{{"env", []string{"prod", "dev"}}, {"team", []string{"t1", "t2"}}}
	refNSs    = []string{"alpha", "beta", "gamma"}
	refExts   = []string{"192.168.1.10", "10.0.200.7", "8.8.8.8", "172.16.5.5", "10.0.1.250"}
	// Port names, one no pod ever has.
	refPortNames   = []string{"http", "metrics", "dns", "nope"}
	refNamedPortNo = []uint16{80, 443, 8080, 9090, 53}
	refPortNos     = []int32{80, 81, 443, 8080, 53}
	refRanges      = [][2]int32{{80, 81}, {80, 90}, {8000, 8080}, {443, 8443}, {53, 53}}
	// Flows cover every number above, ports inside and outside the ranges, and 0 bits apart.
	refFlowPorts = []uint16{53, 80, 81, 85, 443, 8080, 8081, 9090}
	refProtos    = []policy.Protocol{policy.ProtoTCP, policy.ProtoUDP, policy.ProtoSCTP}
)

// refGen builds a random world from a random source.
type refGen struct {
	r      *rand.Rand
	w      *refWorld
	ns     []string
	nsLbls map[string]map[string]string
	addrs  []netip.Addr // every address in the world
}

func (g *refGen) chance(p float64) bool { return g.r.Float64() < p }

func refPick[T any](g *refGen, xs []T) T { return xs[g.r.IntN(len(xs))] }

// refGenWorld generates a world: 2–3 namespaces, 3–6 pods each, a local and a remote node,
// 2–3 external addresses, and 1–6 policies.
func refGenWorld(r *rand.Rand) *refWorld {
	g := &refGen{r: r, w: &refWorld{}, nsLbls: map[string]map[string]string{}}
	w := g.w
	used := map[netip.Addr]bool{}
	portsOf := map[string][]policy.NamedPort{} // by namespace and labels, see below
	g.ns = refNSs[:2+r.IntN(2)]
	for _, ns := range g.ns {
		nl := map[string]string{"kubernetes.io/metadata.name": ns}
		for _, kv := range refNSKVs {
			if g.chance(0.6) {
				nl[kv.key] = refPick(g, kv.values)
			}
		}
		g.nsLbls[ns] = nl
		for i := range 3 + r.IntN(4) {
			lbls := map[string]string{}
			for _, kv := range refPodKVs {
				if g.chance(0.6) {
					lbls[kv.key] = refPick(g, kv.values)
				}
			}
			var ip netip.Addr
			for {
				ip = netip.AddrFrom4([4]byte{10, 0, byte(r.IntN(4)), byte(1 + r.IntN(254))})
				if !used[ip] && !slices.Contains(refExts, ip.String()) {
					break
				}
			}
			used[ip] = true
			// Pods with the same namespace and labels share a security identity, and the
			// engine (like Cilium) resolves egress named ports per identity; so they get the
			// same container ports here, as replicas of one workload do.
			key := ns + fmt.Sprint(lbls)
			if _, ok := portsOf[key]; !ok {
				var nps []policy.NamedPort
				for _, name := range refPortNames[:3] {
					if g.chance(0.5) {
						nps = append(nps, policy.NamedPort{Name: name, Port: refPick(g, refNamedPortNo), Protocol: refPick(g, refProtos)})
					}
				}
				portsOf[key] = nps
			}
			w.Pods = append(w.Pods, policy.Endpoint{
				ID: fmt.Sprintf("%s/p%d", ns, i), Namespace: ns, Labels: lbls, NamespaceLabels: nl,
				IPs: []netip.Addr{ip}, NamedPorts: portsOf[key],
			})
			g.addrs = append(g.addrs, ip)
		}
	}
	if g.chance(0.5) {
		w.HostIP, w.RemoteNodeIP = netip.MustParseAddr("10.0.255.1"), netip.MustParseAddr("10.0.255.2")
	} else {
		w.HostIP, w.RemoteNodeIP = netip.MustParseAddr("172.20.0.1"), netip.MustParseAddr("172.20.1.1")
	}
	g.addrs = append(g.addrs, w.HostIP, w.RemoteNodeIP)
	exts := slices.Clone(refExts)
	r.Shuffle(len(exts), func(i, j int) { exts[i], exts[j] = exts[j], exts[i] })
	for _, s := range exts[:2+r.IntN(2)] {
		w.External = append(w.External, netip.MustParseAddr(s))
	}
	g.addrs = append(g.addrs, w.External...)

	for {
		for i := range r.IntN(4) {
			w.NPs = append(w.NPs, g.networkPolicy(fmt.Sprintf("np%d", i)))
		}
		for i := range r.IntN(3) {
			ns := refPick(g, g.ns)
			cnp := &ciliumv2.CiliumNetworkPolicy{TypeMeta: metav1.TypeMeta{APIVersion: "cilium.io/v2", Kind: "CiliumNetworkPolicy"}}
			cnp.Spec, cnp.Specs = g.ciliumSpecs(ns)
			cnp.ObjectMeta = g.meta(fmt.Sprintf("cnp%d", i), ns)
			w.CNPs = append(w.CNPs, cnp)
		}
		if g.chance(0.3) {
			ccnp := &ciliumv2.CiliumClusterwideNetworkPolicy{TypeMeta: metav1.TypeMeta{APIVersion: "cilium.io/v2", Kind: "CiliumClusterwideNetworkPolicy"}}
			ccnp.Spec, ccnp.Specs = g.ciliumSpecs("")
			ccnp.ObjectMeta = g.meta("ccnp0", "")
			w.CCNPs = append(w.CCNPs, ccnp)
		}
		if len(w.NPs)+len(w.CNPs)+len(w.CCNPs) > 0 {
			break
		}
	}

	w.DenyHostIngress = g.chance(0.3)
	// Audit a namespace or a policy.
	auditNS := g.ns
	if len(auditNS) > 0 && g.chance(0.15) {
		w.AuditNamespaces = []string{refPick(g, auditNS)}
	}
	var refs []policy.PolicyRef
	for _, p := range w.NPs {
		refs = append(refs, policy.PolicyRef{Kind: "NetworkPolicy", Namespace: p.Namespace, Name: p.Name})
	}
	for _, p := range w.CNPs {
		refs = append(refs, policy.PolicyRef{Kind: "CiliumNetworkPolicy", Namespace: p.Namespace, Name: p.Name})
	}
	for _, p := range w.CCNPs {
		refs = append(refs, policy.PolicyRef{Kind: "CiliumClusterwideNetworkPolicy", Name: p.Name})
	}
	if len(refs) > 0 && g.chance(0.15) {
		w.AuditPolicies = []policy.PolicyRef{refPick(g, refs)}
	}
	return w
}

// meta names a policy and, sometimes, puts it in audit mode with the annotation.
func (g *refGen) meta(name, ns string) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Name: name, Namespace: ns}
	if g.chance(0.08) {
		m.Annotations = map[string]string{policy.AuditAnnotation: "true"}
	}
	return m
}

// selector returns a label selector over kvs (keys prefixed with prefix, or for Cilium with a
// random source prefix when prefix is "?"), empty with probability empty.
func (g *refGen) selector(kvs []refKV, prefix string, empty float64) metav1.LabelSelector {
	var s metav1.LabelSelector
	if g.chance(empty) {
		return s
	}
	for range 1 + g.r.IntN(2) {
		kv := refPick(g, kvs)
		key := prefix + kv.key
		if prefix == "?" {
			key = refPick(g, []string{"", "k8s:", "any:"}) + kv.key
		}
		vals := slices.Clone(kv.values)
		g.r.Shuffle(len(vals), func(i, j int) { vals[i], vals[j] = vals[j], vals[i] })
		vals = vals[:1+g.r.IntN(min(2, len(vals)))]
		switch g.r.IntN(6) {
		case 0, 1:
			if s.MatchLabels == nil {
				s.MatchLabels = map[string]string{}
			}
			s.MatchLabels[key] = vals[0]
		case 2:
			s.MatchExpressions = append(s.MatchExpressions, metav1.LabelSelectorRequirement{Key: key, Operator: metav1.LabelSelectorOpIn, Values: vals})
		case 3:
			s.MatchExpressions = append(s.MatchExpressions, metav1.LabelSelectorRequirement{Key: key, Operator: metav1.LabelSelectorOpNotIn, Values: vals})
		case 4:
			s.MatchExpressions = append(s.MatchExpressions, metav1.LabelSelectorRequirement{Key: key, Operator: metav1.LabelSelectorOpExists})
		case 5:
			s.MatchExpressions = append(s.MatchExpressions, metav1.LabelSelectorRequirement{Key: key, Operator: metav1.LabelSelectorOpDoesNotExist})
		}
	}
	return s
}

// nsKVs are the namespace label keys, including the one the API server sets.
func (g *refGen) nsKVs() []refKV {
	return append(slices.Clone(refNSKVs), refKV{"kubernetes.io/metadata.name", g.ns})
}

// cidr returns a prefix around some address of the world and 0–2 excepts strictly inside it,
// each around some address of the world too.
func (g *refGen) cidr() (netip.Prefix, []netip.Prefix) {
	bits := refPick(g, []int{0, 8, 16, 16, 24, 24, 32})
	pfx := netip.PrefixFrom(refPick(g, g.addrs), bits).Masked()
	g.w.cidrs = append(g.w.cidrs, pfx)
	var except []netip.Prefix
	if bits < 32 && g.chance(0.5) {
		var inside []netip.Addr
		for _, a := range g.addrs {
			if pfx.Contains(a) {
				inside = append(inside, a)
			}
		}
		for range 1 + g.r.IntN(2) {
			eb := refPick(g, []int{16, 24, 32, 32})
			if eb <= bits {
				eb = 32
			}
			e := netip.PrefixFrom(refPick(g, inside), eb).Masked()
			if !slices.Contains(except, e) {
				except = append(except, e)
			}
		}
	}
	return pfx, except
}

func (g *refGen) networkPolicy(name string) *networkingv1.NetworkPolicy {
	ns := refPick(g, g.ns)
	np := &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: g.meta(name, ns),
	}
	np.Spec.PodSelector = g.selector(refPodKVs, "", 0.4)
	in, eg := networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress
	np.Spec.PolicyTypes = refPick(g, [][]networkingv1.PolicyType{nil, nil, {in}, {eg}, {eg}, {in, eg}})
	for range g.r.IntN(3) {
		np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: g.npPeers(), Ports: g.npPorts()})
	}
	for range g.r.IntN(3) {
		np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: g.npPeers(), Ports: g.npPorts()})
	}
	return np
}

func (g *refGen) npPeers() []networkingv1.NetworkPolicyPeer {
	if g.chance(0.25) {
		return nil
	}
	var out []networkingv1.NetworkPolicyPeer
	for range 1 + g.r.IntN(2) {
		var p networkingv1.NetworkPolicyPeer
		pod, ns := g.selector(refPodKVs, "", 0.3), g.selector(g.nsKVs(), "", 0.3)
		switch g.r.IntN(4) {
		case 0:
			p.PodSelector = &pod
		case 1:
			p.NamespaceSelector = &ns
		case 2:
			p.PodSelector, p.NamespaceSelector = &pod, &ns
		case 3:
			pfx, except := g.cidr()
			p.IPBlock = &networkingv1.IPBlock{CIDR: pfx.String()}
			for _, e := range except {
				p.IPBlock.Except = append(p.IPBlock.Except, e.String())
			}
		}
		out = append(out, p)
	}
	return out
}

func (g *refGen) npPorts() []networkingv1.NetworkPolicyPort {
	if g.chance(0.4) {
		return nil
	}
	var out []networkingv1.NetworkPolicyPort
	for range 1 + g.r.IntN(2) {
		var p networkingv1.NetworkPolicyPort
		if !g.chance(0.3) { // else the API server's default, TCP
			proto := refPick(g, []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP})
			p.Protocol = &proto
		}
		switch g.r.IntN(6) {
		case 0: // every port of the protocol
		case 1, 2:
			n := intstr.FromInt32(refPick(g, refPortNos))
			p.Port = &n
		case 3:
			rg := refPick(g, refRanges)
			n := intstr.FromInt32(rg[0])
			p.Port, p.EndPort = &n, &rg[1]
		default:
			n := intstr.FromString(refPick(g, refPortNames))
			p.Port = &n
		}
		out = append(out, p)
	}
	return out
}

// ciliumSpecs returns a spec and, sometimes, more rules in specs.
func (g *refGen) ciliumSpecs(ns string) (*ciliumv2.Rule, []ciliumv2.Rule) {
	spec := g.ciliumRule(ns)
	var specs []ciliumv2.Rule
	if g.chance(0.2) {
		specs = append(specs, g.ciliumRule(ns))
	}
	return &spec, specs
}

func (g *refGen) ciliumRule(ns string) ciliumv2.Rule {
	r := ciliumv2.Rule{EndpointSelector: &ciliumv2.EndpointSelector{LabelSelector: g.selector(refPodKVs, "?", 0.4)}}
	for range g.r.IntN(3) {
		r.Ingress = append(r.Ingress, ciliumv2.IngressRule{IngressCommonRule: g.ingressPeers(), ToPorts: g.portRules()})
	}
	if g.chance(0.35) {
		r.IngressDeny = append(r.IngressDeny, ciliumv2.IngressDenyRule{IngressCommonRule: g.ingressPeers(), ToPorts: g.denyPortRules()})
	}
	for range g.r.IntN(3) {
		r.Egress = append(r.Egress, ciliumv2.EgressRule{EgressCommonRule: g.egressPeers(), ToPorts: g.portRules()})
	}
	if g.chance(0.35) {
		r.EgressDeny = append(r.EgressDeny, ciliumv2.EgressDenyRule{EgressCommonRule: g.egressPeers(), ToPorts: g.denyPortRules()})
	}
	if g.chance(0.25) {
		r.EnableDefaultDeny = &ciliumv2.DefaultDenyConfig{Ingress: g.optBool(), Egress: g.optBool()}
	}
	return r
}

func (g *refGen) optBool() *bool {
	switch g.r.IntN(3) {
	case 0:
		return nil
	case 1:
		return new(true)
	}
	return new(false)
}

// refCiliumPeers are the L3 peer fields shared by ingress and egress rules.
type refCiliumPeers struct {
	eps      []ciliumv2.EndpointSelector
	cidrs    []ciliumv2.CIDR
	sets     []ciliumv2.CIDRRule
	entities []ciliumv2.Entity
}

func (g *refGen) ciliumPeers() refCiliumPeers {
	var p refCiliumPeers
	if g.chance(0.25) {
		return p // every peer
	}
	for range 1 + g.r.IntN(2) {
		switch g.r.IntN(4) {
		case 0:
			sel := g.selector(refPodKVs, "?", 0.3)
			switch g.r.IntN(6) {
			case 0:
				if sel.MatchLabels == nil {
					sel.MatchLabels = map[string]string{}
				}
				sel.MatchLabels["k8s:io.kubernetes.pod.namespace"] = refPick(g, g.ns)
			case 1:
				kv := refPick(g, refNSKVs)
				sel.MatchExpressions = append(sel.MatchExpressions, metav1.LabelSelectorRequirement{
					Key: "io.cilium.k8s.namespace.labels." + kv.key, Operator: metav1.LabelSelectorOpIn, Values: []string{refPick(g, kv.values)},
				})
			}
			p.eps = append(p.eps, ciliumv2.EndpointSelector{LabelSelector: sel})
		case 1:
			pfx, _ := g.cidr()
			c := pfx.String()
			if pfx.IsSingleIP() && g.chance(0.5) {
				c = pfx.Addr().String() // Cilium accepts a bare address
			}
			p.cidrs = append(p.cidrs, ciliumv2.CIDR(c))
		case 2:
			pfx, except := g.cidr()
			cr := ciliumv2.CIDRRule{Cidr: ciliumv2.CIDR(pfx.String())}
			for _, e := range except {
				cr.ExceptCIDRs = append(cr.ExceptCIDRs, ciliumv2.CIDR(e.String()))
			}
			p.sets = append(p.sets, cr)
		case 3:
			p.entities = append(p.entities, refPick(g, []ciliumv2.Entity{
				ciliumv2.EntityWorld, ciliumv2.EntityCluster, ciliumv2.EntityAll, ciliumv2.EntityHost, ciliumv2.EntityRemoteNode,
			}))
		}
	}
	return p
}

func (g *refGen) ingressPeers() ciliumv2.IngressCommonRule {
	p := g.ciliumPeers()
	return ciliumv2.IngressCommonRule{FromEndpoints: p.eps, FromCIDR: p.cidrs, FromCIDRSet: p.sets, FromEntities: p.entities}
}

func (g *refGen) egressPeers() ciliumv2.EgressCommonRule {
	p := g.ciliumPeers()
	return ciliumv2.EgressCommonRule{ToEndpoints: p.eps, ToCIDR: p.cidrs, ToCIDRSet: p.sets, ToEntities: p.entities}
}

func (g *refGen) ciliumPorts() []ciliumv2.PortProtocol {
	var out []ciliumv2.PortProtocol
	for range 1 + g.r.IntN(2) {
		pp := ciliumv2.PortProtocol{Protocol: refPick(g, []ciliumv2.L4Proto{"", ciliumv2.ProtoTCP, ciliumv2.ProtoUDP, ciliumv2.ProtoSCTP, ciliumv2.ProtoAny})}
		switch g.r.IntN(6) {
		case 0:
			pp.Port = "0"
		case 1, 2:
			pp.Port = strconv.Itoa(int(refPick(g, refPortNos)))
		case 3:
			rg := refPick(g, refRanges)
			pp.Port, pp.EndPort = strconv.Itoa(int(rg[0])), rg[1]
		default:
			pp.Port = refPick(g, refPortNames)
		}
		out = append(out, pp)
	}
	return out
}

func (g *refGen) portRules() []ciliumv2.PortRule {
	if g.chance(0.4) {
		return nil
	}
	return []ciliumv2.PortRule{{Ports: g.ciliumPorts()}}
}

func (g *refGen) denyPortRules() []ciliumv2.PortDenyRule {
	if g.chance(0.4) {
		return nil
	}
	return []ciliumv2.PortDenyRule{{Ports: g.ciliumPorts()}}
}

// refFilter is the default label filter, compiled once: compiling it is most of the cost of
// an empty engine.
var refFilter = sync.OnceValue(identity.DefaultFilter)

// refFlow is a protocol and destination port.
type refFlow struct {
	proto policy.Protocol
	port  uint16
}

// refSampled is how many flows (of the 24 of refFlows) the tests check per pair of peers: all
// of them would make a world cost ten times more, and more worlds find more.
const refSampled = 3

// refFlows are every protocol with every port of the vocabulary.
func refFlows() []refFlow {
	var out []refFlow
	for _, proto := range refProtos {
		for _, port := range refFlowPorts {
			out = append(out, refFlow{proto, port})
		}
	}
	return out
}

// refCheck builds an engine for w and compares Explain with the reference for every pair of
// pods and every pair of a pod and a non-pod address (the nodes, the external addresses), in
// both directions, on refSampled flows per pair drawn from refFlows with sample. It reports
// the first mismatch and returns false.
func refCheck(t testing.TB, w *refWorld, what string, sample *rand.Rand) bool {
	t.Helper()
	e, err := policy.NewEngine(policy.Config{
		Filter: refFilter(),
		Mode:   w.Mode, DenyHostIngress: w.DenyHostIngress, AuditNamespaces: w.AuditNamespaces, AuditPolicies: w.AuditPolicies,
	})
	if err != nil {
		t.Fatalf("%s: new engine: %v", what, err)
	}
	for _, ep := range w.Pods {
		if _, err := e.UpsertEndpoint(ep); err != nil {
			t.Fatalf("%s: upsert endpoint: %v", what, err)
		}
	}
	for _, n := range []policy.Node{{Name: "local", IPs: []netip.Addr{w.HostIP}, Local: true}, {Name: "remote", IPs: []netip.Addr{w.RemoteNodeIP}}} {
		if _, err := e.UpsertNode(n); err != nil {
			t.Fatalf("%s: upsert node: %v", what, err)
		}
	}
	var ps []*policy.Policy
	for _, np := range w.NPs {
		p, err := policy.FromNetworkPolicy(np)
		if err != nil {
			t.Fatalf("%s: a generated policy was rejected: %v\n%s", what, err, refDump(w))
		}
		ps = append(ps, p)
	}
	for _, cnp := range w.CNPs {
		p, err := policy.FromCiliumNetworkPolicy(cnp)
		if err != nil {
			t.Fatalf("%s: a generated policy was rejected: %v\n%s", what, err, refDump(w))
		}
		ps = append(ps, p)
	}
	for _, ccnp := range w.CCNPs {
		p, err := policy.FromCiliumClusterwideNetworkPolicy(ccnp)
		if err != nil {
			t.Fatalf("%s: a generated policy was rejected: %v\n%s", what, err, refDump(w))
		}
		ps = append(ps, p)
	}
	for _, p := range ps {
		if _, err := e.UpsertPolicy(p); err != nil {
			t.Fatalf("%s: upsert policy %s: %v", what, p.Ref(), err)
		}
	}

	nps := w.defaulted()
	type side struct {
		ref  refPeer
		peer policy.Peer
	}
	var pods, others []side
	for i := range w.Pods {
		ep := &w.Pods[i]
		s := side{refPeer{kind: "pod", pod: ep, ip: ep.IPs[0]}, policy.Peer{Endpoint: ep.ID}}
		if i%3 == 0 {
			s.peer = policy.Peer{IP: ep.IPs[0]} // Explain resolves pod addresses too
		}
		pods = append(pods, s)
	}
	for _, ip := range append([]netip.Addr{w.HostIP, w.RemoteNodeIP}, w.External...) {
		others = append(others, side{w.peerOf(ip), policy.Peer{IP: ip}})
	}
	type pair struct{ src, dst side }
	var pairs []pair
	for _, a := range pods {
		for _, b := range pods {
			pairs = append(pairs, pair{a, b})
		}
		for _, o := range others {
			pairs = append(pairs, pair{a, o}, pair{o, a})
		}
	}
	flows := refFlows()
	for _, pr := range pairs {
		sample.Shuffle(len(flows), func(i, j int) { flows[i], flows[j] = flows[j], flows[i] })
		for _, f := range flows[:refSampled] {
			x, err := e.Explain(pr.src.peer, pr.dst.peer, f.proto, f.port)
			if err != nil {
				t.Fatalf("%s: explain %s → %s: %v", what, pr.src.peer, pr.dst.peer, err)
			}
			if want, _ := w.allowed(nps, pr.src.ref, pr.dst.ref, f.proto, f.port, false); x.Allowed != want {
				_, why := w.allowed(nps, pr.src.ref, pr.dst.ref, f.proto, f.port, true)
				t.Errorf("%s: flow %s → %s %s/%d: engine allowed=%v, reference allowed=%v\n"+
					"engine:\n  egress:  %s\n  ingress: %s\nreference:\n%s\n%s",
					what, pr.src.ref, pr.dst.ref, f.proto, f.port, x.Allowed, want,
					x.Egress, x.Ingress, refIndent(why), refDump(w))
				return false
			}
		}
	}
	return true
}

func refIndent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n  ")
}

// refDump renders a world: configuration, nodes, external addresses, pods and policies (YAML).
func refDump(w *refWorld) string {
	var b strings.Builder
	fmt.Fprintf(&b, "world: mode=%s denyHostIngress=%v auditNamespaces=%v auditPolicies=%v\n", w.Mode, w.DenyHostIngress, w.AuditNamespaces, w.AuditPolicies)
	fmt.Fprintf(&b, "local node %s, remote node %s, external %v\n", w.HostIP, w.RemoteNodeIP, w.External)
	for _, ep := range w.Pods {
		fmt.Fprintf(&b, "pod %s ip=%v labels=%v nsLabels=%v ports=%v\n", ep.ID, ep.IPs, ep.Labels, ep.NamespaceLabels, ep.NamedPorts)
	}
	var objs []any
	for _, p := range w.NPs {
		objs = append(objs, p)
	}
	for _, p := range w.CNPs {
		objs = append(objs, p)
	}
	for _, p := range w.CCNPs {
		objs = append(objs, p)
	}
	for _, o := range objs {
		y, err := yaml.Marshal(o)
		if err != nil {
			y = []byte(err.Error())
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.String()
}

// refCheckBothModes checks a world in ModeAKS and in ModeSpec.
func refCheckBothModes(t testing.TB, w *refWorld, what string, sample *rand.Rand) {
	t.Helper()
	for _, m := range []policy.Mode{policy.ModeAKS, policy.ModeSpec} {
		w.Mode = m
		if !refCheck(t, w, what+" mode "+m.String(), sample) {
			return
		}
	}
}

func TestEngineMatchesReference(t *testing.T) {
	n := *refWorlds
	if testing.Short() {
		n = min(n, 50)
	}
	t.Logf("seeds %d..%d (rerun one world with -ref.seed=S -ref.worlds=1)", *refSeed, *refSeed+uint64(n)-1)
	for i := range uint64(n) {
		seed := *refSeed + i
		r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		w := refGenWorld(r)
		refCheckBothModes(t, w, fmt.Sprintf("seed %d", seed), r)
		if t.Failed() {
			return
		}
	}
}

// refByteSource feeds a fuzz input to the generator: its bytes, 8 per draw, make the first
// choices directly (so a mutated byte changes one choice), then a PCG seeded with the input's
// length makes the rest, so short inputs still make whole worlds.
type refByteSource struct {
	data []byte
	pcg  *rand.PCG
}

func newRefByteSource(data []byte) *refByteSource {
	n := uint64(len(data))
	return &refByteSource{data: data, pcg: rand.NewPCG(n, n^0x9e3779b97f4a7c15)}
}

func (s *refByteSource) Uint64() uint64 {
	if len(s.data) == 0 {
		return s.pcg.Uint64()
	}
	var buf [8]byte
	n := copy(buf[:], s.data)
	s.data = s.data[n:]
	return binary.LittleEndian.Uint64(buf[:])
}

func FuzzEngineMatchesReference(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("ceskit"))
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	f.Add([]byte("an egress-only policy with an ingress section"))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := rand.New(newRefByteSource(data))
		w := refGenWorld(r)
		refCheckBothModes(t, w, fmt.Sprintf("input %x", data), r)
	})
}
