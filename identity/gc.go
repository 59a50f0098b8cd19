package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"github.com/ceskit/ceskit/identity/ciliumv2"
	"github.com/ceskit/ceskit/internal/discovery"
	"github.com/ceskit/ceskit/internal/retry"
)

// Defaults of [GCConfig].
const (
	DefaultGCInterval       = 5 * time.Second
	DefaultGCMinAge         = 5 * time.Second
	DefaultGCGracePeriod    = 30 * time.Second
	DefaultClaimGracePeriod = 10 * time.Minute
	DefaultGCWriteQPS       = 250
	DefaultGCWorkers        = 16
)

// The resources whose objects reference identities.
var (
	endpointsGVR = schema.GroupVersionResource{Group: "cilium.io", Version: "v2", Resource: "ciliumendpoints"}
	slicesGVR    = schema.GroupVersionResource{Group: "cilium.io", Version: "v2alpha1", Resource: "ciliumendpointslices"}
)

// GCConfig holds the optional settings of a [GC]. The zero value is valid: every field's comment
// gives the default [NewGC] fills in.
type GCConfig struct {
	// Namespace holds the allocators' claim Leases and holder records; it must match
	// [Config.Namespace]. Default: kube-system.
	Namespace string

	// Interval is the time between two collection passes. Default: 5 s.
	Interval time.Duration

	// MinAge spares identities younger than this from being marked: their allocator may not
	// have published its holder record yet. Default: 5 s.
	MinAge time.Duration

	// GracePeriod is how long an identity stays marked unused before it is deleted. Anything
	// that starts using it within the grace period keeps it. Default: 30 s (Cilium: 15–30 min).
	GracePeriod time.Duration

	// ClaimGracePeriod is how long a claim Lease whose identity is gone, or a holder record that
	// expired, is kept before it is deleted. Keeping claims longer gives label sets that come
	// back the same ID. Default: 10 min.
	ClaimGracePeriod time.Duration

	// WriteQPS bounds the collector's API writes (marks, unmarks, deletions) per second; bursts
	// of up to one second's worth are allowed. Default: 250.
	WriteQPS float64

	// Workers is the number of writes in flight. Default: 16.
	Workers int

	// IgnoreEndpoints stops the collector from watching CiliumEndpoints and
	// CiliumEndpointSlices for references. By default it watches them when the API server
	// serves them.
	IgnoreEndpoints bool

	// InUse, when set, is called once per pass and reports further identities in use (say, from
	// a policy engine's selector cache). It must not block.
	InUse func() map[NumericIdentity]struct{}

	// Logger receives the collector's logs. Default: discard.
	Logger *slog.Logger

	// Metrics receives measurements. Default: [NopMetrics].
	Metrics Metrics

	// Clock is the time source. Default: the real clock.
	Clock clock.WithTicker
}

// Validate reports the first bad field of c as a *[ConfigError].
func (c GCConfig) Validate() error {
	if c.Namespace != "" {
		if err := (Config{Namespace: c.Namespace}).Validate(); err != nil {
			return err
		}
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"Interval", c.Interval}, {"MinAge", c.MinAge}, {"GracePeriod", c.GracePeriod}, {"ClaimGracePeriod", c.ClaimGracePeriod}} {
		if d.v < 0 {
			return &ConfigError{Field: d.field, Value: d.v.String(), Reason: "must not be negative"}
		}
	}
	if c.WriteQPS < 0 {
		return &ConfigError{Field: "WriteQPS", Value: fmt.Sprint(c.WriteQPS), Reason: "must not be negative"}
	}
	if c.Workers < 0 {
		return &ConfigError{Field: "Workers", Value: fmt.Sprint(c.Workers), Reason: "must not be negative"}
	}
	return nil
}

