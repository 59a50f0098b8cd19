package ciliumv2alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ceskit/ceskit/slicer/ciliumv2"
)

// CiliumEndpointSlice groups the endpoints of one namespace so that every node watches one object
// per about a hundred pods instead of one per pod.
//
// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:resource:categories={cilium},singular="ciliumendpointslice",path="ciliumendpointslices",scope="Cluster",shortName={ces}
// +kubebuilder:storageversion
type CiliumEndpointSlice struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`

	// Namespace is the namespace of every endpoint in the slice.
	Namespace string `json:"namespace,omitempty"`

	// Endpoints are the endpoints packed into this slice.
	Endpoints []CoreCiliumEndpoint `json:"endpoints"`
}

// CiliumEndpointSliceList is a list of CiliumEndpointSlices.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type CiliumEndpointSliceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata"`

	// Items is the list of CiliumEndpointSlices.
	Items []CiliumEndpointSlice `json:"items"`
}

// CoreCiliumEndpoint is the slim form of a CiliumEndpoint's status that a slice carries.
type CoreCiliumEndpoint struct {
	// Name is the CiliumEndpoint's (and so the pod's) name.
	Name string `json:"name,omitempty"`

	// IdentityID is the endpoint's numeric security identity.
	IdentityID int64 `json:"id,omitempty"`

	// Networking is the endpoint's addresses and node IP.
	// +kubebuilder:validation:Optional
	Networking *ciliumv2.EndpointNetworking `json:"networking,omitempty"`

	// Encryption is the encryption configuration of the endpoint's node.
	// +kubebuilder:validation:Optional
	Encryption ciliumv2.EncryptionSpec `json:"encryption,omitempty"`

	// NamedPorts are the endpoint's named ports.
	NamedPorts ciliumv2.NamedPorts `json:"named-ports,omitempty"`

	// ServiceAccount is the endpoint's pod's service account (Cilium ≥ 1.19).
	ServiceAccount string `json:"service-account,omitempty"`

	// PodUID is the UID of the endpoint's pod (Cilium ≥ 1.20).
	PodUID types.UID `json:"pod-uid,omitempty"`
}
