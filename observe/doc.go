// Package observe holds the metrics adapters of ceskit's components: Prometheus implementations
// of the small metrics interfaces each capability package declares, so that those packages never
// import Prometheus and nothing registers into a global registry.
//
// [SlicerMetrics] implements the slicer's Metrics interface
// (github.com/ceskit/ceskit/slicer). The slicer's metric names follow Cilium's operator (prefix
// cilium_operator_) wherever Cilium has the metric, so existing Cilium dashboards and alerts keep
// working; the measurements Cilium lacks use the prefix ceskit_slicer_. The full list is on
// [NewSlicerMetrics] and in the package README.
//
// Wiring it up takes a registry of the caller's own and one field of the slicer's Config:
//
//	reg := prometheus.NewRegistry()
//	m, err := observe.NewSlicerMetrics(reg)
//	if err != nil {
//		return err
//	}
//	ctrl, err := slicer.New(client, slicer.Config{Metrics: m})
//	...
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// [IdentityMetrics] implements the Metrics interface of the identity allocator and garbage
// collector (github.com/ceskit/ceskit/identity); one value serves both. The garbage collector's
// metrics keep Cilium's operator names (cilium_operator_identity_gc_*, with Cilium's constant
// label identity_type="crd"); the allocator's use the prefix ceskit_identity_. The full list is
// on [NewIdentityMetrics] and in the package README:
//
//	m, err := observe.NewIdentityMetrics(reg)
//	if err != nil {
//		return err
//	}
//	alloc, err := identity.NewCRDAllocator(client, identity.Config{Metrics: m})
//	...
//	gc, err := identity.NewGC(client, identity.GCConfig{Metrics: m})
//
// # Generic registry; policy, datapath and flow metrics
//
// [NewPrometheusRegistry] implements the small interfaces of
// github.com/ceskit/ceskit/observe/metrics (Counter, Gauge, Histogram, Registry) on
// client_golang: options are validated, a name registered twice is an error rather than a panic,
// and an observation a metric cannot take (wrong label count, negative counter increment) is
// dropped and counted in ceskit_metrics_errors_total{metric}. The policy, datapath and flow
// adapters are built on it:
//
//   - [PolicyMetrics] ([NewPolicyMetrics]) implements the policy engine's Metrics interface
//     (github.com/ceskit/ceskit/policy) with the names of Cilium's agent: cilium_policy,
//     cilium_policy_change_total, cilium_policy_incremental_update_duration,
//     cilium_bpf_map_pressure{map_name="cilium_policy"}, …
//   - [DatapathMetrics] ([NewDatapathMetrics]) implements the datapath's Metrics interface
//     (github.com/ceskit/ceskit/datapath): cilium_drop_count_total{reason,direction} with
//     Cilium's drop reason texts, cilium_forward_count_total, hubble_lost_events_total,
//     cilium_bpf_map_pressure and cilium_bpf_map_ops_total. It shares cilium_bpf_map_pressure
//     with PolicyMetrics, so both register into one registry.
//   - [FlowMetrics] ([NewFlowMetrics]) is a [Sink] that counts flow log records as Hubble's
//     metrics do: hubble_flows_processed_total, hubble_drop_total and
//     hubble_policy_verdicts_total (verdicts from reserved:host skipped, as in Hubble), and
//     endpoint and slice events in ceskit_events_total.
//
// All three can share one registry:
//
//	reg := prometheus.NewRegistry()
//	pm, err := observe.NewPolicyMetrics(reg)
//	...
//	engine, err := policy.NewEngine(policy.Config{Metrics: pm})
//	dm, err := observe.NewDatapathMetrics(reg) // the same registry
//	...
//	fm, err := observe.NewFlowMetrics(reg)
//	...
//	sink := observe.MultiSink(observe.NewJSONLinesSink(auditFile), fm)
//
// [Catalog] lists every metric of every adapter (METRICS.md is generated from it);
// [GrafanaDashboard], [Workbook] and [AlertRules] (rendered by [PrometheusRules] and
// [PrometheusRuleGroupARM]) are built on those metrics.
//
// # Flow and audit log
//
// [Flow] is a policy verdict in Hubble's JSON (`hubble observe -o json` field names and enum
// spellings, so existing tooling reads it), with ceskit's extras (rule cookie, rule, audit)
// under "ceskit"; [Event] is an endpoint or slice change; [Record] carries either. Sinks:
// [NewJSONLinesSink], [NewSlogSink] (level by verdict), [MultiSink]. [LogLevels] keeps one
// level per component (slicer, identity, policy, datapath, flows …) that can be changed at
// runtime, also over HTTP, to switch on advanced logging without a restart.
//
// Imports flow one way: slicer, identity, policy and datapath may name observe, observe never
// imports them. Go interfaces are satisfied structurally, so [SlicerMetrics],
// [IdentityMetrics], [PolicyMetrics] and [DatapathMetrics] need no import of the interfaces
// they implement.
package observe
