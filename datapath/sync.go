package datapath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

// SyncStats says what a sync wrote.
type SyncStats struct {
	// Entries is the endpoint's materialised entry count now (exact + prefix).
	Entries int
	// Written and Deleted count map elements updated and removed.
	Written, Deleted int
}

// SyncEndpoint makes the endpoint's policy maps hold exactly entries (its whole map state):
// it materialises them, checks capacity (per endpoint and for the shared maps), then writes the
// new and changed elements first and deletes the stale ones after, with batch operations, so a
// flow that stays allowed is never dropped in between. On ErrCapacity or ErrInvalid nothing is
// written.
func (d *Datapath) SyncEndpoint(id uint32, entries []Entry) (SyncStats, error) {
	for i, e := range entries {
		if err := e.validate(); err != nil {
			return SyncStats{}, fmt.Errorf("%w: endpoint %d: entries[%d]: %w", ErrInvalid, id, i, err)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return SyncStats{}, ErrClosed
	}
	// Ranges are written as exact ports (one hash lookup per packet) up to Spec.RangeExpansion
	// ports; when that does not fit the endpoint's limit, smaller and smaller ranges only.
	var m materialized
	for expand := d.spec.RangeExpansion; ; expand /= 2 {
		m = materialize(id, entries, expand)
		if m.size() <= d.spec.MaxEntriesPerEndpoint || expand <= 1 {
			break
		}
	}
	if m.size() > d.spec.MaxEntriesPerEndpoint {
		return SyncStats{}, fmt.Errorf("%w: endpoint %d needs %d map entries (%d entries before materialisation), limit %d",
			ErrCapacity, id, m.size(), len(entries), d.spec.MaxEntriesPerEndpoint)
	}
	setMatchTypes(entries, m)
	ep := d.endpoint(id)
	exact, lpm := 0, 0
	for oid, o := range d.endpoints {
		if oid != id {
			exact += len(o.written.exact)
			lpm += len(o.written.lpm)
		}
	}
	if exact+len(m.exact) > d.spec.PolicyEntries || lpm+len(m.lpm) > d.spec.PolicyEntries {
		return SyncStats{}, fmt.Errorf("%w: endpoint %d: the shared policy maps would hold %d exact and %d prefix entries, capacity %d each",
			ErrCapacity, id, exact+len(m.exact), lpm+len(m.lpm), d.spec.PolicyEntries)
	}
	st := SyncStats{Entries: m.size()}
	for k, v := range m.exact {
		if ov, ok := ep.written.exact[k]; !ok || ov != v {
			st.Written++
		}
	}
	for k, v := range m.lpm {
		if ov, ok := ep.written.lpm[k]; !ok || ov != v {
			st.Written++
		}
	}
	for k := range ep.written.exact {
		if _, ok := m.exact[k]; !ok {
			st.Deleted++
		}
	}
	for k := range ep.written.lpm {
		if _, ok := m.lpm[k]; !ok {
			st.Deleted++
		}
	}
	err := d.writePolicy(id, ep, m)
	d.reportPolicyPressure()
	if err != nil {
		return st, err
	}
	ep.entries = append(ep.entries[:0], entries...)
	return st, nil
}

// setMatchTypes sets the match type of each materialised element: that of the most specific
// entry (longest protocol and port prefix, then the element's own identity before the wildcard)
// that has the element's cookie and verdict and covers its identity, protocol and ports: the
// entry its answer comes from. Default-deny elements stay MatchNone.
func setMatchTypes(entries []Entry, m materialized) {
	// Entries by cookie and identity (a rule's entries for one peer: few), filtered by the
	// rest while scanning.
	groups := make(map[uint64][]Entry, len(entries))
	for _, e := range entries {
		g := uint64(e.Cookie)<<32 | uint64(e.Identity)
		groups[g] = append(groups[g], e)
	}
	find := func(v ceskitPolicyVal, dir uint8, id uint32, proto uint8, lo, hi uint16) MatchType {
		if v.Flags&policyFlagDefaultDeny != 0 {
			return MatchNone
		}
		best, bestLen := MatchNone, -1
		try := func(gid uint32) {
			for _, e := range groups[uint64(v.Cookie)<<32|uint64(gid)] {
				if e.Verdict != Verdict(v.Verdict) || e.Direction != Direction(dir) || (e.Protocol != proto && e.Protocol != ProtoAny) {
					continue
				}
				k := e.key()
				if elo, ehi := k.portRange(); elo > lo || ehi < hi {
					continue
				}
				if l := k.prefixLen(); l > bestLen {
					best, bestLen = e.MatchType(), l
				}
			}
		}
		// The element's identity before the wildcard, so that it wins ties; nothing beats an
		// exact port (prefix length 24).
		try(id)
		if bestLen < 24 && id != 0 {
			try(0)
		}
		return best
	}
	for k, v := range m.exact {
		v.MatchType = uint8(find(v, k.Dir, k.Identity, k.Proto, k.Port, k.Port))
		m.exact[k] = v
	}
	for k, v := range m.lpm {
		lo, hi := uint16(0), uint16(0xffff)
		if plen := int(k.Prefixlen) - 80; plen > 0 {
			var be [2]byte
			binary.NativeEndian.PutUint16(be[:], k.PortBe)
			lo, hi = entryKey{port: binary.BigEndian.Uint16(be[:]), plen: uint8(plen)}.portRange()
		}
		v.MatchType = uint8(find(v, k.Dir, k.Identity, k.Proto, lo, hi))
		m.lpm[k] = v
	}
}

// Names of the maps in metrics: the BPF map names, and policyEndpointMap for the per-endpoint
// budget (MaxEntriesPerEndpoint), which is not a map of its own.
const (
	policyMap         = ceskitMapCeskitPolicy
	policyLPMMap      = ceskitMapCeskitPolicyLpm
	policyEndpointMap = "ceskit_policy_endpoint"
	ipcache4Map       = ceskitMapCeskitIpcache4
	ipcache6Map       = ceskitMapCeskitIpcache
	ipcacheLPMMap     = ceskitMapCeskitIpcacheLpm
	conntrackMap      = ceskitMapCeskitCt
)

// reportPolicyPressure reports the fill of the shared policy maps and of the fullest endpoint's
// budget, from the written state. d.mu is held.
func (d *Datapath) reportPolicyPressure() {
	exact, lpm, most := 0, 0, 0
	for _, ep := range d.endpoints {
		exact += len(ep.written.exact)
		lpm += len(ep.written.lpm)
		most = max(most, ep.written.size())
	}
	met := d.spec.Metrics
	met.MapPressure(policyMap, exact, d.spec.PolicyEntries)
	met.MapPressure(policyLPMMap, lpm, d.spec.PolicyEntries)
	met.MapPressure(policyEndpointMap, most, d.spec.MaxEntriesPerEndpoint)
}

// reportIPCachePressure reports the fill of the ipcache maps from the written state. d.mu is
// held.
func (d *Datapath) reportIPCachePressure() {
	v4, v6, prefixes := d.ipcCounts[0], d.ipcCounts[1], d.ipcCounts[2]
	met := d.spec.Metrics
	met.MapPressure(ipcache4Map, v4, d.spec.IPCacheEntries)
	met.MapPressure(ipcache6Map, v6, d.spec.IPCacheEntries)
	met.MapPressure(ipcacheLPMMap, prefixes, d.spec.IPCachePrefixes)
}

// ipcacheCounts counts IPv4 host addresses, IPv6 host addresses and other prefixes.
func ipcacheCounts(ids map[netip.Prefix]uint32) (v4, v6, prefixes int) {
	for p := range ids {
		switch {
		case !p.IsSingleIP():
			prefixes++
		case p.Addr().Is4():
			v4++
		default:
			v6++
		}
	}
	return v4, v6, prefixes
}

// Entries returns the entries last synced for an endpoint.
func (d *Datapath) Entries(id uint32) []Entry {
	d.mu.Lock()
	defer d.mu.Unlock()
	if ep := d.endpoints[id]; ep != nil {
		return append([]Entry(nil), ep.entries...)
	}
	return nil
}

// writePolicy moves the maps from ep.written to m: updates first, deletions after.
func (d *Datapath) writePolicy(id uint32, ep *endpoint, m materialized) error {
	var ek []ceskitPolicyKey
	var ev []ceskitPolicyVal
	for k, v := range m.exact {
		if ov, ok := ep.written.exact[k]; !ok || ov != v {
			ek, ev = append(ek, k), append(ev, v)
		}
	}
	var lk []ceskitPolicyLpmKey
	var lv []ceskitPolicyVal
	for k, v := range m.lpm {
		if ov, ok := ep.written.lpm[k]; !ok || ov != v {
			lk, lv = append(lk, k), append(lv, v)
		}
	}
	met := d.spec.Metrics
	if err := batchUpdate(met, policyMap, d.maps.CeskitPolicy, ek, ev); err != nil {
		return fmt.Errorf("update endpoint %d exact policy: %w", id, err)
	}
	for i, k := range ek {
		ep.written.exact[k] = ev[i]
	}
	if err := batchUpdate(met, policyLPMMap, d.maps.CeskitPolicyLpm, lk, lv); err != nil {
		return fmt.Errorf("update endpoint %d prefix policy: %w", id, err)
	}
	for i, k := range lk {
		ep.written.lpm[k] = lv[i]
	}
	var dk []ceskitPolicyKey
	for k := range ep.written.exact {
		if _, ok := m.exact[k]; !ok {
			dk = append(dk, k)
		}
	}
	var dl []ceskitPolicyLpmKey
	for k := range ep.written.lpm {
		if _, ok := m.lpm[k]; !ok {
			dl = append(dl, k)
		}
	}
	if err := batchDelete(met, policyMap, d.maps.CeskitPolicy, dk); err != nil {
		return fmt.Errorf("delete endpoint %d exact policy: %w", id, err)
	}
	for _, k := range dk {
		delete(ep.written.exact, k)
	}
	if err := batchDelete(met, policyLPMMap, d.maps.CeskitPolicyLpm, dl); err != nil {
		return fmt.Errorf("delete endpoint %d prefix policy: %w", id, err)
	}
	for _, k := range dl {
		delete(ep.written.lpm, k)
	}
	return nil
}

// batchUpdate writes keys and values with one syscall per batch, falling back to single updates
// where the map type has no batch support. It reports the elements written to met (operation
// "update", outcome "success"), and on an error those not written (outcome "fail").
func batchUpdate[K, V any](met Metrics, name string, m *ebpf.Map, keys []K, vals []V) error {
	if len(keys) == 0 {
		return nil
	}
	n, err := m.BatchUpdate(keys, vals, nil)
	if err != nil && errors.Is(err, ebpf.ErrNotSupported) {
		for n, err = 0, nil; n < len(keys) && err == nil; n++ {
			err = m.Put(&keys[n], &vals[n])
		}
		if err != nil {
			n--
		}
	}
	reportOps(met, name, "update", len(keys), n, err)
	return err
}

// batchDelete deletes keys like batchUpdate writes them; keys already gone count as deleted.
func batchDelete[K any](met Metrics, name string, m *ebpf.Map, keys []K) error {
	if len(keys) == 0 {
		return nil
	}
	n, err := m.BatchDelete(keys, nil)
	if err != nil && (errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, ebpf.ErrKeyNotExist)) {
		// The batch stops at the first missing key; delete one by one from there.
		if errors.Is(err, ebpf.ErrNotSupported) {
			n = 0
		}
		for err = nil; n < len(keys) && err == nil; n++ {
			if err = m.Delete(&keys[n]); errors.Is(err, ebpf.ErrKeyNotExist) {
				err = nil
			}
		}
		if err != nil {
			n--
		}
	}
	reportOps(met, name, "delete", len(keys), n, err)
	return err
}

