package observe

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ceskit/ceskit/observe/metrics"
)

// MetricsErrorsName is the name of the counter in which the registry of
// [NewPrometheusRegistry] counts the observations it dropped, by metric:
// ceskit_metrics_errors_total{metric}.
const MetricsErrorsName = "ceskit_metrics_errors_total"

const metricsErrorsHelp = "Observations dropped because they were invalid (wrong number of label values, " +
	"label values that are not UTF-8, a negative or NaN counter increment), by metric"

// NewPrometheusRegistry returns a [metrics.Registry] on client_golang that registers every metric
// it creates into reg, which must not be nil (a nil reg makes every call return an error);
// nothing is ever registered with Prometheus' global registry. The registry and its metrics are
// safe for concurrent use.
//
// Creating a metric validates its [metrics.Opts] (errors wrap [metrics.ErrInvalidOpts] and name
// the field; a histogram label may not be "le", which Prometheus reserves for buckets) and
// registers it; a name reg already holds is an error that names the metric and wraps reg's
// error (errors.As with prometheus.AlreadyRegisteredError works when the existing metric has
// the same help and labels). A metric without labels has its one series from the start, as
// client_golang's plain metrics do; a labelled series appears at its first use. A histogram
// without Buckets gets prometheus.DefBuckets.
//
// The metrics never panic. An observation with the wrong number of label values (or label
// values that are not valid UTF-8), and a counter increment that is negative or NaN, are dropped
// and counted in ceskit_metrics_errors_total{metric="<name>"} ([MetricsErrorsName]), which the
// registry registers into reg with its first metric; each metric's series of it exists from
// the metric's creation at 0, so an alert on its rate works at once. Registries created on the
// same reg share that one counter.
func NewPrometheusRegistry(reg prometheus.Registerer) metrics.Registry {
	return &promRegistry{reg: reg}
}

// promRegistry is the metrics.Registry of NewPrometheusRegistry.
type promRegistry struct {
	reg prometheus.Registerer

	mu   sync.Mutex
	errs *prometheus.CounterVec // nil until the first metric is created
	// registered are the collectors this registry registered into reg itself (not the shared
	// ones it found there), and names their metrics' names, for rollback.
	registered []prometheus.Collector
	names      []string
}

var _ metrics.Registry = (*promRegistry)(nil)

// Counter creates and registers a counter; see [NewPrometheusRegistry].
func (r *promRegistry) Counter(o metrics.Opts) (metrics.Counter, error) {
	c, err := r.counter(o, false)
	if err != nil {
		return nil, err // not a nil *promCounter in a non-nil interface
	}
	return c, nil
}

// Gauge creates and registers a gauge; see [NewPrometheusRegistry].
func (r *promRegistry) Gauge(o metrics.Opts) (metrics.Gauge, error) {
	g, err := r.gauge(o, false)
	if err != nil {
		return nil, err
	}
	return g, nil
}

// Histogram creates and registers a histogram; see [NewPrometheusRegistry].
func (r *promRegistry) Histogram(o metrics.Opts) (metrics.Histogram, error) {
	if err := r.check(o); err != nil {
		return nil, err
	}
	for i, l := range o.Labels {
		if l == "le" {
			return nil, fmt.Errorf("%w: Labels[%d] of %s: %q is reserved for histogram buckets",
				metrics.ErrInvalidOpts, i, o.Name, l)
		}
	}
	buckets := slices.Clone(o.Buckets)
	if len(buckets) == 0 {
		buckets = slices.Clone(prometheus.DefBuckets)
	}
	vec := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: o.Name, Help: o.Help, Buckets: buckets,
	}, slices.Clone(o.Labels))
	c, dropped, err := r.register(o, vec, false)
	if err != nil {
		return nil, err
	}
	h := &promHistogram{vec: c.(*prometheus.HistogramVec), dropped: dropped}
	if len(o.Labels) == 0 {
		h.vec.WithLabelValues()
	}
	return h, nil
}

// counter creates a counter; shared allows reusing a counter of the same description that reg
// already holds (see register).
func (r *promRegistry) counter(o metrics.Opts, shared bool) (*promCounter, error) {
	if err := r.check(o); err != nil {
		return nil, err
	}
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: o.Name, Help: o.Help}, slices.Clone(o.Labels))
	c, dropped, err := r.register(o, vec, shared)
	if err != nil {
		return nil, err
	}
	m := &promCounter{vec: c.(*prometheus.CounterVec), dropped: dropped}
	if len(o.Labels) == 0 {
		m.vec.WithLabelValues()
	}
	return m, nil
}

// gauge creates a gauge; shared allows reusing a gauge of the same description that reg already
// holds (see register).
func (r *promRegistry) gauge(o metrics.Opts, shared bool) (*promGauge, error) {
	if err := r.check(o); err != nil {
		return nil, err
	}
	vec := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: o.Name, Help: o.Help}, slices.Clone(o.Labels))
	c, dropped, err := r.register(o, vec, shared)
	if err != nil {
		return nil, err
	}
	m := &promGauge{vec: c.(*prometheus.GaugeVec), dropped: dropped}
	if len(o.Labels) == 0 {
		m.vec.WithLabelValues()
	}
	return m, nil
}

// sharedGauge creates a gauge that several adapters may create on one registerer: when reg
// already holds a gauge with the same name, help and labels (most often created by another
// adapter through sharedGauge), the new gauge writes to that one instead of failing. It is how
// PolicyMetrics and DatapathMetrics both export cilium_bpf_map_pressure{map_name} into one
// registry.
func (r *promRegistry) sharedGauge(o metrics.Opts) (metrics.Gauge, error) {
	g, err := r.gauge(o, true)
	if err != nil {
		return nil, err
	}
	return g, nil
}

