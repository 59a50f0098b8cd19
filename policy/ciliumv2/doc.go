// Package ciliumv2 holds the cilium.io/v2 CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy API
// types, serialized like Cilium 1.17–1.20 so that policies written for a real Cilium cluster decode
// here and policies written here are accepted by Cilium.
//
// A [CiliumNetworkPolicy] (short names cnp, ciliumnp) is namespaced; a
// [CiliumClusterwideNetworkPolicy] (short name ccnp) is cluster-scoped and may select nodes with
// [Rule.NodeSelector] instead of endpoints. Both carry one [Rule] in spec, a list in specs, or both.
//
// Selectors are [EndpointSelector]s: Kubernetes label selectors whose keys may carry a Cilium label
// source prefix, such as "k8s:app" or "any:app"; a key without a prefix matches any source. An empty
// selector ({}) selects everything.
//
// The Go types cover the fields Cilium documents for L3 (endpoints, nodes, CIDRs, CIDR groups,
// entities, services, cloud groups, FQDNs), L4 (ports, port ranges, ICMP) and L7 (HTTP, DNS, Kafka,
// generic l7proto key-value rules, TLS contexts and Envoy listeners). Deny rules ([IngressDenyRule],
// [EgressDenyRule]) take ports only, as in Cilium. fromRequires/toRequires are kept for policies
// written for Cilium 1.17–1.19; newer Cilium releases deprecate them. Fields this package does not
// model (such as ones later Cilium releases add) fail a strict decode, are ignored by a plain one,
// and are then dropped when the object is encoded again.
//
// Validation is separate from decoding: [CiliumNetworkPolicy.Validate],
// [CiliumClusterwideNetworkPolicy.Validate] and [Rule.Validate] return every problem as an entry
// of a [k8s.io/apimachinery/pkg/util/validation/field.ErrorList] naming the full path and the
// offending value, for example specs[0].ingress[1].fromCIDRSet[0].except[0].
//
//	var cnp ciliumv2.CiliumNetworkPolicy
//	if err := yaml.UnmarshalStrict(data, &cnp); err != nil {
//		return err
//	}
//	if errs := cnp.Validate(); len(errs) > 0 {
//		return errs.ToAggregate()
//	}
//
// The types are plain data: safe for concurrent reads, not for concurrent writes. Generated
// DeepCopy methods copy them. [AddToScheme] registers them with a runtime.Scheme.
//
// +kubebuilder:object:generate=true
// +groupName=cilium.io
// +versionName=v2
package ciliumv2
