package monitor

import (
	"time"

	"github.com/ceskit/ceskit/datapath"
	"github.com/ceskit/ceskit/observe"
)

// FlowFromEvent turns a verdict event into a Hubble flow. It is pure: now and monotonicNow are
// the same instant on the wall clock and on CLOCK_MONOTONIC (the event's clock), so the flow's
// Time is now - (monotonicNow - ev.Time). r names the endpoints and the policy (nil: IDs only);
// node is the flow's NodeName.
//
// The flow is a policy verdict (EventType 5, [observe.EventTypePolicyVerdict]) of type L3_L4:
//   - Verdict FORWARDED, DROPPED or AUDIT; DropReasonDesc for DROPPED from [DropReason]
//     (POLICY_DENIED, POLICY_DENY, IP_FRAGMENTATION_NOT_SUPPORTED). An invalid packet
//     (INVALID_PACKET_DROPPED) took no policy decision: it is a drop notification (EventType 1)
//     without a match type.
//   - Source and Destination as the packet went: at ingress the remote peer (its identity, as r
//     resolves it, or a reserved identity's label) is the source and the local endpoint the
//     destination; at egress the other way round.
//   - IP with the version, L4 TCP, UDP, SCTP, ICMPv4 or ICMPv6 by protocol number (none for
//     other protocols; later fragments have no ports).
//   - PolicyMatchType from the event (what the deciding entry matches on); the policies r names
//     for the event's cookie in Ingress/EgressAllowedBy when forwarded, in Ingress/EgressDeniedBy
//     when dropped or audited (the rule that would have denied it); Ceskit's extras carry the
//     cookie and rule.
func FlowFromEvent(ev datapath.Event, now time.Time, monotonicNow time.Duration, r Resolver, node string) observe.Flow {
	// One allocation for what the flow points to.
	p := &struct {
		ip     observe.IP
		l4     observe.Layer4
		tcp    observe.TCP
		udp    observe.UDP
		sctp   observe.SCTP
		icmp   observe.ICMP
		local  observe.Endpoint
		remote observe.Endpoint
		et     observe.EventType
		extras observe.FlowExtras
	}{}
	p.et.Type = observe.EventTypePolicyVerdict
	f := observe.Flow{
		Time:             now.Add(ev.Time - monotonicNow),
		Type:             observe.FlowTypeL3L4,
		NodeName:         node,
		TrafficDirection: observe.DirectionIngress,
		EventType:        &p.et,
	}
	if ev.Direction == datapath.Egress {
		f.TrafficDirection = observe.DirectionEgress
	}
	switch {
	case ev.Verdict == datapath.Audit || ev.Audit:
		f.Verdict = observe.VerdictAudit
	case ev.Verdict == datapath.Allow:
		f.Verdict = observe.VerdictForwarded
	default:
		f.Verdict = observe.VerdictDropped
		f.DropReasonDesc = DropReason(ev.Reason)
	}
	if ev.Reason == datapath.ReasonDropInvalid {
		p.et.Type = observe.EventTypeDrop
	} else {
		f.PolicyMatchType = observe.PolicyMatchType(ev.Match)
	}
	if ev.Src.IsValid() {
		p.ip = observe.IP{Source: ev.Src.String(), Destination: ev.Dst.String(), IPVersion: observe.IPv6}
		if ev.Src.Is4() {
			p.ip.IPVersion = observe.IPv4
		}
		f.IP = &p.ip
	}
	src, dst := uint32(ev.SrcPort), uint32(ev.DstPort)
	switch ev.Protocol {
	case datapath.ProtoTCP:
		p.tcp = observe.TCP{SourcePort: src, DestinationPort: dst}
		p.l4.TCP = &p.tcp
	case datapath.ProtoUDP:
		p.udp = observe.UDP{SourcePort: src, DestinationPort: dst}
		p.l4.UDP = &p.udp
	case datapath.ProtoSCTP:
		p.sctp = observe.SCTP{SourcePort: src, DestinationPort: dst}
		p.l4.SCTP = &p.sctp
	case datapath.ProtoICMP:
		p.icmp = observe.ICMP{Type: dst, Code: uint32(ev.ICMPCode)}
		p.l4.ICMPv4 = &p.icmp
	case datapath.ProtoICMPv6:
		p.icmp = observe.ICMP{Type: dst, Code: uint32(ev.ICMPCode)}
		p.l4.ICMPv6 = &p.icmp
	}
	if p.l4 != (observe.Layer4{}) {
		f.L4 = &p.l4
	}

	p.local, p.remote = localEndpoint(ev.Endpoint, r), remoteEndpoint(ev.Remote, r)
	f.Source, f.Destination = &p.remote, &p.local
	if ev.Direction == datapath.Egress {
		f.Source, f.Destination = &p.local, &p.remote
	}

	if ev.Cookie == 0 {
		return f
	}
	if r != nil {
		policies, rule, ok := r.Policy(ev.Cookie)
		p.extras.Rule = rule
		if ok && len(policies) > 0 {
			switch {
			case f.Verdict == observe.VerdictForwarded && ev.Direction == datapath.Egress:
				f.EgressAllowedBy = policies
			case f.Verdict == observe.VerdictForwarded:
				f.IngressAllowedBy = policies
			case ev.Direction == datapath.Egress:
				f.EgressDeniedBy = policies
			default:
				f.IngressDeniedBy = policies
			}
		}
	}
	p.extras.Cookie = ev.Cookie
	f.Ceskit = &p.extras
	return f
}

// DropReason is Cilium's drop reason for a datapath reason: POLICY_DENIED (133) for a default
// deny, POLICY_DENY (181) for a deny entry, INVALID_PACKET_DROPPED (134) for a malformed packet,
// IP_FRAGMENTATION_NOT_SUPPORTED (157) for a later fragment no entry allows, and 0 for the
// reasons that pass a packet (forwarded, conntrack, audited, not IP).
func DropReason(r datapath.Reason) observe.DropReason {
	switch r {
	case datapath.ReasonDropDefault:
		return observe.DropPolicyDenied
	case datapath.ReasonDropDeny:
		return observe.DropPolicyDeny
	case datapath.ReasonDropInvalid:
		return 134
	case datapath.ReasonDropFragment:
		return 157
	}
	return observe.DropReasonUnknown
}

// localEndpoint is the endpoint as r knows it, with its ID.
func localEndpoint(id uint32, r Resolver) observe.Endpoint {
	if r != nil {
		if e, ok := r.Endpoint(id); ok {
			e.ID = id
			return e
		}
	}
	return observe.Endpoint{ID: id}
}

// remoteEndpoint is the identity as r knows it, else a reserved identity's label.
func remoteEndpoint(id uint32, r Resolver) observe.Endpoint {
	if r != nil {
		if e, ok := r.Identity(id); ok {
			e.Identity = id
			return e
		}
	}
	return observe.Endpoint{Identity: id, Labels: reservedLabels[id]}
}

// reservedLabels are the labels of Cilium's reserved identities.
var reservedLabels = map[uint32][]string{
	1: {"reserved:host"}, 2: {"reserved:world"}, 3: {"reserved:unmanaged"}, 4: {"reserved:health"},
	5: {"reserved:init"}, 6: {"reserved:remote-node"}, 7: {"reserved:kube-apiserver"},
	8: {"reserved:ingress"}, 9: {"reserved:world-ipv4"}, 10: {"reserved:world-ipv6"},
}
