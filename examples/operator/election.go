package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Leader election: only the replica that holds a coordination.k8s.io Lease runs the writers (the
// slicer controller and the identity collector), and it stops them before any other replica can
// take the Lease over.
//
// The fencing argument. A replica may take the Lease over only when it has seen the same
// record for LeaseDuration (its own clock, measured from when it first saw that record) or
// when the holder released it. The leader stamps the time just before it sends each renewal
// that succeeds; every other replica saw that renewal after it was sent, so none can take over
// before stamp + LeaseDuration. A watchdog stops the writers once stamp + RenewDeadline has
// passed without a newer renewal, so they have LeaseDuration − RenewDeadline (5 s with the
// defaults) minus one watchdog tick to return, which they do as soon as their context ends.
// Hence RenewDeadline < LeaseDuration, checked at start. client-go's own renew loop gives up
// later (RetryPeriod + RenewDeadline after the last success), and its release
// (ReleaseOnCancel), which lets another replica take over at once, goes through fencedLock,
// which stops the writers before it sends the release. On shutdown the writers are stopped
// first and the Lease released after. /healthz fails when the writers have not returned
// within that margin, so that the kubelet kills a replica that cannot be fenced.
//
// What this does not cover: a request already on the wire when the writers' context ends may
// still be applied by the API server. Updates carry the resourceVersion they started from and
// deletes UID (identities also resourceVersion) preconditions, so such a late write fails on a
// conflict rather than overwrite a newer one; a late slice create is adopted by the new leader.
// Clocks need not agree between replicas; only their rates must (a replica that measures 15 s
// as much less is a broken node).

// Kubernetes' leader-election defaults (kube-controller-manager, kube-scheduler).
const (
	defaultElectionNamespace = "kube-system"
	defaultElectionName      = "ceskit-operator"
	defaultLeaseDuration     = 15 * time.Second
	defaultRenewDeadline     = 10 * time.Second
	defaultRetryPeriod       = 2 * time.Second
)

// electionConfig holds the leader-election settings (--leader-elect-*).
type electionConfig struct {
	Namespace     string
	Name          string
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
}

// validate names the first bad flag.
func (c electionConfig) validate() error {
	if errs := validation.IsDNS1123Label(c.Namespace); len(errs) > 0 {
		return fmt.Errorf("flag --leader-elect-namespace=%q: %s", c.Namespace, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(c.Name); len(errs) > 0 {
		return fmt.Errorf("flag --leader-elect-name=%q: %s", c.Name, strings.Join(errs, "; "))
	}
	switch {
	case c.LeaseDuration < time.Second || c.LeaseDuration%time.Second != 0:
		return fmt.Errorf("flag --leader-elect-lease-duration=%s: must be a whole number of seconds, at least 1s (the Lease stores seconds)", c.LeaseDuration)
	case c.RenewDeadline <= 0 || c.RenewDeadline >= c.LeaseDuration:
		return fmt.Errorf("flag --leader-elect-renew-deadline=%s: must be positive and shorter than --leader-elect-lease-duration=%s: "+
			"the leader stops writing after the renew deadline, and nobody may take over before the lease duration", c.RenewDeadline, c.LeaseDuration)
	case c.RetryPeriod <= 0 || float64(c.RenewDeadline) <= leaderelection.JitterFactor*float64(c.RetryPeriod):
		return fmt.Errorf("flag --leader-elect-retry-period=%s: must be positive and less than --leader-elect-renew-deadline / %g", c.RetryPeriod, leaderelection.JitterFactor)
	}
	return nil
}

// watchdogPeriod is how often the leader checks its last renewal: a quarter of the smaller of
// RetryPeriod and the fencing margin.
func (c electionConfig) watchdogPeriod() time.Duration {
	return min(c.RetryPeriod, c.LeaseDuration-c.RenewDeadline) / 4
}

// newIdentity returns this replica's election identity: the host name (the pod name in a
// cluster) and a random suffix, so that a restarted replica is a new candidate.
func newIdentity() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "ceskit-operator"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "_" + hex.EncodeToString(b)
}

// elector runs lead only while this replica holds the election Lease. It is safe for
// concurrent use.
type elector struct {
	cfg      electionConfig
	leases   coordinationv1client.LeasesGetter
	identity string
	log      *slog.Logger
	// lead is the writer section; it runs until its context ends.
	lead func(ctx context.Context)

	mu   sync.Mutex
	le   *leaderelection.LeaderElector // the current term's
	gate *gate                         // the current term's
}

// Run campaigns for the Lease until ctx ends, one term after another: a replica that lost the
// Lease stands by and campaigns again. It returns after the writers stopped and the Lease was
// released.
func (e *elector) Run(ctx context.Context) {
	for ctx.Err() == nil {
		if err := e.term(ctx); err != nil {
			// Only a bad configuration fails here, and validate rules that out.
			e.log.Error("leader election", "error", err)
			sleep(ctx, e.cfg.RetryPeriod)
		}
	}
}

// term is one campaign: acquire the Lease, lead, lose or release it.
func (e *elector) term(ctx context.Context) error {
	electCtx, endTerm := context.WithCancel(context.WithoutCancel(ctx))
	defer endTerm()
	g := &gate{}
	var wg sync.WaitGroup
	lock := &fencedLock{
		Interface: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: e.cfg.Namespace, Name: e.cfg.Name},
			Client:     e.leases,
			LockConfig: resourcelock.ResourceLockConfig{Identity: e.identity},
		},
		beforeRelease: g.stop,
	}
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		Name:            e.cfg.Name,
		LeaseDuration:   e.cfg.LeaseDuration,
		RenewDeadline:   e.cfg.RenewDeadline,
		RetryPeriod:     e.cfg.RetryPeriod,
		ReleaseOnCancel: true,
		Callbacks: leaderelection.LeaderCallbacks{
			// client-go calls this on a goroutine of its own, with a context that ends only
			// after the Lease was released; the writers get a context only g.stop ends.
			OnStartedLeading: func(context.Context) {
				if g.start(context.WithoutCancel(ctx), &wg, e.lead) {
					e.log.Info("leading: writers started", "lease", e.lease(), "identity", e.identity)
				}
			},
			OnStoppedLeading: g.stop,
			OnNewLeader: func(id string) {
				e.log.Info("leader observed", "lease", e.lease(), "leader", id, "self", id == e.identity)
			},
		},
	})
	if err != nil {
		return fmt.Errorf("new leader elector: %w", err)
	}
	e.mu.Lock()
	e.le, e.gate = le, g
	e.mu.Unlock()

	wg.Go(func() { e.watch(ctx, electCtx, endTerm, g, lock) })
	le.Run(electCtx) // returns after OnStoppedLeading, so after g.stop
	endTerm()
	g.stop()
	wg.Wait()
	return nil
}

