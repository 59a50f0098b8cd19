package datapath_test

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/ceskit/ceskit/datapath"
	"github.com/ceskit/ceskit/internal/bpftest"
)

// tcx return codes as BPF_PROG_TEST_RUN reports them (uint32).
const (
	benchTCXNext = 0xffffffff // TCX_NEXT (-1): allowed, on to the next program
	benchTCXDrop = 2          // TCX_DROP
)

// benchRepeat is how often BPF_PROG_TEST_RUN runs a program per measurement, as in the
// reference measurements (policy-datapath.md §4).
const benchRepeat = 2_000_000

// benchPacket builds an Ethernet + IPv4 + TCP (SYN) or UDP frame of 64 bytes. Other protocols get
// 8 bytes of zeros after the IPv4 header.
func benchPacket(src, dst netip.Addr, proto uint8, sport, dport uint16) []byte {
	if !src.Is4() || !dst.Is4() {
		panic(fmt.Sprintf("benchPacket: %s → %s is not IPv4", src, dst))
	}
	pkt := make([]byte, 64)
	copy(pkt[0:6], []byte{0x02, 0, 0, 0, 0, 2})
	copy(pkt[6:12], []byte{0x02, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(pkt[12:], 0x0800)
	ip := pkt[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(len(pkt)-14))
	ip[8] = 64
	ip[9] = proto
	s, d := src.As4(), dst.As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	l4 := pkt[34:]
	binary.BigEndian.PutUint16(l4[0:], sport)
	binary.BigEndian.PutUint16(l4[2:], dport)
	switch proto {
	case datapath.ProtoTCP:
		l4[12] = 5 << 4 // data offset
		l4[13] = 0x02   // SYN
		binary.BigEndian.PutUint16(l4[14:], 65535)
	case datapath.ProtoUDP:
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
	}
	return pkt
}

// benchShape is one endpoint's ingress policy of a given size, shaped like a busy service's:
// four ports open to every identity (wildcard-identity exact ports), about 5% port-range entries
// of specific identities, and the rest exact ports of many identities (4 each, from a pool of
// 200 service ports; every 50th identity has an explicit deny on its first port).
type benchShape struct {
	entries []datapath.Entry
	ipcache map[netip.Prefix]uint32
	dst     netip.Addr // the endpoint's address
	// Flows for the paths the benchmarks time; each is allowed.
	exact      benchFlow // an identity with entries of its own, one of its exact ports: 1 lookup
	wildExact  benchFlow // an identity without entries of its own, a wildcard port: 2 lookups
	rangePort  benchFlow // an identity with a 256-port range, a port only it covers
	smallRange benchFlow // a range of at most 64 ports
}

type benchFlow struct {
	id    uint32
	src   netip.Addr
	proto uint8
	port  uint16
}

const (
	benchEP          = 7
	benchFirstID     = 100000
	benchRangeLo     = 30000
	benchPortsPerID  = 4
	benchServicePort = 1000
)

// benchAddr is the address of an identity: 10.0.0.0 plus the identity.
func benchAddr(id uint32) netip.Addr {
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], 10<<24|id)
	return netip.AddrFrom4(a)
}

func benchEntries(n int) benchShape {
	sh := benchShape{ipcache: map[netip.Prefix]uint32{}, dst: netip.MustParseAddr("192.168.0.1")}
	add := func(e datapath.Entry) {
		e.Direction = datapath.Ingress
		if e.Verdict == datapath.Deny {
			e.Precedence = 4
		} else {
			e.Precedence = 2
		}
		e.Cookie = uint32(len(sh.entries) + 1)
		sh.entries = append(sh.entries, e)
	}
	for _, p := range []struct {
		proto uint8
		port  uint16
	}{{datapath.ProtoTCP, 80}, {datapath.ProtoTCP, 443}, {datapath.ProtoTCP, 8443}, {datapath.ProtoUDP, 53}} {
		add(datapath.Entry{Protocol: p.proto, Port: p.port, PortPrefixLen: 16, Verdict: datapath.Allow})
	}
	ranges := n * 5 / 100
	exact := n - len(sh.entries) - ranges
	ids := (exact + benchPortsPerID - 1) / benchPortsPerID
	for j := range ids {
		id := uint32(benchFirstID + j)
		sh.ipcache[netip.PrefixFrom(benchAddr(id), 32)] = id
		for p := range benchPortsPerID {
			if exact == 0 {
				break
			}
			exact--
			v := datapath.Allow
			if j%50 == 49 && p == 0 {
				v = datapath.Deny
			}
			port := uint16(benchServicePort + ((j*7+p*13)%200)*5)
			add(datapath.Entry{Identity: id, Protocol: datapath.ProtoTCP, Port: port, PortPrefixLen: 16, Verdict: v})
		}
	}
	// Ranges: one each for the first identities, 2^(16-plen) ports (8 to 256) within 30000-61999.
	for i := range ranges {
		id := uint32(benchFirstID + i%max(ids, 1))
		plen := uint8(8 + i%6)
		port := uint16(benchRangeLo + (i*977)%32000)
		add(datapath.Entry{Identity: id, Protocol: datapath.ProtoTCP, Port: port, PortPrefixLen: plen, Verdict: datapath.Allow})
	}
	// The timed flows.
	mid := uint32(benchFirstID + ids/2)
	if mid%50 == 49 {
		mid++ // not an identity with a deny
	}
	sh.exact = benchFlow{id: mid, src: benchAddr(mid), proto: datapath.ProtoTCP}
	for _, e := range sh.entries {
		if e.Identity == mid {
			sh.exact.port = e.Port
			break
		}
	}
	wild := uint32(benchFirstID - 1) // in the ipcache, no entries of its own
	sh.ipcache[netip.PrefixFrom(benchAddr(wild), 32)] = wild
	sh.wildExact = benchFlow{id: wild, src: benchAddr(wild), proto: datapath.ProtoTCP, port: 443}
	for _, e := range sh.entries {
		if e.Identity == benchFirstID && e.PortPrefixLen < 16 {
			sh.rangePort = benchFlow{id: benchFirstID, src: benchAddr(benchFirstID), proto: datapath.ProtoTCP, port: e.Port + 1}
			break
		}
	}
	for _, e := range sh.entries {
		if e.Identity != 0 && e.PortPrefixLen < 16 && 1<<(16-e.PortPrefixLen) <= 64 {
			sh.smallRange = benchFlow{id: e.Identity, src: benchAddr(e.Identity), proto: datapath.ProtoTCP, port: e.Port + 1}
			break
		}
	}
	return sh
}

