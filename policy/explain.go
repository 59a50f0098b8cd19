package policy

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/ceskit/ceskit/identity"
)

// Explanation is the verdict on one flow: the source's egress decision and the destination's
// ingress decision. Traffic passes when both allow (Audit counts as allowing).
type Explanation struct {
	Allowed bool
	Egress  Decision
	Ingress Decision
}

// Decision is one side's verdict and why.
type Decision struct {
	// Endpoint is the endpoint whose policy decided; "" when this side is not a known endpoint
	// (then nothing is enforced here and the verdict is Allow).
	Endpoint string
	// Identity is the remote identity the decision looked up.
	Identity identity.NumericIdentity
	Verdict  Verdict
	// Isolated is true when some policy selects the endpoint for this direction.
	Isolated bool
	// Rules are the rules behind the verdict. For a default deny they are the policies that
	// isolate the endpoint (Section "default-deny"); for traffic allowed because nothing
	// isolates the endpoint, or by the host exception, they are empty.
	Rules []RuleRef
	// Reason says in words what decided.
	Reason string
}

// String renders the decision on one line.
func (d Decision) String() string {
	if d.Endpoint == "" {
		return "not enforced here"
	}
	return fmt.Sprintf("%s %s: %s (%s)", d.Endpoint, d.Verdict, d.Reason, joinRules(d.Rules))
}

func joinRules(rs []RuleRef) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.String()
	}
	return strings.Join(s, "; ")
}

// Explain decides a flow from src to dst on proto/port, as the datapath would with the current
// map states, and says which rules decided. Peers are endpoints (by ID) or addresses; an address
// of a known endpoint or node counts as that endpoint or node, any other address as the world
// (or the CIDR identity of the longest policy prefix containing it).
func (e *Engine) Explain(src, dst Peer, proto Protocol, port uint16) (Explanation, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	sst, sid, err := e.resolvePeer(src)
	if err != nil {
		return Explanation{}, fmt.Errorf("explain: source: %w", err)
	}
	dst2, did, err := e.resolvePeer(dst)
	if err != nil {
		return Explanation{}, fmt.Errorf("explain: destination: %w", err)
	}
	var x Explanation
	x.Egress = e.decide(sst, Egress, did, proto, port)
	x.Ingress = e.decide(dst2, Ingress, sid, proto, port)
	x.Allowed = x.Egress.Verdict != Deny && x.Ingress.Verdict != Deny
	return x, nil
}

func (e *Engine) decide(st *epState, dir Direction, remote identity.NumericIdentity, proto Protocol, port uint16) Decision {
	if st == nil {
		return Decision{Identity: remote, Verdict: Allow, Reason: "not a local endpoint"}
	}
	d := Decision{Endpoint: st.ep.ID, Identity: remote, Isolated: len(st.isolated[dir]) > 0}
	if st.err != nil {
		d.Verdict, d.Reason = Deny, "fail-closed: "+st.err.Error()
		return d
	}
	entry, ok := st.ms.Lookup(remote, dir, proto, port)
	switch {
	case !ok:
		d.Verdict, d.Rules, d.Reason = Deny, st.isolated[dir], "default deny"
	case !d.Isolated && entry.Verdict == Allow && len(entry.Rules) == 0:
		d.Verdict, d.Reason = Allow, "no policy isolates the endpoint for "+dir.String()
	case entry.Verdict == Allow && len(entry.Rules) == 0 && remote == identity.ReservedHost:
		d.Verdict, d.Reason = Allow, "the local host may always reach its endpoints (allow-localhost)"
	default:
		d.Verdict, d.Rules = entry.Verdict, entry.Rules
		switch entry.Precedence {
		case PrecedenceDeny:
			d.Reason = "explicit deny"
		case PrecedenceAuditDeny:
			d.Reason = "explicit deny of an audited policy: allowed and reported"
		case PrecedenceAuditDefault:
			d.Reason = "default deny of audited policies only: allowed and reported"
		default:
			d.Reason = "allowed by rule"
		}
	}
	return d
}

// resolvePeer finds the endpoint (if local) and the identity of a peer.
func (e *Engine) resolvePeer(p Peer) (*epState, identity.NumericIdentity, error) {
	if p.Endpoint != "" {
		st := e.endpoints[p.Endpoint]
		if st == nil {
			return nil, 0, fmt.Errorf("endpoint %s: %w", p.Endpoint, ErrNotFound)
		}
		return st, st.id, nil
	}
	if !p.IP.IsValid() {
		return nil, 0, fmt.Errorf("%w: a peer needs an endpoint ID or an address", ErrInvalidEndpoint)
	}
	ip := p.IP.Unmap()
	if id, ok := e.byIP[ip]; ok {
		st := e.endpoints[id]
		return st, st.id, nil
	}
	if name, ok := e.nodeByIP[ip]; ok {
		return nil, e.nodeIdentity(e.nodes[name]), nil
	}
	return nil, e.addressIdentity(ip), nil
}

// addressIdentity is the identity of an address outside the cluster: the identity learned for it
// through DNS (toFQDNs), else the CIDR identity of the longest policy prefix containing it, else
// the world.
func (e *Engine) addressIdentity(ip netip.Addr) identity.NumericIdentity {
	if id, ok := e.fqdnIDs[ip]; ok {
		return id // a /32 (/128) learned from DNS is the longest prefix
	}
	best := -1
	var bestPfx netip.Prefix
	for pfx := range e.prefixes {
		if pfx.Contains(ip) && pfx.Bits() > best {
			best, bestPfx = pfx.Bits(), pfx
		}
	}
	if best < 0 {
		return identity.ReservedWorld
	}
	lbls := identity.Labels{{Source: identity.SourceCIDR, Key: bestPfx.String()}, {Source: identity.SourceReserved, Key: "world"}}
	if id, ok := e.local.LookupByLabels(lbls); ok {
		return id
	}
	return identity.ReservedWorld
}
