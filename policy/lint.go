package policy

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/ceskit/ceskit/identity"
	"github.com/ceskit/ceskit/policy/ciliumv2"
)

// Severity ranks a [Finding].
type Severity int

const (
	// SeverityInfo is a remark: the policy does what it says, but a reader may expect otherwise.
	SeverityInfo Severity = iota
	// SeverityWarning is a policy, or part of one, that will not do what it says.
	SeverityWarning
	// SeverityError is a policy that is rejected, or part of one that behaves the opposite way
	// of what it says.
	SeverityError
)

// String returns "info", "warning" or "error".
func (s Severity) String() string {
	switch s {
	case SeverityInfo:
		return "info"
	case SeverityWarning:
		return "warning"
	case SeverityError:
		return "error"
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// Finding is one problem [Lint] found in a policy.
type Finding struct {
	// Policy is the policy the finding is about. Its Namespace is the object's as written (empty
	// for a NetworkPolicy without metadata.namespace).
	Policy PolicyRef
	// Field is the field path within the object, e.g. spec.egress[0].to[1].ipBlock. It is empty
	// for a finding about the object as a whole.
	Field string
	// Severity ranks the finding.
	Severity Severity
	// Code is a stable machine-readable name of the kind of finding, e.g. "ipblock-covers-pods".
	Code string
	// Message says what will happen and why.
	Message string
	// Fix says what to do instead; it may contain a short YAML snippet. Empty when there is
	// nothing to do beyond what Message says.
	Fix string
}

// String returns "severity Kind namespace/name field: code: message".
func (f Finding) String() string {
	s := f.Severity.String() + " " + f.Policy.String()
	if f.Field != "" {
		s += " " + f.Field
	}
	return s + ": " + f.Code + ": " + f.Message
}

// LintConfig describes the cluster [Lint] checks policies against. The zero value lints for
// ModeAKS without knowing the cluster's address ranges (so no CIDR findings), outside managed AKS.
type LintConfig struct {
	// Mode is the CIDR semantics to check against. Findings about CIDRs that cover pod or node
	// addresses are made only in ModeAKS, where such addresses are never selected through a
	// CIDR. Default: ModeAKS.
	Mode Mode
	// PodCIDRs are the cluster's pod address ranges: with Azure CNI (VNet) the pod subnet(s),
	// with an overlay the pod CIDR, e.g. 10.244.0.0/16. Default: none. Invalid prefixes are
	// ignored.
	PodCIDRs []netip.Prefix
	// NodeCIDRs are the node subnet(s). Default: none. Invalid prefixes are ignored.
	NodeCIDRs []netip.Prefix
	// ManagedAKS says the policies run on the managed Cilium of AKS (Azure CNI powered by
	// Cilium), where Microsoft configures Cilium: Cilium's L7 policy enforcement is disabled
	// unless Advanced Container Networking Services (see ACNS) enables FQDN or L7 policies.
	// Default: false.
	ManagedAKS bool
	// ACNS says Advanced Container Networking Services with its security feature is enabled on
	// the cluster; it only matters with ManagedAKS. Default: false.
	ACNS bool
}

// Finding codes. They are stable: tools may match on them.
const (
	codeInvalid            = "invalid"
	codeUnsupportedObject  = "unsupported-object"
	codeUnknownField       = "unknown-field"
	codePolicyTypes        = "policytypes-section-ignored"
	codeIPBlockPods        = "ipblock-covers-pods"
	codeIPBlockNodes       = "ipblock-covers-nodes"
	codeIPBlockExceptPods  = "ipblock-except-covers-pods"
	codeIPBlockExceptNodes = "ipblock-except-covers-nodes"
	codeCIDRPods           = "cidr-covers-pods"
	codeCIDRNodes          = "cidr-covers-nodes"
	codeCIDRExceptPods     = "cidr-except-covers-pods"
	codeCIDRExceptNodes    = "cidr-except-covers-nodes"
	codeFQDNNoDNSRule      = "fqdn-without-dns-rule"
	codeFQDNNotInDNSRule   = "fqdn-not-in-dns-rule"
	codeAKSFQDNNeedsACNS   = "aks-fqdn-requires-acns"
	codeAKSL7NeedsACNS     = "aks-l7-requires-acns"
	codeAKSL7NeedsL7Level  = "aks-l7-needs-acns-l7"
	codeAKSDNSWildcard     = "aks-dns-wildcard-unsupported"
	codeL7AtL4             = "l7-enforced-at-l4"
	codeHostPolicy         = "host-policy-not-enforced"
	codeNotEnforced        = "not-enforced"
	codeSelectorLabel      = "selector-label-not-identity"
)

// Lint decodes YAML or JSON documents as [DecodeObjects] does and reports, for each policy,
// what will not do what it says (see [LintObjects]), plus every field the Go types do not have
// (code "unknown-field", as [UnknownFields] lists them). Invalid policies produce
// SeverityError findings with code "invalid", one per field error, not a Go error: the error
// is only for input that cannot be decoded (see DecodeObjects). Findings are sorted by policy
// (kind, namespace, name), field (element by element, indexes numerically) and code.
func Lint(data []byte, cfg LintConfig) ([]Finding, error) {
	var objs []runtime.Object
	var unknown []Finding
	err := walkDocuments(data, func(d decoded) {
		objs = append(objs, d.obj)
		ref := objectRef(d.obj)
		for _, f := range d.unknown {
			unknown = append(unknown, Finding{
				Policy:   ref,
				Field:    f,
				Severity: SeverityWarning,
				Code:     codeUnknownField,
				Message: fmt.Sprintf("%s has no field %s (document path %s.%s): a typo? kubectl's strict field validation rejects the object; "+
					"without it the API server drops (prunes) the field, and nothing enforces it", ref.Kind, lastField(f), d.path, f),
				Fix: "Check the spelling and capitalization against the " + ref.Kind + " schema (field names are case-sensitive).",
			})
		}
	})
	if err != nil {
		return nil, fmt.Errorf("lint policies: %w", err)
	}
	out := append(LintObjects(objs, cfg), unknown...)
	sortFindings(out)
	return out, nil
}

// LintObjects reports what the given NetworkPolicies, CiliumNetworkPolicies and
// CiliumClusterwideNetworkPolicies will not do as they say, sorted as [Lint] sorts them.
// The objects are not modified. A NetworkPolicy without a namespace is checked as if in
// "default", where kubectl would create it.
//
// Any policy:
//   - "invalid" (error): a field error the API server or Cilium would reject the policy for,
//     one finding per error; such a policy gets no other finding but "unknown-field".
//   - "selector-label-not-identity" (warning): a podSelector, endpointSelector or endpoint peer
//     requirement on a label Cilium's default identity filter drops ([identity.DefaultFilter]:
//     pod-template-hash, controller-revision-hash, statefulset.kubernetes.io/pod-name,
//     topology.kubernetes.io/*, …). Identities carry only identity-relevant labels, so
//     In/Exists on such a label never match and NotIn/DoesNotExist always do.
//
// NetworkPolicy:
//   - "policytypes-section-ignored" (warning): policyTypes omits a direction whose section is
//     present. Kubernetes (and this engine) ignore the section; Cilium up to 1.20.x enforces it
//     (cilium/cilium#48703).
//   - "ipblock-covers-pods", "ipblock-covers-nodes" (ModeAKS; warning, info for a /0): an
//     ipBlock cidr overlaps PodCIDRs or NodeCIDRs, whose addresses are never selected through
//     a CIDR; "ipblock-except-covers-pods", "ipblock-except-covers-nodes" (info): an except
//     that only removes such addresses has no effect on them.
//
// CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy:
//   - "cidr-covers-pods", "cidr-covers-nodes", "cidr-except-covers-pods",
//     "cidr-except-covers-nodes": the same for toCIDR, fromCIDR, toCIDRSet and fromCIDRSet
//     (allow and deny rules).
//   - "fqdn-without-dns-rule" (warning): toFQDNs while no linted policy has a DNS rule
//     (toPorts rules.dns); "fqdn-not-in-dns-rule" (warning): a toFQDNs entry none of the DNS
//     rules lets the DNS proxy resolve. Cilium learns the addresses of names only through its
//     DNS proxy.
//   - "l7-enforced-at-l4" (warning): rules.http, rules.kafka or rules.l7, which this engine
//     enforces at L4 only.
//   - With ManagedAKS: "aks-fqdn-requires-acns" and "aks-l7-requires-acns" (error, without
//     ACNS), "aks-l7-needs-acns-l7" (info, with ACNS), "aks-dns-wildcard-unsupported"
//     (warning: a rules.dns matchPattern "*").
//   - "host-policy-not-enforced" (warning): a nodeSelector rule (host policy).
//   - "not-enforced" (warning; error where the engine then allows every peer): toServices,
//     toGroups, fromGroups, fromRequires, toRequires, authentication, cidrGroupRef,
//     cidrGroupSelector, listener, terminatingTLS, originatingTLS and serverNames.
//
// Other objects get an "unsupported-object" error.
func LintObjects(objs []runtime.Object, cfg LintConfig) []Finding {
	l := &linter{cfg: cfg, filter: identity.DefaultFilter()}
	for _, o := range objs {
		l.collectDNS(o)
	}
	for _, o := range objs {
		switch v := o.(type) {
		case *networkingv1.NetworkPolicy:
			l.networkPolicy(v)
		case *ciliumv2.CiliumNetworkPolicy:
			if v == nil {
				l.nilObject("CiliumNetworkPolicy")
				continue
			}
			ref := PolicyRef{Kind: "CiliumNetworkPolicy", Namespace: v.Namespace, Name: v.Name}
			_, err := FromCiliumNetworkPolicy(v)
			if l.invalid(ref, err) {
				continue
			}
			l.ciliumRules(ref, v.Spec, v.Specs)
		case *ciliumv2.CiliumClusterwideNetworkPolicy:
			if v == nil {
				l.nilObject("CiliumClusterwideNetworkPolicy")
				continue
			}
			ref := PolicyRef{Kind: "CiliumClusterwideNetworkPolicy", Name: v.Name}
			_, err := FromCiliumClusterwideNetworkPolicy(v)
			if l.invalid(ref, err) {
				continue
			}
			l.ciliumRules(ref, v.Spec, v.Specs)
		default:
			ref := objectRef(o)
			l.add(ref, nil, SeverityError, codeUnsupportedObject,
				fmt.Sprintf("%T is not a policy this engine reads", o),
				"Pass networking.k8s.io/v1 NetworkPolicy, cilium.io/v2 CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy objects.")
		}
	}
	sortFindings(l.out)
	return l.out
}

// objectRef names an object as a PolicyRef, whatever its type.
func objectRef(o runtime.Object) PolicyRef {
	switch v := o.(type) {
	case *networkingv1.NetworkPolicy:
		if v != nil {
			return PolicyRef{Kind: "NetworkPolicy", Namespace: v.Namespace, Name: v.Name}
		}
		return PolicyRef{Kind: "NetworkPolicy"}
	case *ciliumv2.CiliumNetworkPolicy:
		if v != nil {
			return PolicyRef{Kind: "CiliumNetworkPolicy", Namespace: v.Namespace, Name: v.Name}
		}
		return PolicyRef{Kind: "CiliumNetworkPolicy"}
	case *ciliumv2.CiliumClusterwideNetworkPolicy:
		if v != nil {
			return PolicyRef{Kind: "CiliumClusterwideNetworkPolicy", Name: v.Name}
		}
		return PolicyRef{Kind: "CiliumClusterwideNetworkPolicy"}
	case nil:
		return PolicyRef{Kind: "<nil>"}
	}
	ref := PolicyRef{Kind: fmt.Sprintf("%T", o)}
	if k := o.GetObjectKind().GroupVersionKind().Kind; k != "" {
		ref.Kind = k
	}
	if m, ok := o.(metav1.Object); ok {
		ref.Namespace, ref.Name = m.GetNamespace(), m.GetName()
	}
	return ref
}

// lastField returns the last element of a JSON field path.
func lastField(path string) string {
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[i+1:]
	}
	return path
}

func sortFindings(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return cmp.Or(
			cmp.Compare(a.Policy.Kind, b.Policy.Kind),
			cmp.Compare(a.Policy.Namespace, b.Policy.Namespace),
			cmp.Compare(a.Policy.Name, b.Policy.Name),
			compareFields(a.Field, b.Field),
			cmp.Compare(a.Code, b.Code),
		)
	})
}