func (f benchFlow) packet(dst netip.Addr) []byte {
	return benchPacket(f.src, dst, f.proto, 40000, f.port)
}

// benchRun times prog and the empty program on pkt, benchRepeat runs each per iteration, and
// reports the policy program's ns per packet and its ratio to the empty program's.
func benchRun(b *testing.B, prog, empty *ebpf.Program, pkt []byte, want uint32) {
	b.Helper()
	var ns, emptyNS time.Duration
	for range b.N {
		ret, per, err := prog.Benchmark(pkt, benchRepeat, nil)
		if err != nil {
			b.Fatal(err)
		}
		if ret != want {
			b.Fatalf("program returned %d, want %d: the packet does not take the path under test", int32(ret), int32(want))
		}
		_, eper, err := empty.Benchmark(pkt, benchRepeat, nil)
		if err != nil {
			b.Fatal(err)
		}
		ns += per
		emptyNS += eper
	}
	perPkt := float64(ns.Nanoseconds()) / float64(b.N)
	emptyPerPkt := float64(emptyNS.Nanoseconds()) / float64(b.N)
	b.ReportMetric(perPkt, "ns/pkt")
	if emptyPerPkt > 0 {
		b.ReportMetric(perPkt/emptyPerPkt, "x-empty")
	}
	b.ReportMetric(emptyPerPkt, "empty-ns/pkt")
}

// benchSpec sizes the maps for up to 60,000 entries, which materialise to about 2.2 times as many
// map elements (each identity's exact ports get the wildcard ports merged in, and a default-deny
// sentinel).
func benchSpec(conntrack bool) datapath.Spec {
	s := datapath.Spec{MaxEntriesPerEndpoint: 1 << 18, DisableConntrack: !conntrack}
	if !conntrack {
		s.ConntrackEntries = 1024
	}
	return s
}

// benchLoad loads a datapath and syncs sh into endpoint benchEP.
func benchLoad(b *testing.B, sh benchShape, conntrack bool) (*datapath.Datapath, datapath.SyncStats) {
	b.Helper()
	d := bpftest.Load(b, benchSpec(conntrack))
	if err := d.SetIdentities(sh.ipcache); err != nil {
		b.Fatal(err)
	}
	st, err := d.SyncEndpoint(benchEP, sh.entries)
	if err != nil {
		b.Fatal(err)
	}
	return d, st
}

