package observe

import (
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ceskit/ceskit/observe/metrics"
)

// PolicyMapName is the map_name label value under which [PolicyMetrics] reports the fullest
// endpoint policy map in cilium_bpf_map_pressure.
const PolicyMapName = "cilium_policy"

// policySource is the source label of cilium_policy_change_total: Cilium counts changes by
// where they came from (k8s, api, …); ceskit's engine has one source.
const policySource = "ceskit"

// Label values the policy package documents. Series with these values exist from the start.
var (
	policyOperations  = []string{"update", "delete"}
	policyOutcomes    = []string{"success", "failure"}
	policyEnforcement = []string{"ingress", "egress", "both", "none"}
)

// mapPressureOpts describes cilium_bpf_map_pressure, which PolicyMetrics and DatapathMetrics
// share (see promRegistry.sharedGauge): both must create it with exactly these options.
var mapPressureOpts = metrics.Opts{
	Name:   "cilium_bpf_map_pressure",
	Help:   "Fill percentage of map, tagged by map name",
	Labels: []string{"map_name"},
}

// PolicyMetrics is the Prometheus implementation of the policy engine's Metrics interface
// (github.com/ceskit/ceskit/policy.Metrics), built on the generic registry of
// [NewPrometheusRegistry]. Build it with [NewPolicyMetrics] and pass it as the Metrics field of
// the policy engine's Config. Its methods are safe for concurrent use. The zero value is not
// usable; a nil *PolicyMetrics discards every measurement.
type PolicyMetrics struct {
	changes     metrics.Counter
	policies    metrics.Gauge
	revision    metrics.Gauge
	duration    metrics.Histogram
	recomputed  metrics.Histogram
	enforcement metrics.Gauge
	pressure    metrics.Gauge
	overflows   metrics.Counter
	selectors   metrics.Gauge
	identities  metrics.Gauge

	mu           sync.Mutex
	enforcements map[string]bool // enforcement label values ever set
}

