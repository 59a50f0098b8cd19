// Package ceskit is a Go library for platform teams that run Kubernetes networking the way AKS
// does with Azure CNI powered by Cilium. It is a set of independently importable packages:
//
//   - [github.com/ceskit/ceskit/slicer] groups pod endpoints into CiliumEndpointSlices
//     (cilium.io/v2alpha1), wire-compatible with Cilium's operator and agent, with every tunable
//     the managed service hides: slice size, batching window, write rate, priority namespaces,
//     error threshold, resync period, shadow mode.
//   - identity, policy, datapath, azure and observe follow (see the repository README).
//
// Nothing in this package is code; it only documents the module. Start at the README.
package ceskit
