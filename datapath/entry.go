package datapath

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// Direction is the direction of traffic relative to the endpoint.
type Direction uint8

const (
	// Ingress is traffic into the endpoint.
	Ingress Direction = 0
	// Egress is traffic out of the endpoint.
	Egress Direction = 1
)

// String returns "ingress" or "egress".
func (d Direction) String() string {
	if d == Egress {
		return "egress"
	}
	return "ingress"
}

// Verdict is what an entry does with traffic.
type Verdict uint8

const (
	// Deny drops the packet.
	Deny Verdict = 0
	// Allow passes the packet (to the next tcx program).
	Allow Verdict = 1
	// Audit passes the packet and reports it as audited.
	Audit Verdict = 2
)

// String returns "deny", "allow" or "audit".
func (v Verdict) String() string {
	switch v {
	case Allow:
		return "allow"
	case Audit:
		return "audit"
	}
	return "deny"
}

// IP protocol numbers the datapath parses. ProtoAny (0) in an entry matches every protocol.
const (
	ProtoAny    uint8 = 0
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
	ProtoSCTP   uint8 = 132
)

// Entry is one policy entry of an endpoint, in the layout of a policy map key and value: the
// remote identity (0 = any), direction, protocol (ProtoAny only with every port), and the top
// PortPrefixLen bits of Port (0 = every port, 16 = exactly Port), with the verdict, its
// precedence (higher wins between the specific and the wildcard identity) and a cookie that
// names the rule in events. The policy package's MapState converts one to one.
type Entry struct {
	Identity      uint32
	Direction     Direction
	Protocol      uint8
	Port          uint16
	PortPrefixLen uint8
	Verdict       Verdict
	Precedence    uint8
	Cookie        uint32
}

func (e Entry) key() entryKey {
	return entryKey{e.Identity, e.Direction, e.Protocol, e.Port & portMask(e.PortPrefixLen), e.PortPrefixLen}
}

// validate reports an entry the datapath cannot hold.
func (e Entry) validate() error {
	switch {
	case e.Direction > Egress:
		return fmt.Errorf("entry %+v: direction %d is not Ingress or Egress", e, e.Direction)
	case e.PortPrefixLen > 16:
		return fmt.Errorf("entry %+v: PortPrefixLen %d is over 16", e, e.PortPrefixLen)
	case e.Protocol == ProtoAny && e.PortPrefixLen != 0:
		return fmt.Errorf("entry %+v: ProtoAny needs PortPrefixLen 0 (every port)", e)
	case e.Verdict > Audit:
		return fmt.Errorf("entry %+v: verdict %d is not Deny, Allow or Audit", e, e.Verdict)
	}
	return nil
}

// entryKey is an entry's key part, port masked.
type entryKey struct {
	id    uint32
	dir   Direction
	proto uint8
	port  uint16
	plen  uint8
}

func portMask(plen uint8) uint16 {
	if plen == 0 {
		return 0
	}
	return uint16(0xffff) << (16 - plen)
}

func (k entryKey) portRange() (uint16, uint16) {
	m := portMask(k.plen)
	return k.port & m, k.port | ^m
}

// covers reports whether k matches every flow o matches (same identity and direction).
func (k entryKey) covers(o entryKey) bool {
	if k.id != o.id || k.dir != o.dir || (k.proto != ProtoAny && k.proto != o.proto) || k.plen > o.plen {
		return false
	}
	lo, hi := k.portRange()
	olo, ohi := o.portRange()
	return lo <= olo && ohi <= hi
}

// prefixLen is the key's length below identity and direction, as the datapath compares them.
func (k entryKey) prefixLen() int {
	if k.proto == ProtoAny {
		return 0
	}
	return 8 + int(k.plen)
}

type value struct {
	verdict Verdict
	prec    uint8
	cookie  uint32
	dflt    bool // a materialised "no entry"
}

// builder keeps, for one identity and direction, entries such that a longest-prefix match
// returns the highest-precedence answer: a new entry is dropped when a higher-precedence entry
// covers it, and lower-precedence entries it covers are removed.
type builder struct {
	m map[entryKey]value
}

func newBuilder() *builder { return &builder{m: map[entryKey]value{}} }

