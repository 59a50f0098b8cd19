package datapath_test

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ceskit/ceskit/datapath"
)

// These tests need no privileges: they check datapath.Lookup, the Go model of the datapath's
// decision, against the arbitration rules written out plainly in refLookup.

// refLookup is the datapath's arbitration in its plainest form: among the entries of the
// specific identity and among those of the wildcard identity 0 that match the flow, the best is
// the one with the highest precedence, then the longest prefix (any protocol 0 bits, a protocol
// 8, plus the port prefix); between the two, the higher precedence wins, then the longer prefix,
// then the specific identity. Among entries with the same key and precedence the first counts.
func refLookup(entries []datapath.Entry, id uint32, dir datapath.Direction, proto uint8, port uint16) (datapath.Entry, bool) {
	best := func(want uint32) (datapath.Entry, bool) {
		var b datapath.Entry
		found := false
		for _, e := range entries {
			if e.Identity != want || !entryMatches(e, dir, proto, port) {
				continue
			}
			if !found || e.Precedence > b.Precedence || e.Precedence == b.Precedence && entryPrefixLen(e) > entryPrefixLen(b) {
				b, found = e, true
			}
		}
		return b, found
	}
	w, wok := best(0)
	if id == 0 {
		return w, wok
	}
	s, sok := best(id)
	switch {
	case !sok:
		return w, wok
	case !wok:
		return s, true
	case w.Precedence > s.Precedence, w.Precedence == s.Precedence && entryPrefixLen(w) > entryPrefixLen(s):
		return w, true
	}
	return s, true
}

func entryPrefixLen(e datapath.Entry) int {
	if e.Protocol == datapath.ProtoAny {
		return 0
	}
	return 8 + int(e.PortPrefixLen)
}

func entryMatches(e datapath.Entry, dir datapath.Direction, proto uint8, port uint16) bool {
	if e.Direction != dir || e.Protocol != datapath.ProtoAny && e.Protocol != proto {
		return false
	}
	lo, hi := entryRange(e)
	return lo <= port && port <= hi
}

// entryRange is the entry's port range.
func entryRange(e datapath.Entry) (uint16, uint16) {
	var mask uint16
	if e.PortPrefixLen > 0 {
		mask = 0xffff << (16 - e.PortPrefixLen)
	}
	return e.Port & mask, e.Port | ^mask
}

// entryKey is an entry's key, port masked.
type entryKey struct {
	id    uint32
	dir   datapath.Direction
	proto uint8
	port  uint16
	plen  uint8
}

func keyOf(e datapath.Entry) entryKey {
	lo, _ := entryRange(e)
	return entryKey{e.Identity, e.Direction, e.Protocol, lo, e.PortPrefixLen}
}

var entryPorts = []uint16{0, 1, 53, 80, 443, 1023, 1024, 8080, 32767, 32768, 65535}

// randEntries returns up to n entries with distinct keys (as a map state has them) for the
// identities ids (0 = wildcard), both directions, TCP, UDP, ICMP(v6) and any protocol, exact ports
// and prefixes of 0..16 bits, every verdict and precedences 1..4; cookies are distinct.
func randEntries(rng *rand.Rand, n int, ids []uint32) []datapath.Entry {
	seen := map[entryKey]bool{}
	var out []datapath.Entry
	for i := range n {
		e := datapath.Entry{
			Identity:   ids[rng.IntN(len(ids))],
			Direction:  datapath.Direction(rng.IntN(2)),
			Verdict:    datapath.Verdict(rng.IntN(3)),
			Precedence: uint8(1 + rng.IntN(4)),
			Cookie:     uint32(1 + i),
		}
		switch rng.IntN(8) {
		case 0:
			e.Protocol = datapath.ProtoAny
		case 1, 2:
			e.Protocol = datapath.ProtoUDP
		case 3:
			e.Protocol = datapath.ProtoICMP
			if rng.IntN(2) == 0 {
				e.Protocol = datapath.ProtoICMPv6
			}
		default:
			e.Protocol = datapath.ProtoTCP
		}
		if e.Protocol != datapath.ProtoAny {
			switch r := rng.IntN(10); {
			case r < 4:
				e.PortPrefixLen = 16
			case r < 5:
				e.PortPrefixLen = 0
			default:
				e.PortPrefixLen = uint8(rng.IntN(17))
			}
			if rng.IntN(3) == 0 {
				e.Port = uint16(rng.Uint32())
			} else {
				e.Port = entryPorts[rng.IntN(len(entryPorts))]
			}
			if (e.Protocol == datapath.ProtoICMP || e.Protocol == datapath.ProtoICMPv6) && rng.IntN(2) == 0 {
				e.Port = uint16(rng.IntN(256)) // a type
			}
		}
		if k := keyOf(e); !seen[k] {
			seen[k] = true
			out = append(out, e)
		}
	}
	return out
}

