package observe_test

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ceskit/ceskit/identity"
	"github.com/ceskit/ceskit/observe"
	"github.com/ceskit/ceskit/slicer"
)

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