// compareFields orders field paths element by element, indexes numerically: spec.egress[2]
// before spec.egress[10], and spec.egress[0].to before spec.egressDeny.
func compareFields(a, b string) int {
	as, bs := fieldElems(a), fieldElems(b)
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, y := as[i], bs[i]
		if c := compareElem(x, y); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(as), len(bs))
}

// fieldElem is one element of a field path: a name, or an [index] or [key].
type fieldElem struct {
	name  string
	index string // without brackets; "" for a name
	isIdx bool
}

func fieldElems(path string) []fieldElem {
	var out []fieldElem
	for path != "" {
		switch path[0] {
		case '.':
			path = path[1:]
		case '[':
			end := strings.IndexByte(path, ']')
			if end < 0 {
				end = len(path) - 1
			}
			out = append(out, fieldElem{index: path[1:end], isIdx: true})
			path = path[end+1:]
		default:
			end := strings.IndexAny(path, ".[")
			if end < 0 {
				end = len(path)
			}
			out = append(out, fieldElem{name: path[:end]})
			path = path[end:]
		}
	}
	return out
}

// compareElem puts names before indexes, and compares indexes as numbers when both are.
func compareElem(x, y fieldElem) int {
	if x.isIdx != y.isIdx {
		if x.isIdx {
			return 1
		}
		return -1
	}
	if !x.isIdx {
		return cmp.Compare(x.name, y.name)
	}
	xi, errx := strconv.Atoi(x.index)
	yi, erry := strconv.Atoi(y.index)
	if errx == nil && erry == nil {
		return cmp.Compare(xi, yi)
	}
	return cmp.Compare(x.index, y.index)
}

