// Package observe holds the metrics adapters of ceskit's components: Prometheus implementations
// of the small metrics interfaces each capability package declares, so that those packages never
// import Prometheus and nothing registers into a global registry.
//
// This first part provides [SlicerMetrics], which implements the slicer's Metrics interface
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
// # Flow and audit log
//
// [Flow] is a policy verdict in Hubble's JSON (`hubble observe -o json` field names and enum
// spellings, so existing tooling reads it), with ceskit's extras (rule cookie, rule, audit)
// under "ceskit"; [Event] is an endpoint or slice change; [Record] carries either. Sinks:
// [NewJSONLinesSink], [NewSlogSink] (level by verdict), [MultiSink]. [LogLevels] keeps one
// level per component (slicer, identity, policy, datapath, flows …) that can be changed at
// runtime, also over HTTP, to switch on advanced logging without a restart.
//
// Imports flow one way: slicer and identity may name observe, observe never imports them. Go
// interfaces are satisfied structurally, so [SlicerMetrics] and [IdentityMetrics] need no import
// of the interfaces they implement.
package observe
