package datapath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
)

// Reason is why the datapath passed or dropped a packet; it indexes the counters.
type Reason uint32

// Reasons, as ceskit.h's CNT_* counters.
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

// Event is one verdict the datapath reported: denied and audited packets always (within the
// rate limit), allowed new flows with Spec.ReportNewFlows. Cookie names the entry that decided,
// at packet time (0 for a default deny).
type Event struct {
	Time      time.Duration // since boot (CLOCK_MONOTONIC)
	Endpoint  uint32
	Remote    uint32 // remote identity
	Src, Dst  netip.Addr
	SrcPort   uint16
	DstPort   uint16 // the ICMP type for ICMP
	Protocol  uint8
	Direction Direction
	Verdict   Verdict
	Audit     bool
	Fragment  bool
	NewFlow   bool
	Cookie    uint32
	Reason    Reason
}

// EventReader reads verdict events. It is not safe for concurrent use; Close unblocks Read.
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

// Read blocks until an event arrives, the deadline passes, or Close is called (then it returns
// an error wrapping ringbuf.ErrClosed).
func (er *EventReader) Read() (Event, error) {
	rec, err := er.r.Read()
	if err != nil {
		return Event{}, err
	}
	return decodeEvent(rec.RawSample)
}

// Close stops the reader.
func (er *EventReader) Close() error { return er.r.Close() }

// IsClosed reports whether err means the reader was closed.
func IsClosed(err error) bool { return errors.Is(err, ringbuf.ErrClosed) }

func decodeEvent(b []byte) (Event, error) {
	var raw ceskitEvent
	if len(b) < binary.Size(raw) {
		return Event{}, fmt.Errorf("short event: %d bytes", len(b))
	}
	if _, err := binary.Decode(b, binary.NativeEndian, &raw); err != nil {
		return Event{}, fmt.Errorf("decode event: %w", err)
	}
	addr := func(a [16]byte) netip.Addr { return netip.AddrFrom16(a).Unmap() }
	return Event{
		Time: time.Duration(raw.Ts), Endpoint: raw.EpId, Remote: raw.RemoteId,
		Src: addr(raw.Saddr), Dst: addr(raw.Daddr), SrcPort: raw.Sport, DstPort: raw.Dport,
		Protocol: raw.Proto, Direction: Direction(raw.Dir), Verdict: Verdict(raw.Verdict),
		Audit: raw.Flags&1 != 0, Fragment: raw.Flags&4 != 0, NewFlow: raw.Flags&8 != 0,
		Cookie: raw.Cookie, Reason: Reason(raw.Reason),
	}, nil
}

// Stats are the datapath's counters, summed over CPUs.
type Stats struct {
	// Packets by reason.
	Packets map[Reason]uint64
	// LostRingbuf counts events dropped because the ring buffer was full; LostRateLimit those
	// over the per-CPU rate.
	LostRingbuf, LostRateLimit uint64
}

// Stats reads the counters.
func (d *Datapath) Stats() (Stats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return Stats{}, ErrClosed
	}
	s := Stats{Packets: map[Reason]uint64{}}
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
	for r := Reason(0); r < numReasons; r++ {
		n, err := sum(d.maps.CeskitCounters, uint32(r))
		if err != nil {
			return s, fmt.Errorf("read counter %s: %w", r, err)
		}
		s.Packets[r] = n
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