// linter accumulates the findings of one LintObjects call.
type linter struct {
	cfg    LintConfig
	filter *identity.Filter
	out    []Finding
	// dns are the DNS rules (rules.dns) of every linted Cilium policy, compiled.
	dns []*FQDNMatcher
}

func (l *linter) add(ref PolicyRef, path *field.Path, sev Severity, code, msg, fix string) {
	f := Finding{Policy: ref, Severity: sev, Code: code, Message: msg, Fix: fix}
	if path != nil {
		f.Field = path.String()
	}
	l.out = append(l.out, f)
}

func (l *linter) nilObject(kind string) {
	l.add(PolicyRef{Kind: kind}, nil, SeverityError, codeInvalid, "nil "+kind, "")
}

// invalid reports err, a translation error, as findings and says whether there was one.
func (l *linter) invalid(ref PolicyRef, err error) bool {
	if err == nil {
		return false
	}
	var ipe *InvalidPolicyError
	if !errors.As(err, &ipe) {
		l.add(ref, nil, SeverityError, codeInvalid, err.Error(), "")
		return true
	}
	for _, e := range ipe.Errs {
		l.out = append(l.out, Finding{Policy: ref, Field: e.Field, Severity: SeverityError, Code: codeInvalid,
			Message: e.ErrorBody(), Fix: "Fix the field: the whole policy is rejected until then."})
	}
	return true
}

