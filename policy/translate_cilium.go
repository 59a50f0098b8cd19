package policy

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/ceskit/ceskit/identity"
	"github.com/ceskit/ceskit/policy/ciliumv2"
)

// FromCiliumNetworkPolicy validates and translates a cilium.io/v2 CiliumNetworkPolicy: its spec
// and specs, as Cilium's ParseToCiliumRule does (the endpoint selector and endpoint peers are
// confined to the policy's namespace unless a peer names a namespace itself). L7 rules
// (rules.http, rules.dns) are validated and enforced at L4 only; toServices, toGroups,
// fromRequires/toRequires and authentication are not enforced ([Lint] reports them).
func FromCiliumNetworkPolicy(cnp *ciliumv2.CiliumNetworkPolicy) (*Policy, error) {
	if cnp == nil {
		return nil, fmt.Errorf("%w: nil CiliumNetworkPolicy", ErrInvalidPolicy)
	}
	ref := PolicyRef{Kind: "CiliumNetworkPolicy", Namespace: cnp.Namespace, Name: cnp.Name}
	if errs := cnp.Validate(); len(errs) > 0 {
		return nil, &InvalidPolicyError{Policy: ref, Errs: errs}
	}
	return fromCiliumRules(ref, cnp.Annotations[AuditAnnotation] == "true", cnp.Spec, cnp.Specs, cnp.Namespace)
}

// FromCiliumClusterwideNetworkPolicy validates and translates a cilium.io/v2
// CiliumClusterwideNetworkPolicy. Its endpoint peers select pods of every namespace. Rules with a
// nodeSelector (host policies) are accepted but select no endpoint: this engine computes pod
// policy only.
func FromCiliumClusterwideNetworkPolicy(ccnp *ciliumv2.CiliumClusterwideNetworkPolicy) (*Policy, error) {
	if ccnp == nil {
		return nil, fmt.Errorf("%w: nil CiliumClusterwideNetworkPolicy", ErrInvalidPolicy)
	}
	ref := PolicyRef{Kind: "CiliumClusterwideNetworkPolicy", Name: ccnp.Name}
	if errs := ccnp.Validate(); len(errs) > 0 {
		return nil, &InvalidPolicyError{Policy: ref, Errs: errs}
	}
	return fromCiliumRules(ref, ccnp.Annotations[AuditAnnotation] == "true", ccnp.Spec, ccnp.Specs, "")
}

func fromCiliumRules(ref PolicyRef, audit bool, spec *ciliumv2.Rule, specs []ciliumv2.Rule, ns string) (*Policy, error) {
	p := &Policy{ref: ref, audit: audit}
	var errs field.ErrorList
	if spec != nil {
		p.ciliumRule(spec, 0, field.NewPath("spec"), ns, &errs)
	}
	for i := range specs {
		p.ciliumRule(&specs[i], i+1, field.NewPath("specs").Index(i), ns, &errs)
	}
	if len(errs) > 0 {
		return nil, &InvalidPolicyError{Policy: ref, Errs: errs}
	}
	return p, nil
}

