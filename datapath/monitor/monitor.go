package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/utils/clock"

	"github.com/ceskit/ceskit/datapath"
	"github.com/ceskit/ceskit/observe"
)

// DefaultStatsInterval is the default [Config].StatsInterval.
const DefaultStatsInterval = 10 * time.Second

// Sentinel errors. Test with errors.Is.
var (
	// ErrInvalidConfig is matched by every *[ConfigError].
	ErrInvalidConfig = errors.New("invalid monitor config")
	// ErrRunning is returned by a second concurrent call of [Monitor.Run].
	ErrRunning = errors.New("monitor already running")
)

// ConfigError reports a bad argument or [Config] field with its value.
type ConfigError struct {
	Field  string
	Value  string
	Reason string
}

// Error describes the field, its value and the rule it breaks.
func (e *ConfigError) Error() string {
	return fmt.Sprintf("invalid monitor config: %s=%s: %s", e.Field, e.Value, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidConfig) true.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// Config are a Monitor's settings. The zero Config is valid: every field's comment gives its
// default.
type Config struct {
	// Sink receives an [observe.Record] with the [FlowFromEvent] flow of every verdict event. A
	// failed write is logged and counted ([Counts].SinkErrors) and the next event goes on.
	// Default: none (events are still read, so the ring buffer does not fill, and counted).
	Sink observe.Sink
	// Resolver names endpoints, identities and policies in flows. Default: none (flows carry
	// endpoint IDs, identities and cookies only).
	Resolver Resolver
	// Metrics receives the packet counters and lost events (see [Monitor.Run]). Default:
	// datapath.NopMetrics.
	Metrics datapath.Metrics
	// NodeName is the flows' node_name. Default: empty.
	NodeName string
	// StatsInterval is how often the datapath's counters are read and reported to Metrics.
	// Must not be negative. Default: [DefaultStatsInterval] (10s).
	StatsInterval time.Duration
	// Clock is the time source for the stats ticker and the flows' wall-clock time. Default: the
	// real clock.
	Clock clock.WithTicker
	// Logger receives the monitor's logs. Default: discard.
	Logger *slog.Logger
}

// Validate reports the first bad field of c as a *[ConfigError].
func (c Config) Validate() error {
	if c.StatsInterval < 0 {
		return &ConfigError{Field: "StatsInterval", Value: c.StatsInterval.String(), Reason: "must not be negative"}
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Metrics == nil {
		c.Metrics = datapath.NopMetrics{}
	}
	if c.StatsInterval == 0 {
		c.StatsInterval = DefaultStatsInterval
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Monitor turns a Datapath's verdict events into flow records and its counters into metrics.
// It is safe for concurrent use; one Run at a time.
type Monitor struct {
	dp  *datapath.Datapath
	cfg Config

	running atomic.Bool
	events  atomic.Uint64
	bad     atomic.Uint64
	sinkErr atomic.Uint64

	mu          sync.Mutex
	last        *datapath.Stats // the counters last reported; nil before the first report
	lastSinkErr error
	sinkErrLog  uint64 // sinkErr at the last report
}

// New returns a Monitor of dp. It opens nothing: Run does.
func New(dp *datapath.Datapath, cfg Config) (*Monitor, error) {
	if dp == nil {
		return nil, &ConfigError{Field: "dp", Value: "nil", Reason: "a datapath is required"}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Monitor{dp: dp, cfg: cfg.withDefaults()}, nil
}

// Counts are what a Monitor has handled since New.
type Counts struct {
	// Events is the verdict events read.
	Events uint64
	// SinkErrors is the records the Sink failed to write.
	SinkErrors uint64
	// BadEvents is the ring buffer records that were not verdict events (skipped).
	BadEvents uint64
}

// Counts returns what the Monitor has handled so far.
func (m *Monitor) Counts() Counts {
	return Counts{Events: m.events.Load(), SinkErrors: m.sinkErr.Load(), BadEvents: m.bad.Load()}
}

// Run opens the datapath's event reader and, until ctx ends, writes a flow record for every
// verdict event to the Sink and, every StatsInterval, reports the counters' changes to Metrics.
// When ctx ends it writes the events already in the ring buffer (with ctx done: the observe
// package's sinks still write), reports the counters one last time, closes the reader and
// returns nil, after every goroutine it started has stopped. It returns an error when the
// reader cannot be opened or fails, and [ErrRunning] while another Run is active. Only one
// event reader should be open per Datapath.
//
// Counters: Metrics.Packets(drop, direction, n) gets the packets since the previous report by
// Cilium drop reason ([DropReason]; 0 for forwarded) and direction ("INGRESS", "EGRESS").
// Forwarded counts the packets allowed by policy, by conntrack, audited (would be denied,
// passed: Cilium counts them as forwarded too) and non-IP frames (passed untouched).
// Metrics.LostEvents gets the events lost to a full ring buffer ("ring_buffer") and to the
// per-CPU rate limit ("rate_limit"). The first report carries everything the counters hold
// (with pinned maps: since they were created), so the exported counters equal the datapath's,
// as Cilium's; a counter lower than at the previous report (the datapath replaced its maps)
// counts again from zero.
func (m *Monitor) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer m.running.Store(false)
	er, err := m.dp.Events()
	if err != nil {
		return fmt.Errorf("open verdict events: %w", err)
	}
	m.cfg.Logger.Info("monitor started", "node", m.cfg.NodeName, "interval", m.cfg.StatsInterval)
	done := make(chan error, 1)
	var wg sync.WaitGroup
	mono := newMonotonic()
	wg.Go(func() { done <- m.read(ctx, er, mono) })

	tick := m.cfg.Clock.NewTicker(m.cfg.StatsInterval)
	var runErr error
	readerDone := false
	for !readerDone && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case runErr = <-done:
			readerDone = true
		case <-tick.C():
			m.reportStats()
		}
	}
	tick.Stop()
	if !readerDone {
		// Drain what is already in the ring buffer; Close if Flush cannot unblock the reader.
		if err := er.Flush(); err != nil {
			m.cfg.Logger.Warn("flush verdict events", "error", err)
			er.Close()
		}
		runErr = <-done
	}
	wg.Wait()
	if err := er.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("close verdict events: %w", err)
	}
	m.reportStats()
	m.cfg.Logger.Info("monitor stopped", "events", m.events.Load(), "sink_errors", m.sinkErr.Load())
	return runErr
}

// read handles events until the reader is flushed or closed.
func (m *Monitor) read(ctx context.Context, er *datapath.EventReader, mono monotonic) error {
	for {
		ev, err := er.Read()
		switch {
		case err == nil:
			m.handle(ctx, ev, mono)
		case datapath.IsFlushed(err), datapath.IsClosed(err):
			return nil
		case errors.Is(err, datapath.ErrInvalid):
			m.bad.Add(1)
			m.cfg.Logger.Debug("skip ring buffer record", "error", err)
		default:
			return fmt.Errorf("read verdict events: %w", err)
		}
	}
}

func (m *Monitor) handle(ctx context.Context, ev datapath.Event, mono monotonic) {
	m.events.Add(1)
	if m.cfg.Sink == nil {
		return
	}
	f := FlowFromEvent(ev, m.cfg.Clock.Now(), mono.now(), m.cfg.Resolver, m.cfg.NodeName)
	err := m.cfg.Sink.Write(ctx, observe.Record{Flow: &f})
	if err == nil {
		return
	}
	if m.sinkErr.Add(1) == 1 {
		m.cfg.Logger.Warn("write flow record", "error", err)
	}
	m.mu.Lock()
	m.lastSinkErr = err
	m.mu.Unlock()
}

// monotonic reads CLOCK_MONOTONIC, the clock of the events' Time, without a system call per
// event: the kernel's value once, then Go's monotonic clock (the same clock) since then.
type monotonic struct {
	base  time.Duration
	start time.Time
}

func newMonotonic() monotonic {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) // cannot fail for CLOCK_MONOTONIC
	return monotonic{base: time.Duration(ts.Nano()), start: time.Now()}
}