// collectDNS compiles the DNS rules of a Cilium policy.
func (l *linter) collectDNS(o runtime.Object) {
	var spec *ciliumv2.Rule
	var specs []ciliumv2.Rule
	switch v := o.(type) {
	case *ciliumv2.CiliumNetworkPolicy:
		if v == nil {
			return
		}
		spec, specs = v.Spec, v.Specs
	case *ciliumv2.CiliumClusterwideNetworkPolicy:
		if v == nil {
			return
		}
		spec, specs = v.Spec, v.Specs
	default:
		return
	}
	rules := slices.Clone(specs)
	if spec != nil {
		rules = append(rules, *spec)
	}
	for _, r := range rules {
		for _, er := range r.Egress {
			for _, pr := range er.ToPorts {
				if pr.Rules == nil {
					continue
				}
				for _, d := range pr.Rules.DNS {
					if m, err := CompileFQDNSelector(FQDNSelector{MatchName: d.MatchName, MatchPattern: d.MatchPattern}); err == nil {
						l.dns = append(l.dns, m)
					}
				}
			}
		}
	}
}

// networkPolicy lints a NetworkPolicy.
func (l *linter) networkPolicy(np *networkingv1.NetworkPolicy) {
	if np == nil {
		l.nilObject("NetworkPolicy")
		return
	}
	ref := PolicyRef{Kind: "NetworkPolicy", Namespace: np.Namespace, Name: np.Name}
	np = np.DeepCopy()
	if np.Namespace == "" {
		np.Namespace = "default" // where kubectl would create it
	}
	if _, err := FromNetworkPolicy(np); l.invalid(ref, err) {
		return
	}
	DefaultNetworkPolicy(np)
	spec := field.NewPath("spec")

	var ingress, egress bool
	for _, t := range np.Spec.PolicyTypes {
		ingress = ingress || t == networkingv1.PolicyTypeIngress
		egress = egress || t == networkingv1.PolicyTypeEgress
	}
	types := fmt.Sprint(np.Spec.PolicyTypes)
	if len(np.Spec.Ingress) > 0 && !ingress {
		l.policyTypes(ref, spec.Child("ingress"), "Ingress", "ingress", types)
	}
	if len(np.Spec.Egress) > 0 && !egress {
		l.policyTypes(ref, spec.Child("egress"), "Egress", "egress", types)
	}

	l.selectorLabels(ref, &np.Spec.PodSelector, spec.Child("podSelector"), true)
	for i, r := range np.Spec.Ingress {
		for j, peer := range r.From {
			l.npPeer(ref, peer, spec.Child("ingress").Index(i).Child("from").Index(j), "from")
		}
	}
	for i, r := range np.Spec.Egress {
		for j, peer := range r.To {
			l.npPeer(ref, peer, spec.Child("egress").Index(i).Child("to").Index(j), "to")
		}
	}
}

func (l *linter) policyTypes(ref PolicyRef, path *field.Path, typ, section, types string) {
	l.add(ref, path, SeverityWarning, codePolicyTypes,
		fmt.Sprintf("policyTypes %s does not list %s, so the %s section is ignored: Kubernetes semantics, which this engine follows. "+
			"Cilium up to 1.20.x enforces the section anyway (cilium/cilium#48703), so the managed Cilium on AKS may behave differently from this engine and from the specification",
			types, typ, section),
		fmt.Sprintf("Add %s to policyTypes if the %s rules are meant to apply, or delete the %s section.", typ, section, section))
}

// npPeer lints one NetworkPolicy peer at path; dir is "from" or "to".
func (l *linter) npPeer(ref PolicyRef, peer networkingv1.NetworkPolicyPeer, path *field.Path, dir string) {
	if peer.PodSelector != nil {
		l.selectorLabels(ref, peer.PodSelector, path.Child("podSelector"), false)
	}
	if b := peer.IPBlock; b != nil {
		l.cidr(ref, cidrUse{kind: "ipBlock", np: true, dir: dir}, b.CIDR, path.Child("ipBlock"), b.Except, path.Child("ipBlock", "except"))
	}
}

// ciliumRules lints the rules of a Cilium policy.
func (l *linter) ciliumRules(ref PolicyRef, spec *ciliumv2.Rule, specs []ciliumv2.Rule) {
	if spec != nil {
		l.ciliumRule(ref, spec, field.NewPath("spec"))
	}
	for i := range specs {
		l.ciliumRule(ref, &specs[i], field.NewPath("specs").Index(i))
	}
}

func (l *linter) ciliumRule(ref PolicyRef, r *ciliumv2.Rule, path *field.Path) {
	if r.EndpointSelector != nil {
		l.selectorLabels(ref, &r.EndpointSelector.LabelSelector, path.Child("endpointSelector"), true)
	}
	if r.NodeSelector != nil {
		l.add(ref, path.Child("nodeSelector"), SeverityWarning, codeHostPolicy,
			"this rule is a host policy (nodeSelector): this engine computes pod policy only, so the rule selects no endpoint here and is not enforced. "+
				"Cilium enforces host policies only with its host firewall enabled; on AKS Microsoft manages Cilium's configuration, and whether the host firewall is on was not verified",
			"Enforce node traffic elsewhere (NSGs on the node subnet), or verify on the cluster that host policies take effect.")
	}
	for i := range r.Ingress {
		in := &r.Ingress[i]
		p := path.Child("ingress").Index(i)
		l.ingressCommon(ref, &in.IngressCommonRule, p, false)
		l.portRules(ref, in.ToPorts, p.Child("toPorts"), false)
		l.authentication(ref, in.Authentication, p)
	}
	for i := range r.IngressDeny {
		p := path.Child("ingressDeny").Index(i)
		l.ingressCommon(ref, &r.IngressDeny[i].IngressCommonRule, p, true)
	}
	for i := range r.Egress {
		eg := &r.Egress[i]
		p := path.Child("egress").Index(i)
		l.egressCommon(ref, &eg.EgressCommonRule, p, false, len(eg.ToFQDNs) > 0)
		l.portRules(ref, eg.ToPorts, p.Child("toPorts"), true)
		l.authentication(ref, eg.Authentication, p)
		if len(eg.ToFQDNs) > 0 {
			l.toFQDNs(ref, eg.ToFQDNs, p.Child("toFQDNs"))
		}
	}
	for i := range r.EgressDeny {
		p := path.Child("egressDeny").Index(i)
		l.egressCommon(ref, &r.EgressDeny[i].EgressCommonRule, p, true, false)
	}
}