func (c GCConfig) withDefaults() GCConfig {
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.Interval == 0 {
		c.Interval = DefaultGCInterval
	}
	if c.MinAge == 0 {
		c.MinAge = DefaultGCMinAge
	}
	if c.GracePeriod == 0 {
		c.GracePeriod = DefaultGCGracePeriod
	}
	if c.ClaimGracePeriod == 0 {
		c.ClaimGracePeriod = DefaultClaimGracePeriod
	}
	if c.WriteQPS == 0 {
		c.WriteQPS = DefaultGCWriteQPS
	}
	if c.Workers == 0 {
		c.Workers = DefaultGCWorkers
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

// GC deletes CiliumIdentities nothing uses. An identity is in use while a CiliumEndpoint or a
// CiliumEndpointSlice references it, while a live holder record (an allocator's, see
// [CRDAllocator]) lists it, or while [GCConfig.InUse] reports it. An unused identity is first
// marked (annotation io.cilium.heartbeat, as Cilium's operator does); when it is still unused
// and still marked GracePeriod later it is deleted with UID and resourceVersion preconditions,
// so an allocator that unmarked it in between wins. In-use identities that carry a mark are
// unmarked. The collector also deletes claim Leases whose identity has been gone for
// ClaimGracePeriod, and holder records expired for that long.
//
// Run one collector per cluster (several are safe, only wasteful). It is safe for concurrent use.
type GC struct {
	client  *Client
	cfg     GCConfig
	log     *slog.Logger
	limiter *rate.Limiter

	ids     cache.SharedIndexInformer
	leases  cache.SharedIndexInformer
	refInfs []cache.SharedIndexInformer

	started atomic.Bool
	synced  chan struct{}
	passMu  sync.Mutex // one pass at a time

	mu       sync.Mutex
	refs     map[string][]NumericIdentity // by "kind/namespace/name"
	refCount map[NumericIdentity]int
	orphans  map[string]time.Time // claim name → first seen without its identity
	sources  []string
}

// GCResult counts what one collection pass found and did.
type GCResult struct {
	// Alive identities are in use; Young ones were created less than MinAge ago.
	Alive, Young int
	// Marked, Unmarked and Deleted count the writes that succeeded this pass.
	Marked, Unmarked, Deleted int
	// Waiting identities are marked and within their grace period.
	Waiting int
	// Skipped writes lost a race (conflict or not found) and are retried next pass if still due.
	Skipped int
	// ClaimsDeleted and HoldersDeleted count deleted claim Leases and holder records.
	ClaimsDeleted, HoldersDeleted int
}

// NewGC returns a collector over the identities client reaches.
func NewGC(client *Client, cfg GCConfig) (*GC, error) {
	if client == nil {
		return nil, &ConfigError{Field: "client", Value: "nil", Reason: "a client is required"}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	burst := max(1, int(cfg.WriteQPS))
	g := &GC{
		client:   client,
		cfg:      cfg,
		log:      cfg.Logger,
		limiter:  rate.NewLimiter(rate.Limit(cfg.WriteQPS), burst),
		ids:      client.NewIdentityInformer(),
		synced:   make(chan struct{}),
		refs:     make(map[string][]NumericIdentity),
		refCount: make(map[NumericIdentity]int),
		orphans:  make(map[string]time.Time),
	}
	g.leases = informers.NewSharedInformerFactoryWithOptions(client.Kube, 0,
		informers.WithNamespace(cfg.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = LeaseKindLabel }),
	).Coordination().V1().Leases().Informer()
	return g, nil
}

// Run watches identities, claims, holder records and (unless IgnoreEndpoints) CiliumEndpoints and
// CiliumEndpointSlices, and runs a collection pass every Interval until ctx ends. It returns
// after every goroutine it started has stopped, or at once with an error wrapping
// [ErrCRDMissing] when CiliumIdentities are not served. Discovery reads that fail otherwise (the
// API server unreachable or answering 5xx) are retried, 100ms doubling to 5s; Run returns nil if
// ctx ends meanwhile.
func (g *GC) Run(ctx context.Context) error {
	if !g.started.CompareAndSwap(false, true) {
		return errors.New("identity gc: Run called twice")
	}
	if err := untilServed(ctx, g.log, g.client); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if !g.cfg.IgnoreEndpoints {
		for _, src := range []struct {
			gvr     schema.GroupVersionResource
			kind    string
			extract func(*unstructured.Unstructured) []NumericIdentity
		}{{endpointsGVR, "cep", endpointIDs}, {slicesGVR, "ces", sliceIDs}} {
			var served bool
			err := retry.Until(ctx, g.log, src.gvr.Resource+" discovery", retry.DefaultBackoff, func(context.Context) error {
				var err error
				served, err = resourceServed(g.client, src.gvr)
				return err
			}, nil)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			if !served {
				g.log.Info("not watching references: resource not served", "resource", src.gvr.String())
				continue
			}
			inf := dynamicinformer.NewFilteredDynamicInformer(g.client.Dynamic, src.gvr, metav1.NamespaceAll, 0, cache.Indexers{}, nil).Informer()
			if _, err := inf.AddEventHandler(g.refHandler(src.kind, src.extract)); err != nil {
				return fmt.Errorf("add %s handler: %w", src.kind, err)
			}
			g.refInfs = append(g.refInfs, inf)
			g.sources = append(g.sources, src.gvr.Resource)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	all := append([]cache.SharedIndexInformer{g.ids, g.leases}, g.refInfs...)
	synced := make([]cache.InformerSynced, 0, len(all))
	for _, inf := range all {
		wg.Go(func() { inf.RunWithContext(ctx) })
		synced = append(synced, inf.HasSynced)
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return nil
	}
	close(g.synced)
	tick := g.cfg.Clock.NewTicker(g.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C():
			if _, err := g.RunOnce(ctx); err != nil && ctx.Err() == nil {
				g.log.Warn("identity gc pass", "err", err)
			}
		}
	}
}

func resourceServed(c *Client, gvr schema.GroupVersionResource) (bool, error) {
	return discovery.Served(c.Kube.Discovery(), gvr.GroupVersion().String(), gvr.Resource)
}

// Sources returns the resources the collector watches for references, once Run has started.
func (g *GC) Sources() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.sources...)
}

// HasSynced reports whether the collector's caches are synced.
func (g *GC) HasSynced() bool {
	select {
	case <-g.synced:
		return true
	default:
		return false
	}
}

func (g *GC) refHandler(kind string, extract func(*unstructured.Unstructured) []NumericIdentity) cache.ResourceEventHandler {
	set := func(obj any) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return
		}
		g.setRefs(kind+"/"+u.GetNamespace()+"/"+u.GetName(), extract(u))
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    set,
		UpdateFunc: func(_, obj any) { set(obj) },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if u, ok := obj.(*unstructured.Unstructured); ok {
				g.setRefs(kind+"/"+u.GetNamespace()+"/"+u.GetName(), nil)
			}
		},
	}
}

