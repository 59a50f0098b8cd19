package slicer

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/clock"
)

// Source selects where the [Controller] takes endpoints from.
type Source string

const (
	// SourceCiliumEndpoints builds slices from CiliumEndpoints, one per pod, as Cilium's operator
	// does in its default mode.
	SourceCiliumEndpoints Source = "ciliumendpoints"
	// SourcePods builds slices straight from Pods plus [Config.IdentityFunc] ("slim" mode): no
	// per-pod CiliumEndpoint objects exist at all.
	SourcePods Source = "pods"
)

// Annotations the controller reads on Namespaces.
const (
	// PriorityAnnotation with value [PriorityValue] on a Namespace serves its slices from the
	// priority queue, as Cilium's operator does.
	PriorityAnnotation = "cilium.io/ces-namespace"
	// PriorityValue is the value of [PriorityAnnotation] that marks a priority namespace.
	PriorityValue = "priority"
	// ResyncAnnotation on a Namespace triggers [Controller.Resync] for that namespace whenever its
	// value changes, e.g. `kubectl annotate ns web ceskit.io/resync="$(date +%s)" --overwrite`.
	ResyncAnnotation = "ceskit.io/resync"
)

// RateLimitStep is one step of the node-count write-rate table, in the JSON form of Cilium's
// `ces-rate-limits` option: the step with the largest Nodes not above the cluster's node count
// applies.
type RateLimitStep struct {
	// Nodes is the node count from which this step applies.
	Nodes int `json:"nodes"`
	// Limit is the sustained API writes per second.
	Limit float64 `json:"limit"`
	// Burst is the number of writes allowed at once.
	Burst int `json:"burst"`
}

// DefaultRateLimits is the default write-rate table: Cilium's Helm default
// (`[{"nodes":0,"limit":10,"burst":20},{"nodes":100,"limit":50,"burst":100}]`). ceskit charges
// it per API write, so its budget goes further than Cilium's, which is charged per reconcile
// including no-op echoes.
var DefaultRateLimits = []RateLimitStep{{Nodes: 0, Limit: 10, Burst: 20}, {Nodes: 100, Limit: 50, Burst: 100}}

// ParseRateLimits parses a table in the JSON form of Cilium's `ces-rate-limits` option.
func ParseRateLimits(s string) ([]RateLimitStep, error) {
	var steps []RateLimitStep
	if err := json.Unmarshal([]byte(s), &steps); err != nil {
		return nil, &ConfigError{Field: "RateLimits", Value: s, Reason: err.Error()}
	}
	return steps, nil
}

