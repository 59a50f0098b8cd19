package monitor_test

import (
	"context"
	"io"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/ceskit/ceskit/datapath"
	"github.com/ceskit/ceskit/datapath/monitor"
	"github.com/ceskit/ceskit/internal/bpftest"
	"github.com/ceskit/ceskit/observe"
)

// BenchmarkFlowFromEvent converts a denied TCP event with a resolver that knows both ends and
// the policy (ns/event).
func BenchmarkFlowFromEvent(b *testing.B) {
	r := testResolver()
	ev := datapath.Event{
		Time: time.Second, Endpoint: ep, Remote: 1002, Src: netip.MustParseAddr("10.0.1.2"), Dst: netip.MustParseAddr(pod4),
		SrcPort: 40001, DstPort: 22, Protocol: datapath.ProtoTCP, Direction: datapath.Ingress, Verdict: datapath.Deny,
		Cookie: 2, Match: datapath.MatchL4Only, Reason: datapath.ReasonDropDeny,
	}
	now := time.Now()
	b.ReportAllocs()
	var f observe.Flow
	for b.Loop() {
		f = monitor.FlowFromEvent(ev, now, 2*time.Second, r, "node-1")
	}
	if f.Verdict != observe.VerdictDropped {
		b.Fatal(f)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
}

// countSink counts records and passes them on to next, if set.
type countSink struct {
	n    atomic.Int64
	next observe.Sink
}

func (s *countSink) Write(ctx context.Context, r observe.Record) error {
	s.n.Add(1)
	if s.next != nil {
		return s.next.Write(ctx, r)
	}
	return nil
}

// BenchmarkMonitor is the end-to-end rate: denied packets through BPF_PROG_TEST_RUN (1,000 per
// run, the next run once the monitor has written them all, so that none is lost) emit events,
// the monitor reads them, builds flows and writes them to a sink that counts them (sink=count) or
// also encodes them as JSON lines to io.Discard (sink=json). events/s is the flows written per
// second of the whole run, packet processing included.
func BenchmarkMonitor(b *testing.B) {
	for _, c := range []struct {
		name string
		next observe.Sink
	}{{"sink=count", nil}, {"sink=json", observe.NewJSONLinesSink(io.Discard)}} {
		b.Run(c.name, func(b *testing.B) {
			spec := testSpec()
			spec.EventsBytes, spec.EventRate, spec.EventBurst = 16<<20, 1<<30, 1<<30
			d := bpftest.Load(b, spec)
			if _, err := d.SyncEndpoint(ep, nil); err != nil {
				b.Fatal(err)
			}
			prog, err := d.Program(ep, datapath.Ingress)
			if err != nil {
				b.Fatal(err)
			}
			sink := &countSink{next: c.next}
			mon, err := monitor.New(d, monitor.Config{Sink: sink, Resolver: testResolver(), NodeName: "node-1"})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- mon.Run(ctx) }()
			frame := pkt{src: "10.0.1.2", dst: pod4, proto: datapath.ProtoTCP, sport: 40001, dport: 443}.frame()
			const batch = 1000
			// wait waits until the sink has n records, or the events were lost.
			wait := func(n int64) {
				for deadline := time.Now().Add(10 * time.Second); sink.n.Load() < n; time.Sleep(20 * time.Microsecond) {
					if time.Now().After(deadline) {
						s, _ := d.Stats()
						b.Fatalf("%d of %d events written in 10s; lost %d to the ring buffer, %d to the rate limit",
							sink.n.Load(), n, s.LostRingbuf, s.LostRateLimit)
					}
				}
			}
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				if _, err := prog.Run(&ebpf.RunOptions{Data: frame, Repeat: batch}); err != nil {
					b.Fatal(err)
				}
				// In step with the reader, so that the ring buffer never overflows: this is the
				// rate without losses.
				wait(int64(i+1) * batch)
			}
			el := time.Since(start)
			b.StopTimer()
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			written := sink.n.Load()
			b.ReportMetric(float64(written)/el.Seconds(), "events/s")
			b.ReportMetric(float64(el.Nanoseconds())/float64(written), "ns/event")
		})
	}
}