func (l *linter) ingressCommon(ref PolicyRef, c *ciliumv2.IngressCommonRule, path *field.Path, deny bool) {
	for i := range c.FromEndpoints {
		l.selectorLabels(ref, &c.FromEndpoints[i].LabelSelector, path.Child("fromEndpoints").Index(i), false)
	}
	for i := range c.FromRequires {
		l.selectorLabels(ref, &c.FromRequires[i].LabelSelector, path.Child("fromRequires").Index(i), false)
	}
	use := cidrUse{kind: "fromCIDR", dir: "from", deny: deny}
	for i, s := range c.FromCIDR {
		l.cidr(ref, use, string(s), path.Child("fromCIDR").Index(i), nil, nil)
	}
	use.kind = "fromCIDRSet"
	l.cidrSets(ref, use, c.FromCIDRSet, path.Child("fromCIDRSet"))
	// Peers the engine translates; without any, it treats the rule as allowing every source.
	noPeer := c.FromEndpoints == nil && c.FromCIDR == nil && c.FromCIDRSet == nil && c.FromEntities == nil && c.FromNodes == nil
	if len(c.FromGroups) > 0 {
		l.notEnforced(ref, path.Child("fromGroups"), noPeer, "source", "fromGroups selects peers through a cloud provider integration (AWS security groups); "+
			"this engine does not resolve groups, and Cilium implements them for AWS only",
			"Select the sources with fromCIDR/fromCIDRSet (their addresses) or fromEndpoints.")
		noPeer = false // reported once
	}
	if len(c.FromRequires) > 0 {
		l.notEnforced(ref, path.Child("fromRequires"), noPeer, "source", "fromRequires (deprecated in Cilium after 1.19) adds requirements every source must meet; "+
			"this engine does not apply them, so rules selecting these endpoints allow more sources here than in Cilium",
			"Put the requirement into each fromEndpoints selector (matchLabels/matchExpressions) instead.")
	}
}

func (l *linter) egressCommon(ref PolicyRef, c *ciliumv2.EgressCommonRule, path *field.Path, deny, fqdn bool) {
	for i := range c.ToEndpoints {
		l.selectorLabels(ref, &c.ToEndpoints[i].LabelSelector, path.Child("toEndpoints").Index(i), false)
	}
	for i := range c.ToRequires {
		l.selectorLabels(ref, &c.ToRequires[i].LabelSelector, path.Child("toRequires").Index(i), false)
	}
	use := cidrUse{kind: "toCIDR", dir: "to", deny: deny}
	for i, s := range c.ToCIDR {
		l.cidr(ref, use, string(s), path.Child("toCIDR").Index(i), nil, nil)
	}
	use.kind = "toCIDRSet"
	l.cidrSets(ref, use, c.ToCIDRSet, path.Child("toCIDRSet"))
	if len(c.ToServices) > 0 {
		l.notEnforced(ref, path.Child("toServices"), false, "destination", "toServices is not resolved by this engine: it selects nothing here, "+
			"while Cilium selects the service's endpoints",
			"Select the service's pods with toEndpoints (their labels), or, for a service without selector, its endpoint addresses with toCIDR.")
	}
	if len(c.ToGroups) > 0 {
		l.notEnforced(ref, path.Child("toGroups"), false, "destination", "toGroups selects peers through a cloud provider integration (AWS security groups); "+
			"this engine does not resolve groups (it selects nothing here), and Cilium implements them for AWS only",
			"Select the destinations with toCIDR/toCIDRSet (their addresses) or toFQDNs.")
	}
	if len(c.ToRequires) > 0 {
		noPeer := c.ToEndpoints == nil && c.ToCIDR == nil && c.ToCIDRSet == nil && c.ToEntities == nil && c.ToNodes == nil &&
			len(c.ToServices) == 0 && len(c.ToGroups) == 0 && !fqdn
		l.notEnforced(ref, path.Child("toRequires"), noPeer, "destination", "toRequires (deprecated in Cilium after 1.19) adds requirements every destination must meet; "+
			"this engine does not apply them, so rules selecting these endpoints allow more destinations here than in Cilium",
			"Put the requirement into each toEndpoints selector (matchLabels/matchExpressions) instead.")
	}
}

// notEnforced reports a field the engine ignores. onlyPeer says the rule has no peer the engine
// translates, so the engine treats it as allowing every peer.
func (l *linter) notEnforced(ref PolicyRef, path *field.Path, onlyPeer bool, peer, msg, fix string) {
	sev := SeverityWarning
	if onlyPeer {
		sev = SeverityError
		msg += fmt.Sprintf("; as the rule has no other %s peer, this engine treats the rule as matching every %s", peer, peer)
	}
	l.add(ref, path, sev, codeNotEnforced, msg, fix)
}