// BenchmarkVerdict times one packet through the endpoint's ingress program (BPF_PROG_TEST_RUN,
// 2M runs) per lookup path, against the empty program in the same run: exact (an identity's
// own exact port: one hash lookup), wildcard-exact (a port open to every identity, from an
// identity without entries: two), small-range and range (ports of a 64- and a 256-port range,
// both written as exact ports with the default RangeExpansion: one), range-prefix-trie (the
// 256-port range kept as prefix entries: two hash misses and prefix-trie probes) with conntrack
// off; conntrack-hit (an established flow) with conntrack on.
func BenchmarkVerdict(b *testing.B) {
	for _, n := range []int{1000, 16000, 60000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			sh := benchEntries(n)
			for _, f := range []benchFlow{sh.exact, sh.wildExact, sh.rangePort, sh.smallRange} {
				if e, ok := datapath.Lookup(sh.entries, f.id, datapath.Ingress, f.proto, f.port); !ok || e.Verdict != datapath.Allow {
					b.Fatalf("flow %+v: model verdict %+v (found %v), want allow", f, e, ok)
				}
			}
			d, st := benchLoad(b, sh, false)
			prog, err := d.Program(benchEP, datapath.Ingress)
			if err != nil {
				b.Fatal(err)
			}
			empty, err := d.EmptyProgram()
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { empty.Close() })
			for _, c := range []struct {
				path string
				f    benchFlow
			}{{"exact", sh.exact}, {"wildcard-exact", sh.wildExact}, {"small-range", sh.smallRange}, {"range", sh.rangePort}} {
				b.Run("path="+c.path, func(b *testing.B) {
					benchRun(b, prog, empty, c.f.packet(sh.dst), benchTCXNext)
					b.ReportMetric(float64(st.Entries), "map-entries")
				})
			}
			b.Run("path=range-prefix-trie", func(b *testing.B) {
				// RangeExpansion 1: ranges stay prefix entries (the fallback when expanding them
				// does not fit the endpoint's limit).
				spec := benchSpec(false)
				spec.RangeExpansion = 1
				d := bpftest.Load(b, spec)
				if err := d.SetIdentities(sh.ipcache); err != nil {
					b.Fatal(err)
				}
				st, err := d.SyncEndpoint(benchEP, sh.entries)
				if err != nil {
					b.Fatal(err)
				}
				prog, err := d.Program(benchEP, datapath.Ingress)
				if err != nil {
					b.Fatal(err)
				}
				benchRun(b, prog, empty, sh.rangePort.packet(sh.dst), benchTCXNext)
				b.ReportMetric(float64(st.Entries), "map-entries")
			})
			b.Run("path=conntrack-hit", func(b *testing.B) {
				d, _ := benchLoad(b, sh, true)
				prog, err := d.Program(benchEP, datapath.Ingress)
				if err != nil {
					b.Fatal(err)
				}
				pkt := sh.exact.packet(sh.dst)
				if ret, _, err := prog.Test(pkt); err != nil || ret != benchTCXNext {
					b.Fatalf("warm the conntrack entry: returned %d, %v", int32(ret), err)
				}
				before, err := d.Stats()
				if err != nil {
					b.Fatal(err)
				}
				benchRun(b, prog, empty, pkt, benchTCXNext)
				after, err := d.Stats()
				if err != nil {
					b.Fatal(err)
				}
				if got := after.Packets[datapath.ReasonForwardedCT] - before.Packets[datapath.ReasonForwardedCT]; got < uint64(b.N*benchRepeat) {
					b.Fatalf("%d packets forwarded by conntrack, want %d: not the conntrack path", got, b.N*benchRepeat)
				}
				b.ReportMetric(float64(st.Entries), "map-entries")
			})
		})
	}
}

// benchChanged returns entries with every tenth exact-port entry of a specific identity moved to
// another port (10% of the entries change).
func benchChanged(entries []datapath.Entry) []datapath.Entry {
	out := append([]datapath.Entry(nil), entries...)
	for i := range out {
		if i%10 == 0 && out[i].Identity != 0 && out[i].PortPrefixLen == 16 {
			out[i].Port += 2 // pool ports are multiples of 5 apart: a new port
		}
	}
	return out
}

// BenchmarkSync times SyncEndpoint of 16,000 entries: into an empty endpoint (change=all), and a
// re-sync after 10% of them changed (change=10pct). entries/s counts the endpoint's entries
// (SyncEndpoint always takes the whole map state); map-writes the elements written and deleted.
func BenchmarkSync(b *testing.B) {
	const n = 16000
	b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
		sh := benchEntries(n)
		changed := benchChanged(sh.entries)
		d := bpftest.Load(b, benchSpec(false))
		if err := d.SetIdentities(sh.ipcache); err != nil {
			b.Fatal(err)
		}
		syncEP := func(b *testing.B, entries []datapath.Entry) (time.Duration, datapath.SyncStats) {
			b.Helper()
			start := time.Now()
			st, err := d.SyncEndpoint(benchEP, entries)
			el := time.Since(start)
			if err != nil {
				b.Fatal(err)
			}
			return el, st
		}
		for _, c := range []struct {
			name     string
			from, to []datapath.Entry
		}{{"change=all", nil, sh.entries}, {"change=10pct", sh.entries, changed}} {
			b.Run(c.name, func(b *testing.B) {
				var total time.Duration
				var st datapath.SyncStats
				b.StopTimer()
				for range b.N {
					syncEP(b, c.from)
					b.StartTimer()
					el, s := syncEP(b, c.to)
					b.StopTimer()
					total += el
					st = s
				}
				syncEP(b, nil)
				if st.Written+st.Deleted == 0 {
					b.Fatal("the timed sync wrote nothing")
				}
				sec := total.Seconds() / float64(b.N)
				b.ReportMetric(float64(len(c.to))/sec, "entries/s")
				b.ReportMetric(sec*1e3, "ms/sync")
				b.ReportMetric(float64(st.Written+st.Deleted), "map-writes")
				b.ReportMetric(float64(st.Entries), "map-entries")
			})
		}
	})
}
