package datapath_test

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"

	"github.com/ceskit/ceskit/datapath"
	"github.com/ceskit/ceskit/internal/bpftest"
)

// Return codes of the policy program: allow is TCX_NEXT (-1), deny TCX_DROP.
const (
	retAllow uint32 = 0xffffffff
	retDrop  uint32 = 2
)

// The endpoint's own addresses and the test ipcache.
const (
	podV4 = "10.0.0.1"
	podV6 = "fd00::1"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

var testIdentities = map[netip.Prefix]uint32{
	pfx("10.0.1.1/32"):   1001,
	pfx("10.0.1.2/32"):   1002,
	pfx("10.1.0.0/16"):   2001,
	pfx("10.1.2.0/24"):   2002,
	pfx("10.1.2.3/32"):   2003,
	pfx("fd00:1::/64"):   3001,
	pfx("fd00:1::7/128"): 3002,
}

// testSpec is a Spec with small maps, so that loading one per test is cheap.
func testSpec() datapath.Spec {
	return datapath.Spec{
		PolicyEntries: 8192, MaxEntriesPerEndpoint: 4096, IPCacheEntries: 1024, IPCachePrefixes: 1024,
		ConntrackEntries: 4096, EventsBytes: 1 << 16,
	}
}

// loadTest loads a datapath with the test ipcache.
func loadTest(tb testing.TB, spec datapath.Spec) *datapath.Datapath {
	tb.Helper()
	d := bpftest.Load(tb, spec)
	if err := d.SetIdentities(testIdentities); err != nil {
		tb.Fatalf("SetIdentities: %v", err)
	}
	return d
}

func syncEP(tb testing.TB, d *datapath.Datapath, ep uint32, entries ...datapath.Entry) {
	tb.Helper()
	if _, err := d.SyncEndpoint(ep, entries); err != nil {
		tb.Fatalf("SyncEndpoint(%d): %v", ep, err)
	}
}

// runProg runs the endpoint's program for dir on one frame. It skips the test for a frame
// BPF_PROG_TEST_RUN refuses (see kernelRefuses).
func runProg(tb testing.TB, d *datapath.Datapath, ep uint32, dir datapath.Direction, frame []byte) uint32 {
	tb.Helper()
	prog, err := d.Program(ep, dir)
	if err != nil {
		tb.Fatalf("Program(%d, %s): %v", ep, dir, err)
	}
	ret, err := prog.Run(&ebpf.RunOptions{Data: frame})
	if err != nil && kernelRefuses(frame, err) {
		tb.Skipf("BPF_PROG_TEST_RUN refuses the %d-byte frame %x: %v", len(frame), frame, err)
	}
	if err != nil {
		tb.Fatalf("run endpoint %d %s program on %x: %v", ep, dir, frame, err)
	}
	return ret
}

// kernelRefuses reports whether err is BPF_PROG_TEST_RUN refusing a frame whose EtherType says
// IPv4 or IPv6 but that is too short for the IP header (newer kernels check that before running
// the program, so the program's own check for it cannot be tested this way).
func kernelRefuses(frame []byte, err error) bool {
	if !errors.Is(err, unix.EINVAL) || len(frame) < 14 {
		return false
	}
	switch binary.BigEndian.Uint16(frame[12:]) {
	case etherIPv4:
		return len(frame) < 14+20
	case etherIPv6:
		return len(frame) < 14+40
	}
	return false
}

func stats(tb testing.TB, d *datapath.Datapath) datapath.Stats {
	tb.Helper()
	s, err := d.Stats()
	if err != nil {
		tb.Fatalf("Stats: %v", err)
	}
	return s
}

// countersDelta is the non-zero packet counter changes from before to after, both directions
// together.
func countersDelta(before, after datapath.Stats) map[datapath.Reason]uint64 {
	return reasonDelta(before.Packets, after.Packets)
}

// directionDelta is the non-zero packet counter changes of one direction.
func directionDelta(before, after datapath.Stats, dir datapath.Direction) map[datapath.Reason]uint64 {
	return reasonDelta(before.Direction(dir), after.Direction(dir))
}

func reasonDelta(before, after map[datapath.Reason]uint64) map[datapath.Reason]uint64 {
	d := map[datapath.Reason]uint64{}
	for r, n := range after {
		if n != before[r] {
			d[r] = n - before[r]
		}
	}
	return d
}

// checkDirections checks that the counter changes from before to after are want in direction
// dir, and none in the other.
func checkDirections(tb testing.TB, before, after datapath.Stats, dir datapath.Direction, want map[datapath.Reason]uint64) {
	tb.Helper()
	if diff := cmp.Diff(want, directionDelta(before, after, dir)); diff != "" {
		tb.Errorf("%s counter changes (-want +got):\n%s", dir, diff)
	}
	if got := directionDelta(before, after, dir^1); len(got) != 0 {
		tb.Errorf("%s counter changes %v, want none", dir^1, got)
	}
	for r, n := range after.Packets {
		if n != after.Ingress[r]+after.Egress[r] {
			tb.Errorf("counter %s: %d packets, but %d ingress + %d egress", r, n, after.Ingress[r], after.Egress[r])
		}
	}
}

func retName(r uint32) string {
	switch r {
	case retAllow:
		return "allow (TCX_NEXT)"
	case retDrop:
		return "drop (TCX_DROP)"
	}
	return "unexpected"
}

// entry builders.
func allowE(id uint32, dir datapath.Direction, proto uint8, port uint16, plen uint8) datapath.Entry {
	return datapath.Entry{Identity: id, Direction: dir, Protocol: proto, Port: port, PortPrefixLen: plen, Verdict: datapath.Allow, Precedence: 1}
}

func withVerdict(e datapath.Entry, v datapath.Verdict, prec uint8, cookie uint32) datapath.Entry {
	e.Verdict, e.Precedence, e.Cookie = v, prec, cookie
	return e
}

const (
	pIn  = datapath.Ingress
	pOut = datapath.Egress
	pTCP = datapath.ProtoTCP
	pUDP = datapath.ProtoUDP
	pAny = datapath.ProtoAny
)

// TestVerdicts runs one packet per case through a fresh endpoint's program and checks the
// return code and which counter moved.
func TestVerdicts(t *testing.T) {
	d := loadTest(t, testSpec())
	from := func(remote string, dport uint16) []byte { return tcpPkt(remote, podV4, 40000, dport).bytes() }
	tcp80 := allowE(1001, pIn, pTCP, 80, 16)
	v6ext := func(ext ...ext6) []byte {
		p := tcpPkt("fd00:1::5", podV6, 40000, 80)
		p.Ext = ext
		return p.bytes()
	}
	frag := func(p packet, more bool, off uint16) []byte {
		p.MoreFrags, p.FragOffset, p.Fragment = more, off, true
		return p.bytes()
	}
	v4 := tcpPkt("10.0.1.1", podV4, 40000, 80).bytes()
	v6 := tcpPkt("fd00:1::5", podV6, 40000, 80).bytes()
	badVersion := slices.Clone(v4)
	badVersion[14] = 0x65
	shortIHL := slices.Clone(v4)
	shortIHL[14] = 0x44
	badV6Version := slices.Clone(v6)
	badV6Version[14] = 0x45
	longIHL := tcpPkt("10.0.1.1", podV4, 40000, 80)
	longIHL.IPv4Options = []byte{1, 1, 1, 1, 1, 1, 1, 1} // NOPs
	gre := tcpPkt("10.0.1.1", podV4, 0, 0)
	gre.Proto = 47
	noNext := tcpPkt("fd00:1::5", podV6, 0, 0)
	noNext.Proto = nhNone
	noNext.Ext = []ext6{{Type: nhDest}}
	wrongEther := tcpPkt("10.0.1.1", podV4, 40000, 80)
	wrongEther.EtherType = etherIPv6

	cases := []struct {
		name    string
		entries []datapath.Entry
		dir     datapath.Direction
		frame   []byte
		want    uint32
		reason  datapath.Reason
	}{
		{"allow exact port", []datapath.Entry{tcp80}, pIn, from("10.0.1.1", 80), retAllow, datapath.ReasonForwarded},
		{"other port default deny", []datapath.Entry{tcp80}, pIn, from("10.0.1.1", 81), retDrop, datapath.ReasonDropDefault},
		{"other identity default deny", []datapath.Entry{tcp80}, pIn, from("10.0.1.2", 80), retDrop, datapath.ReasonDropDefault},
		{"other protocol default deny", []datapath.Entry{tcp80}, pIn, udpPkt("10.0.1.1", podV4, 40000, 80).bytes(), retDrop, datapath.ReasonDropDefault},
		{"no entries default deny", nil, pIn, from("10.0.1.1", 80), retDrop, datapath.ReasonDropDefault},
		{"explicit deny", []datapath.Entry{withVerdict(tcp80, datapath.Deny, 1, 5)}, pIn, from("10.0.1.1", 80), retDrop, datapath.ReasonDropDeny},
		{"audit", []datapath.Entry{withVerdict(tcp80, datapath.Audit, 1, 5)}, pIn, from("10.0.1.1", 80), retAllow, datapath.ReasonAudited},
		{"egress allow", []datapath.Entry{allowE(1001, pOut, pTCP, 80, 16)}, pOut, tcpPkt(podV4, "10.0.1.1", 40000, 80).bytes(), retAllow, datapath.ReasonForwarded},
		{"egress entry not ingress", []datapath.Entry{allowE(1001, pOut, pTCP, 80, 16)}, pIn, from("10.0.1.1", 80), retDrop, datapath.ReasonDropDefault},
		{"egress looks up the destination", []datapath.Entry{allowE(1001, pOut, pTCP, 80, 16)}, pOut, tcpPkt("10.0.1.1", podV4, 40000, 80).bytes(), retDrop, datapath.ReasonDropDefault},

		// Port ranges: 8080/13 is 8080-8087, 32768/1 is 32768-65535.
		{"range below", []datapath.Entry{allowE(1001, pIn, pTCP, 8080, 13)}, pIn, from("10.0.1.1", 8079), retDrop, datapath.ReasonDropDefault},
		{"range low edge", []datapath.Entry{allowE(1001, pIn, pTCP, 8080, 13)}, pIn, from("10.0.1.1", 8080), retAllow, datapath.ReasonForwarded},
		{"range high edge", []datapath.Entry{allowE(1001, pIn, pTCP, 8080, 13)}, pIn, from("10.0.1.1", 8087), retAllow, datapath.ReasonForwarded},
		{"range above", []datapath.Entry{allowE(1001, pIn, pTCP, 8080, 13)}, pIn, from("10.0.1.1", 8088), retDrop, datapath.ReasonDropDefault},
		{"range port bits below prefix ignored", []datapath.Entry{allowE(1001, pIn, pTCP, 8085, 13)}, pIn, from("10.0.1.1", 8080), retAllow, datapath.ReasonForwarded},
		{"upper half below", []datapath.Entry{allowE(1001, pIn, pTCP, 32768, 1)}, pIn, from("10.0.1.1", 32767), retDrop, datapath.ReasonDropDefault},
		{"upper half low edge", []datapath.Entry{allowE(1001, pIn, pTCP, 32768, 1)}, pIn, from("10.0.1.1", 32768), retAllow, datapath.ReasonForwarded},
		{"upper half high edge", []datapath.Entry{allowE(1001, pIn, pTCP, 32768, 1)}, pIn, from("10.0.1.1", 65535), retAllow, datapath.ReasonForwarded},
		{"all ports port 0", []datapath.Entry{allowE(1001, pIn, pTCP, 0, 0)}, pIn, from("10.0.1.1", 0), retAllow, datapath.ReasonForwarded},
		{"all ports port 65535", []datapath.Entry{allowE(1001, pIn, pTCP, 0, 0)}, pIn, from("10.0.1.1", 65535), retAllow, datapath.ReasonForwarded},
		{"all ports of tcp not udp", []datapath.Entry{allowE(1001, pIn, pTCP, 0, 0)}, pIn, udpPkt("10.0.1.1", podV4, 1, 53).bytes(), retDrop, datapath.ReasonDropDefault},
		{"exact and range same identity", []datapath.Entry{withVerdict(allowE(1001, pIn, pTCP, 0, 0), datapath.Deny, 1, 0), allowE(1001, pIn, pTCP, 443, 16)}, pIn, from("10.0.1.1", 443), retAllow, datapath.ReasonForwarded},

		// CIDR identities: the longest prefix wins, a /32 beats every prefix, unknown is world (2).
		{"cidr /24 beats /16", []datapath.Entry{allowE(2002, pIn, pTCP, 80, 16)}, pIn, from("10.1.2.9", 80), retAllow, datapath.ReasonForwarded},
		{"cidr /16 outside the /24", []datapath.Entry{allowE(2002, pIn, pTCP, 80, 16)}, pIn, from("10.1.3.9", 80), retDrop, datapath.ReasonDropDefault},
		{"cidr /16 identity", []datapath.Entry{allowE(2001, pIn, pTCP, 80, 16)}, pIn, from("10.1.3.9", 80), retAllow, datapath.ReasonForwarded},
		{"cidr /32 beats /24", []datapath.Entry{allowE(2002, pIn, pTCP, 80, 16)}, pIn, from("10.1.2.3", 80), retDrop, datapath.ReasonDropDefault},
		{"cidr /32 identity", []datapath.Entry{allowE(2003, pIn, pTCP, 80, 16)}, pIn, from("10.1.2.3", 80), retAllow, datapath.ReasonForwarded},
		{"unknown address is world", []datapath.Entry{allowE(2, pIn, pUDP, 53, 16)}, pIn, udpPkt("8.8.8.8", podV4, 5353, 53).bytes(), retAllow, datapath.ReasonForwarded},
		{"ipv6 prefix identity", []datapath.Entry{allowE(3001, pIn, pTCP, 80, 16)}, pIn, tcpPkt("fd00:1::5", podV6, 1, 80).bytes(), retAllow, datapath.ReasonForwarded},
		{"ipv6 /128 beats /64", []datapath.Entry{allowE(3001, pIn, pTCP, 80, 16)}, pIn, tcpPkt("fd00:1::7", podV6, 1, 80).bytes(), retDrop, datapath.ReasonDropDefault},
		{"ipv6 unknown is world", []datapath.Entry{allowE(2, pIn, pTCP, 80, 16)}, pIn, tcpPkt("2001:db8::1", podV6, 1, 80).bytes(), retAllow, datapath.ReasonForwarded},

		// Wildcard identity and precedence arbitration.
		{"wildcard allow any identity", []datapath.Entry{allowE(0, pIn, pTCP, 80, 16)}, pIn, from("10.1.2.3", 80), retAllow, datapath.ReasonForwarded},
		{"wildcard allow world", []datapath.Entry{allowE(0, pIn, pTCP, 80, 16)}, pIn, from("192.0.2.1", 80), retAllow, datapath.ReasonForwarded},
		{"wildcard range allow", []datapath.Entry{allowE(0, pIn, pTCP, 1024, 6)}, pIn, from("10.0.1.1", 2047), retAllow, datapath.ReasonForwarded},
		{"wildcard deny higher precedence beats specific allow",
			[]datapath.Entry{withVerdict(allowE(0, pIn, pTCP, 0, 0), datapath.Deny, 2, 9), tcp80}, pIn, from("10.0.1.1", 80), retDrop, datapath.ReasonDropDeny},
		{"wildcard any-protocol deny higher precedence beats specific allow",
			[]datapath.Entry{withVerdict(allowE(0, pIn, pAny, 0, 0), datapath.Deny, 4, 9), withVerdict(tcp80, datapath.Allow, 3, 1)}, pIn, from("10.0.1.1", 80), retDrop, datapath.ReasonDropDeny},
		{"equal precedence longer wildcard prefix wins",
			[]datapath.Entry{withVerdict(allowE(0, pIn, pTCP, 80, 16), datapath.Deny, 1, 9), allowE(1001, pIn, pTCP, 0, 0)}, pIn, from("10.0.1.1", 80), retDrop, datapath.ReasonDropDeny},
		{"equal precedence longer specific prefix wins",
			[]datapath.Entry{withVerdict(allowE(0, pIn, pTCP, 0, 0), datapath.Deny, 1, 9), tcp80}, pIn, from("10.0.1.1", 80), retAllow, datapath.ReasonForwarded},
		{"equal precedence longer wildcard range wins",
			[]datapath.Entry{withVerdict(allowE(0, pIn, pTCP, 80, 12), datapath.Deny, 1, 9), allowE(1001, pIn, pTCP, 0, 4)}, pIn, from("10.0.1.1", 81), retDrop, datapath.ReasonDropDeny},
		{"equal precedence equal prefix specific wins",
			[]datapath.Entry{withVerdict(allowE(0, pIn, pTCP, 80, 16), datapath.Deny, 1, 9), tcp80}, pIn, from("10.0.1.1", 80), retAllow, datapath.ReasonForwarded},
		{"equal precedence equal range specific wins",
			[]datapath.Entry{withVerdict(allowE(0, pIn, pTCP, 80, 12), datapath.Deny, 1, 9), allowE(1001, pIn, pTCP, 80, 12)}, pIn, from("10.0.1.1", 81), retAllow, datapath.ReasonForwarded},
		{"specific allow over lower-precedence wildcard deny",
			[]datapath.Entry{withVerdict(allowE(0, pIn, pAny, 0, 0), datapath.Deny, 1, 9), withVerdict(tcp80, datapath.Allow, 2, 1)}, pIn, from("10.0.1.1", 80), retAllow, datapath.ReasonForwarded},
		{"lower-precedence wildcard deny elsewhere",
			[]datapath.Entry{withVerdict(allowE(0, pIn, pAny, 0, 0), datapath.Deny, 1, 9), withVerdict(tcp80, datapath.Allow, 2, 1)}, pIn, from("10.0.1.1", 81), retDrop, datapath.ReasonDropDeny},
		{"lower-precedence wildcard deny other identity",
			[]datapath.Entry{withVerdict(allowE(0, pIn, pAny, 0, 0), datapath.Deny, 1, 9), withVerdict(tcp80, datapath.Allow, 2, 1)}, pIn, from("10.0.1.2", 80), retDrop, datapath.ReasonDropDeny},
		{"specific deny over lower-precedence wildcard allow",
			[]datapath.Entry{allowE(0, pIn, pTCP, 80, 16), withVerdict(allowE(1001, pIn, pTCP, 0, 0), datapath.Deny, 2, 9)}, pIn, from("10.0.1.1", 80), retDrop, datapath.ReasonDropDeny},
		{"wildcard allow for identities without a deny",
			[]datapath.Entry{allowE(0, pIn, pTCP, 80, 16), withVerdict(allowE(1001, pIn, pTCP, 0, 0), datapath.Deny, 2, 9)}, pIn, from("10.0.1.2", 80), retAllow, datapath.ReasonForwarded},
		{"wildcard exact port with specific range of lower precedence",
			[]datapath.Entry{allowE(0, pIn, pTCP, 80, 16), withVerdict(allowE(1001, pIn, pTCP, 0, 8), datapath.Deny, 1, 9)}, pIn, from("10.0.1.1", 80), retAllow, datapath.ReasonForwarded},

		// Any protocol.
		{"any protocol tcp", []datapath.Entry{allowE(1001, pIn, pAny, 0, 0)}, pIn, from("10.0.1.1", 1), retAllow, datapath.ReasonForwarded},
		{"any protocol udp", []datapath.Entry{allowE(1001, pIn, pAny, 0, 0)}, pIn, udpPkt("10.0.1.1", podV4, 1, 53).bytes(), retAllow, datapath.ReasonForwarded},
		{"any protocol sctp", []datapath.Entry{allowE(1001, pIn, pAny, 0, 0)}, pIn, sctpPkt("10.0.1.1", podV4, 1, 9).bytes(), retAllow, datapath.ReasonForwarded},
		{"any protocol icmp", []datapath.Entry{allowE(1001, pIn, pAny, 0, 0)}, pIn, icmpPkt("10.0.1.1", podV4, 8, 7).bytes(), retAllow, datapath.ReasonForwarded},
		{"any protocol gre", []datapath.Entry{allowE(1001, pIn, pAny, 0, 0)}, pIn, gre.bytes(), retAllow, datapath.ReasonForwarded},
		{"gre without entry", []datapath.Entry{tcp80}, pIn, gre.bytes(), retDrop, datapath.ReasonDropDefault},
		{"any protocol deny beats lower allow",
			[]datapath.Entry{withVerdict(allowE(1001, pIn, pAny, 0, 0), datapath.Deny, 2, 9), tcp80}, pIn, from("10.0.1.1", 80), retDrop, datapath.ReasonDropDeny},
		{"any protocol deny loses to higher allow",
			[]datapath.Entry{withVerdict(allowE(1001, pIn, pAny, 0, 0), datapath.Deny, 1, 9), withVerdict(tcp80, datapath.Allow, 2, 0)}, pIn, from("10.0.1.1", 80), retAllow, datapath.ReasonForwarded},
		{"sctp port", []datapath.Entry{allowE(1001, pIn, datapath.ProtoSCTP, 9, 16)}, pIn, sctpPkt("10.0.1.1", podV4, 1, 9).bytes(), retAllow, datapath.ReasonForwarded},
		{"sctp other port", []datapath.Entry{allowE(1001, pIn, datapath.ProtoSCTP, 9, 16)}, pIn, sctpPkt("10.0.1.1", podV4, 1, 10).bytes(), retDrop, datapath.ReasonDropDefault},

		// IPv6 and its extension headers.
		{"ipv6", []datapath.Entry{allowE(3001, pIn, pTCP, 80, 16)}, pIn, v6, retAllow, datapath.ReasonForwarded},
		{"ipv6 hop-by-hop", []datapath.Entry{allowE(3001, pIn, pTCP, 80, 16)}, pIn, v6ext(ext6{Type: nhHop}), retAllow, datapath.ReasonForwarded},
		{"ipv6 hop routing dest", []datapath.Entry{allowE(3001, pIn, pTCP, 80, 16)}, pIn, v6ext(ext6{Type: nhHop}, ext6{Type: nhRouting, Units: 2}, ext6{Type: nhDest, Units: 1}), retAllow, datapath.ReasonForwarded},
		{"ipv6 auth header", []datapath.Entry{allowE(3001, pIn, pTCP, 80, 16)}, pIn, v6ext(ext6{Type: nhAuth, Units: 4}), retAllow, datapath.ReasonForwarded},
		{"ipv6 ext header port other", []datapath.Entry{allowE(3001, pIn, pTCP, 81, 16)}, pIn, v6ext(ext6{Type: nhHop}, ext6{Type: nhDest}), retDrop, datapath.ReasonDropDefault},
		{"ipv6 six ext headers", []datapath.Entry{allowE(3001, pIn, pTCP, 80, 16)}, pIn,
			v6ext(ext6{Type: nhHop}, ext6{Type: nhDest}, ext6{Type: nhRouting}, ext6{Type: nhDest}, ext6{Type: nhAuth, Units: 1}, ext6{Type: nhDest}), retAllow, datapath.ReasonForwarded},
		{"ipv6 seven ext headers invalid", []datapath.Entry{allowE(3001, pIn, pTCP, 80, 16)}, pIn,
			v6ext(ext6{Type: nhHop}, ext6{Type: nhDest}, ext6{Type: nhRouting}, ext6{Type: nhDest}, ext6{Type: nhAuth, Units: 1}, ext6{Type: nhDest}, ext6{Type: nhDest}), retDrop, datapath.ReasonDropInvalid},
		{"ipv6 no next header", []datapath.Entry{allowE(3001, pIn, pAny, 0, 0)}, pIn, noNext.bytes(), retAllow, datapath.ReasonForwarded},
		{"ipv6 egress", []datapath.Entry{allowE(3002, pOut, pUDP, 53, 16)}, pOut, udpPkt(podV6, "fd00:1::7", 1, 53).bytes(), retAllow, datapath.ReasonForwarded},

		// ICMP: the type is the port.
		{"icmp echo request", []datapath.Entry{allowE(1001, pIn, datapath.ProtoICMP, 8, 16)}, pIn, icmpPkt("10.0.1.1", podV4, 8, 1).bytes(), retAllow, datapath.ReasonForwarded},
		{"icmp other type", []datapath.Entry{allowE(1001, pIn, datapath.ProtoICMP, 8, 16)}, pIn, icmpPkt("10.0.1.1", podV4, 13, 1).bytes(), retDrop, datapath.ReasonDropDefault},
		{"icmp entry not icmpv6", []datapath.Entry{allowE(3001, pIn, datapath.ProtoICMP, 128, 16)}, pIn, icmpPkt("fd00:1::5", podV6, 128, 1).bytes(), retDrop, datapath.ReasonDropDefault},
		{"icmpv6 echo request", []datapath.Entry{allowE(3001, pIn, datapath.ProtoICMPv6, 128, 16)}, pIn, icmpPkt("fd00:1::5", podV6, 128, 1).bytes(), retAllow, datapath.ReasonForwarded},
		{"icmpv6 type range", []datapath.Entry{allowE(3001, pIn, datapath.ProtoICMPv6, 128, 15)}, pIn, icmpPkt("fd00:1::5", podV6, 129, 1).bytes(), retAllow, datapath.ReasonForwarded},
		{"icmpv6 other type", []datapath.Entry{allowE(3001, pIn, datapath.ProtoICMPv6, 128, 16)}, pIn, icmpPkt("fd00:1::5", podV6, 135, 1).bytes(), retDrop, datapath.ReasonDropDefault},

		// Fragments: the first carries ports; later ones match with port 0.
		{"first fragment", []datapath.Entry{tcp80}, pIn, frag(tcpPkt("10.0.1.1", podV4, 1, 80), true, 0), retAllow, datapath.ReasonForwarded},
		{"first fragment other port", []datapath.Entry{tcp80}, pIn, frag(tcpPkt("10.0.1.1", podV4, 1, 81), true, 0), retDrop, datapath.ReasonDropDefault},
		{"later fragment exact port entry", []datapath.Entry{tcp80}, pIn, frag(tcpPkt("10.0.1.1", podV4, 1, 80), true, 100), retDrop, datapath.ReasonDropFragment},
		{"last fragment exact port entry", []datapath.Entry{tcp80}, pIn, frag(tcpPkt("10.0.1.1", podV4, 1, 80), false, 100), retDrop, datapath.ReasonDropFragment},
		{"later fragment range entry", []datapath.Entry{allowE(1001, pIn, pTCP, 1024, 6)}, pIn, frag(tcpPkt("10.0.1.1", podV4, 1, 1024), true, 100), retDrop, datapath.ReasonDropFragment},
		{"later fragment port wildcard", []datapath.Entry{allowE(1001, pIn, pUDP, 0, 0)}, pIn, frag(udpPkt("10.0.1.1", podV4, 1, 53), true, 100), retAllow, datapath.ReasonForwarded},
		{"later fragment any protocol", []datapath.Entry{allowE(1001, pIn, pAny, 0, 0)}, pIn, frag(udpPkt("10.0.1.1", podV4, 1, 53), false, 100), retAllow, datapath.ReasonForwarded},
		{"later fragment wildcard identity", []datapath.Entry{allowE(0, pIn, pUDP, 0, 0)}, pIn, frag(udpPkt("10.0.1.1", podV4, 1, 53), true, 100), retAllow, datapath.ReasonForwarded},
		{"later fragment explicit deny", []datapath.Entry{withVerdict(allowE(1001, pIn, pUDP, 0, 0), datapath.Deny, 1, 3)}, pIn, frag(udpPkt("10.0.1.1", podV4, 1, 53), true, 100), retDrop, datapath.ReasonDropFragment},
		{"ipv6 first fragment", []datapath.Entry{allowE(3001, pIn, pTCP, 80, 16)}, pIn, frag(tcpPkt("fd00:1::5", podV6, 1, 80), true, 0), retAllow, datapath.ReasonForwarded},
		{"ipv6 atomic fragment", []datapath.Entry{allowE(3001, pIn, pTCP, 80, 16)}, pIn, frag(tcpPkt("fd00:1::5", podV6, 1, 80), false, 0), retAllow, datapath.ReasonForwarded},
		{"ipv6 later fragment", []datapath.Entry{allowE(3001, pIn, pTCP, 80, 16)}, pIn, frag(tcpPkt("fd00:1::5", podV6, 1, 80), true, 10), retDrop, datapath.ReasonDropFragment},
		{"ipv6 later fragment port wildcard", []datapath.Entry{allowE(3001, pIn, pTCP, 0, 0)}, pIn, frag(tcpPkt("fd00:1::5", podV6, 1, 80), false, 10), retAllow, datapath.ReasonForwarded},

		// Malformed, truncated and non-IP frames.
		{"arp passes", nil, pIn, arpFrame(), retAllow, datapath.ReasonPassNonIP},
		{"arp passes egress", nil, pOut, arpFrame(), retAllow, datapath.ReasonPassNonIP},
		{"unknown ethertype passes", nil, pIn, ethernet(0x88cc), retAllow, datapath.ReasonPassNonIP},
		{"ethernet only ipv4", []datapath.Entry{allowE(0, pIn, pAny, 0, 0)}, pIn, ethernet(etherIPv4), retDrop, datapath.ReasonDropInvalid},
		{"truncated ipv4 header", []datapath.Entry{allowE(0, pIn, pAny, 0, 0)}, pIn, v4[:14+19], retDrop, datapath.ReasonDropInvalid},
		{"truncated tcp ports", []datapath.Entry{allowE(0, pIn, pAny, 0, 0)}, pIn, v4[:14+20+3], retDrop, datapath.ReasonDropInvalid},
		{"ports only is enough", []datapath.Entry{tcp80}, pIn, v4[:14+20+4], retAllow, datapath.ReasonForwarded},
		{"truncated icmp", []datapath.Entry{allowE(0, pIn, pAny, 0, 0)}, pIn, icmpPkt("10.0.1.1", podV4, 8, 1).bytes()[:14+20+7], retDrop, datapath.ReasonDropInvalid},
		{"ipv4 options beyond the frame", []datapath.Entry{allowE(0, pIn, pAny, 0, 0)}, pIn, longIHL.bytes()[:14+28+3], retDrop, datapath.ReasonDropInvalid},
		{"ipv4 options", []datapath.Entry{tcp80}, pIn, longIHL.bytes(), retAllow, datapath.ReasonForwarded},
		{"ipv4 bad version", []datapath.Entry{allowE(0, pIn, pAny, 0, 0)}, pIn, badVersion, retDrop, datapath.ReasonDropInvalid},
		{"ipv4 ihl under 5", []datapath.Entry{allowE(0, pIn, pAny, 0, 0)}, pIn, shortIHL, retDrop, datapath.ReasonDropInvalid},
		{"ipv6 bad version", []datapath.Entry{allowE(0, pIn, pAny, 0, 0)}, pIn, badV6Version, retDrop, datapath.ReasonDropInvalid},
		{"ipv4 in ipv6 ethertype", []datapath.Entry{allowE(0, pIn, pAny, 0, 0)}, pIn, wrongEther.bytes(), retDrop, datapath.ReasonDropInvalid},
		{"truncated ipv6 header", []datapath.Entry{allowE(0, pIn, pAny, 0, 0)}, pIn, v6[:14+39], retDrop, datapath.ReasonDropInvalid},
		{"truncated ipv6 ext header", []datapath.Entry{allowE(0, pIn, pAny, 0, 0)}, pIn, v6ext(ext6{Type: nhHop})[:14+40+7], retDrop, datapath.ReasonDropInvalid},
		{"ipv6 ext header beyond the frame", []datapath.Entry{allowE(0, pIn, pAny, 0, 0)}, pIn, v6ext(ext6{Type: nhHop, Units: 3})[:14+40+30], retDrop, datapath.ReasonDropInvalid},
		{"later fragment without payload", []datapath.Entry{allowE(1001, pIn, pTCP, 0, 0)}, pIn, frag(tcpPkt("10.0.1.1", podV4, 1, 80), false, 100)[:14+20], retAllow, datapath.ReasonForwarded},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ep := uint32(100 + i)
			syncEP(t, d, ep, c.entries...)
			before := stats(t, d)
			got := runProg(t, d, ep, c.dir, c.frame)
			after := stats(t, d)
			if got != c.want {
				t.Errorf("program returned %#x %s, want %#x %s", got, retName(got), c.want, retName(c.want))
			}
			if diff := cmp.Diff(map[datapath.Reason]uint64{c.reason: 1}, countersDelta(before, after)); diff != "" {
				t.Errorf("counter changes (-want +got):\n%s", diff)
			}
			checkDirections(t, before, after, c.dir, map[datapath.Reason]uint64{c.reason: 1})
			// The Go model agrees for every parseable IP packet.
			f, res := parseFrame(c.frame)
			if res != parseIP {
				return
			}
			e, ok := datapath.Lookup(c.entries, modelIdentity(testIdentities, c.dir, f), c.dir, f.Proto, f.DstPort)
			model := ok && e.Verdict != datapath.Deny
			if f.Frag != fragLater && fragNeeded(f.Proto, f.DstPort, f.ICMPCode) {
				model = true
			}
			if model != (got == retAllow) {
				t.Errorf("datapath.Lookup says allow=%v (%+v, found %v), program returned %s", model, e, ok, retName(got))
			}
		})
	}
}

