package policy_test

// A reference evaluator for the property and fuzz tests in fuzz_test.go: it decides a flow
// straight from the raw policy objects, following the rules of the Kubernetes NetworkPolicy
// spec and of Cilium's CiliumNetworkPolicy as shared/reference/policy-datapath.md §1.1 and §2
// state them. It shares nothing with the engine but the public types: no identities, no
// selector cache, no map state, no caching. Every decision is recomputed from the objects.
//
// Supported subset: NetworkPolicy fully (after policy.DefaultNetworkPolicy); Cilium rules with
// endpointSelector, ingress/egress/ingressDeny/egressDeny, from/toEndpoints, from/toCIDR,
// from/toCIDRSet (cidr + except), from/toEntities (all, world, cluster, host, remote-node),
// toPorts (port, endPort, protocol incl. ANY and empty, named ports), enableDefaultDeny.

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/ceskit/ceskit/policy"
	"github.com/ceskit/ceskit/policy/ciliumv2"
)

// refWorld is a cluster and its policies, as the reference evaluator sees them.
type refWorld struct {
	Mode            policy.Mode
	DenyHostIngress bool
	AuditNamespaces []string
	AuditPolicies   []policy.PolicyRef

	Pods         []policy.Endpoint
	HostIP       netip.Addr // the local node
	RemoteNodeIP netip.Addr // another node
	External     []netip.Addr

	// NPs are the NetworkPolicies as written; the reference evaluates them as the API server
	// stores them, defaulted by policy.DefaultNetworkPolicy (see defaulted).
	NPs   []*networkingv1.NetworkPolicy
	CNPs  []*ciliumv2.CiliumNetworkPolicy
	CCNPs []*ciliumv2.CiliumClusterwideNetworkPolicy

	cidrs []netip.Prefix // every CIDR the generator put into a policy (not used by the reference)
}

// defaulted returns copies of the NetworkPolicies with the API server's defaults applied.
func (w *refWorld) defaulted() []*networkingv1.NetworkPolicy {
	out := make([]*networkingv1.NetworkPolicy, len(w.NPs))
	for i, np := range w.NPs {
		out[i] = np.DeepCopy()
		policy.DefaultNetworkPolicy(out[i])
	}
	return out
}

// refPeer is one side of a flow: a pod, the local host, a remote node or the world.
type refPeer struct {
	kind string // "pod", "host", "remote-node", "world"
	pod  *policy.Endpoint
	ip   netip.Addr
}

func (p refPeer) String() string {
	if p.pod != nil {
		return p.pod.ID
	}
	return p.kind + " " + p.ip.String()
}

// peerOf classifies an address.
func (w *refWorld) peerOf(ip netip.Addr) refPeer {
	for i := range w.Pods {
		if slices.Contains(w.Pods[i].IPs, ip) {
			return refPeer{kind: "pod", pod: &w.Pods[i], ip: ip}
		}
	}
	switch ip {
	case w.HostIP:
		return refPeer{kind: "host", ip: ip}
	case w.RemoteNodeIP:
		return refPeer{kind: "remote-node", ip: ip}
	}
	return refPeer{kind: "world", ip: ip}
}

// allowed decides a flow: the source's egress and the destination's ingress must both allow it.
// Only pods enforce policy. nps are the NetworkPolicies, defaulted. With trace, the string
// says why, rule by rule.
func (w *refWorld) allowed(nps []*networkingv1.NetworkPolicy, src, dst refPeer, proto policy.Protocol, port uint16, trace bool) (bool, string) {
	ok, why := true, ""
	if src.pod != nil {
		e, r := w.side(nps, src.pod, policy.Egress, dst, dst, proto, port, trace)
		ok, why = ok && e, why+"egress of "+src.pod.ID+": "+r+"\n"
	}
	if dst.pod != nil {
		i, r := w.side(nps, dst.pod, policy.Ingress, src, dst, proto, port, trace)
		ok, why = ok && i, why+"ingress of "+dst.pod.ID+": "+r+"\n"
	}
	return ok, why
}

