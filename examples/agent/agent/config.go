package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ceskit/ceskit/datapath"
	"github.com/ceskit/ceskit/observe"
	"github.com/ceskit/ceskit/policy"
	"github.com/ceskit/ceskit/slicer"
)

// Sentinel errors. Test with errors.Is.
var (
	// ErrInvalidConfig is matched by every *[ConfigError].
	ErrInvalidConfig = errors.New("invalid agent config")
	// ErrCRDMissing is returned by [Agent.Run] when the API server does not serve
	// CiliumIdentities, without which endpoints have no labels to select.
	ErrCRDMissing = errors.New("custom resource not served")
	// ErrNoInterface is returned (wrapped) by an [AttachRule] that finds no interface for an
	// endpoint yet; the agent retries with backoff.
	ErrNoInterface = errors.New("no interface for endpoint")
)

// ConfigError reports a bad [Config] field (or argument of [New]) with its value.
type ConfigError struct {
	Field  string
	Value  string
	Reason string
}

// Error describes the field, its value and the rule it breaks.
func (e *ConfigError) Error() string {
	return fmt.Sprintf("invalid agent config: %s=%s: %s", e.Field, e.Value, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidConfig) true.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// Config holds an [Agent]'s optional settings. The zero value is valid: it runs in no-datapath
// mode, writes flows nowhere and registers no metrics.
type Config struct {
	// Datapath enforces the local endpoints' policy: the agent writes the ipcache and every local
	// endpoint's entries, attaches each endpoint's programs (see Attach) and runs a monitor on its
	// verdict events. The agent does not close it. Default nil: no-datapath mode, in which the
	// agent computes and reports everything else (identities, policy, the entries each endpoint
	// would get) and touches no kernel state.
	Datapath *datapath.Datapath
	// NoDatapathReason says why Datapath is nil, for [Status] ("disabled by --no-datapath", "not
	// running as root", the datapath's ErrNotSupported error). Default: "no datapath configured".
	NoDatapathReason string

	// Attach chooses the interface each local endpoint's programs go to. Default:
	// [RouteAttachRule], the host side of the veth that carries the route to the pod's address.
	Attach AttachRule
	// Netns is the path of the network namespace holding the node's pod interfaces
	// (e.g. "/var/run/netns/node1"): Attach runs and programs are attached from inside it.
	// Default "": the agent's own namespace (the DaemonSet runs with hostNetwork).
	Netns string

	// Sink receives a flow record for every verdict event (datapath mode): e.g.
	// observe.MultiSink(observe.NewJSONLinesSink(auditLog), flowMetrics). Default: none (events
	// are still read and counted in [Status].Verdicts).
	Sink observe.Sink
	// Registry receives the agent's metrics: the policy engine's (observe.PolicyMetrics), the
	// watcher's (observe.WatcherMetrics) and the datapath's packet and lost-event counters
	// (observe.DatapathMetrics). Default nil: no metrics.
	Registry prometheus.Registerer
	// DatapathMetrics is the observe.DatapathMetrics the embedder gave the Datapath at Load
	// (Spec.Metrics), if any: the monitor reports packets and lost events to it too, instead of
	// registering a second one in Registry (which would fail on the shared names). Default nil:
	// created in Registry when the agent has a Datapath.
	DatapathMetrics *observe.DatapathMetrics

	// Policy configures the policy engine (Mode, MapCapacity, audit, …). The agent sets Logger
	// and Metrics when they are nil. Default: the engine's defaults (policy.ModeAKS).
	Policy policy.Config
	// Watcher configures the slice watcher (source pinning, heartbeat lease, …). The agent sets
	// Logger and Metrics when they are nil. Default: the watcher's defaults.
	Watcher slicer.WatcherConfig

	// StatsInterval is how often the monitor reads the datapath's counters. Default: the
	// monitor's (10s).
	StatsInterval time.Duration
	// DiscoveryInterval is how often the agent asks the API server again for the policy
	// resources it did not serve at start (CiliumNetworkPolicies, CiliumClusterwideNetworkPolicies:
	// Cilium installed after the agent), and starts watching them when they appear. Default 30s;
	// valid 1s–1h.
	DiscoveryInterval time.Duration
	// RetryBaseDelay and RetryMaxDelay bound the backoff of a local endpoint whose sync or
	// attach failed (interface not there yet, map full). Defaults: 100ms and 30s.
	RetryBaseDelay, RetryMaxDelay time.Duration

	// Logger receives the agent's logs. Default: discard.
	Logger *slog.Logger
	// LogLevels, when set, gives each component its own runtime-adjustable level: the agent
	// logs through LogLevels.Logger(component, Logger.Handler()) for "agent", "slicer",
	// "policy", "datapath" and "monitor". Default nil: everything logs through Logger.
	LogLevels *observe.LogLevels
}

// Validate reports the first bad field as a *[ConfigError].
func (c Config) Validate() error {
	if c.StatsInterval < 0 {
		return &ConfigError{Field: "StatsInterval", Value: c.StatsInterval.String(), Reason: "must not be negative"}
	}
	if c.DiscoveryInterval != 0 && (c.DiscoveryInterval < time.Second || c.DiscoveryInterval > time.Hour) {
		return &ConfigError{Field: "DiscoveryInterval", Value: c.DiscoveryInterval.String(), Reason: "must be between 1s and 1h"}
	}
	if c.RetryBaseDelay < 0 {
		return &ConfigError{Field: "RetryBaseDelay", Value: c.RetryBaseDelay.String(), Reason: "must not be negative"}
	}
	if c.RetryMaxDelay < 0 {
		return &ConfigError{Field: "RetryMaxDelay", Value: c.RetryMaxDelay.String(), Reason: "must not be negative"}
	}
	if c.RetryBaseDelay > 0 && c.RetryMaxDelay > 0 && c.RetryMaxDelay < c.RetryBaseDelay {
		return &ConfigError{Field: "RetryMaxDelay", Value: c.RetryMaxDelay.String(), Reason: "must not be less than RetryBaseDelay " + c.RetryBaseDelay.String()}
	}
	if c.Datapath == nil && c.DatapathMetrics != nil {
		return &ConfigError{Field: "DatapathMetrics", Value: "set", Reason: "needs a Datapath"}
	}
	if err := c.Policy.Validate(); err != nil {
		return fmt.Errorf("%w: Policy: %w", ErrInvalidConfig, err)
	}
	if err := c.Watcher.Validate(); err != nil {
		return fmt.Errorf("%w: Watcher: %w", ErrInvalidConfig, err)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.NoDatapathReason == "" {
		c.NoDatapathReason = "no datapath configured"
	}
	if c.Attach == nil {
		c.Attach = RouteAttachRule
	}
	if c.RetryBaseDelay == 0 {
		c.RetryBaseDelay = 100 * time.Millisecond
	}
	if c.DiscoveryInterval == 0 {
		c.DiscoveryInterval = 30 * time.Second
	}
	if c.RetryMaxDelay == 0 {
		c.RetryMaxDelay = 30 * time.Second
	}
	c.RetryMaxDelay = max(c.RetryMaxDelay, c.RetryBaseDelay)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// logger returns the logger of a component.
func (c Config) logger(component string) *slog.Logger {
	if c.LogLevels != nil {
		return c.LogLevels.Logger(component, c.Logger.Handler())
	}
	return c.Logger.With("component", component)
}
