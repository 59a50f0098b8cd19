package monitor_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/ceskit/ceskit/datapath"
	"github.com/ceskit/ceskit/datapath/monitor"
	"github.com/ceskit/ceskit/internal/bpftest"
	"github.com/ceskit/ceskit/observe"
)

// recSink records flows; with fail set it refuses every record.
type recSink struct {
	mu    sync.Mutex
	flows []observe.Flow
	fail  bool
}

func (s *recSink) Write(_ context.Context, r observe.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("sink refuses")
	}
	s.flows = append(s.flows, *r.Flow)
	return nil
}

func (s *recSink) get() []observe.Flow {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]observe.Flow(nil), s.flows...)
}

// wait returns the flows once there are n, failing the test after 5 seconds.
func (s *recSink) wait(tb testing.TB, n int) []observe.Flow {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := s.get()
		if len(got) >= n || time.Now().After(deadline) {
			if len(got) != n {
				tb.Fatalf("got %d flows, want %d: %+v", len(got), n, got)
			}
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recMetrics sums the packets and lost events the monitor reports.
type recMetrics struct {
	mu      sync.Mutex
	packets map[string]uint64 // "drop/DIRECTION"
	lost    map[string]uint64
	reports int // Packets and LostEvents calls
}

func newRecMetrics() *recMetrics {
	return &recMetrics{packets: map[string]uint64{}, lost: map[string]uint64{}}
}

func (m *recMetrics) Packets(drop uint32, dir string, n uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.packets[fmt.Sprintf("%d/%s", drop, dir)] += n
	m.reports++
}

func (m *recMetrics) LostEvents(source string, n uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lost[source] += n
	m.reports++
}

func (m *recMetrics) MapPressure(string, int, int)       {}
func (m *recMetrics) MapOps(string, string, string, int) {}

func (m *recMetrics) get() (packets, lost map[string]uint64, reports int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.packets), maps.Clone(m.lost), m.reports
}

// started runs the monitor until the test ends (or stop is called) and returns stop, which
// cancels Run and returns its error.
func started(t *testing.T, mon *monitor.Monitor) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- mon.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// tick steps the fake clock by interval once Run's ticker waits on it, and waits until the
// metrics saw more calls than before.
func tick(t *testing.T, fc *clocktesting.FakeClock, interval time.Duration, met *recMetrics) {
	t.Helper()
	_, _, before := met.get()
	deadline := time.Now().Add(5 * time.Second)
	for !fc.HasWaiters() {
		if time.Now().After(deadline) {
			t.Fatal("the monitor's ticker never started")
		}
		time.Sleep(time.Millisecond)
	}
	fc.Step(interval)
	for {
		if _, _, n := met.get(); n > before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no counters reported after a tick")
		}
		time.Sleep(time.Millisecond)
	}
}

func testSpec() datapath.Spec {
	return datapath.Spec{
		PolicyEntries: 1024, MaxEntriesPerEndpoint: 1024, IPCacheEntries: 64, IPCachePrefixes: 64,
		ConntrackEntries: 1024, EventsBytes: 1 << 16, ReportNewFlows: true,
	}
}

const (
	ep   = 7
	pod4 = "10.0.0.1"
	pod6 = "fd00::1"
)

var (
	pIn  = datapath.Ingress
	pOut = datapath.Egress
)

func setup(t *testing.T, spec datapath.Spec) *datapath.Datapath {
	t.Helper()
	d := bpftest.Load(t, spec)
	p := netip.MustParsePrefix
	if err := d.SetIdentities(map[netip.Prefix]uint32{p("10.0.1.1/32"): 1001, p("10.0.1.2/32"): 1002, p("fd00:1::5/128"): 3001}); err != nil {
		t.Fatal(err)
	}
	entries := []datapath.Entry{
		{Identity: 1001, Direction: pIn, Protocol: datapath.ProtoTCP, Port: 80, PortPrefixLen: 16, Verdict: datapath.Allow, Precedence: 1, Cookie: 1},
		{Identity: 0, Direction: pIn, Protocol: datapath.ProtoTCP, Port: 22, PortPrefixLen: 16, Verdict: datapath.Deny, Precedence: 2, Cookie: 2},
		{Identity: 1002, Direction: pIn, Protocol: datapath.ProtoUDP, Port: 53, PortPrefixLen: 16, Verdict: datapath.Audit, Precedence: 1, Cookie: 3},
		{Identity: 3001, Direction: pOut, Protocol: datapath.ProtoICMPv6, Port: 128, PortPrefixLen: 16, Verdict: datapath.Allow, Precedence: 1, Cookie: 4},
		{Identity: 1001, Direction: pOut, Protocol: datapath.ProtoSCTP, Verdict: datapath.Allow, Precedence: 1, Cookie: 5},
	}
	if _, err := d.SyncEndpoint(ep, entries); err != nil {
		t.Fatal(err)
	}
	return d
}

