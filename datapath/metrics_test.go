package datapath_test

import (
	"errors"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/go-cmp/cmp"

	"github.com/ceskit/ceskit/datapath"
	"github.com/ceskit/ceskit/internal/bpftest"
)

// recMetrics records what the datapath reports: the last MapPressure per map and the MapOps
// counts since the last reset.
type recMetrics struct {
	mu       sync.Mutex
	pressure map[string][2]int // map → entries, capacity
	ops      map[[3]string]int // map, operation, outcome → n
}

func newRecMetrics() *recMetrics {
	return &recMetrics{pressure: map[string][2]int{}, ops: map[[3]string]int{}}
}

func (m *recMetrics) Packets(uint32, string, uint64) {}
func (m *recMetrics) LostEvents(string, uint64)      {}

func (m *recMetrics) MapPressure(name string, entries, capacity int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pressure[name] = [2]int{entries, capacity}
}

func (m *recMetrics) MapOps(name, op, outcome string, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ops[[3]string{name, op, outcome}] += n
}

// take returns the pressure reported so far and the operations since the last take.
func (m *recMetrics) take() (map[string][2]int, map[[3]string]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ops := m.ops
	m.ops = map[[3]string]int{}
	return maps.Clone(m.pressure), ops
}

// TestMetrics: every change of the policy and ipcache maps reports their fill, from what the
// Datapath wrote, and every batch its operations.
func TestMetrics(t *testing.T) {
	met := newRecMetrics()
	spec := testSpec()
	spec.Metrics, spec.MaxEntriesPerEndpoint = met, 8
	d := bpftest.Load(t, spec)
	if p, ops := met.take(); len(p) != 0 || len(ops) != 0 {
		t.Errorf("Load without pinned maps reported pressure %v and operations %v, want none", p, ops)
	}
	type ops = map[[3]string]int
	type pressure = map[string][2]int
	check := func(t *testing.T, step string, wantP pressure, wantOps ops) {
		t.Helper()
		p, o := met.take()
		if diff := cmp.Diff(wantP, p); diff != "" {
			t.Errorf("%s: map pressure (-want +got):\n%s", step, diff)
		}
		if diff := cmp.Diff(wantOps, o); diff != "" {
			t.Errorf("%s: map operations (-want +got):\n%s", step, diff)
		}
	}
	ipc := pressure{"ceskit_ipcache4": {3, 1024}, "ceskit_ipcache": {1, 1024}, "ceskit_ipcache_lpm": {3, 1024}}
	if err := d.SetIdentities(testIdentities); err != nil {
		t.Fatal(err)
	}
	check(t, "SetIdentities", ipc, ops{
		{"ceskit_ipcache4", "update", "success"}: 3, {"ceskit_ipcache", "update", "success"}: 1,
		{"ceskit_ipcache_lpm", "update", "success"}: 3,
	})

	withIPC := func(p pressure) pressure {
		maps.Copy(p, ipc)
		return p
	}
	// Endpoint 1: two exact ports and a range left in the prefix trie.
	syncEP(t, d, 1, allowE(1001, pIn, pTCP, 80, 16), allowE(1001, pIn, pTCP, 81, 16), allowE(1001, pIn, pTCP, 32768, 1))
	check(t, "sync endpoint 1", withIPC(pressure{"ceskit_policy": {2, 8192}, "ceskit_policy_lpm": {1, 8192}, "ceskit_policy_endpoint": {3, 8}}),
		ops{{"ceskit_policy", "update", "success"}: 2, {"ceskit_policy_lpm", "update", "success"}: 1})
	// Endpoint 2: one exact port; the fullest endpoint is still 1.
	syncEP(t, d, 2, allowE(0, pOut, pUDP, 53, 16))
	check(t, "sync endpoint 2", withIPC(pressure{"ceskit_policy": {3, 8192}, "ceskit_policy_lpm": {1, 8192}, "ceskit_policy_endpoint": {3, 8}}),
		ops{{"ceskit_policy", "update", "success"}: 1})
	// A diff: port 81 goes, 82 comes.
	if _, err := d.ApplyEndpoint(1, []datapath.Entry{allowE(1001, pIn, pTCP, 82, 16)}, []datapath.Entry{allowE(1001, pIn, pTCP, 81, 16)}); err != nil {
		t.Fatal(err)
	}
	check(t, "apply endpoint 1", withIPC(pressure{"ceskit_policy": {3, 8192}, "ceskit_policy_lpm": {1, 8192}, "ceskit_policy_endpoint": {3, 8}}),
		ops{{"ceskit_policy", "update", "success"}: 1, {"ceskit_policy", "delete", "success"}: 1})
	if err := d.DetachEndpoint(1); err != nil {
		t.Fatal(err)
	}
	check(t, "detach endpoint 1", withIPC(pressure{"ceskit_policy": {1, 8192}, "ceskit_policy_lpm": {0, 8192}, "ceskit_policy_endpoint": {1, 8}}),
		ops{{"ceskit_policy", "delete", "success"}: 2, {"ceskit_policy_lpm", "delete", "success"}: 1})
	// A rejected sync (capacity) writes and reports nothing.
	if _, err := d.SyncEndpoint(3, make([]datapath.Entry, 0)); err != nil {
		t.Fatal(err)
	}
	met.take()
	tooMany := make([]datapath.Entry, 0, 9)
	for i := range 9 {
		tooMany = append(tooMany, allowE(1001, pIn, pTCP, uint16(1000+i), 16))
	}
	if _, err := d.SyncEndpoint(3, tooMany); !errors.Is(err, datapath.ErrCapacity) {
		t.Fatalf("SyncEndpoint over the endpoint limit = %v, want ErrCapacity", err)
	}
	if _, o := met.take(); len(o) != 0 {
		t.Errorf("a rejected sync reported operations %v", o)
	}
	// The ipcache shrinks: one IPv4 address and one prefix go.
	smaller := maps.Clone(testIdentities)
	delete(smaller, pfx("10.0.1.2/32"))
	delete(smaller, pfx("10.1.0.0/16"))
	if err := d.SetIdentities(smaller); err != nil {
		t.Fatal(err)
	}
	ipc = pressure{"ceskit_ipcache4": {2, 1024}, "ceskit_ipcache": {1, 1024}, "ceskit_ipcache_lpm": {2, 1024}}
	check(t, "SetIdentities smaller", withIPC(pressure{"ceskit_policy": {1, 8192}, "ceskit_policy_lpm": {0, 8192}, "ceskit_policy_endpoint": {1, 8}}),
		ops{{"ceskit_ipcache4", "delete", "success"}: 1, {"ceskit_ipcache_lpm", "delete", "success"}: 1})
	// Conntrack flushes count as deletes.
	runProg(t, d, 2, pOut, udpPkt(podV4, "10.0.1.1", 1000, 53).bytes())
	if n, err := d.FlushConntrack(0); err != nil || n != 1 {
		t.Fatalf("FlushConntrack = %d, %v; want 1", n, err)
	}
	if _, o := met.take(); !cmp.Equal(o, ops{{"ceskit_ct", "delete", "success"}: 1}) {
		t.Errorf("FlushConntrack operations %v, want 1 ceskit_ct delete", o)
	}
}

