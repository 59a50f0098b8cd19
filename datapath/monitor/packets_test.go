package monitor_test

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/ceskit/ceskit/datapath"
)

// pkt describes an Ethernet frame carrying IPv4 or IPv6 (by the family of src) for
// BPF_PROG_TEST_RUN. For ICMP, dport is the type and sport the echo identifier, as the datapath
// reads them.
type pkt struct {
	src, dst     string
	proto        uint8
	sport, dport uint16
	icmpCode     uint8
	fragOffset   uint16 // IPv4: a later fragment at this offset (8-byte units), without L4 header
}

func ethernet(etherType uint16) []byte {
	b := []byte{0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0, 0}
	binary.BigEndian.PutUint16(b[12:], etherType)
	return b
}

func (p pkt) frame() []byte {
	src, dst := netip.MustParseAddr(p.src), netip.MustParseAddr(p.dst)
	var l4 []byte
	switch p.proto {
	case datapath.ProtoTCP:
		l4 = make([]byte, 20)
		l4[12], l4[13] = 5<<4, 0x02 // SYN
	case datapath.ProtoUDP:
		l4 = make([]byte, 8)
		binary.BigEndian.PutUint16(l4[4:], 8)
	case datapath.ProtoSCTP:
		l4 = make([]byte, 12)
	case datapath.ProtoICMP, datapath.ProtoICMPv6:
		l4 = make([]byte, 8)
		l4[0], l4[1] = uint8(p.dport), p.icmpCode
		binary.BigEndian.PutUint16(l4[4:], p.sport)
	}
	if p.proto != datapath.ProtoICMP && p.proto != datapath.ProtoICMPv6 {
		binary.BigEndian.PutUint16(l4[0:], p.sport)
		binary.BigEndian.PutUint16(l4[2:], p.dport)
	}
	if p.fragOffset != 0 {
		l4 = make([]byte, 16)
	}
	if src.Is4() {
		b := ethernet(0x0800)
		h := make([]byte, 20)
		h[0] = 0x45
		binary.BigEndian.PutUint16(h[2:], uint16(20+len(l4)))
		binary.BigEndian.PutUint16(h[6:], p.fragOffset&0x1fff)
		h[8], h[9] = 64, p.proto
		s, d := src.As4(), dst.As4()
		copy(h[12:], s[:])
		copy(h[16:], d[:])
		return append(append(b, h...), l4...)
	}
	b := ethernet(0x86dd)
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(l4)))
	h[6], h[7] = p.proto, 64
	s, d := src.As16(), dst.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(append(b, h...), l4...)
}

// arpFrame is an ARP request: not IP, the datapath passes it.
func arpFrame() []byte {
	return append(ethernet(0x0806), make([]byte, 28)...)
}

// invalidFrame says IPv4 but carries IP version 6: the datapath drops it as invalid.
func invalidFrame() []byte {
	f := pkt{src: "10.0.1.1", dst: "10.0.0.1", proto: datapath.ProtoTCP, dport: 80}.frame()
	f[14] = 0x65
	return f
}

// run runs the endpoint's program for dir on frame and returns the program's return code.
func run(tb testing.TB, d *datapath.Datapath, ep uint32, dir datapath.Direction, frame []byte) uint32 {
	tb.Helper()
	prog, err := d.Program(ep, dir)
	if err != nil {
		tb.Fatalf("Program(%d, %s): %v", ep, dir, err)
	}
	ret, _, err := prog.Test(frame)
	if err != nil {
		tb.Fatalf("run endpoint %d %s program: %v", ep, dir, err)
	}
	return ret
}
