package monitor_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ceskit/ceskit/datapath"
	"github.com/ceskit/ceskit/datapath/monitor"
	"github.com/ceskit/ceskit/observe"
)

// TestObservePipeline wires the real pieces end to end: the datapath reports map pressure to
// observe.DatapathMetrics, the monitor turns verdict events into flows for a JSON-lines sink and
// observe.FlowMetrics, and its counter deltas into the same DatapathMetrics; the Prometheus
// registry must then hold what the packets did.
func TestObservePipeline(t *testing.T) {
	reg := prometheus.NewRegistry()
	dm, err := observe.NewDatapathMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	fm, err := observe.NewFlowMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	spec := testSpec()
	spec.Metrics = dm
	d := setup(t, spec)
	sink := &recSink{}
	mon, err := monitor.New(d, monitor.Config{
		Sink: observe.MultiSink(sink, fm), Resolver: testResolver(), Metrics: dm, NodeName: "node-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := started(t, mon)
	tcp := datapath.ProtoTCP
	run(t, d, ep, pIn, pkt{src: "10.0.1.1", dst: pod4, proto: tcp, sport: 40000, dport: 80}.frame())   // allowed, new flow
	run(t, d, ep, pIn, pkt{src: "10.0.1.2", dst: pod4, proto: tcp, sport: 40001, dport: 22}.frame())   // deny rule
	run(t, d, ep, pIn, pkt{src: "192.0.2.9", dst: pod4, proto: tcp, sport: 40002, dport: 22}.frame())  // deny rule, world
	run(t, d, ep, pIn, pkt{src: "192.0.2.9", dst: pod4, proto: tcp, sport: 40003, dport: 443}.frame()) // default deny
	sink.wait(t, 4)
	if err := stop(); err != nil { // the final stats report happens on the way out
		t.Fatal(err)
	}

	for _, c := range []struct {
		got  float64
		want float64
		name string
	}{
		{labelled(t, reg, "cilium_drop_count_total", map[string]string{"reason": "Policy denied by denylist", "direction": "INGRESS"}), 2, "deny-rule drops"},
		{labelled(t, reg, "cilium_drop_count_total", map[string]string{"reason": "Policy denied", "direction": "INGRESS"}), 1, "default-deny drops"},
		{labelled(t, reg, "cilium_forward_count_total", map[string]string{"direction": "INGRESS"}), 1, "forwarded"},
		{labelled(t, reg, "hubble_policy_verdicts_total", map[string]string{"action": "dropped", "direction": "ingress"}), 3, "dropped verdicts"},
		{labelled(t, reg, "hubble_policy_verdicts_total", map[string]string{"action": "forwarded", "direction": "ingress"}), 1, "forwarded verdicts"},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	// 5 entries written (the ICMPv6 and SCTP ones too) into the shared policy map of 1024.
	if got := labelled(t, reg, "cilium_bpf_map_pressure", map[string]string{"map_name": "ceskit_policy"}); got <= 0 || got > 1 {
		t.Errorf("ceskit_policy pressure = %v, want in (0, 1]", got)
	}
}

// labelled returns the sum of the series of family name whose labels include want (other
// labels summed over), failing when there is none.
func labelled(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	found := false
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue series
				}
			}
			found = true
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	if !found {
		t.Fatalf("no series %s%v", name, want)
	}
	return sum
}
