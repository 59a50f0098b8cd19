package datapath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
)

// Reason is why the datapath passed or dropped a packet; it indexes the counters.
type Reason uint32

// Reasons, as ceskit.h's CNT_* counters. Every reason is counted per direction.
const (
	ReasonForwarded    Reason = 0 // a new flow allowed by policy
	ReasonForwardedCT  Reason = 1 // an established flow or a reply, allowed by conntrack
	ReasonAudited      Reason = 2 // would be denied; allowed by audit
	ReasonDropDefault  Reason = 3 // no entry: default deny
	ReasonDropDeny     Reason = 4 // an explicit deny entry
	ReasonDropInvalid  Reason = 5 // a malformed or truncated IP packet
	ReasonDropFragment Reason = 6 // a non-first fragment no entry allows
	ReasonPassNonIP    Reason = 7 // not IPv4/IPv6: passed untouched
	numReasons                = 8
)

var reasonNames = [numReasons]string{"forwarded", "forwarded-ct", "audited", "drop-default-deny", "drop-deny", "drop-invalid", "drop-fragment", "pass-non-ip"}

// String names the reason.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint32(r))
}

// MatchType is what the entry that decided a verdict matches on. The values are Cilium's
// PolicyMatch* constants (pkg/monitor/api), which Hubble reports as a flow's policy_match_type.
type MatchType uint8

// Match types.
const (
	MatchNone      MatchType = 0 // no entry: default deny
	MatchL3Only    MatchType = 1 // a specific identity, every protocol
	MatchL3L4      MatchType = 2 // a specific identity, a protocol and ports (one port or a range)
	MatchL4Only    MatchType = 3 // any identity, a protocol and ports
	MatchAll       MatchType = 4 // any identity, every protocol
	MatchL3Proto   MatchType = 5 // a specific identity and a protocol, every port
	MatchProtoOnly MatchType = 6 // any identity and a protocol, every port
)

var matchNames = [...]string{"none", "L3-Only", "L3-L4", "L4-Only", "all", "L3-Proto", "Proto-Only"}

// String returns Hubble's spelling ("L3-L4").
func (m MatchType) String() string {
	if int(m) < len(matchNames) {
		return matchNames[m]
	}
	return fmt.Sprintf("match(%d)", uint8(m))
}

// MatchType is what the entry matches on.
func (e Entry) MatchType() MatchType {
	switch {
	case e.Protocol == ProtoAny && e.Identity == 0:
		return MatchAll
	case e.Protocol == ProtoAny:
		return MatchL3Only
	case e.PortPrefixLen == 0 && e.Identity == 0:
		return MatchProtoOnly
	case e.PortPrefixLen == 0:
		return MatchL3Proto
	case e.Identity == 0:
		return MatchL4Only
	}
	return MatchL3L4
}

// Event is one verdict the datapath reported: denied and audited packets always (within the
// rate limit), allowed new flows with Spec.ReportNewFlows. Cookie names the entry that decided,
// at packet time (0 for a default deny), and Match what it matches on.
type Event struct {
	Time      time.Duration // since boot (CLOCK_MONOTONIC)
	Endpoint  uint32
	Remote    uint32 // remote identity
	Src, Dst  netip.Addr
	SrcPort   uint16
	DstPort   uint16 // the ICMP type for ICMP
	ICMPCode  uint8  // the ICMP code for ICMP
	Protocol  uint8
	Direction Direction
	Verdict   Verdict
	Audit     bool
	Fragment  bool
	NewFlow   bool
	Cookie    uint32
	Match     MatchType
	Reason    Reason
}

// EventReader reads verdict events. It is not safe for concurrent use, except that Flush and
// Close may be called while Read blocks in another goroutine: they unblock it.
type EventReader struct {
	r *ringbuf.Reader
}

// Events opens a reader on the verdict-event ring buffer. Only one reader should be open.
func (d *Datapath) Events() (*EventReader, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, ErrClosed
	}
	r, err := ringbuf.NewReader(d.maps.CeskitEvents)
	if err != nil {
		return nil, classify("open event ring buffer", err)
	}
	return &EventReader{r: r}, nil
}

// SetDeadline makes Read return os.ErrDeadlineExceeded after t (zero: no deadline).
func (er *EventReader) SetDeadline(t time.Time) { er.r.SetDeadline(t) }

// Read blocks until an event arrives, the deadline passes (os.ErrDeadlineExceeded), Flush was
// called and the events before it are read (IsFlushed), or Close is called (IsClosed). A record
// that is not an event returns an error wrapping ErrInvalid; reading may go on.
func (er *EventReader) Read() (Event, error) {
	rec, err := er.r.Read()
	if err != nil {
		return Event{}, err
	}
	return decodeEvent(rec.RawSample)
}

