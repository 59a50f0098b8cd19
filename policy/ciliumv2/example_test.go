package ciliumv2_test

import (
	"fmt"

	"sigs.k8s.io/yaml"

	"github.com/ceskit/ceskit/policy/ciliumv2"
)

func ExampleCiliumNetworkPolicy_Validate() {
	doc := `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
specs:
- endpointSelector: {matchLabels: {"k8s:app": web}}
  ingress:
  - fromCIDRSet: [{cidr: 10.0.0.0/8, except: [192.168.0.0/16]}]
    toPorts: [{ports: [{port: "8080", endPort: 80, protocol: TCP}]}]
  egress:
  - toFQDNs: [{matchName: api.example.com}]
    toEntities: [world]
`
	var cnp ciliumv2.CiliumNetworkPolicy
	if err := yaml.UnmarshalStrict([]byte(doc), &cnp); err != nil {
		fmt.Println(err)
		return
	}
	for _, err := range cnp.Validate() {
		fmt.Println(err)
	}
	// Output:
	// specs[0].ingress[0].fromCIDRSet[0].except[0]: Invalid value: "192.168.0.0/16": must be contained in cidr 10.0.0.0/8
	// specs[0].ingress[0].toPorts[0].ports[0].endPort: Invalid value: 80: must be greater than or equal to port 8080
	// specs[0].egress[0].toFQDNs: Invalid value: ["api.example.com"]: toFQDNs cannot be combined with toEntities in the same rule; use a separate egress rule
}