func (b *builder) insert(k entryKey, v value) {
	if cur, ok := b.m[k]; ok && cur.prec >= v.prec {
		return
	}
	for ok, ov := range b.m {
		if ok != k && ov.prec > v.prec && ok.covers(k) {
			return
		}
	}
	for ok, ov := range b.m {
		if ok != k && ov.prec < v.prec && k.covers(ok) {
			delete(b.m, ok)
		}
	}
	b.m[k] = v
}

// lpm is the longest-prefix match among the builder's keys for one flow.
func (b *builder) lpm(id uint32, dir Direction, proto uint8, port uint16) (entryKey, value, bool) {
	for plen := 16; plen >= 0; plen-- {
		k := entryKey{id, dir, proto, port & portMask(uint8(plen)), uint8(plen)}
		if v, ok := b.m[k]; ok {
			return k, v, true
		}
	}
	k := entryKey{id: id, dir: dir, proto: ProtoAny}
	v, ok := b.m[k]
	return k, v, ok
}

// Lookup is the Go model of the datapath's decision for entries of one endpoint: the longest
// prefix match for the specific identity and for the wildcard identity 0, then the higher
// precedence, then the longer prefix, then the specific identity. ok is false when nothing
// matches (default deny). The BPF program gives the same answer with the materialised maps.
func Lookup(entries []Entry, id uint32, dir Direction, proto uint8, port uint16) (Entry, bool) {
	spec, wild := newBuilder(), newBuilder()
	index := map[entryKey]Entry{}
	for _, e := range entries {
		if e.Direction != dir {
			continue
		}
		k := e.key()
		if cur, ok := index[k]; !ok || e.Precedence > cur.Precedence {
			index[k] = e // for one key the highest precedence counts, as in the builder
		}
		v := value{e.Verdict, e.Precedence, e.Cookie, false}
		switch e.Identity {
		case 0:
			wild.insert(k, v)
		case id:
			spec.insert(k, v)
		}
	}
	if id == 0 {
		wk, _, wok := wild.lpm(0, dir, proto, port)
		return index[wk], wok
	}
	sk, _, sok := spec.lpm(id, dir, proto, port)
	wk, _, wok := wild.lpm(0, dir, proto, port)
	switch {
	case !sok && !wok:
		return Entry{}, false
	case !sok:
		return index[wk], true
	case !wok:
		return index[sk], true
	}
	s, w := index[sk], index[wk]
	switch {
	case w.Precedence > s.Precedence:
		return w, true
	case w.Precedence < s.Precedence:
		return s, true
	case wk.prefixLen() > sk.prefixLen():
		return w, true
	}
	return s, true
}

// materialized is what one endpoint's entries become in the two policy maps.
type materialized struct {
	exact map[ceskitPolicyKey]ceskitPolicyVal
	lpm   map[ceskitPolicyLpmKey]ceskitPolicyVal
}

func (m materialized) size() int { return len(m.exact) + len(m.lpm) }

