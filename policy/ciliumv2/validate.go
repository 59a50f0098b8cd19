package ciliumv2

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Validate reports every problem of a namespaced policy: neither spec nor specs set, and the
// problems [Rule.Validate] finds in each rule (which may not use nodeSelector). Paths are
// "spec…" or "specs[i]…".
func (p *CiliumNetworkPolicy) Validate() field.ErrorList {
	return validatePolicy(p.Spec, p.Specs, false)
}

// Validate reports every problem of a clusterwide policy: neither spec nor specs set, and the
// problems [Rule.Validate] finds in each rule (each selects endpoints or nodes, not both). Paths
// are "spec…" or "specs[i]…".
func (p *CiliumClusterwideNetworkPolicy) Validate() field.ErrorList {
	return validatePolicy(p.Spec, p.Specs, true)
}

func validatePolicy(spec *Rule, specs []Rule, clusterwide bool) field.ErrorList {
	if spec == nil && len(specs) == 0 {
		return field.ErrorList{field.Required(field.NewPath("spec"), "spec or specs must be set")}
	}
	var errs field.ErrorList
	if spec != nil {
		errs = append(errs, spec.Validate(field.NewPath("spec"), clusterwide)...)
	}
	for i := range specs {
		errs = append(errs, specs[i].Validate(field.NewPath("specs").Index(i), clusterwide)...)
	}
	return errs
}

// Validate reports every problem of one rule found at path: its subject selector (endpointSelector
// is required; nodeSelector only when clusterwide, and never together with endpointSelector),
// label selectors and their keys (a Cilium source prefix such as "k8s:" is allowed), CIDRs and
// their exceptions, ports, port ranges and protocols, entities, FQDN selectors (and toFQDNs
// combined with another L3 peer), ICMP fields, L7 rules and the log value. It changes nothing.
func (r *Rule) Validate(path *field.Path, clusterwide bool) field.ErrorList {
	var errs field.ErrorList
	switch {
	case r.NodeSelector != nil && !clusterwide:
		errs = append(errs, field.Invalid(path.Child("nodeSelector"), selectorString(r.NodeSelector),
			"only a CiliumClusterwideNetworkPolicy may select nodes"))
		if r.EndpointSelector == nil {
			errs = append(errs, field.Required(path.Child("endpointSelector"), "endpointSelector must be set ({} selects all endpoints)"))
		}
	case r.NodeSelector != nil && r.EndpointSelector != nil:
		errs = append(errs, field.Invalid(path.Child("nodeSelector"), selectorString(r.NodeSelector),
			"endpointSelector and nodeSelector are mutually exclusive"))
	case r.NodeSelector == nil && r.EndpointSelector == nil:
		if clusterwide {
			errs = append(errs, field.Required(path.Child("endpointSelector"), "one of endpointSelector or nodeSelector must be set ({} selects all)"))
		} else {
			errs = append(errs, field.Required(path.Child("endpointSelector"), "endpointSelector must be set ({} selects all endpoints)"))
		}
	}
	if r.EndpointSelector != nil {
		errs = append(errs, validateSelector(r.EndpointSelector, path.Child("endpointSelector"))...)
	}
	hostPolicy := r.NodeSelector != nil
	if hostPolicy {
		errs = append(errs, validateSelector(r.NodeSelector, path.Child("nodeSelector"))...)
	}

	for i := range r.Ingress {
		in := &r.Ingress[i]
		p := path.Child("ingress").Index(i)
		errs = append(errs, in.IngressCommonRule.validate(p)...)
		errs = append(errs, validatePortRules(in.ToPorts, p.Child("toPorts"), true, hostPolicy)...)
		errs = append(errs, validateICMPs(in.ICMPs, len(in.ToPorts) > 0, p.Child("icmps"))...)
	}
	for i := range r.IngressDeny {
		in := &r.IngressDeny[i]
		p := path.Child("ingressDeny").Index(i)
		errs = append(errs, in.IngressCommonRule.validate(p)...)
		errs = append(errs, validatePortDenyRules(in.ToPorts, p.Child("toPorts"))...)
		errs = append(errs, validateICMPs(in.ICMPs, len(in.ToPorts) > 0, p.Child("icmps"))...)
	}
	for i := range r.Egress {
		eg := &r.Egress[i]
		p := path.Child("egress").Index(i)
		errs = append(errs, eg.EgressCommonRule.validate(p)...)
		errs = append(errs, validatePortRules(eg.ToPorts, p.Child("toPorts"), false, hostPolicy)...)
		errs = append(errs, validateICMPs(eg.ICMPs, len(eg.ToPorts) > 0, p.Child("icmps"))...)
		for j := range eg.ToFQDNs {
			errs = append(errs, validateFQDN(eg.ToFQDNs[j].MatchName, eg.ToFQDNs[j].MatchPattern, p.Child("toFQDNs").Index(j))...)
		}
		if len(eg.ToFQDNs) > 0 {
			if peers := eg.EgressCommonRule.l3Peers(); len(peers) > 0 {
				errs = append(errs, field.Invalid(p.Child("toFQDNs"), fqdnString(eg.ToFQDNs),
					fmt.Sprintf("toFQDNs cannot be combined with %s in the same rule; use a separate egress rule", strings.Join(peers, ", "))))
			}
		}
	}
	for i := range r.EgressDeny {
		eg := &r.EgressDeny[i]
		p := path.Child("egressDeny").Index(i)
		errs = append(errs, eg.EgressCommonRule.validate(p)...)
		errs = append(errs, validatePortDenyRules(eg.ToPorts, p.Child("toPorts"))...)
		errs = append(errs, validateICMPs(eg.ICMPs, len(eg.ToPorts) > 0, p.Child("icmps"))...)
	}

	if r.Log != nil {
		if v := r.Log.Value; utf8.RuneCountInString(v) > 32 {
			errs = append(errs, field.Invalid(path.Child("log", "value"), v, "must be at most 32 characters"))
		} else if strings.IndexFunc(v, func(c rune) bool { return !unicode.IsPrint(c) }) >= 0 {
			errs = append(errs, field.Invalid(path.Child("log", "value"), v, "must contain only printable characters"))
		}
	}
	return errs
}

