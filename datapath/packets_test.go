package datapath_test

import (
	"encoding/binary"
	"net/netip"

	"github.com/ceskit/ceskit/datapath"
)

// Packet builders for the BPF_PROG_TEST_RUN tests (stdlib only), and parseFrame, the Go model
// of what the BPF program parses a frame to.

// IPv6 extension header types (next-header values).
const (
	nhHop      uint8 = 0
	nhRouting  uint8 = 43
	nhFragment uint8 = 44
	nhAuth     uint8 = 51
	nhNone     uint8 = 59
	nhDest     uint8 = 60
)

// EtherTypes.
const (
	etherIPv4 uint16 = 0x0800
	etherARP  uint16 = 0x0806
	etherIPv6 uint16 = 0x86dd
)

// ext6 is an IPv6 extension header (hop-by-hop, routing, destination options or
// authentication; fragment headers come from packet's fragment fields).
type ext6 struct {
	Type uint8
	// Units is the header's length field: 8-byte units beyond the first 8 bytes, for AH
	// 4-byte units beyond the first 8 bytes (so 1 is the smallest valid AH: 12 bytes).
	Units uint8
}

// packet describes an Ethernet frame carrying IPv4 or IPv6 (by the family of Src).
type packet struct {
	Src, Dst netip.Addr
	Proto    uint8
	// SrcPort and DstPort for TCP, UDP and SCTP. For ICMP and ICMPv6, DstPort is the type and
	// SrcPort the echo identifier (as the datapath reads them).
	SrcPort, DstPort uint16
	ICMPCode         uint8
	TCPFlags         uint8 // default SYN
	// IPv4Options are appended to the IPv4 header (padded to 4 bytes).
	IPv4Options []byte
	// Ext are IPv6 extension headers, in order, before the fragment header.
	Ext []ext6
	// Fragment fields. IPv4: the header's MF flag and offset. IPv6: any of them set adds a
	// fragment header after Ext. A non-zero offset leaves out the L4 header.
	Fragment   bool
	MoreFrags  bool
	FragOffset uint16 // in 8-byte units
	Payload    []byte
	// EtherType overrides the frame's EtherType.
	EtherType uint16
}

// tcpPkt is a TCP SYN from src:sport to dst:dport, IPv4 or IPv6 by the addresses' family.
func tcpPkt(src, dst string, sport, dport uint16) packet {
	return packet{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Proto: datapath.ProtoTCP, SrcPort: sport, DstPort: dport}
}

func udpPkt(src, dst string, sport, dport uint16) packet {
	p := tcpPkt(src, dst, sport, dport)
	p.Proto = datapath.ProtoUDP
	return p
}

func sctpPkt(src, dst string, sport, dport uint16) packet {
	p := tcpPkt(src, dst, sport, dport)
	p.Proto = datapath.ProtoSCTP
	return p
}

// icmpPkt is an ICMP (IPv4) or ICMPv6 message of the given type and echo identifier.
func icmpPkt(src, dst string, typ uint8, id uint16) packet {
	p := packet{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), DstPort: uint16(typ), SrcPort: id}
	p.Proto = datapath.ProtoICMP
	if p.Src.Is6() {
		p.Proto = datapath.ProtoICMPv6
	}
	return p
}

// reply swaps source and destination.
func (p packet) reply() packet {
	p.Src, p.Dst = p.Dst, p.Src
	p.SrcPort, p.DstPort = p.DstPort, p.SrcPort
	return p
}

func (p packet) fragmented() bool { return p.Fragment || p.MoreFrags || p.FragOffset != 0 }

func (p packet) bytes() []byte {
	l4 := p.l4()
	var ip []byte
	ether := etherIPv4
	if p.Src.Is4() {
		ip = p.ipv4(len(l4))
	} else {
		ether = etherIPv6
		ip = p.ipv6(len(l4))
	}
	if p.EtherType != 0 {
		ether = p.EtherType
	}
	b := ethernet(ether)
	b = append(b, ip...)
	return append(b, l4...)
}

func ethernet(etherType uint16) []byte {
	b := []byte{0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0, 0}
	binary.BigEndian.PutUint16(b[12:], etherType)
	return b
}

