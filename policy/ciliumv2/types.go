package ciliumv2

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CiliumNetworkPolicy is a namespaced Cilium network policy: one rule in Spec, several in Specs,
// or both. Its rules select endpoints in the policy's namespace; they may not use NodeSelector.
//
// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:resource:categories={cilium,ciliumpolicy},singular="ciliumnetworkpolicy",path="ciliumnetworkpolicies",scope="Namespaced",shortName={cnp,ciliumnp}
// +kubebuilder:printcolumn:JSONPath=".metadata.creationTimestamp",name="Age",type=date
// +kubebuilder:printcolumn:JSONPath=".status.conditions[?(@.type=='Valid')].status",name="Valid",type=string
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:validation:XValidation:rule="has(self.spec) || has(self.specs)",message="spec or specs must be provided"
type CiliumNetworkPolicy struct {
	metav1.TypeMeta `json:",inline"`
	// +kubebuilder:validation:Required
	metav1.ObjectMeta `json:"metadata"`

	// Spec is a single policy rule.
	//
	// +kubebuilder:validation:Optional
	Spec *Rule `json:"spec,omitempty"`

	// Specs is a list of policy rules; they apply together with Spec.
	//
	// +kubebuilder:validation:Optional
	Specs []Rule `json:"specs,omitempty"`

	// Status is the status Cilium agents report for the policy.
	//
	// +kubebuilder:validation:Optional
	Status CiliumNetworkPolicyStatus `json:"status,omitempty"`
}

// CiliumNetworkPolicyList is a list of CiliumNetworkPolicies.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type CiliumNetworkPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata"`

	// Items is the list of CiliumNetworkPolicies.
	Items []CiliumNetworkPolicy `json:"items"`
}

// CiliumClusterwideNetworkPolicy is a cluster-scoped Cilium network policy. Its rules select
// endpoints in every namespace (EndpointSelector) or nodes (NodeSelector, a host policy).
//
// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:resource:categories={cilium,ciliumpolicy},singular="ciliumclusterwidenetworkpolicy",path="ciliumclusterwidenetworkpolicies",scope="Cluster",shortName={ccnp}
// +kubebuilder:printcolumn:JSONPath=".metadata.creationTimestamp",name="Age",type=date
// +kubebuilder:printcolumn:JSONPath=".status.conditions[?(@.type=='Valid')].status",name="Valid",type=string
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
// +kubebuilder:validation:XValidation:rule="has(self.spec) || has(self.specs)",message="spec or specs must be provided"
type CiliumClusterwideNetworkPolicy struct {
	metav1.TypeMeta `json:",inline"`
	// +kubebuilder:validation:Required
	metav1.ObjectMeta `json:"metadata"`

	// Spec is a single policy rule.
	//
	// +kubebuilder:validation:Optional
	Spec *Rule `json:"spec,omitempty"`

	// Specs is a list of policy rules; they apply together with Spec.
	//
	// +kubebuilder:validation:Optional
	Specs []Rule `json:"specs,omitempty"`

	// Status is the status Cilium agents report for the policy.
	//
	// +kubebuilder:validation:Optional
	Status CiliumNetworkPolicyStatus `json:"status,omitempty"`
}

// CiliumClusterwideNetworkPolicyList is a list of CiliumClusterwideNetworkPolicies.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type CiliumClusterwideNetworkPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata"`

	// Items is the list of CiliumClusterwideNetworkPolicies.
	Items []CiliumClusterwideNetworkPolicy `json:"items"`
}

// CiliumNetworkPolicyStatus is the status of a Cilium policy, shared by both kinds.
type CiliumNetworkPolicyStatus struct {
	// DerivativePolicies is the status of policies derived from this one (toGroups), by name.
	//
	// +kubebuilder:validation:Optional
	DerivativePolicies map[string]CiliumNetworkPolicyNodeStatus `json:"derivativePolicies,omitempty"`

	// Conditions are the policy's conditions; Cilium sets "Valid".
	//
	// +kubebuilder:validation:Optional
	// +listType=map
	// +listMapKey=type
	Conditions []NetworkPolicyCondition `json:"conditions,omitempty"`
}

// CiliumNetworkPolicyNodeStatus is the status of a policy on one node.
type CiliumNetworkPolicyNodeStatus struct {
	// OK is true when the policy was parsed and imported on the node.
	//
	// +kubebuilder:validation:Optional
	OK bool `json:"ok,omitempty"`

	// Error describes why parsing, importing or enforcing the policy failed.
	//
	// +kubebuilder:validation:Optional
	Error string `json:"error,omitempty"`

	// LastUpdated is when this status was last updated.
	//
	// +kubebuilder:validation:Optional
	LastUpdated metav1.Time `json:"lastUpdated,omitempty"`

	// Revision is the policy repository revision that first implemented the policy.
	//
	// +kubebuilder:validation:Optional
	Revision uint64 `json:"localPolicyRevision,omitempty"`

	// Enforcing is true once every endpoint present at import time enforces the policy.
	//
	// +kubebuilder:validation:Optional
	Enforcing bool `json:"enforcing,omitempty"`

	// Annotations are the policy's annotations as realized on the node.
	//
	// +kubebuilder:validation:Optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// PolicyConditionType is the type of a [NetworkPolicyCondition].
type PolicyConditionType string

// PolicyConditionValid is the condition Cilium sets after parsing a policy.
const PolicyConditionValid PolicyConditionType = "Valid"

// NetworkPolicyCondition is one condition of a policy.
type NetworkPolicyCondition struct {
	// Type is the condition's type.
	//
	// +kubebuilder:validation:Required
	Type PolicyConditionType `json:"type"`

	// Status is True, False or Unknown.
	//
	// +kubebuilder:validation:Required
	Status metav1.ConditionStatus `json:"status"`

	// LastTransitionTime is when the condition last changed status.
	//
	// +kubebuilder:validation:Optional
	LastTransitionTime metav1.Time `json:"lastTransitionTime,omitempty"`

	// Reason is a machine-readable reason for the last transition.
	//
	// +kubebuilder:validation:Optional
	Reason string `json:"reason,omitempty"`

	// Message is a human-readable description of the last transition.
	//
	// +kubebuilder:validation:Optional
	Message string `json:"message,omitempty"`
}