// modelIdentity is the remote identity the program finds for a parsed flow: the exact address,
// else the longest prefix, else world (2).
func modelIdentity(ids map[netip.Prefix]uint32, dir datapath.Direction, f parsedFlow) uint32 {
	addr := f.Src
	if dir == datapath.Egress {
		addr = f.Dst
	}
	addr = addr.Unmap()
	best, id := -1, uint32(2)
	for p, pid := range ids {
		if p.Contains(addr) && p.Bits() > best {
			best, id = p.Bits(), pid
		}
	}
	return id
}

// TestConntrack checks that replies and established flows pass without a policy lookup, and
// stop passing after FlushConntrack or with Spec.DisableConntrack.
func TestConntrack(t *testing.T) {
	const ep = 1
	entries := []datapath.Entry{
		allowE(1001, pOut, pTCP, 80, 16),
		allowE(3001, pOut, pUDP, 53, 16),
		allowE(1001, pOut, datapath.ProtoICMP, 8, 16),
		allowE(3001, pOut, datapath.ProtoICMPv6, 128, 16),
		withVerdict(allowE(0, pIn, pAny, 0, 0), datapath.Deny, 1, 99),
	}
	type step struct {
		dir    datapath.Direction
		pkt    packet
		want   uint32
		reason datapath.Reason
	}
	req := tcpPkt(podV4, "10.0.1.1", 40000, 80)
	req6 := udpPkt(podV6, "fd00:1::5", 40000, 53)
	other := req.reply()
	other.DstPort = 40001
	flows := []struct {
		name  string
		steps []step
	}{
		{"tcp reply", []step{
			{pOut, req, retAllow, datapath.ReasonForwarded},
			{pIn, req.reply(), retAllow, datapath.ReasonForwardedCT},
			{pOut, req, retAllow, datapath.ReasonForwardedCT},
			{pIn, other, retDrop, datapath.ReasonDropDeny},
		}},
		{"udp ipv6 reply", []step{
			{pOut, req6, retAllow, datapath.ReasonForwarded},
			{pIn, req6.reply(), retAllow, datapath.ReasonForwardedCT},
		}},
		{"denied request tracks nothing", []step{
			{pOut, tcpPkt(podV4, "10.0.1.1", 40000, 81), retDrop, datapath.ReasonDropDefault},
			{pIn, tcpPkt(podV4, "10.0.1.1", 40000, 81).reply(), retDrop, datapath.ReasonDropDeny},
		}},
		{"reply on another endpoint", []step{
			{pOut, req, retAllow, datapath.ReasonForwardedCT},
		}},
	}
	icmpFlows := []struct {
		name  string
		steps []step
	}{
		{"icmp echo reply", []step{
			{pOut, icmpPkt(podV4, "10.0.1.1", 8, 77), retAllow, datapath.ReasonForwarded},
			{pIn, icmpPkt("10.0.1.1", podV4, 0, 77), retAllow, datapath.ReasonForwardedCT},
		}},
		{"icmpv6 echo reply", []step{
			{pOut, icmpPkt(podV6, "fd00:1::5", 128, 77), retAllow, datapath.ReasonForwarded},
			{pIn, icmpPkt("fd00:1::5", podV6, 129, 77), retAllow, datapath.ReasonForwardedCT},
		}},
		// Tracking an echo request lets its reply through, not every ICMP message that carries
		// the same 16 bits where an echo has its identifier.
		{"icmp other types with a tracked identifier", []step{
			{pOut, icmpPkt(podV4, "10.0.1.1", 13, 77), retDrop, datapath.ReasonDropDefault}, // timestamp: not allowed
			{pIn, icmpPkt("10.0.1.1", podV4, 8, 77), retDrop, datapath.ReasonDropDeny},      // an echo request to the endpoint
			{pIn, icmpPkt("10.0.1.1", podV4, 5, 77), retDrop, datapath.ReasonDropDeny},      // a redirect
			{pOut, icmpPkt(podV4, "10.0.1.1", 0, 77), retDrop, datapath.ReasonDropDefault},  // an echo reply the endpoint sends
		}},
		{"icmpv6 other types with a tracked identifier", []step{
			{pIn, icmpPkt("fd00:1::5", podV6, 128, 77), retDrop, datapath.ReasonDropDeny},
			{pOut, icmpPkt(podV6, "fd00:1::5", 135, 77), retDrop, datapath.ReasonDropDefault},
		}},
	}
	runSteps := func(t *testing.T, d *datapath.Datapath, ep uint32, steps []step) {
		t.Helper()
		for i, s := range steps {
			before := stats(t, d)
			got := runProg(t, d, ep, s.dir, s.pkt.bytes())
			if got != s.want {
				t.Errorf("step %d (%s %v:%d > %v:%d): program returned %s, want %s", i, s.dir, s.pkt.Src, s.pkt.SrcPort, s.pkt.Dst, s.pkt.DstPort, retName(got), retName(s.want))
			}
			after := stats(t, d)
			if diff := cmp.Diff(map[datapath.Reason]uint64{s.reason: 1}, countersDelta(before, after)); diff != "" {
				t.Errorf("step %d: counter changes (-want +got):\n%s", i, diff)
			}
			checkDirections(t, before, after, s.dir, map[datapath.Reason]uint64{s.reason: 1})
		}
	}

	t.Run("enabled", func(t *testing.T) {
		d := loadTest(t, testSpec())
		syncEP(t, d, ep, entries...)
		for _, f := range flows[:3] {
			t.Run(f.name, func(t *testing.T) { runSteps(t, d, ep, f.steps) })
		}
		for _, f := range icmpFlows {
			t.Run(f.name, func(t *testing.T) { runSteps(t, d, ep, f.steps) })
		}
		// Another endpoint's conntrack entries are not this endpoint's.
		syncEP(t, d, ep+1, entries...)
		runSteps(t, d, ep+1, []step{
			{pIn, req.reply(), retDrop, datapath.ReasonDropDeny},
			{pOut, req, retAllow, datapath.ReasonForwarded},
		})

		n, err := d.FlushConntrack(ep)
		if err != nil {
			t.Fatalf("FlushConntrack(%d): %v", ep, err)
		}
		if n < 2 {
			t.Errorf("FlushConntrack(%d) removed %d flows, want at least 2", ep, n)
		}
		runSteps(t, d, ep, []step{{pIn, req.reply(), retDrop, datapath.ReasonDropDeny}})
		// The other endpoint's flow survived the flush of ep.
		runSteps(t, d, ep+1, []step{{pIn, req.reply(), retAllow, datapath.ReasonForwardedCT}})
		n, err = d.FlushConntrack(0)
		if err != nil {
			t.Fatalf("FlushConntrack(0): %v", err)
		}
		if n != 1 {
			t.Errorf("FlushConntrack(0) removed %d flows, want 1", n)
		}
		runSteps(t, d, ep+1, []step{{pIn, req.reply(), retDrop, datapath.ReasonDropDeny}})
		if n, err := d.FlushConntrack(0); err != nil || n != 0 {
			t.Errorf("FlushConntrack(0) on an empty table = %d, %v; want 0, nil", n, err)
		}
	})

	t.Run("disabled", func(t *testing.T) {
		spec := testSpec()
		spec.DisableConntrack = true
		d := loadTest(t, spec)
		syncEP(t, d, ep, entries...)
		runSteps(t, d, ep, []step{
			{pOut, req, retAllow, datapath.ReasonForwarded},
			{pIn, req.reply(), retDrop, datapath.ReasonDropDeny},
			{pOut, req, retAllow, datapath.ReasonForwarded},
			{pOut, req6, retAllow, datapath.ReasonForwarded},
			{pIn, req6.reply(), retDrop, datapath.ReasonDropDeny},
		})
		if n, err := d.FlushConntrack(0); err != nil || n != 0 {
			t.Errorf("FlushConntrack(0) without conntrack = %d, %v; want 0, nil", n, err)
		}
	})

	t.Run("policy change keeps tracked flows until flushed", func(t *testing.T) {
		d := loadTest(t, testSpec())
		syncEP(t, d, ep, entries...)
		runSteps(t, d, ep, []step{{pOut, req, retAllow, datapath.ReasonForwarded}})
		syncEP(t, d, ep, entries[1:]...) // the tcp allow is gone
		runSteps(t, d, ep, []step{{pOut, req, retAllow, datapath.ReasonForwardedCT}})
		if _, err := d.FlushConntrack(ep); err != nil {
			t.Fatal(err)
		}
		runSteps(t, d, ep, []step{{pOut, req, retDrop, datapath.ReasonDropDefault}})
	})
}