// arpFrame is an ARP request (not IP: the datapath passes it).
func arpFrame() []byte {
	b := ethernet(etherARP)
	arp := make([]byte, 28)
	binary.BigEndian.PutUint16(arp[0:], 1)      // Ethernet
	binary.BigEndian.PutUint16(arp[2:], 0x0800) // IPv4
	arp[4], arp[5] = 6, 4
	binary.BigEndian.PutUint16(arp[6:], 1) // request
	copy(arp[14:18], []byte{10, 0, 0, 1})
	copy(arp[24:28], []byte{10, 0, 0, 2})
	return append(b, arp...)
}

// l4 is the transport header and payload (only the payload for a non-first fragment).
func (p packet) l4() []byte {
	if p.FragOffset != 0 {
		if len(p.Payload) == 0 {
			return make([]byte, 16)
		}
		return append([]byte(nil), p.Payload...)
	}
	var h []byte
	switch p.Proto {
	case datapath.ProtoTCP:
		h = make([]byte, 20)
		binary.BigEndian.PutUint16(h[0:], p.SrcPort)
		binary.BigEndian.PutUint16(h[2:], p.DstPort)
		binary.BigEndian.PutUint32(h[4:], 1000)
		h[12] = 5 << 4
		h[13] = p.TCPFlags
		if h[13] == 0 {
			h[13] = 0x02 // SYN
		}
		binary.BigEndian.PutUint16(h[14:], 65535)
	case datapath.ProtoUDP:
		h = make([]byte, 8)
		binary.BigEndian.PutUint16(h[0:], p.SrcPort)
		binary.BigEndian.PutUint16(h[2:], p.DstPort)
		binary.BigEndian.PutUint16(h[4:], uint16(8+len(p.Payload)))
	case datapath.ProtoSCTP:
		h = make([]byte, 12)
		binary.BigEndian.PutUint16(h[0:], p.SrcPort)
		binary.BigEndian.PutUint16(h[2:], p.DstPort)
		binary.BigEndian.PutUint32(h[4:], 0xdeadbeef) // verification tag
	case datapath.ProtoICMP, datapath.ProtoICMPv6:
		h = make([]byte, 8)
		h[0], h[1] = uint8(p.DstPort), p.ICMPCode
		binary.BigEndian.PutUint16(h[4:], p.SrcPort)
		binary.BigEndian.PutUint16(h[6:], 1) // sequence
	}
	return append(h, p.Payload...)
}

func (p packet) ipv4(l4len int) []byte {
	opts := append([]byte(nil), p.IPv4Options...)
	for len(opts)%4 != 0 {
		opts = append(opts, 0) // end of options list
	}
	hlen := 20 + len(opts)
	h := make([]byte, 20, hlen)
	h[0] = 4<<4 | uint8(hlen/4)
	binary.BigEndian.PutUint16(h[2:], uint16(hlen+l4len))
	binary.BigEndian.PutUint16(h[4:], 0x1234)
	frag := p.FragOffset & 0x1fff
	if p.MoreFrags {
		frag |= 0x2000
	}
	binary.BigEndian.PutUint16(h[6:], frag)
	h[8], h[9] = 64, p.Proto
	s, d := p.Src.As4(), p.Dst.As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	h = append(h, opts...)
	binary.BigEndian.PutUint16(h[10:], checksum(h))
	return h
}

func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

func (p packet) ipv6(l4len int) []byte {
	type hdr struct {
		typ  uint8
		body []byte // without the next-header byte
	}
	var hs []hdr
	for _, e := range p.Ext {
		var n int
		if e.Type == nhAuth {
			n = (int(e.Units) + 2) * 4
		} else {
			n = (int(e.Units) + 1) * 8
		}
		body := make([]byte, n-1)
		body[0] = e.Units
		switch e.Type {
		case nhHop, nhDest:
			// PadN option filling the rest of the header.
			body[1], body[2] = 1, uint8(n-4)
		case nhRouting:
			body[1] = 4 // segment routing, segments left 0
		case nhAuth:
			binary.BigEndian.PutUint32(body[3:], 0x100) // SPI
		}
		hs = append(hs, hdr{e.Type, body})
	}
	if p.fragmented() {
		body := make([]byte, 7)
		fo := p.FragOffset << 3
		if p.MoreFrags {
			fo |= 1
		}
		binary.BigEndian.PutUint16(body[1:], fo)
		binary.BigEndian.PutUint32(body[3:], 0xcafe)
		hs = append(hs, hdr{nhFragment, body})
	}
	ext := 0
	for _, h := range hs {
		ext += 1 + len(h.body)
	}
	b := make([]byte, 40, 40+ext)
	b[0] = 6 << 4
	binary.BigEndian.PutUint16(b[4:], uint16(ext+l4len))
	b[7] = 64
	s, d := p.Src.As16(), p.Dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	next := func(i int) uint8 {
		if i < len(hs) {
			return hs[i].typ
		}
		return p.Proto
	}
	b[6] = next(0)
	for i, h := range hs {
		b = append(b, next(i+1))
		b = append(b, h.body...)
	}
	return b
}