// materialize turns an endpoint's entries into exact-hash and LPM map contents that the BPF
// program's lookup order (exact specific, exact wildcard, LPM specific, LPM wildcard) resolves
// to what Lookup decides, with as few elements as that allows:
//
//   - ranges of up to expand ports count as exact ports (one element per port);
//   - the wildcard identity's exact entries go to the exact map, its prefix entries to the LPM
//     map;
//   - an identity with entries of its own gets its exact ports in the exact map, each with the
//     arbitrated answer (its entries and the wildcard's merged, highest precedence kept), plus
//     the wildcard's exact ports only where the arbitrated answer differs from the wildcard's
//     (elsewhere the second lookup finds the same answer);
//   - an identity with prefix entries of its own gets, in the LPM map, its prefix entries with
//     the wildcard's merged in (a miss there means the wildcard's lookup misses too); an
//     identity without prefix entries falls through to the wildcard's, which gives the
//     arbitrated answer.
func materialize(ep uint32, entries []Entry, expand int) materialized {
	out := materialized{exact: map[ceskitPolicyKey]ceskitPolicyVal{}, lpm: map[ceskitPolicyLpmKey]ceskitPolicyVal{}}
	type pp struct {
		proto uint8
		port  uint16
	}
	// points are the ports a builder answers in the exact map: its exact keys and every port of
	// its small ranges.
	points := func(b *builder) map[pp]bool {
		out := map[pp]bool{}
		for k := range b.m {
			switch {
			case k.plen == 16:
				out[pp{k.proto, k.port}] = true
			case k.expandable(expand):
				lo, hi := k.portRange()
				for p := uint32(lo); p <= uint32(hi); p++ {
					out[pp{k.proto, uint16(p)}] = true
				}
			}
		}
		return out
	}
	for _, dir := range []Direction{Ingress, Egress} {
		byID := map[uint32]*builder{}
		for _, e := range entries {
			if e.Direction != dir {
				continue
			}
			b := byID[e.Identity]
			if b == nil {
				b = newBuilder()
				byID[e.Identity] = b
			}
			b.insert(e.key(), value{e.Verdict, e.Precedence, e.Cookie, false})
		}
		wild := byID[0]
		if wild == nil {
			wild = newBuilder()
		}
		answer := func(b *builder, bid uint32, p pp) value {
			if _, v, ok := b.lpm(bid, dir, p.proto, p.port); ok {
				return v
			}
			return value{verdict: Deny, dflt: true}
		}
		wildPoints := points(wild)
		for p := range wildPoints {
			out.exact[ceskitPolicyKey{EpId: ep, Identity: 0, Dir: uint8(dir), Proto: p.proto, Port: p.port}] = toVal(answer(wild, 0, p))
		}
		for k, v := range wild.m {
			if k.plen != 16 && !k.expandable(expand) {
				out.lpm[lpmKey(ep, 0, dir, k)] = toVal(v)
			}
		}
		ids := make([]uint32, 0, len(byID))
		for id := range byID {
			if id != 0 {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		for _, id := range ids {
			own := byID[id]
			ownPoints := points(own)
			ownPrefix := false
			for k := range own.m {
				if k.plen != 16 && !k.expandable(expand) {
					ownPrefix = true
				}
			}
			merged := newBuilder()
			for k, v := range own.m {
				merged.insert(k, v)
			}
			for k, v := range wild.m {
				k.id = id
				merged.insert(k, v)
			}
			for p := range ownPoints {
				out.exact[ceskitPolicyKey{EpId: ep, Identity: id, Dir: uint8(dir), Proto: p.proto, Port: p.port}] = toVal(answer(merged, id, p))
			}
			for p := range wildPoints {
				if ownPoints[p] {
					continue
				}
				if mv, wv := answer(merged, id, p), answer(wild, 0, p); mv != wv {
					out.exact[ceskitPolicyKey{EpId: ep, Identity: id, Dir: uint8(dir), Proto: p.proto, Port: p.port}] = toVal(mv)
				}
			}
			if !ownPrefix {
				continue
			}
			// Every wildcard prefix entry is in merged or covered by a higher-precedence
			// entry of the identity that is: when this lookup misses, the wildcard's misses
			// too, so no sentinel is needed. Small ranges are answered in the exact map and
			// never reach this lookup.
			for k, v := range merged.m {
				if k.plen != 16 && !k.expandable(expand) {
					out.lpm[lpmKey(ep, id, dir, k)] = toVal(v)
				}
			}
		}
	}
	return out
}

// expandable reports a prefix key of at most expand ports, to be written as exact ports.
func (k entryKey) expandable(expand int) bool {
	return k.proto != ProtoAny && k.plen < 16 && 1<<(16-k.plen) <= expand
}

func toVal(v value) ceskitPolicyVal {
	pv := ceskitPolicyVal{Verdict: uint8(v.verdict), Cookie: v.cookie}
	if v.dflt {
		pv.Flags = policyFlagDefaultDeny
	}
	return pv
}

// policyFlagDefaultDeny is POLICY_F_DEFAULT_DENY of ceskit.h.
const policyFlagDefaultDeny = 1

func lpmKey(ep, id uint32, dir Direction, k entryKey) ceskitPolicyLpmKey {
	plen := uint32(72)
	if k.proto != ProtoAny {
		plen += 8 + uint32(k.plen)
	}
	var be [2]byte
	binary.BigEndian.PutUint16(be[:], k.port&portMask(k.plen))
	return ceskitPolicyLpmKey{
		Prefixlen: plen, EpId: ep, Identity: id, Dir: uint8(dir), Proto: k.proto,
		PortBe: binary.NativeEndian.Uint16(be[:]),
	}
}
