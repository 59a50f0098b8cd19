package policy_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/ceskit/ceskit/policy"
)

// benchWorld is a synthetic cluster: namespaces × apps × replicas pods, and policies shaped like
// real ones: per-app ingress from a few other apps of the namespace on a port, namespace-wide
// ingress from a monitoring namespace, egress to a few apps plus DNS, an ipBlock egress, some
// named ports and port ranges.
type benchWorld struct {
	endpoints []policy.Endpoint
	policies  []*policy.Policy
	rng       *rand.Rand
}

func newBenchWorld(b *testing.B, endpoints, policies int) *benchWorld {
	b.Helper()
	const namespaces = 50
	apps := endpoints / namespaces / 5 // 5 replicas per app
	w := &benchWorld{rng: rand.New(rand.NewPCG(1, 2))}
	for i := range endpoints {
		ns := i % namespaces
		app := (i / namespaces) % apps
		w.endpoints = append(w.endpoints, policy.Endpoint{
			ID:              fmt.Sprintf("ns%02d/app%03d-%d", ns, app, i),
			Namespace:       fmt.Sprintf("ns%02d", ns),
			Labels:          map[string]string{"app": fmt.Sprintf("app%03d", app), "tier": []string{"web", "api", "db"}[app%3]},
			NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": fmt.Sprintf("ns%02d", ns), "team": fmt.Sprintf("t%d", ns%5)},
			IPs:             []netip.Addr{netip.AddrFrom4([4]byte{10, byte(1 + i>>16), byte(i >> 8), byte(i)})},
			NamedPorts:      []policy.NamedPort{{Name: "http", Port: uint16(8000 + app%10), Protocol: policy.ProtoTCP}},
		})
	}
	tcp := func(p int) networkingv1.NetworkPolicyPort {
		v := intstr.FromInt(p)
		return networkingv1.NetworkPolicyPort{Port: &v}
	}
	named := func(n string) networkingv1.NetworkPolicyPort {
		v := intstr.FromString(n)
		return networkingv1.NetworkPolicyPort{Port: &v}
	}
	appSel := func(a int) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("app%03d", a)}}
	}
	for i := range policies {
		ns := fmt.Sprintf("ns%02d", i%namespaces)
		app := (i / namespaces) % apps
		np := &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%04d", i), Namespace: ns},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: *appSel(app),
				Ingress: []networkingv1.NetworkPolicyIngressRule{
					{From: []networkingv1.NetworkPolicyPeer{{PodSelector: appSel((app + 1) % apps)}, {PodSelector: appSel((app + 2) % apps)}},
						Ports: []networkingv1.NetworkPolicyPort{tcp(8080), named("http")}},
					{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "t0"}},
						PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}}}},
						Ports: []networkingv1.NetworkPolicyPort{tcp(9090)}},
				},
				Egress: []networkingv1.NetworkPolicyEgressRule{
					{To: []networkingv1.NetworkPolicyPeer{{PodSelector: appSel((app + 3) % apps)}}, Ports: []networkingv1.NetworkPolicyPort{tcp(5432)}},
					{To: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "ns00"}}}},
						Ports: []networkingv1.NetworkPolicyPort{func() networkingv1.NetworkPolicyPort {
							p := tcp(53)
							u := corev1.ProtocolUDP
							p.Protocol = &u
							return p
						}()}},
					{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: fmt.Sprintf("172.%d.0.0/16", 16+i%16), Except: []string{fmt.Sprintf("172.%d.1.0/24", 16+i%16)}}}},
						Ports: []networkingv1.NetworkPolicyPort{func() networkingv1.NetworkPolicyPort {
							p := tcp(30000)
							end := int32(30100)
							p.EndPort = &end
							return p
						}()}},
				},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			},
		}
		p, err := policy.FromNetworkPolicy(np)
		if err != nil {
			b.Fatal(err)
		}
		w.policies = append(w.policies, p)
	}
	return w
}