func (g *GC) setRefs(key string, ids []NumericIdentity) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, id := range g.refs[key] {
		if g.refCount[id]--; g.refCount[id] <= 0 {
			delete(g.refCount, id)
		}
	}
	if len(ids) == 0 {
		delete(g.refs, key)
		return
	}
	g.refs[key] = ids
	for _, id := range ids {
		g.refCount[id]++
	}
}

// endpointIDs reads status.identity.id of a CiliumEndpoint.
func endpointIDs(u *unstructured.Unstructured) []NumericIdentity {
	id, ok := asIdentity(u.Object, "status", "identity", "id")
	if !ok {
		return nil
	}
	return []NumericIdentity{id}
}

// sliceIDs reads endpoints[].id of a CiliumEndpointSlice.
func sliceIDs(u *unstructured.Unstructured) []NumericIdentity {
	eps, _, _ := unstructured.NestedSlice(u.Object, "endpoints")
	var out []NumericIdentity
	for _, ep := range eps {
		m, ok := ep.(map[string]any)
		if !ok {
			continue
		}
		if id, ok := asIdentity(m, "id"); ok {
			out = append(out, id)
		}
	}
	return out
}

func asIdentity(obj map[string]any, fields ...string) (NumericIdentity, bool) {
	v, found, err := unstructured.NestedFieldNoCopy(obj, fields...)
	if !found || err != nil {
		return 0, false
	}
	switch n := v.(type) {
	case int64:
		if n > 0 && n <= 0xFFFFFFFF {
			return NumericIdentity(n), true
		}
	case float64:
		if n > 0 && n <= 0xFFFFFFFF && n == float64(int64(n)) {
			return NumericIdentity(n), true
		}
	}
	return 0, false
}

// gcAction is one write of a pass.
type gcAction struct {
	verb string // "mark", "unmark", "delete", "delete-claim", "delete-holder"
	cid  *ciliumv2.CiliumIdentity
	l    *coordinationv1.Lease
}

