package observe_test

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ceskit/ceskit/datapath"
	"github.com/ceskit/ceskit/identity"
	"github.com/ceskit/ceskit/observe"
	"github.com/ceskit/ceskit/policy"
	"github.com/ceskit/ceskit/slicer"
)

// printNonZero prints every counter and gauge series of reg whose value is not 0, one per line;
// histograms print their sample count as name_count.
func printNonZero(reg *prometheus.Registry) {
	families, err := reg.Gather()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range families {
		for _, s := range f.GetMetric() {
			name := f.GetName()
			var v float64
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				v = s.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				v = s.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				name += "_count"
				v = float64(s.GetHistogram().GetSampleCount())
			}
			if v == 0 {
				continue
			}
			fmt.Print(name)
			for _, l := range s.GetLabel() {
				fmt.Printf(" %s=%q", l.GetName(), l.GetValue())
			}
			fmt.Println(":", v)
		}
	}
}

func ExampleNewSlicerMetrics() {
	// A registry of the program's own: nothing goes into Prometheus' global one.
	reg := prometheus.NewRegistry()
	m, err := observe.NewSlicerMetrics(reg)
	if err != nil {
		fmt.Println(err)
		return
	}
	// Hand it to the controller; serve reg with promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).
	cfg := slicer.Config{Metrics: m}
	_ = cfg

	// What the controller reports for one slice created with 42 endpoints and one update.
	cfg.Metrics.QueueingDelay("standard", 3*time.Millisecond)
	cfg.Metrics.Write("create", 9000)
	cfg.Metrics.Sync("success", "")
	cfg.Metrics.EndpointChanges("cepinserted", 42)
	cfg.Metrics.EndpointsPerSlice(42)
	cfg.Metrics.EchoSuppressed()
	cfg.Metrics.Write("update", 9100)
	cfg.Metrics.Sync("success", "")
	cfg.Metrics.Slices(1, 1)

	families, err := reg.Gather()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range families {
		for _, s := range f.GetMetric() {
			var v float64
			switch {
			case s.GetCounter() != nil:
				v = s.GetCounter().GetValue()
			case s.GetGauge() != nil:
				v = s.GetGauge().GetValue()
			default:
				continue // histograms
			}
			if v == 0 {
				continue
			}
			fmt.Print(f.GetName())
			for _, l := range s.GetLabel() {
				fmt.Printf(" %s=%q", l.GetName(), l.GetValue())
			}
			fmt.Println(":", v)
		}
	}
	// Output:
	// ceskit_slicer_echoes_suppressed_total: 1
	// ceskit_slicer_slices kind="actual": 1
	// ceskit_slicer_slices kind="desired": 1
	// ceskit_slicer_write_bytes_total: 18100
	// ceskit_slicer_writes_total verb="create": 1
	// ceskit_slicer_writes_total verb="update": 1
	// cilium_operator_ces_sync_total failure_type="" outcome="success": 2
}

func ExampleNewIdentityMetrics() {
	// A registry of the program's own: nothing goes into Prometheus' global one.
	reg := prometheus.NewRegistry()
	m, err := observe.NewIdentityMetrics(reg)
	if err != nil {
		fmt.Println(err)
		return
	}
	// One value serves the allocator and the garbage collector; serve reg with
	// promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).
	cfg := identity.Config{Metrics: m}
	gcCfg := identity.GCConfig{Metrics: m}

	// What the allocator reports for one new identity and one found in the cache, with 90 % of
	// the default range (65280 identities) in use, and the garbage collector for one pass that
	// marked an unused identity.
	cfg.Metrics.Write("create", "leases")
	cfg.Metrics.Write("create", "ciliumidentities")
	cfg.Metrics.Allocation("created", 12*time.Millisecond)
	cfg.Metrics.Allocation("cached", 40*time.Microsecond)
	cfg.Metrics.Usage(58752, 65280)
	gcCfg.Metrics.Write("update", "ciliumidentities")
	gcCfg.Metrics.GCRun("success", 80*time.Millisecond)
	gcCfg.Metrics.GCEntries("alive", 1)
	gcCfg.Metrics.GCEntries("marked", 1)

	families, err := reg.Gather()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range families {
		for _, s := range f.GetMetric() {
			var v float64
			switch {
			case s.GetCounter() != nil:
				v = s.GetCounter().GetValue()
			case s.GetGauge() != nil:
				v = s.GetGauge().GetValue()
			default:
				continue // histograms
			}
			if v == 0 {
				continue
			}
			fmt.Print(f.GetName())
			for _, l := range s.GetLabel() {
				fmt.Printf(" %s=%q", l.GetName(), l.GetValue())
			}
			fmt.Println(":", v)
		}
	}
	// Output:
	// ceskit_identity_allocations_total outcome="cached": 1
	// ceskit_identity_allocations_total outcome="created": 1
	// ceskit_identity_space_size: 65280
	// ceskit_identity_usage_ratio: 0.9
	// ceskit_identity_used: 58752
	// ceskit_identity_writes_total resource="ciliumidentities" verb="create": 1
	// ceskit_identity_writes_total resource="ciliumidentities" verb="update": 1
	// ceskit_identity_writes_total resource="leases" verb="create": 1
	// cilium_operator_identity_gc_entries identity_type="crd" status="alive": 1
	// cilium_operator_identity_gc_entries identity_type="crd" status="marked": 1
	// cilium_operator_identity_gc_latency identity_type="crd" outcome="success": 0.08
	// cilium_operator_identity_gc_runs identity_type="crd" outcome="success": 1
}