func (c *IngressCommonRule) validate(path *field.Path) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, validateSelectors(c.FromEndpoints, path.Child("fromEndpoints"))...)
	errs = append(errs, validateSelectors(c.FromRequires, path.Child("fromRequires"))...)
	errs = append(errs, validateSelectors(c.FromNodes, path.Child("fromNodes"))...)
	errs = append(errs, validateCIDRs(c.FromCIDR, path.Child("fromCIDR"))...)
	errs = append(errs, validateCIDRRules(c.FromCIDRSet, path.Child("fromCIDRSet"))...)
	errs = append(errs, validateEntities(c.FromEntities, path.Child("fromEntities"))...)
	return errs
}

func (c *EgressCommonRule) validate(path *field.Path) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, validateSelectors(c.ToEndpoints, path.Child("toEndpoints"))...)
	errs = append(errs, validateSelectors(c.ToRequires, path.Child("toRequires"))...)
	errs = append(errs, validateSelectors(c.ToNodes, path.Child("toNodes"))...)
	errs = append(errs, validateCIDRs(c.ToCIDR, path.Child("toCIDR"))...)
	errs = append(errs, validateCIDRRules(c.ToCIDRSet, path.Child("toCIDRSet"))...)
	errs = append(errs, validateEntities(c.ToEntities, path.Child("toEntities"))...)
	for i, s := range c.ToServices {
		p := path.Child("toServices").Index(i)
		switch {
		case s.K8sService == nil && s.K8sServiceSelector == nil:
			errs = append(errs, field.Required(p, "one of k8sService or k8sServiceSelector must be set"))
		case s.K8sService != nil && s.K8sServiceSelector != nil:
			errs = append(errs, field.Invalid(p.Child("k8sServiceSelector"), selectorString(&s.K8sServiceSelector.Selector),
				"k8sService and k8sServiceSelector are mutually exclusive"))
		}
		if s.K8sServiceSelector != nil {
			errs = append(errs, validateSelector(&s.K8sServiceSelector.Selector, p.Child("k8sServiceSelector", "selector"))...)
		}
	}
	return errs
}