// reportOps reports n of total operations done and, after an error, the rest failed.
func reportOps(met Metrics, name, op string, total, n int, err error) {
	if err == nil {
		n = total
	}
	n = max(0, min(n, total))
	if n > 0 {
		met.MapOps(name, op, "success", n)
	}
	if total > n {
		met.MapOps(name, op, "fail", total-n)
	}
}

// mapped returns the 16-byte form of an address (IPv4 as IPv4-mapped IPv6).
func mapped(a netip.Addr) [16]byte {
	return a.Unmap().As16()
}

// SetIdentities makes the ipcache map every prefix to its identity: host prefixes (/32, /128) go
// to the exact map, others to the prefix map; prefixes no longer listed are removed. Writes come
// before deletions. It costs time in the size of ids; [Datapath.UpdateIdentities] applies a
// delta in the size of the delta.
func (d *Datapath) SetIdentities(ids map[netip.Prefix]uint32) error {
	norm, err := normIdentities(ids)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	v4, v6, prefixes := ipcacheCounts(norm)
	if err := d.checkIPCacheCapacity(v4, v6, prefixes); err != nil {
		return err
	}
	var dels []netip.Prefix
	for p := range d.ipcache {
		if _, ok := norm[p]; !ok {
			dels = append(dels, p)
		}
	}
	if err := d.applyIPCache(norm, dels); err != nil {
		d.resyncIPCacheState()
		return err
	}
	d.ipcache = norm
	d.ipcCounts = [3]int{v4, v6, prefixes}
	d.reportIPCachePressure()
	return nil
}

