// Package metrics holds the small metric interfaces ceskit's components can be instrumented
// with: a [Counter], a [Gauge] and a [Histogram], each with label values, created through a
// [Registry]. It imports nothing but the standard library, so any package can depend on it
// without pulling in a metrics client.
//
// [Nop] returns a Registry whose metrics discard everything, the default wherever a Registry is
// optional. [github.com/ceskit/ceskit/observe.NewPrometheusRegistry] implements Registry on
// client_golang, registering every metric into the prometheus.Registerer the caller passes.
package metrics

import (
	"errors"
	"fmt"
	"regexp"
)

// Counter is a monotonically increasing value per label-value combination.
type Counter interface {
	// Add adds v (which must be ≥ 0) to the series named by labelValues, given in the order of
	// [Opts].Labels.
	Add(v float64, labelValues ...string)
}

// Gauge is a value per label-value combination that can go up and down.
type Gauge interface {
	// Set sets the series named by labelValues to v.
	Set(v float64, labelValues ...string)
	// Add adds v (which may be negative) to the series named by labelValues.
	Add(v float64, labelValues ...string)
}

// Histogram counts observations into buckets per label-value combination.
type Histogram interface {
	// Observe records v in the series named by labelValues.
	Observe(v float64, labelValues ...string)
}

// Opts describes one metric family.
type Opts struct {
	// Name is the full metric name ("cilium_policy_change_total"); it must match
	// [a-zA-Z_:][a-zA-Z0-9_:]*.
	Name string
	// Help is the help text; required.
	Help string
	// Labels are the label names, in the order label values are passed; each must match
	// [a-zA-Z_][a-zA-Z0-9_]* and not start with "__".
	Labels []string
	// Buckets are a histogram's upper bounds, strictly increasing; nil means the
	// implementation's default. Ignored for counters and gauges.
	Buckets []float64
}

var (
	metricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelName  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// ErrInvalidOpts is wrapped by every error [Opts.Validate] returns.
var ErrInvalidOpts = errors.New("invalid metric options")

// Validate checks o and returns an error wrapping [ErrInvalidOpts] that names the field and
// value at fault.
func (o Opts) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidOpts, fmt.Sprintf(format, args...))
	}
	if !metricName.MatchString(o.Name) {
		return bad("Name %q is not a valid metric name", o.Name)
	}
	if o.Help == "" {
		return bad("Help of %s is empty", o.Name)
	}
	seen := make(map[string]bool, len(o.Labels))
	for i, l := range o.Labels {
		if !labelName.MatchString(l) || len(l) >= 2 && l[:2] == "__" {
			return bad("Labels[%d] of %s: %q is not a valid label name", i, o.Name, l)
		}
		if seen[l] {
			return bad("Labels[%d] of %s: %q is repeated", i, o.Name, l)
		}
		seen[l] = true
	}
	for i := 1; i < len(o.Buckets); i++ {
		if !(o.Buckets[i] > o.Buckets[i-1]) {
			return bad("Buckets of %s are not strictly increasing at index %d (%g after %g)",
				o.Name, i, o.Buckets[i], o.Buckets[i-1])
		}
	}
	return nil
}

// Registry creates metrics. Implementations must be safe for concurrent use, and so must the
// metrics they return. Creating a metric whose Name the Registry (or, for a Prometheus-backed
// one, its prometheus.Registerer) already holds is an error.
type Registry interface {
	Counter(Opts) (Counter, error)
	Gauge(Opts) (Gauge, error)
	Histogram(Opts) (Histogram, error)
}

// Nop returns a Registry whose metrics discard every value. It still validates the Opts it is
// given, so instrumentation errors show up without a metrics backend.
func Nop() Registry { return nopRegistry{} }

type nopRegistry struct{}

type nopMetric struct{}

func (nopMetric) Add(float64, ...string)     {}
func (nopMetric) Set(float64, ...string)     {}
func (nopMetric) Observe(float64, ...string) {}

func (nopRegistry) Counter(o Opts) (Counter, error)     { return nopMetric{}, o.Validate() }
func (nopRegistry) Gauge(o Opts) (Gauge, error)         { return nopMetric{}, o.Validate() }
func (nopRegistry) Histogram(o Opts) (Histogram, error) { return nopMetric{}, o.Validate() }
