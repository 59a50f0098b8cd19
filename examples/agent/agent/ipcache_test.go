package agent

import (
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ceskit/ceskit/identity"
	identityv2 "github.com/ceskit/ceskit/identity/ciliumv2"
	"github.com/ceskit/ceskit/policy"
	"github.com/ceskit/ceskit/slicer"
	slicerv2 "github.com/ceskit/ceskit/slicer/ciliumv2"
	"github.com/ceskit/ceskit/slicer/ciliumv2alpha1"
)

// referenceIPCache computes the ipcache from the agent's state from scratch, without the
// indexes the delta path keeps: nodes, then endpoints in descending key order (so the first
// endpoint by key wins an address), then the CIDR identities.
func referenceIPCache(a *Agent) map[netip.Prefix]uint32 {
	out := map[netip.Prefix]uint32{}
	for _, n := range a.nodes {
		id := uint32(identity.ReservedRemoteNode)
		if n.Local {
			id = uint32(identity.ReservedHost)
		}
		for _, ip := range n.IPs {
			out[hostPrefix(ip)] = id
		}
	}
	keys := slices.Sorted(maps.Keys(a.endpoints))
	slices.Reverse(keys)
	for _, key := range keys {
		st := a.endpoints[key]
		id := uint32(st.identity)
		if st.inEngine {
			if eid, err := a.engine.Identity(key); err == nil {
				id = uint32(eid)
			}
		}
		if id == 0 {
			continue
		}
		for _, ip := range st.ep.IPs() {
			out[hostPrefix(ip)] = id
		}
	}
	a.addCIDRIdentitiesLocked(out)
	return out
}

// TestIPCacheDeltasMatchRebuild drives the agent's handlers through 600 random events (endpoints
// added, moved to other addresses and identities, deleted, sharing addresses; identities
// learned; nodes added and removed; a policy naming host prefixes in the same address range,
// in ModeSpec so that it splits identities) and checks after each syncer pass that the ipcache
// the passes wrote (full rebuilds and deltas applied in turn) equals one computed from scratch.
func TestIPCacheDeltasMatchRebuild(t *testing.T) {
	for _, mode := range []policy.Mode{policy.ModeAKS, policy.ModeSpec} {
		t.Run(mode.String(), func(t *testing.T) {
			a := newState(Config{}.withDefaults(), "node-0")
			e, err := policy.NewEngine(policy.Config{Mode: mode})
			if err != nil {
				t.Fatal(err)
			}
			a.engine, a.synced, a.ipcDirty = e, true, true
			r := rand.New(rand.NewPCG(3, uint64(mode)))
			addr := func() string { return "10.0.0." + strconv.Itoa(r.IntN(24)) }
			for _, id := range []int{1000, 1001, 1002} {
				lbls, err := identity.PodLabels("shop", map[string]string{"app": strconv.Itoa(id)}, map[string]string{"kubernetes.io/metadata.name": "shop"}, "default", "default")
				if err != nil {
					t.Fatal(err)
				}
				a.onIdentity(&identityv2.CiliumIdentity{ObjectMeta: metav1.ObjectMeta{Name: strconv.Itoa(id)}, SecurityLabels: lbls.SecurityLabels()}, false)
			}
			endpoint := func(name string) *slicer.Endpoint {
				nw := &slicerv2.EndpointNetworking{Addressing: slicerv2.AddressPairList{{IPV4: addr()}}, NodeIP: "10.0.0." + strconv.Itoa(100+r.IntN(3))}
				if r.IntN(4) == 0 {
					nw.Addressing = append(nw.Addressing, &slicerv2.AddressPair{IPV4: addr(), IPV6: "fd00::" + strconv.Itoa(r.IntN(9))})
				}
				return &slicer.Endpoint{Namespace: "shop", CoreCiliumEndpoint: ciliumv2alpha1.CoreCiliumEndpoint{
					Name: name, IdentityID: int64(1000 + r.IntN(4)), Networking: nw}} // 1003: no labels known
			}
			model := map[netip.Prefix]uint32{}
			passes := map[string]int{}
			for step := range 600 {
				switch k := r.IntN(20); {
				case k < 10:
					a.endpointUpdated(nil, endpoint("p-"+strconv.Itoa(r.IntN(15))))
				case k < 14:
					a.endpointDeleted(&slicer.Endpoint{Namespace: "shop", CoreCiliumEndpoint: ciliumv2alpha1.CoreCiliumEndpoint{Name: "p-" + strconv.Itoa(r.IntN(15))}})
				case k < 16:
					// Each node has addresses of its own (two nodes with one address would make the
					// winner a matter of map order, in the agent as in Cilium).
					i := r.IntN(3)
					n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-" + strconv.Itoa(i)}}
					n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0." + strconv.Itoa(100+i*10+r.IntN(2))}}
					a.onNode(n, r.IntN(3) == 0)
				case k < 17:
					a.onIdentity(&identityv2.CiliumIdentity{ObjectMeta: metav1.ObjectMeta{Name: strconv.Itoa(1000 + r.IntN(3))}}, true)
				default:
					np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "cidr", Namespace: "shop"},
						Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
							Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{
								{IPBlock: &networkingv1.IPBlock{CIDR: addr() + "/32"}},
								{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0." + strconv.Itoa(8*r.IntN(3)) + "/29"}},
							}}}}}
					a.onPolicy(np, r.IntN(4) == 0)
				}
				a.mu.Lock()
				plan := a.planIPCacheLocked()
				switch {
				case plan.full != nil:
					model = maps.Clone(plan.full)
					passes["full"]++
				case len(plan.set)+len(plan.remove) > 0:
					for _, p := range plan.remove {
						delete(model, p)
					}
					maps.Copy(model, plan.set)
					passes["delta"]++
				default:
					passes["none"]++
				}
				want := referenceIPCache(a)
				held := maps.Clone(a.ipc) // what Status().IPCache counts and the next delta starts from
				a.mu.Unlock()
				if diff := cmp.Diff(want, model); diff != "" {
					t.Fatalf("step %d: ipcache written (-from scratch +written):\n%s", step, diff)
				}
				if diff := cmp.Diff(model, held); diff != "" {
					t.Fatalf("step %d: the agent's copy of the ipcache (-written +copy):\n%s", step, diff)
				}
			}
			if passes["delta"] < 100 || passes["full"] < 20 {
				t.Errorf("passes %v: want at least 100 deltas and 20 full rebuilds", passes)
			}
			t.Logf("passes %v; final ipcache %d entries", passes, len(model))
		})
	}
}

