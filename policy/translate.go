package policy

import (
	"fmt"
	"net/netip"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/ceskit/ceskit/identity"
)

// AuditAnnotation, set to "true" on a NetworkPolicy, CiliumNetworkPolicy or
// CiliumClusterwideNetworkPolicy, puts that policy in audit mode: what it would deny is allowed
// and reported with verdict Audit. [Config].AuditNamespaces and AuditPolicies do the same without
// touching the object.
const AuditAnnotation = "policy.ceskit.io/audit"

// Policy is a validated policy, translated into rules the [Engine] evaluates. Build it with
// [FromNetworkPolicy], [FromCiliumNetworkPolicy], [FromCiliumClusterwideNetworkPolicy] or
// [Decode]. A Policy is immutable and may be shared.
type Policy struct {
	ref   PolicyRef
	rules []*rule
	audit bool
	// cidrs are the prefixes the policy names (cidr and except); each gets a CIDR identity.
	cidrs []netip.Prefix
}

// Ref returns the policy's kind, namespace and name.
func (p *Policy) Ref() PolicyRef { return p.ref }

// Audited reports whether the policy carries AuditAnnotation.
func (p *Policy) Audited() bool { return p.audit }

// rule is one allow or deny rule, or a pure isolation marker (no peers, defaultDeny).
type rule struct {
	ref         RuleRef
	policy      *Policy
	subject     peerSel
	dir         Direction
	deny        bool
	defaultDeny bool
	isolation   bool // selects the subject for dir without allowing anything
	allPeers    bool
	peers       []peerSel
	ports       []portSel // none: every protocol and port
}

// portSel is one port, port range or named port of a rule.
type portSel struct {
	proto   Protocol
	port    uint16 // 0: every port of proto
	endPort uint16 // 0: just port
	name    string // a named port, resolved against the destination
}

// FromNetworkPolicy validates a networking.k8s.io/v1 NetworkPolicy as the API server would
// (after applying its defaulting to a copy: protocol TCP, policyTypes from the sections present)
// and translates it. Sections not listed in policyTypes are ignored (unlike Cilium, #48703). A
// policy with any error is rejected whole with an *[InvalidPolicyError] naming each field.
func FromNetworkPolicy(np *networkingv1.NetworkPolicy) (*Policy, error) {
	if np == nil {
		return nil, fmt.Errorf("%w: nil NetworkPolicy", ErrInvalidPolicy)
	}
	np = np.DeepCopy()
	DefaultNetworkPolicy(np)
	ref := PolicyRef{Kind: "NetworkPolicy", Namespace: np.Namespace, Name: np.Name}
	if errs := ValidateNetworkPolicy(np); len(errs) > 0 {
		return nil, &InvalidPolicyError{Policy: ref, Errs: errs}
	}
	p := &Policy{ref: ref, audit: np.Annotations[AuditAnnotation] == "true"}
	var errs field.ErrorList
	specPath := field.NewPath("spec")
	subject, err := podSubject(np.Spec.PodSelector, np.Namespace)
	if err != nil {
		errs = append(errs, field.Invalid(specPath.Child("podSelector"), np.Spec.PodSelector.String(), err.Error()))
	}
	var ingress, egress bool
	for _, t := range np.Spec.PolicyTypes {
		switch t {
		case networkingv1.PolicyTypeIngress:
			ingress = true
		case networkingv1.PolicyTypeEgress:
			egress = true
		}
	}
	add := func(r *rule) {
		r.policy, r.subject, r.defaultDeny = p, subject, true
		r.ref.Policy = ref
		p.rules = append(p.rules, r)
	}
	if ingress {
		add(&rule{ref: RuleRef{Section: "default-deny"}, dir: Ingress, isolation: true})
		for i, ir := range np.Spec.Ingress {
			path := specPath.Child("ingress").Index(i)
			r := &rule{ref: RuleRef{Section: "ingress", Index: i}, dir: Ingress}
			r.ports = npPorts(ir.Ports)
			r.allPeers, r.peers = p.npPeers(ir.From, np.Namespace, path.Child("from"), &errs)
			add(r)
		}
	}
	if egress {
		add(&rule{ref: RuleRef{Section: "default-deny"}, dir: Egress, isolation: true})
		for i, er := range np.Spec.Egress {
			path := specPath.Child("egress").Index(i)
			r := &rule{ref: RuleRef{Section: "egress", Index: i}, dir: Egress}
			r.ports = npPorts(er.Ports)
			r.allPeers, r.peers = p.npPeers(er.To, np.Namespace, path.Child("to"), &errs)
			add(r)
		}
	}
	if len(errs) > 0 {
		return nil, &InvalidPolicyError{Policy: ref, Errs: errs}
	}
	return p, nil
}