// flowPorts returns ports worth testing for entries: the edges of their ranges and just beyond,
// and some random ones.
func flowPorts(rng *rand.Rand, entries []datapath.Entry, n int) []uint16 {
	ports := slices.Clone(entryPorts)
	for _, e := range entries {
		lo, hi := entryRange(e)
		ports = append(ports, lo, hi, lo-1, hi+1)
	}
	out := make([]uint16, n)
	for i := range out {
		if rng.IntN(4) == 0 {
			out[i] = uint16(rng.Uint32())
		} else {
			out[i] = ports[rng.IntN(len(ports))]
		}
	}
	return out
}

func TestLookup(t *testing.T) {
	e := func(id uint32, dir datapath.Direction, proto uint8, port uint16, plen uint8, v datapath.Verdict, prec uint8, cookie uint32) datapath.Entry {
		return datapath.Entry{Identity: id, Direction: dir, Protocol: proto, Port: port, PortPrefixLen: plen, Verdict: v, Precedence: prec, Cookie: cookie}
	}
	const (
		tcp  = datapath.ProtoTCP
		udp  = datapath.ProtoUDP
		anyP = datapath.ProtoAny
		in   = datapath.Ingress
		out  = datapath.Egress
	)
	allow, deny, audit := datapath.Allow, datapath.Deny, datapath.Audit
	type flow struct {
		id    uint32
		dir   datapath.Direction
		proto uint8
		port  uint16
	}
	cases := []struct {
		name    string
		entries []datapath.Entry
		flow    flow
		want    uint32 // cookie of the deciding entry, 0 = no match
	}{
		{"no entries", nil, flow{1, in, tcp, 80}, 0},
		{"exact", []datapath.Entry{e(1, in, tcp, 80, 16, allow, 1, 1)}, flow{1, in, tcp, 80}, 1},
		{"other port", []datapath.Entry{e(1, in, tcp, 80, 16, allow, 1, 1)}, flow{1, in, tcp, 81}, 0},
		{"other direction", []datapath.Entry{e(1, in, tcp, 80, 16, allow, 1, 1)}, flow{1, out, tcp, 80}, 0},
		{"other protocol", []datapath.Entry{e(1, in, tcp, 80, 16, allow, 1, 1)}, flow{1, in, udp, 80}, 0},
		{"other identity", []datapath.Entry{e(1, in, tcp, 80, 16, allow, 1, 1)}, flow{2, in, tcp, 80}, 0},
		{"range low edge", []datapath.Entry{e(1, in, tcp, 8080, 13, allow, 1, 1)}, flow{1, in, tcp, 8080}, 1},
		{"range high edge", []datapath.Entry{e(1, in, tcp, 8080, 13, allow, 1, 1)}, flow{1, in, tcp, 8087}, 1},
		{"range below", []datapath.Entry{e(1, in, tcp, 8080, 13, allow, 1, 1)}, flow{1, in, tcp, 8079}, 0},
		{"range above", []datapath.Entry{e(1, in, tcp, 8080, 13, allow, 1, 1)}, flow{1, in, tcp, 8088}, 0},
		{"range unmasked port", []datapath.Entry{e(1, in, tcp, 8087, 13, allow, 1, 1)}, flow{1, in, tcp, 8080}, 1},
		{"all ports", []datapath.Entry{e(1, in, tcp, 0, 0, allow, 1, 1)}, flow{1, in, tcp, 65535}, 1},
		{"any protocol", []datapath.Entry{e(1, in, anyP, 0, 0, allow, 1, 1)}, flow{1, in, 47, 0}, 1},
		{"longest prefix same precedence", []datapath.Entry{e(1, in, tcp, 0, 0, deny, 1, 1), e(1, in, tcp, 80, 12, allow, 1, 2), e(1, in, tcp, 80, 16, deny, 1, 3)}, flow{1, in, tcp, 81}, 2},
		{"exact beats range same precedence", []datapath.Entry{e(1, in, tcp, 0, 0, deny, 1, 1), e(1, in, tcp, 80, 12, allow, 1, 2), e(1, in, tcp, 80, 16, deny, 1, 3)}, flow{1, in, tcp, 80}, 3},
		{"higher precedence range beats exact", []datapath.Entry{e(1, in, tcp, 80, 16, allow, 1, 1), e(1, in, tcp, 0, 0, deny, 2, 2)}, flow{1, in, tcp, 80}, 2},
		{"higher precedence any protocol beats exact", []datapath.Entry{e(1, in, tcp, 80, 16, allow, 3, 1), e(1, in, anyP, 0, 0, deny, 4, 2)}, flow{1, in, tcp, 80}, 2},
		{"protocol beats any protocol same precedence", []datapath.Entry{e(1, in, anyP, 0, 0, deny, 1, 1), e(1, in, tcp, 0, 0, allow, 1, 2)}, flow{1, in, tcp, 80}, 2},
		{"wildcard identity", []datapath.Entry{e(0, in, tcp, 80, 16, allow, 1, 1)}, flow{7, in, tcp, 80}, 1},
		{"wildcard higher precedence deny", []datapath.Entry{e(0, in, tcp, 0, 0, deny, 2, 1), e(1, in, tcp, 80, 16, allow, 1, 2)}, flow{1, in, tcp, 80}, 1},
		{"specific higher precedence allow", []datapath.Entry{e(0, in, anyP, 0, 0, deny, 1, 1), e(1, in, tcp, 80, 16, allow, 2, 2)}, flow{1, in, tcp, 80}, 2},
		{"specific higher precedence allow, other port", []datapath.Entry{e(0, in, anyP, 0, 0, deny, 1, 1), e(1, in, tcp, 80, 16, allow, 2, 2)}, flow{1, in, tcp, 81}, 1},
		{"equal precedence longer wildcard", []datapath.Entry{e(0, in, tcp, 80, 16, deny, 1, 1), e(1, in, tcp, 0, 0, allow, 1, 2)}, flow{1, in, tcp, 80}, 1},
		{"equal precedence longer specific", []datapath.Entry{e(0, in, tcp, 0, 0, deny, 1, 1), e(1, in, tcp, 80, 16, allow, 1, 2)}, flow{1, in, tcp, 80}, 2},
		{"equal precedence equal prefix specific", []datapath.Entry{e(0, in, tcp, 80, 16, deny, 1, 1), e(1, in, tcp, 80, 16, audit, 1, 2)}, flow{1, in, tcp, 80}, 2},
		{"equal precedence any protocol both specific", []datapath.Entry{e(0, in, anyP, 0, 0, allow, 1, 1), e(1, in, anyP, 0, 0, deny, 1, 2)}, flow{1, in, udp, 53}, 2},
		{"wildcard lower precedence narrower", []datapath.Entry{e(0, in, tcp, 80, 16, allow, 1, 1), e(1, in, tcp, 0, 0, deny, 2, 2)}, flow{1, in, tcp, 80}, 2},
		{"wildcard for identity without match", []datapath.Entry{e(0, in, tcp, 80, 16, allow, 1, 1), e(1, in, udp, 0, 0, deny, 4, 2)}, flow{1, in, tcp, 80}, 1},
		{"other direction ignored", []datapath.Entry{e(0, out, anyP, 0, 0, deny, 4, 1), e(1, in, tcp, 80, 16, allow, 1, 2)}, flow{1, in, tcp, 80}, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := datapath.Lookup(c.entries, c.flow.id, c.flow.dir, c.flow.proto, c.flow.port)
			if !ok {
				got = datapath.Entry{}
			}
			if got.Cookie != c.want {
				t.Errorf("Lookup = %+v, %v; want the entry with cookie %d", got, ok, c.want)
			}
			if ok != (c.want != 0) {
				t.Errorf("Lookup found = %v, want %v", ok, c.want != 0)
			}
			if ref, _ := refLookup(c.entries, c.flow.id, c.flow.dir, c.flow.proto, c.flow.port); ref.Cookie != c.want {
				t.Errorf("refLookup disagrees with the table: %+v", ref)
			}
			// The order of the entries does not matter.
			rev := slices.Clone(c.entries)
			slices.Reverse(rev)
			if r, rok := datapath.Lookup(rev, c.flow.id, c.flow.dir, c.flow.proto, c.flow.port); rok != ok || rok && r != got {
				t.Errorf("Lookup of the reversed entries = %+v, %v; want %+v, %v", r, rok, got, ok)
			}
		})
	}
}

