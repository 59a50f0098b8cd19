// Package ciliumv2alpha1 holds the cilium.io/v2alpha1 CiliumEndpointSlice API type, serialized
// exactly like Cilium 1.17–1.20 (including the v1.19 service-account and v1.20 pod-uid fields), so
// that a real Cilium agent consumes the slices ceskit writes and ceskit consumes the slices Cilium's
// operator writes.
//
// A CiliumEndpointSlice (short name ces) is cluster-scoped and holds the [CoreCiliumEndpoint]s of
// one namespace.
//
// +kubebuilder:object:generate=true
// +groupName=cilium.io
// +versionName=v2alpha1
package ciliumv2alpha1
