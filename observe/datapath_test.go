package observe_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ceskit/ceskit/datapath"
	"github.com/ceskit/ceskit/observe"
)

// DatapathMetrics implements the datapath's interface without observe importing datapath.
var _ datapath.Metrics = (*observe.DatapathMetrics)(nil)

func newDatapathMetrics(t *testing.T) (*observe.DatapathMetrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := observe.NewDatapathMetrics(reg)
	if err != nil {
		t.Fatalf("NewDatapathMetrics: %v", err)
	}
	return m, reg
}

func TestDatapathMetricsInitialSeries(t *testing.T) {
	_, reg := newDatapathMetrics(t)
	got := map[string]float64{}
	for k, v := range snapshot(t, reg) {
		if !strings.HasPrefix(k, observe.MetricsErrorsName) {
			got[k] = v
		}
	}
	want := map[string]float64{
		`cilium_forward_count_total{direction="INGRESS"}`:                                 0,
		`cilium_forward_count_total{direction="EGRESS"}`:                                  0,
		`cilium_drop_count_total{direction="INGRESS",reason="Policy denied"}`:             0,
		`cilium_drop_count_total{direction="EGRESS",reason="Policy denied"}`:              0,
		`cilium_drop_count_total{direction="INGRESS",reason="Policy denied by denylist"}`: 0,
		`cilium_drop_count_total{direction="EGRESS",reason="Policy denied by denylist"}`:  0,
		`hubble_lost_events_total{source="ring_buffer"}`:                                  0,
		`hubble_lost_events_total{source="rate_limit"}`:                                   0,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("initial series (-want +got):\n%s", diff)
	}
}