// readEvents reads n events, waiting at most a second for them, then whatever else arrives
// within extra.
func readEvents(t *testing.T, r *datapath.EventReader, n int, extra time.Duration) []datapath.Event {
	t.Helper()
	var evs []datapath.Event
	r.SetDeadline(time.Now().Add(time.Second))
	for {
		if len(evs) == n {
			r.SetDeadline(time.Now().Add(extra))
		}
		ev, err := r.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return evs
		}
		if err != nil {
			t.Fatalf("read event: %v", err)
		}
		evs = append(evs, ev)
	}
}

func openEvents(t *testing.T, d *datapath.Datapath) *datapath.EventReader {
	t.Helper()
	r, err := d.Events()
	if err != nil {
		t.Fatalf("Events: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("close event reader: %v", err)
		}
	})
	return r
}

func TestEvents(t *testing.T) {
	const ep = 42
	entries := []datapath.Entry{
		withVerdict(allowE(1001, pIn, pTCP, 80, 16), datapath.Audit, 1, 77),
		withVerdict(allowE(1001, pIn, pTCP, 81, 16), datapath.Deny, 1, 88),
		withVerdict(allowE(0, pIn, pUDP, 1000, 8), datapath.Deny, 1, 99), // 768-1023
		withVerdict(allowE(3001, pOut, pTCP, 443, 16), datapath.Allow, 1, 55),
		withVerdict(allowE(1001, pIn, datapath.ProtoICMP, 0, 0), datapath.Audit, 1, 66),
	}
	a := netip.MustParseAddr
	later := udpPkt("10.1.2.9", podV4, 1, 1000)
	later.MoreFrags, later.FragOffset = true, 64
	cases := []struct {
		name string
		dir  datapath.Direction
		pkt  packet
		want []datapath.Event // with ReportNewFlows
	}{
		{"audit", pIn, tcpPkt("10.0.1.1", podV4, 40000, 80), []datapath.Event{{
			Endpoint: ep, Remote: 1001, Src: a("10.0.1.1"), Dst: a(podV4), SrcPort: 40000, DstPort: 80, Protocol: pTCP,
			Direction: pIn, Verdict: datapath.Audit, Audit: true, NewFlow: true, Cookie: 77, Match: datapath.MatchL3L4, Reason: datapath.ReasonAudited,
		}}},
		{"explicit deny", pIn, tcpPkt("10.0.1.1", podV4, 40001, 81), []datapath.Event{{
			Endpoint: ep, Remote: 1001, Src: a("10.0.1.1"), Dst: a(podV4), SrcPort: 40001, DstPort: 81, Protocol: pTCP,
			Direction: pIn, Verdict: datapath.Deny, Cookie: 88, Match: datapath.MatchL3L4, Reason: datapath.ReasonDropDeny,
		}}},
		{"default deny", pIn, tcpPkt("10.0.1.1", podV4, 40002, 82), []datapath.Event{{
			Endpoint: ep, Remote: 1001, Src: a("10.0.1.1"), Dst: a(podV4), SrcPort: 40002, DstPort: 82, Protocol: pTCP,
			Direction: pIn, Verdict: datapath.Deny, Reason: datapath.ReasonDropDefault,
		}}},
		{"wildcard deny of a cidr identity", pIn, udpPkt("10.1.2.9", podV4, 5, 1000), []datapath.Event{{
			Endpoint: ep, Remote: 2002, Src: a("10.1.2.9"), Dst: a(podV4), SrcPort: 5, DstPort: 1000, Protocol: pUDP,
			Direction: pIn, Verdict: datapath.Deny, Cookie: 99, Match: datapath.MatchL4Only, Reason: datapath.ReasonDropDeny,
		}}},
		{"later fragment", pIn, later, []datapath.Event{{
			Endpoint: ep, Remote: 2002, Src: a("10.1.2.9"), Dst: a(podV4), Protocol: pUDP,
			Direction: pIn, Verdict: datapath.Deny, Fragment: true, Reason: datapath.ReasonDropFragment,
		}}},
		{"ipv6 egress allowed new flow", pOut, tcpPkt(podV6, "fd00:1::5", 40003, 443), []datapath.Event{{
			Endpoint: ep, Remote: 3001, Src: a(podV6), Dst: a("fd00:1::5"), SrcPort: 40003, DstPort: 443, Protocol: pTCP,
			Direction: pOut, Verdict: datapath.Allow, NewFlow: true, Cookie: 55, Match: datapath.MatchL3L4, Reason: datapath.ReasonForwarded,
		}}},
		{"established flow reports nothing", pOut, tcpPkt(podV6, "fd00:1::5", 40003, 443), nil},
		{"reply reports nothing", pIn, tcpPkt(podV6, "fd00:1::5", 40003, 443).reply(), nil},
		{"ipv6 egress default deny to world", pOut, tcpPkt(podV6, "2001:db8::9", 40004, 443), []datapath.Event{{
			Endpoint: ep, Remote: 2, Src: a(podV6), Dst: a("2001:db8::9"), SrcPort: 40004, DstPort: 443, Protocol: pTCP,
			Direction: pOut, Verdict: datapath.Deny, Reason: datapath.ReasonDropDefault,
		}}},
		{"icmp audit", pIn, icmpPkt("10.0.1.1", podV4, 8, 1234), []datapath.Event{{
			Endpoint: ep, Remote: 1001, Src: a("10.0.1.1"), Dst: a(podV4), SrcPort: 1234, DstPort: 8, Protocol: datapath.ProtoICMP,
			Direction: pIn, Verdict: datapath.Audit, Audit: true, NewFlow: true, Cookie: 66, Match: datapath.MatchL3Proto, Reason: datapath.ReasonAudited,
		}}},
		{"non-ip reports nothing", pIn, packet{}, nil},
	}
	for _, newFlows := range []bool{false, true} {
		name := "denied and audited"
		if newFlows {
			name = "with new flows"
		}
		t.Run(name, func(t *testing.T) {
			spec := testSpec()
			spec.ReportNewFlows = newFlows
			d := loadTest(t, spec)
			syncEP(t, d, ep, entries...)
			r := openEvents(t, d)
			for _, c := range cases {
				frame := c.pkt.bytes
				if !c.pkt.Src.IsValid() {
					frame = arpFrame
				}
				start := time.Now()
				runProg(t, d, ep, c.dir, frame())
				want := c.want
				if !newFlows {
					want = slices.DeleteFunc(slices.Clone(want), func(e datapath.Event) bool { return e.Reason == datapath.ReasonForwarded })
				}
				got := readEvents(t, r, len(want), 20*time.Millisecond)
				if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(datapath.Event{}, "Time"), cmpopts.EquateEmpty(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
					t.Errorf("%s: events (-want +got):\n%s", c.name, diff)
				}
				for _, ev := range got {
					if ev.Time <= 0 || ev.Time > time.Duration(monotonicNow())+time.Second || time.Duration(monotonicNow())-ev.Time > time.Since(start)+time.Second {
						t.Errorf("%s: event time %v is not the packet's (now %v)", c.name, ev.Time, time.Duration(monotonicNow()))
					}
				}
			}
			s := stats(t, d)
			if s.LostRateLimit != 0 || s.LostRingbuf != 0 {
				t.Errorf("lost events: rate limit %d, ring buffer %d; want none", s.LostRateLimit, s.LostRingbuf)
			}
		})
	}
}

