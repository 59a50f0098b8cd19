package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/client-go/rest"

	"github.com/ceskit/ceskit/identity"
	"github.com/ceskit/ceskit/observe"
	"github.com/ceskit/ceskit/slicer"
)

// operator is one replica. It runs the writer section (the slicer controller and, unless
// disabled, the identity collector) either for its whole life (one replica, shadow mode, the lab)
// or, with leader election, only while it holds the election Lease, and it answers the HTTP
// API. Each section builds a fresh controller and collector: client-go informers and
// [slicer.Controller.Run] run once, and a new leader starts as a restarted controller does
// (adopts the slices, writes only what differs). It is safe for concurrent use.
type operator struct {
	o        *options
	log      *slog.Logger
	client   *slicer.Client
	ids      *identity.Client // nil without the collector
	reg      *prometheus.Registry
	metrics  *observe.SlicerMetrics
	idm      *observe.IdentityMetrics // nil without the collector
	leading  prometheus.Gauge
	el       *elector // nil without leader election
	identity string

	// onSection, when set, is called as a writer section starts (true), before it writes
	// anything, and after every writer in it returned (false). Tests set it.
	onSection func(running bool)

	mu     sync.Mutex
	cur    *section // the running section, nil when none
	latest *section // the last section started, kept for the lab's summary
}

// section is one run of the writers.
type section struct {
	ctrl    *slicer.Controller
	gc      *identity.GC // nil without the collector
	started time.Time
}

func (s *section) synced() bool { return s.ctrl.HasSynced() && (s.gc == nil || s.gc.HasSynced()) }

// newOperator connects to the API server of cfg and checks that it serves what o needs.
// Nothing runs until Run.
func newOperator(cfg *rest.Config, o *options, logger *slog.Logger) (*operator, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "ceskit-operator-example"
	client, err := slicer.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	if err := checkCRDs(client, o.gcEnabled); err != nil {
		return nil, err
	}
	op := &operator{o: o, log: logger, client: client, reg: prometheus.NewRegistry(), identity: newIdentity()}
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := op.reg.Register(c); err != nil {
			return nil, fmt.Errorf("register runtime metrics: %w", err)
		}
	}
	if op.metrics, err = observe.NewSlicerMetrics(op.reg); err != nil {
		return nil, err
	}
	if o.gcEnabled {
		if op.ids, err = identity.NewClient(cfg); err != nil {
			return nil, err
		}
		if op.idm, err = observe.NewIdentityMetrics(op.reg); err != nil {
			return nil, err
		}
	}
	// Named as client-go's leader-election metric, which it registers only globally.
	op.leading = prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "leader_election_master_status",
		Help:        "1 while this replica runs the writers (the slicer controller and identity collector), else 0. Other replicas' slicer gauges are stale.",
		ConstLabels: prometheus.Labels{"name": o.election.Name},
	})
	if err := op.reg.Register(op.leading); err != nil {
		return nil, fmt.Errorf("register leader metric: %w", err)
	}
	if o.leaderElect {
		op.el = &elector{
			cfg:      o.election,
			leases:   client.Kube.CoordinationV1(),
			identity: op.identity,
			log:      logger.With("component", "leader-election"),
		}
	}
	return op, nil
}