// NewPolicyMetrics creates the policy engine's metrics on NewPrometheusRegistry(reg) and
// registers them with reg, which must not be nil; nothing is ever registered with Prometheus'
// global registry. When any metric cannot be registered (most often because reg already holds
// a metric of that name, e.g. from an earlier call), NewPolicyMetrics unregisters the ones it
// registered and returns an error that wraps the registry's (errors.As with
// *prometheus.AlreadyRegisteredError works).
//
// cilium_bpf_map_pressure is shared with [NewDatapathMetrics]: both can be registered into one
// registry and write their own map_name series of the one gauge.
//
// The metrics, named after Cilium's agent where Cilium has them:
//
//	cilium_policy_change_total                      counter{source="ceskit", operation="update"|"delete", outcome="success"|"failure"}; policies added, changed or removed
//	cilium_policy                                   gauge; policies the engine holds
//	cilium_policy_max_revision                      gauge; the engine's policy revision
//	cilium_policy_incremental_update_duration       histogram{scope="policy"|"endpoint"|"node"|"dns"}; seconds one input change took; buckets .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10
//	ceskit_policy_endpoints_recomputed              histogram{scope}; endpoint maps one input change recomputed; buckets 0, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000
//	cilium_policy_endpoint_enforcement_status       gauge{enforcement="ingress"|"egress"|"both"|"none"}; endpoints by the directions policy is enforced in
//	cilium_bpf_map_pressure                         gauge{map_name="cilium_policy"}; entries of the fullest endpoint policy map / map capacity
//	ceskit_policy_map_overflows_total               counter; endpoints whose map needed more entries than the capacity (left fail-closed)
//	cilium_policy_selector_cache_selectors          gauge; selectors in the selector cache
//	cilium_policy_selector_cache_identities         gauge; identities the cached selectors select in all
//
// The counter series with the label values above, the enforcement series, the map pressure
// series and the unlabelled metrics exist from the start at 0. The histograms get a series at
// their first observation per scope.
func NewPolicyMetrics(reg prometheus.Registerer) (*PolicyMetrics, error) {
	if reg == nil {
		return nil, errors.New("new policy metrics: registerer is nil")
	}
	r := NewPrometheusRegistry(reg).(*promRegistry)
	m := &PolicyMetrics{enforcements: map[string]bool{}}
	b := builder{r: r}
	m.changes = b.counter(metrics.Opts{
		Name:   "cilium_policy_change_total",
		Help:   "Number of policy changes by outcome",
		Labels: []string{"source", "operation", "outcome"},
	})
	m.policies = b.gauge(metrics.Opts{
		Name: "cilium_policy",
		Help: "Number of policies currently loaded",
	})
	m.revision = b.gauge(metrics.Opts{
		Name: "cilium_policy_max_revision",
		Help: "Highest policy revision number in the agent",
	})
	m.duration = b.histogram(metrics.Opts{
		Name:    "cilium_policy_incremental_update_duration",
		Help:    "Time it takes to do an incremental policy update",
		Labels:  []string{"scope"},
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
	m.recomputed = b.histogram(metrics.Opts{
		Name:    "ceskit_policy_endpoints_recomputed",
		Help:    "Endpoint policy maps one incremental policy update recomputed, by scope",
		Labels:  []string{"scope"},
		Buckets: []float64{0, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000},
	})
	m.enforcement = b.gauge(metrics.Opts{
		Name:   "cilium_policy_endpoint_enforcement_status",
		Help:   "Number of endpoints labeled by policy enforcement status",
		Labels: []string{"enforcement"},
	})
	m.pressure = b.sharedGauge(mapPressureOpts)
	m.overflows = b.counter(metrics.Opts{
		Name: "ceskit_policy_map_overflows_total",
		Help: "Endpoints whose policy map needed more entries than the map capacity and were left fail-closed",
	})
	m.selectors = b.gauge(metrics.Opts{
		Name: "cilium_policy_selector_cache_selectors",
		Help: "Number of selectors in the selector cache",
	})
	m.identities = b.gauge(metrics.Opts{
		Name: "cilium_policy_selector_cache_identities",
		Help: "Number of identities selected by the selectors in the selector cache",
	})
	if b.err != nil {
		r.rollback()
		return nil, b.err
	}

	for _, op := range policyOperations {
		for _, o := range policyOutcomes {
			m.changes.Add(0, policySource, op, o)
		}
	}
	for _, e := range policyEnforcement {
		m.enforcement.Set(0, e)
		m.enforcements[e] = true
	}
	m.pressure.Set(0, PolicyMapName)
	return m, nil
}

// builder creates metrics on r, through the generic metrics.Registry interface except for the
// shared gauge, until the first error, which it keeps.
type builder struct {
	r   *promRegistry
	err error
}

func (b *builder) counter(o metrics.Opts) metrics.Counter {
	if b.err != nil {
		return nil
	}
	var reg metrics.Registry = b.r
	c, err := reg.Counter(o)
	b.err = err
	return c
}

func (b *builder) gauge(o metrics.Opts) metrics.Gauge {
	if b.err != nil {
		return nil
	}
	var reg metrics.Registry = b.r
	g, err := reg.Gauge(o)
	b.err = err
	return g
}

func (b *builder) sharedGauge(o metrics.Opts) metrics.Gauge {
	if b.err != nil {
		return nil
	}
	g, err := b.r.sharedGauge(o)
	b.err = err
	return g
}

func (b *builder) histogram(o metrics.Opts) metrics.Histogram {
	if b.err != nil {
		return nil
	}
	var reg metrics.Registry = b.r
	h, err := reg.Histogram(o)
	b.err = err
	return h
}

// PolicyChange counts one policy added, changed or removed: operation "update" or "delete",
// outcome "success" or "failure" (cilium_policy_change_total{source="ceskit",operation,outcome}).
func (m *PolicyMetrics) PolicyChange(operation, outcome string) {
	if m == nil {
		return
	}
	m.changes.Add(1, policySource, operation, outcome)
}

// Policies sets the number of policies the engine holds (cilium_policy).
func (m *PolicyMetrics) Policies(n int) {
	if m == nil {
		return
	}
	m.policies.Set(float64(n))
}

// Revision sets the engine's policy revision (cilium_policy_max_revision).
func (m *PolicyMetrics) Revision(rev uint64) {
	if m == nil {
		return
	}
	m.revision.Set(float64(rev))
}

// Update observes one change of the engine's inputs in scope "policy", "endpoint", "node" or
// "dns": its duration in seconds (cilium_policy_incremental_update_duration{scope}) and the
// number of endpoint maps it recomputed (ceskit_policy_endpoints_recomputed{scope}; a negative
// number is not observed).
func (m *PolicyMetrics) Update(scope string, d time.Duration, recomputed int) {
	if m == nil {
		return
	}
	m.duration.Observe(d.Seconds(), scope)
	if recomputed >= 0 {
		m.recomputed.Observe(float64(recomputed), scope)
	}
}

// Enforcement sets the number of endpoints per enforcement status
// (cilium_policy_endpoint_enforcement_status{enforcement}): one series per key of counts; a
// key absent from counts ("ingress", "egress", "both", "none", or any key an earlier call
// reported) has its series set to 0.
func (m *PolicyMetrics) Enforcement(counts map[string]int) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range counts {
		m.enforcements[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(m.enforcements)) {
		m.enforcement.Set(float64(counts[k]), k)
	}
}

// MapPressure sets cilium_bpf_map_pressure{map_name="cilium_policy"} to entries/capacity, the
// fill ratio (0 to 1, above 1 when a map overflowed) of the fullest endpoint policy map; a
// capacity of 0 or less sets 0.
func (m *PolicyMetrics) MapPressure(entries, capacity int) {
	if m == nil {
		return
	}
	m.pressure.Set(fillRatio(entries, capacity), PolicyMapName)
}

// fillRatio returns entries/capacity, or 0 when capacity is not positive.
func fillRatio(entries, capacity int) float64 {
	if capacity <= 0 {
		return 0
	}
	return float64(entries) / float64(capacity)
}

// Overflow counts an endpoint whose policy map needed more entries than the capacity and was
// left fail-closed (ceskit_policy_map_overflows_total).
func (m *PolicyMetrics) Overflow() {
	if m == nil {
		return
	}
	m.overflows.Add(1)
}

// SelectorCache sets the number of selectors in the selector cache
// (cilium_policy_selector_cache_selectors) and of the identities they select in all
// (cilium_policy_selector_cache_identities).
func (m *PolicyMetrics) SelectorCache(selectors, identities int) {
	if m == nil {
		return
	}
	m.selectors.Set(float64(selectors))
	m.identities.Set(float64(identities))
}