func monotonicNow() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano()
}

// pinCPU keeps the calling goroutine on one CPU for the rest of the test, so that the per-CPU
// rate limiter sees every packet. The thread stays locked: it exits with the test's goroutine
// instead of going back to the scheduler pinned to one CPU.
func pinCPU(t *testing.T) {
	t.Helper()
	runtime.LockOSThread()
	var cpus unix.CPUSet
	if err := unix.SchedGetaffinity(0, &cpus); err != nil {
		t.Fatalf("sched_getaffinity: %v", err)
	}
	for i := range 1024 {
		if cpus.IsSet(i) {
			var one unix.CPUSet
			one.Set(i)
			if err := unix.SchedSetaffinity(0, &one); err != nil {
				t.Fatalf("sched_setaffinity: %v", err)
			}
			return
		}
	}
	t.Fatalf("no CPU in the affinity mask")
}

// TestEventMatch checks what events tell about the deciding entry: its match type (as Hubble's
// policy_match_type), its cookie, and the ICMP code, for every entry shape and lookup path.
func TestEventMatch(t *testing.T) {
	spec := testSpec()
	spec.ReportNewFlows, spec.DisableConntrack = true, true
	d := loadTest(t, spec)
	r := openEvents(t, d)
	icmpCode := func(p packet, code uint8) packet {
		p.ICMPCode = code
		return p
	}
	cookie := func(e datapath.Entry, c uint32) datapath.Entry {
		e.Cookie = c
		return e
	}
	cases := []struct {
		name    string
		entries []datapath.Entry
		dir     datapath.Direction
		pkt     packet
		verdict datapath.Verdict
		match   datapath.MatchType
		cookie  uint32
	}{
		{"identity and port", []datapath.Entry{cookie(allowE(1001, pIn, pTCP, 80, 16), 1)}, pIn, tcpPkt("10.0.1.1", podV4, 1, 80), datapath.Allow, datapath.MatchL3L4, 1},
		{"identity and expanded range", []datapath.Entry{cookie(allowE(1001, pIn, pTCP, 8080, 13), 2)}, pIn, tcpPkt("10.0.1.1", podV4, 1, 8083), datapath.Allow, datapath.MatchL3L4, 2},
		{"identity and prefix range", []datapath.Entry{cookie(allowE(1001, pIn, pTCP, 32768, 1), 3)}, pIn, tcpPkt("10.0.1.1", podV4, 1, 40000), datapath.Allow, datapath.MatchL3L4, 3},
		{"egress identity and port", []datapath.Entry{cookie(allowE(1001, pOut, pTCP, 443, 16), 4)}, pOut, tcpPkt(podV4, "10.0.1.1", 1, 443), datapath.Allow, datapath.MatchL3L4, 4},
		{"any identity and port", []datapath.Entry{cookie(allowE(0, pIn, pTCP, 80, 16), 5)}, pIn, tcpPkt("10.0.1.2", podV4, 1, 80), datapath.Allow, datapath.MatchL4Only, 5},
		{"any identity and prefix range", []datapath.Entry{cookie(allowE(0, pIn, pUDP, 32768, 1), 6)}, pIn, udpPkt("10.0.1.2", podV4, 1, 50000), datapath.Allow, datapath.MatchL4Only, 6},
		{"identity and protocol", []datapath.Entry{cookie(allowE(1001, pIn, pUDP, 0, 0), 7)}, pIn, udpPkt("10.0.1.1", podV4, 1, 53), datapath.Allow, datapath.MatchL3Proto, 7},
		{"protocol only", []datapath.Entry{cookie(allowE(0, pIn, datapath.ProtoSCTP, 0, 0), 8)}, pIn, sctpPkt("10.0.1.1", podV4, 1, 9), datapath.Allow, datapath.MatchProtoOnly, 8},
		{"identity only", []datapath.Entry{cookie(allowE(1001, pIn, pAny, 0, 0), 9)}, pIn, udpPkt("10.0.1.1", podV4, 1, 53), datapath.Allow, datapath.MatchL3Only, 9},
		{"all", []datapath.Entry{cookie(allowE(0, pIn, pAny, 0, 0), 10)}, pIn, udpPkt("192.0.2.1", podV4, 1, 53), datapath.Allow, datapath.MatchAll, 10},
		{"default deny", []datapath.Entry{cookie(allowE(1001, pIn, pTCP, 80, 16), 11)}, pIn, tcpPkt("10.0.1.1", podV4, 1, 81), datapath.Deny, datapath.MatchNone, 0},
		{"wildcard deny merged into the identity's port", []datapath.Entry{
			cookie(allowE(1001, pIn, pTCP, 80, 16), 12), withVerdict(allowE(0, pIn, pTCP, 0, 0), datapath.Deny, 2, 13),
		}, pIn, tcpPkt("10.0.1.1", podV4, 1, 80), datapath.Deny, datapath.MatchProtoOnly, 13},
		{"identity's deny over the wildcard's port", []datapath.Entry{
			cookie(allowE(0, pIn, pTCP, 80, 16), 14), withVerdict(allowE(1001, pIn, pTCP, 0, 0), datapath.Deny, 2, 15),
		}, pIn, tcpPkt("10.0.1.1", podV4, 1, 80), datapath.Deny, datapath.MatchL3Proto, 15},
		{"icmp type and code", []datapath.Entry{withVerdict(allowE(1001, pIn, datapath.ProtoICMP, 3, 16), datapath.Deny, 1, 16)},
			pIn, icmpCode(icmpPkt("10.0.1.1", podV4, 3, 0), 1), datapath.Deny, datapath.MatchL3L4, 16},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ep := uint32(200 + i)
			syncEP(t, d, ep, c.entries...)
			runProg(t, d, ep, c.dir, c.pkt.bytes())
			evs := readEvents(t, r, 1, 10*time.Millisecond)
			if len(evs) != 1 {
				t.Fatalf("got %d events, want 1: %+v", len(evs), evs)
			}
			ev := evs[0]
			if ev.Verdict != c.verdict || ev.Match != c.match || ev.Cookie != c.cookie || ev.ICMPCode != c.pkt.ICMPCode {
				t.Errorf("event verdict %s, match %s, cookie %d, icmp code %d; want %s, %s, %d, %d",
					ev.Verdict, ev.Match, ev.Cookie, ev.ICMPCode, c.verdict, c.match, c.cookie, c.pkt.ICMPCode)
			}
			if len(c.entries) == 1 && c.match != datapath.MatchNone && c.entries[0].MatchType() != c.match {
				t.Errorf("Entry.MatchType() = %s, want %s", c.entries[0].MatchType(), c.match)
			}
		})
	}
}

