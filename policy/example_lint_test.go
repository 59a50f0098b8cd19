package policy_test

import (
	"fmt"
	"net/netip"

	"github.com/ceskit/ceskit/policy"
)

// ExampleLint checks a NetworkPolicy and a CiliumNetworkPolicy against an AKS cluster with
// Azure CNI powered by Cilium (overlay pod CIDR 10.244.0.0/16), without Advanced Container
// Networking Services.
func ExampleLint() {
	const manifests = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: to-db, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress:
  - to:
    - ipBlock: {cidr: 10.244.3.0/24}   # the database pods
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: to-api, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress:
  - toFQDNs: [{matchName: api.example.com}]
`
	findings, err := policy.Lint([]byte(manifests), policy.LintConfig{
		Mode:       policy.ModeAKS,
		PodCIDRs:   []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")},
		ManagedAKS: true,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range findings {
		fmt.Println(f.Severity, f.Policy, f.Field, f.Code)
	}
	// Output:
	// error CiliumNetworkPolicy shop/to-api spec.egress[0].toFQDNs aks-fqdn-requires-acns
	// warning CiliumNetworkPolicy shop/to-api spec.egress[0].toFQDNs fqdn-without-dns-rule
	// warning NetworkPolicy shop/to-db spec.egress[0].to[0].ipBlock ipblock-covers-pods
}
