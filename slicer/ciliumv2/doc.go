// Package ciliumv2 holds the cilium.io/v2 CiliumEndpoint API type, serialized exactly like
// Cilium 1.17–1.20 so that objects written by a real Cilium agent decode here and objects written
// here are accepted by Cilium.
//
// A CiliumEndpoint (short name cep) is namespaced and named after its pod; everything of interest
// is in [EndpointStatus]. [github.com/ceskit/ceskit/slicer] batches CiliumEndpoints into
// CiliumEndpointSlices.
//
// +kubebuilder:object:generate=true
// +groupName=cilium.io
// +versionName=v2
package ciliumv2