// UpdateIdentities changes the ipcache by a delta: every prefix of set maps to its identity
// (written only when it differs from what the map holds) and every prefix of remove that the map
// holds is removed; a prefix in both is set. Other entries stay. Capacity is checked on the
// result before anything is written. Writes come before deletions. It costs time in the size of
// the delta, not of the ipcache.
func (d *Datapath) UpdateIdentities(set map[netip.Prefix]uint32, remove []netip.Prefix) error {
	norm, err := normIdentities(set)
	if err != nil {
		return err
	}
	for _, p := range remove {
		if !p.IsValid() {
			return fmt.Errorf("%w: prefix %s to remove", ErrInvalid, p)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	counts := d.ipcCounts
	for p := range norm {
		if _, ok := d.ipcache[p]; !ok {
			counts[ipcacheClass(p)]++
		}
	}
	var dels []netip.Prefix
	seen := map[netip.Prefix]bool{}
	for _, p := range remove {
		q := normPrefix(p)
		if _, kept := norm[q]; kept || seen[q] {
			continue
		}
		if _, ok := d.ipcache[q]; ok {
			seen[q] = true
			dels = append(dels, q)
			counts[ipcacheClass(q)]--
		}
	}
	if err := d.checkIPCacheCapacity(counts[0], counts[1], counts[2]); err != nil {
		return err
	}
	if err := d.applyIPCache(norm, dels); err != nil {
		d.resyncIPCacheState()
		return err
	}
	for p, id := range norm {
		d.ipcache[p] = id
	}
	for _, p := range dels {
		delete(d.ipcache, p)
	}
	d.ipcCounts = counts
	d.reportIPCachePressure()
	return nil
}

// normIdentities checks every prefix of ids and returns them in normPrefix form.
func normIdentities(ids map[netip.Prefix]uint32) (map[netip.Prefix]uint32, error) {
	norm := make(map[netip.Prefix]uint32, len(ids))
	for p, id := range ids {
		if !p.IsValid() {
			return nil, fmt.Errorf("%w: prefix %s", ErrInvalid, p)
		}
		norm[normPrefix(p)] = id
	}
	return norm, nil
}

// normPrefix is the form the ipcache tracks: IPv4-mapped addresses unmapped, prefixes masked.
func normPrefix(p netip.Prefix) netip.Prefix {
	return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapBits(p)).Masked()
}

// ipcacheClass is 0 for an IPv4 host address, 1 for an IPv6 one, 2 for another prefix (the
// index into ipcCounts).
func ipcacheClass(p netip.Prefix) int {
	switch {
	case !p.IsSingleIP():
		return 2
	case p.Addr().Is4():
		return 0
	}
	return 1
}

func ipcacheCountsArr(ids map[netip.Prefix]uint32) [3]int {
	v4, v6, prefixes := ipcacheCounts(ids)
	return [3]int{v4, v6, prefixes}
}

func (d *Datapath) checkIPCacheCapacity(v4, v6, prefixes int) error {
	if exact := v4 + v6; exact > d.spec.IPCacheEntries || prefixes > d.spec.IPCachePrefixes {
		return fmt.Errorf("%w: ipcache needs %d addresses and %d prefixes, capacity %d and %d", ErrCapacity, exact, prefixes, d.spec.IPCacheEntries, d.spec.IPCachePrefixes)
	}
	return nil
}

// resyncIPCacheState re-reads the tracked ipcache from the kernel after a failed write, which
// may have left part of it applied, so that the next call writes whatever differs.
func (d *Datapath) resyncIPCacheState() {
	if ipc, err := d.readIPCache(); err == nil {
		d.ipcache, d.ipcCounts = ipc, ipcacheCountsArr(ipc)
	}
}

// applyIPCache writes the entries of ids that differ from the tracked state and deletes dels
// (all normalised): writes first, so that an address that moves between prefixes is never
// unmapped, unless a map would overflow before the deletes make room (the result fits: the
// caller checked), then deletes first.
func (d *Datapath) applyIPCache(ids map[netip.Prefix]uint32, dels []netip.Prefix) error {
	var added [3]int
	for p := range ids {
		if _, ok := d.ipcache[p]; !ok {
			added[ipcacheClass(p)]++
		}
	}
	limits := [3]int{d.spec.IPCacheEntries, d.spec.IPCacheEntries, d.spec.IPCachePrefixes}
	deletesFirst := false
	for c := range added {
		if d.ipcCounts[c]+added[c] > limits[c] {
			deletesFirst = true
		}
	}
	if deletesFirst {
		if err := d.deleteIPCache(dels); err != nil {
			return err
		}
		return d.writeIPCache(ids)
	}
	if err := d.writeIPCache(ids); err != nil {
		return err
	}
	return d.deleteIPCache(dels)
}

// writeIPCache writes the entries of ids (normalised) that differ from the tracked state.
func (d *Datapath) writeIPCache(ids map[netip.Prefix]uint32) error {
	var ek []ceskitIpcacheKey
	var ev []ceskitIpcacheVal
	var e4k [][4]byte
	var e4v []ceskitIpcacheVal
	var lk []ceskitIpcacheLpmKey
	var lv []ceskitIpcacheVal
	for p, id := range ids {
		if old, ok := d.ipcache[p]; ok && old == id {
			continue
		}
		switch ipcacheClass(p) {
		case 0:
			e4k, e4v = append(e4k, p.Addr().As4()), append(e4v, ceskitIpcacheVal{Identity: id})
		case 1:
			ek, ev = append(ek, ceskitIpcacheKey{Addr: mapped(p.Addr())}), append(ev, ceskitIpcacheVal{Identity: id})
		default:
			lk, lv = append(lk, lpmIPKey(p)), append(lv, ceskitIpcacheVal{Identity: id})
		}
	}
	met := d.spec.Metrics
	if err := batchUpdate(met, ipcache4Map, d.maps.CeskitIpcache4, e4k, e4v); err != nil {
		return fmt.Errorf("update ipcache: %w", err)
	}
	if err := batchUpdate(met, ipcache6Map, d.maps.CeskitIpcache, ek, ev); err != nil {
		return fmt.Errorf("update ipcache: %w", err)
	}
	if err := batchUpdate(met, ipcacheLPMMap, d.maps.CeskitIpcacheLpm, lk, lv); err != nil {
		return fmt.Errorf("update ipcache prefixes: %w", err)
	}
	return nil
}

// deleteIPCache deletes the (normalised) prefixes from the maps.
func (d *Datapath) deleteIPCache(dels []netip.Prefix) error {
	var dk []ceskitIpcacheKey
	var d4 [][4]byte
	var dl []ceskitIpcacheLpmKey
	for _, p := range dels {
		switch ipcacheClass(p) {
		case 0:
			d4 = append(d4, p.Addr().As4())
		case 1:
			dk = append(dk, ceskitIpcacheKey{Addr: mapped(p.Addr())})
		default:
			dl = append(dl, lpmIPKey(p))
		}
	}
	met := d.spec.Metrics
	if err := batchDelete(met, ipcache4Map, d.maps.CeskitIpcache4, d4); err != nil {
		return fmt.Errorf("delete from ipcache: %w", err)
	}
	if err := batchDelete(met, ipcache6Map, d.maps.CeskitIpcache, dk); err != nil {
		return fmt.Errorf("delete from ipcache: %w", err)
	}
	if err := batchDelete(met, ipcacheLPMMap, d.maps.CeskitIpcacheLpm, dl); err != nil {
		return fmt.Errorf("delete from ipcache prefixes: %w", err)
	}
	return nil
}

// unmapBits is 96 for an IPv4-mapped prefix, whose bits count the mapping prefix.
func unmapBits(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return 96
	}
	return 0
}

