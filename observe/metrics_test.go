package observe_test

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/ceskit/ceskit/observe"
	"github.com/ceskit/ceskit/slicer"
)

// SlicerMetrics implements the slicer's interface without observe importing slicer.
var _ slicer.Metrics = (*observe.SlicerMetrics)(nil)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// snapshot gathers reg into "name{label=value,...}" → value. Counters and gauges give their
// value; histograms give name_count and name_sum.
func snapshot(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			sel := "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.GetCounter() != nil:
				out[mf.GetName()+sel] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[mf.GetName()+sel] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				out[mf.GetName()+"_count"+sel] = float64(m.GetHistogram().GetSampleCount())
				out[mf.GetName()+"_sum"+sel] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

// changed returns the series of after whose value differs from before (or that are new).
func changed(before, after map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		if old, ok := before[k]; !ok || old != v {
			out[k] = v
		}
	}
	return out
}

func newMetrics(t *testing.T) (*observe.SlicerMetrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := observe.NewSlicerMetrics(reg)
	if err != nil {
		t.Fatalf("NewSlicerMetrics: %v", err)
	}
	return m, reg
}

func TestSlicerMetricsMethods(t *testing.T) {
	tests := []struct {
		name string
		call func(m *observe.SlicerMetrics)
		want map[string]float64
	}{{
		name: "EndpointsPerSlice",
		call: func(m *observe.SlicerMetrics) { m.EndpointsPerSlice(42) },
		want: map[string]float64{
			"cilium_operator_number_of_ceps_per_ces_count{}": 1,
			"cilium_operator_number_of_ceps_per_ces_sum{}":   42,
		},
	}, {
		name: "EndpointChanges",
		call: func(m *observe.SlicerMetrics) {
			m.EndpointChanges("cepinserted", 3)
			m.EndpointChanges("cepremoved", 2)
			m.EndpointChanges("cepremoved", 0) // not observed
		},
		want: map[string]float64{
			`cilium_operator_number_of_cep_changes_per_ces_count{opcode="cepinserted"}`: 1,
			`cilium_operator_number_of_cep_changes_per_ces_sum{opcode="cepinserted"}`:   3,
			`cilium_operator_number_of_cep_changes_per_ces_count{opcode="cepremoved"}`:  1,
			`cilium_operator_number_of_cep_changes_per_ces_sum{opcode="cepremoved"}`:    2,
		},
	}, {
		name: "EndpointChanges/zero",
		call: func(m *observe.SlicerMetrics) {
			m.EndpointChanges("cepinserted", 0)
			m.EndpointChanges("cepremoved", -1)
		},
		want: map[string]float64{},
	}, {
		name: "Sync",
		call: func(m *observe.SlicerMetrics) {
			m.Sync("success", "")
			m.Sync("success", "")
			m.Sync("fail", "transient")
		},
		want: map[string]float64{
			`cilium_operator_ces_sync_total{failure_type="",outcome="success"}`:       2,
			`cilium_operator_ces_sync_total{failure_type="transient",outcome="fail"}`: 1,
		},
	}, {
		name: "QueueingDelay",
		call: func(m *observe.SlicerMetrics) {
			m.QueueingDelay("fast", 250*time.Millisecond)
			m.QueueingDelay("standard", 2*time.Second)
		},
		want: map[string]float64{
			`cilium_operator_ces_queueing_delay_seconds_count{queue="fast"}`:     1,
			`cilium_operator_ces_queueing_delay_seconds_sum{queue="fast"}`:       0.25,
			`cilium_operator_ces_queueing_delay_seconds_count{queue="standard"}`: 1,
			`cilium_operator_ces_queueing_delay_seconds_sum{queue="standard"}`:   2,
		},
	}, {
		name: "Propagation",
		call: func(m *observe.SlicerMetrics) { m.Propagation(1500 * time.Millisecond) },
		want: map[string]float64{
			"ceskit_slicer_propagation_seconds_count{}": 1,
			"ceskit_slicer_propagation_seconds_sum{}":   1.5,
		},
	}, {
		name: "Write",
		call: func(m *observe.SlicerMetrics) {
			m.Write("create", 1000)
			m.Write("update", 24)
			m.Write("delete", 0)
		},
		want: map[string]float64{
			`ceskit_slicer_writes_total{verb="create"}`: 1,
			`ceskit_slicer_writes_total{verb="update"}`: 1,
			`ceskit_slicer_writes_total{verb="delete"}`: 1,
			"ceskit_slicer_write_bytes_total{}":         1024,
		},
	}, {
		name: "Conflict",
		call: func(m *observe.SlicerMetrics) { m.Conflict() },
		want: map[string]float64{"ceskit_slicer_conflicts_total{}": 1},
	}, {
		name: "EchoSuppressed",
		call: func(m *observe.SlicerMetrics) { m.EchoSuppressed(); m.EchoSuppressed() },
		want: map[string]float64{"ceskit_slicer_echoes_suppressed_total{}": 2},
	}, {
		name: "Slices",
		call: func(m *observe.SlicerMetrics) { m.Slices(7, 9) },
		want: map[string]float64{
			`ceskit_slicer_slices{kind="desired"}`: 7,
			`ceskit_slicer_slices{kind="actual"}`:  9,
		},
	}, {
		name: "Degraded",
		call: func(m *observe.SlicerMetrics) { m.Degraded(true) },
		want: map[string]float64{"ceskit_slicer_degraded{}": 1},
	}, {
		name: "Degraded/recovered",
		call: func(m *observe.SlicerMetrics) { m.Degraded(true); m.Degraded(false) },
		want: map[string]float64{},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newMetrics(t)
			before := snapshot(t, reg)
			tt.call(m)
			if diff := cmp.Diff(tt.want, changed(before, snapshot(t, reg))); diff != "" {
				t.Errorf("changed series (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSlicerMetricsInitialSeries checks the series that exist before any event: the documented
// counter label values and the gauges, all at 0.
func TestSlicerMetricsInitialSeries(t *testing.T) {
	_, reg := newMetrics(t)
	want := map[string]float64{
		"ceskit_slicer_conflicts_total{}":                                         0,
		"ceskit_slicer_degraded{}":                                                0,
		"ceskit_slicer_echoes_suppressed_total{}":                                 0,
		`ceskit_slicer_slices{kind="actual"}`:                                     0,
		`ceskit_slicer_slices{kind="desired"}`:                                    0,
		"ceskit_slicer_write_bytes_total{}":                                       0,
		`ceskit_slicer_writes_total{verb="create"}`:                               0,
		`ceskit_slicer_writes_total{verb="delete"}`:                               0,
		`ceskit_slicer_writes_total{verb="update"}`:                               0,
		`cilium_operator_ces_sync_total{failure_type="",outcome="success"}`:       0,
		`cilium_operator_ces_sync_total{failure_type="transient",outcome="fail"}`: 0,
		"cilium_operator_number_of_ceps_per_ces_count{}":                          0,
		"cilium_operator_number_of_ceps_per_ces_sum{}":                            0,
		"ceskit_slicer_propagation_seconds_count{}":                               0,
		"ceskit_slicer_propagation_seconds_sum{}":                                 0,
	}
	if diff := cmp.Diff(want, snapshot(t, reg)); diff != "" {
		t.Errorf("initial series (-want +got):\n%s", diff)
	}
}

// TestSlicerMetricsFamilies checks every family's name, type and help, and the histograms'
// buckets, against Cilium's operator.
func TestSlicerMetricsFamilies(t *testing.T) {
	m, reg := newMetrics(t)
	// Labelled histograms appear once they have a child.
	m.EndpointChanges("cepinserted", 1)
	m.QueueingDelay("fast", time.Second)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	type family struct {
		Type    string
		Help    string
		Buckets []float64
	}
	got := map[string]family{}
	for _, mf := range mfs {
		f := family{Type: mf.GetType().String(), Help: mf.GetHelp()}
		if h := mf.GetMetric()[0].GetHistogram(); h != nil {
			for _, b := range h.GetBucket() {
				f.Buckets = append(f.Buckets, b.GetUpperBound())
			}
		}
		got[mf.GetName()] = f
	}
	queueing := append(slices.Clone(prometheus.DefBuckets), 60, 300, 900, 1800, 3600)
	want := map[string]family{
		"cilium_operator_number_of_ceps_per_ces": {"HISTOGRAM", "The number of CEPs batched in a CES",
			[]float64{1, 10, 25, 50, 100, 200, 500, 1000}},
		"cilium_operator_number_of_cep_changes_per_ces": {"HISTOGRAM", "The number of changed CEPs in each CES update",
			[]float64{1, 5, 10, 25, 50, 100, 250, 500, 1000}},
		"cilium_operator_ces_sync_total": {"COUNTER", "The number of completed CES syncs by outcome", nil},
		"cilium_operator_ces_queueing_delay_seconds": {"HISTOGRAM", "CiliumEndpointSlice queueing delay in seconds",
			queueing},
		"ceskit_slicer_propagation_seconds": {"HISTOGRAM", "Time from the first endpoint change a CES write carries to the end of that write",
			[]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}},
		"ceskit_slicer_writes_total":            {"COUNTER", "The number of CES API writes by verb", nil},
		"ceskit_slicer_write_bytes_total":       {"COUNTER", "Bytes of the CES objects sent in creates and updates", nil},
		"ceskit_slicer_conflicts_total":         {"COUNTER", "The number of CES writes rejected with 409 Conflict or AlreadyExists", nil},
		"ceskit_slicer_echoes_suppressed_total": {"COUNTER", "The number of watch events for the controller's own CES writes that were not reconciled", nil},
		"ceskit_slicer_slices":                  {"GAUGE", "CiliumEndpointSlices a perfect packing needs (kind=desired) and that exist (kind=actual)", nil},
		"ceskit_slicer_degraded":                {"GAUGE", "1 while the CES controller reports Degraded, else 0", nil},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metric families (-want +got):\n%s", diff)
	}
}

func TestNewSlicerMetricsTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	first, err := observe.NewSlicerMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	first.Conflict()
	second, err := observe.NewSlicerMetrics(reg)
	if err == nil {
		t.Fatal("NewSlicerMetrics registered twice into one registry without an error")
	}
	if second != nil {
		t.Errorf("NewSlicerMetrics returned %v with error %v, want nil", second, err)
	}
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Errorf("error %v does not wrap prometheus.AlreadyRegisteredError", err)
	}
	// The first set is intact.
	if got := snapshot(t, reg)["ceskit_slicer_conflicts_total{}"]; got != 1 {
		t.Errorf("ceskit_slicer_conflicts_total = %v after the failed second registration, want 1", got)
	}
}

// TestNewSlicerMetricsRollback checks that a failed registration leaves nothing behind.
func TestNewSlicerMetricsRollback(t *testing.T) {
	checkRollback(t, "ceskit_slicer_degraded", "1 while the CES controller reports Degraded, else 0",
		func(reg prometheus.Registerer) error { _, err := observe.NewSlicerMetrics(reg); return err })
}

// checkRollback registers a gauge under one of a constructor's metric names (same name and help:
// a registry keeps a name's help and labels for its lifetime), checks that the constructor fails
// naming it and leaves nothing but the blocker behind, and that it succeeds once the blocker is
// gone.
func checkRollback(t *testing.T, name, help string, newMetrics func(prometheus.Registerer) error) {
	t.Helper()
	reg := prometheus.NewRegistry()
	blocker := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	if err := reg.Register(blocker); err != nil {
		t.Fatal(err)
	}
	if err := newMetrics(reg); err == nil || !strings.Contains(err.Error(), name) {
		t.Fatalf("constructor error = %v, want one naming %s", err, name)
	}
	var names []string
	for n := range snapshot(t, reg) {
		names = append(names, n)
	}
	sort.Strings(names)
	if diff := cmp.Diff([]string{name + "{}"}, names); diff != "" {
		t.Errorf("series left after a failed registration (-want +got):\n%s", diff)
	}
	reg.Unregister(blocker)
	if err := newMetrics(reg); err != nil {
		t.Errorf("constructor after removing the conflicting metric: %v", err)
	}
}

func TestNewSlicerMetricsNilRegisterer(t *testing.T) {
	m, err := observe.NewSlicerMetrics(nil)
	if err == nil || m != nil {
		t.Fatalf("NewSlicerMetrics(nil) = %v, %v; want nil and an error", m, err)
	}
}

// TestNilSlicerMetrics checks that a nil *SlicerMetrics discards every measurement.
func TestNilSlicerMetrics(t *testing.T) {
	var m *observe.SlicerMetrics
	var iface slicer.Metrics = m
	iface.EndpointsPerSlice(1)
	iface.EndpointChanges("cepinserted", 1)
	iface.Sync("success", "")
	iface.QueueingDelay("fast", time.Second)
	iface.Propagation(time.Second)
	iface.Write("create", 1)
	iface.Conflict()
	iface.EchoSuppressed()
	iface.Slices(1, 1)
	iface.Degraded(true)
}
