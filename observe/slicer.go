package observe

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Prefixes of the slicer's metric names.
const (
	ciliumOperator = "cilium_operator"
	ceskitSlicer   = "ceskit_slicer"
)

// SlicerMetrics is the Prometheus implementation of the slicer's Metrics interface
// (github.com/ceskit/ceskit/slicer.Metrics). Build it with [NewSlicerMetrics] and pass it as the
// slicer Config's Metrics field. Its methods are safe for concurrent use. The zero value is not
// usable; a nil *SlicerMetrics discards every measurement.
type SlicerMetrics struct {
	cepsPerCES    prometheus.Histogram
	cepChanges    *prometheus.HistogramVec
	syncs         *prometheus.CounterVec
	queueingDelay *prometheus.HistogramVec
	propagation   prometheus.Histogram
	writes        *prometheus.CounterVec
	writeBytes    prometheus.Counter
	conflicts     prometheus.Counter
	echoes        prometheus.Counter
	slices        *prometheus.GaugeVec
	degraded      prometheus.Gauge
	sliceDesired  prometheus.Gauge
	sliceActual   prometheus.Gauge
}

// NewSlicerMetrics creates the slicer's metrics and registers them with reg, which must not be
// nil; nothing is ever registered with Prometheus' global registry. When any metric cannot be
// registered (most often because reg already holds a metric of that name, e.g. from an earlier
// call), NewSlicerMetrics unregisters the ones it registered and returns an error that wraps the
// registry's (errors.As with *prometheus.AlreadyRegisteredError works).
//
// The metrics, named after Cilium's operator where Cilium has them:
//
//	cilium_operator_number_of_ceps_per_ces              histogram; endpoints in a slice after a write; buckets 1, 10, 25, 50, 100, 200, 500, 1000
//	cilium_operator_number_of_cep_changes_per_ces       histogram{opcode="cepinserted"|"cepremoved"}; endpoints one write inserted or removed (only writes that changed some); buckets 1, 5, 10, 25, 50, 100, 250, 500, 1000
//	cilium_operator_ces_sync_total                      counter{outcome="success"|"fail", failure_type=""|"transient"}; every processed slice sync (a write, nothing to write, or a shadow diff) or a failed one
//	cilium_operator_ces_queueing_delay_seconds          histogram{queue="fast"|"standard"}; time a slice waited in the work queue; prometheus.DefBuckets plus 60, 300, 900, 1800, 3600
//	ceskit_slicer_propagation_seconds                   histogram; time from the first endpoint change a write carries to the end of that write; buckets .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30
//	ceskit_slicer_writes_total                          counter{verb="create"|"update"|"delete"}; API writes of slices
//	ceskit_slicer_write_bytes_total                     counter; bytes of the slice objects sent in creates and updates
//	ceskit_slicer_conflicts_total                       counter; writes rejected with 409 Conflict or AlreadyExists
//	ceskit_slicer_echoes_suppressed_total               counter; watch events for the controller's own writes that were not reconciled
//	ceskit_slicer_slices                                gauge{kind="desired"|"actual"}; slices a perfect packing needs, and slices that exist
//	ceskit_slicer_degraded                              gauge; 1 while the controller reports Degraded, else 0
//
// Counter series with the label values the slicer documents start at 0, so rates and alerts
// work before the first event.
func NewSlicerMetrics(reg prometheus.Registerer) (*SlicerMetrics, error) {
	if reg == nil {
		return nil, errors.New("new slicer metrics: registerer is nil")
	}
	m := &SlicerMetrics{
		cepsPerCES: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ciliumOperator,
			Name:      "number_of_ceps_per_ces",
			Help:      "The number of CEPs batched in a CES",
			Buckets:   []float64{1, 10, 25, 50, 100, 200, 500, 1000},
		}),
		cepChanges: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ciliumOperator,
			Name:      "number_of_cep_changes_per_ces",
			Help:      "The number of changed CEPs in each CES update",
			Buckets:   []float64{1, 5, 10, 25, 50, 100, 250, 500, 1000},
		}, []string{"opcode"}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ciliumOperator,
			Name:      "ces_sync_total",
			Help:      "The number of completed CES syncs by outcome",
		}, []string{"outcome", "failure_type"}),
		queueingDelay: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ciliumOperator,
			Name:      "ces_queueing_delay_seconds",
			Help:      "CiliumEndpointSlice queueing delay in seconds",
			Buckets:   append(append([]float64(nil), prometheus.DefBuckets...), 60, 300, 900, 1800, 3600),
		}, []string{"queue"}),
		propagation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ceskitSlicer,
			Name:      "propagation_seconds",
			Help:      "Time from the first endpoint change a CES write carries to the end of that write",
			Buckets:   []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ceskitSlicer,
			Name:      "writes_total",
			Help:      "The number of CES API writes by verb",
		}, []string{"verb"}),
		writeBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ceskitSlicer,
			Name:      "write_bytes_total",
			Help:      "Bytes of the CES objects sent in creates and updates",
		}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ceskitSlicer,
			Name:      "conflicts_total",
			Help:      "The number of CES writes rejected with 409 Conflict or AlreadyExists",
		}),
		echoes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ceskitSlicer,
			Name:      "echoes_suppressed_total",
			Help:      "The number of watch events for the controller's own CES writes that were not reconciled",
		}),
		slices: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ceskitSlicer,
			Name:      "slices",
			Help:      "CiliumEndpointSlices a perfect packing needs (kind=desired) and that exist (kind=actual)",
		}, []string{"kind"}),
		degraded: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ceskitSlicer,
			Name:      "degraded",
			Help:      "1 while the CES controller reports Degraded, else 0",
		}),
	}
	m.sliceDesired = m.slices.WithLabelValues("desired")
	m.sliceActual = m.slices.WithLabelValues("actual")
	m.syncs.WithLabelValues("success", "")
	m.syncs.WithLabelValues("fail", "transient")
	for _, verb := range []string{"create", "update", "delete"} {
		m.writes.WithLabelValues(verb)
	}

	if err := registerAll(reg, "slicer", []namedCollector{
		{"cilium_operator_number_of_ceps_per_ces", m.cepsPerCES},
		{"cilium_operator_number_of_cep_changes_per_ces", m.cepChanges},
		{"cilium_operator_ces_sync_total", m.syncs},
		{"cilium_operator_ces_queueing_delay_seconds", m.queueingDelay},
		{"ceskit_slicer_propagation_seconds", m.propagation},
		{"ceskit_slicer_writes_total", m.writes},
		{"ceskit_slicer_write_bytes_total", m.writeBytes},
		{"ceskit_slicer_conflicts_total", m.conflicts},
		{"ceskit_slicer_echoes_suppressed_total", m.echoes},
		{"ceskit_slicer_slices", m.slices},
		{"ceskit_slicer_degraded", m.degraded},
	}); err != nil {
		return nil, err
	}
	return m, nil
}

