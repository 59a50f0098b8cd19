package identity

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/clock"
)

// Defaults of [Config].
const (
	DefaultNamespace           = "kube-system"
	DefaultHolderLeaseDuration = 30 * time.Second
	DefaultHolderSyncDelay     = time.Second
	DefaultRestoreGracePeriod  = 2 * time.Minute
	DefaultMaxAttempts         = 64
	DefaultWarnRatio           = 0.9
	DefaultRelabelWorkers      = 8
)

// Config holds the optional settings of a [CRDAllocator]. The zero value is valid: every field's
// comment gives the default that [NewCRDAllocator] fills in.
type Config struct {
	// Range is the cluster-local range new identities are taken from. Default: [DefaultRange]
	// (256–65535: cluster 0 with 255 connected clusters). Use [ClusterRange] for another cluster
	// ID. Identities outside Range that already exist are still found and reused.
	Range Range

	// Filter selects the identity-relevant labels of what is allocated. Default:
	// [DefaultFilter] (Cilium v1.20.2's defaults, incl. topology.kubernetes.io).
	Filter *Filter

	// Holder names this allocator in its holder record: the Lease that tells the garbage
	// collector which identities it uses, and from which it restores them after a restart. Use
	// a name that survives restarts, such as the node name. It must be a DNS-1123 subdomain of
	// at most 200 characters. Default: the host name.
	Holder string

	// Namespace holds the claim Leases (one per label set, the protocol's unique index) and the
	// holder records. Default: kube-system.
	Namespace string

	// HolderLeaseDuration is how long a holder record counts as live without being renewed; the
	// allocator renews it every third of that. Minimum 3 s. Default: 30 s.
	HolderLeaseDuration time.Duration

	// HolderSyncDelay batches changes of the held set before the holder record is written: one
	// write per delay at most, however many identities were allocated or released. It must stay
	// well below [GCConfig.MinAge]. Default: 1 s.
	HolderSyncDelay time.Duration

	// RestoreGracePeriod is how long identities restored from the holder record at start stay
	// held without being allocated again. Default: 2 min.
	RestoreGracePeriod time.Duration

	// MaxAttempts bounds the protocol rounds of one Allocate (each lost race costs one).
	// Default: 64.
	MaxAttempts int

	// WarnRatio is the usage of Range (in use / size) at which a warning is logged once, re-armed
	// when usage drops below it again. It must be in (0, 1]. Default: 0.9.
	WarnRatio float64

	// RelabelWorkers bounds the concurrent allocations of [CRDAllocator.RelabelNamespace].
	// Default: 8.
	RelabelWorkers int

	// Logger receives the allocator's logs. Default: discard.
	Logger *slog.Logger

	// Metrics receives measurements. Default: [NopMetrics].
	Metrics Metrics

	// Clock is the time source. Default: the real clock.
	Clock clock.WithTicker
}

// Validate reports the first bad field of c as a *[ConfigError]. Zero values are valid (they mean
// the default).
func (c Config) Validate() error {
	if c.Range != (Range{}) {
		if err := c.Range.Validate(); err != nil {
			return &ConfigError{Field: "Range", Value: c.Range.String(), Reason: err.Error()}
		}
	}
	if c.Holder != "" {
		if len(c.Holder) > 200 {
			return &ConfigError{Field: "Holder", Value: c.Holder, Reason: "longer than 200 characters"}
		}
		if errs := validation.IsDNS1123Subdomain(c.Holder); len(errs) > 0 {
			return &ConfigError{Field: "Holder", Value: c.Holder, Reason: strings.Join(errs, "; ")}
		}
	}
	if c.Namespace != "" {
		if errs := validation.IsDNS1123Label(c.Namespace); len(errs) > 0 {
			return &ConfigError{Field: "Namespace", Value: c.Namespace, Reason: strings.Join(errs, "; ")}
		}
	}
	for _, d := range []struct {
		field string
		v     time.Duration
		min   time.Duration
	}{
		{"HolderLeaseDuration", c.HolderLeaseDuration, 3 * time.Second},
		{"HolderSyncDelay", c.HolderSyncDelay, 0},
		{"RestoreGracePeriod", c.RestoreGracePeriod, 0},
	} {
		if d.v < 0 || (d.v != 0 && d.v < d.min) {
			return &ConfigError{Field: d.field, Value: d.v.String(), Reason: fmt.Sprintf("must be 0 (default) or at least %s", d.min)}
		}
	}
	if c.MaxAttempts < 0 {
		return &ConfigError{Field: "MaxAttempts", Value: fmt.Sprint(c.MaxAttempts), Reason: "must not be negative"}
	}
	if c.RelabelWorkers < 0 {
		return &ConfigError{Field: "RelabelWorkers", Value: fmt.Sprint(c.RelabelWorkers), Reason: "must not be negative"}
	}
	if c.WarnRatio < 0 || c.WarnRatio > 1 {
		return &ConfigError{Field: "WarnRatio", Value: fmt.Sprint(c.WarnRatio), Reason: "must be in (0, 1], or 0 for the default"}
	}
	return nil
}

func (c Config) withDefaults() (Config, error) {
	if c.Range == (Range{}) {
		c.Range = DefaultRange()
	}
	if c.Filter == nil {
		c.Filter = DefaultFilter()
	}
	if c.Holder == "" {
		h, err := os.Hostname()
		if err != nil {
			return c, fmt.Errorf("default holder name: %w", err)
		}
		c.Holder = strings.ToLower(h)
		if errs := validation.IsDNS1123Subdomain(c.Holder); len(errs) > 0 {
			return c, &ConfigError{Field: "Holder", Value: c.Holder, Reason: "the host name is not a DNS-1123 subdomain; set Holder"}
		}
	}
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.HolderLeaseDuration == 0 {
		c.HolderLeaseDuration = DefaultHolderLeaseDuration
	}
	if c.HolderSyncDelay == 0 {
		c.HolderSyncDelay = DefaultHolderSyncDelay
	}
	if c.RestoreGracePeriod == 0 {
		c.RestoreGracePeriod = DefaultRestoreGracePeriod
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.WarnRatio == 0 {
		c.WarnRatio = DefaultWarnRatio
	}
	if c.RelabelWorkers == 0 {
		c.RelabelWorkers = DefaultRelabelWorkers
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
	return c, nil
}
