package agent

import (
	"context"
	"net/netip"
	"slices"
	"strings"

	"github.com/ceskit/ceskit/datapath/monitor"
	"github.com/ceskit/ceskit/datapath/policymap"
	"github.com/ceskit/ceskit/observe"
	"github.com/ceskit/ceskit/policy"
)

// resolver names what verdict events carry for the monitor: local endpoints by datapath ID and
// identities by number (kept by the agent as it learns them), rule cookies through [policymap.Cookies].
type resolver struct {
	monitor.StaticResolver
	cookies *policymap.Cookies
}

var _ monitor.Resolver = (*resolver)(nil)

// Policy implements monitor.Resolver.
func (r *resolver) Policy(cookie uint32) ([]observe.Policy, string, bool) {
	return r.cookies.Policy(cookie)
}

// verdictSink counts the flows of verdict events by verdict, names the policies behind a
// default deny, and passes every record on.
//
// A default-deny drop carries no cookie (no entry decided); Hubble then names no policy. The
// agent asks the engine which policies isolate the endpoint in that direction
// ([policy.Engine.Explain]) and lists them in ingress_denied_by / egress_denied_by, with the
// rule "… (default deny)" under "ceskit", so the audit log says which policy a drop is due to.
type verdictSink struct {
	a    *Agent
	next observe.Sink
}

func (s *verdictSink) Write(ctx context.Context, r observe.Record) error {
	if f := r.Flow; f != nil {
		s.a.mu.Lock()
		s.a.verdicts[f.Verdict.String()]++
		s.a.mu.Unlock()
		if f.Verdict == observe.VerdictDropped && f.DropReasonDesc == observe.DropPolicyDenied &&
			len(f.IngressDeniedBy) == 0 && len(f.EgressDeniedBy) == 0 {
			s.a.attributeDefaultDeny(f)
		}
	}
	if s.next == nil {
		return nil
	}
	return s.next.Write(ctx, r)
}

// attributeDefaultDeny fills in the policies that isolate the flow's local endpoint.
func (a *Agent) attributeDefaultDeny(f *observe.Flow) {
	if f.IP == nil || f.Source == nil || f.Destination == nil {
		return
	}
	local, remote := f.Destination, f.IP.Source
	if f.TrafficDirection == observe.DirectionEgress {
		local, remote = f.Source, f.IP.Destination
	}
	a.mu.Lock()
	key, ok := a.dpIDs[local.ID]
	a.mu.Unlock()
	addr, err := netip.ParseAddr(remote)
	if !ok || err != nil {
		return
	}
	proto, port := flowProtoPort(f)
	var d policy.Decision
	if f.TrafficDirection == observe.DirectionEgress {
		x, err := a.engine.Explain(policy.Peer{Endpoint: key}, policy.Peer{IP: addr}, proto, port)
		if err != nil {
			return
		}
		d = x.Egress
	} else {
		x, err := a.engine.Explain(policy.Peer{IP: addr}, policy.Peer{Endpoint: key}, proto, port)
		if err != nil {
			return
		}
		d = x.Ingress
	}
	if d.Verdict != policy.Deny || len(d.Rules) == 0 {
		return
	}
	var ps []observe.Policy
	var names []string
	for _, r := range d.Rules {
		if !slices.ContainsFunc(ps, func(p observe.Policy) bool {
			return p.Kind == r.Policy.Kind && p.Namespace == r.Policy.Namespace && p.Name == r.Policy.Name
		}) {
			ps = append(ps, policymap.ObservePolicy(r.Policy))
		}
		names = append(names, r.String())
	}
	if f.TrafficDirection == observe.DirectionEgress {
		f.EgressDeniedBy = ps
	} else {
		f.IngressDeniedBy = ps
	}
	if f.Ceskit == nil {
		f.Ceskit = &observe.FlowExtras{}
	}
	f.Ceskit.Rule = strings.Join(names, "; ")
}

// flowProtoPort returns a flow's protocol and destination port (the ICMP type for ICMP), as
// Explain takes them.
func flowProtoPort(f *observe.Flow) (policy.Protocol, uint16) {
	if f.L4 == nil {
		return policy.ProtoAny, 0
	}
	switch {
	case f.L4.TCP != nil:
		return policy.ProtoTCP, uint16(f.L4.TCP.DestinationPort)
	case f.L4.UDP != nil:
		return policy.ProtoUDP, uint16(f.L4.UDP.DestinationPort)
	case f.L4.SCTP != nil:
		return policy.ProtoSCTP, uint16(f.L4.SCTP.DestinationPort)
	case f.L4.ICMPv4 != nil:
		return policy.ProtoICMP, uint16(f.L4.ICMPv4.Type)
	case f.L4.ICMPv6 != nil:
		return policy.ProtoICMPv6, uint16(f.L4.ICMPv6.Type)
	}
	return policy.ProtoAny, 0
}
