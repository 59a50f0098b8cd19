package observe

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// WatcherMetrics is the Prometheus implementation of the slicer Watcher's metrics interface
// (github.com/ceskit/ceskit/slicer.WatcherMetrics). Build it with [NewWatcherMetrics] and pass
// it as the WatcherConfig's Metrics field. Its methods are safe for concurrent use; a nil
// *WatcherMetrics discards every measurement.
//
//	ceskit_watcher_source                    gauge{source="ciliumendpointslices"|"ciliumendpoints"}; 1 for the source in use, 0 for the other
//	ceskit_watcher_source_switches_total     counter{from,to}; source switches (the reason is in the log)
//	ceskit_watcher_endpoint_events_total     counter{kind="add"|"update"|"delete"}; events delivered to the handler
//	ceskit_watcher_drift_total               counter; endpoints the consistency checks found wrong and repaired
type WatcherMetrics struct {
	source   *prometheus.GaugeVec
	switches *prometheus.CounterVec
	events   *prometheus.CounterVec
	drift    prometheus.Counter
}

// Watcher source names, as in the slicer package.
var watcherSources = []string{"ciliumendpointslices", "ciliumendpoints"}

// NewWatcherMetrics creates the watcher's metrics and registers them with reg (never the global
// registry), all or none.
func NewWatcherMetrics(reg prometheus.Registerer) (*WatcherMetrics, error) {
	if reg == nil {
		return nil, errors.New("new watcher metrics: registerer is nil")
	}
	m := &WatcherMetrics{
		source: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ceskit_watcher_source", Help: "1 for the endpoint source in use, 0 for the other",
		}, []string{"source"}),
		switches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ceskit_watcher_source_switches_total", Help: "Switches of the endpoint source",
		}, []string{"from", "to"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ceskit_watcher_endpoint_events_total", Help: "Endpoint events delivered to the handler",
		}, []string{"kind"}),
		drift: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ceskit_watcher_drift_total", Help: "Endpoints the consistency checks found wrong and repaired",
		}),
	}
	for _, s := range watcherSources {
		m.source.WithLabelValues(s)
	}
	for _, k := range []string{"add", "update", "delete"} {
		m.events.WithLabelValues(k)
	}
	if err := registerAll(reg, "watcher", []namedCollector{
		{"ceskit_watcher_source", m.source},
		{"ceskit_watcher_source_switches_total", m.switches},
		{"ceskit_watcher_endpoint_events_total", m.events},
		{"ceskit_watcher_drift_total", m.drift},
	}); err != nil {
		return nil, err
	}
	return m, nil
}

// SourceInUse sets ceskit_watcher_source to 1 for source and 0 for the other.
func (m *WatcherMetrics) SourceInUse(source string) {
	if m == nil {
		return
	}
	for _, s := range watcherSources {
		v := 0.0
		if s == source {
			v = 1
		}
		m.source.WithLabelValues(s).Set(v)
	}
}

// SourceSwitch counts a switch; the reason goes to the log, not to a label.
func (m *WatcherMetrics) SourceSwitch(from, to, _ string) {
	if m == nil {
		return
	}
	m.switches.WithLabelValues(from, to).Inc()
}

// EndpointEvent counts an event delivered to the handler.
func (m *WatcherMetrics) EndpointEvent(kind string) {
	if m == nil {
		return
	}
	m.events.WithLabelValues(kind).Inc()
}

// Drift counts repaired endpoints.
func (m *WatcherMetrics) Drift(n int) {
	if m == nil {
		return
	}
	m.drift.Add(float64(n))
}
