package datapath_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/google/go-cmp/cmp"

	"github.com/ceskit/ceskit/datapath"
	"github.com/ceskit/ceskit/internal/bpftest"
)

// The differential tests compare the BPF program's verdicts (conntrack off, so every packet is
// looked up) with datapath.Lookup's on random map states and flows.

// diffIDs are the remote identities of the differential tests; 0 is the wildcard (entries only)
// and 2 is world (addresses not in the ipcache).
var diffIDs = []uint32{0, 0, 2, 1001, 1002, 1003, 1004, 1005, 1006}

// diffAddr is an address with identity id: a unique /32 (or /128) in the ipcache, or for world
// one outside it.
func diffAddr(id uint32, v6 bool) netip.Addr {
	if id == 2 {
		if v6 {
			return netip.MustParseAddr("2001:db8::2")
		}
		return netip.MustParseAddr("192.0.2.2")
	}
	if v6 {
		return netip.AddrFrom16([16]byte{0xfd, 0, 0, 1, 14: byte(id >> 8), 15: byte(id)})
	}
	return netip.AddrFrom4([4]byte{10, 0, byte(id >> 8), byte(id)})
}

func diffIdentities() map[netip.Prefix]uint32 {
	m := map[netip.Prefix]uint32{}
	for _, id := range diffIDs {
		if id > 2 {
			for _, v6 := range []bool{false, true} {
				a := diffAddr(id, v6)
				m[netip.PrefixFrom(a, a.BitLen())] = id
			}
		}
	}
	return m
}

type diffFlow struct {
	id    uint32
	dir   datapath.Direction
	proto uint8
	port  uint16
	v6    bool
}

func (f diffFlow) String() string {
	return fmt.Sprintf("identity %d %s proto %d port %d (ipv6 %v)", f.id, f.dir, f.proto, f.port, f.v6)
}

// frame is the flow's packet: from the remote to the endpoint for ingress, the other way for
// egress.
func (f diffFlow) frame() []byte {
	remote, local := diffAddr(f.id, f.v6), netip.MustParseAddr(podV4)
	if f.v6 {
		local = netip.MustParseAddr(podV6)
	}
	p := packet{Src: remote, Dst: local, Proto: f.proto, SrcPort: 33333, DstPort: f.port}
	if f.proto == datapath.ProtoICMP && f.v6 {
		p.Proto = datapath.ProtoICMPv6
	}
	if f.dir == datapath.Egress {
		p.Src, p.Dst = local, remote
	}
	return p.bytes()
}

// lookupProto is the protocol the entries see.
func (f diffFlow) lookupProto() uint8 {
	if f.proto == datapath.ProtoICMP && f.v6 {
		return datapath.ProtoICMPv6
	}
	return f.proto
}

func randFlows(rng *rand.Rand, entries []datapath.Entry, n int) []diffFlow {
	flows := make([]diffFlow, 0, n)
	for _, port := range flowPorts(rng, entries, n) {
		f := diffFlow{
			id:    diffIDs[2+rng.IntN(len(diffIDs)-2)],
			dir:   datapath.Direction(rng.IntN(2)),
			proto: []uint8{datapath.ProtoTCP, datapath.ProtoUDP, datapath.ProtoICMP, datapath.ProtoSCTP}[rng.IntN(4)],
			port:  port,
			v6:    rng.IntN(4) == 0,
		}
		if f.proto == datapath.ProtoICMP {
			f.port &= 0xff // the type
		}
		flows = append(flows, f)
	}
	return flows
}

// modelReason is what the program should count for the flow under entries.
func modelReason(entries []datapath.Entry, f diffFlow) datapath.Reason {
	if fragNeeded(f.lookupProto(), f.port, 0) {
		return datapath.ReasonForwarded // passes without a policy lookup
	}
	e, ok := datapath.Lookup(entries, f.id, f.dir, f.lookupProto(), f.port)
	switch {
	case !ok:
		return datapath.ReasonDropDefault
	case e.Verdict == datapath.Deny:
		return datapath.ReasonDropDeny
	case e.Verdict == datapath.Audit:
		return datapath.ReasonAudited
	}
	return datapath.ReasonForwarded
}

func allowedBy(r datapath.Reason) bool {
	return r == datapath.ReasonForwarded || r == datapath.ReasonAudited
}

// diffDatapath loads a datapath without conntrack (every packet is looked up) and without
// events, with the differential identities.
func diffDatapath(t *testing.T) *datapath.Datapath {
	t.Helper()
	spec := testSpec()
	spec.DisableConntrack = true
	spec.EventRate, spec.EventBurst = 1, 1
	spec.MaxEntriesPerEndpoint = 16384
	spec.PolicyEntries = 65536
	d := bpftest.Load(t, spec)
	if err := d.SetIdentities(diffIdentities()); err != nil {
		t.Fatalf("SetIdentities: %v", err)
	}
	return d
}

