package observe_test

import (
	"errors"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ceskit/ceskit/observe"
	"github.com/ceskit/ceskit/observe/metrics"
)

// errorsHelp is the help text of ceskit_metrics_errors_total.
const errorsHelp = "Observations dropped because they were invalid (wrong number of label values, " +
	"label values that are not UTF-8, a negative or NaN counter increment), by metric"

// family is a gathered metric family's type, help and (for histograms) bucket bounds.
type family struct {
	Type    string
	Help    string
	Buckets []float64
}

// families gathers reg into name → family.
func families(t *testing.T, reg *prometheus.Registry) map[string]family {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]family{}
	for _, mf := range mfs {
		f := family{Type: mf.GetType().String(), Help: mf.GetHelp()}
		if h := mf.GetMetric()[0].GetHistogram(); h != nil {
			for _, b := range h.GetBucket() {
				f.Buckets = append(f.Buckets, b.GetUpperBound())
			}
		}
		got[mf.GetName()] = f
	}
	return got
}

// errorsSeries is the error counter's series for one metric, as snapshot names it.
func errorsSeries(metric string) string {
	return `ceskit_metrics_errors_total{metric="` + metric + `"}`
}

func TestPrometheusRegistryValues(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := observe.NewPrometheusRegistry(reg)
	c, err := r.Counter(metrics.Opts{Name: "test_requests_total", Help: "Requests", Labels: []string{"code"}})
	if err != nil {
		t.Fatal(err)
	}
	g, err := r.Gauge(metrics.Opts{Name: "test_queue_length", Help: "Queue length"})
	if err != nil {
		t.Fatal(err)
	}
	h, err := r.Histogram(metrics.Opts{Name: "test_latency_seconds", Help: "Latency", Labels: []string{"op"}, Buckets: []float64{0.1, 1}})
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, reg)
	if diff := cmp.Diff(map[string]float64{
		// Unlabelled metrics and the error counter's series exist from the start.
		"test_queue_length{}":                0,
		errorsSeries("test_requests_total"):  0,
		errorsSeries("test_queue_length"):    0,
		errorsSeries("test_latency_seconds"): 0,
	}, before); diff != "" {
		t.Errorf("initial series (-want +got):\n%s", diff)
	}

	c.Add(1, "200")
	c.Add(2.5, "200")
	c.Add(0, "500")
	g.Set(7)
	g.Add(-2)
	h.Observe(0.05, "get")
	h.Observe(0.5, "get")
	h.Observe(3, "put")

	want := map[string]float64{
		`test_requests_total{code="200"}`:      3.5,
		`test_requests_total{code="500"}`:      0,
		"test_queue_length{}":                  5,
		`test_latency_seconds_count{op="get"}`: 2,
		`test_latency_seconds_sum{op="get"}`:   0.55,
		`test_latency_seconds_count{op="put"}`: 1,
		`test_latency_seconds_sum{op="put"}`:   3,
	}
	if diff := cmp.Diff(want, changed(before, snapshot(t, reg))); diff != "" {
		t.Errorf("series (-want +got):\n%s", diff)
	}

	// The histogram's buckets are the ones given; cumulative counts as Prometheus keeps them.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "test_latency_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() != "get" {
				continue
			}
			var got []float64
			for _, b := range m.GetHistogram().GetBucket() {
				got = append(got, b.GetUpperBound(), float64(b.GetCumulativeCount()))
			}
			if diff := cmp.Diff([]float64{0.1, 1, 1, 2}, got); diff != "" {
				t.Errorf("buckets (upper bound, count) (-want +got):\n%s", diff)
			}
		}
	}
}

func TestPrometheusRegistryDefaultBuckets(t *testing.T) {
	reg := prometheus.NewRegistry()
	h, err := observe.NewPrometheusRegistry(reg).Histogram(metrics.Opts{Name: "test_seconds", Help: "Seconds"})
	if err != nil {
		t.Fatal(err)
	}
	h.Observe(1)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []float64
	for _, mf := range mfs {
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			for _, b := range mf.GetMetric()[0].GetHistogram().GetBucket() {
				got = append(got, b.GetUpperBound())
			}
		}
	}
	if diff := cmp.Diff(prometheus.DefBuckets, got); diff != "" {
		t.Errorf("default buckets (-want +got):\n%s", diff)
	}
}