var (
	web        = observe.Endpoint{ID: ep, Identity: 5000, Namespace: "shop", PodName: "web-1", Labels: []string{"k8s:app=web"}}
	frontend   = observe.Endpoint{Identity: 1001, Namespace: "shop", Labels: []string{"k8s:app=frontend"}}
	dnsClient  = observe.Endpoint{Identity: 1002, Namespace: "shop", Labels: []string{"k8s:app=dns-client"}}
	pinged     = observe.Endpoint{Identity: 3001, Labels: []string{"cidr:fd00:1::5/128"}}
	allowHTTP  = observe.Policy{Kind: "CiliumNetworkPolicy", Namespace: "shop", Name: "allow-frontend"}
	denySSH    = observe.Policy{Kind: "CiliumClusterwideNetworkPolicy", Name: "deny-ssh"}
	auditDNS   = observe.Policy{Kind: "CiliumNetworkPolicy", Namespace: "shop", Name: "dns", Labels: []string{"k8s:io.cilium.k8s.policy.name=dns"}}
	allowPing  = observe.Policy{Kind: "NetworkPolicy", Namespace: "shop", Name: "ping"}
	world      = observe.Endpoint{Identity: 2, Labels: []string{"reserved:world"}}
	testPolicy = map[uint32]struct {
		rule     string
		policies []observe.Policy
	}{1: {"allow-http", []observe.Policy{allowHTTP}}, 2: {"deny-ssh", []observe.Policy{denySSH}}, 3: {"audit-dns", []observe.Policy{auditDNS}}, 4: {"ping", []observe.Policy{allowPing}}}
)

func testResolver() *monitor.StaticResolver {
	r := &monitor.StaticResolver{}
	r.SetEndpoint(ep, web)
	for _, e := range []observe.Endpoint{frontend, dnsClient, pinged} {
		r.SetIdentity(e.Identity, e)
	}
	for c, p := range testPolicy {
		r.SetPolicy(c, p.rule, p.policies...)
	}
	return r
}

// policyFlow is a policy verdict flow with the fields every test flow shares.
func policyFlow(v observe.Verdict, dir observe.TrafficDirection, src, dst observe.Endpoint, ip observe.IP, l4 observe.Layer4) observe.Flow {
	return observe.Flow{
		Verdict: v, TrafficDirection: dir, Source: &src, Destination: &dst, IP: &ip, L4: &l4,
		Type: observe.FlowTypeL3L4, NodeName: "node-1", EventType: &observe.EventType{Type: observe.EventTypePolicyVerdict},
	}
}

