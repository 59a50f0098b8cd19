package observe_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ceskit/ceskit/observe"
	"github.com/ceskit/ceskit/policy"
)

// PolicyMetrics implements the policy engine's interface without observe importing policy.
var _ policy.Metrics = (*observe.PolicyMetrics)(nil)

func newPolicyMetrics(t *testing.T) (*observe.PolicyMetrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := observe.NewPolicyMetrics(reg)
	if err != nil {
		t.Fatalf("NewPolicyMetrics: %v", err)
	}
	return m, reg
}

func TestPolicyMetricsInitialSeries(t *testing.T) {
	_, reg := newPolicyMetrics(t)
	got := map[string]float64{}
	for k, v := range snapshot(t, reg) {
		if !strings.HasPrefix(k, observe.MetricsErrorsName) {
			got[k] = v
		}
	}
	want := map[string]float64{
		`cilium_policy_change_total{operation="update",outcome="success",source="ceskit"}`: 0,
		`cilium_policy_change_total{operation="update",outcome="failure",source="ceskit"}`: 0,
		`cilium_policy_change_total{operation="delete",outcome="success",source="ceskit"}`: 0,
		`cilium_policy_change_total{operation="delete",outcome="failure",source="ceskit"}`: 0,
		"cilium_policy{}":              0,
		"cilium_policy_max_revision{}": 0,
		`cilium_policy_endpoint_enforcement_status{enforcement="both"}`:    0,
		`cilium_policy_endpoint_enforcement_status{enforcement="egress"}`:  0,
		`cilium_policy_endpoint_enforcement_status{enforcement="ingress"}`: 0,
		`cilium_policy_endpoint_enforcement_status{enforcement="none"}`:    0,
		`cilium_bpf_map_pressure{map_name="cilium_policy"}`:                0,
		"ceskit_policy_map_overflows_total{}":                              0,
		"cilium_policy_selector_cache_selectors{}":                         0,
		"cilium_policy_selector_cache_identities{}":                        0,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("initial series (-want +got):\n%s", diff)
	}
}