func (l *linter) authentication(ref PolicyRef, a *ciliumv2.Authentication, rulePath *field.Path) {
	if a == nil || a.Mode == "" || a.Mode == "disabled" {
		return
	}
	l.add(ref, rulePath.Child("authentication"), SeverityWarning, codeNotEnforced,
		fmt.Sprintf("authentication mode %q is not enforced by this engine: the traffic is allowed without mutual authentication, "+
			"while Cilium drops it until the peers are authenticated (needs Cilium's mutual authentication, not verified on AKS)", a.Mode),
		"Do not rely on the rule for authentication; use mTLS in the application or a service mesh.")
}

// cidrSets lints toCIDRSet/fromCIDRSet entries.
func (l *linter) cidrSets(ref PolicyRef, use cidrUse, sets []ciliumv2.CIDRRule, path *field.Path) {
	for i, s := range sets {
		p := path.Index(i)
		if s.CIDRGroupRef != "" {
			l.add(ref, p.Child("cidrGroupRef"), SeverityWarning, codeNotEnforced,
				fmt.Sprintf("cidrGroupRef %q names a CiliumCIDRGroup, which this engine does not resolve: the entry selects nothing here", s.CIDRGroupRef),
				"List the group's prefixes in cidr entries.")
		}
		if s.CIDRGroupSelector != nil {
			l.add(ref, p.Child("cidrGroupSelector"), SeverityWarning, codeNotEnforced,
				"cidrGroupSelector selects CiliumCIDRGroups, which this engine does not resolve: the entry selects nothing here",
				"List the groups' prefixes in cidr entries.")
		}
		if s.Cidr == "" {
			continue
		}
		excepts := make([]string, len(s.ExceptCIDRs))
		for j, e := range s.ExceptCIDRs {
			excepts[j] = string(e)
		}
		l.cidr(ref, use, string(s.Cidr), p.Child("cidr"), excepts, p.Child("except"))
	}
}

// cidrUse says where a CIDR appears.
type cidrUse struct {
	kind string // ipBlock, toCIDR, toCIDRSet, fromCIDR, fromCIDRSet
	np   bool   // in a NetworkPolicy
	dir  string // "to" or "from"
	deny bool   // in ingressDeny/egressDeny
}

// parseCIDR parses a prefix, or a single address as a full-length prefix.
func parseCIDR(s string) (netip.Prefix, bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	return netip.Prefix{}, false
}

