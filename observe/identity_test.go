package observe_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ceskit/ceskit/identity"
	"github.com/ceskit/ceskit/observe"
)

// IdentityMetrics implements the identity package's interface without observe importing identity.
var _ identity.Metrics = (*observe.IdentityMetrics)(nil)

func newIdentityMetrics(t *testing.T) (*observe.IdentityMetrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := observe.NewIdentityMetrics(reg)
	if err != nil {
		t.Fatalf("NewIdentityMetrics: %v", err)
	}
	return m, reg
}

func TestIdentityMetricsMethods(t *testing.T) {
	tests := []struct {
		name string
		call func(m *observe.IdentityMetrics)
		want map[string]float64
	}{{
		name: "Allocation",
		call: func(m *observe.IdentityMetrics) {
			m.Allocation("created", 20*time.Millisecond)
			m.Allocation("cached", 250*time.Microsecond)
			m.Allocation("cached", 750*time.Microsecond)
			m.Allocation("error", 2*time.Second)
		},
		want: map[string]float64{
			`ceskit_identity_allocations_total{outcome="created"}`:                 1,
			`ceskit_identity_allocations_total{outcome="cached"}`:                  2,
			`ceskit_identity_allocations_total{outcome="error"}`:                   1,
			`ceskit_identity_allocation_duration_seconds_count{outcome="created"}`: 1,
			`ceskit_identity_allocation_duration_seconds_sum{outcome="created"}`:   0.02,
			`ceskit_identity_allocation_duration_seconds_count{outcome="cached"}`:  2,
			`ceskit_identity_allocation_duration_seconds_sum{outcome="cached"}`:    0.001,
			`ceskit_identity_allocation_duration_seconds_count{outcome="error"}`:   1,
			`ceskit_identity_allocation_duration_seconds_sum{outcome="error"}`:     2,
		},
	}, {
		name: "Usage",
		call: func(m *observe.IdentityMetrics) { m.Usage(900, 1000) },
		want: map[string]float64{
			"ceskit_identity_used{}":        900,
			"ceskit_identity_space_size{}":  1000,
			"ceskit_identity_usage_ratio{}": 0.9,
		},
	}, {
		name: "Usage/zero size",
		call: func(m *observe.IdentityMetrics) { m.Usage(50, 100); m.Usage(3, 0) },
		want: map[string]float64{
			"ceskit_identity_used{}":        3,
			"ceskit_identity_usage_ratio{}": 0.5, // kept
		},
	}, {
		name: "Conflict",
		call: func(m *observe.IdentityMetrics) {
			m.Conflict("claim")
			m.Conflict("identity")
			m.Conflict("update")
			m.Conflict("update")
		},
		want: map[string]float64{
			`ceskit_identity_conflicts_total{kind="claim"}`:    1,
			`ceskit_identity_conflicts_total{kind="identity"}`: 1,
			`ceskit_identity_conflicts_total{kind="update"}`:   2,
		},
	}, {
		name: "Write",
		call: func(m *observe.IdentityMetrics) {
			m.Write("create", "ciliumidentities")
			m.Write("update", "leases")
			m.Write("update", "leases")
			m.Write("delete", "leases")
		},
		want: map[string]float64{
			`ceskit_identity_writes_total{resource="ciliumidentities",verb="create"}`: 1,
			`ceskit_identity_writes_total{resource="leases",verb="update"}`:           2,
			`ceskit_identity_writes_total{resource="leases",verb="delete"}`:           1,
		},
	}, {
		name: "GCEntries",
		call: func(m *observe.IdentityMetrics) {
			m.GCEntries("alive", 120)
			m.GCEntries("marked", 7)
			m.GCEntries("unmarked", 2)
			m.GCEntries("deleted", 5)
			m.GCEntries("deleted", 4) // the last pass wins
		},
		want: map[string]float64{
			`cilium_operator_identity_gc_entries{identity_type="crd",status="alive"}`:    120,
			`cilium_operator_identity_gc_entries{identity_type="crd",status="marked"}`:   7,
			`cilium_operator_identity_gc_entries{identity_type="crd",status="unmarked"}`: 2,
			`cilium_operator_identity_gc_entries{identity_type="crd",status="deleted"}`:  4,
		},
	}, {
		name: "GCRun",
		call: func(m *observe.IdentityMetrics) {
			m.GCRun("success", 3*time.Second)
			m.GCRun("success", 1500*time.Millisecond)
			m.GCRun("fail", 250*time.Millisecond)
		},
		want: map[string]float64{
			`cilium_operator_identity_gc_runs{identity_type="crd",outcome="success"}`:    2,
			`cilium_operator_identity_gc_runs{identity_type="crd",outcome="fail"}`:       1,
			`cilium_operator_identity_gc_latency{identity_type="crd",outcome="success"}`: 1.5,
			`cilium_operator_identity_gc_latency{identity_type="crd",outcome="fail"}`:    0.25,
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newIdentityMetrics(t)
			before := snapshot(t, reg)
			tt.call(m)
			got := changed(before, snapshot(t, reg))
			if diff := cmp.Diff(tt.want, got, cmpApprox); diff != "" {
				t.Errorf("changed series (-want +got):\n%s", diff)
			}
		})
	}
}