// BenchmarkCompile is the full computation: 5,000 endpoints and 1,000 policies loaded into an
// empty engine as one change. Reported: ms per full computation, map entries per endpoint
// (mean and max), and allocations with -benchmem.
func BenchmarkCompile(b *testing.B) {
	for _, size := range []struct{ endpoints, policies int }{{5000, 1000}} {
		b.Run(fmt.Sprintf("endpoints=%d,policies=%d", size.endpoints, size.policies), func(b *testing.B) {
			w := newBenchWorld(b, size.endpoints, size.policies)
			b.ReportAllocs()
			var total time.Duration
			var e *policy.Engine
			for b.Loop() {
				var err error
				e, err = policy.NewEngine(policy.Config{})
				if err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				if _, err := e.UpsertEndpoints(w.endpoints...); err != nil {
					b.Fatal(err)
				}
				if _, err := e.UpsertPolicies(w.policies...); err != nil {
					b.Fatal(err)
				}
				total += time.Since(t0)
			}
			b.StopTimer()
			var sum, most int
			for _, id := range e.Endpoints() {
				ms, err := e.MapState(id)
				if err != nil {
					b.Fatal(err)
				}
				sum += len(ms)
				most = max(most, len(ms))
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms")
			b.ReportMetric(float64(sum)/float64(len(e.Endpoints())), "entries/endpoint")
			b.ReportMetric(float64(most), "max-entries")
		})
	}
}

// BenchmarkIncremental measures single changes on the compiled 5,000 × 1,000 state: one pod
// relabel (it moves to another app, so its identity changes and every policy selecting either
// app is affected) and one policy update (a port changes). Reported: p50/p99 latency per change
// and how many endpoints each change recomputed. Each iteration makes 100 changes of its kind.
func BenchmarkIncremental(b *testing.B) {
	w := newBenchWorld(b, 5000, 1000)
	e, err := policy.NewEngine(policy.Config{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := e.UpsertEndpoints(w.endpoints...); err != nil {
		b.Fatal(err)
	}
	if _, err := e.UpsertPolicies(w.policies...); err != nil {
		b.Fatal(err)
	}
	b.Run("pod-relabel", func(b *testing.B) {
		b.ReportAllocs()
		var lat []time.Duration
		var recomputed int
		i := 0
		// 100 changes per iteration, so that make bench's -benchtime 1x still yields a p99.
		for range b.N * 100 {
			ep := w.endpoints[w.rng.IntN(len(w.endpoints))]
			ep.Labels = map[string]string{"app": fmt.Sprintf("app%03d", i%20), "tier": "api"}
			t0 := time.Now()
			u, err := e.UpsertEndpoint(ep)
			lat = append(lat, time.Since(t0))
			if err != nil {
				b.Fatal(err)
			}
			recomputed += u.Recomputed
			i++
		}
		reportLatency(b, lat)
		b.ReportMetric(float64(recomputed)/float64(len(lat)), "recomputed/change")
	})
	b.Run("policy-update", func(b *testing.B) {
		b.ReportAllocs()
		var lat []time.Duration
		var recomputed int
		i := 0
		for range b.N * 100 {
			src := w.policies[w.rng.IntN(len(w.policies))]
			np := &networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: src.Ref().Name, Namespace: src.Ref().Namespace},
				Spec: networkingv1.NetworkPolicySpec{
					PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("app%03d", i%20)}},
					Ingress: []networkingv1.NetworkPolicyIngressRule{{
						From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}}}},
						Ports: []networkingv1.NetworkPolicyPort{{Port: ptr(intstr.FromInt(8000 + i%100))}},
					}},
				},
			}
			p, err := policy.FromNetworkPolicy(np)
			if err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			u, err := e.UpsertPolicy(p)
			lat = append(lat, time.Since(t0))
			if err != nil {
				b.Fatal(err)
			}
			recomputed += u.Recomputed
			i++
		}
		reportLatency(b, lat)
		b.ReportMetric(float64(recomputed)/float64(len(lat)), "recomputed/change")
	})
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

func ptr[T any](v T) *T { return &v }
