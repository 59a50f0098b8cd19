package ciliumv2

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Rule is one Cilium policy rule: the endpoints (or, in a clusterwide policy, the nodes) it selects
// and the traffic it allows or denies in each direction.
//
// Exactly one of EndpointSelector and NodeSelector is set; NodeSelector only in a
// [CiliumClusterwideNetworkPolicy].
type Rule struct {
	// EndpointSelector selects the endpoints the rule applies to. An empty selector ({}) selects
	// every endpoint in the policy's scope.
	//
	// +kubebuilder:validation:Optional
	EndpointSelector *EndpointSelector `json:"endpointSelector,omitempty"`

	// NodeSelector selects the nodes the rule applies to (a host policy). Only in
	// CiliumClusterwideNetworkPolicies; mutually exclusive with EndpointSelector.
	//
	// +kubebuilder:validation:Optional
	NodeSelector *EndpointSelector `json:"nodeSelector,omitempty"`

	// Ingress lists the traffic allowed into the selected endpoints.
	//
	// +kubebuilder:validation:Optional
	Ingress []IngressRule `json:"ingress,omitempty"`

	// IngressDeny lists the traffic denied into the selected endpoints, whatever Ingress allows.
	//
	// +kubebuilder:validation:Optional
	IngressDeny []IngressDenyRule `json:"ingressDeny,omitempty"`

	// Egress lists the traffic allowed out of the selected endpoints.
	//
	// +kubebuilder:validation:Optional
	Egress []EgressRule `json:"egress,omitempty"`

	// EgressDeny lists the traffic denied out of the selected endpoints, whatever Egress allows.
	//
	// +kubebuilder:validation:Optional
	EgressDeny []EgressDenyRule `json:"egressDeny,omitempty"`

	// Labels identify the rule; they need not be unique.
	//
	// +kubebuilder:validation:Optional
	Labels []Label `json:"labels,omitempty"`

	// EnableDefaultDeny says whether the rule puts its subjects into default-deny per direction.
	// Unset, a direction defaults to true when the rule has rules for it.
	//
	// +kubebuilder:validation:Optional
	EnableDefaultDeny *DefaultDenyConfig `json:"enableDefaultDeny,omitempty"`

	// Description is free-form text for humans.
	//
	// +kubebuilder:validation:Optional
	Description string `json:"description,omitempty"`

	// Log configures policy-specific Hubble logging.
	//
	// +kubebuilder:validation:Optional
	Log *LogConfig `json:"log,omitempty"`
}

// DefaultDenyConfig sets a rule's default-deny mode per direction. A nil field means "true if the
// rule has rules in that direction".
type DefaultDenyConfig struct {
	// Ingress says whether selected endpoints deny ingress traffic not explicitly allowed.
	//
	// +kubebuilder:validation:Optional
	Ingress *bool `json:"ingress,omitempty"`

	// Egress says whether selected endpoints deny egress traffic not explicitly allowed.
	//
	// +kubebuilder:validation:Optional
	Egress *bool `json:"egress,omitempty"`
}