// Fragment states, as the BPF program's FRAG_*.
const (
	fragNone = iota
	fragFirst
	fragLater
)

// parsedFlow is what the BPF program parses an IP packet to.
type parsedFlow struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Proto            uint8
	IPv6             bool
	Frag             int
	ICMPCode         uint8
}

// fragNeeded reports the ICMP "fragmentation needed" and ICMPv6 "packet too big" messages,
// which the program passes without a policy lookup (Cilium's allow_icmp_frag_needed).
func fragNeeded(proto uint8, typ uint16, code uint8) bool {
	return (proto == datapath.ProtoICMP && typ == 3 && code == 4) || (proto == datapath.ProtoICMPv6 && typ == 2)
}

// Results of parseFrame, as the BPF program's parse.
const (
	parseInvalid = -1
	parseNonIP   = 0
	parseIP      = 1
)

// parseFrame mirrors the BPF program's parse for a frame of at least 14 bytes (the least
// BPF_PROG_TEST_RUN accepts).
func parseFrame(b []byte) (parsedFlow, int) {
	var f parsedFlow
	if len(b) < 14 {
		return f, parseInvalid
	}
	off := 14
	switch binary.BigEndian.Uint16(b[12:]) {
	case etherIPv4:
		if len(b) < off+20 {
			return f, parseInvalid
		}
		ip := b[off:]
		if ip[0]>>4 != 4 || ip[0]&0xf < 5 {
			return f, parseInvalid
		}
		f.Src = netip.AddrFrom4([4]byte(ip[12:16]))
		f.Dst = netip.AddrFrom4([4]byte(ip[16:20]))
		f.Proto = ip[9]
		frag := binary.BigEndian.Uint16(ip[6:])
		switch {
		case frag&0x1fff != 0:
			f.Frag = fragLater
		case frag&0x2000 != 0:
			f.Frag = fragFirst
		}
		off += int(ip[0]&0xf) * 4
	case etherIPv6:
		if len(b) < off+40 {
			return f, parseInvalid
		}
		ip := b[off:]
		if ip[0]>>4 != 6 {
			return f, parseInvalid
		}
		f.IPv6 = true
		f.Src = netip.AddrFrom16([16]byte(ip[8:24]))
		f.Dst = netip.AddrFrom16([16]byte(ip[24:40]))
		nh := ip[6]
		off += 40
		isExt := func(nh uint8) bool {
			return nh == nhHop || nh == nhRouting || nh == nhDest || nh == nhFragment || nh == nhAuth
		}
		for range 6 {
			if !isExt(nh) {
				break
			}
			if len(b) < off+8 {
				return f, parseInvalid
			}
			ext := b[off:]
			next := ext[0]
			switch nh {
			case nhFragment:
				fo := binary.BigEndian.Uint16(ext[2:])
				switch {
				case fo&0xfff8 != 0:
					f.Frag = fragLater
				case fo&1 != 0:
					f.Frag = fragFirst
				}
				off += 8
			case nhAuth:
				off += (int(ext[1]) + 2) * 4
			default:
				off += (int(ext[1]) + 1) * 8
			}
			nh = next
		}
		if isExt(nh) {
			return f, parseInvalid
		}
		f.Proto = nh
	default:
		return f, parseNonIP
	}
	if f.Frag == fragLater {
		return f, parseIP
	}
	switch f.Proto {
	case datapath.ProtoTCP, datapath.ProtoUDP, datapath.ProtoSCTP:
		if len(b) < off+4 {
			return f, parseInvalid
		}
		f.SrcPort = binary.BigEndian.Uint16(b[off:])
		f.DstPort = binary.BigEndian.Uint16(b[off+2:])
	case datapath.ProtoICMP, datapath.ProtoICMPv6:
		if len(b) < off+8 {
			return f, parseInvalid
		}
		f.DstPort = uint16(b[off])
		f.ICMPCode = b[off+1]
		f.SrcPort = binary.BigEndian.Uint16(b[off+4:])
	}
	return f, parseIP
}
