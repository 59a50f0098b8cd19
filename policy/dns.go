package policy

import (
	"net/netip"
	"slices"
	"time"

	"github.com/ceskit/ceskit/identity"
)

// ObserveDNS feeds one DNS answer (seen by a DNS proxy or observer) to the engine's name cache and
// updates the identities of toFQDNs rules: every address learned for a name that a toFQDNs
// selector matches gets a local-scope identity labelled with the selector (fqdn:<pattern>) and
// the address (cidr:<ip>/32), and the endpoints whose egress rules name that selector get map
// entries for it. It returns the per-endpoint diffs.
func (e *Engine) ObserveDNS(a DNSAnswer) Update {
	e.mu.Lock()
	defer e.mu.Unlock()
	start := time.Now()
	e.dns.Observe(a)
	u := e.refreshFQDN()
	e.report(scopeDNS, start, u)
	return u
}

// ExpireDNS drops expired DNS answers and the identities only they kept, returning the diffs.
func (e *Engine) ExpireDNS() Update {
	e.mu.Lock()
	defer e.mu.Unlock()
	start := time.Now()
	e.dns.Expire()
	u := e.refreshFQDN()
	e.report(scopeDNS, start, u)
	return u
}

// refreshFQDN recomputes the FQDN identities from the DNS cache and the toFQDNs selectors in use.
func (e *Engine) refreshFQDN() Update {
	ch := newChange()
	want := map[netip.Addr][]string{}
	for _, s := range e.sels {
		f, ok := s.sel.(*fqdnSel)
		if !ok {
			continue
		}
		for _, ip := range e.dns.Match(f.m) {
			want[ip] = append(want[ip], f.m.String())
		}
	}
	for ip, sels := range want {
		slices.Sort(sels)
		want[ip] = slices.Compact(sels)
	}
	for ip, id := range e.fqdnIDs {
		info := e.ids[id]
		if sels, ok := want[ip]; ok && info != nil && slices.Equal(info.fqdn, sels) {
			continue
		}
		e.local.Release(id)
		e.removeIdentity(id, ch)
		delete(e.fqdnIDs, ip)
	}
	for ip, sels := range want {
		if _, ok := e.fqdnIDs[ip]; ok {
			continue
		}
		lbls := identity.Labels{{Source: identity.SourceCIDR, Key: netip.PrefixFrom(ip, ip.BitLen()).String()}}
		for _, s := range sels {
			lbls = append(lbls, identity.Label{Source: identity.SourceFQDN, Key: s[len("fqdn:"):]})
		}
		norm, err := identity.NewLabels(lbls...)
		if err != nil {
			e.log.Warn("fqdn identity labels", "ip", ip.String(), "err", err)
			continue
		}
		id, _, err := e.local.Allocate(norm)
		if err != nil {
			e.log.Warn("allocate fqdn identity", "ip", ip.String(), "err", err)
			continue
		}
		info := newIDInfo(id, kindFQDN, norm)
		info.world = true
		info.fqdn = sels
		e.fqdnIDs[ip] = id
		e.addIdentity(info, ch)
	}
	return e.apply(ch)
}
