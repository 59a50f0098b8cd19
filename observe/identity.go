package observe

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Prefix of the identity allocator's own metric names; the garbage collector's use
// ciliumOperator.
const ceskitIdentity = "ceskit_identity"

// Label values the identity package documents. Counter series with these values exist from the
// start at 0.
var (
	identityAllocationOutcomes = []string{"held", "cached", "reused", "created", "local", "reserved", "error"}
	identityConflictKinds      = []string{"claim", "identity", "update"}
	identityWriteVerbs         = []string{"create", "update", "delete"}
	identityWriteResources     = []string{"ciliumidentities", "leases"}
)

// Cilium's identity_type label value for CiliumIdentity (CRD) garbage collection, the only kind
// ceskit runs. Cilium's dashboards select on identity_type, so the GC metrics carry it.
const identityTypeCRD = "crd"

// IdentityMetrics is the Prometheus implementation of the identity package's Metrics interface
// (github.com/ceskit/ceskit/identity.Metrics), for the allocator and the garbage collector.
// Build it with [NewIdentityMetrics] and pass it as the Metrics field of the identity
// package's Config. Its methods are safe for concurrent use. The zero value is not usable; a nil
// *IdentityMetrics discards every measurement.
type IdentityMetrics struct {
	allocations        *prometheus.CounterVec
	allocationDuration *prometheus.HistogramVec
	used               prometheus.Gauge
	size               prometheus.Gauge
	usageRatio         prometheus.Gauge
	conflicts          *prometheus.CounterVec
	writes             *prometheus.CounterVec
	gcEntries          *prometheus.GaugeVec
	gcRuns             *prometheus.GaugeVec
	gcLatency          *prometheus.GaugeVec
}

// NewIdentityMetrics creates the identity allocator's and garbage collector's metrics and
// registers them with reg, which must not be nil; nothing is ever registered with Prometheus'
// global registry. When any metric cannot be registered (most often because reg already holds a
// metric of that name, e.g. from an earlier call), NewIdentityMetrics unregisters the ones it
// registered and returns an error that wraps the registry's (errors.As with
// *prometheus.AlreadyRegisteredError works).
//
// The metrics, named after Cilium's operator where Cilium has them (the garbage collector's
// three, which carry Cilium's constant label identity_type="crd"):
//
//	cilium_operator_identity_gc_entries                  gauge{status="alive"|"marked"|"unmarked"|"deleted", identity_type="crd"}; identities in each state at the end of the last GC pass
//	cilium_operator_identity_gc_runs                     gauge{outcome="success"|"fail", identity_type="crd"}; GC passes so far (a gauge that only rises, as in Cilium)
//	cilium_operator_identity_gc_latency                  gauge{outcome="success"|"fail", identity_type="crd"}; seconds the last GC pass with that outcome took
//	ceskit_identity_allocations_total                    counter{outcome="held"|"cached"|"reused"|"created"|"local"|"reserved"|"error"}; Allocate calls
//	ceskit_identity_allocation_duration_seconds          histogram{outcome}; time an Allocate call took; buckets .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10
//	ceskit_identity_used                                 gauge; identities of the allocatable range that exist
//	ceskit_identity_space_size                           gauge; size of the allocatable range
//	ceskit_identity_usage_ratio                          gauge; used / size (alert at 0.9)
//	ceskit_identity_conflicts_total                      counter{kind="claim"|"identity"|"update"}; lost races the protocol resolved
//	ceskit_identity_writes_total                         counter{verb="create"|"update"|"delete", resource="ciliumidentities"|"leases"}; API writes
//
// Counter series with the label values the identity package documents (and the two GC run
// series) start at 0, so rates and alerts work before the first event. The GC entries and
// latency series appear with the first GC pass.
func NewIdentityMetrics(reg prometheus.Registerer) (*IdentityMetrics, error) {
	if reg == nil {
		return nil, errors.New("new identity metrics: registerer is nil")
	}
	crd := prometheus.Labels{"identity_type": identityTypeCRD}
	m := &IdentityMetrics{
		allocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ceskitIdentity,
			Name:      "allocations_total",
			Help:      "The number of identity allocations by outcome",
		}, []string{"outcome"}),
		allocationDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ceskitIdentity,
			Name:      "allocation_duration_seconds",
			Help:      "Time an identity allocation took, by outcome",
			Buckets:   []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"outcome"}),
		used: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ceskitIdentity,
			Name:      "used",
			Help:      "Identities of the allocatable range that exist",
		}),
		size: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ceskitIdentity,
			Name:      "space_size",
			Help:      "Size of the allocatable identity range",
		}),
		usageRatio: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ceskitIdentity,
			Name:      "usage_ratio",
			Help:      "Fraction of the allocatable identity range in use",
		}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ceskitIdentity,
			Name:      "conflicts_total",
			Help:      "The number of lost identity allocation races resolved by the protocol, by kind",
		}, []string{"kind"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ceskitIdentity,
			Name:      "writes_total",
			Help:      "The number of API writes of the identity allocator and garbage collector by verb and resource",
		}, []string{"verb", "resource"}),
		gcEntries: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace:   ciliumOperator,
			Name:        "identity_gc_entries",
			Help:        "The number of alive and deleted identities at the end of a garbage collector run",
			ConstLabels: crd,
		}, []string{"status"}),
		gcRuns: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace:   ciliumOperator,
			Name:        "identity_gc_runs",
			Help:        "The number of times identity garbage collector has run",
			ConstLabels: crd,
		}, []string{"outcome"}),
		gcLatency: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace:   ciliumOperator,
			Name:        "identity_gc_latency",
			Help:        "The duration of the last successful identity GC run",
			ConstLabels: crd,
		}, []string{"outcome"}),
	}
	for _, o := range identityAllocationOutcomes {
		m.allocations.WithLabelValues(o)
	}
	for _, k := range identityConflictKinds {
		m.conflicts.WithLabelValues(k)
	}
	for _, v := range identityWriteVerbs {
		for _, r := range identityWriteResources {
			m.writes.WithLabelValues(v, r)
		}
	}
	m.gcRuns.WithLabelValues("success")
	m.gcRuns.WithLabelValues("fail")

	if err := registerAll(reg, "identity", []namedCollector{
		{"cilium_operator_identity_gc_entries", m.gcEntries},
		{"cilium_operator_identity_gc_runs", m.gcRuns},
		{"cilium_operator_identity_gc_latency", m.gcLatency},
		{"ceskit_identity_allocations_total", m.allocations},
		{"ceskit_identity_allocation_duration_seconds", m.allocationDuration},
		{"ceskit_identity_used", m.used},
		{"ceskit_identity_space_size", m.size},
		{"ceskit_identity_usage_ratio", m.usageRatio},
		{"ceskit_identity_conflicts_total", m.conflicts},
		{"ceskit_identity_writes_total", m.writes},
	}); err != nil {
		return nil, err
	}
	return m, nil
}