func ExampleNewPolicyMetrics() {
	reg := prometheus.NewRegistry()
	m, err := observe.NewPolicyMetrics(reg)
	if err != nil {
		fmt.Println(err)
		return
	}
	// Hand it to the policy engine as its Metrics; here, what the engine reports for one
	// policy added that selects two endpoints, enforced at ingress.
	var pm policy.Metrics = m
	pm.PolicyChange("update", "success")
	pm.Policies(1)
	pm.Revision(2)
	pm.Update("policy", 800*time.Microsecond, 2)
	pm.Enforcement(map[string]int{"ingress": 2, "none": 5})
	pm.MapPressure(1638, 16384)
	pm.SelectorCache(1, 2)

	printNonZero(reg)
	// Output:
	// ceskit_policy_endpoints_recomputed_count scope="policy": 1
	// cilium_bpf_map_pressure map_name="cilium_policy": 0.0999755859375
	// cilium_policy: 1
	// cilium_policy_change_total operation="update" outcome="success" source="ceskit": 1
	// cilium_policy_endpoint_enforcement_status enforcement="ingress": 2
	// cilium_policy_endpoint_enforcement_status enforcement="none": 5
	// cilium_policy_incremental_update_duration_count scope="policy": 1
	// cilium_policy_max_revision: 2
	// cilium_policy_selector_cache_identities: 2
	// cilium_policy_selector_cache_selectors: 1
}

func ExampleNewDatapathMetrics() {
	// The policy and datapath metrics share one registry and one cilium_bpf_map_pressure.
	reg := prometheus.NewRegistry()
	if _, err := observe.NewPolicyMetrics(reg); err != nil {
		fmt.Println(err)
		return
	}
	m, err := observe.NewDatapathMetrics(reg)
	if err != nil {
		fmt.Println(err)
		return
	}
	// Hand it to the datapath as its Metrics; here, what it reports for a policy sync and the
	// packets its programs handled.
	var dm datapath.Metrics = m
	dm.MapOps("ceskit_policy", "update", "success", 12)
	dm.MapPressure("ceskit_policy", 12, 65536)
	dm.Packets(0, "INGRESS", 1000)
	dm.Packets(133, "INGRESS", 3) // default deny
	dm.Packets(181, "EGRESS", 1)  // a deny rule
	dm.LostEvents("rate_limit", 5)

	printNonZero(reg)
	// Output:
	// cilium_bpf_map_ops_total map_name="ceskit_policy" operation="update" outcome="success": 12
	// cilium_bpf_map_pressure map_name="ceskit_policy": 0.00018310546875
	// cilium_drop_count_total direction="EGRESS" reason="Policy denied by denylist": 1
	// cilium_drop_count_total direction="INGRESS" reason="Policy denied": 3
	// cilium_forward_count_total direction="INGRESS": 1000
	// hubble_lost_events_total source="rate_limit": 5
}

func ExampleNewFlowMetrics() {
	reg := prometheus.NewRegistry()
	m, err := observe.NewFlowMetrics(reg)
	if err != nil {
		fmt.Println(err)
		return
	}
	// Count every record the flow log writes: put the metrics next to the log sinks.
	sink := observe.MultiSink(observe.NewSlogSink(nil), m)
	ctx := context.Background()
	if err := sink.Write(ctx, observe.Record{Flow: deniedFlow()}); err != nil {
		fmt.Println(err)
	}
	event := &observe.Event{Kind: observe.EventKindEndpoint, Action: observe.ActionCreated, Namespace: "shop", Name: "payments-1"}
	if err := sink.Write(ctx, observe.Record{Event: event}); err != nil {
		fmt.Println(err)
	}

	printNonZero(reg)
	// Output:
	// ceskit_events_total action="created" kind="endpoint": 1
	// hubble_drop_total protocol="TCP" reason="POLICY_DENIED": 1
	// hubble_flows_processed_total protocol="TCP" subtype="" type="PolicyVerdict" verdict="DROPPED": 1
	// hubble_policy_verdicts_total action="dropped" direction="ingress" match="none": 1
}
