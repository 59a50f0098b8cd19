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
// Imports flow one way: slicer may name observe, observe never imports slicer. Go interfaces
// are satisfied structurally, so [SlicerMetrics] needs no import of the interface it implements.
package observe