// TestLookupReference compares Lookup with refLookup on random map states (distinct keys) and
// checks that the order of the entries does not matter.
func TestLookupReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ids := []uint32{0, 0, 1, 2, 3}
	for set := range 300 {
		entries := randEntries(rng, 1+rng.IntN(60), ids)
		shuffled := slices.Clone(entries)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		for _, port := range flowPorts(rng, entries, 40) {
			id := uint32(1 + rng.IntN(4))
			dir := datapath.Direction(rng.IntN(2))
			proto := []uint8{datapath.ProtoTCP, datapath.ProtoUDP, datapath.ProtoICMP, datapath.ProtoSCTP}[rng.IntN(4)]
			got, ok := datapath.Lookup(entries, id, dir, proto, port)
			want, wok := refLookup(entries, id, dir, proto, port)
			if ok != wok || ok && got != want {
				t.Fatalf("set %d: Lookup(id %d, %s, proto %d, port %d) = %+v, %v; reference %+v, %v\nentries: %+v",
					set, id, dir, proto, port, got, ok, want, wok, entries)
			}
			if s, sok := datapath.Lookup(shuffled, id, dir, proto, port); sok != ok || sok && s != got {
				t.Fatalf("set %d: Lookup depends on the entries' order: %+v, %v vs %+v, %v", set, s, sok, got, ok)
			}
		}
	}
}