// overlapping returns the ranges that overlap pfx in a part no except removes.
func overlapping(pfx netip.Prefix, ranges []netip.Prefix, excepts []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, r := range ranges {
		if !r.IsValid() || !r.Overlaps(pfx) {
			continue
		}
		// Overlapping prefixes nest: the intersection is the longer one.
		inter := r.Masked()
		if pfx.Bits() > inter.Bits() {
			inter = pfx
		}
		if !slices.ContainsFunc(excepts, func(e netip.Prefix) bool { return e.Bits() <= inter.Bits() && e.Contains(inter.Addr()) }) {
			out = append(out, r)
		}
	}
	return out
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

const (
	akscidrQuote = `the AKS docs list it as a limitation of Azure CNI powered by Cilium: "Network policies cannot use ipBlock to allow access to node or pod IPs"`

	npPodFix = `Select the pods with a namespaceSelector/podSelector peer (keep the ipBlock for addresses outside the cluster), e.g.
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: <namespace>
  podSelector:
    matchLabels:
      app: <app>`
	ciliumPodFix = `Select the pods with toEndpoints/fromEndpoints (keep the CIDR for addresses outside the cluster), e.g.
toEndpoints:
- matchLabels:
    k8s:io.kubernetes.pod.namespace: <namespace>
    app: <app>`
	npNodeFix = `A NetworkPolicy has no way to select nodes under Cilium. Use a CiliumNetworkPolicy with the host (local node) and remote-node (other nodes) entities, e.g.
egress:
- toEntities: [host, remote-node]
(Cilium allows traffic from the local node to its pods, such as kubelet probes, by default.)`
	ciliumNodeFix = `Use the host (local node) and remote-node (other nodes) entities, e.g.
toEntities: [host, remote-node]
(fromEntities for ingress.)`
)

// cidr lints one CIDR with its excepts (paths exceptPath.Index(i)) against the cluster's pod and
// node ranges. Only in ModeAKS.
func (l *linter) cidr(ref PolicyRef, use cidrUse, cidr string, path *field.Path, excepts []string, exceptPath *field.Path) {
	if l.cfg.Mode != ModeAKS {
		return
	}
	pfx, ok := parseCIDR(cidr)
	if !ok {
		return
	}
	var exc []netip.Prefix
	for _, e := range excepts {
		if p, ok := parseCIDR(e); ok {
			exc = append(exc, p)
		}
	}
	verb := "allow"
	if use.deny {
		verb = "deny"
	}
	sev := SeverityWarning
	if pfx.Bits() == 0 {
		sev = SeverityInfo // a default route usually means "anything outside the cluster"
	}
	classes := []struct {
		what          string
		ranges        []netip.Prefix
		code, excCode string
		fix           string
		why           string
	}{
		{what: "pod", ranges: l.cfg.PodCIDRs, why: "a pod's address resolves to the pod's security identity, not to the CIDR's"},
		{what: "node", ranges: l.cfg.NodeCIDRs, why: "a node's address resolves to Cilium's host or remote-node identity, not to the CIDR's"},
	}
	if use.np {
		classes[0].code, classes[0].excCode, classes[0].fix = codeIPBlockPods, codeIPBlockExceptPods, npPodFix
		classes[1].code, classes[1].excCode, classes[1].fix = codeIPBlockNodes, codeIPBlockExceptNodes, npNodeFix
	} else {
		classes[0].code, classes[0].excCode, classes[0].fix = codeCIDRPods, codeCIDRExceptPods, ciliumPodFix
		classes[1].code, classes[1].excCode, classes[1].fix = codeCIDRNodes, codeCIDRExceptNodes, ciliumNodeFix
	}
	for _, c := range classes {
		if ov := overlapping(pfx, c.ranges, exc); len(ov) > 0 {
			l.add(ref, path, sev, c.code,
				fmt.Sprintf("%s %s overlaps the %s range %s: under Cilium (ModeAKS), %s addresses in this range are never selected through a CIDR (%s), "+
					"so this peer does not %s traffic %s those %ss; %s",
					use.kind, pfx, c.what, joinPrefixes(ov), c.what, c.why, verb, use.dir, c.what, akscidrQuote),
				c.fix)
		}
		for i, e := range exc {
			if ov := overlapping(e, c.ranges, nil); len(ov) > 0 {
				l.add(ref, exceptPath.Index(i), SeverityInfo, c.excCode,
					fmt.Sprintf("except %s overlaps the %s range %s: it has no effect on %s addresses, which this CIDR never selects under Cilium (ModeAKS) in the first place",
						e, c.what, joinPrefixes(ov), c.what),
					"")
			}
		}
	}
}

// portRules lints toPorts of an allow rule.
func (l *linter) portRules(ref PolicyRef, rules []ciliumv2.PortRule, path *field.Path, egress bool) {
	for i := range rules {
		pr := &rules[i]
		p := path.Index(i)
		proxy := "it relies on Cilium's L7 proxy (Envoy); this engine enforces the port rule at L4 only"
		if pr.Listener != nil {
			l.add(ref, p.Child("listener"), SeverityWarning, codeNotEnforced,
				"listener (redirect to a CiliumEnvoyConfig listener) is not applied: "+proxy, "")
		}
		if pr.TerminatingTLS != nil {
			l.add(ref, p.Child("terminatingTLS"), SeverityWarning, codeNotEnforced,
				"terminatingTLS (TLS interception) is not applied: "+proxy, "")
		}
		if pr.OriginatingTLS != nil {
			l.add(ref, p.Child("originatingTLS"), SeverityWarning, codeNotEnforced,
				"originatingTLS (TLS origination) is not applied: "+proxy, "")
		}
		if len(pr.ServerNames) > 0 {
			l.add(ref, p.Child("serverNames"), SeverityWarning, codeNotEnforced,
				"serverNames (TLS SNI) is not checked: this engine allows any traffic on the port(s), TLS or not, whatever the server name", "")
		}
		if pr.Rules == nil {
			continue
		}
		rp := p.Child("rules")
		for _, k := range []struct {
			name string
			n    int
		}{{"http", len(pr.Rules.HTTP)}, {"kafka", len(pr.Rules.Kafka)}, {"l7", len(pr.Rules.L7)}} {
			if k.n == 0 {
				continue
			}
			kp := rp.Child(k.name)
			l.add(ref, kp, SeverityWarning, codeL7AtL4,
				fmt.Sprintf("rules.%s is enforced at L4 only by this engine: every request on the port(s) is allowed, while Cilium's L7 proxy would check each one", k.name),
				"Do not rely on this engine's verdicts for L7; test L7 behaviour against Cilium.")
			if !l.cfg.ManagedAKS {
				continue
			}
			if !l.cfg.ACNS {
				l.add(ref, kp, SeverityError, codeAKSL7NeedsACNS,
					fmt.Sprintf(`rules.%s is an L7 policy. The AKS docs list "Cilium L7 policy enforcement is disabled" as a limitation of Azure CNI powered by Cilium, `+
						`and say "If Advanced Container Networking Services (ACNS) security is disabled, FQDN and L7 policies (HTTP, HTTPS, Kafka, and gRPC) will be blocked"`, k.name),
					"Enable ACNS security with advanced network policies set to L7 on the cluster, or drop the L7 rules and restrict at L4 (ports).")
				continue
			}
			l.add(ref, kp, SeverityInfo, codeAKSL7NeedsL7Level,
				fmt.Sprintf("rules.%s needs ACNS advanced network policies set to L7: the AKS API documents L7 as enabling FQDN, HTTP/S and Kafka policies, "+
					"and FQDN (FQDN policies only) as the default when ACNS security is enabled", k.name),
				"Check that the cluster's ACNS advanced network policies setting is L7.")
		}
		if !egress {
			continue
		}
		for j, d := range pr.Rules.DNS {
			dp := rp.Child("dns").Index(j)
			if l.cfg.ManagedAKS && strings.TrimSuffix(d.MatchPattern, ".") == "*" {
				l.add(ref, dp.Child("matchPattern"), SeverityWarning, codeAKSDNSWildcard,
					`matchPattern "*" is not supported by AKS FQDN filtering: the AKS docs say you "can't use a universal wildcard (*) to match all domains" in spec.egress.toPorts.rules.dns.matchPattern`,
					`List the names the endpoints resolve, with leading wildcards where needed, e.g.
rules:
  dns:
  - matchPattern: "*.example.com"
  - matchName: example.com`)
			}
		}
		if len(pr.Rules.DNS) > 0 && l.cfg.ManagedAKS && !l.cfg.ACNS {
			l.add(ref, rp.Child("dns"), SeverityError, codeAKSFQDNNeedsACNS, acnsFQDNMessage("rules.dns (DNS proxy rules for FQDN policies)"), acnsFQDNFix)
		}
	}
}

const acnsFQDNFix = "Enable ACNS security on the cluster (advanced network policies FQDN or L7), or allow the destinations by address with toCIDR/toCIDRSet."

func acnsFQDNMessage(what string) string {
	return what + ` needs FQDN filtering, a Container Network Security feature of Advanced Container Networking Services. ` +
		`The AKS docs: "If Advanced Container Networking Services (ACNS) security is disabled, FQDN and L7 policies (HTTP, HTTPS, Kafka, and gRPC) will be blocked"`
}

// toFQDNs lints the toFQDNs of one egress rule.
func (l *linter) toFQDNs(ref PolicyRef, sels []ciliumv2.FQDNSelector, path *field.Path) {
	if l.cfg.ManagedAKS && !l.cfg.ACNS {
		l.add(ref, path, SeverityError, codeAKSFQDNNeedsACNS, acnsFQDNMessage("toFQDNs"), acnsFQDNFix)
	}
	const dnsFix = `Allow DNS to the resolver with a DNS rule covering the names, e.g.
egress:
- toEndpoints:
  - matchLabels:
      k8s:io.kubernetes.pod.namespace: kube-system
      k8s:k8s-app: kube-dns
  toPorts:
  - ports:
    - {port: "53", protocol: ANY}
    rules:
      dns:
      - matchPattern: "*.example.com"`
	if len(l.dns) == 0 {
		l.add(ref, path, SeverityWarning, codeFQDNNoDNSRule,
			"toFQDNs allows names, but none of the linted policies has a DNS rule (toPorts rules.dns): Cilium learns the addresses of names only from "+
				"lookups its DNS proxy sees, and lookups go through the proxy only on a port rule with rules.dns. Without one the rule allows nothing "+
				"(unless a DNS rule for these endpoints lives in a policy not linted here)",
			dnsFix)
		return
	}
	for i, s := range sels {
		name := s.MatchName
		if name == "" {
			// An instance of the pattern: "**." and "*" stand for one label or character run.
			name = strings.ReplaceAll(strings.ReplaceAll(s.MatchPattern, "**.", "x."), "*", "x")
		}
		if slices.ContainsFunc(l.dns, func(m *FQDNMatcher) bool { return m.Match(name) }) {
			continue
		}
		v := s.MatchName
		if v == "" {
			v = s.MatchPattern
		}
		l.add(ref, path.Index(i), SeverityWarning, codeFQDNNotInDNSRule,
			fmt.Sprintf("no DNS rule (toPorts rules.dns) of the linted policies lets the DNS proxy resolve %q: Cilium learns the addresses of names only "+
				"from lookups its DNS proxy allows, so this entry allows nothing", v),
			dnsFix)
	}
}

// selectorLabels reports requirements on labels Cilium's default identity filter drops. subject
// says the selector picks the policy's subjects (podSelector, endpointSelector), not peers.
func (l *linter) selectorLabels(ref PolicyRef, sel *metav1.LabelSelector, path *field.Path, subject bool) {
	if sel == nil {
		return
	}
	report := func(p *field.Path, key, op string) {
		if l.identityRelevant(key) {
			return
		}
		effect := "never matches, so the selector selects nothing"
		if op == string(metav1.LabelSelectorOpNotIn) || op == string(metav1.LabelSelectorOpDoesNotExist) {
			effect = "always holds, so it does not narrow the selection"
		}
		whom := "peer"
		if subject {
			whom = "policy"
		}
		msg := fmt.Sprintf("label %q is not identity-relevant: Cilium's default label filter drops it, and security identities carry only identity-relevant labels. "+
			"This %s requirement %s in Cilium (and in this engine)", key, op, effect)
		if op != string(metav1.LabelSelectorOpNotIn) && op != string(metav1.LabelSelectorOpDoesNotExist) && whom == "policy" {
			msg += "; the policy applies to no pod"
		}
		l.add(ref, p, SeverityWarning, codeSelectorLabel, msg,
			"Select on a stable, identity-relevant label such as app or app.kubernetes.io/name (labels set in the pod template).")
	}
	keys := make([]string, 0, len(sel.MatchLabels))
	for k := range sel.MatchLabels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		report(path.Child("matchLabels").Key(k), k, string(metav1.LabelSelectorOpIn))
	}
	for i, e := range sel.MatchExpressions {
		report(path.Child("matchExpressions").Index(i).Child("key"), e.Key, string(e.Operator))
	}
}

// identityRelevant reports whether a selector key names a label the default filter keeps. Keys
// without a source, or with "any:" or "k8s:", are pod labels (source k8s).
func (l *linter) identityRelevant(key string) bool {
	src, k := identity.SourceK8s, key
	if s, rest, ok := strings.Cut(key, ":"); ok {
		k = rest
		if s != identity.SourceAny {
			src = s
		}
	}
	relevant, _ := l.filter.Filter(identity.Labels{{Source: src, Key: k}})
	return len(relevant) > 0
}