// npPeers translates a from/to list: empty means every peer.
func (p *Policy) npPeers(peers []networkingv1.NetworkPolicyPeer, ns string, path *field.Path, errs *field.ErrorList) (bool, []peerSel) {
	if len(peers) == 0 {
		return true, nil
	}
	var out []peerSel
	for i, peer := range peers {
		pp := path.Index(i)
		switch {
		case peer.IPBlock != nil:
			sel, err := p.cidrSelector(peer.IPBlock.CIDR, peer.IPBlock.Except)
			if err != nil {
				*errs = append(*errs, field.Invalid(pp.Child("ipBlock"), peer.IPBlock.CIDR, err.Error()))
				continue
			}
			out = append(out, sel)
		default:
			sel, err := npPeerSelector(peer.PodSelector, peer.NamespaceSelector, ns)
			if err != nil {
				*errs = append(*errs, field.Invalid(pp, fmt.Sprint(peer), err.Error()))
				continue
			}
			out = append(out, sel)
		}
	}
	return false, out
}

// cidrSelector builds a CIDR selector and records its prefixes. worldOnly is decided by the
// engine's mode when the selector is evaluated, so the policy stays mode-independent: the
// engine wraps it.
func (p *Policy) cidrSelector(cidr string, except []string) (*cidrSel, error) {
	pfx, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("cidr %q: %w", cidr, err)
	}
	pfx = pfx.Masked()
	s := &cidrSel{prefix: pfx, str: pfx.String()}
	p.cidrs = append(p.cidrs, pfx)
	for _, e := range except {
		ep, err := netip.ParsePrefix(e)
		if err != nil {
			return nil, fmt.Errorf("except %q: %w", e, err)
		}
		ep = ep.Masked()
		s.except = append(s.except, ep)
		s.str += " except " + ep.String()
		p.cidrs = append(p.cidrs, ep)
	}
	return s, nil
}

func npPorts(ports []networkingv1.NetworkPolicyPort) []portSel {
	var out []portSel
	for _, np := range ports {
		ps := portSel{proto: ProtoTCP}
		if np.Protocol != nil {
			ps.proto, _ = ParseProtocol(string(*np.Protocol)) // validated
		}
		if np.Port != nil {
			if np.Port.Type == 1 { // intstr.String
				ps.name = np.Port.StrVal
			} else {
				ps.port = uint16(np.Port.IntVal)
			}
		}
		if np.EndPort != nil {
			ps.endPort = uint16(*np.EndPort)
		}
		out = append(out, ps)
	}
	return out
}

// podSubject selects the pods of namespace ns that sel selects.
func podSubject(sel metav1.LabelSelector, ns string) (peerSel, error) {
	reqs, err := selectorReqs(&sel, "")
	if err != nil {
		return nil, err
	}
	reqs = append(reqs, req{key: identity.LabelNamespace, op: "In", values: []string{ns}})
	return newLabelSel(reqs), nil
}

// npPeerSelector builds the selector of a NetworkPolicy peer: podSelector AND namespaceSelector
// (whose keys are the io.cilium.k8s.namespace.labels.* identity labels; {} means every
// namespace), or podSelector in the policy's namespace.
func npPeerSelector(pod, ns *metav1.LabelSelector, policyNS string) (peerSel, error) {
	reqs, err := selectorReqs(pod, "")
	if err != nil {
		return nil, fmt.Errorf("podSelector: %w", err)
	}
	if ns == nil {
		reqs = append(reqs, req{key: identity.LabelNamespace, op: "In", values: []string{policyNS}})
	} else {
		nsReqs, err := selectorReqs(ns, identity.LabelNamespaceLabelsPrefix)
		if err != nil {
			return nil, fmt.Errorf("namespaceSelector: %w", err)
		}
		reqs = append(reqs, req{key: identity.LabelNamespace, op: "Exists"})
		reqs = append(reqs, nsReqs...)
	}
	return newLabelSel(reqs), nil
}
