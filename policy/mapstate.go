package policy

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ceskit/ceskit/identity"
)

// Key is one policy-map key, laid out like Cilium's BPF policy map (bpf/lib/policy.h): the remote
// identity (0 = any), the direction, the protocol (ProtoAny only together with all ports) and a
// destination port prefix: the top PortPrefixLen bits of Port (0 = every port, 16 = exactly
// Port). Port ranges become several prefix keys.
type Key struct {
	Identity      identity.NumericIdentity
	Direction     Direction
	Protocol      Protocol
	Port          uint16
	PortPrefixLen uint8
}

// String renders the key, e.g. "ingress id=1234 TCP/80" or "egress id=* ANY/*".
func (k Key) String() string {
	id := "*"
	if k.Identity != 0 {
		id = k.Identity.String()
	}
	port := "*"
	switch {
	case k.PortPrefixLen == 16:
		port = fmt.Sprint(k.Port)
	case k.PortPrefixLen > 0:
		lo, hi := k.portRange()
		port = fmt.Sprintf("%d-%d", lo, hi)
	}
	return fmt.Sprintf("%s id=%s %s/%s", k.Direction, id, k.Protocol, port)
}

// portRange returns the first and last port the key covers.
func (k Key) portRange() (uint16, uint16) {
	if k.PortPrefixLen == 0 {
		return 0, 65535
	}
	mask := uint16(0xffff) << (16 - k.PortPrefixLen)
	lo := k.Port & mask
	return lo, lo | ^mask
}

// covers reports whether every (protocol, port) of o is also matched by k, for the same identity
// and direction.
func (k Key) covers(o Key) bool {
	if k.Identity != o.Identity || k.Direction != o.Direction {
		return false
	}
	if k.Protocol != ProtoAny && k.Protocol != o.Protocol {
		return false
	}
	if k.PortPrefixLen > o.PortPrefixLen {
		return false
	}
	klo, khi := k.portRange()
	olo, ohi := o.portRange()
	return klo <= olo && ohi <= khi
}

// matches reports whether the key matches traffic to port of proto.
func (k Key) matches(proto Protocol, port uint16) bool {
	if k.Protocol != ProtoAny && k.Protocol != proto {
		return false
	}
	lo, hi := k.portRange()
	return lo <= port && port <= hi
}

// prefixLen is the key's LPM length below identity and direction: 0 for ANY, 8 for a protocol
// with every port, 8+PortPrefixLen otherwise (Cilium's lpm_prefix_length).
func (k Key) prefixLen() int {
	if k.Protocol == ProtoAny {
		return 0
	}
	return 8 + int(k.PortPrefixLen)
}

// Precedence orders entries as the datapath arbitrates them: the higher wins.
const (
	// PrecedenceAuditDefault is the entry that lets unmatched traffic through when only audited
	// policies isolate the endpoint.
	PrecedenceAuditDefault uint8 = 1
	// PrecedenceAllow is a plain allow.
	PrecedenceAllow uint8 = 2
	// PrecedenceAuditDeny is an explicit deny of an audited policy: it beats allows (the
	// traffic would be denied if the policy were enforced) but lets the traffic through.
	PrecedenceAuditDeny uint8 = 3
	// PrecedenceDeny is an explicit deny.
	PrecedenceDeny uint8 = 4
)

// Entry is the value of a policy-map key: the verdict, its precedence, and the rules that put it
// there (for attribution; the datapath stores a cookie that indexes them).
type Entry struct {
	Verdict    Verdict
	Precedence uint8
	Rules      []RuleRef
}

// MapState is the policy map of one endpoint: ingress and egress keys.
type MapState map[Key]Entry

// mapBuilder builds a MapState, indexing keys by identity and direction so that inserting
// looks only at the keys it can interact with.
type mapBuilder struct {
	m    MapState
	byID map[idDir][]Key
}

type idDir struct {
	id  identity.NumericIdentity
	dir Direction
}

func newMapBuilder() *mapBuilder {
	return &mapBuilder{m: MapState{}, byID: map[idDir][]Key{}}
}

