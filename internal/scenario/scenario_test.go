package scenario_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/ceskit/ceskit/internal/scenario"
	"github.com/ceskit/ceskit/slicer"
	"github.com/ceskit/ceskit/slicer/ciliumv2"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func mustNew(t *testing.T, cfg scenario.Config) *scenario.Scenario {
	t.Helper()
	s, err := scenario.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  scenario.Config
		want string // substring of the error; "" for none
	}{
		{scenario.Config{}, ""},
		{scenario.Config{Endpoints: 100_000, Namespaces: 1000, Nodes: 5000, IdentitiesPerNamespace: 100}, ""},
		{scenario.Config{Endpoints: -1}, "Endpoints=-1"},
		{scenario.Config{Endpoints: scenario.MaxEndpointNumber + 1}, "Endpoints=4194303"},
		{scenario.Config{Namespaces: -2}, "Namespaces=-2"},
		{scenario.Config{Nodes: scenario.MaxNodes + 1}, "Nodes=64001"},
		{scenario.Config{IdentitiesPerNamespace: 101}, "IdentitiesPerNamespace=101"},
	} {
		t.Run(fmt.Sprintf("%+v", tc.cfg), func(t *testing.T) {
			_, err := scenario.New(tc.cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("New: error %v, want one naming %q", err, tc.want)
			}
		})
	}
	got := mustNew(t, scenario.Config{}).Config()
	want := scenario.Config{Endpoints: 2000, Namespaces: 20, Nodes: 50, IdentitiesPerNamespace: 8}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

// TestDeterminism checks that a Config gives the same endpoints and churn, and another seed
// other ones.
func TestDeterminism(t *testing.T) {
	cfg := scenario.Config{Seed: 42, Endpoints: 1000, Namespaces: 30, Nodes: 200}
	a, b := mustNew(t, cfg), mustNew(t, cfg)
	cfg.Seed = 43
	other := mustNew(t, cfg)
	differ := 0
	for n := 999; n >= 0; n-- { // another order than a's
		if ea, eb := a.Endpoint(n), b.Endpoint(n); !cmp.Equal(ea, eb) {
			t.Fatalf("endpoint %d differs between two scenarios of one Config (-a +b):\n%s", n, cmp.Diff(ea, eb))
		}
		if !cmp.Equal(a.Endpoint(n), other.Endpoint(n)) {
			differ++
		}
	}
	if differ < 700 {
		t.Errorf("only %d of 1000 endpoints differ with another seed", differ)
	}

	ca, cb, co := a.NewChurn(), b.NewChurn(), other.NewChurn()
	same := 0
	for i := range 2000 {
		x, y, z := ca.Next(), cb.Next(), co.Next()
		if !cmp.Equal(x, y) {
			t.Fatalf("churn op %d differs between two scenarios of one Config (-a +b):\n%s", i, cmp.Diff(x, y))
		}
		if x.Kind == z.Kind && x.Key() == z.Key() {
			same++
		}
	}
	if same > 1000 {
		t.Errorf("%d of 2000 churn ops are the same with another seed", same)
	}
}