// Config holds the [Controller]'s settings. The zero value is valid: every field's comment gives
// its default, which [New] fills in.
type Config struct {
	// MaxEndpointsPerSlice caps the endpoints in one slice. Default 100 (Cilium's
	// `ces-max-ciliumendpoints-per-ces`); valid 1–1000 (upstream EndpointSlice's bounds).
	MaxEndpointsPerSlice int

	// Source selects where endpoints come from. Default [SourceCiliumEndpoints].
	Source Source

	// IdentityFunc returns the numeric security identity of a pod; ok=false means "not known
	// yet": the pod is left out of every slice until an event or resync finds it known. Required
	// with [SourcePods], unused otherwise. It is called with the controller's lock held and must
	// not block.
	IdentityFunc func(pod *corev1.Pod) (id int64, ok bool)

	// GroupByIdentity keeps the endpoints of one security identity together (Cilium's historical
	// "identity" slice mode): an identity change moves the endpoint to another slice, listed in
	// both until the new one is written. Default false: first come, first served per namespace.
	GroupByIdentity bool

	// BatchMinDelay is the least time between a slice's first pending change and its write.
	// Default 0: a change to an idle slice is written at once.
	BatchMinDelay time.Duration

	// BatchMaxDelay bounds the coalescing window. A slice changed again within BatchMaxDelay of its
	// last write waits a window that starts at 10 ms (or BatchMinDelay) and doubles while changes
	// keep coming, up to BatchMaxDelay, so bursts become one write; once quiet for BatchMaxDelay
	// the window resets. Default 100ms; valid BatchMinDelay–1m.
	BatchMaxDelay time.Duration

	// WriteQPS and WriteBurst, when WriteQPS is set, replace the node-count table with one fixed
	// limit. Every API write (create, update, delete, retries included) takes one token; no-op
	// reconciles and echoes of the controller's own writes take none.
	WriteQPS float64
	// WriteBurst is the burst for WriteQPS. Default 2×WriteQPS (at least 1).
	WriteBurst int

	// RateLimits is the node-count step table used when WriteQPS is 0. Default
	// [DefaultRateLimits]. Steps must have distinct Nodes ≥ 0, Limit > 0, Burst ≥ 1; the
	// first step must start at 0 nodes.
	RateLimits []RateLimitStep

	// Workers is the number of concurrent slice writers; one slice is never worked on by two at
	// once. Default 4; valid 1–64.
	Workers int

	// PriorityNamespaces are served from the priority queue, as are namespaces annotated
	// [PriorityAnnotation]=[PriorityValue].
	PriorityNamespaces []string

	// PriorityWeight is how many priority slices are served for each standard slice when both
	// queues hold work, so other namespaces never starve. Default 4; valid 1–100.
	PriorityWeight int

	// ErrorThreshold is the number of consecutive failed syncs (of one slice, or of the controller
	// as a whole) after which the controller reports Degraded. It clears at the next success.
	// Default 15 (Cilium's retry cap, after which Cilium drops the slice; ceskit keeps retrying);
	// valid 1–10000.
	ErrorThreshold int

	// RetryBaseDelay and RetryMaxDelay bound the per-slice exponential backoff after a failed
	// sync. A slice is retried for ever. Defaults 10ms and 10s.
	RetryBaseDelay time.Duration
	// RetryMaxDelay is the backoff cap; see RetryBaseDelay.
	RetryMaxDelay time.Duration

	// ConflictRetries is how many times a write that hits a 409 Conflict re-reads the slice from
	// the API server and re-applies at once, before the slice goes back to the queue. Default 3
	// (also for 0); valid 0–20.
	ConflictRetries int

	// ResyncPeriod is the mean period of the anti-entropy pass that re-lists the slices from the
	// API server (one LIST; the cache when it fails), repairs drift, including slices deleted by
	// someone else during a watch outage, and compacts sparse namespaces; each period is jittered
	// by ±10 %.
	// Default 5m; valid 1s–24h.
	ResyncPeriod time.Duration

	// CompactionThreshold: a namespace (or identity group) whose slices are on average less full
	// than this fraction, and which would need at least one slice fewer if packed, is compacted
	// on the next resync: its emptiest slices are drained into the fullest ones, and compaction
	// stops once the freed slices are gone (hysteresis: a namespace just above the threshold is
	// left alone). Default 0.5 (also for 0); valid 0–1. See DisableCompaction.
	CompactionThreshold float64

	// DisableCompaction turns compaction off whatever CompactionThreshold says.
	DisableCompaction bool

	// Shadow computes the slices and the difference against the ones that exist, and writes
	// nothing: for managed AKS, where Cilium's operator owns the slices. See [Controller.Diff].
	Shadow bool

	// HeartbeatLease is the "namespace/name" of the coordination.k8s.io Lease the controller
	// renews while it runs, annotated with [StateAnnotation] (and [ReasonAnnotation] when
	// Degraded). Node-side [Watcher]s read it to fall back to CiliumEndpoints when the controller
	// is Degraded or gone. Default "kube-system/ceskit-slicer"; "-" disables it. Shadow mode never
	// writes it.
	HeartbeatLease string

	// HeartbeatInterval is how often the lease is renewed. Default 5s; valid 1s–5m.
	HeartbeatInterval time.Duration

	// WriterIdentity names this controller in the heartbeat Lease's holderIdentity. The Lease
	// doubles as a single-writer guard: a controller writes slices only while it holds the
	// Lease, and stands by (computing, writing nothing, like Shadow) while another identity
	// holds it and has renewed it within 3 × HeartbeatInterval without marking it stopped. So
	// two controllers started without leader election never fight over the slices; the stand-by
	// takes over when the holder stops (at once) or dies (after 3 × HeartbeatInterval), and
	// rewrites what differs first. A holder whose renewals fail stops writing 2 × HeartbeatInterval
	// after its last successful renewal, before the Lease can move. Default: hostname, process ID
	// and a random suffix. The guard is off when HeartbeatLease is "-".
	WriterIdentity string

	// Logger receives the controller's logs. Default: discard.
	Logger *slog.Logger

	// Metrics receives the controller's measurements. Default: discard.
	Metrics Metrics

	// Clock is the time source. Default: the real clock.
	Clock clock.WithTicker
}