// l3Peers names the L3 peer fields set in c (toRequires only narrows peers, so it is not one).
func (c *EgressCommonRule) l3Peers() []string {
	var peers []string
	for _, f := range []struct {
		name string
		n    int
	}{
		{"toEndpoints", len(c.ToEndpoints)},
		{"toCIDR", len(c.ToCIDR)},
		{"toCIDRSet", len(c.ToCIDRSet)},
		{"toEntities", len(c.ToEntities)},
		{"toServices", len(c.ToServices)},
		{"toGroups", len(c.ToGroups)},
		{"toNodes", len(c.ToNodes)},
	} {
		if f.n > 0 {
			peers = append(peers, f.name)
		}
	}
	return peers
}

func validateSelectors(sels []EndpointSelector, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i := range sels {
		errs = append(errs, validateSelector(&sels[i], path.Index(i))...)
	}
	return errs
}

var validOperators = []string{
	string(metav1.LabelSelectorOpIn), string(metav1.LabelSelectorOpNotIn),
	string(metav1.LabelSelectorOpExists), string(metav1.LabelSelectorOpDoesNotExist),
}

// validateSelector checks an endpoint selector; keys may carry a Cilium source prefix.
func validateSelector(sel *EndpointSelector, path *field.Path) field.ErrorList {
	return validateLabelSelector(&sel.LabelSelector, true, path)
}

