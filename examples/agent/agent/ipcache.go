package agent

import (
	"maps"
	"net/netip"

	"github.com/ceskit/ceskit/datapath"
	"github.com/ceskit/ceskit/identity"
)

// The ipcache maps every known address to its identity: endpoints to their effective identity
// (the engine's, or the slice's number for endpoints the engine does not hold), the local node to
// host (1) and other nodes to remote-node (6), and every prefix a policy names to the CIDR
// identity the engine gave it. Addresses outside all of these are the world (2) in the datapath.
// An address claimed by several endpoints (a stale entry during a move) takes the identity of the
// first endpoint by key; endpoints take precedence over nodes, and both over CIDR identities.
//
// It is rebuilt whole (SetIdentities, time in the cluster's size) when nodes or policies change,
// after the first sync and after a failed write; an endpoint change recomputes only the addresses
// the endpoint held and holds (UpdateIdentities, time in the change), unless one of them is a
// host prefix a policy names, whose CIDR identity depends on who else holds the address.

// ipcPlan is what one syncer pass writes to the ipcache, computed under the agent's lock.
type ipcPlan struct {
	full   map[netip.Prefix]uint32 // the whole ipcache (SetIdentities), or nil
	set    map[netip.Prefix]uint32 // a delta (UpdateIdentities) when full is nil
	remove []netip.Prefix
}

func (p ipcPlan) apply(dp *datapath.Datapath) error {
	switch {
	case dp == nil:
		return nil
	case p.full != nil:
		return dp.SetIdentities(p.full)
	case len(p.set) > 0 || len(p.remove) > 0:
		return dp.UpdateIdentities(p.set, p.remove)
	}
	return nil
}

// markIPCacheLocked queues an endpoint whose addresses or identity may have changed.
func (a *Agent) markIPCacheLocked(key string) {
	if a.ipcEPs == nil {
		a.ipcEPs = map[string]bool{}
	}
	a.ipcEPs[key] = true
}

// planIPCacheLocked computes what this pass writes and updates the agent's copy of the ipcache.
func (a *Agent) planIPCacheLocked() ipcPlan {
	if !a.ipcDirty && a.ipc != nil && len(a.ipcEPs) > 0 {
		if set, remove, ok := a.ipcacheDeltaLocked(); ok {
			return ipcPlan{set: set, remove: remove}
		}
		a.ipcDirty = true
	}
	if !a.ipcDirty {
		return ipcPlan{}
	}
	a.ipcDirty = false
	clear(a.ipcEPs)
	full := a.ipcacheLocked()
	a.ipc = full
	// The datapath normalises into a map of its own and reads full before the next pass, the
	// only writer of a.ipc, runs on this goroutine.
	return ipcPlan{full: full}
}

// ipcacheLocked rebuilds the whole ipcache and the indexes the delta path uses.
func (a *Agent) ipcacheLocked() map[netip.Prefix]uint32 {
	a.ipcNodes = map[netip.Prefix]uint32{}
	for _, n := range a.nodes {
		id := uint32(identity.ReservedRemoteNode)
		if n.Local {
			id = uint32(identity.ReservedHost)
		}
		for _, ip := range n.IPs {
			a.ipcNodes[hostPrefix(ip)] = id
		}
	}
	a.ipcByIP, a.ipcClaims = map[netip.Prefix]map[string]uint32{}, map[string][]netip.Prefix{}
	for key, st := range a.endpoints {
		a.claimLocked(key, st)
	}
	out := maps.Clone(a.ipcNodes)
	for p := range a.ipcByIP {
		out[p], _ = a.ipcValueLocked(p)
	}
	a.addCIDRIdentitiesLocked(out)
	a.ipcNamed = map[netip.Prefix]bool{}
	for _, ps := range a.policies {
		for _, p := range ps {
			if p.IsSingleIP() {
				a.ipcNamed[hostPrefix(p.Addr())] = true
			}
		}
	}
	return out
}

// ipcacheDeltaLocked recomputes the addresses of the queued endpoints. ok is false when one of
// them is a host prefix a policy names (the whole ipcache must be rebuilt).
func (a *Agent) ipcacheDeltaLocked() (set map[netip.Prefix]uint32, remove []netip.Prefix, ok bool) {
	affected := map[netip.Prefix]bool{}
	for key := range a.ipcEPs {
		for _, p := range a.ipcClaims[key] {
			affected[p] = true
			if m := a.ipcByIP[p]; m != nil {
				delete(m, key)
				if len(m) == 0 {
					delete(a.ipcByIP, p)
				}
			}
		}
		delete(a.ipcClaims, key)
		if st := a.endpoints[key]; st != nil {
			for _, p := range a.claimLocked(key, st) {
				affected[p] = true
			}
		}
	}
	clear(a.ipcEPs)
	for p := range affected {
		if a.ipcNamed[p] {
			return nil, nil, false
		}
	}
	set = map[netip.Prefix]uint32{}
	for p := range affected {
		want, wanted := a.ipcValueLocked(p)
		have, had := a.ipc[p]
		switch {
		case wanted && (!had || have != want):
			set[p] = want
			a.ipc[p] = want
		case !wanted && had:
			remove = append(remove, p)
			delete(a.ipc, p)
		}
	}
	return set, remove, true
}

// claimLocked records the addresses an endpoint holds with its effective identity, and returns
// them; an endpoint without an identity holds none.
func (a *Agent) claimLocked(key string, st *endpointState) []netip.Prefix {
	id := uint32(st.identity)
	if st.inEngine {
		if eid, err := a.engine.Identity(key); err == nil {
			id = uint32(eid)
		}
	}
	if id == 0 {
		return nil
	}
	var claims []netip.Prefix
	for _, ip := range st.ep.IPs() {
		p := hostPrefix(ip)
		if a.ipcByIP[p] == nil {
			a.ipcByIP[p] = map[string]uint32{}
		}
		a.ipcByIP[p][key] = id
		claims = append(claims, p)
	}
	a.ipcClaims[key] = claims
	return claims
}

// ipcValueLocked is the identity of a host prefix from the endpoints and nodes that hold it.
func (a *Agent) ipcValueLocked(p netip.Prefix) (uint32, bool) {
	if claims := a.ipcByIP[p]; len(claims) > 0 {
		first := ""
		for key := range claims {
			if first == "" || key < first {
				first = key
			}
		}
		return claims[first], true
	}
	id, ok := a.ipcNodes[p]
	return id, ok
}

func hostPrefix(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	return netip.PrefixFrom(ip, ip.BitLen())
}