// RunOnce runs one collection pass now and waits for its writes. It needs Run to be running and
// synced (else it returns [ErrNotSynced]); passes never overlap.
func (g *GC) RunOnce(ctx context.Context) (GCResult, error) {
	if !g.HasSynced() {
		return GCResult{}, ErrNotSynced
	}
	g.passMu.Lock()
	defer g.passMu.Unlock()
	start := g.cfg.Clock.Now()
	res, err := g.pass(ctx)
	outcome := "success"
	if err != nil {
		outcome = "fail"
	}
	g.cfg.Metrics.GCRun(outcome, g.cfg.Clock.Since(start))
	g.cfg.Metrics.GCEntries("alive", res.Alive+res.Young)
	g.cfg.Metrics.GCEntries("marked", res.Marked)
	g.cfg.Metrics.GCEntries("unmarked", res.Unmarked)
	g.cfg.Metrics.GCEntries("deleted", res.Deleted)
	return res, err
}

func (g *GC) pass(ctx context.Context) (GCResult, error) {
	now := g.cfg.Clock.Now()
	var res GCResult
	inUse := g.inUse(now)
	var actions []gcAction

	present := make(map[NumericIdentity]string) // id → label key, for the claims
	for _, obj := range g.ids.GetStore().List() {
		cid, ok := obj.(*ciliumv2.CiliumIdentity)
		if !ok {
			continue
		}
		id, err := ParseNumericIdentity(cid.Name)
		if err != nil || id.IsReserved() || id.Scope() != ScopeGlobal {
			continue
		}
		if lbls, err := LabelsFromSecurityLabels(cid.SecurityLabels); err == nil {
			present[id] = lbls.Key()
		}
		mark := cid.Annotations[HeartbeatAnnotation]
		_, used := inUse[id]
		switch {
		case used:
			res.Alive++
			if mark != "" {
				actions = append(actions, gcAction{verb: "unmark", cid: cid})
			}
		case mark == "":
			if now.Sub(cid.CreationTimestamp.Time) < g.cfg.MinAge {
				res.Young++
				continue
			}
			actions = append(actions, gcAction{verb: "mark", cid: cid})
		default:
			at, err := time.Parse(time.RFC3339Nano, mark)
			if err != nil {
				// A mark we cannot read counts from now: write a fresh one.
				actions = append(actions, gcAction{verb: "mark", cid: cid})
				continue
			}
			if now.Sub(at) >= g.cfg.GracePeriod {
				actions = append(actions, gcAction{verb: "delete", cid: cid})
			} else {
				res.Waiting++
			}
		}
	}

	g.mu.Lock()
	seen := make(map[string]bool)
	for _, obj := range g.leases.GetStore().List() {
		l, ok := obj.(*coordinationv1.Lease)
		if !ok {
			continue
		}
		switch l.Labels[LeaseKindLabel] {
		case leaseKindClaim:
			c, err := claimFromLease(l)
			if err != nil {
				continue
			}
			seen[l.Name] = true
			if present[c.id] == c.key {
				delete(g.orphans, l.Name)
				continue
			}
			since, ok := g.orphans[l.Name]
			if !ok {
				g.orphans[l.Name] = now
				continue
			}
			touched := l.CreationTimestamp.Time
			if l.Spec.RenewTime != nil && l.Spec.RenewTime.After(touched) {
				touched = l.Spec.RenewTime.Time
			}
			if now.Sub(since) >= g.cfg.ClaimGracePeriod && now.Sub(touched) >= g.cfg.ClaimGracePeriod {
				actions = append(actions, gcAction{verb: "delete-claim", l: l})
			}
		case leaseKindHolder:
			if exp, ok := holderExpiry(l); ok && now.Sub(exp) >= g.cfg.ClaimGracePeriod {
				actions = append(actions, gcAction{verb: "delete-holder", l: l})
			}
		}
	}
	for name := range g.orphans {
		if !seen[name] {
			delete(g.orphans, name)
		}
	}
	g.mu.Unlock()

	err := g.execute(ctx, actions, &res)
	return res, err
}