// Validate checks every field and returns a *[ConfigError] naming the first bad one. Zero values
// are valid: they stand for the defaults.
func (c Config) Validate() error {
	bad := func(field string, value any, reason string) error {
		return &ConfigError{Field: field, Value: fmt.Sprint(value), Reason: reason}
	}
	if c.MaxEndpointsPerSlice != 0 && (c.MaxEndpointsPerSlice < 1 || c.MaxEndpointsPerSlice > 1000) {
		return bad("MaxEndpointsPerSlice", c.MaxEndpointsPerSlice, "must be between 1 and 1000")
	}
	switch c.Source {
	case "", SourceCiliumEndpoints:
	case SourcePods:
		if c.IdentityFunc == nil {
			return bad("IdentityFunc", "nil", "is required when Source is \"pods\"")
		}
	default:
		return bad("Source", c.Source, `must be "ciliumendpoints" or "pods"`)
	}
	if c.BatchMinDelay < 0 {
		return bad("BatchMinDelay", c.BatchMinDelay, "must not be negative")
	}
	if c.BatchMaxDelay < 0 || c.BatchMaxDelay > time.Minute {
		return bad("BatchMaxDelay", c.BatchMaxDelay, "must be between 0 and 1m")
	}
	if c.BatchMaxDelay != 0 && c.BatchMaxDelay < c.BatchMinDelay {
		return bad("BatchMaxDelay", c.BatchMaxDelay, "must not be less than BatchMinDelay ("+c.BatchMinDelay.String()+")")
	}
	if c.WriteQPS < 0 {
		return bad("WriteQPS", c.WriteQPS, "must not be negative")
	}
	if c.WriteBurst < 0 {
		return bad("WriteBurst", c.WriteBurst, "must not be negative")
	}
	if len(c.RateLimits) > 0 {
		steps := slices.Clone(c.RateLimits)
		slices.SortFunc(steps, func(a, b RateLimitStep) int { return a.Nodes - b.Nodes })
		if steps[0].Nodes != 0 {
			return bad("RateLimits", fmt.Sprintf("%+v", c.RateLimits), "the first step must start at 0 nodes")
		}
		for i, s := range steps {
			switch {
			case s.Nodes < 0:
				return bad(fmt.Sprintf("RateLimits[nodes=%d].nodes", s.Nodes), s.Nodes, "must not be negative")
			case s.Limit <= 0:
				return bad(fmt.Sprintf("RateLimits[nodes=%d].limit", s.Nodes), s.Limit, "must be positive")
			case s.Burst < 1:
				return bad(fmt.Sprintf("RateLimits[nodes=%d].burst", s.Nodes), s.Burst, "must be at least 1")
			case i > 0 && steps[i-1].Nodes == s.Nodes:
				return bad(fmt.Sprintf("RateLimits[nodes=%d]", s.Nodes), s.Nodes, "appears twice")
			}
		}
	}
	if c.Workers != 0 && (c.Workers < 1 || c.Workers > 64) {
		return bad("Workers", c.Workers, "must be between 1 and 64")
	}
	for i, ns := range c.PriorityNamespaces {
		if ns == "" {
			return bad(fmt.Sprintf("PriorityNamespaces[%d]", i), `""`, "must not be empty")
		}
	}
	if c.PriorityWeight != 0 && (c.PriorityWeight < 1 || c.PriorityWeight > 100) {
		return bad("PriorityWeight", c.PriorityWeight, "must be between 1 and 100")
	}
	if c.ErrorThreshold != 0 && (c.ErrorThreshold < 1 || c.ErrorThreshold > 10000) {
		return bad("ErrorThreshold", c.ErrorThreshold, "must be between 1 and 10000")
	}
	if c.RetryBaseDelay < 0 {
		return bad("RetryBaseDelay", c.RetryBaseDelay, "must not be negative")
	}
	if c.RetryMaxDelay < 0 {
		return bad("RetryMaxDelay", c.RetryMaxDelay, "must not be negative")
	}
	if c.RetryMaxDelay != 0 && c.RetryMaxDelay < c.RetryBaseDelay {
		return bad("RetryMaxDelay", c.RetryMaxDelay, "must not be less than RetryBaseDelay ("+c.RetryBaseDelay.String()+")")
	}
	if c.ConflictRetries < 0 || c.ConflictRetries > 20 {
		return bad("ConflictRetries", c.ConflictRetries, "must be between 0 and 20")
	}
	if c.ResyncPeriod != 0 && (c.ResyncPeriod < time.Second || c.ResyncPeriod > 24*time.Hour) {
		return bad("ResyncPeriod", c.ResyncPeriod, "must be between 1s and 24h")
	}
	if c.HeartbeatLease != "" && c.HeartbeatLease != "-" {
		if _, _, err := splitLease(c.HeartbeatLease); err != nil {
			return bad("HeartbeatLease", c.HeartbeatLease, err.Error())
		}
	}
	if c.HeartbeatInterval != 0 && (c.HeartbeatInterval < time.Second || c.HeartbeatInterval > 5*time.Minute) {
		return bad("HeartbeatInterval", c.HeartbeatInterval, "must be between 1s and 5m")
	}
	if c.CompactionThreshold < 0 || c.CompactionThreshold > 1 {
		return bad("CompactionThreshold", c.CompactionThreshold, "must be between 0 and 1")
	}
	return nil
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.MaxEndpointsPerSlice == 0 {
		c.MaxEndpointsPerSlice = 100
	}
	if c.Source == "" {
		c.Source = SourceCiliumEndpoints
	}
	if c.BatchMaxDelay == 0 {
		c.BatchMaxDelay = max(100*time.Millisecond, c.BatchMinDelay)
	}
	if c.WriteQPS > 0 {
		if c.WriteBurst == 0 {
			c.WriteBurst = max(1, int(2*c.WriteQPS))
		}
		c.RateLimits = []RateLimitStep{{Nodes: 0, Limit: c.WriteQPS, Burst: c.WriteBurst}}
	} else if len(c.RateLimits) == 0 {
		c.RateLimits = slices.Clone(DefaultRateLimits)
	} else {
		c.RateLimits = slices.Clone(c.RateLimits)
	}
	slices.SortFunc(c.RateLimits, func(a, b RateLimitStep) int { return a.Nodes - b.Nodes })
	if c.Workers == 0 {
		c.Workers = 4
	}
	if c.PriorityWeight == 0 {
		c.PriorityWeight = 4
	}
	if c.ErrorThreshold == 0 {
		c.ErrorThreshold = 15
	}
	if c.RetryBaseDelay == 0 {
		c.RetryBaseDelay = 10 * time.Millisecond
	}
	if c.RetryMaxDelay == 0 {
		c.RetryMaxDelay = max(10*time.Second, c.RetryBaseDelay)
	}
	if c.ConflictRetries == 0 {
		c.ConflictRetries = 3
	}
	if c.ResyncPeriod == 0 {
		c.ResyncPeriod = 5 * time.Minute
	}
	if c.CompactionThreshold == 0 {
		c.CompactionThreshold = 0.5
	}
	if c.DisableCompaction {
		c.CompactionThreshold = 0
	}
	if c.HeartbeatLease == "" {
		c.HeartbeatLease = DefaultHeartbeatLease
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 5 * time.Second
	}
	if c.WriterIdentity == "" {
		host, _ := os.Hostname()
		c.WriterIdentity = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), utilrand.String(5))
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = NopMetrics{}
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	return c
}