func TestEventRateLimit(t *testing.T) {
	spec := testSpec()
	spec.EventRate, spec.EventBurst = 1, 2
	d := loadTest(t, spec)
	const ep = 5
	syncEP(t, d, ep, withVerdict(allowE(1001, pIn, pTCP, 0, 0), datapath.Deny, 1, 12))
	r := openEvents(t, d)
	pinCPU(t)
	for i := range 10 {
		if got := runProg(t, d, ep, pIn, tcpPkt("10.0.1.1", podV4, uint16(1000+i), 80).bytes()); got != retDrop {
			t.Fatalf("packet %d: program returned %s, want drop", i, retName(got))
		}
	}
	evs := readEvents(t, r, 2, 100*time.Millisecond)
	if len(evs) != 2 {
		t.Errorf("got %d events, want 2 (the burst)", len(evs))
	}
	for i, ev := range evs {
		if ev.SrcPort != uint16(1000+i) || ev.Cookie != 12 || ev.Reason != datapath.ReasonDropDeny {
			t.Errorf("event %d = %+v, want source port %d, cookie 12, drop-deny", i, ev, 1000+i)
		}
	}
	s := stats(t, d)
	if s.LostRateLimit != 8 || s.LostRingbuf != 0 {
		t.Errorf("lost events: rate limit %d, ring buffer %d; want 8 and 0", s.LostRateLimit, s.LostRingbuf)
	}
	if s.Packets[datapath.ReasonDropDeny] != 10 {
		t.Errorf("drop-deny counter = %d, want 10", s.Packets[datapath.ReasonDropDeny])
	}
}

