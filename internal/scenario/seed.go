package scenario

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"

	"github.com/ceskit/ceskit/slicer"
)

// Phase names a step of [Scenario.Seed].
type Phase string

// The phases of [Scenario.Seed], in order.
const (
	PhaseNamespaces Phase = "namespaces"
	PhaseNodes      Phase = "nodes"
	PhaseEndpoints  Phase = "endpoints"
)

// Progress reports how far a phase of [Scenario.Seed] is.
type Progress struct {
	Phase Phase
	// Done objects of Total exist (created now or found already there).
	Done, Total int
	// Elapsed is the time since the phase started.
	Elapsed time.Duration
}

func (p Progress) String() string {
	rate := 0.0
	if s := p.Elapsed.Seconds(); s > 0 {
		rate = float64(p.Done) / s
	}
	return fmt.Sprintf("%s %d/%d in %s (%.0f/s)", p.Phase, p.Done, p.Total, p.Elapsed.Round(time.Millisecond), rate)
}

// SeedOptions tune [Scenario.Seed]. The zero value is valid.
type SeedOptions struct {
	// Workers is the number of concurrent creates. Default 32.
	Workers int
	// Progress, when set, is called every ProgressEvery while a phase runs and once when it
	// ends, always from the goroutine that called Seed.
	Progress func(Progress)
	// ProgressEvery is the period of Progress. Default 5s.
	ProgressEvery time.Duration
	// OnSend and OnDone, when set, are called around each endpoint's create (an [Op] of kind
	// [Create]), as [ChurnOptions] has them, from several goroutines at once: to track the
	// propagation of the seed. A create retried after a transient error is reported once, with
	// its last error; an endpoint that exists already is reported with a nil error.
	OnSend func(op Op, sent time.Time)
	OnDone func(op Op, sent, done time.Time, err error)
}

// transientBackoff retries the errors an API server returns under load.
var transientBackoff = wait.Backoff{Steps: 6, Duration: 50 * time.Millisecond, Factor: 2, Jitter: 0.2}

func transient(err error) bool {
	return apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsServiceUnavailable(err)
}

// Seed creates the scenario's Namespaces, then its Nodes, then its CiliumEndpoints, each phase
// with opts.Workers concurrent creates. Objects that already exist are left as they are, so a
// Seed interrupted can be run again. Errors the API server returns under load (429, timeouts,
// 503) are retried a few times; the first other error stops Seed, which returns it after the
// creates under way have ended.
func (s *Scenario) Seed(ctx context.Context, c *slicer.Client, opts SeedOptions) error {
	if opts.Workers <= 0 {
		opts.Workers = 32
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = 5 * time.Second
	}
	if err := s.parallel(ctx, PhaseNamespaces, s.cfg.Namespaces, opts, func(ctx context.Context, i int) error {
		ns := s.Namespace(i)
		return retry.OnError(transientBackoff, transient, func() error {
			_, err := c.Kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
			return createErr("namespace", ns.Name, err)
		})
	}); err != nil {
		return err
	}
	if err := s.parallel(ctx, PhaseNodes, s.cfg.Nodes, opts, func(ctx context.Context, i int) error {
		return retry.OnError(transientBackoff, transient, func() error { return s.createNode(ctx, c, i) })
	}); err != nil {
		return err
	}
	return s.parallel(ctx, PhaseEndpoints, s.cfg.Endpoints, opts, func(ctx context.Context, i int) error {
		op := Op{Kind: Create, Endpoint: s.Endpoint(i)}
		sent := time.Now()
		if opts.OnSend != nil {
			opts.OnSend(op, sent)
		}
		err := retry.OnError(transientBackoff, transient, func() error {
			_, err := c.CiliumEndpoints(op.Endpoint.Namespace).Create(ctx, op.Endpoint, metav1.CreateOptions{})
			return createErr("endpoint", op.Key(), err)
		})
		if opts.OnDone != nil {
			opts.OnDone(op, sent, time.Now(), err)
		}
		return err
	})
}

func createErr(kind, name string, err error) error {
	if err == nil || apierrors.IsAlreadyExists(err) {
		return nil
	}
	return fmt.Errorf("create %s %s: %w", kind, name, err)
}

// createNode creates Node i, and sets its addresses should the API server have dropped the
// status on create.
func (s *Scenario) createNode(ctx context.Context, c *slicer.Client, i int) error {
	api := c.Kube.CoreV1().Nodes()
	node := s.Node(i)
	got, err := api.Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		return createErr("node", node.Name, err)
	}
	if len(got.Status.Addresses) == 0 {
		got.Status.Addresses = node.Status.Addresses
		if _, err := api.UpdateStatus(ctx, got, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("set addresses of node %s: %w", node.Name, err)
		}
	}
	return nil
}

// parallel calls create for 0…total-1 with opts.Workers goroutines and reports progress from the calling goroutine. It returns the first error.
func (s *Scenario) parallel(ctx context.Context, phase Phase, total int, opts SeedOptions, create func(context.Context, int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	var (
		done    atomic.Int64
		errOnce sync.Once
		first   error
		wg      sync.WaitGroup
	)
	todo := make(chan int)
	for range min(opts.Workers, max(total, 1)) {
		wg.Go(func() {
			for i := range todo {
				if err := create(ctx, i); err != nil {
					errOnce.Do(func() { first = err; cancel() })
					continue
				}
				done.Add(1)
			}
		})
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()

	report := func() {
		if opts.Progress != nil {
			opts.Progress(Progress{Phase: phase, Done: int(done.Load()), Total: total, Elapsed: time.Since(start)})
		}
	}
	tick := time.NewTicker(opts.ProgressEvery)
	defer tick.Stop()
	next := 0
feed:
	for next < total {
		select {
		case todo <- next:
			next++
		case <-tick.C:
			report()
		case <-ctx.Done():
			break feed
		}
	}
	close(todo)
	for waiting := true; waiting; {
		select {
		case <-finished:
			waiting = false
		case <-tick.C:
			report()
		}
	}
	report()
	switch {
	case first != nil:
		return fmt.Errorf("seed %s: %w", phase, first)
	case ctx.Err() != nil && next < total:
		return fmt.Errorf("seed %s: %w", phase, context.Cause(ctx))
	}
	return nil
}
