package azmonitor

import (
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/monitor/ingestion/azlogs"
	"k8s.io/utils/clock"
)

// Defaults applied by [New] to zero [Config] fields.
const (
	// DefaultMaxBatchBytes is the Logs Ingestion API's limit on one upload (1 MiB), measured on
	// the uncompressed JSON array as the Azure SDKs for Python and .NET do.
	DefaultMaxBatchBytes = 1 << 20
	DefaultFlushInterval = 5 * time.Second
	DefaultBufferRecords = 10000
	DefaultMaxRetries    = 8
	DefaultMinBackoff    = 500 * time.Millisecond
	DefaultMaxBackoff    = 60 * time.Second
	DefaultTryTimeout    = 30 * time.Second
	// MaxRetryAfter caps a server's Retry-After: a longer value is waited as MaxRetryAfter.
	MaxRetryAfter = 5 * time.Minute
)

// OverflowPolicy says what [Exporter.Export] does when the buffer holds
// [Config].BufferRecords records.
type OverflowPolicy int

const (
	// DropOldest discards the oldest buffered record to make room; Export returns nil. The
	// default: under pressure the freshest flows are the most useful.
	DropOldest OverflowPolicy = iota
	// DropNewest discards the record being exported; Export returns [ErrBufferFull].
	DropNewest
	// Block makes Export wait until there is room, its context ends or the exporter is closed.
	// A record refused that way is returned to the caller as an error and not counted as dropped.
	Block
)

// String returns the policy's name.
func (p OverflowPolicy) String() string {
	switch p {
	case DropOldest:
		return "DropOldest"
	case DropNewest:
		return "DropNewest"
	case Block:
		return "Block"
	}
	return fmt.Sprintf("OverflowPolicy(%d)", int(p))
}

// Config holds the settings of an [Exporter]. Endpoint, RuleID and Credential are required;
// every other zero field takes the default its comment names.
type Config struct {
	// Endpoint is the logs ingestion endpoint of the data collection endpoint (DCE), or of the
	// DCR itself, such as "https://my-dce-abcd.westeurope-1.ingest.monitor.azure.com".
	// Required.
	Endpoint string

	// RuleID is the DCR's immutable ID (properties.immutableId, "dcr-…"). Required.
	RuleID string

	// Stream is the DCR stream the records are uploaded to. Default: [StreamName], the stream
	// declared by [DataCollectionRule].
	Stream string

	// Credential authenticates uploads; the principal needs the Monitoring Metrics Publisher
	// role on the DCR. Required.
	Credential azcore.TokenCredential

	// ClientOptions configures the SDK client (cloud, transport, logging). The exporter copies
	// it and turns the SDK's own retries off (Retry.MaxRetries = -1): it retries itself so that
	// its counters are exact. Default: the SDK's defaults, public cloud.
	ClientOptions *azlogs.ClientOptions

	// MaxBatchBytes bounds the uncompressed JSON array of one upload. Default and maximum:
	// [DefaultMaxBatchBytes].
	MaxBatchBytes int

	// MaxBatchRecords bounds the records of one upload. Default: no bound but MaxBatchBytes.
	MaxBatchRecords int

	// FlushInterval is the longest a record waits in the buffer before [Exporter.Run] uploads
	// it, however small the batch. Default: [DefaultFlushInterval].
	FlushInterval time.Duration

	// BufferRecords bounds the records waiting for upload; Overflow says what happens beyond.
	// The batch being uploaded is held apart, so at most BufferRecords plus one batch are in
	// memory. Default: [DefaultBufferRecords].
	BufferRecords int

	// Overflow is the policy for a full buffer. Default: [DropOldest].
	Overflow OverflowPolicy

	// MaxRetries is how often a batch is re-sent after a retryable failure (HTTP 408, 429, 5xx,
	// a timeout or a connection error) before its records are counted as failed. Default:
	// [DefaultMaxRetries]; negative: no retries.
	MaxRetries int

	// MinBackoff and MaxBackoff bound the exponential, jittered wait between tries. A
	// Retry-After from the service replaces the computed wait (up to [MaxRetryAfter]). Defaults:
	// [DefaultMinBackoff], [DefaultMaxBackoff].
	MinBackoff, MaxBackoff time.Duration

	// TryTimeout bounds each upload attempt; a try that runs out is retried. Default:
	// [DefaultTryTimeout].
	TryTimeout time.Duration

	// DisableGzip sends batches uncompressed. By default they are gzipped and sent with
	// Content-Encoding: gzip.
	DisableGzip bool

	// Clock is the time source for the flush ticker and backoff waits. Default: the real clock.
	Clock clock.WithTicker

	// Logger receives the exporter's logs. Default: discard.
	Logger *slog.Logger
}

// Validate reports the first bad field of c as a *[ConfigError].
func (c Config) Validate() error {
	if c.Endpoint == "" {
		return &ConfigError{Field: "Endpoint", Value: `""`, Reason: "the logs ingestion endpoint is required"}
	}
	u, err := url.Parse(c.Endpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return &ConfigError{Field: "Endpoint", Value: c.Endpoint, Reason: "must be an absolute https URL"}
	}
	if c.RuleID == "" {
		return &ConfigError{Field: "RuleID", Value: `""`, Reason: "the DCR immutable ID is required"}
	}
	if c.Credential == nil {
		return &ConfigError{Field: "Credential", Value: "nil", Reason: "a token credential is required"}
	}
	if c.MaxBatchBytes < 0 || c.MaxBatchBytes > DefaultMaxBatchBytes {
		return &ConfigError{Field: "MaxBatchBytes", Value: fmt.Sprint(c.MaxBatchBytes),
			Reason: fmt.Sprintf("must be between 0 and %d", DefaultMaxBatchBytes)}
	}
	if c.MaxBatchBytes > 0 && c.MaxBatchBytes < 16 {
		return &ConfigError{Field: "MaxBatchBytes", Value: fmt.Sprint(c.MaxBatchBytes), Reason: "must be at least 16"}
	}
	for _, n := range []struct {
		field string
		v     int
	}{{"MaxBatchRecords", c.MaxBatchRecords}, {"BufferRecords", c.BufferRecords}} {
		if n.v < 0 {
			return &ConfigError{Field: n.field, Value: fmt.Sprint(n.v), Reason: "must not be negative"}
		}
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"FlushInterval", c.FlushInterval}, {"MinBackoff", c.MinBackoff}, {"MaxBackoff", c.MaxBackoff}, {"TryTimeout", c.TryTimeout}} {
		if d.v < 0 {
			return &ConfigError{Field: d.field, Value: d.v.String(), Reason: "must not be negative"}
		}
	}
	if c.MinBackoff > 0 && c.MaxBackoff > 0 && c.MinBackoff > c.MaxBackoff {
		return &ConfigError{Field: "MinBackoff", Value: c.MinBackoff.String(),
			Reason: "must not exceed MaxBackoff " + c.MaxBackoff.String()}
	}
	if c.Overflow < DropOldest || c.Overflow > Block {
		return &ConfigError{Field: "Overflow", Value: c.Overflow.String(), Reason: "must be DropOldest, DropNewest or Block"}
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Stream == "" {
		c.Stream = StreamName
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.BufferRecords == 0 {
		c.BufferRecords = DefaultBufferRecords
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultMaxRetries
	} else if c.MaxRetries < 0 {
		c.MaxRetries = 0
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = max(DefaultMaxBackoff, c.MinBackoff)
	}
	if c.TryTimeout == 0 {
		c.TryTimeout = DefaultTryTimeout
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
