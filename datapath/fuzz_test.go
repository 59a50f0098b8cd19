package datapath_test

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ceskit/ceskit/datapath"
	"github.com/ceskit/ceskit/internal/bpftest"
)

// FuzzPacket runs fuzzer-provided frames through one endpoint's ingress and egress programs with
// BPF_PROG_TEST_RUN and checks every run against the Go model (parseFrame, the ipcache and
// datapath.Lookup): the program always runs, returns allow or drop, allows exactly what the model
// allows (in particular nothing an entry denies) and counts the packet under the model's reason,
// in its direction. Conntrack is off, so every packet is looked up and runs do not depend on one
// another. The datapath is loaded once per fuzzing process. Seeds are in
// testdata/fuzz/FuzzPacket.
//
// BPF_PROG_TEST_RUN itself refuses frames shorter than an Ethernet header, and (newer kernels)
// IPv4/IPv6 frames shorter than the IP header (see kernelRefuses); those are skipped, as are
// frames over fuzzMaxFrame bytes.

// fuzzMaxFrame is the largest frame FuzzPacket runs: a full Ethernet frame.
const fuzzMaxFrame = 1514

// fuzzIdentities is the ipcache of FuzzPacket: exact addresses, nested prefixes, IPv6.
var fuzzIdentities = map[netip.Prefix]uint32{
	pfx("10.0.1.1/32"):   1001,
	pfx("10.0.1.2/32"):   1002,
	pfx("10.1.0.0/16"):   2001,
	pfx("10.1.2.0/24"):   2002,
	pfx("fd00:1::/64"):   3001,
	pfx("fd00:1::7/128"): 3002,
}

// fuzzEntries are the endpoint's entries: allows, denies that override them (by precedence, by
// the wildcard identity, by protocol-only rules), an audit, port ranges, ICMP types and world.
var fuzzEntries = []datapath.Entry{
	// Ingress.
	withVerdict(allowE(0, pIn, pTCP, 22, 16), datapath.Deny, 9, 1),             // ssh denied from everyone
	allowE(1001, pIn, pTCP, 0, 0),                                              // 1001: every TCP port…
	withVerdict(allowE(1001, pIn, pTCP, 6379, 16), datapath.Deny, 2, 2),        // …but redis
	allowE(1002, pIn, pTCP, 8080, 13),                                          // 8080-8087
	withVerdict(allowE(1002, pIn, pTCP, 443, 16), datapath.Deny, 2, 10),        // 1002: no https (world may)
	allowE(2001, pIn, pUDP, 0, 0),                                              // the /16: UDP
	withVerdict(allowE(2002, pIn, pAny, 0, 0), datapath.Deny, 3, 3),            // the /24 inside it: nothing
	withVerdict(allowE(3001, pIn, pTCP, 443, 16), datapath.Audit, 1, 4),        // audited
	allowE(3002, pIn, datapath.ProtoICMPv6, 128, 16),                           // echo request
	allowE(0, pIn, datapath.ProtoICMP, 8, 16),                                  // ping from anyone
	allowE(2, pIn, pTCP, 443, 16),                                              // world: https
	withVerdict(allowE(2, pIn, datapath.ProtoSCTP, 0, 0), datapath.Deny, 1, 5), // world: no SCTP
	// Egress.
	allowE(0, pOut, pAny, 0, 0),                                           // everything…
	withVerdict(allowE(2001, pOut, pUDP, 53, 16), datapath.Deny, 2, 6),    // …but DNS to the /16
	withVerdict(allowE(2, pOut, pTCP, 0, 6), datapath.Deny, 2, 7),         // …and world TCP 0-1023
	withVerdict(allowE(3002, pOut, pAny, 0, 0), datapath.Deny, 2, 8),      // …and the /128
	allowE(1001, pOut, datapath.ProtoSCTP, 0, 0),                          // (same as the wildcard)
	withVerdict(allowE(1002, pOut, pTCP, 32768, 1), datapath.Audit, 3, 9), // audited upper ports
}

// fuzzReason is what the program must count for frame in direction dir under fuzzEntries, with
// the entry the model found (if any).
func fuzzReason(frame []byte, dir datapath.Direction) (datapath.Reason, datapath.Entry, bool) {
	f, res := parseFrame(frame)
	switch res {
	case parseNonIP:
		return datapath.ReasonPassNonIP, datapath.Entry{}, false
	case parseInvalid:
		return datapath.ReasonDropInvalid, datapath.Entry{}, false
	}
	if f.Frag != fragLater && fragNeeded(f.Proto, f.DstPort, f.ICMPCode) {
		return datapath.ReasonForwarded, datapath.Entry{}, false
	}
	e, ok := datapath.Lookup(fuzzEntries, modelIdentity(fuzzIdentities, dir, f), dir, f.Proto, f.DstPort)
	switch {
	case ok && e.Verdict == datapath.Allow:
		return datapath.ReasonForwarded, e, ok
	case ok && e.Verdict == datapath.Audit:
		return datapath.ReasonAudited, e, ok
	case f.Frag == fragLater:
		return datapath.ReasonDropFragment, e, ok
	case ok:
		return datapath.ReasonDropDeny, e, ok
	}
	return datapath.ReasonDropDefault, e, ok
}

func FuzzPacket(f *testing.F) {
	spec := testSpec()
	spec.DisableConntrack = true
	spec.EventRate, spec.EventBurst = 1, 1
	d := bpftest.Load(f, spec)
	if err := d.SetIdentities(fuzzIdentities); err != nil {
		f.Fatalf("SetIdentities: %v", err)
	}
	const ep = 7
	syncEP(f, d, ep, fuzzEntries...)
	var progs [2]*ebpf.Program
	for _, dir := range []datapath.Direction{pIn, pOut} {
		p, err := d.Program(ep, dir)
		if err != nil {
			f.Fatalf("Program(%d, %s): %v", ep, dir, err)
		}
		progs[dir] = p
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) > fuzzMaxFrame {
			return
		}
		for _, dir := range []datapath.Direction{pIn, pOut} {
			before := stats(t, d)
			ret, err := progs[dir].Run(&ebpf.RunOptions{Data: frame})
			if err != nil && (kernelRefuses(frame, err) || (len(frame) < 14 && errors.Is(err, unix.EINVAL))) {
				return
			}
			if err != nil {
				t.Fatalf("%s: run on %d-byte frame %x: %v", dir, len(frame), frame, err)
			}
			if ret != retAllow && ret != retDrop {
				t.Fatalf("%s: program returned %#x on %x", dir, ret, frame)
			}
			reason, e, found := fuzzReason(frame, dir)
			parsed, _ := parseFrame(frame)
			what := fmt.Sprintf("%s frame %x (parsed %+v; model: %s, entry %+v found %v)", dir, frame, parsed, reason, e, found)
			if ret == retAllow && found && e.Verdict == datapath.Deny {
				t.Fatalf("the program allowed what an entry denies: %s", what)
			}
			if got, want := ret == retAllow, reason == datapath.ReasonPassNonIP || allowedBy(reason); got != want {
				t.Fatalf("program %s, model %s: %s", retName(ret), reason, what)
			}
			after := stats(t, d)
			if got := directionDelta(before, after, dir); len(got) != 1 || got[reason] != 1 {
				t.Fatalf("counted %v, want one %s: %s", got, reason, what)
			}
		}
	})
}