func TestPolicyMetricsMethods(t *testing.T) {
	tests := []struct {
		name string
		call func(m policy.Metrics)
		want map[string]float64
	}{{
		name: "PolicyChange",
		call: func(m policy.Metrics) {
			m.PolicyChange("update", "success")
			m.PolicyChange("update", "success")
			m.PolicyChange("delete", "failure")
		},
		want: map[string]float64{
			`cilium_policy_change_total{operation="update",outcome="success",source="ceskit"}`: 2,
			`cilium_policy_change_total{operation="delete",outcome="failure",source="ceskit"}`: 1,
		},
	}, {
		name: "Policies and Revision",
		call: func(m policy.Metrics) {
			m.Policies(12)
			m.Revision(1 << 40)
		},
		want: map[string]float64{
			"cilium_policy{}":              12,
			"cilium_policy_max_revision{}": 1 << 40,
		},
	}, {
		name: "Update",
		call: func(m policy.Metrics) {
			m.Update("policy", 1500*time.Microsecond, 40)
			m.Update("policy", 500*time.Microsecond, 2)
			m.Update("endpoint", time.Millisecond, 1)
			m.Update("dns", time.Millisecond, -1) // the count is not observed
		},
		want: map[string]float64{
			`cilium_policy_incremental_update_duration_count{scope="policy"}`:   2,
			`cilium_policy_incremental_update_duration_sum{scope="policy"}`:     0.002,
			`cilium_policy_incremental_update_duration_count{scope="endpoint"}`: 1,
			`cilium_policy_incremental_update_duration_sum{scope="endpoint"}`:   0.001,
			`cilium_policy_incremental_update_duration_count{scope="dns"}`:      1,
			`cilium_policy_incremental_update_duration_sum{scope="dns"}`:        0.001,
			`ceskit_policy_endpoints_recomputed_count{scope="policy"}`:          2,
			`ceskit_policy_endpoints_recomputed_sum{scope="policy"}`:            42,
			`ceskit_policy_endpoints_recomputed_count{scope="endpoint"}`:        1,
			`ceskit_policy_endpoints_recomputed_sum{scope="endpoint"}`:          1,
		},
	}, {
		name: "Enforcement",
		call: func(m policy.Metrics) {
			m.Enforcement(map[string]int{"ingress": 3, "both": 2, "future": 1})
			m.Enforcement(map[string]int{"ingress": 4, "none": 9}) // both and future go back to 0
		},
		want: map[string]float64{
			`cilium_policy_endpoint_enforcement_status{enforcement="ingress"}`: 4,
			`cilium_policy_endpoint_enforcement_status{enforcement="none"}`:    9,
			`cilium_policy_endpoint_enforcement_status{enforcement="future"}`:  0,
		},
	}, {
		name: "MapPressure",
		call: func(m policy.Metrics) { m.MapPressure(4096, 16384) },
		want: map[string]float64{`cilium_bpf_map_pressure{map_name="cilium_policy"}`: 0.25},
	}, {
		name: "MapPressure/capacity 0",
		call: func(m policy.Metrics) {
			m.MapPressure(10, 100)
			m.MapPressure(10, 0)
		},
		want: map[string]float64{},
	}, {
		name: "Overflow",
		call: func(m policy.Metrics) {
			m.Overflow()
			m.Overflow()
		},
		want: map[string]float64{"ceskit_policy_map_overflows_total{}": 2},
	}, {
		name: "SelectorCache",
		call: func(m policy.Metrics) { m.SelectorCache(30, 700) },
		want: map[string]float64{
			"cilium_policy_selector_cache_selectors{}":  30,
			"cilium_policy_selector_cache_identities{}": 700,
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newPolicyMetrics(t)
			before := snapshot(t, reg)
			tt.call(m)
			if diff := cmp.Diff(tt.want, changed(before, snapshot(t, reg))); diff != "" {
				t.Errorf("changed series (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPolicyMetricsFamilies(t *testing.T) {
	m, reg := newPolicyMetrics(t)
	m.Update("policy", time.Millisecond, 1)
	got := families(t, reg)
	want := map[string]family{
		"cilium_policy_change_total":                {"COUNTER", "Number of policy changes by outcome", nil},
		"cilium_policy":                             {"GAUGE", "Number of policies currently loaded", nil},
		"cilium_policy_max_revision":                {"GAUGE", "Highest policy revision number in the agent", nil},
		"cilium_policy_incremental_update_duration": {"HISTOGRAM", "Time it takes to do an incremental policy update", []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}},
		"ceskit_policy_endpoints_recomputed":        {"HISTOGRAM", "Endpoint policy maps one incremental policy update recomputed, by scope", []float64{0, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000}},
		"cilium_policy_endpoint_enforcement_status": {"GAUGE", "Number of endpoints labeled by policy enforcement status", nil},
		"cilium_bpf_map_pressure":                   {"GAUGE", "Fill percentage of map, tagged by map name", nil},
		"ceskit_policy_map_overflows_total":         {"COUNTER", "Endpoints whose policy map needed more entries than the map capacity and were left fail-closed", nil},
		"cilium_policy_selector_cache_selectors":    {"GAUGE", "Number of selectors in the selector cache", nil},
		"cilium_policy_selector_cache_identities":   {"GAUGE", "Number of identities selected by the selectors in the selector cache", nil},
		"ceskit_metrics_errors_total":               {"COUNTER", errorsHelp, nil},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metric families (-want +got):\n%s", diff)
	}
}

func TestNewPolicyMetricsTwice(t *testing.T) {
	first, reg := newPolicyMetrics(t)
	first.Overflow()
	second, err := observe.NewPolicyMetrics(reg)
	if err == nil {
		t.Fatal("NewPolicyMetrics registered twice into one registry without an error")
	}
	if second != nil {
		t.Errorf("NewPolicyMetrics returned %v with error %v, want nil", second, err)
	}
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Errorf("error %v does not wrap prometheus.AlreadyRegisteredError", err)
	}
	s := snapshot(t, reg)
	if got := s["ceskit_policy_map_overflows_total{}"]; got != 1 {
		t.Errorf("ceskit_policy_map_overflows_total = %v after the failed second registration, want 1", got)
	}
	if _, ok := s[errorsSeries("cilium_policy")]; !ok {
		t.Error("the first adapter's error-counter series went away with the failed second registration")
	}
}

// TestNewPolicyMetricsRollback checks that a failed registration leaves nothing behind.
func TestNewPolicyMetricsRollback(t *testing.T) {
	checkRollback(t, "cilium_policy_selector_cache_identities", "Number of identities selected by the selectors in the selector cache",
		func(reg prometheus.Registerer) error { _, err := observe.NewPolicyMetrics(reg); return err })
}

// TestNewPolicyMetricsRollbackSharedErrors checks that a failed registration into a registry
// whose error counter another adapter registered removes only its own error-counter series.
func TestNewPolicyMetricsRollbackSharedErrors(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := observe.NewFlowMetrics(reg); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, reg)
	blocker := prometheus.NewGauge(prometheus.GaugeOpts{Name: "cilium_policy_selector_cache_identities", Help: "x"})
	reg.MustRegister(blocker)
	if _, err := observe.NewPolicyMetrics(reg); err == nil {
		t.Fatal("NewPolicyMetrics succeeded despite the blocker")
	}
	reg.Unregister(blocker)
	if diff := cmp.Diff(before, snapshot(t, reg)); diff != "" {
		t.Errorf("series after a failed registration (-want +got):\n%s", diff)
	}
}

func TestNewPolicyMetricsNilRegisterer(t *testing.T) {
	m, err := observe.NewPolicyMetrics(nil)
	if err == nil || m != nil {
		t.Fatalf("NewPolicyMetrics(nil) = %v, %v; want nil and an error", m, err)
	}
}

// TestNilPolicyMetrics checks that a nil *PolicyMetrics discards every measurement.
func TestNilPolicyMetrics(t *testing.T) {
	var m *observe.PolicyMetrics
	var iface policy.Metrics = m
	iface.PolicyChange("update", "success")
	iface.Policies(1)
	iface.Revision(1)
	iface.Update("policy", time.Second, 1)
	iface.Enforcement(map[string]int{"both": 1})
	iface.MapPressure(1, 2)
	iface.Overflow()
	iface.SelectorCache(1, 2)
}

// TestPolicyAndDatapathShareMapPressure checks that the policy and datapath metrics register
// into one registry and both write their map_name series of cilium_bpf_map_pressure, with one
// error counter between them.
func TestPolicyAndDatapathShareMapPressure(t *testing.T) {
	for _, policyFirst := range []bool{true, false} {
		reg := prometheus.NewRegistry()
		var pm *observe.PolicyMetrics
		var dm *observe.DatapathMetrics
		var err error
		if policyFirst {
			if pm, err = observe.NewPolicyMetrics(reg); err != nil {
				t.Fatal(err)
			}
			if dm, err = observe.NewDatapathMetrics(reg); err != nil {
				t.Fatalf("NewDatapathMetrics into a registry holding the policy metrics: %v", err)
			}
		} else {
			if dm, err = observe.NewDatapathMetrics(reg); err != nil {
				t.Fatal(err)
			}
			if pm, err = observe.NewPolicyMetrics(reg); err != nil {
				t.Fatalf("NewPolicyMetrics into a registry holding the datapath metrics: %v", err)
			}
		}
		if _, err := observe.NewFlowMetrics(reg); err != nil {
			t.Fatalf("NewFlowMetrics into a registry holding the policy and datapath metrics: %v", err)
		}
		pm.MapPressure(900, 1000)
		dm.MapPressure("ceskit_policy", 50, 100)
		dm.MapPressure("ceskit_ct", 1, 4)
		pm.Update("policy", time.Millisecond, 1)
		dm.MapOps("ceskit_policy", "update", "success", -1) // counted as an error
		s := snapshot(t, reg)
		got := map[string]float64{}
		for _, k := range []string{
			`cilium_bpf_map_pressure{map_name="cilium_policy"}`,
			`cilium_bpf_map_pressure{map_name="ceskit_policy"}`,
			`cilium_bpf_map_pressure{map_name="ceskit_ct"}`,
			errorsSeries("cilium_bpf_map_ops_total"),
			errorsSeries("cilium_policy"),
			errorsSeries("hubble_drop_total"),
		} {
			if v, ok := s[k]; ok {
				got[k] = v
			}
		}
		want := map[string]float64{
			`cilium_bpf_map_pressure{map_name="cilium_policy"}`: 0.9,
			`cilium_bpf_map_pressure{map_name="ceskit_policy"}`: 0.5,
			`cilium_bpf_map_pressure{map_name="ceskit_ct"}`:     0.25,
			errorsSeries("cilium_bpf_map_ops_total"):            1,
			errorsSeries("cilium_policy"):                       0,
			errorsSeries("hubble_drop_total"):                   0,
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("policy first = %v: series (-want +got):\n%s", policyFirst, diff)
		}
	}
}

// TestMapPressureSharingNeedsSameDescription checks that a cilium_bpf_map_pressure registered
// with other labels is not reused.
func TestMapPressureSharingNeedsSameDescription(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "cilium_bpf_map_pressure", Help: "Fill percentage of map, tagged by map name",
	}, []string{"map_name", "extra"}))
	if _, err := observe.NewPolicyMetrics(reg); err == nil {
		t.Error("NewPolicyMetrics reused a cilium_bpf_map_pressure with other labels")
	}
	reg = prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cilium_bpf_map_pressure", Help: "Fill percentage of map, tagged by map name",
	}, []string{"map_name"}))
	if _, err := observe.NewDatapathMetrics(reg); err == nil {
		t.Error("NewDatapathMetrics reused a cilium_bpf_map_pressure counter as its gauge")
	}
}