// runFlows runs every flow through the endpoint's programs and returns their verdicts.
func runFlows(t *testing.T, d *datapath.Datapath, ep uint32, flows []diffFlow) []bool {
	t.Helper()
	var progs [2]*ebpf.Program
	for _, dir := range []datapath.Direction{datapath.Ingress, datapath.Egress} {
		p, err := d.Program(ep, dir)
		if err != nil {
			t.Fatalf("Program(%d, %s): %v", ep, dir, err)
		}
		progs[dir] = p
	}
	out := make([]bool, len(flows))
	for i, f := range flows {
		ret, err := progs[f.dir].Run(&ebpf.RunOptions{Data: f.frame()})
		if err != nil {
			t.Fatalf("run %s: %v", f, err)
		}
		if ret != retAllow && ret != retDrop {
			t.Fatalf("run %s: returned %#x", f, ret)
		}
		out[i] = ret == retAllow
	}
	return out
}

// TestDifferential syncs random map states (re-syncing a few endpoints over and over) and checks
// the program's verdict and counters against datapath.Lookup for random flows.
func TestDifferential(t *testing.T) {
	d := diffDatapath(t)
	rng := rand.New(rand.NewPCG(7, 8))
	eps := []uint32{1, 2, 3, 4}
	deadline := time.Now().Add(3 * time.Second)
	sets, flowsRun := 0, 0
	reasons := map[datapath.Reason]uint64{}
	for sets < 400 && time.Now().Before(deadline) {
		ep := eps[sets%len(eps)]
		n := 1 + rng.IntN(250)
		if sets%5 == 0 {
			n = 1 + rng.IntN(10)
		}
		entries := randEntries(rng, n, diffIDs)
		if _, err := d.SyncEndpoint(ep, entries); err != nil {
			t.Fatalf("set %d: SyncEndpoint(%d, %d entries): %v", sets, ep, len(entries), err)
		}
		flows := randFlows(rng, entries, 100)
		before := stats(t, d)
		got := runFlows(t, d, ep, flows)
		want := map[datapath.Reason]uint64{}
		wantDir := [2]map[datapath.Reason]uint64{{}, {}}
		failed := 0
		for i, f := range flows {
			r := modelReason(entries, f)
			want[r]++
			wantDir[f.dir][r]++
			reasons[r]++
			if got[i] != allowedBy(r) && failed < 5 {
				failed++
				e, ok := datapath.Lookup(entries, f.id, f.dir, f.lookupProto(), f.port)
				t.Errorf("set %d, endpoint %d: %s: program allow=%v, model %s (%+v, found %v)", sets, ep, f, got[i], r, e, ok)
			}
		}
		after := stats(t, d)
		if diff := cmp.Diff(want, countersDelta(before, after)); diff != "" {
			t.Errorf("set %d: counters (-model +program):\n%s", sets, diff)
			failed++
		}
		for _, dir := range []datapath.Direction{datapath.Ingress, datapath.Egress} {
			if diff := cmp.Diff(wantDir[dir], directionDelta(before, after, dir)); diff != "" {
				t.Errorf("set %d: %s counters (-model +program):\n%s", sets, dir, diff)
				failed++
			}
		}
		if failed > 0 {
			t.Fatalf("set %d: entries: %+v", sets, entries)
		}
		sets++
		flowsRun += len(flows)
	}
	t.Logf("%d entry sets, %d flows: %v", sets, flowsRun, reasons)
	if sets < 20 {
		t.Errorf("only %d entry sets in the time budget", sets)
	}
}

