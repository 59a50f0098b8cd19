// Package policy translates Kubernetes NetworkPolicies and Cilium's CiliumNetworkPolicies and
// CiliumClusterwideNetworkPolicies into per-endpoint policy-map state keyed by security
// identity, the form Cilium's eBPF datapath (and [github.com/ceskit/ceskit/datapath]) enforces.
// It is pure computation: no API client, no kernel.
//
// # Input
//
// [FromNetworkPolicy] applies the API server's defaulting ([DefaultNetworkPolicy]) and validation
// ([ValidateNetworkPolicy]) to a copy, so raw YAML behaves as if applied to a cluster, and honours
// policyTypes (sections not listed are ignored; Cilium ≤ 1.20 enforces them, #48703).
// [FromCiliumNetworkPolicy] and [FromCiliumClusterwideNetworkPolicy] take the types of
// [github.com/ceskit/ceskit/policy/ciliumv2] (wire-compatible, CRD manifests in policy/crds).
// [Decode] reads YAML or JSON files holding any mix. A policy with any error is rejected whole
// with an *[InvalidPolicyError] listing every field path and value; nothing of it is applied.
//
// # Engine and map state
//
// An [Engine] holds endpoints (pods with labels, namespace labels, addresses, named ports),
// nodes and policies, and computes for every endpoint a [MapState]: entries keyed like Cilium's
// BPF policy map ([Key]: remote identity or 0 for any, direction, protocol, destination-port
// prefix; port ranges become prefix keys) with a verdict (allow, deny, audit), a precedence, and
// the rules that put them there ([RuleRef]: kind, namespace, name, section, index). Semantics:
//
//   - A direction is default-deny once any policy selects the endpoint for it (for Cilium
//     policies: unless enableDefaultDeny says otherwise); otherwise everything is allowed.
//   - Deny wins over allow, whichever policy kinds they come from: a deny removes the allows it
//     covers for the same identity and outranks wildcard-identity allows by precedence.
//   - Named ports resolve against the destination: the endpoint itself for ingress, each peer
//     endpoint for egress; to an address they do not resolve.
//   - The local host reaches isolated endpoints (Cilium's allow-localhost) unless
//     [Config].DenyHostIngress.
//
// [Config].Mode chooses CIDR semantics: [ModeAKS] (Cilium's default, and AKS with Azure CNI
// powered by Cilium) selects only addresses outside the cluster through CIDR rules; [ModeSpec]
// follows the NetworkPolicy specification and the upstream e2e tests, selecting pod addresses
// too, by giving pods inside policy CIDRs their own local-scope identity ([Engine.Identity]).
//
// Every change (UpsertEndpoint(s), DeleteEndpoint, UpsertPolicy/Policies, DeletePolicy,
// ObserveDNS, ExpireDNS) recomputes only the endpoints it affects and returns an [Update] with a
// [Diff] per changed endpoint: the keys to write and the keys to delete, which is what a datapath
// applies. Endpoints with the same identity and named ports share one computation. Every change
// is also reported to [Config].Metrics ([Metrics]: policy changes, [Engine.Revision], update
// durations, enforcement, map pressure, overflows, selector cache); the default discards them.
//
// # Capacity
//
// The entry count of every endpoint is known before anything is applied. An endpoint over
// [Config].MapCapacity (default 16,384, Cilium's bpf-policy-map-max) gets an *[OverflowError] in
// its Diff and an empty map state, so the datapath denies everything for it (fail closed), never
// a partial map.
//
// # Audit
//
// A policy is audited when annotated policy.ceskit.io/audit: "true", listed in
// [Config].AuditPolicies, or in a namespace of [Config].AuditNamespaces. What only audited
// policies would deny gets verdict [Audit]: allowed and reported with the rules (Cilium has audit
// only per agent or endpoint).
//
// # Explain, FQDN, Lint
//
// [Engine.Explain] decides a flow between endpoints or addresses in both directions, as the
// datapath lookup would ([MapState.Lookup]), and names the deciding rules or the policies whose
// default deny applies. [Engine.ObserveDNS] feeds DNS answers into a TTL cache ([DNSCache]);
// toFQDNs selectors ([CompileFQDNSelector], Cilium's matchName/matchPattern semantics) then map the
// learned addresses to local-scope identities. Lint reports policies that will not do what they
// say on AKS and fields that are unknown or not enforced.
package policy
