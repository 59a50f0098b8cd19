package policy_test

import (
	"fmt"
	"net/netip"

	"github.com/ceskit/ceskit/policy"
)

// Compute the map state of two pods under a NetworkPolicy and explain a flow.
func ExampleEngine_Explain() {
	e, err := policy.NewEngine(policy.Config{Mode: policy.ModeAKS})
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = e.UpsertEndpoints(
		policy.Endpoint{ID: "shop/web", Namespace: "shop", Labels: map[string]string{"app": "web"},
			IPs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}},
		policy.Endpoint{ID: "shop/db", Namespace: "shop", Labels: map[string]string{"app": "db"},
			IPs: []netip.Addr{netip.MustParseAddr("10.0.0.2")}},
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	ps, err := policy.Decode([]byte(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: 5432}]
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	u, err := e.UpsertPolicies(ps...)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("maps changed:", len(u.Diffs))
	for _, port := range []uint16{5432, 22} {
		x, err := e.Explain(policy.Peer{Endpoint: "shop/web"}, policy.Peer{Endpoint: "shop/db"}, policy.ProtoTCP, port)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("web → db TCP/%d: allowed=%v; ingress: %s\n", port, x.Allowed, x.Ingress.Reason)
		for _, r := range x.Ingress.Rules {
			fmt.Println("  by", r)
		}
	}
	// Output:
	// maps changed: 1
	// web → db TCP/5432: allowed=true; ingress: allowed by rule
	//   by NetworkPolicy shop/db ingress[0]
	// web → db TCP/22: allowed=false; ingress: default deny
	//   by NetworkPolicy shop/db (default deny)
}

// Invalid policies are rejected whole, with every field path and value named (the endPort error
// shows the port value, exactly as the API server words it).
func ExampleDecode_invalid() {
	_, err := policy.Decode([]byte(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad, namespace: shop}
spec:
  podSelector: {}
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}}]
    ports: [{port: 90, endPort: 80}]
`))
	fmt.Println(err)
	// Output:
	// decode policies: document 0: invalid NetworkPolicy shop/bad: [spec.egress[0].ports[0].endPort: Invalid value: 90: must be greater than or equal to `port`, spec.egress[0].to[0].ipBlock.except[0]: Invalid value: "10.1.0.0/24": must be a strict subset of `cidr`]
}

// The map state is what the datapath loads: keys by remote identity, direction, protocol and
// port prefix.
func ExampleEngine_MapState() {
	e, _ := policy.NewEngine(policy.Config{})
	_, _ = e.UpsertEndpoint(policy.Endpoint{ID: "shop/web", Namespace: "shop", Labels: map[string]string{"app": "web"}})
	ps, _ := policy.Decode([]byte(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress:
  - toEntities: [world]
    toPorts: [{ports: [{port: "8000", endPort: 8003, protocol: TCP}]}]
`))
	_, _ = e.UpsertPolicies(ps...)
	ms, _ := e.MapState("shop/web")
	fmt.Print(ms)
	// Output:
	// ingress id=* ANY/* → allow
	// egress id=2 TCP/8000-8003 → allow by CiliumNetworkPolicy shop/web egress[0]
}

// Learned DNS answers open toFQDNs rules.
func ExampleEngine_ObserveDNS() {
	e, _ := policy.NewEngine(policy.Config{})
	_, _ = e.UpsertEndpoint(policy.Endpoint{ID: "shop/web", Namespace: "shop", Labels: map[string]string{"app": "web"}})
	ps, _ := policy.Decode([]byte(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: api, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress:
  - toFQDNs: [{matchPattern: "*.example.com"}]
`))
	_, _ = e.UpsertPolicies(ps...)
	ip := netip.MustParseAddr("93.184.216.34")
	before, _ := e.Explain(policy.Peer{Endpoint: "shop/web"}, policy.Peer{IP: ip}, policy.ProtoTCP, 443)
	e.ObserveDNS(policy.DNSAnswer{Name: "api.example.com", IPs: []netip.Addr{ip}, TTL: 300e9})
	after, _ := e.Explain(policy.Peer{Endpoint: "shop/web"}, policy.Peer{IP: ip}, policy.ProtoTCP, 443)
	fmt.Println("before:", before.Allowed, "after:", after.Allowed)
	// Output:
	// before: false after: true
}