func TestEventRingbufFull(t *testing.T) {
	spec := testSpec()
	spec.EventsBytes = os.Getpagesize()
	spec.EventRate, spec.EventBurst = 1000000, 1000000
	d := loadTest(t, spec)
	const ep = 6
	syncEP(t, d, ep)
	const n = 200 // more than a page of events
	for i := range n {
		runProg(t, d, ep, pIn, tcpPkt("10.0.1.1", podV4, uint16(i), 80).bytes())
	}
	r := openEvents(t, d)
	got := len(readEvents(t, r, 0, 50*time.Millisecond))
	s := stats(t, d)
	if got == 0 || s.LostRingbuf == 0 || uint64(got)+s.LostRingbuf != n {
		t.Errorf("read %d events, lost %d to a full ring buffer; want both non-zero, summing to %d", got, s.LostRingbuf, n)
	}
}

func TestStatsCount(t *testing.T) {
	d := loadTest(t, testSpec())
	const ep = 9
	syncEP(t, d, ep, allowE(1001, pIn, pTCP, 80, 16), withVerdict(allowE(1001, pIn, pTCP, 81, 16), datapath.Deny, 1, 0),
		withVerdict(allowE(1001, pIn, pTCP, 82, 16), datapath.Audit, 1, 0))
	badIPv6 := tcpPkt("fd00:1::5", podV6, 1, 80).bytes()
	badIPv6[14] = 0x40 // version 4
	frames := [][]byte{
		tcpPkt("10.0.1.1", podV4, 1, 80).bytes(), tcpPkt("10.0.1.1", podV4, 1, 80).bytes(), // new, then tracked
		tcpPkt("10.0.1.1", podV4, 2, 81).bytes(), tcpPkt("10.0.1.1", podV4, 3, 81).bytes(),
		tcpPkt("10.0.1.1", podV4, 4, 82).bytes(),
		tcpPkt("10.0.1.1", podV4, 5, 83).bytes(), arpFrame(), arpFrame(), badIPv6,
	}
	for _, f := range frames {
		runProg(t, d, ep, pIn, f)
	}
	// Egress: a reply of the tracked ingress flow, a default deny, a non-IP frame.
	for _, f := range [][]byte{tcpPkt(podV4, "10.0.1.1", 80, 1).bytes(), tcpPkt(podV4, "10.0.1.1", 1, 443).bytes(), arpFrame()} {
		runProg(t, d, ep, pOut, f)
	}
	wantIn := map[datapath.Reason]uint64{
		datapath.ReasonForwarded: 1, datapath.ReasonForwardedCT: 1, datapath.ReasonDropDeny: 2, datapath.ReasonAudited: 1,
		datapath.ReasonDropDefault: 1, datapath.ReasonPassNonIP: 2, datapath.ReasonDropInvalid: 1, datapath.ReasonDropFragment: 0,
	}
	wantOut := map[datapath.Reason]uint64{
		datapath.ReasonForwarded: 0, datapath.ReasonForwardedCT: 1, datapath.ReasonDropDeny: 0, datapath.ReasonAudited: 0,
		datapath.ReasonDropDefault: 1, datapath.ReasonPassNonIP: 1, datapath.ReasonDropInvalid: 0, datapath.ReasonDropFragment: 0,
	}
	want := map[datapath.Reason]uint64{}
	for r := range wantIn {
		want[r] = wantIn[r] + wantOut[r]
	}
	s := stats(t, d)
	if diff := cmp.Diff(want, s.Packets); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantIn, s.Ingress); diff != "" {
		t.Errorf("ingress counters (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantOut, s.Egress); diff != "" {
		t.Errorf("egress counters (-want +got):\n%s", diff)
	}
}