func TestDatapathMetricsMethods(t *testing.T) {
	tests := []struct {
		name string
		call func(m datapath.Metrics)
		want map[string]float64
	}{{
		name: "Packets/forwarded",
		call: func(m datapath.Metrics) {
			m.Packets(0, "INGRESS", 10)
			m.Packets(0, "EGRESS", 3)
			m.Packets(0, "EGRESS", 4)
		},
		want: map[string]float64{
			`cilium_forward_count_total{direction="INGRESS"}`: 10,
			`cilium_forward_count_total{direction="EGRESS"}`:  7,
		},
	}, {
		// Cilium's agent labels drops with the text of pkg/monitor/api/drop.go.
		name: "Packets/dropped",
		call: func(m datapath.Metrics) {
			m.Packets(133, "INGRESS", 2)
			m.Packets(181, "EGRESS", 1)
			m.Packets(134, "INGRESS", 5)
			m.Packets(157, "EGRESS", 6)
			m.Packets(189, "INGRESS", 1)  // not produced by ceskit: the flow.proto name
			m.Packets(9999, "INGRESS", 1) // unknown everywhere: the number
		},
		want: map[string]float64{
			`cilium_drop_count_total{direction="INGRESS",reason="Policy denied"}`:                 2,
			`cilium_drop_count_total{direction="EGRESS",reason="Policy denied by denylist"}`:      1,
			`cilium_drop_count_total{direction="INGRESS",reason="Invalid packet"}`:                5,
			`cilium_drop_count_total{direction="EGRESS",reason="IP fragmentation not supported"}`: 6,
			`cilium_drop_count_total{direction="INGRESS",reason="AUTH_REQUIRED"}`:                 1,
			`cilium_drop_count_total{direction="INGRESS",reason="9999"}`:                          1,
		},
	}, {
		name: "LostEvents",
		call: func(m datapath.Metrics) {
			m.LostEvents("ring_buffer", 3)
			m.LostEvents("rate_limit", 100)
		},
		want: map[string]float64{
			`hubble_lost_events_total{source="ring_buffer"}`: 3,
			`hubble_lost_events_total{source="rate_limit"}`:  100,
		},
	}, {
		name: "MapPressure",
		call: func(m datapath.Metrics) {
			m.MapPressure("ceskit_policy", 750, 1000)
			m.MapPressure("ceskit_ipcache4", 0, 0) // no capacity: 0
		},
		want: map[string]float64{
			`cilium_bpf_map_pressure{map_name="ceskit_policy"}`:   0.75,
			`cilium_bpf_map_pressure{map_name="ceskit_ipcache4"}`: 0,
		},
	}, {
		name: "MapOps",
		call: func(m datapath.Metrics) {
			m.MapOps("ceskit_policy", "update", "success", 40)
			m.MapOps("ceskit_policy", "update", "fail", 2)
			m.MapOps("ceskit_policy_lpm", "delete", "success", 1)
			m.MapOps("ceskit_policy", "delete", "success", -3) // a caller bug: dropped and counted
		},
		want: map[string]float64{
			`cilium_bpf_map_ops_total{map_name="ceskit_policy",operation="update",outcome="success"}`:     40,
			`cilium_bpf_map_ops_total{map_name="ceskit_policy",operation="update",outcome="fail"}`:        2,
			`cilium_bpf_map_ops_total{map_name="ceskit_policy_lpm",operation="delete",outcome="success"}`: 1,
			errorsSeries("cilium_bpf_map_ops_total"):                                                      1,
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newDatapathMetrics(t)
			before := snapshot(t, reg)
			tt.call(m)
			if diff := cmp.Diff(tt.want, changed(before, snapshot(t, reg))); diff != "" {
				t.Errorf("changed series (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDatapathMetricsFamilies(t *testing.T) {
	m, reg := newDatapathMetrics(t)
	m.MapPressure("ceskit_ct", 1, 2)
	m.MapOps("ceskit_ct", "delete", "success", 1)
	want := map[string]family{
		"cilium_drop_count_total":     {"COUNTER", "Total dropped packets, tagged by drop reason and ingress/egress direction", nil},
		"cilium_forward_count_total":  {"COUNTER", "Total forwarded packets, tagged by ingress/egress direction", nil},
		"hubble_lost_events_total":    {"COUNTER", "Number of lost events", nil},
		"cilium_bpf_map_pressure":     {"GAUGE", "Fill percentage of map, tagged by map name", nil},
		"cilium_bpf_map_ops_total":    {"COUNTER", "Total operations on map, tagged by map name", nil},
		"ceskit_metrics_errors_total": {"COUNTER", errorsHelp, nil},
	}
	if diff := cmp.Diff(want, families(t, reg)); diff != "" {
		t.Errorf("metric families (-want +got):\n%s", diff)
	}
}

func TestNewDatapathMetricsTwice(t *testing.T) {
	first, reg := newDatapathMetrics(t)
	first.LostEvents("ring_buffer", 1)
	second, err := observe.NewDatapathMetrics(reg)
	if err == nil {
		t.Fatal("NewDatapathMetrics registered twice into one registry without an error")
	}
	if second != nil {
		t.Errorf("NewDatapathMetrics returned %v with error %v, want nil", second, err)
	}
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Errorf("error %v does not wrap prometheus.AlreadyRegisteredError", err)
	}
	if got := snapshot(t, reg)[`hubble_lost_events_total{source="ring_buffer"}`]; got != 1 {
		t.Errorf("hubble_lost_events_total = %v after the failed second registration, want 1", got)
	}
}

// opsBlocker returns a collector that blocks the registration of cilium_bpf_map_ops_total:
// a gauge vector of the same name, help and labels (a registry keeps a name's help and labels
// for its lifetime, so the adapter can register once the blocker is gone).
func opsBlocker() prometheus.Collector {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cilium_bpf_map_ops_total", Help: "Total operations on map, tagged by map name",
	}, []string{"map_name", "operation", "outcome"})
}

// TestNewDatapathMetricsRollback checks that a failed registration leaves nothing behind.
func TestNewDatapathMetricsRollback(t *testing.T) {
	reg := prometheus.NewRegistry()
	blocker := opsBlocker()
	reg.MustRegister(blocker)
	if _, err := observe.NewDatapathMetrics(reg); err == nil || !strings.Contains(err.Error(), "cilium_bpf_map_ops_total") {
		t.Fatalf("NewDatapathMetrics error = %v, want one naming cilium_bpf_map_ops_total", err)
	}
	if s := snapshot(t, reg); len(s) != 0 {
		t.Errorf("series left after a failed registration: %v", s)
	}
	reg.Unregister(blocker)
	if _, err := observe.NewDatapathMetrics(reg); err != nil {
		t.Errorf("NewDatapathMetrics after removing the blocker: %v", err)
	}
}

// TestNewDatapathMetricsRollbackKeepsSharedGauge checks that a datapath adapter that fails
// after reusing the policy adapter's cilium_bpf_map_pressure leaves it registered.
func TestNewDatapathMetricsRollbackKeepsSharedGauge(t *testing.T) {
	reg := prometheus.NewRegistry()
	pm, err := observe.NewPolicyMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	blocker := opsBlocker()
	reg.MustRegister(blocker)
	if _, err := observe.NewDatapathMetrics(reg); err == nil {
		t.Fatal("NewDatapathMetrics succeeded despite the blocker")
	}
	pm.MapPressure(1, 2)
	if got := snapshot(t, reg)[`cilium_bpf_map_pressure{map_name="cilium_policy"}`]; got != 0.5 {
		t.Errorf(`cilium_bpf_map_pressure{map_name="cilium_policy"} = %v, want 0.5`, got)
	}
	reg.Unregister(blocker)
	if _, err := observe.NewDatapathMetrics(reg); err != nil {
		t.Errorf("NewDatapathMetrics after removing the blocker: %v", err)
	}
}

func TestNewDatapathMetricsNilRegisterer(t *testing.T) {
	m, err := observe.NewDatapathMetrics(nil)
	if err == nil || m != nil {
		t.Fatalf("NewDatapathMetrics(nil) = %v, %v; want nil and an error", m, err)
	}
}

// TestNilDatapathMetrics checks that a nil *DatapathMetrics discards every measurement.
func TestNilDatapathMetrics(t *testing.T) {
	var m *observe.DatapathMetrics
	var iface datapath.Metrics = m
	iface.Packets(133, "INGRESS", 1)
	iface.LostEvents("ring_buffer", 1)
	iface.MapPressure("ceskit_policy", 1, 2)
	iface.MapOps("ceskit_policy", "update", "success", 1)
}