// watch ends the term: on shutdown it stops the writers and then lets client-go release the
// Lease; while leading it stops them when the Lease was not renewed within RenewDeadline.
func (e *elector) watch(ctx, electCtx context.Context, endTerm func(), g *gate, lock *fencedLock) {
	t := time.NewTicker(e.cfg.watchdogPeriod())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			g.stop()  // stop writing first,
			endTerm() // then release the Lease
			return
		case <-electCtx.Done():
			return
		case <-t.C:
			if running, _ := g.state(); !running {
				continue
			}
			if at := lock.lastRenewal(); time.Since(at) > e.cfg.RenewDeadline {
				e.log.Warn("lease not renewed within the renew deadline: stopping the writers before it can expire",
					"lease", e.lease(), "lastRenewal", at, "renewDeadline", e.cfg.RenewDeadline)
				g.stop()
				endTerm()
				return
			}
		}
	}
}

func (e *elector) lease() string { return e.cfg.Namespace + "/" + e.cfg.Name }

// status returns the leader as last observed ("" before the first observation) and whether
// this replica's writers run.
func (e *elector) status() (leader string, leading bool) {
	e.mu.Lock()
	le, g := e.le, e.gate
	e.mu.Unlock()
	if le == nil {
		return "", false
	}
	running, _ := g.state()
	return le.GetLeader(), running
}

// health fails when the writers were told to stop and have not returned within the fencing
// margin: another replica may be writing already, and only killing this process helps.
func (e *elector) health() error {
	e.mu.Lock()
	g := e.gate
	e.mu.Unlock()
	if g == nil {
		return nil
	}
	running, stopAt := g.state()
	if margin := e.cfg.LeaseDuration - e.cfg.RenewDeadline; running && !stopAt.IsZero() && time.Since(stopAt) > margin {
		return fmt.Errorf("writers still running %s after leadership ended (margin %s): another replica may be writing",
			time.Since(stopAt).Round(time.Millisecond), margin)
	}
	return nil
}

// gate runs one term's writer section at most once and stops it. Once stopped it starts
// nothing more. It is safe for concurrent use; the zero value is ready.
type gate struct {
	mu     sync.Mutex
	closed bool
	cancel context.CancelFunc
	done   chan struct{} // closed when the section returned
	stopAt time.Time     // when stop was first called on a running section
}

// start runs fn on wg unless the gate was stopped or fn already started. It reports whether it
// started fn.
func (g *gate) start(ctx context.Context, wg *sync.WaitGroup, fn func(context.Context)) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || g.done != nil {
		return false
	}
	ctx, g.cancel = context.WithCancel(ctx)
	done := make(chan struct{})
	g.done = done
	wg.Go(func() {
		defer close(done)
		fn(ctx)
	})
	return true
}

// stop ends the section and returns once it has returned.
func (g *gate) stop() {
	g.mu.Lock()
	g.closed = true
	cancel, done := g.cancel, g.done
	if done != nil && g.stopAt.IsZero() {
		g.stopAt = time.Now()
	}
	g.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// state reports whether the section runs (started, not returned) and when it was told to stop.
func (g *gate) state() (running bool, stopAt time.Time) {
	g.mu.Lock()
	done, stopAt := g.done, g.stopAt
	g.mu.Unlock()
	if done == nil {
		return false, stopAt
	}
	select {
	case <-done:
		return false, stopAt
	default:
		return true, stopAt
	}
}

// fencedLock is the election Lease lock with the two hooks fencing needs: it stamps when the
// last renewal that succeeded was sent, and it stops the writers before it sends a release.
type fencedLock struct {
	resourcelock.Interface
	beforeRelease func()

	mu        sync.Mutex
	renewedAt time.Time
}

func (l *fencedLock) Create(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	return l.write(ctx, ler, l.Interface.Create)
}

func (l *fencedLock) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	if ler.HolderIdentity != l.Identity() {
		// client-go releases the Lease by writing an empty holder; another replica may take it
		// over at once, so the writers must have stopped before.
		l.beforeRelease()
	}
	return l.write(ctx, ler, l.Interface.Update)
}

func (l *fencedLock) write(ctx context.Context, ler resourcelock.LeaderElectionRecord, fn func(context.Context, resourcelock.LeaderElectionRecord) error) error {
	sent := time.Now()
	err := fn(ctx, ler)
	if err == nil && ler.HolderIdentity == l.Identity() {
		l.mu.Lock()
		l.renewedAt = sent
		l.mu.Unlock()
	}
	return err
}

// lastRenewal is when the last successful acquisition or renewal was sent.
func (l *fencedLock) lastRenewal() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.renewedAt
}