// insert adds key with entry, keeping the invariant that an LPM lookup for one identity returns
// the highest-precedence match: an entry is dropped when an existing entry of higher precedence
// for the same identity covers it, and existing entries of lower precedence that it covers are
// removed. Equal keys and precedences merge their rule references.
func (b *mapBuilder) insert(k Key, e Entry) {
	m := b.m
	if cur, ok := m[k]; ok {
		switch {
		case cur.Precedence > e.Precedence:
			return
		case cur.Precedence == e.Precedence:
			cur.Rules = mergeRules(cur.Rules, e.Rules)
			m[k] = cur
			return
		}
	}
	idx := idDir{k.Identity, k.Direction}
	keys := b.byID[idx]
	for _, ok := range keys {
		if ok != k && m[ok].Precedence > e.Precedence && ok.covers(k) {
			return
		}
	}
	kept := keys[:0]
	for _, ok := range keys {
		if ok != k && m[ok].Precedence < e.Precedence && k.covers(ok) {
			delete(m, ok)
			continue
		}
		if ok != k {
			kept = append(kept, ok)
		}
	}
	b.byID[idx] = append(kept, k)
	e.Rules = slices.Clone(e.Rules)
	m[k] = e
}

// auditKey is a key of an audited deny rule, waiting for insertAudits.
type auditKey struct {
	k Key
	e Entry
}

// insertAudits adds the keys of audited deny rules where they matter: only where the flows
// are otherwise allowed (by an allow entry of the same or the wildcard identity, or the
// audit-only default). There the verdict becomes Audit, attributed to the deny rule; where the
// traffic is denied anyway, an audited deny changes nothing.
func (b *mapBuilder) insertAudits(audits []auditKey) {
	for _, a := range audits {
		var hits []Key
		for idx, keys := range b.byID {
			if idx.dir != a.k.Direction || (a.k.Identity != 0 && idx.id != 0 && idx.id != a.k.Identity) {
				continue
			}
			for _, k := range keys {
				if b.m[k].Precedence > PrecedenceAllow {
					continue
				}
				if x, ok := intersectKeys(a.k, k); ok {
					hits = append(hits, x)
				}
			}
		}
		for _, x := range hits {
			b.insert(x, a.e)
		}
	}
}

// intersectKeys returns the key matching exactly the flows both keys match. Port prefixes are
// nested or disjoint, so the intersection is the narrower one.
func intersectKeys(a, b Key) (Key, bool) {
	if a.Direction != b.Direction {
		return Key{}, false
	}
	id := a.Identity
	switch {
	case id == 0:
		id = b.Identity
	case b.Identity != 0 && b.Identity != id:
		return Key{}, false
	}
	proto := a.Protocol
	switch {
	case proto == ProtoAny:
		proto = b.Protocol
	case b.Protocol != ProtoAny && b.Protocol != proto:
		return Key{}, false
	}
	alo, ahi := a.portRange()
	blo, bhi := b.portRange()
	if ahi < blo || bhi < alo {
		return Key{}, false
	}
	narrow := a
	if b.PortPrefixLen > a.PortPrefixLen {
		narrow = b
	}
	return Key{Identity: id, Direction: a.Direction, Protocol: proto, Port: narrow.Port, PortPrefixLen: narrow.PortPrefixLen}, true
}

func mergeRules(a, b []RuleRef) []RuleRef {
	out := slices.Clone(a)
	for _, r := range b {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, compareRuleRefs)
	return out
}

func compareRuleRefs(a, b RuleRef) int {
	return strings.Compare(a.String(), b.String())
}

// Lookup finds the entry the datapath would apply to traffic from or to remote identity id in
// direction dir: the longest-prefix match for the specific identity and for the wildcard identity
// (0), then the higher precedence, then the longer prefix, then the specific identity; as
// Cilium's __policy_can_access without aggregate identities. ok is false when nothing matches
// (the datapath drops: default deny).
func (m MapState) Lookup(id identity.NumericIdentity, dir Direction, proto Protocol, port uint16) (Entry, bool) {
	spec, sk, sok := m.lpm(id, dir, proto, port)
	if id == 0 {
		return spec, sok
	}
	wild, wk, wok := m.lpm(0, dir, proto, port)
	switch {
	case !sok:
		return wild, wok
	case !wok:
		return spec, true
	case wild.Precedence > spec.Precedence:
		return wild, true
	case wild.Precedence < spec.Precedence:
		return spec, true
	case wk.prefixLen() > sk.prefixLen():
		return wild, true
	}
	return spec, true
}