// TestShapes checks the objects against the lab's shapes and the slicer's validation.
func TestShapes(t *testing.T) {
	const eps, nss, nodes, ids = 5000, 50, 500, 8
	s := mustNew(t, scenario.Config{Seed: 7, Endpoints: eps, Namespaces: nss, Nodes: nodes, IdentitiesPerNamespace: ids})

	nodeIPs := map[string]bool{}
	for i := range nodes {
		n := s.Node(i)
		if n.Name != fmt.Sprintf("sim-node-%03d", i) || n.Labels[scenario.SimulatedLabel] != "true" {
			t.Fatalf("node %d: name %q labels %v", i, n.Name, n.Labels)
		}
		ip := n.Status.Addresses[0].Address
		if _, err := netip.ParseAddr(ip); err != nil || nodeIPs[ip] {
			t.Fatalf("node %d: InternalIP %q invalid or repeated", i, ip)
		}
		nodeIPs[ip] = true
	}
	if got := s.Namespace(7).Name; got != "sim-007" {
		t.Errorf("Namespace(7).Name = %q", got)
	}

	ips := map[string]bool{}
	perNS := map[string]int{}
	apps, usedNodes := map[int64]bool{}, map[string]bool{}
	check := func(cep *ciliumv2.CiliumEndpoint, n int, newAddr bool) {
		t.Helper()
		if want := fmt.Sprintf("pod-%07d", n); cep.Name != want {
			t.Fatalf("endpoint %d named %q, want %q", n, cep.Name, want)
		}
		core, ready, err := slicer.CoreEndpointFromCEP(cep)
		if err != nil || !ready {
			t.Fatalf("endpoint %s: ready=%v err=%v", cep.Name, ready, err)
		}
		var nsIdx int
		if _, err := fmt.Sscanf(cep.Namespace, "sim-%d", &nsIdx); err != nil {
			t.Fatalf("endpoint %s in namespace %q", cep.Name, cep.Namespace)
		}
		id := core.IdentityID
		app := int(id - scenario.Identity(nsIdx, 0))
		if app < 0 || app >= ids {
			t.Fatalf("endpoint %s/%s: identity %d outside its namespace's %d..%d", cep.Namespace, cep.Name, id, scenario.Identity(nsIdx, 0), scenario.Identity(nsIdx, ids-1))
		}
		if diff := cmp.Diff(scenario.IdentityLabels(nsIdx, app), cep.Status.Identity.Labels); diff != "" {
			t.Fatalf("endpoint %s labels (-want +got):\n%s", cep.Name, diff)
		}
		if cep.Status.ServiceAccount != scenario.AppName(app) {
			t.Fatalf("endpoint %s: service account %q for app %d", cep.Name, cep.Status.ServiceAccount, app)
		}
		addr := core.Networking.Addressing[0]
		v4, err4 := netip.ParseAddr(addr.IPV4)
		v6, err6 := netip.ParseAddr(addr.IPV6)
		if err4 != nil || err6 != nil || !v4.Is4() || !v6.Is6() || !netip.MustParsePrefix("10.0.0.0/8").Contains(v4) || v4.As4()[1] < 16 {
			t.Fatalf("endpoint %s: addresses %+v", cep.Name, addr)
		}
		if newAddr && (ips[addr.IPV4] || ips[addr.IPV6]) {
			t.Fatalf("endpoint %s: address %+v used twice", cep.Name, addr)
		}
		ips[addr.IPV4], ips[addr.IPV6] = true, true
		if !nodeIPs[core.Networking.NodeIP] {
			t.Fatalf("endpoint %s on unknown node IP %q", cep.Name, core.Networking.NodeIP)
		}
		if p := core.NamedPorts; len(p) != 1 || p[0].Name != "http" || p[0].Port != 8080 || p[0].Protocol != "TCP" {
			t.Fatalf("endpoint %s: named ports %+v", cep.Name, p)
		}
		apps[id] = true
		usedNodes[core.Networking.NodeIP] = true
	}
	for n := range eps {
		cep := s.Endpoint(n)
		check(cep, n, true)
		if want := scenario.NamespaceName(n % nss); cep.Namespace != want {
			t.Fatalf("endpoint %d in %s, want %s (round robin)", n, cep.Namespace, want)
		}
		perNS[cep.Namespace]++
	}
	if len(apps) != nss*ids {
		t.Errorf("%d identities used, want %d (%d per namespace)", len(apps), nss*ids, ids)
	}
	if len(usedNodes) < nodes*9/10 {
		t.Errorf("endpoints on %d of %d nodes", len(usedNodes), nodes)
	}

	// Churn: a third of each kind; deletes of live endpoints only, each followed by the create
	// of a new endpoint of the same namespace and app; identity changes within the namespace.
	c := s.NewChurn()
	live := map[string]int64{}
	for n := range eps {
		cep := s.Endpoint(n)
		live[cep.Namespace+"/"+cep.Name] = cep.Status.Identity.ID
	}
	kinds := map[scenario.OpKind]int{}
	next := eps
	var lastDeleted scenario.Op
	for i := range 30_000 {
		op := c.Next()
		kinds[op.Kind]++
		key := op.Key()
		switch op.Kind {
		case scenario.Delete:
			if _, ok := live[key]; !ok {
				t.Fatalf("op %d deletes %s, which does not live", i, key)
			}
			delete(live, key)
			lastDeleted = op
		case scenario.Create:
			if _, ok := live[key]; ok {
				t.Fatalf("op %d creates %s, which lives", i, key)
			}
			if lastDeleted.Endpoint == nil || op.Endpoint.Namespace != lastDeleted.Endpoint.Namespace || op.Identity() != lastDeleted.Endpoint.Status.Identity.ID {
				t.Fatalf("op %d creates %s with identity %d, not a replacement of the last delete", i, key, op.Identity())
			}
			check(op.Endpoint, next, true)
			next++
			live[key] = op.Identity()
			lastDeleted = scenario.Op{}
		case scenario.ChangeIdentity:
			old, ok := live[key]
			if !ok || old == op.Identity() {
				t.Fatalf("op %d changes %s (lives: %v) from identity %d to %d", i, key, ok, old, op.Identity())
			}
			check(op.Endpoint, int(mustNumber(t, op.Endpoint.Name)), false)
			live[key] = op.Identity()
		}
		if op.Kind != scenario.Delete && len(live) != eps {
			t.Fatalf("after op %d, %d endpoints live, want %d", i, len(live), eps)
		}
	}
	if c.Live() != eps {
		t.Errorf("Live() = %d, want %d", c.Live(), eps)
	}
	for k, n := range kinds {
		if n < 9000 || n > 11000 {
			t.Errorf("%d of 30000 ops are %s, want about a third: %v", n, k, kinds)
		}
	}
}

func mustNumber(t *testing.T, name string) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscanf(name, "pod-%d", &n); err != nil {
		t.Fatalf("endpoint name %q", name)
	}
	return n
}

func TestOpKindString(t *testing.T) {
	got := []string{scenario.Create.String(), scenario.Delete.String(), scenario.ChangeIdentity.String(), scenario.OpKind(9).String()}
	want := []string{"create", "delete", "change-identity", "OpKind(9)"}
	if !slices.Equal(got, want) {
		t.Errorf("String() = %v, want %v", got, want)
	}
}