func TestSyncEndpointErrors(t *testing.T) {
	spec := testSpec()
	spec.MaxEntriesPerEndpoint = 5
	spec.PolicyEntries = 6
	d := loadTest(t, spec)
	const ep = 3
	// exactPorts is n exact-port allows for identity 1001: n exact-map elements, nothing else.
	exactPorts := func(first uint16, n int) []datapath.Entry {
		var es []datapath.Entry
		for i := range n {
			es = append(es, allowE(1001, pIn, pTCP, first+uint16(i), 16))
		}
		return es
	}
	good := exactPorts(80, 2)
	st, err := d.SyncEndpoint(ep, good)
	if err != nil {
		t.Fatalf("SyncEndpoint: %v", err)
	}
	if st.Entries != 2 || st.Written != 2 || st.Deleted != 0 {
		t.Errorf("SyncEndpoint stats = %+v, want 2 entries, 2 written", st)
	}
	check := func(t *testing.T) {
		t.Helper()
		if got := runProg(t, d, ep, pIn, tcpPkt("10.0.1.1", podV4, 1, 80).bytes()); got != retAllow {
			t.Errorf("the earlier policy's allow now returns %s", retName(got))
		}
		if got := runProg(t, d, ep, pIn, tcpPkt("10.0.1.1", podV4, 1, 82).bytes()); got != retDrop {
			t.Errorf("the earlier policy's default deny now returns %s", retName(got))
		}
		if got := runProg(t, d, ep, pIn, udpPkt("10.0.1.2", podV4, 1, 53).bytes()); got != retDrop {
			t.Errorf("another identity now returns %s", retName(got))
		}
		if diff := cmp.Diff(good, d.Entries(ep)); diff != "" {
			t.Errorf("Entries (-want +got):\n%s", diff)
		}
	}
	if _, err := d.FlushConntrack(0); err != nil {
		t.Fatal(err)
	}
	allowUDP := allowE(1002, pIn, pUDP, 0, 0)
	bad := []struct {
		name    string
		entries []datapath.Entry
		want    error
	}{
		{"over the endpoint limit", exactPorts(82, 6), datapath.ErrCapacity},
		{"over the endpoint limit with prefixes", append(exactPorts(82, 5), allowUDP), datapath.ErrCapacity}, // 5 exact + the prefix entry
		{"direction", []datapath.Entry{allowUDP, {Identity: 1, Direction: 2, Protocol: pTCP}}, datapath.ErrInvalid},
		{"prefix length", []datapath.Entry{allowUDP, {Identity: 1, Protocol: pTCP, PortPrefixLen: 17}}, datapath.ErrInvalid},
		{"any protocol with a port", []datapath.Entry{allowUDP, {Identity: 1, Protocol: pAny, Port: 80, PortPrefixLen: 16}}, datapath.ErrInvalid},
		{"verdict", []datapath.Entry{allowUDP, {Identity: 1, Protocol: pTCP, Verdict: 3}}, datapath.ErrInvalid},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			st, err := d.SyncEndpoint(ep, c.entries)
			if !errors.Is(err, c.want) {
				t.Fatalf("SyncEndpoint = %+v, %v; want %v", st, err, c.want)
			}
			if st != (datapath.SyncStats{}) {
				t.Errorf("SyncEndpoint stats = %+v on error, want zero", st)
			}
			check(t)
		})
	}
	t.Run("shared maps full", func(t *testing.T) {
		// ep holds 2 of the 6 exact-map elements; 5 more do not fit, 4 do.
		if _, err := d.SyncEndpoint(ep+1, exactPorts(1000, 5)); !errors.Is(err, datapath.ErrCapacity) {
			t.Fatalf("SyncEndpoint over the shared capacity = %v, want ErrCapacity", err)
		}
		if got := runProg(t, d, ep+1, pIn, tcpPkt("10.0.1.1", podV4, 1, 1000).bytes()); got != retDrop {
			t.Errorf("the rejected policy's allow returns %s", retName(got))
		}
		check(t)
		if _, err := d.SyncEndpoint(ep+1, exactPorts(1000, 4)); err != nil {
			t.Fatalf("SyncEndpoint within the shared capacity: %v", err)
		}
		if got := runProg(t, d, ep+1, pIn, tcpPkt("10.0.1.1", podV4, 1, 1003).bytes()); got != retAllow {
			t.Errorf("the accepted policy's allow returns %s", retName(got))
		}
		check(t)
		// Now ep cannot grow, though it is within its own limit.
		if _, err := d.SyncEndpoint(ep, exactPorts(80, 3)); !errors.Is(err, datapath.ErrCapacity) {
			t.Errorf("growing ep over the shared capacity = %v, want ErrCapacity", err)
		}
		check(t)
	})
	t.Run("SetIdentities invalid prefix", func(t *testing.T) {
		err := d.SetIdentities(map[netip.Prefix]uint32{{}: 5})
		if !errors.Is(err, datapath.ErrInvalid) {
			t.Fatalf("SetIdentities with an invalid prefix = %v, want ErrInvalid", err)
		}
		if got := runProg(t, d, ep, pIn, tcpPkt("10.0.1.1", podV4, 1, 80).bytes()); got != retAllow {
			t.Errorf("after the rejected SetIdentities 10.0.1.1 is no longer identity 1001: %s", retName(got))
		}
	})
}