// side decides one direction of one pod. remote is the other side; dst is the flow's
// destination, against which named ports resolve.
func (w *refWorld) side(nps []*networkingv1.NetworkPolicy, subject *policy.Endpoint, dir policy.Direction, remote, dst refPeer,
	proto policy.Protocol, port uint16, trace bool) (bool, string) {
	var isolating, allows, denies []string
	note := func(list *[]string, format string, args ...any) {
		if trace {
			format = fmt.Sprintf(format, args...)
		}
		*list = append(*list, format)
	}
	for _, np := range nps {
		ref := policy.PolicyRef{Kind: "NetworkPolicy", Namespace: np.Namespace, Name: np.Name}
		want := networkingv1.PolicyTypeIngress
		if dir == policy.Egress {
			want = networkingv1.PolicyTypeEgress
		}
		if np.Namespace != subject.Namespace || !refSelects(&np.Spec.PodSelector, refMapLabels(subject.Labels)) || !slices.Contains(np.Spec.PolicyTypes, want) {
			continue // not selected, or the section is not in policyTypes (then it is ignored)
		}
		if !w.audited(ref, np.Annotations) {
			note(&isolating, "%s", ref)
		}
		if dir == policy.Ingress {
			for i, r := range np.Spec.Ingress {
				if w.npPeers(r.From, np.Namespace, remote) && refNPPorts(r.Ports, dst, proto, port) {
					note(&allows, "%s ingress[%d]", ref, i)
				}
			}
		} else {
			for i, r := range np.Spec.Egress {
				if w.npPeers(r.To, np.Namespace, remote) && refNPPorts(r.Ports, dst, proto, port) {
					note(&allows, "%s egress[%d]", ref, i)
				}
			}
		}
	}
	type cilium struct {
		ref   policy.PolicyRef
		ann   map[string]string
		rules []ciliumv2.Rule
	}
	var cps []cilium
	for _, p := range w.CNPs {
		cps = append(cps, cilium{policy.PolicyRef{Kind: "CiliumNetworkPolicy", Namespace: p.Namespace, Name: p.Name}, p.Annotations, refRules(p.Spec, p.Specs)})
	}
	for _, p := range w.CCNPs {
		cps = append(cps, cilium{policy.PolicyRef{Kind: "CiliumClusterwideNetworkPolicy", Name: p.Name}, p.Annotations, refRules(p.Spec, p.Specs)})
	}
	for _, cp := range cps {
		audited := w.audited(cp.ref, cp.ann)
		for si, r := range cp.rules {
			if r.EndpointSelector == nil {
				continue
			}
			sel := &r.EndpointSelector.LabelSelector
			if cp.ref.Namespace != "" {
				// A namespaced policy selects in its namespace only; Cilium drops a namespace
				// match the user wrote into its endpointSelector.
				if cp.ref.Namespace != subject.Namespace {
					continue
				}
				sel = refWithoutNamespace(sel)
			}
			if !refSelects(sel, refCiliumLabels(subject)) {
				continue
			}
			type check struct {
				section string
				deny    bool
				peers   bool
				ports   bool
			}
			var checks []check
			var dd *bool
			if r.EnableDefaultDeny != nil {
				dd = r.EnableDefaultDeny.Ingress
			}
			if dir == policy.Ingress {
				for _, x := range r.Ingress {
					checks = append(checks, check{"ingress", false, w.ciliumIngressPeers(&x.IngressCommonRule, cp.ref.Namespace, remote), refCiliumPorts(x.ToPorts, dst, proto, port)})
				}
				for _, x := range r.IngressDeny {
					checks = append(checks, check{"ingressDeny", true, w.ciliumIngressPeers(&x.IngressCommonRule, cp.ref.Namespace, remote), refCiliumDenyPorts(x.ToPorts, dst, proto, port)})
				}
			} else {
				dd = nil
				if r.EnableDefaultDeny != nil {
					dd = r.EnableDefaultDeny.Egress
				}
				for _, x := range r.Egress {
					checks = append(checks, check{"egress", false, w.ciliumEgressPeers(&x.EgressCommonRule, cp.ref.Namespace, remote), refCiliumPorts(x.ToPorts, dst, proto, port)})
				}
				for _, x := range r.EgressDeny {
					checks = append(checks, check{"egressDeny", true, w.ciliumEgressPeers(&x.EgressCommonRule, cp.ref.Namespace, remote), refCiliumDenyPorts(x.ToPorts, dst, proto, port)})
				}
			}
			// A rule with rules in a direction isolates that direction unless
			// enableDefaultDeny.<dir> is false.
			if len(checks) > 0 && (dd == nil || *dd) && !audited {
				note(&isolating, "%s rule %d", cp.ref, si)
			}
			for i, c := range checks {
				switch {
				case !c.peers || !c.ports:
				case c.deny && !audited:
					note(&denies, "%s rule %d %s #%d", cp.ref, si, c.section, i)
				case !c.deny:
					note(&allows, "%s rule %d %s #%d", cp.ref, si, c.section, i)
				}
			}
		}
	}
	if dir == policy.Ingress && remote.kind == "host" && !w.DenyHostIngress {
		allows = append(allows, "allow-localhost")
	}
	why := ""
	if trace {
		why = fmt.Sprintf("isolated by %q, allowed by %q, denied by %q", isolating, allows, denies)
	}
	switch {
	case len(denies) > 0:
		return false, "deny: " + why
	case len(isolating) == 0:
		return true, "allow (not isolated): " + why
	case len(allows) > 0:
		return true, "allow: " + why
	}
	return false, "deny (default deny): " + why
}

