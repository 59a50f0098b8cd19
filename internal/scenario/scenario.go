package scenario

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ceskit/ceskit/slicer/ciliumv2"
)

// SimulatedLabel marks the Namespaces and Nodes the scenario creates, with value "true".
const SimulatedLabel = "ceskit.io/simulated"

// Limits of the naming and addressing schemes.
const (
	// MaxNodes is the most Nodes: node IPs are 192.168.0.1–192.168.255.250.
	MaxNodes = 256 * 250
	// MaxIdentitiesPerNamespace is the most identities per namespace: identities are
	// 100000 + 100×namespace + app.
	MaxIdentitiesPerNamespace = 100
	// MaxEndpointNumber is the largest endpoint number (seeded or created by churn) with an
	// IPv4 address of its own (10.16.0.1–10.79.255.255); beyond it addresses repeat.
	MaxEndpointNumber = 1<<22 - 2
)

// Config describes a scenario. The zero value is valid: every field's comment gives its default.
type Config struct {
	// Seed selects the random choices (each endpoint's app and node, the churn); the same Config
	// gives the same objects and operations. Default 0, itself a seed.
	Seed uint64
	// Endpoints is the number of CiliumEndpoints seeded, spread over the namespaces round robin.
	// Default 2000 (the lab's); valid 1–MaxEndpointNumber.
	Endpoints int
	// Namespaces is the number of Namespaces. Default 20; valid at least 1.
	Namespaces int
	// Nodes is the number of Nodes; each endpoint runs on one, chosen at random. Default 50;
	// valid 1–[MaxNodes].
	Nodes int
	// IdentitiesPerNamespace is the number of apps, hence security identities, per namespace.
	// Default 8 (the lab's); valid 1–[MaxIdentitiesPerNamespace].
	IdentitiesPerNamespace int
}

// Validate returns an error naming the first field out of range. Zero fields stand for their
// defaults and are valid.
func (c Config) Validate() error {
	bad := func(field string, v int, reason string) error {
		return fmt.Errorf("scenario config %s=%d: %s", field, v, reason)
	}
	switch {
	case c.Endpoints < 0 || c.Endpoints > MaxEndpointNumber:
		return bad("Endpoints", c.Endpoints, fmt.Sprintf("must be between 1 and %d", MaxEndpointNumber))
	case c.Namespaces < 0:
		return bad("Namespaces", c.Namespaces, "must be at least 1")
	case c.Nodes < 0 || c.Nodes > MaxNodes:
		return bad("Nodes", c.Nodes, fmt.Sprintf("must be between 1 and %d", MaxNodes))
	case c.IdentitiesPerNamespace < 0 || c.IdentitiesPerNamespace > MaxIdentitiesPerNamespace:
		return bad("IdentitiesPerNamespace", c.IdentitiesPerNamespace, fmt.Sprintf("must be between 1 and %d", MaxIdentitiesPerNamespace))
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Endpoints == 0 {
		c.Endpoints = 2000
	}
	if c.Namespaces == 0 {
		c.Namespaces = 20
	}
	if c.Nodes == 0 {
		c.Nodes = 50
	}
	if c.IdentitiesPerNamespace == 0 {
		c.IdentitiesPerNamespace = 8
	}
	return c
}

// Scenario builds the objects of one Config. It is immutable and safe for concurrent use.
type Scenario struct {
	cfg Config
}

// New validates cfg, fills its defaults and returns the scenario.
func New(cfg Config) (*Scenario, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Scenario{cfg: cfg.withDefaults()}, nil
}

// Config returns the scenario's settings, defaults filled in.
func (s *Scenario) Config() Config { return s.cfg }

// NamespaceName is the name of namespace i.
func NamespaceName(i int) string { return fmt.Sprintf("sim-%03d", i) }

// NodeName is the name of node i.
func NodeName(i int) string { return fmt.Sprintf("sim-node-%03d", i) }

// NodeIP is the InternalIP of node i, and the node IP of the endpoints it runs.
func NodeIP(i int) string { return fmt.Sprintf("192.168.%d.%d", i/250, i%250+1) }

// EndpointName is the name of endpoint (pod) number n.
func EndpointName(n int) string { return fmt.Sprintf("pod-%07d", n) }

// AppName is the "app" label value, and service account, of app number app.
func AppName(app int) string { return fmt.Sprintf("app-%d", app) }

// Identity is the numeric security identity of app number app of namespace number ns.
func Identity(ns, app int) int64 { return int64(100_000 + ns*100 + app) }

// IdentityLabels are the labels of the identity of app in namespace ns, in Cilium's
// "source:key=value" form.
func IdentityLabels(ns, app int) []string {
	return []string{"k8s:io.kubernetes.pod.namespace=" + NamespaceName(ns), "k8s:app=" + AppName(app)}
}

// Namespace returns Namespace i.
func (s *Scenario) Namespace(i int) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: NamespaceName(i), Labels: map[string]string{SimulatedLabel: "true"}}}
}

// Node returns Node i, with its InternalIP and Hostname addresses.
func (s *Scenario) Node(i int) *corev1.Node {
	name := NodeName(i)
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{SimulatedLabel: "true", "kubernetes.io/hostname": name}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: NodeIP(i)},
			{Type: corev1.NodeHostName, Address: name},
		}},
	}
}

// pod is what distinguishes one simulated endpoint from another.
type pod struct {
	n, ns, app, node int32
}

// seeded returns seeded endpoint n: namespace n mod Namespaces, app and node drawn from the
// seed and n alone, so that the result does not depend on the order of generation.
func (s *Scenario) seeded(n int) pod {
	h := mix(s.cfg.Seed ^ mix(uint64(n)+0x9e3779b97f4a7c15))
	return pod{
		n:    int32(n),
		ns:   int32(n % s.cfg.Namespaces),
		app:  int32(h % uint64(s.cfg.IdentitiesPerNamespace)),
		node: int32((h >> 32) % uint64(s.cfg.Nodes)),
	}
}

// mix is SplitMix64's finaliser.
func mix(x uint64) uint64 {
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// Endpoint returns seeded endpoint n (0 ≤ n < Endpoints), as its agent would write it.
func (s *Scenario) Endpoint(n int) *ciliumv2.CiliumEndpoint { return s.build(s.seeded(n)) }

// build returns the CiliumEndpoint of p.
func (s *Scenario) build(p pod) *ciliumv2.CiliumEndpoint {
	n, ns, app := int(p.n), int(p.ns), int(p.app)
	host := n + 1 // never .0
	return &ciliumv2.CiliumEndpoint{
		ObjectMeta: metav1.ObjectMeta{Name: EndpointName(n), Namespace: NamespaceName(ns)},
		Status: ciliumv2.EndpointStatus{
			ID:       int64(n%65535 + 1),
			Identity: &ciliumv2.EndpointIdentity{ID: Identity(ns, app), Labels: IdentityLabels(ns, app)},
			Networking: &ciliumv2.EndpointNetworking{
				Addressing: ciliumv2.AddressPairList{{
					IPV4: fmt.Sprintf("10.%d.%d.%d", 16+host>>16&0x3f, host>>8&0xff, host&0xff),
					IPV6: fmt.Sprintf("fd00::%x:%x", host>>16, host&0xffff),
				}},
				NodeIP: NodeIP(int(p.node)),
			},
			State:          "ready",
			NamedPorts:     ciliumv2.NamedPorts{{Name: "http", Port: 8080, Protocol: "TCP"}},
			ServiceAccount: AppName(app),
		},
	}
}