// Run runs the writers, at once or while this replica leads, until ctx ends or they fail. With
// leader election a writer failure ends the process too, after the writers stopped and the
// Lease was released, so that another replica takes over at once.
func (op *operator) Run(ctx context.Context) error {
	if op.el == nil {
		return op.runSection(ctx)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	op.el.lead = func(ctx context.Context) {
		if err := op.runSection(ctx); err != nil {
			cancel(err)
		}
	}
	op.log.Info("campaigning for leadership", "lease", op.el.lease(), "identity", op.identity,
		"leaseDuration", op.o.election.LeaseDuration, "renewDeadline", op.o.election.RenewDeadline, "retryPeriod", op.o.election.RetryPeriod)
	op.el.Run(ctx)
	if err := context.Cause(ctx); !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// runSection builds a controller and a collector and runs them until ctx ends or one fails.
// It returns after both returned.
func (op *operator) runSection(ctx context.Context) error {
	cfg := op.o.cfg
	cfg.Logger, cfg.Metrics = op.log, op.metrics
	ctrl, err := slicer.New(op.client, cfg)
	if err != nil {
		return flagError(err)
	}
	sec := &section{ctrl: ctrl, started: time.Now()}
	if op.o.gcEnabled {
		gcfg := op.o.gc
		gcfg.Logger, gcfg.Metrics = op.log.With("component", "identity-gc"), op.idm
		if sec.gc, err = identity.NewGC(op.ids, gcfg); err != nil {
			return gcFlagError(err)
		}
	}

	if op.onSection != nil {
		op.onSection(true)
	}
	op.mu.Lock()
	op.cur, op.latest = sec, sec
	op.mu.Unlock()
	op.leading.Set(1)

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := ctrl.Run(ctx); err != nil {
			cancel(err)
		}
	})
	if sec.gc != nil {
		wg.Go(func() {
			if err := sec.gc.Run(ctx); err != nil {
				cancel(fmt.Errorf("identity gc: %w", err))
			}
		})
	}
	wg.Wait()
	op.log.Info("writers stopped", "ran", time.Since(sec.started).Round(time.Millisecond))

	op.leading.Set(0)
	op.mu.Lock()
	op.cur = nil
	op.mu.Unlock()
	if op.onSection != nil {
		op.onSection(false)
	}
	if err := context.Cause(ctx); !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

func (op *operator) current() *section {
	op.mu.Lock()
	defer op.mu.Unlock()
	return op.cur
}

// HasSynced and Status are those of the latest controller, for the lab's simulator.
func (op *operator) HasSynced() bool {
	op.mu.Lock()
	sec := op.latest
	op.mu.Unlock()
	return sec != nil && sec.ctrl.HasSynced()
}

func (op *operator) Status() slicer.Status {
	op.mu.Lock()
	sec := op.latest
	op.mu.Unlock()
	if sec == nil {
		return slicer.Status{}
	}
	return sec.ctrl.Status()
}

// controller is the running controller, or nil when this replica stands by.
func (op *operator) controller() controller {
	if sec := op.current(); sec != nil {
		return sec.ctrl
	}
	return nil
}

// health is /healthz: the process serves, the writers' informers are not wedged (synced within
// --cache-sync-timeout), and writers told to stop did stop.
func (op *operator) health() error {
	if sec := op.current(); sec != nil && !sec.synced() {
		if d := time.Since(sec.started); d > op.o.syncTimeout {
			return fmt.Errorf("informers not synced %s after the writers started (--cache-sync-timeout=%s)", d.Round(time.Second), op.o.syncTimeout)
		}
	}
	if op.el != nil {
		return op.el.health()
	}
	return nil
}

// ready is /readyz: the writers run, are synced and not Degraded; or, with leader election,
// this replica is a follower standing by.
func (op *operator) ready() (string, error) {
	sec := op.current()
	if sec == nil {
		if op.el == nil {
			return "", errors.New("writers not started")
		}
		leader, _ := op.el.status()
		if leader == "" {
			leader = "none observed yet"
		}
		return "follower standing by; leader: " + leader, nil
	}
	if !sec.ctrl.HasSynced() {
		return "", errors.New("not synced: caches not filled or existing slices not adopted yet")
	}
	if sec.gc != nil && !sec.gc.HasSynced() {
		return "", errors.New("not synced: identity collector caches not filled yet")
	}
	if st := sec.ctrl.Status(); st.Degraded {
		return "", errors.New("degraded: " + st.DegradedReason)
	}
	if op.el != nil {
		return "leading", nil
	}
	return "", nil
}

// replica is this replica's part of /status.
func (op *operator) replica() replicaStatus {
	r := replicaStatus{Identity: op.identity, Mode: modeSingle, IdentityGC: op.o.gcEnabled}
	switch {
	case op.o.cfg.Shadow:
		r.Mode = modeShadow
	case op.el != nil:
		r.Mode, r.Lease = modeElected, op.el.lease()
		r.Leader, _ = op.el.status()
	}
	r.Leading = op.current() != nil
	return r
}
