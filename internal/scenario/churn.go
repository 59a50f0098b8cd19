package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ceskit/ceskit/slicer"
	"github.com/ceskit/ceskit/slicer/ciliumv2"
)

// OpKind is the kind of a churn operation.
type OpKind uint8

// The churn operations. A replacement is a Delete followed by a Create of a new endpoint of the
// same app and namespace on a random node; a relabel is a ChangeIdentity to another app of the
// same namespace. The two are equally likely, so a third of the operations is of each kind.
const (
	Create OpKind = iota + 1
	Delete
	ChangeIdentity
)

func (k OpKind) String() string {
	switch k {
	case Create:
		return "create"
	case Delete:
		return "delete"
	case ChangeIdentity:
		return "change-identity"
	}
	return fmt.Sprintf("OpKind(%d)", uint8(k))
}

// Op is one endpoint change: one API write.
type Op struct {
	Kind OpKind
	// Endpoint is the endpoint as the operation leaves it (Create, ChangeIdentity) or as it was
	// (Delete).
	Endpoint *ciliumv2.CiliumEndpoint
}

// Key is the endpoint's "namespace/name".
func (o Op) Key() string { return o.Endpoint.Namespace + "/" + o.Endpoint.Name }

// Identity is the endpoint's security identity after the operation; 0 after a Delete.
func (o Op) Identity() int64 {
	if o.Kind == Delete {
		return 0
	}
	return o.Endpoint.Status.Identity.ID
}

// Apply makes the operation's API write: a create, a delete (by name: names are never reused),
// or a JSON merge patch of the identity and service account, which needs no resource version.
func (o Op) Apply(ctx context.Context, c *slicer.Client) error {
	api := c.CiliumEndpoints(o.Endpoint.Namespace)
	var err error
	switch o.Kind {
	case Create:
		_, err = api.Create(ctx, o.Endpoint, metav1.CreateOptions{})
	case Delete:
		err = api.Delete(ctx, o.Endpoint.Name, metav1.DeleteOptions{})
	case ChangeIdentity:
		var patch []byte
		patch, err = json.Marshal(map[string]any{"status": map[string]any{
			"identity":        o.Endpoint.Status.Identity,
			"service-account": o.Endpoint.Status.ServiceAccount,
		}})
		if err == nil {
			_, err = api.Patch(ctx, o.Endpoint.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		}
	default:
		err = fmt.Errorf("unknown operation %d", o.Kind)
	}
	if err != nil {
		return fmt.Errorf("%s endpoint %s: %w", o.Kind, o.Key(), err)
	}
	return nil
}

// Churn generates the scenario's churn: a sequence of [Op] over the endpoints that live, starting
// from the seeded ones. The sequence depends only on the scenario's Config. A Churn is not safe
// for concurrent use; [Churn.Run] is the only method that may run while others are called, and
// it calls Next itself.
type Churn struct {
	s       *Scenario
	rng     *rand.Rand
	live    []pod
	next    int // number of the next endpoint created
	pending *Op // the Create that completes a replacement
}

// NewChurn returns the churn that follows a Seed: every seeded endpoint lives.
func (s *Scenario) NewChurn() *Churn {
	c := &Churn{s: s, rng: rand.New(rand.NewPCG(s.cfg.Seed, 0x636875726e)), next: s.cfg.Endpoints}
	c.live = make([]pod, s.cfg.Endpoints)
	for n := range c.live {
		c.live[n] = s.seeded(n)
	}
	return c
}

// Live is the number of endpoints that live once every operation returned so far is applied.
func (c *Churn) Live() int { return len(c.live) }

// Next returns the next operation and applies it to the churn's view of what lives.
func (c *Churn) Next() Op {
	if op := c.pending; op != nil {
		c.pending = nil
		return *op
	}
	ids := c.s.cfg.IdentitiesPerNamespace
	if len(c.live) == 0 { // everything deleted: nothing to churn but creates
		p := c.newPod(int32(c.next%c.s.cfg.Namespaces), int32(c.rng.IntN(ids)))
		return Op{Kind: Create, Endpoint: c.s.build(p)}
	}
	i := c.rng.IntN(len(c.live))
	if c.rng.IntN(2) == 0 || ids == 1 { // replacement
		old := c.live[i]
		c.live[i] = c.live[len(c.live)-1]
		c.live = c.live[:len(c.live)-1]
		c.pending = &Op{Kind: Create, Endpoint: c.s.build(c.newPod(old.ns, old.app))}
		return Op{Kind: Delete, Endpoint: c.s.build(old)}
	}
	p := &c.live[i]
	app := int32(c.rng.IntN(ids - 1))
	if app >= p.app {
		app++ // any app but the current one
	}
	p.app = app
	return Op{Kind: ChangeIdentity, Endpoint: c.s.build(*p)}
}

// newPod adds a new endpoint of app in namespace ns, on a random node, to the live ones.
func (c *Churn) newPod(ns, app int32) pod {
	p := pod{n: int32(c.next), ns: ns, app: app, node: int32(c.rng.IntN(c.s.cfg.Nodes))}
	c.next++
	c.live = append(c.live, p)
	return p
}

// ChurnOptions tune [Churn.Run].
type ChurnOptions struct {
	// Rate is the number of operations (API writes) per second; required, > 0. When the writes
	// under way reach MaxInFlight the rate drops; [ChurnStats] tells the rate achieved. At most
	// one second of backlog is made up.
	Rate float64
	// MaxInFlight bounds the writes under way. Default 64.
	MaxInFlight int
	// WriteTimeout bounds each write. Default 30s.
	WriteTimeout time.Duration
	// OnSend, when set, is called just before each write is sent, and OnDone after it returned.
	// They are called from several goroutines at once, but for one endpoint in the order of the
	// operations: an operation's write starts only after the previous write to the same
	// endpoint returned.
	OnSend func(op Op, sent time.Time)
	// OnDone: see OnSend. err is the write's error, if any.
	OnDone func(op Op, sent, done time.Time, err error)
}

// ChurnStats count what [Churn.Run] did.
type ChurnStats struct {
	// Ops were sent; Failed of them returned an error.
	Ops, Failed int64
	// By kind, of Ops.
	Creates, Deletes, IdentityChanges int64
	// Elapsed is the time operations were issued, from Run's start until ctx ended.
	Elapsed time.Duration
	// Drained is the time from ctx's end until every write under way returned.
	Drained time.Duration
}

// Rate is the operations per second achieved.
func (s ChurnStats) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Ops) / s.Elapsed.Seconds()
}