// check validates o and the registerer.
func (r *promRegistry) check(o metrics.Opts) error {
	if err := o.Validate(); err != nil {
		return err
	}
	if r.reg == nil {
		return fmt.Errorf("create metric %s: registerer is nil", o.Name)
	}
	return nil
}

// register registers c, the collector of the metric o describes, and returns the collector to
// use and the metric's series of the error counter (registering that counter first if needed).
// With shared, a collector of c's type that reg already holds under the same descriptions is
// returned instead of an error.
func (r *promRegistry) register(o metrics.Opts, c prometheus.Collector, shared bool) (prometheus.Collector, prometheus.Counter, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var newErrs prometheus.Collector // the error counter, when this call registered it
	if r.errs == nil {
		vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricsErrorsName, Help: metricsErrorsHelp}, []string{"metric"})
		got, fresh, err := registerOrReuse(r.reg, vec, true)
		if err != nil {
			return nil, nil, fmt.Errorf("register metric %s: %w", MetricsErrorsName, err)
		}
		if fresh {
			newErrs = got
		}
		r.errs = got.(*prometheus.CounterVec)
	}
	got, fresh, err := registerOrReuse(r.reg, c, shared)
	if err != nil {
		if newErrs != nil { // a failed call changes nothing
			r.reg.Unregister(newErrs)
			r.errs = nil
		}
		return nil, nil, fmt.Errorf("register metric %s: %w", o.Name, err)
	}
	if newErrs != nil {
		r.registered = append(r.registered, newErrs)
	}
	if fresh {
		r.registered = append(r.registered, got)
		r.names = append(r.names, o.Name)
	}
	return got, r.errs.WithLabelValues(o.Name), nil
}

// rollback unregisters what r registered and removes the error-counter series of the metrics
// it created, so that a constructor that failed half-way leaves nothing behind. Shared
// collectors that r found already registered stay.
func (r *promRegistry) rollback() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, name := range r.names {
		if r.errs != nil {
			r.errs.DeleteLabelValues(name)
		}
	}
	for _, c := range slices.Backward(r.registered) {
		r.reg.Unregister(c)
	}
	r.registered, r.names, r.errs = nil, nil, nil
}

// registerOrReuse registers c with reg. With shared, when reg already holds a collector of c's
// type with the same descriptions (name, help, labels), it returns that one instead; fresh
// tells whether c itself was registered.
func registerOrReuse(reg prometheus.Registerer, c prometheus.Collector, shared bool) (_ prometheus.Collector, fresh bool, _ error) {
	err := reg.Register(c)
	if err == nil {
		return c, true, nil
	}
	var are prometheus.AlreadyRegisteredError
	if shared && errors.As(err, &are) && are.ExistingCollector != nil &&
		reflect.TypeOf(are.ExistingCollector) == reflect.TypeOf(c) &&
		slices.Equal(descStrings(are.ExistingCollector), descStrings(c)) {
		return are.ExistingCollector, false, nil
	}
	return nil, false, err
}

// descStrings returns the descriptions c sends, as strings (prometheus.Desc keeps its fields
// unexported; its String form holds the name, help, constant and variable labels), sorted.
func descStrings(c prometheus.Collector) []string {
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	var out []string
	for d := range ch {
		out = append(out, d.String())
	}
	slices.Sort(out)
	return out
}

// promCounter is a metrics.Counter on a CounterVec.
type promCounter struct {
	vec     *prometheus.CounterVec
	dropped prometheus.Counter
}

// Add adds v to the series of labelValues; a negative or NaN v, or a wrong number of label
// values, is dropped and counted in ceskit_metrics_errors_total.
func (c *promCounter) Add(v float64, labelValues ...string) {
	if !(v >= 0) {
		c.dropped.Inc()
		return
	}
	m, err := c.vec.GetMetricWithLabelValues(labelValues...)
	if err != nil {
		c.dropped.Inc()
		return
	}
	m.Add(v)
}

// promGauge is a metrics.Gauge on a GaugeVec.
type promGauge struct {
	vec     *prometheus.GaugeVec
	dropped prometheus.Counter
}

// Set sets the series of labelValues to v; a wrong number of label values is dropped and
// counted in ceskit_metrics_errors_total.
func (g *promGauge) Set(v float64, labelValues ...string) {
	if m, ok := g.series(labelValues); ok {
		m.Set(v)
	}
}

// Add adds v to the series of labelValues; a wrong number of label values is dropped and
// counted in ceskit_metrics_errors_total.
func (g *promGauge) Add(v float64, labelValues ...string) {
	if m, ok := g.series(labelValues); ok {
		m.Add(v)
	}
}

func (g *promGauge) series(labelValues []string) (prometheus.Gauge, bool) {
	m, err := g.vec.GetMetricWithLabelValues(labelValues...)
	if err != nil {
		g.dropped.Inc()
		return nil, false
	}
	return m, true
}

// promHistogram is a metrics.Histogram on a HistogramVec.
type promHistogram struct {
	vec     *prometheus.HistogramVec
	dropped prometheus.Counter
}

// Observe records v in the series of labelValues; a wrong number of label values is dropped
// and counted in ceskit_metrics_errors_total.
func (h *promHistogram) Observe(v float64, labelValues ...string) {
	m, err := h.vec.GetMetricWithLabelValues(labelValues...)
	if err != nil {
		h.dropped.Inc()
		return
	}
	m.Observe(v)
}