func (p *Policy) ciliumRule(r *ciliumv2.Rule, specIdx int, path *field.Path, ns string, errs *field.ErrorList) {
	var subject peerSel
	if r.EndpointSelector != nil {
		reqs, err := selectorReqs(&r.EndpointSelector.LabelSelector, "")
		if err != nil {
			*errs = append(*errs, field.Invalid(path.Child("endpointSelector"), r.EndpointSelector.String(), err.Error()))
			return
		}
		if ns != "" {
			// Cilium drops a namespace match the user put in a namespaced policy's subject.
			reqs = withoutNamespaceKeys(reqs)
			reqs = append(reqs, req{key: identity.LabelNamespace, op: "In", values: []string{ns}})
		}
		subject = newLabelSel(reqs)
	}
	defaultDeny := func(v *bool) bool { return v == nil || *v }
	ingressDD, egressDD := true, true
	if r.EnableDefaultDeny != nil {
		ingressDD, egressDD = defaultDeny(r.EnableDefaultDeny.Ingress), defaultDeny(r.EnableDefaultDeny.Egress)
	}
	add := func(x *rule) {
		x.policy, x.subject = p, subject
		x.ref.Policy, x.ref.Spec = p.ref, specIdx
		p.rules = append(p.rules, x)
	}
	if len(r.Ingress)+len(r.IngressDeny) > 0 {
		add(&rule{ref: RuleRef{Section: "default-deny"}, dir: Ingress, isolation: true, defaultDeny: ingressDD})
	}
	if len(r.Egress)+len(r.EgressDeny) > 0 {
		add(&rule{ref: RuleRef{Section: "default-deny"}, dir: Egress, isolation: true, defaultDeny: egressDD})
	}
	for i := range r.Ingress {
		ir := &r.Ingress[i]
		x := &rule{ref: RuleRef{Section: "ingress", Index: i}, dir: Ingress, defaultDeny: ingressDD}
		x.allPeers, x.peers = p.ingressPeers(&ir.IngressCommonRule, ns, path.Child("ingress").Index(i), errs)
		x.ports = p.ciliumPorts(portProtocols(ir.ToPorts), ir.ICMPs, path.Child("ingress").Index(i), errs)
		add(x)
	}
	for i := range r.IngressDeny {
		ir := &r.IngressDeny[i]
		x := &rule{ref: RuleRef{Section: "ingressDeny", Index: i}, dir: Ingress, deny: true, defaultDeny: ingressDD}
		x.allPeers, x.peers = p.ingressPeers(&ir.IngressCommonRule, ns, path.Child("ingressDeny").Index(i), errs)
		x.ports = p.ciliumPorts(denyPortProtocols(ir.ToPorts), ir.ICMPs, path.Child("ingressDeny").Index(i), errs)
		add(x)
	}
	for i := range r.Egress {
		er := &r.Egress[i]
		ep := path.Child("egress").Index(i)
		x := &rule{ref: RuleRef{Section: "egress", Index: i}, dir: Egress, defaultDeny: egressDD}
		x.allPeers, x.peers = p.egressPeers(&er.EgressCommonRule, ns, ep, errs)
		for j, f := range er.ToFQDNs {
			m, err := CompileFQDNSelector(FQDNSelector{MatchName: f.MatchName, MatchPattern: f.MatchPattern})
			if err != nil {
				*errs = append(*errs, field.Invalid(ep.Child("toFQDNs").Index(j), f, err.Error()))
				continue
			}
			x.allPeers = false
			x.peers = append(x.peers, &fqdnSel{m: m})
		}
		x.ports = p.ciliumPorts(portProtocols(er.ToPorts), er.ICMPs, ep, errs)
		add(x)
	}
	for i := range r.EgressDeny {
		er := &r.EgressDeny[i]
		x := &rule{ref: RuleRef{Section: "egressDeny", Index: i}, dir: Egress, deny: true, defaultDeny: egressDD}
		x.allPeers, x.peers = p.egressPeers(&er.EgressCommonRule, ns, path.Child("egressDeny").Index(i), errs)
		x.ports = p.ciliumPorts(denyPortProtocols(er.ToPorts), er.ICMPs, path.Child("egressDeny").Index(i), errs)
		add(x)
	}
}

// withoutNamespaceKeys drops requirements on the pod namespace.
func withoutNamespaceKeys(reqs []req) []req {
	out := reqs[:0]
	for _, r := range reqs {
		if strings.TrimPrefix(r.key, "k8s:") != identity.LabelNamespace {
			out = append(out, r)
		}
	}
	return out
}

// namesNamespace reports whether requirements already confine the namespace.
func namesNamespace(reqs []req) bool {
	for _, r := range reqs {
		k := strings.TrimPrefix(r.key, "k8s:")
		if k == identity.LabelNamespace || strings.HasPrefix(k, identity.LabelNamespaceLabelsPrefix) {
			return true
		}
	}
	return false
}

// ingressPeers translates a rule's sources. Peer kinds this engine does not enforce (fromGroups,
// fromRequires) select nothing here, so a rule with only those never opens to every peer.
func (p *Policy) ingressPeers(c *ciliumv2.IngressCommonRule, ns string, path *field.Path, errs *field.ErrorList) (bool, []peerSel) {
	all, peers := p.l3Peers(c.FromEndpoints, c.FromCIDR, c.FromCIDRSet, c.FromEntities, c.FromNodes, ns, path, "from", errs)
	if len(c.FromGroups) > 0 || len(c.FromRequires) > 0 {
		all = false // not enforced: they select nothing here (see Lint)
	}
	return all, peers
}

// egressPeers translates a rule's destinations; toServices, toGroups and toRequires select
// nothing here.
func (p *Policy) egressPeers(c *ciliumv2.EgressCommonRule, ns string, path *field.Path, errs *field.ErrorList) (bool, []peerSel) {
	all, peers := p.l3Peers(c.ToEndpoints, c.ToCIDR, c.ToCIDRSet, c.ToEntities, c.ToNodes, ns, path, "to", errs)
	if len(c.ToServices) > 0 || len(c.ToGroups) > 0 || len(c.ToRequires) > 0 {
		all = false // not enforced: they select nothing here (see Lint)
	}
	return all, peers
}