// cmpApprox compares floats to within 1e-12, for sums of durations in seconds.
var cmpApprox = cmp.Comparer(func(a, b float64) bool {
	d := a - b
	return d < 1e-12 && d > -1e-12
})

// TestIdentityMetricsInitialSeries checks the series that exist before any event: the documented
// counter label values, the GC run series and the unlabelled gauges, all at 0.
func TestIdentityMetricsInitialSeries(t *testing.T) {
	_, reg := newIdentityMetrics(t)
	want := map[string]float64{
		`cilium_operator_identity_gc_runs{identity_type="crd",outcome="fail"}`:    0,
		`cilium_operator_identity_gc_runs{identity_type="crd",outcome="success"}`: 0,
		"ceskit_identity_used{}":        0,
		"ceskit_identity_space_size{}":  0,
		"ceskit_identity_usage_ratio{}": 0,
	}
	for _, o := range []string{"held", "cached", "reused", "created", "local", "reserved", "error"} {
		want[`ceskit_identity_allocations_total{outcome="`+o+`"}`] = 0
	}
	for _, k := range []string{"claim", "identity", "update"} {
		want[`ceskit_identity_conflicts_total{kind="`+k+`"}`] = 0
	}
	for _, v := range []string{"create", "update", "delete"} {
		for _, r := range []string{"ciliumidentities", "leases"} {
			want[`ceskit_identity_writes_total{resource="`+r+`",verb="`+v+`"}`] = 0
		}
	}
	if diff := cmp.Diff(want, snapshot(t, reg)); diff != "" {
		t.Errorf("initial series (-want +got):\n%s", diff)
	}
}