// BenchmarkIPCachePass measures the ipcache work of one syncer pass after one endpoint moved to
// another address, in a cluster of 5,000 endpoints on 100 nodes: the delta (what the agent does)
// and the full rebuild (what it did before, and still does after node and policy changes). The
// datapath writes are measured by datapath's BenchmarkIPCacheChange.
func BenchmarkIPCachePass(b *testing.B) {
	for _, full := range []bool{false, true} {
		name := "delta"
		if full {
			name = "full"
		}
		b.Run(name, func(b *testing.B) {
			a := newState(Config{}.withDefaults(), "node-0")
			e, err := policy.NewEngine(policy.Config{})
			if err != nil {
				b.Fatal(err)
			}
			a.engine, a.synced, a.ipcDirty = e, true, true
			for i := range 100 {
				n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-" + strconv.Itoa(i)}}
				n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.250.0." + strconv.Itoa(i)}}
				a.onNode(n, false)
			}
			ep := func(i, gen int) *slicer.Endpoint {
				ip := netip.AddrFrom4([4]byte{10, byte(1 + gen%2), byte(i >> 8), byte(i)})
				return &slicer.Endpoint{Namespace: "ns-" + strconv.Itoa(i/100), CoreCiliumEndpoint: ciliumv2alpha1.CoreCiliumEndpoint{
					Name: "p-" + strconv.Itoa(i), IdentityID: int64(1000 + i%800),
					Networking: &slicerv2.EndpointNetworking{Addressing: slicerv2.AddressPairList{{IPV4: ip.String()}}, NodeIP: "10.250.0." + strconv.Itoa(i%100)}}}
			}
			for i := range 5000 {
				a.endpointUpdated(nil, ep(i, 0))
			}
			a.mu.Lock()
			a.planIPCacheLocked()
			size := len(a.ipc)
			a.mu.Unlock()
			if size != 5100 {
				b.Fatalf("ipcache %d entries, want 5100", size)
			}
			for i := 0; b.Loop(); i++ {
				a.endpointUpdated(nil, ep(i%5000, 1+i/5000))
				a.mu.Lock()
				a.ipcDirty = a.ipcDirty || full
				plan := a.planIPCacheLocked()
				a.mu.Unlock()
				if plan.full == nil && len(plan.set) != 1 {
					b.Fatalf("delta %v %v, want one address set", plan.set, plan.remove)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/change")
		})
	}
}
