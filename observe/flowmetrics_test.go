package observe_test

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ceskit/ceskit/observe"
)

func newFlowMetrics(t *testing.T) (*observe.FlowMetrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := observe.NewFlowMetrics(reg)
	if err != nil {
		t.Fatalf("NewFlowMetrics: %v", err)
	}
	return m, reg
}

// flowSeries returns the series of s other than the error counter's.
func flowSeries(s map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range s {
		if !strings.HasPrefix(k, observe.MetricsErrorsName) {
			out[k] = v
		}
	}
	return out
}

func TestFlowMetricsWrite(t *testing.T) {
	hostFlow := auditedUDPFlow()
	hostFlow.Verdict = observe.VerdictForwarded
	hostFlow.Source = &observe.Endpoint{Identity: 1, Labels: []string{"reserved:host"}}
	hostFlow.TrafficDirection = observe.DirectionIngress
	hostFlow.PolicyMatchType = observe.PolicyMatchAll

	forwarded := deniedTCPFlow()
	forwarded.Verdict = observe.VerdictForwarded
	forwarded.DropReasonDesc = 0
	forwarded.PolicyMatchType = observe.PolicyMatchL3Only

	icmpDrop := observe.Flow{ // a drop event, not a policy verdict
		Verdict:          observe.VerdictDropped,
		DropReasonDesc:   observe.DropReason(134),
		L4:               &observe.Layer4{ICMPv4: &observe.ICMP{Type: 8}},
		EventType:        &observe.EventType{Type: observe.EventTypeDrop},
		TrafficDirection: observe.DirectionEgress,
	}
	bare := observe.Flow{Verdict: observe.VerdictForwarded} // no event type, no L4

	tests := []struct {
		name  string
		flows []observe.Flow
		want  map[string]float64
	}{{
		name:  "denied at ingress by a deny rule",
		flows: []observe.Flow{deniedTCPFlow()},
		want: map[string]float64{
			`hubble_flows_processed_total{protocol="TCP",subtype="",type="PolicyVerdict",verdict="DROPPED"}`: 1,
			`hubble_drop_total{protocol="TCP",reason="POLICY_DENY"}`:                                         1,
			`hubble_policy_verdicts_total{action="dropped",direction="ingress",match="l3-l4"}`:               1,
		},
	}, {
		name:  "audited at egress by the default deny",
		flows: []observe.Flow{auditedUDPFlow(), auditedUDPFlow()},
		want: map[string]float64{
			`hubble_flows_processed_total{protocol="UDP",subtype="",type="PolicyVerdict",verdict="AUDIT"}`: 2,
			`hubble_policy_verdicts_total{action="audit",direction="egress",match="none"}`:                 2,
		},
	}, {
		name:  "forwarded",
		flows: []observe.Flow{forwarded},
		want: map[string]float64{
			`hubble_flows_processed_total{protocol="TCP",subtype="",type="PolicyVerdict",verdict="FORWARDED"}`: 1,
			`hubble_policy_verdicts_total{action="forwarded",direction="ingress",match="l3-only"}`:             1,
		},
	}, {
		// Hubble's policy handler skips verdicts from reserved:host; the flow handler counts them.
		name:  "from the host",
		flows: []observe.Flow{hostFlow},
		want: map[string]float64{
			`hubble_flows_processed_total{protocol="UDP",subtype="",type="PolicyVerdict",verdict="FORWARDED"}`: 1,
		},
	}, {
		name:  "drop event",
		flows: []observe.Flow{icmpDrop},
		want: map[string]float64{
			`hubble_flows_processed_total{protocol="ICMPv4",subtype="",type="Drop",verdict="DROPPED"}`: 1,
			`hubble_drop_total{protocol="ICMPv4",reason="INVALID_PACKET_DROPPED"}`:                     1,
		},
	}, {
		name:  "no event type",
		flows: []observe.Flow{bare},
		want: map[string]float64{
			`hubble_flows_processed_total{protocol="Unknown flow",subtype="0",type="Unknown",verdict="FORWARDED"}`: 1,
		},
	}, {
		name: "policy verdict without L4, and other event types",
		flows: []observe.Flow{
			{Verdict: observe.VerdictDropped, EventType: &observe.EventType{Type: observe.EventTypePolicyVerdict}},
			{Verdict: observe.VerdictForwarded, EventType: &observe.EventType{Type: 4}},
			{Verdict: observe.VerdictForwarded, EventType: &observe.EventType{Type: 129}},
			{Verdict: observe.VerdictForwarded, EventType: &observe.EventType{Type: 130}},
		},
		want: map[string]float64{
			`hubble_flows_processed_total{protocol="Unknown L4",subtype="",type="PolicyVerdict",verdict="DROPPED"}`:  1,
			`hubble_drop_total{protocol="Unknown L4",reason="DROP_REASON_UNKNOWN"}`:                                  1,
			`hubble_policy_verdicts_total{action="dropped",direction="traffic_direction_unknown",match="none"}`:      1,
			`hubble_flows_processed_total{protocol="Unknown L4",subtype="",type="Trace",verdict="FORWARDED"}`:        1,
			`hubble_flows_processed_total{protocol="Unknown L7",subtype="",type="L7",verdict="FORWARDED"}`:           1,
			`hubble_flows_processed_total{protocol="Unknown flow",subtype="130",type="Unknown",verdict="FORWARDED"}`: 1,
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newFlowMetrics(t)
			for _, f := range tt.flows {
				if err := m.Write(t.Context(), observe.Record{Flow: &f}); err != nil {
					t.Fatalf("Write: %v", err)
				}
			}
			if diff := cmp.Diff(tt.want, flowSeries(snapshot(t, reg))); diff != "" {
				t.Errorf("series (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFlowMetricsEvents(t *testing.T) {
	m, reg := newFlowMetrics(t)
	for _, e := range []observe.Event{
		{Kind: observe.EventKindEndpoint, Action: observe.ActionCreated},
		{Kind: observe.EventKindEndpoint, Action: observe.ActionMoved},
		{Kind: observe.EventKindEndpoint, Action: observe.ActionMoved},
		{Kind: observe.EventKindSlice, Action: observe.ActionDeleted},
	} {
		if err := m.Write(t.Context(), observe.Record{Event: &e}); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	want := map[string]float64{
		`ceskit_events_total{action="created",kind="endpoint"}`: 1,
		`ceskit_events_total{action="moved",kind="endpoint"}`:   2,
		`ceskit_events_total{action="deleted",kind="slice"}`:    1,
	}
	if diff := cmp.Diff(want, flowSeries(snapshot(t, reg))); diff != "" {
		t.Errorf("series (-want +got):\n%s", diff)
	}
}

func TestFlowMetricsEmptyRecord(t *testing.T) {
	m, reg := newFlowMetrics(t)
	for _, r := range []observe.Record{{}, {Flow: &observe.Flow{}, Event: &observe.Event{}}} {
		if err := m.Write(t.Context(), r); !errors.Is(err, observe.ErrEmptyRecord) {
			t.Errorf("Write(%+v) = %v, want ErrEmptyRecord", r, err)
		}
	}
	if s := flowSeries(snapshot(t, reg)); len(s) != 0 {
		t.Errorf("empty records were counted: %v", s)
	}
	var nilMetrics *observe.FlowMetrics
	if err := nilMetrics.Write(t.Context(), observe.Record{Flow: &observe.Flow{}}); err != nil {
		t.Errorf("nil FlowMetrics: Write = %v, want nil", err)
	}
	if err := nilMetrics.Write(t.Context(), observe.Record{}); !errors.Is(err, observe.ErrEmptyRecord) {
		t.Errorf("nil FlowMetrics: Write(empty) = %v, want ErrEmptyRecord", err)
	}
}

func TestFlowMetricsFamilies(t *testing.T) {
	m, reg := newFlowMetrics(t)
	f := deniedTCPFlow()
	if err := m.Write(t.Context(), observe.Record{Flow: &f}); err != nil {
		t.Fatal(err)
	}
	if err := m.Write(t.Context(), observe.Record{Event: &observe.Event{Kind: observe.EventKindSlice, Action: observe.ActionUpdated}}); err != nil {
		t.Fatal(err)
	}
	want := map[string]family{
		"hubble_flows_processed_total": {"COUNTER", "Total number of flows processed", nil},
		"hubble_drop_total":            {"COUNTER", "Number of drops", nil},
		"hubble_policy_verdicts_total": {"COUNTER", "Total number of Cilium network policy verdicts", nil},
		"ceskit_events_total":          {"COUNTER", "Endpoint and endpoint-slice events written to the audit log, by kind and action", nil},
		"ceskit_metrics_errors_total":  {"COUNTER", errorsHelp, nil},
	}
	if diff := cmp.Diff(want, families(t, reg)); diff != "" {
		t.Errorf("metric families (-want +got):\n%s", diff)
	}
}

// TestFlowMetricsInMultiSink checks that FlowMetrics is a Sink next to the log sinks, and
// that concurrent writes are all counted (run with -race).
func TestFlowMetricsInMultiSink(t *testing.T) {
	m, reg := newFlowMetrics(t)
	sink := observe.MultiSink(observe.NewSlogSink(nil), m)
	const workers, n = 4, 250
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range n {
				f := deniedTCPFlow()
				if err := sink.Write(t.Context(), observe.Record{Flow: &f}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if got := snapshot(t, reg)[`hubble_policy_verdicts_total{action="dropped",direction="ingress",match="l3-l4"}`]; got != workers*n {
		t.Errorf("hubble_policy_verdicts_total = %v, want %d", got, workers*n)
	}
}

func TestNewFlowMetricsTwice(t *testing.T) {
	_, reg := newFlowMetrics(t)
	m, err := observe.NewFlowMetrics(reg)
	if err == nil || m != nil {
		t.Fatalf("NewFlowMetrics twice = %v, %v; want nil and an error", m, err)
	}
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Errorf("error %v does not wrap prometheus.AlreadyRegisteredError", err)
	}
}

func TestNewFlowMetricsNilRegisterer(t *testing.T) {
	m, err := observe.NewFlowMetrics(nil)
	if err == nil || m != nil {
		t.Fatalf("NewFlowMetrics(nil) = %v, %v; want nil and an error", m, err)
	}
}

// TestNewFlowMetricsRollback checks that a failed registration leaves nothing behind.
func TestNewFlowMetricsRollback(t *testing.T) {
	reg := prometheus.NewRegistry()
	// Same name, help and labels: a registry keeps a name's help and labels for its lifetime.
	blocker := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ceskit_events_total", Help: "Endpoint and endpoint-slice events written to the audit log, by kind and action",
	}, []string{"kind", "action"})
	reg.MustRegister(blocker)
	if _, err := observe.NewFlowMetrics(reg); err == nil || !strings.Contains(err.Error(), "ceskit_events_total") {
		t.Fatalf("NewFlowMetrics error = %v, want one naming ceskit_events_total", err)
	}
	if s := snapshot(t, reg); len(s) != 0 {
		t.Errorf("series left after a failed registration: %v", s)
	}
	reg.Unregister(blocker)
	if _, err := observe.NewFlowMetrics(reg); err != nil {
		t.Errorf("NewFlowMetrics after removing the blocker: %v", err)
	}
}