// l3Peers translates the L3 peer fields of a rule. No peer field at all means every peer.
func (p *Policy) l3Peers(eps []ciliumv2.EndpointSelector, cidrs []ciliumv2.CIDR, sets []ciliumv2.CIDRRule,
	entities []ciliumv2.Entity, nodes []ciliumv2.EndpointSelector, ns string, path *field.Path, dir string, errs *field.ErrorList) (bool, []peerSel) {
	if eps == nil && cidrs == nil && sets == nil && entities == nil && nodes == nil {
		return true, nil
	}
	var out []peerSel
	for i := range eps {
		reqs, err := selectorReqs(&eps[i].LabelSelector, "")
		if err != nil {
			*errs = append(*errs, field.Invalid(path.Child(dir+"Endpoints").Index(i), eps[i].String(), err.Error()))
			continue
		}
		if !namesNamespace(reqs) {
			if ns != "" {
				reqs = append(reqs, req{key: identity.LabelNamespace, op: "In", values: []string{ns}})
			} else {
				reqs = append(reqs, req{key: identity.LabelNamespace, op: "Exists"})
			}
		}
		out = append(out, newLabelSel(reqs))
	}
	for i, c := range cidrs {
		sel, err := p.cidrSelector(bareToPrefix(string(c)), nil)
		if err != nil {
			*errs = append(*errs, field.Invalid(path.Child(dir+"CIDR").Index(i), string(c), err.Error()))
			continue
		}
		out = append(out, sel)
	}
	for i, s := range sets {
		if s.Cidr == "" {
			continue // cidrGroupRef/cidrGroupSelector: not resolved here (see Lint)
		}
		except := make([]string, len(s.ExceptCIDRs))
		for j, e := range s.ExceptCIDRs {
			except[j] = string(e)
		}
		sel, err := p.cidrSelector(string(s.Cidr), except)
		if err != nil {
			*errs = append(*errs, field.Invalid(path.Child(dir+"CIDRSet").Index(i), string(s.Cidr), err.Error()))
			continue
		}
		out = append(out, sel)
	}
	for _, e := range entities {
		out = append(out, &entitySel{entity: string(e)})
	}
	if len(nodes) > 0 {
		// Nodes carry the host and remote-node identities; node labels are not identity labels.
		out = append(out, &entitySel{entity: "host"}, &entitySel{entity: "remote-node"})
	}
	return false, out
}

// bareToPrefix turns a bare address (Cilium accepts them in fromCIDR/toCIDR) into a /32 or /128.
func bareToPrefix(s string) string {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()).String()
	}
	return s
}

func portProtocols(rules []ciliumv2.PortRule) [][]ciliumv2.PortProtocol {
	out := make([][]ciliumv2.PortProtocol, len(rules))
	for i, r := range rules {
		out[i] = r.Ports
	}
	return out
}

func denyPortProtocols(rules []ciliumv2.PortDenyRule) [][]ciliumv2.PortProtocol {
	out := make([][]ciliumv2.PortProtocol, len(rules))
	for i, r := range rules {
		out[i] = r.Ports
	}
	return out
}

// ciliumPorts translates toPorts and icmps. None of either means every port and protocol.
func (p *Policy) ciliumPorts(rules [][]ciliumv2.PortProtocol, icmps []ciliumv2.ICMPRule, rulePath *field.Path, errs *field.ErrorList) []portSel {
	var out []portSel
	path := rulePath.Child("toPorts")
	for i, ports := range rules {
		if len(ports) == 0 {
			out = append(out, portSel{proto: ProtoAny})
		}
		for j, pp := range ports {
			fp := path.Index(i).Child("ports").Index(j)
			proto, err := ParseProtocol(string(pp.Protocol))
			if err != nil {
				*errs = append(*errs, field.NotSupported(fp.Child("protocol"), string(pp.Protocol), []string{"TCP", "UDP", "SCTP", "ICMP", "ICMPv6", "ANY"}))
				continue
			}
			if pp.Protocol == "" {
				proto = ProtoAny // Cilium: no protocol means any
			}
			ps := portSel{proto: proto}
			switch n, err := strconv.ParseUint(pp.Port, 10, 16); {
			case pp.Port == "":
			case err == nil:
				ps.port = uint16(n)
			default:
				ps.name = pp.Port
			}
			if pp.EndPort > 0 {
				ps.endPort = uint16(pp.EndPort)
			}
			out = append(out, ps)
		}
	}
	for i, ic := range icmps {
		for j, f := range ic.Fields {
			if f.Type == nil {
				continue
			}
			proto := ProtoICMP
			if f.Family == "IPv6" {
				proto = ProtoICMPv6
			}
			t, ok := icmpType(f.Type.String(), proto)
			if !ok {
				*errs = append(*errs, field.Invalid(rulePath.Child("icmps").Index(i).Child("fields").Index(j).Child("type"), f.Type.String(), "not an ICMP type number or name"))
				continue
			}
			out = append(out, portSel{proto: proto, port: t})
		}
	}
	return out
}

// icmpType parses an ICMP type number or one of the common CamelCase names.
func icmpType(s string, proto Protocol) (uint16, bool) {
	if n, err := strconv.ParseUint(s, 10, 8); err == nil {
		return uint16(n), true
	}
	v4 := map[string]uint16{"EchoReply": 0, "DestinationUnreachable": 3, "Redirect": 5, "Echo": 8, "EchoRequest": 8,
		"RouterAdvertisement": 9, "RouterSelection": 10, "TimeExceeded": 11, "ParameterProblem": 12, "Timestamp": 13, "TimestampReply": 14}
	v6 := map[string]uint16{"DestinationUnreachable": 1, "PacketTooBig": 2, "TimeExceeded": 3, "ParameterProblem": 4,
		"EchoRequest": 128, "EchoReply": 129, "MulticastListenerQuery": 130, "RouterSolicitation": 133, "RouterAdvertisement": 134,
		"NeighborSolicitation": 135, "NeighborAdvertisement": 136}
	m := v4
	if proto == ProtoICMPv6 {
		m = v6
	}
	t, ok := m[s]
	return t, ok
}
