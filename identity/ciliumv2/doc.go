// Package ciliumv2 holds the cilium.io/v2 CiliumIdentity API type, serialized exactly like
// Cilium 1.17–1.20 so that identities written by a real Cilium agent or operator decode here and
// identities written here are used by Cilium.
//
// A CiliumIdentity (short name ciliumid) is cluster-scoped. Its name is the numeric security
// identity in decimal, its security-labels map is the full identity key ("k8s:app" → "web"), and
// its metadata.labels carry only the pod namespace (io.kubernetes.pod.namespace), as Cilium's CRD
// backend writes them. [github.com/ceskit/ceskit/identity] allocates them.
//
// +kubebuilder:object:generate=true
// +groupName=cilium.io
// +versionName=v2
package ciliumv2