// TestIdentityMetricsFamilies checks every family's name, type, help and constant labels, and
// the histogram's buckets; the cilium_operator_ ones against Cilium's operator/identitygc.
func TestIdentityMetricsFamilies(t *testing.T) {
	m, reg := newIdentityMetrics(t)
	// Labelled histograms and the GC gauges appear once they have a child.
	m.Allocation("created", time.Millisecond)
	m.GCEntries("alive", 1)
	m.GCRun("success", time.Second)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	type family struct {
		Type         string
		Help         string
		IdentityType string
		Buckets      []float64
	}
	got := map[string]family{}
	for _, mf := range mfs {
		s := mf.GetMetric()[0]
		f := family{Type: mf.GetType().String(), Help: mf.GetHelp()}
		for _, l := range s.GetLabel() {
			if l.GetName() == "identity_type" {
				f.IdentityType = l.GetValue()
			}
		}
		if h := s.GetHistogram(); h != nil {
			for _, b := range h.GetBucket() {
				f.Buckets = append(f.Buckets, b.GetUpperBound())
			}
		}
		got[mf.GetName()] = f
	}
	want := map[string]family{
		"cilium_operator_identity_gc_entries": {"GAUGE", "The number of alive and deleted identities at the end of a garbage collector run", "crd", nil},
		"cilium_operator_identity_gc_runs":    {"GAUGE", "The number of times identity garbage collector has run", "crd", nil},
		"cilium_operator_identity_gc_latency": {"GAUGE", "The duration of the last successful identity GC run", "crd", nil},
		"ceskit_identity_allocations_total":   {"COUNTER", "The number of identity allocations by outcome", "", nil},
		"ceskit_identity_allocation_duration_seconds": {"HISTOGRAM", "Time an identity allocation took, by outcome", "",
			[]float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}},
		"ceskit_identity_used":            {"GAUGE", "Identities of the allocatable range that exist", "", nil},
		"ceskit_identity_space_size":      {"GAUGE", "Size of the allocatable identity range", "", nil},
		"ceskit_identity_usage_ratio":     {"GAUGE", "Fraction of the allocatable identity range in use", "", nil},
		"ceskit_identity_conflicts_total": {"COUNTER", "The number of lost identity allocation races resolved by the protocol, by kind", "", nil},
		"ceskit_identity_writes_total":    {"COUNTER", "The number of API writes of the identity allocator and garbage collector by verb and resource", "", nil},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metric families (-want +got):\n%s", diff)
	}
}

func TestNewIdentityMetricsTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	first, err := observe.NewIdentityMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	first.Conflict("claim")
	second, err := observe.NewIdentityMetrics(reg)
	if err == nil {
		t.Fatal("NewIdentityMetrics registered twice into one registry without an error")
	}
	if second != nil {
		t.Errorf("NewIdentityMetrics returned %v with error %v, want nil", second, err)
	}
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Errorf("error %v does not wrap prometheus.AlreadyRegisteredError", err)
	}
	// The first set is intact.
	if got := snapshot(t, reg)[`ceskit_identity_conflicts_total{kind="claim"}`]; got != 1 {
		t.Errorf(`ceskit_identity_conflicts_total{kind="claim"} = %v after the failed second registration, want 1`, got)
	}
}

// TestNewIdentityMetricsRollback checks that a failed registration leaves nothing behind.
func TestNewIdentityMetricsRollback(t *testing.T) {
	checkRollback(t, "ceskit_identity_usage_ratio", "Fraction of the allocatable identity range in use",
		func(reg prometheus.Registerer) error { _, err := observe.NewIdentityMetrics(reg); return err })
}

// TestIdentityAndSlicerMetricsShareRegistry checks that the identity and slicer metrics, both
// partly under cilium_operator_, can be registered into one registry.
func TestIdentityAndSlicerMetricsShareRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := observe.NewSlicerMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := observe.NewIdentityMetrics(reg); err != nil {
		t.Errorf("NewIdentityMetrics into a registry holding the slicer metrics: %v", err)
	}
}

func TestNewIdentityMetricsNilRegisterer(t *testing.T) {
	m, err := observe.NewIdentityMetrics(nil)
	if err == nil || m != nil {
		t.Fatalf("NewIdentityMetrics(nil) = %v, %v; want nil and an error", m, err)
	}
}

// TestNilIdentityMetrics checks that a nil *IdentityMetrics discards every measurement.
func TestNilIdentityMetrics(t *testing.T) {
	var m *observe.IdentityMetrics
	var iface identity.Metrics = m
	iface.Allocation("created", time.Second)
	iface.Usage(1, 2)
	iface.Conflict("claim")
	iface.Write("create", "leases")
	iface.GCEntries("alive", 1)
	iface.GCRun("success", time.Second)
}