// TestMonitor runs packets through the programs and checks the flows written to the sink and
// the counters reported to the metrics, per tick and at the end.
func TestMonitor(t *testing.T) {
	d := setup(t, testSpec())
	sink, met := &recSink{}, newRecMetrics()
	fc := clocktesting.NewFakeClock(time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC))
	const interval = time.Minute
	mon, err := monitor.New(d, monitor.Config{
		Sink: sink, Resolver: testResolver(), Metrics: met, NodeName: "node-1", StatsInterval: interval, Clock: fc,
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := started(t, mon)

	tcp, udp := datapath.ProtoTCP, datapath.ProtoUDP
	steps := []struct {
		dir   datapath.Direction
		frame []byte
	}{
		{pIn, pkt{src: "10.0.1.1", dst: pod4, proto: tcp, sport: 40000, dport: 80}.frame()},                  // allowed
		{pIn, pkt{src: "10.0.1.1", dst: pod4, proto: tcp, sport: 40000, dport: 80}.frame()},                  // conntrack
		{pOut, pkt{src: pod4, dst: "10.0.1.1", proto: tcp, sport: 80, dport: 40000}.frame()},                 // reply, conntrack
		{pIn, pkt{src: "10.0.1.2", dst: pod4, proto: tcp, sport: 40001, dport: 22}.frame()},                  // deny rule
		{pIn, pkt{src: "192.0.2.9", dst: pod4, proto: tcp, sport: 40002, dport: 443}.frame()},                // default deny, world
		{pIn, pkt{src: "10.0.1.2", dst: pod4, proto: udp, sport: 5353, dport: 53}.frame()},                   // audit
		{pOut, pkt{src: pod6, dst: "fd00:1::5", proto: datapath.ProtoICMPv6, sport: 77, dport: 128}.frame()}, // echo request
		{pOut, pkt{src: pod4, dst: "10.0.1.1", proto: datapath.ProtoSCTP, sport: 5000, dport: 9}.frame()},    // sctp, no policy names
		{pIn, pkt{src: "10.0.1.2", dst: pod4, proto: udp, sport: 5353, dport: 53, fragOffset: 100}.frame()},  // later fragment
		{pIn, pkt{src: "10.0.1.1", dst: pod4, proto: datapath.ProtoICMP, dport: 3, icmpCode: 1}.frame()},     // host unreachable
		{pIn, arpFrame()},     // not IP
		{pIn, invalidFrame()}, // invalid
	}
	start := time.Now()
	for _, s := range steps {
		run(t, d, ep, s.dir, s.frame)
	}
	v4 := func(src, dst string) observe.IP {
		return observe.IP{Source: src, Destination: dst, IPVersion: observe.IPv4}
	}
	tcpL4 := func(s, d uint32) observe.Layer4 {
		return observe.Layer4{TCP: &observe.TCP{SourcePort: s, DestinationPort: d}}
	}
	withPolicy := func(f observe.Flow, match observe.PolicyMatchType, cookie uint32, set func(*observe.Flow, []observe.Policy)) observe.Flow {
		f.PolicyMatchType = match
		f.Ceskit = &observe.FlowExtras{Cookie: cookie, Rule: testPolicy[cookie].rule}
		if set != nil {
			set(&f, testPolicy[cookie].policies)
		}
		return f
	}
	dropped := func(f observe.Flow, r observe.DropReason) observe.Flow {
		f.DropReasonDesc = r
		return f
	}
	want := []observe.Flow{
		withPolicy(policyFlow(observe.VerdictForwarded, observe.DirectionIngress, frontend, web, v4("10.0.1.1", pod4), tcpL4(40000, 80)),
			observe.PolicyMatchL3L4, 1, func(f *observe.Flow, p []observe.Policy) { f.IngressAllowedBy = p }),
		withPolicy(dropped(policyFlow(observe.VerdictDropped, observe.DirectionIngress, dnsClient, web, v4("10.0.1.2", pod4), tcpL4(40001, 22)), observe.DropPolicyDeny),
			observe.PolicyMatchL4Only, 2, func(f *observe.Flow, p []observe.Policy) { f.IngressDeniedBy = p }),
		dropped(policyFlow(observe.VerdictDropped, observe.DirectionIngress, world, web, v4("192.0.2.9", pod4), tcpL4(40002, 443)), observe.DropPolicyDenied),
		withPolicy(policyFlow(observe.VerdictAudit, observe.DirectionIngress, dnsClient, web, v4("10.0.1.2", pod4),
			observe.Layer4{UDP: &observe.UDP{SourcePort: 5353, DestinationPort: 53}}),
			observe.PolicyMatchL3L4, 3, func(f *observe.Flow, p []observe.Policy) { f.IngressDeniedBy = p }),
		withPolicy(policyFlow(observe.VerdictForwarded, observe.DirectionEgress, web, pinged,
			observe.IP{Source: pod6, Destination: "fd00:1::5", IPVersion: observe.IPv6}, observe.Layer4{ICMPv6: &observe.ICMP{Type: 128}}),
			observe.PolicyMatchL3L4, 4, func(f *observe.Flow, p []observe.Policy) { f.EgressAllowedBy = p }),
		withPolicy(policyFlow(observe.VerdictForwarded, observe.DirectionEgress, web, frontend, v4(pod4, "10.0.1.1"),
			observe.Layer4{SCTP: &observe.SCTP{SourcePort: 5000, DestinationPort: 9}}), observe.PolicyMatchL3Proto, 5, nil),
		dropped(policyFlow(observe.VerdictDropped, observe.DirectionIngress, dnsClient, web, v4("10.0.1.2", pod4), observe.Layer4{UDP: &observe.UDP{}}), 157),
		dropped(policyFlow(observe.VerdictDropped, observe.DirectionIngress, frontend, web, v4("10.0.1.1", pod4),
			observe.Layer4{ICMPv4: &observe.ICMP{Type: 3, Code: 1}}), observe.DropPolicyDenied),
	}
	got := sink.wait(t, len(want))
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(observe.Flow{}, "Time")); diff != "" {
		t.Errorf("flows (-want +got):\n%s", diff)
	}
	// The wall-clock time is the fake clock's now, less how long ago (on CLOCK_MONOTONIC) the
	// packet went through.
	for i, f := range got {
		if age := fc.Now().Sub(f.Time); age < 0 || age > time.Since(start)+time.Second {
			t.Errorf("flow %d: time %v is %v before the clock's now %v; the packets ran %v ago", i, f.Time, age, fc.Now(), time.Since(start))
		}
	}

	tick(t, fc, interval, met)
	packets, lost, _ := met.get()
	wantPackets := map[string]uint64{
		"0/INGRESS":   4, // allowed, conntrack, audited, non-IP
		"181/INGRESS": 1, "133/INGRESS": 2, "157/INGRESS": 1, "134/INGRESS": 1,
		"0/EGRESS": 3, // reply by conntrack, echo request, sctp
	}
	if diff := cmp.Diff(wantPackets, packets); diff != "" {
		t.Errorf("packets after the first tick (-want +got):\n%s", diff)
	}
	if len(lost) != 0 {
		t.Errorf("lost events %v, want none", lost)
	}

	// Two more default denies, then stop at once: Run writes their flows before it returns, and
	// its last report adds only them.
	for i := range 2 {
		run(t, d, ep, pIn, pkt{src: "192.0.2.9", dst: pod4, proto: tcp, sport: uint16(50000 + i), dport: 443}.frame())
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := sink.get(); len(got) != len(want)+2 {
		t.Errorf("flows after Run returned: %d, want %d (the ring buffer is drained)", len(got), len(want)+2)
	}
	wantPackets["133/INGRESS"] += 2
	packets, _, _ = met.get()
	if diff := cmp.Diff(wantPackets, packets); diff != "" {
		t.Errorf("packets after Run returned (-want +got):\n%s", diff)
	}
	if c := mon.Counts(); c != (monitor.Counts{Events: uint64(len(want) + 2)}) {
		t.Errorf("Counts = %+v, want %d events", c, len(want)+2)
	}

	// Run again: the counters carry on from the last report.
	stop = started(t, mon)
	run(t, d, ep, pOut, pkt{src: pod4, dst: "192.0.2.9", proto: udp, sport: 1, dport: 53}.frame())
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	wantPackets["133/EGRESS"] = 1
	packets, _, _ = met.get()
	if diff := cmp.Diff(wantPackets, packets); diff != "" {
		t.Errorf("packets after a second Run (-want +got):\n%s", diff)
	}
}

func TestMonitorRunning(t *testing.T) {
	d := setup(t, testSpec())
	fc := clocktesting.NewFakeClock(time.Now())
	mon, err := monitor.New(d, monitor.Config{Clock: fc})
	if err != nil {
		t.Fatal(err)
	}
	stop := started(t, mon)
	for deadline := time.Now().Add(5 * time.Second); !fc.HasWaiters(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Run never started its ticker")
		}
	}
	if err := mon.Run(t.Context()); !errors.Is(err, monitor.ErrRunning) {
		t.Errorf("a second Run = %v, want ErrRunning", err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestMonitorSinkErrors: a failing sink is counted and does not stop the loop.
func TestMonitorSinkErrors(t *testing.T) {
	d := setup(t, testSpec())
	sink := &recSink{fail: true}
	mon, err := monitor.New(d, monitor.Config{Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	stop := started(t, mon)
	for i := range 3 {
		run(t, d, ep, pIn, pkt{src: "192.0.2.9", dst: pod4, proto: datapath.ProtoTCP, sport: uint16(1000 + i), dport: 443}.frame())
	}
	if err := stop(); err != nil {
		t.Fatalf("Run with a failing sink: %v", err)
	}
	if c := mon.Counts(); c != (monitor.Counts{Events: 3, SinkErrors: 3}) {
		t.Errorf("Counts = %+v, want 3 events, 3 sink errors", c)
	}
}

// TestMonitorLostEvents: events over the per-CPU rate are reported as lost.
func TestMonitorLostEvents(t *testing.T) {
	spec := testSpec()
	spec.EventRate, spec.EventBurst = 1, 2
	d := setup(t, spec)
	sink, met := &recSink{}, newRecMetrics()
	mon, err := monitor.New(d, monitor.Config{Sink: sink, Metrics: met})
	if err != nil {
		t.Fatal(err)
	}
	stop := started(t, mon)
	pinCPU(t)
	for i := range 5 {
		run(t, d, ep, pIn, pkt{src: "192.0.2.9", dst: pod4, proto: datapath.ProtoTCP, sport: uint16(1000 + i), dport: 443}.frame())
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	_, lost, _ := met.get()
	if diff := cmp.Diff(map[string]uint64{"rate_limit": 3}, lost); diff != "" {
		t.Errorf("lost events (-want +got):\n%s", diff)
	}
	if n := len(sink.get()); n != 2 {
		t.Errorf("%d flows, want 2 (the burst)", n)
	}
}

// TestMonitorCounterReset: a counter lower than at the previous report (the datapath's maps were
// replaced) counts again from zero.
func TestMonitorCounterReset(t *testing.T) {
	spec := testSpec()
	spec.PinPath = filepath.Join(bpffs(t), "ceskit")
	d := setup(t, spec)
	met := newRecMetrics()
	fc := clocktesting.NewFakeClock(time.Now())
	mon, err := monitor.New(d, monitor.Config{Metrics: met, Clock: fc, StatsInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	stop := started(t, mon)
	deny := func(n int) {
		for i := range n {
			run(t, d, ep, pIn, pkt{src: "192.0.2.9", dst: pod4, proto: datapath.ProtoTCP, sport: uint16(1000 + i), dport: 443}.frame())
		}
	}
	deny(3)
	tick(t, fc, time.Minute, met)
	// Zero the pinned counters, as a new map would start.
	m, err := ebpf.LoadPinnedMap(filepath.Join(spec.PinPath, "ceskit_counters"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	for i := range m.MaxEntries() {
		if err := m.Put(i, make([]uint64, cpus)); err != nil {
			t.Fatal(err)
		}
	}
	deny(1)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	packets, _, _ := met.get()
	if diff := cmp.Diff(map[string]uint64{"133/INGRESS": 4}, packets); diff != "" {
		t.Errorf("packets (-want +got):\n%s", diff)
	}
}

func TestConfigValidate(t *testing.T) {
	err := monitor.Config{StatsInterval: -time.Second}.Validate()
	var ce *monitor.ConfigError
	if !errors.As(err, &ce) || ce.Field != "StatsInterval" || !errors.Is(err, monitor.ErrInvalidConfig) {
		t.Errorf("Validate with a negative StatsInterval = %v, want a ConfigError for StatsInterval", err)
	}
	if err := (monitor.Config{}).Validate(); err != nil {
		t.Errorf("the zero Config: %v", err)
	}
	if _, err := monitor.New(nil, monitor.Config{}); !errors.Is(err, monitor.ErrInvalidConfig) {
		t.Errorf("New(nil) = %v, want ErrInvalidConfig", err)
	}
}

// pinCPU keeps the calling goroutine on one CPU for the rest of the test, so that the per-CPU
// rate limiter sees every packet.
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
	t.Fatal("no CPU in the affinity mask")
}

// bpffs mounts a bpffs on a temporary directory, unmounted when the test ends.
func bpffs(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping privileged BPF test: not running as root")
	}
	dir := filepath.Join(t.TempDir(), "bpffs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("bpf", dir, "bpf", 0, ""); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mount bpffs: %v", err)
		}
		t.Skipf("skipping privileged BPF test: mount bpffs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount bpffs: %v", err)
		}
	})
	return dir
}