// Allocation counts one Allocate call by outcome ("held", "cached", "reused", "created",
// "local", "reserved", "error") (ceskit_identity_allocations_total{outcome}) and observes its
// duration (ceskit_identity_allocation_duration_seconds{outcome}).
func (m *IdentityMetrics) Allocation(outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.allocations.WithLabelValues(outcome).Inc()
	m.allocationDuration.WithLabelValues(outcome).Observe(d.Seconds())
}

// Usage sets how many identities of the allocatable range exist (ceskit_identity_used), the
// range's size (ceskit_identity_space_size) and their ratio (ceskit_identity_usage_ratio). When
// size ≤ 0 the ratio keeps its previous value.
func (m *IdentityMetrics) Usage(used, size int) {
	if m == nil {
		return
	}
	m.used.Set(float64(used))
	m.size.Set(float64(size))
	if size > 0 {
		m.usageRatio.Set(float64(used) / float64(size))
	}
}

// Conflict counts a lost race the protocol resolved, by kind ("claim", "identity", "update")
// (ceskit_identity_conflicts_total{kind}).
func (m *IdentityMetrics) Conflict(kind string) {
	if m == nil {
		return
	}
	m.conflicts.WithLabelValues(kind).Inc()
}

// Write counts one API write by verb ("create", "update", "delete") and resource
// ("ciliumidentities", "leases") (ceskit_identity_writes_total{verb,resource}).
func (m *IdentityMetrics) Write(verb, resource string) {
	if m == nil {
		return
	}
	m.writes.WithLabelValues(verb, resource).Inc()
}

// GCEntries sets how many identities the last garbage-collection pass found in status
// ("alive", "marked", "unmarked", "deleted")
// (cilium_operator_identity_gc_entries{status,identity_type="crd"}).
func (m *IdentityMetrics) GCEntries(status string, n int) {
	if m == nil {
		return
	}
	m.gcEntries.WithLabelValues(status).Set(float64(n))
}

// GCRun counts one garbage-collection pass by outcome
// (cilium_operator_identity_gc_runs{outcome,identity_type="crd"}) and sets its duration in
// seconds (cilium_operator_identity_gc_latency{outcome,identity_type="crd"}). The identity
// package reports Cilium's outcomes, "success" and "fail".
func (m *IdentityMetrics) GCRun(outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.gcRuns.WithLabelValues(outcome).Inc()
	m.gcLatency.WithLabelValues(outcome).Set(d.Seconds())
}