// validateLabelSelector checks a label selector as metav1validation.ValidateLabelSelector does;
// with allowSource, keys may carry a Cilium source prefix.
func validateLabelSelector(sel *metav1.LabelSelector, allowSource bool, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	mlPath := path.Child("matchLabels")
	keys := make([]string, 0, len(sel.MatchLabels))
	for k := range sel.MatchLabels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		errs = append(errs, validateSelectorKey(k, allowSource, mlPath)...)
		if msgs := validation.IsValidLabelValue(sel.MatchLabels[k]); len(msgs) > 0 {
			errs = append(errs, field.Invalid(mlPath.Key(k), sel.MatchLabels[k], strings.Join(msgs, "; ")))
		}
	}
	for i, req := range sel.MatchExpressions {
		p := path.Child("matchExpressions").Index(i)
		switch req.Operator {
		case metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn:
			if len(req.Values) == 0 {
				errs = append(errs, field.Required(p.Child("values"), "must be specified when `operator` is 'In' or 'NotIn'"))
			}
		case metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist:
			if len(req.Values) > 0 {
				errs = append(errs, field.Invalid(p.Child("values"), req.Values, "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
			}
		default:
			errs = append(errs, field.NotSupported(p.Child("operator"), string(req.Operator), validOperators))
		}
		errs = append(errs, validateSelectorKey(req.Key, allowSource, p.Child("key"))...)
		for j, v := range req.Values {
			if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 {
				errs = append(errs, field.Invalid(p.Child("values").Index(j), v, strings.Join(msgs, "; ")))
			}
		}
	}
	return errs
}

// sourcePrefix is a Cilium label source such as k8s, any, reserved or cilium-generated.
var sourcePrefix = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// validateSelectorKey checks a selector key: a Kubernetes qualified name, with allowSource
// optionally preceded by a "source:" prefix.
func validateSelectorKey(key string, allowSource bool, path *field.Path) field.ErrorList {
	name := key
	if src, rest, ok := strings.Cut(key, ":"); ok && allowSource {
		if !sourcePrefix.MatchString(src) {
			return field.ErrorList{field.Invalid(path, key, "label source prefix must consist of lower case alphanumeric characters or '-' (e.g. 'k8s:app', 'any:app')")}
		}
		name = rest
	}
	if msgs := validation.IsQualifiedName(name); len(msgs) > 0 {
		return field.ErrorList{field.Invalid(path, key, strings.Join(msgs, "; "))}
	}
	return nil
}

// validateCIDRs checks fromCIDR/toCIDR entries: a prefix or a single address, as Cilium accepts.
func validateCIDRs(cidrs []CIDR, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, c := range cidrs {
		if _, err := netip.ParsePrefix(string(c)); err == nil {
			continue
		}
		if _, err := netip.ParseAddr(string(c)); err == nil {
			continue
		}
		errs = append(errs, field.Invalid(path.Index(i), string(c), "must be a CIDR prefix (e.g. 10.0.0.0/8) or an IP address"))
	}
	return errs
}

func validateCIDRRules(rules []CIDRRule, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i := range rules {
		r := &rules[i]
		p := path.Index(i)
		set := 0
		for _, b := range []bool{r.Cidr != "", r.CIDRGroupRef != "", r.CIDRGroupSelector != nil} {
			if b {
				set++
			}
		}
		if set == 0 {
			errs = append(errs, field.Required(p.Child("cidr"), "one of cidr, cidrGroupRef or cidrGroupSelector must be set"))
		} else if set > 1 {
			errs = append(errs, field.Invalid(p, cidrRuleString(r), "only one of cidr, cidrGroupRef or cidrGroupSelector may be set"))
		}
		if r.CIDRGroupRef != "" {
			if msgs := validation.IsDNS1123Subdomain(r.CIDRGroupRef); len(msgs) > 0 {
				errs = append(errs, field.Invalid(p.Child("cidrGroupRef"), r.CIDRGroupRef, strings.Join(msgs, "; ")))
			}
		}
		if r.CIDRGroupSelector != nil {
			errs = append(errs, validateLabelSelector(r.CIDRGroupSelector, false, p.Child("cidrGroupSelector"))...)
		}
		var prefix netip.Prefix
		havePrefix := false
		if r.Cidr != "" {
			pfx, err := netip.ParsePrefix(string(r.Cidr))
			if err != nil {
				errs = append(errs, field.Invalid(p.Child("cidr"), string(r.Cidr), "must be a CIDR prefix (e.g. 10.0.0.0/8)"))
			} else {
				prefix, havePrefix = pfx, true
			}
		}
		for j, e := range r.ExceptCIDRs {
			ep := p.Child("except").Index(j)
			except, err := netip.ParsePrefix(string(e))
			switch {
			case err != nil:
				errs = append(errs, field.Invalid(ep, string(e), "must be a CIDR prefix (e.g. 10.96.0.0/12)"))
			case r.Cidr == "":
				errs = append(errs, field.Invalid(ep, string(e), "except may only be used together with cidr"))
			case havePrefix && (except.Bits() < prefix.Bits() || !prefix.Contains(except.Addr())):
				errs = append(errs, field.Invalid(ep, string(e), fmt.Sprintf("must be contained in cidr %s", r.Cidr)))
			}
		}
	}
	return errs
}

// validEntities are the entities Cilium accepts, in the order of its CRD enum.
var validEntities = []string{
	string(EntityAll), string(EntityWorld), string(EntityCluster), string(EntityHost),
	string(EntityInit), string(EntityIngress), string(EntityUnmanaged), string(EntityRemoteNode),
	string(EntityHealth), string(EntityNone), string(EntityKubeAPIServer),
}

func validateEntities(entities []Entity, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, e := range entities {
		if !slices.Contains(validEntities, string(e)) {
			errs = append(errs, field.NotSupported(path.Index(i), string(e), validEntities))
		}
	}
	return errs
}

var validProtocols = []string{
	string(ProtoTCP), string(ProtoUDP), string(ProtoSCTP), string(ProtoICMP), string(ProtoICMPv6), string(ProtoAny),
}

func validatePorts(ports []PortProtocol, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(ports) > 40 {
		errs = append(errs, field.Invalid(path, len(ports), "must have at most 40 ports"))
	}
	for i, pp := range ports {
		p := path.Index(i)
		numeric := false
		var port uint64
		switch {
		case pp.Port == "":
			errs = append(errs, field.Required(p.Child("port"), "port must be a number (0 means all ports) or a port name"))
		case isDecimal(pp.Port):
			n, err := strconv.ParseUint(pp.Port, 10, 16)
			if err != nil {
				errs = append(errs, field.Invalid(p.Child("port"), pp.Port, "must be a port number between 0 and 65535"))
			} else {
				numeric, port = true, n
			}
		default:
			// Named ports are IANA service names; Cilium compares them case-insensitively.
			if msgs := validation.IsValidPortName(strings.ToLower(pp.Port)); len(msgs) > 0 {
				errs = append(errs, field.Invalid(p.Child("port"), pp.Port,
					"must be a port number between 0 and 65535 or a port name (IANA_SVC_NAME): "+strings.Join(msgs, "; ")))
			}
		}
		if pp.EndPort != 0 {
			switch {
			case pp.EndPort < 0 || pp.EndPort > 65535:
				errs = append(errs, field.Invalid(p.Child("endPort"), pp.EndPort, "must be between 0 and 65535"))
			case pp.Port != "" && !numeric && !isDecimal(pp.Port):
				errs = append(errs, field.Invalid(p.Child("endPort"), pp.EndPort, "may only be used with a numeric port"))
			case numeric && uint64(pp.EndPort) < port:
				errs = append(errs, field.Invalid(p.Child("endPort"), pp.EndPort, fmt.Sprintf("must be greater than or equal to port %s", pp.Port)))
			}
		}
		if pp.Protocol != "" && !slices.Contains(validProtocols, string(pp.Protocol)) {
			errs = append(errs, field.NotSupported(p.Child("protocol"), string(pp.Protocol), validProtocols))
		}
	}
	return errs
}

func isDecimal(s string) bool {
	return s != "" && strings.IndexFunc(s, func(c rune) bool { return c < '0' || c > '9' }) < 0
}

func validatePortDenyRules(rules []PortDenyRule, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i := range rules {
		errs = append(errs, validatePorts(rules[i].Ports, path.Index(i).Child("ports"))...)
	}
	return errs
}

func validatePortRules(rules []PortRule, path *field.Path, ingress, hostPolicy bool) field.ErrorList {
	var errs field.ErrorList
	for i := range rules {
		pr := &rules[i]
		p := path.Index(i)
		errs = append(errs, validatePorts(pr.Ports, p.Child("ports"))...)
		for j, sn := range pr.ServerNames {
			if sn == "" {
				errs = append(errs, field.Invalid(p.Child("serverNames").Index(j), sn, "must not be empty"))
			}
		}
		if pr.Rules == nil {
			continue
		}
		rp := p.Child("rules")
		if hostPolicy && l7Len(pr.Rules) > 0 {
			errs = append(errs, field.Invalid(rp, l7Kinds(pr.Rules), "host policies (nodeSelector) do not support L7 rules"))
		}
		if kinds := l7Kinds(pr.Rules); len(kinds) > 1 {
			errs = append(errs, field.Invalid(rp, kinds, "only one L7 protocol may be used per port rule"))
		}
		if len(pr.Rules.L7) > 0 && pr.Rules.L7Proto == "" {
			errs = append(errs, field.Required(rp.Child("l7proto"), "l7proto must be set when l7 rules are used"))
		}
		for j, h := range pr.Rules.HTTP {
			hp := rp.Child("http").Index(j)
			if _, err := regexp.Compile(h.Path); err != nil {
				errs = append(errs, field.Invalid(hp.Child("path"), h.Path, "must be a valid regular expression: "+err.Error()))
			}
			if _, err := regexp.Compile(h.Method); err != nil {
				errs = append(errs, field.Invalid(hp.Child("method"), h.Method, "must be a valid regular expression: "+err.Error()))
			}
			for k, m := range h.HeaderMatches {
				mp := hp.Child("headerMatches").Index(k)
				if m.Name == "" {
					errs = append(errs, field.Required(mp.Child("name"), "header name must be set"))
				}
				if m.Mismatch != "" && !slices.Contains(validMismatch, m.Mismatch) {
					errs = append(errs, field.NotSupported(mp.Child("mismatch"), m.Mismatch, validMismatch))
				}
				if m.Secret != nil && m.Secret.Name == "" {
					errs = append(errs, field.Required(mp.Child("secret", "name"), "secret name must be set"))
				}
			}
		}
		if len(pr.Rules.DNS) > 0 {
			if ingress {
				errs = append(errs, field.Invalid(rp.Child("dns"), dnsString(pr.Rules.DNS), "DNS rules are only allowed on egress"))
			}
			if len(pr.Ports) == 0 {
				errs = append(errs, field.Required(p.Child("ports"), "DNS rules need the DNS port (53) listed"))
			}
			for j, d := range pr.Rules.DNS {
				errs = append(errs, validateFQDN(d.MatchName, d.MatchPattern, rp.Child("dns").Index(j))...)
			}
		}
	}
	return errs
}

var validMismatch = []string{"LOG", "ADD", "DELETE", "REPLACE"}

func l7Len(r *L7Rules) int {
	return len(r.HTTP) + len(r.Kafka) + len(r.DNS) + len(r.L7)
}

func l7Kinds(r *L7Rules) []string {
	var kinds []string
	if len(r.HTTP) > 0 {
		kinds = append(kinds, "http")
	}
	if len(r.Kafka) > 0 {
		kinds = append(kinds, "kafka")
	}
	if len(r.DNS) > 0 {
		kinds = append(kinds, "dns")
	}
	if r.L7Proto != "" {
		kinds = append(kinds, "l7proto")
	}
	return kinds
}

var (
	matchNameChars    = regexp.MustCompile(`^[-a-zA-Z0-9_.]+$`)
	matchPatternChars = regexp.MustCompile(`^[-a-zA-Z0-9_.*]+$`)
)

func validateFQDN(name, pattern string, path *field.Path) field.ErrorList {
	switch {
	case name == "" && pattern == "":
		return field.ErrorList{field.Required(path, "one of matchName or matchPattern must be set")}
	case name != "" && pattern != "":
		return field.ErrorList{field.Invalid(path.Child("matchPattern"), pattern, "matchName and matchPattern are mutually exclusive")}
	case name != "" && !matchNameChars.MatchString(name):
		return field.ErrorList{field.Invalid(path.Child("matchName"), name, "must consist of the characters a-z, A-Z, 0-9, '-', '_' and '.'")}
	case pattern != "" && !matchPatternChars.MatchString(pattern):
		return field.ErrorList{field.Invalid(path.Child("matchPattern"), pattern, "must consist of the characters a-z, A-Z, 0-9, '-', '_', '.' and '*'")}
	case len(name) > 255 || len(pattern) > 255:
		return field.ErrorList{field.Invalid(path, name+pattern, "must be at most 255 characters")}
	}
	return nil
}

func validateICMPs(rules []ICMPRule, withPorts bool, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(rules) > 0 && withPorts {
		errs = append(errs, field.Invalid(path, len(rules), "icmps and toPorts cannot be used in the same rule; use separate rules"))
	}
	for i, r := range rules {
		p := path.Index(i).Child("fields")
		if len(r.Fields) > 40 {
			errs = append(errs, field.Invalid(p, len(r.Fields), "must have at most 40 fields"))
		}
		for j, f := range r.Fields {
			fp := p.Index(j)
			if f.Family != "" && f.Family != "IPv4" && f.Family != "IPv6" {
				errs = append(errs, field.NotSupported(fp.Child("family"), f.Family, []string{"IPv4", "IPv6"}))
			}
			switch {
			case f.Type == nil:
				errs = append(errs, field.Required(fp.Child("type"), "ICMP type must be set"))
			case f.Type.Type == intstr.Int && (f.Type.IntVal < 0 || f.Type.IntVal > 255):
				errs = append(errs, field.Invalid(fp.Child("type"), f.Type.IntVal, "must be between 0 and 255"))
			case f.Type.Type == intstr.String && f.Type.StrVal == "":
				errs = append(errs, field.Required(fp.Child("type"), "ICMP type must be set"))
			}
		}
	}
	return errs
}

func selectorString(s *EndpointSelector) string {
	return metav1.FormatLabelSelector(&s.LabelSelector)
}

func cidrRuleString(r *CIDRRule) string {
	parts := []string{}
	if r.Cidr != "" {
		parts = append(parts, "cidr="+string(r.Cidr))
	}
	if r.CIDRGroupRef != "" {
		parts = append(parts, "cidrGroupRef="+r.CIDRGroupRef)
	}
	if r.CIDRGroupSelector != nil {
		parts = append(parts, "cidrGroupSelector="+metav1.FormatLabelSelector(r.CIDRGroupSelector))
	}
	return strings.Join(parts, " ")
}

func fqdnString(sels []FQDNSelector) []string {
	out := make([]string, 0, len(sels))
	for _, s := range sels {
		out = append(out, s.MatchName+s.MatchPattern)
	}
	return out
}

func dnsString(sels []PortRuleDNS) []string {
	out := make([]string, 0, len(sels))
	for _, s := range sels {
		out = append(out, s.MatchName+s.MatchPattern)
	}
	return out
}