// lpm is the longest-prefix match among the keys of one identity.
func (m MapState) lpm(id identity.NumericIdentity, dir Direction, proto Protocol, port uint16) (Entry, Key, bool) {
	var best Key
	var be Entry
	found := false
	// Candidate keys, longest first: exact port, every port prefix, protocol only, any.
	for plen := 16; plen >= 0; plen-- {
		mask := uint16(0)
		if plen > 0 {
			mask = uint16(0xffff) << (16 - plen)
		}
		k := Key{Identity: id, Direction: dir, Protocol: proto, Port: port & mask, PortPrefixLen: uint8(plen)}
		if e, ok := m[k]; ok {
			return e, k, true
		}
	}
	k := Key{Identity: id, Direction: dir, Protocol: ProtoAny}
	if e, ok := m[k]; ok {
		best, be, found = k, e, true
	}
	return be, best, found
}

// Diff is what changed in one endpoint's map state: the keys to write (new or with a new value)
// and the keys to delete. Apply deletions of keys not re-added after the additions, so traffic
// that stays allowed is never dropped in between.
type Diff struct {
	Added   MapState
	Removed []Key
	// Err is set when the endpoint's policy does not fit (an *OverflowError): its map state is
	// then empty (everything denied), and Added/Removed lead there.
	Err error
}

// Empty reports whether the diff changes nothing.
func (d Diff) Empty() bool { return len(d.Added) == 0 && len(d.Removed) == 0 && d.Err == nil }

// diffMapStates returns what turns old into new.
func diffMapStates(old, new MapState) Diff {
	d := Diff{Added: MapState{}}
	for k, e := range new {
		if oe, ok := old[k]; !ok || !entryEqual(oe, e) {
			d.Added[k] = e
		}
	}
	for k := range old {
		if _, ok := new[k]; !ok {
			d.Removed = append(d.Removed, k)
		}
	}
	slices.SortFunc(d.Removed, compareKeys)
	return d
}

func entryEqual(a, b Entry) bool {
	return a.Verdict == b.Verdict && a.Precedence == b.Precedence && slices.Equal(a.Rules, b.Rules)
}

func compareKeys(a, b Key) int {
	switch {
	case a.Direction != b.Direction:
		return int(a.Direction) - int(b.Direction)
	case a.Identity != b.Identity:
		if a.Identity < b.Identity {
			return -1
		}
		return 1
	case a.Protocol != b.Protocol:
		return int(a.Protocol) - int(b.Protocol)
	case a.PortPrefixLen != b.PortPrefixLen:
		return int(a.PortPrefixLen) - int(b.PortPrefixLen)
	}
	return int(a.Port) - int(b.Port)
}

// Keys returns the map's keys, sorted by direction, identity, protocol and port.
func (m MapState) Keys() []Key {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, compareKeys)
	return keys
}

// String lists the entries one per line, sorted.
func (m MapState) String() string {
	var b strings.Builder
	for _, k := range m.Keys() {
		e := m[k]
		fmt.Fprintf(&b, "%s → %s", k, e.Verdict)
		for i, r := range e.Rules {
			if i == 0 {
				b.WriteString(" by ")
			} else {
				b.WriteString(", ")
			}
			b.WriteString(r.String())
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// portRangeKeys splits [lo, hi] into the fewest prefix keys (Cilium's PortRangeToMaskedPorts).
func portRangeKeys(base Key, lo, hi uint16) []Key {
	var out []Key
	cur := uint32(lo)
	end := uint32(hi)
	for cur <= end {
		// The largest aligned block starting at cur that stays within end.
		size := uint32(1)
		plen := 16
		for plen > 0 {
			next := size << 1
			if cur%next != 0 || cur+next-1 > end {
				break
			}
			size = next
			plen--
		}
		k := base
		k.Port = uint16(cur)
		k.PortPrefixLen = uint8(plen)
		out = append(out, k)
		cur += size
	}
	return out
}