func (m monotonic) now() time.Duration { return m.base + time.Since(m.start) }

var directions = []struct {
	dir  datapath.Direction
	name string
}{{datapath.Ingress, "INGRESS"}, {datapath.Egress, "EGRESS"}}

// reportStats reports the counters' changes since the previous report, and the sink errors
// since then to the log.
func (m *Monitor) reportStats() {
	s, err := m.dp.Stats()
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := m.sinkErr.Load(); n > m.sinkErrLog {
		m.cfg.Logger.Warn("flow records not written", "errors", n-m.sinkErrLog, "error", m.lastSinkErr)
		m.sinkErrLog = n
	}
	if err != nil {
		m.cfg.Logger.Warn("read datapath counters", "error", err)
		return
	}
	var prev datapath.Stats
	if m.last != nil {
		prev = *m.last
	}
	met := m.cfg.Metrics
	for _, d := range directions {
		cur, old := s.Direction(d.dir), prev.Direction(d.dir)
		byDrop := map[observe.DropReason]uint64{}
		for _, r := range slices.Sorted(maps.Keys(cur)) {
			byDrop[DropReason(r)] += delta(old[r], cur[r])
		}
		for _, drop := range slices.Sorted(maps.Keys(byDrop)) {
			if n := byDrop[drop]; n > 0 {
				met.Packets(uint32(drop), d.name, n)
			}
		}
	}
	if n := delta(prev.LostRingbuf, s.LostRingbuf); n > 0 {
		met.LostEvents("ring_buffer", n)
	}
	if n := delta(prev.LostRateLimit, s.LostRateLimit); n > 0 {
		met.LostEvents("rate_limit", n)
	}
	m.last = &s
}

// delta is cur - old, or cur when the counter went back (it was reset and counts from zero).
func delta(old, cur uint64) uint64 {
	if cur < old {
		return cur
	}
	return cur - old
}
