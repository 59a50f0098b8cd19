package ciliumv2

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CiliumEndpoint is the per-pod endpoint object that Cilium's agent writes: the pod's security
// identity, addresses, node, encryption key and named ports. Its name and namespace are the pod's.
//
// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:resource:categories={cilium},singular="ciliumendpoint",path="ciliumendpoints",scope="Namespaced",shortName={cep,ciliumep}
// +kubebuilder:printcolumn:JSONPath=".status.identity.id",description="Security Identity",name="Security Identity",type=integer
// +kubebuilder:printcolumn:JSONPath=".status.state",description="Endpoint current state",name="Endpoint State",type=string
// +kubebuilder:printcolumn:JSONPath=".status.networking.addressing[0].ipv4",description="Endpoint IPv4 address",name="IPv4",type=string
// +kubebuilder:printcolumn:JSONPath=".status.networking.addressing[0].ipv6",description="Endpoint IPv6 address",name="IPv6",type=string
// +kubebuilder:storageversion
type CiliumEndpoint struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`

	// Status is the endpoint's state as the agent reports it.
	// +kubebuilder:validation:Optional
	Status EndpointStatus `json:"status"`
}

// CiliumEndpointList is a list of CiliumEndpoints.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type CiliumEndpointList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata"`

	// Items is the list of CiliumEndpoints.
	Items []CiliumEndpoint `json:"items"`
}

// EndpointStatus is the status of a CiliumEndpoint: the fields that go into a slice (identity,
// networking, encryption, named ports, service account) plus the agent-local ID and state. The
// agent's diagnostic fields (controllers, health, policy, log) are not modelled and are ignored
// when an agent-written object is decoded.
type EndpointStatus struct {
	// ID is the cilium-agent-local ID of the endpoint.
	ID int64 `json:"id,omitempty"`

	// Identity is the security identity of the endpoint.
	Identity *EndpointIdentity `json:"identity,omitempty"`

	// Networking holds the endpoint's addresses and the IP of the node hosting it.
	Networking *EndpointNetworking `json:"networking,omitempty"`

	// Encryption is the encryption configuration of the node.
	// +kubebuilder:validation:Optional
	Encryption EncryptionSpec `json:"encryption,omitempty"`

	// State is the endpoint's state in the agent, e.g. "ready".
	State string `json:"state,omitempty"`

	// NamedPorts are the named ports the endpoint exposes.
	NamedPorts NamedPorts `json:"named-ports,omitempty"`

	// ServiceAccount is the service account of the endpoint's pod (Cilium ≥ 1.19).
	ServiceAccount string `json:"service-account,omitempty"`
}

// EndpointIdentity is the security identity of an endpoint.
type EndpointIdentity struct {
	// ID is the numeric security identity.
	ID int64 `json:"id,omitempty"`

	// Labels are the identity's labels in Cilium's "source:key=value" form.
	Labels []string `json:"labels,omitempty"`
}

// EndpointNetworking is the addressing information of an endpoint.
type EndpointNetworking struct {
	// Addressing is the list of the endpoint's address pairs.
	Addressing AddressPairList `json:"addressing"`

	// NodeIP is the IP of the node hosting the endpoint.
	NodeIP string `json:"node,omitempty"`
}

// AddressPairList is a list of address pairs.
type AddressPairList []*AddressPair

// AddressPair is one IPv4 and/or IPv6 address of an endpoint.
type AddressPair struct {
	// IPV4 is an IPv4 address in dotted-decimal form.
	IPV4 string `json:"ipv4,omitempty"`
	// IPV6 is an IPv6 address.
	IPV6 string `json:"ipv6,omitempty"`
}

// EncryptionSpec is the encryption configuration of an endpoint's node.
type EncryptionSpec struct {
	// Key is the index of the IPsec key in use, 0 when encryption is off.
	Key int `json:"key,omitempty"`
}

// NamedPorts is a list of named ports.
type NamedPorts []*Port

// Port is one named port of an endpoint.
type Port struct {
	// Name is the port's name (an IANA_SVC_NAME).
	Name string `json:"name,omitempty"`

	// Port is the port number.
	Port uint16 `json:"port,omitempty"`

	// Protocol is the layer-4 protocol: TCP, UDP, SCTP, ICMP, ICMPV6 or ANY.
	// +kubebuilder:validation:Enum=TCP;UDP;SCTP;ICMP;ICMPV6;ANY
	Protocol string `json:"protocol,omitempty"`
}
