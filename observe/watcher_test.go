package observe_test

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ceskit/ceskit/observe"
	"github.com/ceskit/ceskit/slicer"
)

var _ slicer.WatcherMetrics = (*observe.WatcherMetrics)(nil)

func TestWatcherMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := observe.NewWatcherMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.SourceInUse("ciliumendpointslices")
	m.SourceSwitch("ciliumendpointslices", "ciliumendpoints", "controller degraded: x")
	m.SourceInUse("ciliumendpoints")
	m.EndpointEvent("add")
	m.EndpointEvent("add")
	m.EndpointEvent("delete")
	m.Drift(3)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]float64{}
	for _, mf := range mfs {
		for _, metric := range mf.GetMetric() {
			label := ""
			for _, l := range metric.GetLabel() {
				label += l.GetValue() + ","
			}
			v := metric.GetGauge().GetValue() + metric.GetCounter().GetValue()
			values[mf.GetName()+"{"+label+"}"] = v
		}
	}
	for name, want := range map[string]float64{
		"ceskit_watcher_source{ciliumendpoints,}":       1,
		"ceskit_watcher_source{ciliumendpointslices,}":  0,
		"ceskit_watcher_endpoint_events_total{add,}":    2,
		"ceskit_watcher_endpoint_events_total{delete,}": 1,
		"ceskit_watcher_endpoint_events_total{update,}": 0,
	} {
		if got, ok := values[name]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	if _, err := observe.NewWatcherMetrics(reg); err == nil || !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
		t.Errorf("second registration: %v, want AlreadyRegisteredError", err)
	}
	var nilMetrics *observe.WatcherMetrics
	nilMetrics.SourceInUse("x") // must not panic
}