// Flush makes Read return the events already in the ring buffer without blocking, then an error
// for which IsFlushed reports true; Read blocks again after that. Unlike Close it may be called
// while Read runs in another goroutine, so a reader can drain the ring buffer before it stops.
func (er *EventReader) Flush() error { return er.r.Flush() }

// Close stops the reader.
func (er *EventReader) Close() error { return er.r.Close() }

// IsClosed reports whether err means the reader was closed.
func IsClosed(err error) bool { return errors.Is(err, ringbuf.ErrClosed) }

// IsFlushed reports whether err is Read's end of the events a Flush made it return.
func IsFlushed(err error) bool { return errors.Is(err, ringbuf.ErrFlushed) }

// decodeEvent decodes a ring buffer record laid out as ceskitEvent, field by field at the
// generated struct's offsets (encoding/binary's reflection took a third of the reader's time).
func decodeEvent(b []byte) (Event, error) {
	var raw ceskitEvent
	if len(b) < int(unsafe.Sizeof(raw)) {
		return Event{}, fmt.Errorf("%w: short event: %d bytes", ErrInvalid, len(b))
	}
	ne := binary.NativeEndian
	addr := func(off uintptr) netip.Addr { return netip.AddrFrom16([16]byte(b[off : off+16])).Unmap() }
	flags := b[unsafe.Offsetof(raw.Flags)]
	return Event{
		Time:      time.Duration(ne.Uint64(b[unsafe.Offsetof(raw.Ts):])),
		Endpoint:  ne.Uint32(b[unsafe.Offsetof(raw.EpId):]),
		Remote:    ne.Uint32(b[unsafe.Offsetof(raw.RemoteId):]),
		Src:       addr(unsafe.Offsetof(raw.Saddr)),
		Dst:       addr(unsafe.Offsetof(raw.Daddr)),
		SrcPort:   ne.Uint16(b[unsafe.Offsetof(raw.Sport):]),
		DstPort:   ne.Uint16(b[unsafe.Offsetof(raw.Dport):]),
		ICMPCode:  b[unsafe.Offsetof(raw.IcmpCode)],
		Protocol:  b[unsafe.Offsetof(raw.Proto)],
		Direction: Direction(b[unsafe.Offsetof(raw.Dir)]),
		Verdict:   Verdict(b[unsafe.Offsetof(raw.Verdict)]),
		Audit:     flags&1 != 0,
		Fragment:  flags&4 != 0,
		NewFlow:   flags&8 != 0,
		Cookie:    ne.Uint32(b[unsafe.Offsetof(raw.Cookie):]),
		Match:     MatchType(b[unsafe.Offsetof(raw.MatchType)]),
		Reason:    Reason(ne.Uint16(b[unsafe.Offsetof(raw.Reason):])),
	}, nil
}

// Stats are the datapath's counters, summed over CPUs. They count from when the counter map was
// created: with Spec.PinPath they survive restarts, unless the map had to be replaced (see Load).
type Stats struct {
	// Packets by reason, both directions together.
	Packets map[Reason]uint64
	// Ingress and Egress are the packets by reason in each direction (relative to the
	// endpoint); they sum to Packets.
	Ingress, Egress map[Reason]uint64
	// LostRingbuf counts events dropped because the ring buffer was full; LostRateLimit those
	// over the per-CPU rate.
	LostRingbuf, LostRateLimit uint64
}

// Direction returns the packets by reason in one direction.
func (s Stats) Direction(dir Direction) map[Reason]uint64 {
	if dir == Egress {
		return s.Egress
	}
	return s.Ingress
}

// Stats reads the counters.
func (d *Datapath) Stats() (Stats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return Stats{}, ErrClosed
	}
	s := Stats{Packets: map[Reason]uint64{}, Ingress: map[Reason]uint64{}, Egress: map[Reason]uint64{}}
	sum := func(m *ebpf.Map, idx uint32) (uint64, error) {
		var per []uint64
		if err := m.Lookup(&idx, &per); err != nil {
			return 0, err
		}
		var t uint64
		for _, v := range per {
			t += v
		}
		return t, nil
	}
	for _, dir := range []Direction{Ingress, Egress} {
		byReason := s.Direction(dir)
		for r := Reason(0); r < numReasons; r++ {
			n, err := sum(d.maps.CeskitCounters, uint32(dir)*numReasons+uint32(r))
			if err != nil {
				return s, fmt.Errorf("read counter %s %s: %w", dir, r, err)
			}
			byReason[r] = n
			s.Packets[r] += n
		}
	}
	var err error
	if s.LostRingbuf, err = sum(d.maps.CeskitLost, 0); err != nil {
		return s, fmt.Errorf("read lost counter: %w", err)
	}
	if s.LostRateLimit, err = sum(d.maps.CeskitLost, 1); err != nil {
		return s, fmt.Errorf("read lost counter: %w", err)
	}
	return s, nil
}
