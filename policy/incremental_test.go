package policy_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/ceskit/ceskit/policy"
)

// TestIncrementalMatchesFull applies random sequences of changes (pod relabels, deletions and
// re-creations, policy updates and deletions) to one engine incrementally, and after each step
// compares every decision with an engine built from scratch on the same state. It guards the
// patching of map states by identity.
func TestIncrementalMatchesFull(t *testing.T) {
	for seed := range uint64(12) {
		for _, mode := range []policy.Mode{policy.ModeAKS, policy.ModeSpec} {
			t.Run(fmt.Sprintf("seed=%d/%s", seed, mode), func(t *testing.T) {
				incrementalRun(t, seed, mode)
			})
		}
	}
}

func incrementalRun(t *testing.T, seed uint64, mode policy.Mode) {
	rng := rand.New(rand.NewPCG(seed, 99))
	apps := []string{"a", "b", "c", "d"}
	eps := map[string]policy.Endpoint{}
	for i := range 12 {
		ns := fmt.Sprintf("n%d", i%3)
		eps[fmt.Sprintf("%s/p%d", ns, i)] = policy.Endpoint{
			ID: fmt.Sprintf("%s/p%d", ns, i), Namespace: ns,
			Labels:          map[string]string{"app": apps[rng.IntN(len(apps))]},
			NamespaceLabels: map[string]string{"team": fmt.Sprint(i % 2)},
			IPs:             []netip.Addr{netip.AddrFrom4([4]byte{10, 0, byte(i % 3), byte(i)})},
			NamedPorts:      []policy.NamedPort{{Name: "web", Port: uint16(8000 + i%3), Protocol: policy.ProtoTCP}},
		}
	}
	pols := map[string]*policy.Policy{}
	randomPolicy := func(name string) *policy.Policy {
		ns := fmt.Sprintf("n%d", rng.IntN(3))
		sel := func() *metav1.LabelSelector {
			return &metav1.LabelSelector{MatchLabels: map[string]string{"app": apps[rng.IntN(len(apps))]}}
		}
		port := func() []networkingv1.NetworkPolicyPort {
			switch rng.IntN(3) {
			case 0:
				return nil
			case 1:
				v := intstr.FromString("web")
				return []networkingv1.NetworkPolicyPort{{Port: &v}}
			}
			v := intstr.FromInt(80)
			return []networkingv1.NetworkPolicyPort{{Port: &v}}
		}
		peer := func() networkingv1.NetworkPolicyPeer {
			switch rng.IntN(3) {
			case 0:
				return networkingv1.NetworkPolicyPeer{PodSelector: sel()}
			case 1:
				return networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": fmt.Sprint(rng.IntN(2))}}, PodSelector: sel()}
			}
			return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: fmt.Sprintf("10.0.%d.0/24", rng.IntN(3))}}
		}
		np := &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: *sel(),
				Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{peer()}, Ports: port()}},
				Egress:      []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{peer()}, Ports: port()}},
			},
		}
		if rng.IntN(2) == 0 {
			np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
		}
		p, err := policy.FromNetworkPolicy(np)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	inc, err := policy.NewEngine(policy.Config{Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range eps {
		if _, err := inc.UpsertEndpoint(ep); err != nil {
			t.Fatal(err)
		}
	}
	var deleted []policy.Endpoint
	for step := range 40 {
		switch rng.IntN(5) {
		case 0, 1: // relabel
			for id, ep := range eps {
				ep.Labels = map[string]string{"app": apps[rng.IntN(len(apps))]}
				eps[id] = ep
				if _, err := inc.UpsertEndpoint(ep); err != nil {
					t.Fatal(err)
				}
				break
			}
		case 2: // delete an endpoint, or re-create one deleted earlier
			if len(deleted) > 0 && rng.IntN(2) == 0 {
				ep := deleted[len(deleted)-1]
				deleted = deleted[:len(deleted)-1]
				eps[ep.ID] = ep
				if _, err := inc.UpsertEndpoint(ep); err != nil {
					t.Fatal(err)
				}
				break
			}
			for id, ep := range eps {
				if _, err := inc.DeleteEndpoint(id); err != nil {
					t.Fatal(err)
				}
				deleted = append(deleted, ep)
				delete(eps, id)
				break
			}
		case 3: // add or update a policy
			name := fmt.Sprintf("p%d", rng.IntN(5))
			for ref := range pols {
				if ref == name {
					if _, err := inc.DeletePolicy(pols[ref].Ref()); err != nil {
						t.Fatal(err)
					}
				}
			}
			p := randomPolicy(name)
			pols[name] = p
			if _, err := inc.UpsertPolicy(p); err != nil {
				t.Fatal(err)
			}
		case 4: // delete a policy
			for name, p := range pols {
				if _, err := inc.DeletePolicy(p.Ref()); err != nil {
					t.Fatal(err)
				}
				delete(pols, name)
				break
			}
		}
		fresh, err := policy.NewEngine(policy.Config{Mode: mode})
		if err != nil {
			t.Fatal(err)
		}
		var all []policy.Endpoint
		for _, ep := range eps {
			all = append(all, ep)
		}
		if _, err := fresh.UpsertEndpoints(all...); err != nil {
			t.Fatal(err)
		}
		var ps []*policy.Policy
		for _, p := range pols {
			ps = append(ps, p)
		}
		if _, err := fresh.UpsertPolicies(ps...); err != nil {
			t.Fatal(err)
		}
		peers := []policy.Peer{{IP: netip.MustParseAddr("10.0.1.200")}, {IP: netip.MustParseAddr("192.0.2.1")}}
		for id := range eps {
			peers = append(peers, policy.Peer{Endpoint: id})
		}
		for _, src := range peers {
			for _, dst := range peers {
				if src == dst {
					continue
				}
				for _, port := range []uint16{80, 8000, 8001, 8002, 443} {
					a, err1 := inc.Explain(src, dst, policy.ProtoTCP, port)
					b, err2 := fresh.Explain(src, dst, policy.ProtoTCP, port)
					if err1 != nil || err2 != nil {
						t.Fatalf("explain: %v %v", err1, err2)
					}
					if a.Allowed != b.Allowed || a.Egress.Verdict != b.Egress.Verdict || a.Ingress.Verdict != b.Ingress.Verdict {
						t.Fatalf("step %d: %s → %s TCP/%d: incremental %v (%s | %s), from scratch %v (%s | %s)",
							step, src, dst, port, a.Allowed, a.Egress, a.Ingress, b.Allowed, b.Egress, b.Ingress)
					}
				}
			}
		}
	}
}