func TestDetachEndpoint(t *testing.T) {
	d := loadTest(t, testSpec())
	const ep = 11
	syncEP(t, d, ep, allowE(0, pIn, pAny, 0, 0))
	syncEP(t, d, ep+1, allowE(0, pIn, pAny, 0, 0))
	frame := udpPkt("10.0.1.1", podV4, 1, 53).bytes()
	if got := runProg(t, d, ep, pIn, frame); got != retAllow {
		t.Fatalf("before detach: %s, want allow", retName(got))
	}
	prog, err := d.Program(ep, pIn)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.DetachEndpoint(ep); err != nil {
		t.Fatalf("DetachEndpoint: %v", err)
	}
	if _, err := prog.Run(&ebpf.RunOptions{Data: frame}); err == nil {
		t.Errorf("the detached endpoint's program still runs")
	}
	if got := d.Entries(ep); got != nil {
		t.Errorf("Entries after detach = %+v, want nil", got)
	}
	if _, err := d.FlushConntrack(0); err != nil {
		t.Fatal(err)
	}
	// A new program for the same endpoint finds no entries left behind.
	if got := runProg(t, d, ep, pIn, frame); got != retDrop {
		t.Errorf("after detach: %s, want drop (no entries)", retName(got))
	}
	if got := runProg(t, d, ep+1, pIn, frame); got != retAllow {
		t.Errorf("other endpoint after detach: %s, want allow", retName(got))
	}
	if err := d.DetachEndpoint(ep + 100); err != nil {
		t.Errorf("DetachEndpoint of an unknown endpoint: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Program(ep, pIn); !errors.Is(err, datapath.ErrClosed) {
		t.Errorf("Program after Close = %v, want ErrClosed", err)
	}
	if _, err := d.SyncEndpoint(ep, nil); !errors.Is(err, datapath.ErrClosed) {
		t.Errorf("SyncEndpoint after Close = %v, want ErrClosed", err)
	}
}

// TestRobustness runs random frames and randomly mutated valid packets through the program: it
// never fails to run, and it allows exactly what the Go model (parseFrame, the ipcache and
// datapath.Lookup) allows.
func TestRobustness(t *testing.T) {
	d := bpftest.Load(t, testSpec())
	ids := map[netip.Prefix]uint32{pfx("10.0.1.1/32"): 1001, pfx("fd00:1::/64"): 1001, pfx("10.1.0.0/16"): 2001}
	if err := d.SetIdentities(ids); err != nil {
		t.Fatal(err)
	}
	const ep = 1
	entries := []datapath.Entry{
		withVerdict(allowE(0, pIn, pAny, 0, 0), datapath.Deny, 1, 1),
		withVerdict(allowE(1001, pIn, pTCP, 80, 16), datapath.Allow, 2, 2),
	}
	syncEP(t, d, ep, entries...)
	prog, err := d.Program(ep, pIn)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	seeds := [][]byte{
		tcpPkt("10.0.1.1", podV4, 40000, 80).bytes(),
		tcpPkt("fd00:1::9", podV6, 40000, 80).bytes(),
		func() []byte {
			p := tcpPkt("fd00:1::9", podV6, 40000, 80)
			p.Ext = []ext6{{Type: nhHop}, {Type: nhRouting, Units: 1}, {Type: nhAuth, Units: 1}}
			p.MoreFrags, p.Fragment = true, true
			return p.bytes()
		}(),
		func() []byte {
			p := tcpPkt("10.0.1.1", podV4, 40000, 80)
			p.IPv4Options = []byte{1, 1, 1, 1}
			return p.bytes()
		}(),
		icmpPkt("10.0.1.1", podV4, 8, 80).bytes(),
		udpPkt("10.1.2.3", podV4, 80, 80).bytes(),
	}
	var allowed, invalid, nonIP, checked, refused int
	check := func(frame []byte) {
		checked++
		ret, err := prog.Run(&ebpf.RunOptions{Data: frame})
		if err != nil && kernelRefuses(frame, err) {
			refused++
			return
		}
		if err != nil {
			t.Fatalf("run on %x: %v", frame, err)
		}
		if ret != retAllow && ret != retDrop {
			t.Fatalf("run on %x returned %#x", frame, ret)
		}
		f, res := parseFrame(frame)
		model := false
		switch res {
		case parseNonIP:
			model = true
			nonIP++
		case parseInvalid:
			invalid++
		case parseIP:
			e, ok := datapath.Lookup(entries, modelIdentity(ids, pIn, f), pIn, f.Proto, f.DstPort)
			model = ok && e.Verdict != datapath.Deny
			if f.Frag != fragLater && fragNeeded(f.Proto, f.DstPort, f.ICMPCode) {
				model = true
			}
		}
		if ret == retAllow {
			allowed++
		}
		if got := ret == retAllow; got != model {
			t.Errorf("frame %x: program %s, model allow=%v (parsed %+v, result %d)", frame, retName(ret), model, f, res)
		}
	}
	for range 5000 {
		frame := make([]byte, 14+rng.IntN(200))
		for i := range frame {
			frame[i] = byte(rng.Uint32())
		}
		switch rng.IntN(3) {
		case 0:
			frame[12], frame[13] = 0x08, 0x00
		case 1:
			frame[12], frame[13] = 0x86, 0xdd
		}
		check(frame)
	}
	for range 5000 {
		frame := slices.Clone(seeds[rng.IntN(len(seeds))])
		for range 1 + rng.IntN(4) {
			switch rng.IntN(4) {
			case 0: // flip a byte in the headers
				frame[14+rng.IntN(min(len(frame)-14, 80))] ^= byte(1 + rng.IntN(255))
			case 1: // set a byte to an interesting value
				frame[14+rng.IntN(min(len(frame)-14, 80))] = []byte{0, 1, 4, 5, 6, 17, 43, 44, 51, 58, 59, 60, 132, 0x20, 0x3f, 0xff}[rng.IntN(16)]
			case 2: // truncate
				frame = frame[:14+rng.IntN(len(frame)-13)]
			case 3: // extend
				for range rng.IntN(16) {
					frame = append(frame, byte(rng.Uint32()))
				}
			}
			if len(frame) <= 14 {
				break
			}
		}
		check(frame)
	}
	t.Logf("%d frames: %d allowed, %d invalid, %d non-IP, %d refused by BPF_PROG_TEST_RUN", checked, allowed, invalid, nonIP, refused)
	if allowed == nonIP {
		t.Errorf("no mutated packet was allowed by policy: the mutations never kept a valid one")
	}
}