// audited reports whether a policy is in audit mode: what it denies or isolates is allowed.
func (w *refWorld) audited(ref policy.PolicyRef, annotations map[string]string) bool {
	return annotations[policy.AuditAnnotation] == "true" || slices.Contains(w.AuditPolicies, ref) ||
		(ref.Namespace != "" && slices.Contains(w.AuditNamespaces, ref.Namespace))
}

func refRules(spec *ciliumv2.Rule, specs []ciliumv2.Rule) []ciliumv2.Rule {
	var out []ciliumv2.Rule
	if spec != nil {
		out = append(out, *spec)
	}
	return append(out, specs...)
}

// refLabels looks a label up.
type refLabels func(key string) (string, bool)

func refMapLabels(m map[string]string) refLabels {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// refSelects is Kubernetes label selector matching: all requirements hold; NotIn and
// DoesNotExist hold when the key is absent; a nil selector selects nothing, {} everything.
func refSelects(sel *metav1.LabelSelector, labels refLabels) bool {
	if sel == nil {
		return false
	}
	for k, v := range sel.MatchLabels {
		if got, ok := labels(k); !ok || got != v {
			return false
		}
	}
	for _, e := range sel.MatchExpressions {
		v, ok := labels(e.Key)
		switch e.Operator {
		case metav1.LabelSelectorOpIn:
			if !ok || !slices.Contains(e.Values, v) {
				return false
			}
		case metav1.LabelSelectorOpNotIn:
			if ok && slices.Contains(e.Values, v) {
				return false
			}
		case metav1.LabelSelectorOpExists:
			if !ok {
				return false
			}
		case metav1.LabelSelectorOpDoesNotExist:
			if ok {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// refCiliumLabels are the labels a Cilium endpoint selector sees for a pod: its labels, its
// namespace and its namespace's labels; keys may carry the k8s: or any: source prefix.
func refCiliumLabels(ep *policy.Endpoint) refLabels {
	return func(k string) (string, bool) {
		k = strings.TrimPrefix(strings.TrimPrefix(k, "k8s:"), "any:")
		if k == "io.kubernetes.pod.namespace" {
			return ep.Namespace, true
		}
		if nk, ok := strings.CutPrefix(k, "io.cilium.k8s.namespace.labels."); ok {
			v, ok := ep.NamespaceLabels[nk]
			return v, ok
		}
		v, ok := ep.Labels[k]
		return v, ok
	}
}

// npPeers: no peers means every peer; otherwise any peer matches. podSelector and
// namespaceSelector in one peer are ANDed; a missing namespaceSelector means the policy's
// namespace. They select pods only.
func (w *refWorld) npPeers(peers []networkingv1.NetworkPolicyPeer, policyNS string, remote refPeer) bool {
	if len(peers) == 0 {
		return true
	}
	for _, p := range peers {
		if p.IPBlock != nil {
			if w.cidrMatches(p.IPBlock.CIDR, p.IPBlock.Except, remote) {
				return true
			}
			continue
		}
		if remote.pod == nil {
			continue
		}
		podOK := p.PodSelector == nil || refSelects(p.PodSelector, refMapLabels(remote.pod.Labels))
		nsOK := remote.pod.Namespace == policyNS
		if p.NamespaceSelector != nil {
			nsOK = refSelects(p.NamespaceSelector, refMapLabels(remote.pod.NamespaceLabels))
		}
		if podOK && nsOK {
			return true
		}
	}
	return false
}

// cidrMatches: the address lies in cidr and in no except. In ModeAKS only world addresses
// qualify (pods and nodes are never selected by CIDR); in ModeSpec every address does.
func (w *refWorld) cidrMatches(cidr string, except []string, remote refPeer) bool {
	if w.Mode == policy.ModeAKS && remote.kind != "world" {
		return false
	}
	if !refParsePrefix(cidr).Contains(remote.ip) {
		return false
	}
	for _, e := range except {
		if refParsePrefix(e).Contains(remote.ip) {
			return false
		}
	}
	return true
}

// refParsePrefix parses a prefix, or a single address as its /32 (/128).
func refParsePrefix(s string) netip.Prefix {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen())
	}
	return netip.MustParsePrefix(s)
}

// refNPPorts: no ports means every port and protocol; otherwise one entry must match the
// protocol (defaulted to TCP) and the port: absent = every port, a number (up to endPort), or a
// name resolved against the destination pod's container ports of that protocol.
func refNPPorts(ports []networkingv1.NetworkPolicyPort, dst refPeer, proto policy.Protocol, port uint16) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		pp, err := policy.ParseProtocol(string(*p.Protocol))
		if err != nil || pp != proto {
			continue
		}
		switch {
		case p.Port == nil:
			return true
		case p.Port.Type == intstr.String:
			if refNamedPort(dst, p.Port.StrVal, proto) == int(port) {
				return true
			}
		case p.EndPort != nil:
			if int32(port) >= p.Port.IntVal && int32(port) <= *p.EndPort {
				return true
			}
		case int32(port) == p.Port.IntVal:
			return true
		}
	}
	return false
}

// refNamedPort resolves a port name against the destination pod: -1 if it has no such port
// of that protocol (or is not a pod).
func refNamedPort(dst refPeer, name string, proto policy.Protocol) int {
	if dst.pod == nil {
		return -1
	}
	for _, np := range dst.pod.NamedPorts {
		if np.Name == name && np.Protocol == proto {
			return int(np.Port)
		}
	}
	return -1
}

func (w *refWorld) ciliumIngressPeers(c *ciliumv2.IngressCommonRule, ns string, remote refPeer) bool {
	return w.ciliumPeers(c.FromEndpoints, c.FromCIDR, c.FromCIDRSet, c.FromEntities, ns, remote)
}

func (w *refWorld) ciliumEgressPeers(c *ciliumv2.EgressCommonRule, ns string, remote refPeer) bool {
	return w.ciliumPeers(c.ToEndpoints, c.ToCIDR, c.ToCIDRSet, c.ToEntities, ns, remote)
}

// ciliumPeers: no peer field means every peer; otherwise any listed peer matches. An endpoint
// selector is confined to the policy's namespace (a clusterwide policy: to pods) unless it names
// the namespace or namespace labels itself.
func (w *refWorld) ciliumPeers(eps []ciliumv2.EndpointSelector, cidrs []ciliumv2.CIDR, sets []ciliumv2.CIDRRule, entities []ciliumv2.Entity, ns string, remote refPeer) bool {
	if len(eps)+len(cidrs)+len(sets)+len(entities) == 0 {
		return true
	}
	for _, es := range eps {
		if remote.pod == nil || !refSelects(&es.LabelSelector, refCiliumLabels(remote.pod)) {
			continue
		}
		if ns == "" || refNamesNamespace(&es.LabelSelector) || remote.pod.Namespace == ns {
			return true
		}
	}
	for _, c := range cidrs {
		if w.cidrMatches(string(c), nil, remote) {
			return true
		}
	}
	for _, s := range sets {
		var except []string
		for _, e := range s.ExceptCIDRs {
			except = append(except, string(e))
		}
		if w.cidrMatches(string(s.Cidr), except, remote) {
			return true
		}
	}
	for _, e := range entities {
		switch e {
		case ciliumv2.EntityAll:
			return true
		case ciliumv2.EntityWorld:
			if remote.kind == "world" {
				return true
			}
		case ciliumv2.EntityCluster:
			if remote.kind != "world" {
				return true
			}
		case ciliumv2.EntityHost, ciliumv2.EntityRemoteNode:
			if string(e) == remote.kind {
				return true
			}
		}
	}
	return false
}

// refWithoutNamespace returns a copy of sel without requirements on the pod's namespace.
func refWithoutNamespace(sel *metav1.LabelSelector) *metav1.LabelSelector {
	isNS := func(k string) bool {
		return strings.TrimPrefix(strings.TrimPrefix(k, "k8s:"), "any:") == "io.kubernetes.pod.namespace"
	}
	out := &metav1.LabelSelector{MatchLabels: map[string]string{}}
	for k, v := range sel.MatchLabels {
		if !isNS(k) {
			out.MatchLabels[k] = v
		}
	}
	for _, e := range sel.MatchExpressions {
		if !isNS(e.Key) {
			out.MatchExpressions = append(out.MatchExpressions, e)
		}
	}
	return out
}

func refNamesNamespace(sel *metav1.LabelSelector) bool {
	var keys []string
	for k := range sel.MatchLabels {
		keys = append(keys, k)
	}
	for _, e := range sel.MatchExpressions {
		keys = append(keys, e.Key)
	}
	for _, k := range keys {
		k = strings.TrimPrefix(strings.TrimPrefix(k, "k8s:"), "any:")
		if k == "io.kubernetes.pod.namespace" || strings.HasPrefix(k, "io.cilium.k8s.namespace.labels.") {
			return true
		}
	}
	return false
}

func refCiliumPorts(rules []ciliumv2.PortRule, dst refPeer, proto policy.Protocol, port uint16) bool {
	var pps [][]ciliumv2.PortProtocol
	for _, r := range rules {
		pps = append(pps, r.Ports)
	}
	return refCiliumPortList(pps, dst, proto, port)
}

func refCiliumDenyPorts(rules []ciliumv2.PortDenyRule, dst refPeer, proto policy.Protocol, port uint16) bool {
	var pps [][]ciliumv2.PortProtocol
	for _, r := range rules {
		pps = append(pps, r.Ports)
	}
	return refCiliumPortList(pps, dst, proto, port)
}

// refCiliumPortList: no toPorts means every port and protocol. A protocol of "" or ANY stands
// for TCP, UDP and SCTP each (Cilium expands it), port "0" for every port, a name for the
// destination pod's container port of that name and the flow's protocol.
func refCiliumPortList(rules [][]ciliumv2.PortProtocol, dst refPeer, proto policy.Protocol, port uint16) bool {
	if len(rules) == 0 {
		return true
	}
	for _, ports := range rules {
		for _, pp := range ports {
			if pp.Protocol != "" && pp.Protocol != ciliumv2.ProtoAny {
				if p, err := policy.ParseProtocol(string(pp.Protocol)); err != nil || p != proto {
					continue
				}
			} else if proto != policy.ProtoTCP && proto != policy.ProtoUDP && proto != policy.ProtoSCTP {
				continue
			}
			n, err := strconv.Atoi(pp.Port)
			switch {
			case err != nil:
				if refNamedPort(dst, pp.Port, proto) == int(port) {
					return true
				}
			case n == 0:
				return true
			case pp.EndPort > 0:
				if int32(port) >= int32(n) && int32(port) <= pp.EndPort {
					return true
				}
			case int(port) == n:
				return true
			}
		}
	}
	return false
}
