package policy

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/ceskit/ceskit/identity"
)

// Mode selects how CIDR rules (NetworkPolicy ipBlock, Cilium fromCIDR/toCIDR/CIDRSet) treat
// addresses that belong to pods and nodes.
type Mode int

const (
	// ModeAKS is Cilium's default and what AKS with Azure CNI powered by Cilium does: a CIDR rule
	// selects only addresses outside the cluster (the world); pod and node addresses inside the
	// CIDR are never selected through it. Use namespaceSelector/podSelector for pods.
	ModeAKS Mode = iota
	// ModeSpec is the Kubernetes NetworkPolicy specification as the upstream e2e tests check it:
	// an ipBlock matches any address it contains, pods and nodes included.
	ModeSpec
)

// String returns "aks" or "spec".
func (m Mode) String() string {
	switch m {
	case ModeAKS:
		return "aks"
	case ModeSpec:
		return "spec"
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// Protocol is an IP protocol number; ProtoAny matches every protocol.
type Protocol uint8

// Protocols policies can name.
const (
	ProtoAny    Protocol = 0
	ProtoICMP   Protocol = 1
	ProtoTCP    Protocol = 6
	ProtoUDP    Protocol = 17
	ProtoICMPv6 Protocol = 58
	ProtoSCTP   Protocol = 132
)

// ParseProtocol parses a protocol name as Kubernetes and Cilium spell it: TCP, UDP, SCTP, ICMP,
// ICMPv6 or ANY (case-insensitive). The empty string is TCP, the API server's default.
func ParseProtocol(s string) (Protocol, error) {
	switch strings.ToUpper(s) {
	case "", "TCP":
		return ProtoTCP, nil
	case "UDP":
		return ProtoUDP, nil
	case "SCTP":
		return ProtoSCTP, nil
	case "ICMP":
		return ProtoICMP, nil
	case "ICMPV6":
		return ProtoICMPv6, nil
	case "ANY":
		return ProtoAny, nil
	}
	return 0, fmt.Errorf("unknown protocol %q (want TCP, UDP, SCTP, ICMP, ICMPv6 or ANY)", s)
}

// String returns the protocol's name, or its number.
func (p Protocol) String() string {
	switch p {
	case ProtoAny:
		return "ANY"
	case ProtoICMP:
		return "ICMP"
	case ProtoTCP:
		return "TCP"
	case ProtoUDP:
		return "UDP"
	case ProtoICMPv6:
		return "ICMPv6"
	case ProtoSCTP:
		return "SCTP"
	}
	return strconv.Itoa(int(p))
}

// Direction is the direction of traffic relative to the endpoint whose policy decides it.
type Direction uint8

const (
	// Ingress is traffic into the endpoint.
	Ingress Direction = iota
	// Egress is traffic out of the endpoint.
	Egress
)

// String returns "ingress" or "egress".
func (d Direction) String() string {
	if d == Egress {
		return "egress"
	}
	return "ingress"
}

// Verdict is what a map entry, or a decision, does with traffic.
type Verdict uint8

const (
	// Deny drops the traffic.
	Deny Verdict = iota
	// Allow lets the traffic through.
	Allow
	// Audit lets the traffic through and reports that an audited policy would have denied it.
	Audit
)

// String returns "deny", "allow" or "audit".
func (v Verdict) String() string {
	switch v {
	case Allow:
		return "allow"
	case Audit:
		return "audit"
	}
	return "deny"
}

// NamedPort is a container port with a name, which policies can refer to by name.
type NamedPort struct {
	Name     string
	Port     uint16
	Protocol Protocol
}

// Endpoint is a pod as the policy engine sees it.
type Endpoint struct {
	// ID identifies the endpoint, conventionally "namespace/pod". Required, unique.
	ID string
	// Namespace is the pod's namespace. Required.
	Namespace string
	// Labels are the pod's labels.
	Labels map[string]string
	// NamespaceLabels are the labels of the pod's namespace (including
	// kubernetes.io/metadata.name, which the API server sets).
	NamespaceLabels map[string]string
	// ServiceAccount is the pod's service account.
	ServiceAccount string
	// IPs are the pod's addresses.
	IPs []netip.Addr
	// NamedPorts are the pod's named container ports.
	NamedPorts []NamedPort
	// Identity is the pod's security identity. Zero: the engine assigns one per distinct set of
	// identity-relevant labels (from 256 upwards), as an allocator would.
	Identity identity.NumericIdentity
}

// Node is a cluster node. The local node's addresses have the reserved host identity, other
// nodes' the reserved remote-node identity.
type Node struct {
	// Name identifies the node. Required, unique.
	Name string
	// IPs are the node's addresses.
	IPs []netip.Addr
	// Labels are the node's labels (for CiliumClusterwideNetworkPolicy nodeSelector).
	Labels map[string]string
	// Local marks the node this engine enforces for.
	Local bool
}

// Peer is one side of a flow for Explain: a known endpoint (by ID) or an address. An address that
// belongs to an endpoint or node is treated as that endpoint or node.
type Peer struct {
	Endpoint string
	IP       netip.Addr
}

// String returns the endpoint ID or the address.
func (p Peer) String() string {
	if p.Endpoint != "" {
		return p.Endpoint
	}
	return p.IP.String()
}

// PolicyRef names a policy: its kind ("NetworkPolicy", "CiliumNetworkPolicy",
// "CiliumClusterwideNetworkPolicy"), namespace ("" for cluster-wide) and name.
type PolicyRef struct {
	Kind      string
	Namespace string
	Name      string
}

// String returns "Kind namespace/name" (or "Kind name" for cluster-wide policies).
func (r PolicyRef) String() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

// RuleRef names one rule of a policy: the index into the policy's ingress, egress, ingressDeny or
// egressDeny list (Section), counted from 0. For a CiliumNetworkPolicy with several specs the
// spec index is Spec (the top-level spec is 0, specs[i] is i+1). A rule reference with Section
// "default-deny" stands for the isolation a policy causes without allowing anything.
type RuleRef struct {
	Policy  PolicyRef
	Spec    int
	Section string
	Index   int
}

// String returns e.g. "NetworkPolicy x/deny-all ingress[0]".
func (r RuleRef) String() string {
	s := r.Policy.String()
	if r.Spec > 0 {
		s += fmt.Sprintf(" specs[%d]", r.Spec-1)
	}
	if r.Section == "default-deny" {
		return s + " (default deny)"
	}
	return fmt.Sprintf("%s %s[%d]", s, r.Section, r.Index)
}