func lpmIPKey(p netip.Prefix) ceskitIpcacheLpmKey {
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	return ceskitIpcacheLpmKey{Prefixlen: uint32(bits), Addr: mapped(p.Addr())}
}

// FlushConntrack deletes the tracked flows of an endpoint (all endpoints with id 0), so that a
// policy change that removes an allow also stops established connections. Without it they keep
// passing until idle for Spec.ConntrackTimeout.
func (d *Datapath) FlushConntrack(id uint32) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return 0, ErrClosed
	}
	var k ceskitCtKey
	var v ceskitCtVal
	var del []ceskitCtKey
	it := d.maps.CeskitCt.Iterate()
	for it.Next(&k, &v) {
		if id == 0 || k.EpId == id {
			del = append(del, k)
		}
	}
	if err := it.Err(); err != nil {
		return 0, fmt.Errorf("iterate conntrack: %w", err)
	}
	if err := batchDelete(d.spec.Metrics, conntrackMap, d.maps.CeskitCt, del); err != nil {
		return 0, fmt.Errorf("flush conntrack: %w", err)
	}
	return len(del), nil
}

// ApplyEndpoint applies a diff to the endpoint's entries (as last synced): entries in remove
// (matched by identity, direction, protocol and port prefix) go, entries in add are put (replacing
// one with the same key), and the result is synced like SyncEndpoint, writing only what changed
// in the maps. This is how the policy package's per-endpoint diffs are applied.
func (d *Datapath) ApplyEndpoint(id uint32, add, remove []Entry) (SyncStats, error) {
	d.mu.Lock()
	var cur []Entry
	if ep := d.endpoints[id]; ep != nil {
		cur = append(cur, ep.entries...)
	}
	d.mu.Unlock()
	gone := make(map[entryKey]bool, len(remove))
	for _, e := range remove {
		gone[e.key()] = true
	}
	for _, e := range add {
		gone[e.key()] = true // replaced below
	}
	next := cur[:0]
	for _, e := range cur {
		if !gone[e.key()] {
			next = append(next, e)
		}
	}
	next = append(next, add...)
	return d.SyncEndpoint(id, next)
}
