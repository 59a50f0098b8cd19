package monitor_test

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ceskit/ceskit/datapath"
	"github.com/ceskit/ceskit/datapath/monitor"
	"github.com/ceskit/ceskit/observe"
)

func TestFlowFromEvent(t *testing.T) {
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	const mono = 100 * time.Second
	a := netip.MustParseAddr
	r := testResolver()
	// base is an ingress TCP event 250ms before now, from frontend (1001) to web-1 (endpoint 7).
	base := datapath.Event{
		Time: mono - 250*time.Millisecond, Endpoint: ep, Remote: 1001, Src: a("10.0.1.1"), Dst: a(pod4),
		SrcPort: 40000, DstPort: 80, Protocol: datapath.ProtoTCP, Direction: datapath.Ingress,
	}
	with := func(f func(*datapath.Event)) datapath.Event {
		ev := base
		f(&ev)
		return ev
	}
	// flow is the flow of base, forwarded, with what f changes.
	flow := func(f func(*observe.Flow)) observe.Flow {
		src, dst := frontend, web
		out := observe.Flow{
			Time: now.Add(-250 * time.Millisecond), Verdict: observe.VerdictForwarded,
			IP:               &observe.IP{Source: "10.0.1.1", Destination: pod4, IPVersion: observe.IPv4},
			L4:               &observe.Layer4{TCP: &observe.TCP{SourcePort: 40000, DestinationPort: 80}},
			Source:           &src,
			Destination:      &dst,
			Type:             observe.FlowTypeL3L4,
			NodeName:         "node-1",
			EventType:        &observe.EventType{Type: observe.EventTypePolicyVerdict},
			TrafficDirection: observe.DirectionIngress,
		}
		if f != nil {
			f(&out)
		}
		return out
	}
	cases := []struct {
		name string
		ev   datapath.Event
		r    monitor.Resolver
		want observe.Flow
	}{
		{"tcp allowed ingress", with(func(e *datapath.Event) {
			e.Verdict, e.Cookie, e.Match, e.NewFlow = datapath.Allow, 1, datapath.MatchL3L4, true
		}), r, flow(func(f *observe.Flow) {
			f.PolicyMatchType, f.IngressAllowedBy = observe.PolicyMatchL3L4, []observe.Policy{allowHTTP}
			f.Ceskit = &observe.FlowExtras{Cookie: 1, Rule: "allow-http"}
		})},
		{"tcp allowed egress", with(func(e *datapath.Event) {
			e.Src, e.Dst, e.SrcPort, e.DstPort, e.Direction = a(pod4), a("10.0.1.1"), 40000, 80, datapath.Egress
			e.Verdict, e.Cookie, e.Match = datapath.Allow, 1, datapath.MatchL3L4
		}), r, flow(func(f *observe.Flow) {
			f.IP.Source, f.IP.Destination = pod4, "10.0.1.1"
			f.Source, f.Destination, f.TrafficDirection = &web, &frontend, observe.DirectionEgress
			f.PolicyMatchType, f.EgressAllowedBy = observe.PolicyMatchL3L4, []observe.Policy{allowHTTP}
			f.Ceskit = &observe.FlowExtras{Cookie: 1, Rule: "allow-http"}
		})},
		{"default deny", with(func(e *datapath.Event) { e.Reason = datapath.ReasonDropDefault }), r, flow(func(f *observe.Flow) {
			f.Verdict, f.DropReasonDesc = observe.VerdictDropped, observe.DropPolicyDenied
		})},
		{"deny rule ingress", with(func(e *datapath.Event) {
			e.Reason, e.Cookie, e.Match = datapath.ReasonDropDeny, 2, datapath.MatchL4Only
		}), r, flow(func(f *observe.Flow) {
			f.Verdict, f.DropReasonDesc, f.PolicyMatchType = observe.VerdictDropped, observe.DropPolicyDeny, observe.PolicyMatchL4Only
			f.IngressDeniedBy, f.Ceskit = []observe.Policy{denySSH}, &observe.FlowExtras{Cookie: 2, Rule: "deny-ssh"}
		})},
		{"deny rule egress", with(func(e *datapath.Event) {
			e.Direction, e.Src, e.Dst = datapath.Egress, a(pod4), a("10.0.1.1")
			e.Reason, e.Cookie, e.Match = datapath.ReasonDropDeny, 2, datapath.MatchAll
		}), r, flow(func(f *observe.Flow) {
			f.IP.Source, f.IP.Destination = pod4, "10.0.1.1"
			f.Source, f.Destination, f.TrafficDirection = &web, &frontend, observe.DirectionEgress
			f.Verdict, f.DropReasonDesc, f.PolicyMatchType = observe.VerdictDropped, observe.DropPolicyDeny, observe.PolicyMatchAll
			f.EgressDeniedBy, f.Ceskit = []observe.Policy{denySSH}, &observe.FlowExtras{Cookie: 2, Rule: "deny-ssh"}
		})},
		{"audit", with(func(e *datapath.Event) {
			e.Verdict, e.Audit, e.NewFlow, e.Reason, e.Cookie, e.Match = datapath.Audit, true, true, datapath.ReasonAudited, 3, datapath.MatchL3Only
		}), r, flow(func(f *observe.Flow) {
			f.Verdict, f.PolicyMatchType = observe.VerdictAudit, observe.PolicyMatchL3Only
			f.IngressDeniedBy, f.Ceskit = []observe.Policy{auditDNS}, &observe.FlowExtras{Cookie: 3, Rule: "audit-dns"}
		})},
		{"later fragment", with(func(e *datapath.Event) {
			e.Protocol, e.SrcPort, e.DstPort, e.Fragment, e.Reason = datapath.ProtoUDP, 0, 0, true, datapath.ReasonDropFragment
		}), r, flow(func(f *observe.Flow) {
			f.Verdict, f.DropReasonDesc, f.L4 = observe.VerdictDropped, 157, &observe.Layer4{UDP: &observe.UDP{}}
		})},
		{"invalid packet is a drop notification", with(func(e *datapath.Event) {
			e.Reason, e.Match = datapath.ReasonDropInvalid, datapath.MatchL3L4
		}), r, flow(func(f *observe.Flow) {
			f.Verdict, f.DropReasonDesc = observe.VerdictDropped, 134
			f.EventType = &observe.EventType{Type: observe.EventTypeDrop}
		})},
		{"udp", with(func(e *datapath.Event) { e.Protocol, e.Verdict = datapath.ProtoUDP, datapath.Allow }), r, flow(func(f *observe.Flow) {
			f.L4 = &observe.Layer4{UDP: &observe.UDP{SourcePort: 40000, DestinationPort: 80}}
		})},
		{"sctp", with(func(e *datapath.Event) { e.Protocol, e.Verdict = datapath.ProtoSCTP, datapath.Allow }), r, flow(func(f *observe.Flow) {
			f.L4 = &observe.Layer4{SCTP: &observe.SCTP{SourcePort: 40000, DestinationPort: 80}}
		})},
		{"icmpv4", with(func(e *datapath.Event) {
			e.Protocol, e.SrcPort, e.DstPort, e.ICMPCode, e.Reason = datapath.ProtoICMP, 77, 3, 1, datapath.ReasonDropDefault
		}), r, flow(func(f *observe.Flow) {
			f.Verdict, f.DropReasonDesc = observe.VerdictDropped, observe.DropPolicyDenied
			f.L4 = &observe.Layer4{ICMPv4: &observe.ICMP{Type: 3, Code: 1}}
		})},
		{"icmpv6 egress", with(func(e *datapath.Event) {
			e.Src, e.Dst, e.Remote, e.Direction = a(pod6), a("fd00:1::5"), 3001, datapath.Egress
			e.Protocol, e.SrcPort, e.DstPort, e.Verdict, e.Cookie, e.Match = datapath.ProtoICMPv6, 77, 128, datapath.Allow, 4, datapath.MatchL3L4
		}), r, flow(func(f *observe.Flow) {
			f.IP = &observe.IP{Source: pod6, Destination: "fd00:1::5", IPVersion: observe.IPv6}
			f.L4 = &observe.Layer4{ICMPv6: &observe.ICMP{Type: 128}}
			f.Source, f.Destination, f.TrafficDirection = &web, &pinged, observe.DirectionEgress
			f.PolicyMatchType, f.EgressAllowedBy = observe.PolicyMatchL3L4, []observe.Policy{allowPing}
			f.Ceskit = &observe.FlowExtras{Cookie: 4, Rule: "ping"}
		})},
		{"other protocol", with(func(e *datapath.Event) {
			e.Protocol, e.SrcPort, e.DstPort, e.Verdict = 47, 0, 0, datapath.Allow
		}), r, flow(func(f *observe.Flow) { f.L4 = nil })},
		{"world", with(func(e *datapath.Event) {
			e.Remote, e.Src, e.Reason = 2, a("192.0.2.9"), datapath.ReasonDropDefault
		}), r, flow(func(f *observe.Flow) {
			f.Verdict, f.DropReasonDesc, f.IP.Source, f.Source = observe.VerdictDropped, observe.DropPolicyDenied, "192.0.2.9", &world
		})},
		{"unknown cookie and identity", with(func(e *datapath.Event) {
			e.Remote, e.Verdict, e.Cookie, e.Match = 4444, datapath.Allow, 99, datapath.MatchL3L4
		}), r, flow(func(f *observe.Flow) {
			f.Source = &observe.Endpoint{Identity: 4444}
			f.PolicyMatchType, f.Ceskit = observe.PolicyMatchL3L4, &observe.FlowExtras{Cookie: 99}
		})},
		{"no resolver", with(func(e *datapath.Event) {
			e.Verdict, e.Cookie, e.Match = datapath.Allow, 1, datapath.MatchL3L4
		}), nil, flow(func(f *observe.Flow) {
			f.Source, f.Destination = &observe.Endpoint{Identity: 1001}, &observe.Endpoint{ID: ep}
			f.PolicyMatchType, f.Ceskit = observe.PolicyMatchL3L4, &observe.FlowExtras{Cookie: 1}
		})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := monitor.FlowFromEvent(c.ev, now, mono, c.r, "node-1")
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("FlowFromEvent (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDropReason(t *testing.T) {
	want := map[datapath.Reason]observe.DropReason{
		datapath.ReasonForwarded: 0, datapath.ReasonForwardedCT: 0, datapath.ReasonAudited: 0, datapath.ReasonPassNonIP: 0,
		datapath.ReasonDropDefault: 133, datapath.ReasonDropDeny: 181, datapath.ReasonDropInvalid: 134, datapath.ReasonDropFragment: 157,
	}
	for r, w := range want {
		if got := monitor.DropReason(r); got != w {
			t.Errorf("DropReason(%s) = %d, want %d", r, got, w)
		}
	}
	if got := monitor.DropReason(datapath.ReasonDropInvalid).String(); got != "INVALID_PACKET_DROPPED" {
		t.Errorf("invalid packets drop as %s", got)
	}
	if got := monitor.DropReason(datapath.ReasonDropFragment).String(); got != "IP_FRAGMENTATION_NOT_SUPPORTED" {
		t.Errorf("fragments drop as %s", got)
	}
}

// TestMatchTypes: the datapath's match types are Hubble's, number for number.
func TestMatchTypes(t *testing.T) {
	for m := datapath.MatchNone; m <= datapath.MatchProtoOnly; m++ {
		if got, want := observe.PolicyMatchType(m).String(), m.String(); got != want {
			t.Errorf("match type %d: observe says %q, datapath %q", m, got, want)
		}
	}
}

func TestStaticResolver(t *testing.T) {
	var r monitor.StaticResolver
	if _, ok := r.Endpoint(1); ok {
		t.Error("the zero StaticResolver knows endpoint 1")
	}
	labels := []string{"k8s:app=web"}
	r.SetEndpoint(1, observe.Endpoint{PodName: "web-1", Labels: labels})
	labels[0] = "changed"
	if e, ok := r.Endpoint(1); !ok || e.PodName != "web-1" || e.Labels[0] != "k8s:app=web" {
		t.Errorf("Endpoint(1) = %+v, %v; want web-1 with its labels as they were set", e, ok)
	}
	pols := []observe.Policy{{Name: "p", Labels: []string{"a"}}}
	r.SetPolicy(5, "rule", pols...)
	pols[0].Name = "changed"
	if ps, rule, ok := r.Policy(5); !ok || rule != "rule" || ps[0].Name != "p" {
		t.Errorf("Policy(5) = %+v, %q, %v", ps, rule, ok)
	}
	r.SetIdentity(9, observe.Endpoint{Namespace: "ns"})
	r.DeleteEndpoint(1)
	r.DeletePolicy(5)
	r.DeleteIdentity(9)
	if _, ok := r.Endpoint(1); ok {
		t.Error("endpoint 1 after DeleteEndpoint")
	}
	if _, _, ok := r.Policy(5); ok {
		t.Error("cookie 5 after DeletePolicy")
	}
	if _, ok := r.Identity(9); ok {
		t.Error("identity 9 after DeleteIdentity")
	}

	// Concurrent updates and lookups (run with -race).
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 1000 {
				id := uint32(j % 10)
				r.SetIdentity(id, observe.Endpoint{Identity: id})
				r.Identity(id)
				r.SetPolicy(id, "r", observe.Policy{Name: "p"})
				monitor.FlowFromEvent(datapath.Event{Remote: id, Cookie: id, Endpoint: uint32(i)}, time.Now(), 0, &r, "")
				r.DeleteIdentity(id)
			}
		})
	}
	wg.Wait()
}