// TestPrometheusRegistryBadObservations checks that observations a metric cannot take are
// dropped, counted per metric, and never panic.
func TestPrometheusRegistryBadObservations(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := observe.NewPrometheusRegistry(reg)
	c, err := r.Counter(metrics.Opts{Name: "test_total", Help: "Test", Labels: []string{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	g, err := r.Gauge(metrics.Opts{Name: "test_gauge", Help: "Test", Labels: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := r.Histogram(metrics.Opts{Name: "test_seconds", Help: "Test"})
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, reg)
	c.Add(1, "x")           // too few label values
	c.Add(1, "x", "y", "z") // too many
	c.Add(-1, "x", "y")     // negative
	c.Add(math.NaN(), "x", "y")
	c.Add(1, "x", "\xff") // not UTF-8
	c.Add(2, "x", "y")    // fine
	g.Set(1)
	g.Add(1, "p", "q")
	g.Set(3, "p") // fine
	h.Observe(1, "unexpected")
	want := map[string]float64{
		errorsSeries("test_total"):   5,
		errorsSeries("test_gauge"):   2,
		errorsSeries("test_seconds"): 1,
		`test_total{a="x",b="y"}`:    2,
		`test_gauge{a="p"}`:          3,
	}
	if diff := cmp.Diff(want, changed(before, snapshot(t, reg))); diff != "" {
		t.Errorf("series after bad observations (-want +got):\n%s", diff)
	}
}

func TestPrometheusRegistryDuplicate(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := observe.NewPrometheusRegistry(reg)
	opts := metrics.Opts{Name: "test_total", Help: "Test", Labels: []string{"a"}}
	first, err := r.Counter(opts)
	if err != nil {
		t.Fatal(err)
	}
	first.Add(1, "x")
	for _, tc := range []struct {
		name   string
		create func() (any, error)
		typed  bool // the error wraps prometheus.AlreadyRegisteredError
	}{
		{"same registry", func() (any, error) { return r.Counter(opts) }, true},
		{"other registry on the same registerer", func() (any, error) {
			return observe.NewPrometheusRegistry(reg).Counter(opts)
		}, true},
		{"as a gauge", func() (any, error) { return r.Gauge(opts) }, true},
		{"other help", func() (any, error) {
			return r.Counter(metrics.Opts{Name: "test_total", Help: "Other", Labels: []string{"a"}})
		}, false},
		{"other labels", func() (any, error) {
			return r.Histogram(metrics.Opts{Name: "test_total", Help: "Test", Labels: []string{"b"}})
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := tc.create()
			if err == nil {
				t.Fatal("registered test_total twice without an error")
			}
			if m != nil {
				t.Errorf("got metric %v with error %v, want nil", m, err)
			}
			if !strings.Contains(err.Error(), "test_total") {
				t.Errorf("error %q does not name the metric", err)
			}
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) != tc.typed {
				t.Errorf("error %v: errors.As(AlreadyRegisteredError) = %v, want %v", err, !tc.typed, tc.typed)
			}
		})
	}
	if got := snapshot(t, reg)[`test_total{a="x"}`]; got != 1 {
		t.Errorf(`test_total{a="x"} = %v after the failed registrations, want 1`, got)
	}
}

func TestPrometheusRegistryInvalidOpts(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  metrics.Opts
		histo bool
		field string // the error must contain it
	}{
		{"name", metrics.Opts{Name: "1bad", Help: "h"}, false, `Name "1bad"`},
		{"help", metrics.Opts{Name: "test_total", Help: ""}, false, "Help of test_total"},
		{"label", metrics.Opts{Name: "test_total", Help: "h", Labels: []string{"ok", "bad-label"}}, false, `Labels[1] of test_total: "bad-label"`},
		{"reserved label", metrics.Opts{Name: "test_total", Help: "h", Labels: []string{"__x"}}, false, `Labels[0] of test_total: "__x"`},
		{"repeated label", metrics.Opts{Name: "test_total", Help: "h", Labels: []string{"a", "a"}}, false, `Labels[1] of test_total: "a" is repeated`},
		{"buckets", metrics.Opts{Name: "test_seconds", Help: "h", Buckets: []float64{1, 1}}, true, "Buckets of test_seconds"},
		{"le label", metrics.Opts{Name: "test_seconds", Help: "h", Labels: []string{"le"}}, true, `Labels[0] of test_seconds: "le"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			r := observe.NewPrometheusRegistry(reg)
			var err error
			if tc.histo {
				_, err = r.Histogram(tc.opts)
			} else {
				_, err = r.Counter(tc.opts)
				if err != nil {
					_, gerr := r.Gauge(tc.opts)
					if gerr == nil || gerr.Error() != err.Error() {
						t.Errorf("Gauge error %v, Counter error %v; want the same", gerr, err)
					}
				}
			}
			if !errors.Is(err, metrics.ErrInvalidOpts) {
				t.Fatalf("error %v does not wrap metrics.ErrInvalidOpts", err)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not contain %q", err, tc.field)
			}
			if mfs, _ := reg.Gather(); len(mfs) != 0 {
				t.Errorf("invalid opts registered %d metric families", len(mfs))
			}
		})
	}
}

func TestPrometheusRegistryNilRegisterer(t *testing.T) {
	r := observe.NewPrometheusRegistry(nil)
	if c, err := r.Counter(metrics.Opts{Name: "test_total", Help: "h"}); err == nil || c != nil {
		t.Errorf("Counter on a nil registerer = %v, %v; want nil and an error", c, err)
	}
	if g, err := r.Gauge(metrics.Opts{Name: "test_gauge", Help: "h"}); err == nil || g != nil {
		t.Errorf("Gauge on a nil registerer = %v, %v; want nil and an error", g, err)
	}
	if h, err := r.Histogram(metrics.Opts{Name: "test_seconds", Help: "h"}); err == nil || h != nil {
		t.Errorf("Histogram on a nil registerer = %v, %v; want nil and an error", h, err)
	}
}

// TestPrometheusRegistryErrorCounterConflict checks that a registerer holding a different
// metric under the error counter's name makes metric creation fail, naming it.
func TestPrometheusRegistryErrorCounterConflict(t *testing.T) {
	reg := prometheus.NewRegistry()
	blocker := prometheus.NewGauge(prometheus.GaugeOpts{Name: observe.MetricsErrorsName, Help: "something else"})
	reg.MustRegister(blocker)
	_, err := observe.NewPrometheusRegistry(reg).Counter(metrics.Opts{Name: "test_total", Help: "h"})
	if err == nil || !strings.Contains(err.Error(), observe.MetricsErrorsName) {
		t.Fatalf("error = %v, want one naming %s", err, observe.MetricsErrorsName)
	}
	if mfs, _ := reg.Gather(); len(mfs) != 1 {
		t.Errorf("%d metric families after the failure, want only the blocker", len(mfs))
	}
}

// TestPrometheusRegistryFailedCreateChangesNothing checks that a creation failing on a
// duplicate name does not leave the error counter behind.
func TestPrometheusRegistryFailedCreateChangesNothing(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "test_total", Help: "h"}))
	r := observe.NewPrometheusRegistry(reg)
	if _, err := r.Counter(metrics.Opts{Name: "test_total", Help: "h"}); err == nil {
		t.Fatal("no error for a name the registerer holds")
	}
	want := map[string]float64{"test_total{}": 0}
	if diff := cmp.Diff(want, snapshot(t, reg)); diff != "" {
		t.Errorf("series after a failed creation (-want +got):\n%s", diff)
	}
	// The registry still works.
	c, err := r.Counter(metrics.Opts{Name: "test_other_total", Help: "h"})
	if err != nil {
		t.Fatal(err)
	}
	c.Add(1)
	if got := snapshot(t, reg)["test_other_total{}"]; got != 1 {
		t.Errorf("test_other_total = %v, want 1", got)
	}
}

// TestPrometheusRegistryConcurrent uses one registry and its metrics from many goroutines
// (run with -race): metric creation, valid and invalid observations, and gathering.
func TestPrometheusRegistryConcurrent(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := observe.NewPrometheusRegistry(reg)
	c, err := r.Counter(metrics.Opts{Name: "test_total", Help: "h", Labels: []string{"w"}})
	if err != nil {
		t.Fatal(err)
	}
	g, err := r.Gauge(metrics.Opts{Name: "test_gauge", Help: "h"})
	if err != nil {
		t.Fatal(err)
	}
	h, err := r.Histogram(metrics.Opts{Name: "test_seconds", Help: "h", Labels: []string{"w"}})
	if err != nil {
		t.Fatal(err)
	}
	const workers, n = 8, 500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			label := string(rune('a' + w))
			// Each worker also creates a metric of its own, concurrently with the others.
			own, err := r.Gauge(metrics.Opts{Name: "test_own_" + label, Help: "h"})
			if err != nil {
				t.Error(err)
				return
			}
			for i := range n {
				c.Add(1, label)
				c.Add(1) // wrong label count
				g.Add(1)
				h.Observe(float64(i), label)
				own.Set(float64(i))
				if i%100 == 0 {
					if _, err := reg.Gather(); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	s := snapshot(t, reg)
	var total float64
	for w := range workers {
		total += s[`test_total{w="`+string(rune('a'+w))+`"}`]
	}
	if total != workers*n || s["test_gauge{}"] != workers*n || s[errorsSeries("test_total")] != workers*n {
		t.Errorf("after %d×%d: counter sum %v, gauge %v, errors %v", workers, n, total, s["test_gauge{}"], s[errorsSeries("test_total")])
	}
}

// TestPrometheusRegistriesShareErrorCounter checks that registries on one registerer share the
// one error counter.
func TestPrometheusRegistriesShareErrorCounter(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := observe.NewPrometheusRegistry(reg).Counter(metrics.Opts{Name: "test_a_total", Help: "h"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := observe.NewPrometheusRegistry(reg).Counter(metrics.Opts{Name: "test_b_total", Help: "h"})
	if err != nil {
		t.Fatal(err)
	}
	a.Add(-1)
	b.Add(-1)
	b.Add(-1)
	s := snapshot(t, reg)
	if s[errorsSeries("test_a_total")] != 1 || s[errorsSeries("test_b_total")] != 2 {
		t.Errorf("error counts %v, %v; want 1, 2", s[errorsSeries("test_a_total")], s[errorsSeries("test_b_total")])
	}
}