// TestMetricsPinned: Load reports the fill of what it restores from pinned maps, and a batch the
// kernel refuses counts as failed operations.
func TestMetricsPinned(t *testing.T) {
	bpftest.RequireRoot(t, "ip")
	pins := filepath.Join(bpftest.MountBPFFS(t), "ceskit")
	spec := testSpec()
	spec.PinPath, spec.PolicyEntries = pins, 4
	d1 := bpftest.Load(t, spec)
	if err := d1.SetIdentities(map[netip.Prefix]uint32{pfx("10.0.1.1/32"): 1001, pfx("fd00::/64"): 3001}); err != nil {
		t.Fatal(err)
	}
	syncEP(t, d1, 1, allowE(1001, pIn, pTCP, 80, 16), allowE(1001, pIn, pTCP, 81, 16))
	if err := d1.Close(); err != nil {
		t.Fatal(err)
	}

	met := newRecMetrics()
	spec.Metrics = met
	d2 := bpftest.Load(t, spec)
	p, o := met.take()
	want := map[string][2]int{
		"ceskit_policy": {2, 4}, "ceskit_policy_lpm": {0, 4}, "ceskit_policy_endpoint": {2, 4096},
		"ceskit_ipcache4": {1, 1024}, "ceskit_ipcache": {0, 1024}, "ceskit_ipcache_lpm": {1, 1024},
	}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("pressure after restoring pinned maps (-want +got):\n%s", diff)
	}
	if len(o) != 0 {
		t.Errorf("restoring reported operations %v, want none", o)
	}

	// Another writer fills the shared exact map behind the Datapath's back: the next batch fails.
	m, err := ebpf.LoadPinnedMap(filepath.Join(pins, "ceskit_policy"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	type key struct {
		EpID, Identity uint32
		Dir, Proto     uint8
		Port           uint16
	}
	type val struct {
		Verdict, Flags, Match, Pad uint8
		Cookie                     uint32
	}
	for port := range uint16(2) {
		if err := m.Put(key{EpID: 99, Identity: 1, Proto: 6, Port: port}, val{Verdict: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d2.SyncEndpoint(2, []datapath.Entry{allowE(1001, pIn, pTCP, 80, 16)}); err == nil {
		t.Fatalf("SyncEndpoint into a full map succeeded")
	}
	if _, o := met.take(); !cmp.Equal(o, map[[3]string]int{{"ceskit_policy", "update", "fail"}: 1}) {
		t.Errorf("operations of the refused batch: %v, want 1 failed ceskit_policy update", o)
	}
}

// TestPinnedCountersReplaced: pinned counters of an older layout (one per reason, not per
// direction and reason) do not stop Load; they are replaced and count from zero.
func TestPinnedCountersReplaced(t *testing.T) {
	bpftest.RequireRoot(t, "ip")
	pins := filepath.Join(bpftest.MountBPFFS(t), "ceskit")
	if err := os.MkdirAll(pins, 0o700); err != nil {
		t.Fatal(err)
	}
	old, err := ebpf.NewMap(&ebpf.MapSpec{Name: "ceskit_counters", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := old.Pin(filepath.Join(pins, "ceskit_counters")); err != nil {
		t.Fatal(err)
	}
	spec := testSpec()
	spec.PinPath = pins
	d := bpftest.Load(t, spec)
	syncEP(t, d, 1)
	runProg(t, d, 1, pOut, tcpPkt(podV4, "10.0.1.1", 1, 80).bytes())
	if got := stats(t, d).Egress[datapath.ReasonDropDefault]; got != 1 {
		t.Errorf("egress default-deny drops = %d, want 1", got)
	}
}