// EndpointsPerSlice observes the number of endpoints in a slice after a write
// (cilium_operator_number_of_ceps_per_ces).
func (m *SlicerMetrics) EndpointsPerSlice(n int) {
	if m == nil {
		return
	}
	m.cepsPerCES.Observe(float64(n))
}

// EndpointChanges observes how many endpoints one write inserted (opcode "cepinserted") or
// removed ("cepremoved") (cilium_operator_number_of_cep_changes_per_ces{opcode}). n ≤ 0 is not
// observed, as in Cilium's operator, so the histogram describes writes that changed something.
func (m *SlicerMetrics) EndpointChanges(opcode string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.cepChanges.WithLabelValues(opcode).Observe(float64(n))
}

// Sync counts one slice sync by outcome ("success" or "fail") and failure type ("" or
// "transient") (cilium_operator_ces_sync_total{outcome,failure_type}).
func (m *SlicerMetrics) Sync(outcome, failureType string) {
	if m == nil {
		return
	}
	m.syncs.WithLabelValues(outcome, failureType).Inc()
}

// QueueingDelay observes how long a slice waited in queue "fast" or "standard"
// (cilium_operator_ces_queueing_delay_seconds{queue}).
func (m *SlicerMetrics) QueueingDelay(queue string, d time.Duration) {
	if m == nil {
		return
	}
	m.queueingDelay.WithLabelValues(queue).Observe(d.Seconds())
}

// Propagation observes the time from the first endpoint change a write carries to the end of
// that write (ceskit_slicer_propagation_seconds).
func (m *SlicerMetrics) Propagation(d time.Duration) {
	if m == nil {
		return
	}
	m.propagation.Observe(d.Seconds())
}

// Write counts one API write by verb ("create", "update", "delete")
// (ceskit_slicer_writes_total{verb}) and adds the bytes of the object sent
// (ceskit_slicer_write_bytes_total); negative byte counts are ignored.
func (m *SlicerMetrics) Write(verb string, bytes int) {
	if m == nil {
		return
	}
	m.writes.WithLabelValues(verb).Inc()
	if bytes > 0 {
		m.writeBytes.Add(float64(bytes))
	}
}

// Conflict counts a write rejected with 409 Conflict or AlreadyExists
// (ceskit_slicer_conflicts_total).
func (m *SlicerMetrics) Conflict() {
	if m == nil {
		return
	}
	m.conflicts.Inc()
}

// EchoSuppressed counts a watch event for the controller's own write that was not reconciled
// (ceskit_slicer_echoes_suppressed_total).
func (m *SlicerMetrics) EchoSuppressed() {
	if m == nil {
		return
	}
	m.echoes.Inc()
}

// Slices sets the number of slices a perfect packing needs and the number that exist
// (ceskit_slicer_slices{kind="desired"|"actual"}).
func (m *SlicerMetrics) Slices(desired, actual int) {
	if m == nil {
		return
	}
	m.sliceDesired.Set(float64(desired))
	m.sliceActual.Set(float64(actual))
}

// Degraded sets ceskit_slicer_degraded to 1 while the controller is Degraded and to 0 otherwise.
func (m *SlicerMetrics) Degraded(degraded bool) {
	if m == nil {
		return
	}
	v := 0.0
	if degraded {
		v = 1
	}
	m.degraded.Set(v)
}

type namedCollector struct {
	name string
	c    prometheus.Collector
}

// registerAll registers every collector with reg, or none: on a failure it unregisters those
// already registered and returns an error naming the metric.
func registerAll(reg prometheus.Registerer, what string, cs []namedCollector) error {
	for i, c := range cs {
		if err := reg.Register(c.c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done.c)
			}
			return fmt.Errorf("register %s metric %s: %w", what, c.name, err)
		}
	}
	return nil
}