// inUse collects the identities referenced by endpoints, slices, live holder records and
// GCConfig.InUse.
func (g *GC) inUse(now time.Time) map[NumericIdentity]struct{} {
	g.mu.Lock()
	out := make(map[NumericIdentity]struct{}, len(g.refCount))
	for id := range g.refCount {
		out[id] = struct{}{}
	}
	g.mu.Unlock()
	for _, obj := range g.leases.GetStore().List() {
		l, ok := obj.(*coordinationv1.Lease)
		if !ok || l.Labels[LeaseKindLabel] != leaseKindHolder {
			continue
		}
		if exp, ok := holderExpiry(l); !ok || !now.Before(exp) {
			continue
		}
		ids, err := decodeIDs(l.Annotations[HolderIDsAnnotation])
		if err != nil {
			g.log.Warn("unreadable holder record; its identities are kept", "lease", l.Name, "err", err)
			continue
		}
		for _, id := range ids {
			out[id] = struct{}{}
		}
	}
	if g.cfg.InUse != nil {
		for id := range g.cfg.InUse() {
			out[id] = struct{}{}
		}
	}
	return out
}

// holderExpiry is when a holder record stops counting as live.
func holderExpiry(l *coordinationv1.Lease) (time.Time, bool) {
	if l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
		return time.Time{}, false
	}
	return l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second), true
}

// execute runs the actions on Workers goroutines, each write charged to the limiter.
func (g *GC) execute(ctx context.Context, actions []gcAction, res *GCResult) error {
	if len(actions) == 0 {
		return nil
	}
	work := make(chan gcAction)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range min(g.cfg.Workers, len(actions)) {
		wg.Go(func() {
			for act := range work {
				if err := g.limiter.Wait(ctx); err != nil {
					continue // ctx ended: drain
				}
				verb, err := g.do(ctx, act)
				mu.Lock()
				switch {
				case err == nil:
					switch verb {
					case "mark":
						res.Marked++
					case "unmark":
						res.Unmarked++
					case "delete":
						res.Deleted++
					case "delete-claim":
						res.ClaimsDeleted++
					case "delete-holder":
						res.HoldersDeleted++
					}
				case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
					res.Skipped++
					g.cfg.Metrics.Conflict("update")
				default:
					if len(errs) < 10 {
						errs = append(errs, err)
					}
				}
				mu.Unlock()
			}
		})
	}
	for _, act := range actions {
		work <- act
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.Join(errs...)
}

func (g *GC) do(ctx context.Context, act gcAction) (string, error) {
	ids := g.client.CiliumIdentities()
	switch act.verb {
	case "mark", "unmark":
		c := act.cid.DeepCopy()
		if act.verb == "mark" {
			if c.Annotations == nil {
				c.Annotations = map[string]string{}
			}
			c.Annotations[HeartbeatAnnotation] = g.cfg.Clock.Now().UTC().Format(time.RFC3339Nano)
		} else {
			delete(c.Annotations, HeartbeatAnnotation)
		}
		_, err := ids.Update(ctx, c, metav1.UpdateOptions{})
		g.cfg.Metrics.Write("update", "ciliumidentities")
		if err != nil {
			return act.verb, fmt.Errorf("%s identity %s: %w", act.verb, c.Name, err)
		}
		return act.verb, nil
	case "delete":
		uid, rv := act.cid.UID, act.cid.ResourceVersion
		err := ids.Delete(ctx, act.cid.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}})
		g.cfg.Metrics.Write("delete", "ciliumidentities")
		if err != nil {
			return act.verb, fmt.Errorf("delete identity %s: %w", act.cid.Name, err)
		}
		g.log.Debug("deleted unused identity", "identity", act.cid.Name)
		return act.verb, nil
	default: // delete-claim, delete-holder
		uid, rv := act.l.UID, act.l.ResourceVersion
		err := g.client.Kube.CoordinationV1().Leases(act.l.Namespace).Delete(ctx, act.l.Name,
			metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}})
		g.cfg.Metrics.Write("delete", "leases")
		if err != nil {
			return act.verb, fmt.Errorf("%s %s: %w", strings.TrimPrefix(act.verb, "delete-"), act.l.Name, err)
		}
		return act.verb, nil
	}
}