// TestLookupDuplicateKeys: entries with the same key but different precedence (which a caller
// may pass; SyncEndpoint accepts them) decide by precedence in the datapath (materialize keeps the
// higher one), so Lookup must return the higher one too, whatever the order.
func TestLookupDuplicateKeys(t *testing.T) {
	low := datapath.Entry{Identity: 1, Protocol: datapath.ProtoTCP, Port: 80, PortPrefixLen: 16, Verdict: datapath.Allow, Precedence: 1, Cookie: 1}
	high := low
	high.Verdict, high.Precedence, high.Cookie = datapath.Deny, 2, 2
	for _, entries := range [][]datapath.Entry{{low, high}, {high, low}} {
		got, ok := datapath.Lookup(entries, 1, datapath.Ingress, datapath.ProtoTCP, 80)
		if !ok || got != high {
			t.Errorf("Lookup(%+v) = %+v, %v; want the higher-precedence %+v", entries, got, ok, high)
		}
	}
}

// TestLookupIdentityZero: a flow whose remote identity is 0 (an address the ipcache maps to 0)
// is matched by the wildcard entries in the datapath (its lookups for identity 0 are the
// wildcard's), so Lookup must find them too.
func TestLookupIdentityZero(t *testing.T) {
	entries := []datapath.Entry{{Identity: 0, Protocol: datapath.ProtoTCP, Port: 80, PortPrefixLen: 16, Verdict: datapath.Allow, Precedence: 1, Cookie: 1}}
	got, ok := datapath.Lookup(entries, 0, datapath.Ingress, datapath.ProtoTCP, 80)
	if !ok || got != entries[0] {
		t.Errorf("Lookup for identity 0 = %+v, %v; want the wildcard entry %+v", got, ok, entries[0])
	}
}

// TestLookupProperties checks rules that hold for any map state.
func TestLookupProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	ids := []uint32{0, 1, 2}
	for range 200 {
		entries := randEntries(rng, 1+rng.IntN(40), ids)
		// A wildcard any-protocol deny above every precedence decides every flow of its direction.
		top := datapath.Entry{Direction: datapath.Egress, Protocol: datapath.ProtoAny, Verdict: datapath.Deny, Precedence: 5, Cookie: 1000}
		withTop := append(slices.DeleteFunc(slices.Clone(entries), func(e datapath.Entry) bool { return keyOf(e) == keyOf(top) }), top)
		// Entries of another identity change nothing.
		withOther := append(slices.Clone(entries), randEntries(rng, 20, []uint32{9})...)
		for _, port := range flowPorts(rng, entries, 20) {
			id := uint32(1 + rng.IntN(2))
			proto := []uint8{datapath.ProtoTCP, datapath.ProtoUDP, datapath.ProtoICMP}[rng.IntN(3)]
			if got, ok := datapath.Lookup(withTop, id, datapath.Egress, proto, port); !ok || got != top {
				t.Fatalf("Lookup under a top-precedence wildcard deny = %+v, %v; want %+v", got, ok, top)
			}
			a, aok := datapath.Lookup(entries, id, datapath.Ingress, proto, port)
			b, bok := datapath.Lookup(withOther, id, datapath.Ingress, proto, port)
			if aok != bok || a != b {
				t.Fatalf("entries of identity 9 changed the decision for identity %d: %+v, %v → %+v, %v", id, a, aok, b, bok)
			}
			// A match always matches the flow.
			if aok && !entryMatches(a, datapath.Ingress, proto, port) {
				t.Fatalf("Lookup returned %+v, which does not match proto %d port %d", a, proto, port)
			}
			if aok && a.Identity != 0 && a.Identity != id {
				t.Fatalf("Lookup for identity %d returned %+v", id, a)
			}
		}
	}
}

func TestStrings(t *testing.T) {
	got := []string{
		datapath.Ingress.String(), datapath.Egress.String(),
		datapath.Allow.String(), datapath.Deny.String(), datapath.Audit.String(),
	}
	for r := datapath.Reason(0); r <= 8; r++ {
		got = append(got, r.String())
	}
	want := []string{
		"ingress", "egress", "allow", "deny", "audit",
		"forwarded", "forwarded-ct", "audited", "drop-default-deny", "drop-deny", "drop-invalid", "drop-fragment", "pass-non-ip", "reason(8)",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("String (-want +got):\n%s", diff)
	}
}