// changeEntries returns a changed copy of entries: some removed, some with another verdict,
// precedence or cookie, some added.
func changeEntries(rng *rand.Rand, entries []datapath.Entry) []datapath.Entry {
	var out []datapath.Entry
	seen := map[entryKey]bool{}
	for _, e := range entries {
		switch rng.IntN(6) {
		case 0:
			continue
		case 1:
			e.Verdict = datapath.Verdict(rng.IntN(3))
		case 2:
			e.Precedence = uint8(1 + rng.IntN(4))
		case 3:
			e.Cookie += 10000
		}
		seen[keyOf(e)] = true
		out = append(out, e)
	}
	for _, e := range randEntries(rng, 1+rng.IntN(60), diffIDs) {
		if !seen[keyOf(e)] {
			e.Cookie += 20000
			out = append(out, e)
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// TestDifferentialResync checks that re-syncing an endpoint to a changed map state leaves it
// deciding as an endpoint synced once with that state (and as the model), and that SyncStats
// agree.
func TestDifferentialResync(t *testing.T) {
	d := diffDatapath(t)
	rng := rand.New(rand.NewPCG(9, 10))
	const resynced = 1
	deadline := time.Now().Add(3 * time.Second)
	rounds := 0
	entries := randEntries(rng, 150, diffIDs)
	if _, err := d.SyncEndpoint(resynced, entries); err != nil {
		t.Fatal(err)
	}
	for rounds < 40 && time.Now().Before(deadline) {
		changed := changeEntries(rng, entries)
		if rounds%10 == 9 {
			changed = nil // everything removed
		}
		rst, err := d.SyncEndpoint(resynced, changed)
		if err != nil {
			t.Fatalf("round %d: re-sync: %v", rounds, err)
		}
		fresh := uint32(100 + rounds)
		fst, err := d.SyncEndpoint(fresh, changed)
		if err != nil {
			t.Fatalf("round %d: fresh sync: %v", rounds, err)
		}
		if rst.Entries != fst.Entries || fst.Written != fst.Entries || fst.Deleted != 0 {
			t.Errorf("round %d: re-sync stats %+v, fresh sync stats %+v: want equal Entries, fresh writing all and deleting none", rounds, rst, fst)
		}
		// Syncing the same state again writes nothing.
		if st, err := d.SyncEndpoint(resynced, changed); err != nil || st.Written != 0 || st.Deleted != 0 || st.Entries != rst.Entries {
			t.Errorf("round %d: repeated sync = %+v, %v; want nothing written or deleted", rounds, st, err)
		}
		flows := append(randFlows(rng, changed, 100), randFlows(rng, entries, 50)...)
		a := runFlows(t, d, resynced, flows)
		b := runFlows(t, d, fresh, flows)
		failed := 0
		for i, f := range flows {
			model := allowedBy(modelReason(changed, f))
			if (a[i] != b[i] || a[i] != model) && failed < 5 {
				failed++
				t.Errorf("round %d: %s: re-synced endpoint allow=%v, fresh endpoint allow=%v, model allow=%v", rounds, f, a[i], b[i], model)
			}
		}
		if failed > 0 {
			t.Fatalf("round %d: entries before %+v\nafter %+v", rounds, entries, changed)
		}
		if err := d.DetachEndpoint(fresh); err != nil {
			t.Fatalf("DetachEndpoint(%d): %v", fresh, err)
		}
		entries = changed
		rounds++
	}
	t.Logf("%d re-sync rounds", rounds)
}

// TestDifferentialDuplicateKeys syncs entries with a repeated key at two precedences: the
// program decides by the higher one, and so must the model.
func TestDifferentialDuplicateKeys(t *testing.T) {
	d := diffDatapath(t)
	low := datapath.Entry{Identity: 1001, Protocol: datapath.ProtoTCP, Port: 80, PortPrefixLen: 16, Verdict: datapath.Allow, Precedence: 1, Cookie: 1}
	high := low
	high.Verdict, high.Precedence, high.Cookie = datapath.Deny, 2, 2
	f := diffFlow{id: 1001, dir: datapath.Ingress, proto: datapath.ProtoTCP, port: 80}
	for i, entries := range [][]datapath.Entry{{low, high}, {high, low}} {
		ep := uint32(1 + i)
		if _, err := d.SyncEndpoint(ep, entries); err != nil {
			t.Fatal(err)
		}
		got := runFlows(t, d, ep, []diffFlow{f})[0]
		model := allowedBy(modelReason(entries, f))
		if got || model {
			t.Errorf("entries %+v: program allow=%v, model allow=%v; want both false (the deny has the higher precedence)", entries, got, model)
		}
	}
}

// TestDifferentialIdentityZero maps an address to identity 0: the program applies the
// wildcard entries to it, and the model must agree.
func TestDifferentialIdentityZero(t *testing.T) {
	d := diffDatapath(t)
	ids := diffIdentities()
	zero := netip.MustParseAddr("10.0.0.99")
	ids[netip.PrefixFrom(zero, 32)] = 0
	if err := d.SetIdentities(ids); err != nil {
		t.Fatalf("SetIdentities with identity 0: %v", err)
	}
	entries := []datapath.Entry{{Identity: 0, Protocol: datapath.ProtoTCP, Port: 80, PortPrefixLen: 16, Verdict: datapath.Allow, Precedence: 1, Cookie: 1}}
	const ep = 1
	if _, err := d.SyncEndpoint(ep, entries); err != nil {
		t.Fatal(err)
	}
	got := runProg(t, d, ep, datapath.Ingress, tcpPkt(zero.String(), podV4, 1, 80).bytes()) == retAllow
	_, model := datapath.Lookup(entries, 0, datapath.Ingress, datapath.ProtoTCP, 80)
	if got != model {
		t.Errorf("remote identity 0: program allow=%v, datapath.Lookup found=%v", got, model)
	}
}