// LogConfig is a rule's Hubble logging configuration.
type LogConfig struct {
	// Value is included in Hubble flows matching the rule: at most 32 printable characters.
	//
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^\PC*$`
	// +kubebuilder:validation:Optional
	Value string `json:"value,omitempty"`
}

// Label is one rule label in Cilium's object form: {key, value, source}.
type Label struct {
	// Key is the label's key.
	//
	// +kubebuilder:validation:Required
	Key string `json:"key"`

	// Value is the label's value.
	//
	// +kubebuilder:validation:Optional
	Value string `json:"value,omitempty"`

	// Source is where the label comes from, e.g. "k8s" or "unspec".
	//
	// +kubebuilder:validation:Optional
	Source string `json:"source"`
}

// EndpointSelector is a Kubernetes label selector over Cilium labels. Keys in MatchLabels and
// MatchExpressions may carry a source prefix ("k8s:app", "reserved:host", "any:app"); a key
// without one matches labels of any source. An empty selector selects everything.
type EndpointSelector struct {
	metav1.LabelSelector `json:",inline"`
}

// IngressCommonRule holds the peers shared by [IngressRule] and [IngressDenyRule]. Several
// peer fields in one rule are alternatives: traffic from any of them matches.
type IngressCommonRule struct {
	// FromEndpoints selects the source endpoints by label.
	//
	// +kubebuilder:validation:Optional
	FromEndpoints []EndpointSelector `json:"fromEndpoints,omitempty"`

	// FromRequires are extra constraints every source must meet; they grant nothing by
	// themselves. Deprecated in Cilium after 1.19.
	//
	// +kubebuilder:validation:Optional
	FromRequires []EndpointSelector `json:"fromRequires,omitempty"`

	// FromCIDR lists source prefixes (or single addresses).
	//
	// +kubebuilder:validation:Optional
	FromCIDR []CIDR `json:"fromCIDR,omitempty"`

	// FromCIDRSet lists source prefixes with exceptions, or references to CiliumCIDRGroups.
	//
	// +kubebuilder:validation:Optional
	FromCIDRSet []CIDRRule `json:"fromCIDRSet,omitempty"`

	// FromEntities lists source entities such as world or host.
	//
	// +kubebuilder:validation:Optional
	FromEntities []Entity `json:"fromEntities,omitempty"`

	// FromGroups selects sources through cloud provider groups (AWS security groups).
	//
	// +kubebuilder:validation:Optional
	FromGroups []Groups `json:"fromGroups,omitempty"`

	// FromNodes selects source nodes by node label.
	//
	// +kubebuilder:validation:Optional
	FromNodes []EndpointSelector `json:"fromNodes,omitempty"`
}

// IngressRule allows traffic into the selected endpoints: from its peers (all peers when none is
// set) to its ports (all when none is set).
type IngressRule struct {
	IngressCommonRule `json:",inline"`

	// ToPorts lists the allowed destination ports with optional L7 rules.
	//
	// +kubebuilder:validation:Optional
	ToPorts []PortRule `json:"toPorts,omitempty"`

	// ICMPs lists the allowed ICMP types; not together with ToPorts.
	//
	// +kubebuilder:validation:Optional
	ICMPs []ICMPRule `json:"icmps,omitempty"`

	// Authentication is the authentication the traffic requires.
	//
	// +kubebuilder:validation:Optional
	Authentication *Authentication `json:"authentication,omitempty"`
}

// IngressDenyRule denies traffic into the selected endpoints. It has no L7 rules.
type IngressDenyRule struct {
	IngressCommonRule `json:",inline"`

	// ToPorts lists the denied destination ports.
	//
	// +kubebuilder:validation:Optional
	ToPorts []PortDenyRule `json:"toPorts,omitempty"`

	// ICMPs lists the denied ICMP types.
	//
	// +kubebuilder:validation:Optional
	ICMPs []ICMPRule `json:"icmps,omitempty"`
}

// EgressCommonRule holds the peers shared by [EgressRule] and [EgressDenyRule].
type EgressCommonRule struct {
	// ToEndpoints selects the destination endpoints by label.
	//
	// +kubebuilder:validation:Optional
	ToEndpoints []EndpointSelector `json:"toEndpoints,omitempty"`

	// ToRequires are extra constraints every destination must meet; they grant nothing by
	// themselves. Deprecated in Cilium after 1.19.
	//
	// +kubebuilder:validation:Optional
	ToRequires []EndpointSelector `json:"toRequires,omitempty"`

	// ToCIDR lists destination prefixes (or single addresses).
	//
	// +kubebuilder:validation:Optional
	ToCIDR []CIDR `json:"toCIDR,omitempty"`

	// ToCIDRSet lists destination prefixes with exceptions, or references to CiliumCIDRGroups.
	//
	// +kubebuilder:validation:Optional
	ToCIDRSet []CIDRRule `json:"toCIDRSet,omitempty"`

	// ToEntities lists destination entities such as world or kube-apiserver.
	//
	// +kubebuilder:validation:Optional
	ToEntities []Entity `json:"toEntities,omitempty"`

	// ToServices selects destination Kubernetes services (services without selectors).
	//
	// +kubebuilder:validation:Optional
	ToServices []Service `json:"toServices,omitempty"`

	// ToGroups selects destinations through cloud provider groups (AWS security groups).
	//
	// +kubebuilder:validation:Optional
	ToGroups []Groups `json:"toGroups,omitempty"`

	// ToNodes selects destination nodes by node label.
	//
	// +kubebuilder:validation:Optional
	ToNodes []EndpointSelector `json:"toNodes,omitempty"`
}

// EgressRule allows traffic out of the selected endpoints: to its peers (all peers when none is
// set) and ports (all when none is set).
type EgressRule struct {
	EgressCommonRule `json:",inline"`

	// ToPorts lists the allowed destination ports with optional L7 rules.
	//
	// +kubebuilder:validation:Optional
	ToPorts []PortRule `json:"toPorts,omitempty"`

	// ToFQDNs selects destinations by DNS name, learned through the DNS proxy. A rule with
	// ToFQDNs may have no other L3 peer.
	//
	// +kubebuilder:validation:Optional
	ToFQDNs []FQDNSelector `json:"toFQDNs,omitempty"`

	// ICMPs lists the allowed ICMP types; not together with ToPorts.
	//
	// +kubebuilder:validation:Optional
	ICMPs []ICMPRule `json:"icmps,omitempty"`

	// Authentication is the authentication the traffic requires.
	//
	// +kubebuilder:validation:Optional
	Authentication *Authentication `json:"authentication,omitempty"`
}

// EgressDenyRule denies traffic out of the selected endpoints. It has no L7 rules and no FQDNs.
type EgressDenyRule struct {
	EgressCommonRule `json:",inline"`

	// ToPorts lists the denied destination ports.
	//
	// +kubebuilder:validation:Optional
	ToPorts []PortDenyRule `json:"toPorts,omitempty"`

	// ICMPs lists the denied ICMP types.
	//
	// +kubebuilder:validation:Optional
	ICMPs []ICMPRule `json:"icmps,omitempty"`
}

// CIDR is an IP prefix such as "10.0.0.0/8"; in FromCIDR and ToCIDR a single address is also
// accepted.
//
// +kubebuilder:validation:Format=cidr
type CIDR string

// CIDRRule selects one prefix minus exceptions, or the prefixes of CiliumCIDRGroups. Exactly one of
// Cidr, CIDRGroupRef and CIDRGroupSelector is set.
type CIDRRule struct {
	// Cidr is the prefix.
	//
	// +kubebuilder:validation:Optional
	Cidr CIDR `json:"cidr,omitempty"`

	// CIDRGroupRef names a CiliumCIDRGroup.
	//
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +kubebuilder:validation:Optional
	CIDRGroupRef string `json:"cidrGroupRef,omitempty"`

	// CIDRGroupSelector selects CiliumCIDRGroups by their labels.
	//
	// +kubebuilder:validation:Optional
	CIDRGroupSelector *metav1.LabelSelector `json:"cidrGroupSelector,omitempty"`

	// ExceptCIDRs are prefixes inside Cidr that are not selected.
	//
	// +kubebuilder:validation:Optional
	ExceptCIDRs []CIDR `json:"except,omitempty"`
}

// Entity is a class of peers without individual identities, such as "world" or "host".
//
// +kubebuilder:validation:Enum=all;world;cluster;host;init;ingress;unmanaged;remote-node;health;none;kube-apiserver
type Entity string

// The entities Cilium accepts.
const (
	// EntityAll is every peer.
	EntityAll Entity = "all"
	// EntityWorld is every peer outside the cluster.
	EntityWorld Entity = "world"
	// EntityCluster is every peer inside the cluster, managed by Cilium or not.
	EntityCluster Entity = "cluster"
	// EntityHost is the local node, including host-network pods.
	EntityHost Entity = "host"
	// EntityRemoteNode is every other node of the cluster.
	EntityRemoteNode Entity = "remote-node"
	// EntityKubeAPIServer is the Kubernetes API server.
	EntityKubeAPIServer Entity = "kube-apiserver"
	// EntityHealth is Cilium's health-check endpoints.
	EntityHealth Entity = "health"
	// EntityInit is endpoints whose identity is not resolved yet.
	EntityInit Entity = "init"
	// EntityIngress is Cilium's ingress (Envoy) proxy.
	EntityIngress Entity = "ingress"
	// EntityUnmanaged is pods not managed by Cilium.
	EntityUnmanaged Entity = "unmanaged"
	// EntityNone selects nothing.
	EntityNone Entity = "none"
)

// Service selects Kubernetes services by name or by label. One of the fields is set.
type Service struct {
	// K8sServiceSelector selects services by label, in a namespace.
	//
	// +kubebuilder:validation:Optional
	K8sServiceSelector *K8sServiceSelectorNamespace `json:"k8sServiceSelector,omitempty"`

	// K8sService selects one service by name and namespace.
	//
	// +kubebuilder:validation:Optional
	K8sService *K8sServiceNamespace `json:"k8sService,omitempty"`
}

// K8sServiceNamespace names one service.
type K8sServiceNamespace struct {
	// ServiceName is the service's name.
	//
	// +kubebuilder:validation:Optional
	ServiceName string `json:"serviceName,omitempty"`

	// Namespace is the service's namespace; empty means the policy's.
	//
	// +kubebuilder:validation:Optional
	Namespace string `json:"namespace,omitempty"`
}

// K8sServiceSelectorNamespace selects services by label in a namespace.
type K8sServiceSelectorNamespace struct {
	// Selector selects services by label.
	//
	// +kubebuilder:validation:Required
	Selector EndpointSelector `json:"selector"`

	// Namespace restricts the selection; empty means the policy's.
	//
	// +kubebuilder:validation:Optional
	Namespace string `json:"namespace,omitempty"`
}

// Groups selects peers through a cloud provider integration.
type Groups struct {
	// AWS selects peers by AWS security group.
	//
	// +kubebuilder:validation:Optional
	AWS *AWSGroup `json:"aws,omitempty"`
}

// AWSGroup selects AWS instances by security group and tags.
type AWSGroup struct {
	// Labels match instance tags.
	//
	// +kubebuilder:validation:Optional
	Labels map[string]string `json:"labels,omitempty"`

	// SecurityGroupsIds lists security group IDs.
	//
	// +kubebuilder:validation:Optional
	SecurityGroupsIds []string `json:"securityGroupsIds,omitempty"`

	// SecurityGroupsNames lists security group names.
	//
	// +kubebuilder:validation:Optional
	SecurityGroupsNames []string `json:"securityGroupsNames,omitempty"`

	// Region is the AWS region.
	//
	// +kubebuilder:validation:Optional
	Region string `json:"region,omitempty"`
}

// Authentication is the cryptographic authentication traffic requires.
type Authentication struct {
	// Mode is the required mode.
	//
	// +kubebuilder:validation:Enum=disabled;required;test-always-fail
	// +kubebuilder:validation:Required
	Mode string `json:"mode"`
}

// ICMPRule lists ICMP types.
type ICMPRule struct {
	// Fields lists the ICMP types.
	//
	// +kubebuilder:validation:MaxItems=40
	// +kubebuilder:validation:Optional
	Fields []ICMPField `json:"fields,omitempty"`
}

// ICMPField is one ICMP type of one IP family.
type ICMPField struct {
	// Family is IPv4 (the default) or IPv6.
	//
	// +kubebuilder:validation:Enum=IPv4;IPv6
	// +kubebuilder:default=IPv4
	// +kubebuilder:validation:Optional
	Family string `json:"family,omitempty"`

	// Type is the ICMP type: a number 0–255 or its CamelCase name, e.g. "EchoRequest".
	//
	// +kubebuilder:validation:Required
	Type *intstr.IntOrString `json:"type"`
}