// Run issues the churn's operations at opts.Rate, without waiting for one write to return before
// sending the next (an open-loop load, as many agents would make), until ctx ends; then it
// completes a replacement begun (so the number of endpoints stays), waits for the writes under
// way, which are not cancelled, and returns. Writes to one endpoint are made in order. The error is for invalid options only; write errors go to opts.OnDone and are
// counted.
func (c *Churn) Run(ctx context.Context, client *slicer.Client, opts ChurnOptions) (ChurnStats, error) {
	if !(opts.Rate > 0) {
		return ChurnStats{}, fmt.Errorf("churn options Rate=%g: must be positive", opts.Rate)
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = 64
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 30 * time.Second
	}
	var (
		st                          ChurnStats
		ops, failed, cr, del, ident atomic.Int64
		wg                          sync.WaitGroup
		mu                          sync.Mutex
		tails                       = map[string]chan struct{}{} // endpoint → its last write's end
	)
	sem := make(chan struct{}, opts.MaxInFlight)
	writeCtx := context.WithoutCancel(ctx)
	send := func(op Op) {
		key := op.Key()
		done := make(chan struct{})
		mu.Lock()
		prev := tails[key]
		tails[key] = done
		mu.Unlock()
		wg.Go(func() {
			defer func() { <-sem }()
			if prev != nil {
				<-prev
			}
			sent := time.Now()
			if opts.OnSend != nil {
				opts.OnSend(op, sent)
			}
			wctx, cancel := context.WithTimeout(writeCtx, opts.WriteTimeout)
			err := op.Apply(wctx, client)
			cancel()
			if err != nil {
				failed.Add(1)
			}
			if opts.OnDone != nil {
				opts.OnDone(op, sent, time.Now(), err)
			}
			close(done)
			mu.Lock()
			if tails[key] == done {
				delete(tails, key)
			}
			mu.Unlock()
		})
		ops.Add(1)
		switch op.Kind {
		case Create:
			cr.Add(1)
		case Delete:
			del.Add(1)
		case ChangeIdentity:
			ident.Add(1)
		}
	}

	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	last, due := start, 0.0
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case now := <-tick.C:
			due = min(due+opts.Rate*now.Sub(last).Seconds(), max(opts.Rate, 1))
			last = now
		}
		for due >= 1 {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				break loop
			}
			send(c.Next())
			due--
		}
	}
	tick.Stop()
	if c.pending != nil { // complete the replacement begun: the endpoint count stays
		sem <- struct{}{}
		send(c.Next())
	}
	st.Elapsed = time.Since(start)
	wg.Wait()
	st.Drained = time.Since(start) - st.Elapsed
	st.Ops, st.Failed, st.Creates, st.Deletes, st.IdentityChanges = ops.Load(), failed.Load(), cr.Load(), del.Load(), ident.Load()
	return st, nil
}
