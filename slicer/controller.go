package slicer

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/ceskit/ceskit/internal/discovery"
	"github.com/ceskit/ceskit/internal/retry"
	"github.com/ceskit/ceskit/slicer/ciliumv2"
	"github.com/ceskit/ceskit/slicer/ciliumv2alpha1"
)

// Controller is the operator-side CiliumEndpointSlice controller. It watches endpoints
// (CiliumEndpoints, or Pods in "slim" mode), Namespaces, Nodes and the slices themselves, and keeps
// every live endpoint in exactly one slice of its namespace, at most [Config.MaxEndpointsPerSlice]
// per slice, with as few API writes as it can:
//
//   - placement is first come, first served into the fullest slice of the namespace that has
//     room, found through a per-namespace heap instead of a scan of all slices;
//   - a change to an idle slice is written at once, and bursts coalesce in an adaptive window;
//   - the write limiter is charged per API write; echoes of the controller's own writes are
//     recognised by generation and never reconciled;
//   - writes start from the newest object known, never from a stale cache; a 409 re-reads and
//     re-applies at once, and a failing slice is retried with capped backoff for ever;
//   - on start it adopts the slices that exist and writes nothing when they are right;
//   - sparse namespaces are compacted on the periodic resync; empty slices are deleted;
//   - an endpoint that moves between slices stays listed in the old one until the new one is
//     written, so it is never missing from every slice.
//
// Methods are safe for concurrent use. Run may be called once.
type Controller struct {
	client  *Client
	cfg     Config
	log     *slog.Logger
	metrics Metrics

	endpoints cache.SharedIndexInformer
	slices    cache.SharedIndexInformer
	nss       cache.SharedIndexInformer
	nodes     cache.SharedIndexInformer

	queue   workqueue.TypedRateLimitingInterface[string]
	fq      *fairQueue
	limiter *writeLimiter
	prio    sync.Map // slice name → bool: served from the priority queue

	resyncSignal chan struct{}
	beat         chan struct{} // renew the heartbeat lease now: the state changed
	started      atomic.Bool

	mu          sync.Mutex
	m           *model
	synced      bool
	prioNS      map[string]bool
	resyncToken map[string]string // namespace → last seen ResyncAnnotation value
	resyncWant  map[string]bool   // namespaces waiting for a manual resync
	// writing: this controller holds the single-writer guard (the heartbeat Lease); otherWriter
	// is the identity holding it while this one stands by.
	writing     bool
	otherWriter string
	renewedAt   time.Time       // last successful renewal of the writer guard
	pending     map[string]bool // endpoints without an identity yet
	invalid     map[string]*EndpointError
	diffs       map[string]SliceDiff
	deletedUIDs map[types.UID]time.Time // slices this controller deleted, to ignore their late events
	consecutive int                     // consecutive failed syncs, controller-wide
	failing     map[string]bool         // slices with ErrorThreshold or more consecutive failures
	degraded    bool
	degradedWhy string
	converged   bool // every slice written once since the start (heartbeat state ready)
	lastErr     error
	lastErrAt   time.Time
	counts      counters
}

type counters struct {
	creates, updates, deletes int64
	conflicts, echoes, noops  int64
	syncs, failures, repaired int64
	bytes                     int64
}

// New builds a Controller. It validates cfg and fills its defaults; nothing runs until [Controller.Run].
func New(client *Client, cfg Config) (*Controller, error) {
	if client == nil {
		return nil, fmt.Errorf("new slicer controller: client is nil")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Controller{
		client:       client,
		cfg:          cfg,
		log:          cfg.Logger,
		metrics:      cfg.Metrics,
		resyncSignal: make(chan struct{}, 1),
		beat:         make(chan struct{}, 1),
		prioNS:       map[string]bool{},
		resyncToken:  map[string]string{},
		resyncWant:   map[string]bool{},
		writing:      cfg.HeartbeatLease == "-",
		pending:      map[string]bool{},
		invalid:      map[string]*EndpointError{},
		diffs:        map[string]SliceDiff{},
		deletedUIDs:  map[types.UID]time.Time{},
		failing:      map[string]bool{},
		limiter:      newWriteLimiter(cfg.Clock, cfg.RateLimits),
	}
	for _, ns := range cfg.PriorityNamespaces {
		c.prioNS[ns] = true
	}
	c.m = newModel(cfg.MaxEndpointsPerSlice, cfg.GroupByIdentity, rand.Uint64(), c.markDirty)

	c.fq = &fairQueue{classify: c.isPrioritySlice, weight: cfg.PriorityWeight, clock: cfg.Clock, metrics: cfg.Metrics}
	base := workqueue.NewTypedWithConfig(workqueue.TypedQueueConfig[string]{Name: "ces_slices", Clock: cfg.Clock, Queue: c.fq})
	delaying := workqueue.NewTypedDelayingQueueWithConfig(workqueue.TypedDelayingQueueConfig[string]{Name: "ces_slices", Clock: cfg.Clock, Queue: base})
	c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](cfg.RetryBaseDelay, cfg.RetryMaxDelay),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "ces_slices", Clock: cfg.Clock, DelayingQueue: delaying})

	if cfg.Source == SourcePods {
		pods := client.Kube.CoreV1().Pods("")
		c.endpoints = newInformer(&corev1.Pod{}, pods.List, pods.Watch)
	} else {
		c.endpoints = client.NewEndpointInformer("")
	}
	c.slices = client.NewSliceInformer()
	nss := client.Kube.CoreV1().Namespaces()
	c.nss = newInformer(&corev1.Namespace{}, nss.List, nss.Watch)
	nodes := client.Kube.CoreV1().Nodes()
	c.nodes = newInformer(&corev1.Node{}, nodes.List, nodes.Watch)

	handlers := []struct {
		inf cache.SharedIndexInformer
		fn  func(key string, obj any, deleted bool)
	}{
		{c.endpoints, func(key string, _ any, _ bool) { c.onEndpoint(key) }},
		{c.slices, c.onSlice},
		{c.nss, c.onNamespace},
		{c.nodes, func(string, any, bool) { c.limiter.setNodes(len(c.nodes.GetStore().ListKeys())) }},
	}
	for _, h := range handlers {
		fn := h.fn
		call := func(obj any, deleted bool) {
			key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
			if err == nil {
				fn(key, obj, deleted)
			}
		}
		if _, err := h.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { call(obj, false) },
			UpdateFunc: func(_, obj any) { call(obj, false) },
			DeleteFunc: func(obj any) { call(obj, true) },
		}); err != nil {
			return nil, fmt.Errorf("new slicer controller: add event handler: %w", err)
		}
	}
	return c, nil
}

func newInformer[T runtime.Object, L runtime.Object](
	example T,
	list func(context.Context, metav1.ListOptions) (L, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error),
) cache.SharedIndexInformer {
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return list(ctx, o)
		},
		WatchFuncWithContext: watchFn,
	}
	return cache.NewSharedIndexInformer(lw, example, 0, cache.Indexers{})
}

// Run starts the informers, waits for their caches, adopts the existing slices and then keeps
// the slices right, renewing the heartbeat Lease, until ctx ends. It returns after every
// goroutine it started has stopped, or at once with an error wrapping [ErrCRDMissing] when the
// API server does not serve the resources it watches. A discovery read that fails otherwise (the
// API server unreachable or answering 5xx) is retried, 100ms doubling to 5s, until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return errors.New("slicer controller: Run called twice")
	}
	if err := retry.Until(ctx, c.log, "CRD discovery", retry.DefaultBackoff, c.checkServed, retry.Is(ErrCRDMissing)); err != nil {
		c.queue.ShutDown()
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer c.queue.ShutDown()
	infCtx, stopInformers := context.WithCancel(ctx)
	defer stopInformers()
	for _, inf := range []cache.SharedIndexInformer{c.endpoints, c.slices, c.nss, c.nodes} {
		wg.Go(func() { inf.RunWithContext(infCtx) })
	}
	if !cache.WaitForCacheSync(ctx.Done(), c.endpoints.HasSynced, c.slices.HasSynced, c.nss.HasSynced, c.nodes.HasSynced) {
		return ctx.Err()
	}
	c.limiter.setNodes(len(c.nodes.GetStore().ListKeys()))
	c.seed()

	for range c.cfg.Workers {
		wg.Go(func() {
			for c.processNext(ctx) {
			}
		})
	}
	wg.Go(func() { c.resyncLoop(ctx) })
	wg.Go(func() { c.heartbeat(ctx) })
	<-ctx.Done()
	return nil
}

// checkServed fails with ErrCRDMissing when the API server does not serve a resource the
// controller watches: informers would otherwise wait for ever.
func (c *Controller) checkServed(ctx context.Context) error {
	need := []schema.GroupVersionResource{ciliumv2alpha1.SchemeGroupVersion.WithResource("ciliumendpointslices")}
	if c.cfg.Source == SourceCiliumEndpoints {
		need = append(need, ciliumv2.SchemeGroupVersion.WithResource("ciliumendpoints"))
	}
	var missing []string
	for _, gvr := range need {
		ok, err := discovery.Served(c.client.Kube.Discovery(), gvr.GroupVersion().String(), gvr.Resource)
		if err != nil {
			return err
		}
		if !ok {
			missing = append(missing, gvr.Resource+"."+gvr.GroupVersion().String())
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s (install them with slicer.InstallCRDs, or run where Cilium is installed)", ErrCRDMissing, strings.Join(missing, ", "))
	}
	return ctx.Err()
}

// seed adopts the existing slices and places every live endpoint.
func (c *Controller) seed() {
	c.mu.Lock()
	defer c.mu.Unlock()
	live := map[string]ciliumv2alpha1.CoreCiliumEndpoint{}
	liveNS := map[string]string{}
	var existing []*ciliumv2alpha1.CiliumEndpointSlice
	for _, obj := range c.slices.GetStore().List() {
		existing = append(existing, obj.(*ciliumv2alpha1.CiliumEndpointSlice))
	}
	for _, obj := range c.endpoints.GetStore().List() {
		key, core, ok := c.convert(obj)
		if ok {
			live[key], liveNS[key] = core, namespaceOf(obj)
		}
	}
	// An endpoint that is invalid now keeps the entry a slice already has for it.
	if len(c.invalid) > 0 {
		for _, ces := range existing {
			for _, ep := range ces.Endpoints {
				key := ces.Namespace + "/" + ep.Name
				if _, seen := live[key]; !seen && c.invalid[key] != nil {
					live[key], liveNS[key] = *ep.DeepCopy(), ces.Namespace
				}
			}
		}
	}
	for _, obj := range c.nss.GetStore().List() {
		ns := obj.(*corev1.Namespace)
		c.prioNS[ns.Name] = c.nsIsPriority(ns)
		c.resyncToken[ns.Name] = ns.Annotations[ResyncAnnotation]
	}
	c.m.adopt(existing, live, liveNS)
	c.synced = true
	c.log.Info("slicer synced", "slices", len(c.m.slices), "endpoints", len(c.m.endpoints), "adopted", len(existing))
	c.publishSliceCounts()
}

func namespaceOf(obj any) string {
	if m, ok := obj.(metav1.Object); ok {
		return m.GetNamespace()
	}
	return ""
}

// convert turns a source object into a slice entry, recording invalid and pending endpoints.
// It must be called with c.mu held.
func (c *Controller) convert(obj any) (key string, core ciliumv2alpha1.CoreCiliumEndpoint, ok bool) {
	var ready bool
	var err error
	switch o := obj.(type) {
	case *ciliumv2.CiliumEndpoint:
		key = o.Namespace + "/" + o.Name
		core, ready, err = CoreEndpointFromCEP(o)
	case *corev1.Pod:
		key = o.Namespace + "/" + o.Name
		core, ready, err = CoreEndpointFromPod(o, c.cfg.IdentityFunc)
	default:
		return "", core, false
	}
	var epErr *EndpointError
	if errors.As(err, &epErr) {
		if prev := c.invalid[key]; prev == nil || prev.Error() != epErr.Error() {
			c.log.Warn("endpoint left as it was", "endpoint", key, "error", err)
		}
		c.invalid[key] = epErr
		return key, core, false
	}
	delete(c.invalid, key)
	if !ready {
		c.pending[key] = true
		return key, core, false
	}
	delete(c.pending, key)
	return key, core, true
}

func (c *Controller) onEndpoint(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.synced {
		return
	}
	c.syncEndpointLocked(key)
}

func (c *Controller) syncEndpointLocked(key string) {
	obj, exists, err := c.endpoints.GetStore().GetByKey(key)
	if err != nil || !exists {
		delete(c.invalid, key)
		delete(c.pending, key)
		c.m.remove(key)
		return
	}
	_, core, ok := c.convert(obj)
	if ok {
		c.m.upsert(key, namespaceOf(obj), core)
		return
	}
	if c.invalid[key] == nil {
		// Not ready (no identity, no IP, finished): in no slice.
		c.m.remove(key)
	}
	// Invalid: keep the last valid state, if any, where it is.
}

// markDirty is the model's callback for a slice whose content may have changed. c.mu is held.
func (c *Controller) markDirty(s *slice) {
	now := c.cfg.Clock.Now()
	if s.dirtySince.IsZero() {
		s.dirtySince = now
	}
	c.prio.Store(s.name, c.prioNS[s.ns])
	delay := c.cfg.BatchMinDelay
	if s.window > 0 {
		if now.Sub(s.lastWrite) >= c.cfg.BatchMaxDelay {
			s.window = 0
		} else if d := s.lastWrite.Add(s.window).Sub(now); d > delay {
			delay = d
		}
	}
	if delay <= 0 {
		c.queue.Add(s.name)
	} else {
		c.queue.AddAfter(s.name, delay)
	}
}

func (c *Controller) isPrioritySlice(name string) bool {
	v, _ := c.prio.Load(name)
	b, _ := v.(bool)
	return b
}

func (c *Controller) nsIsPriority(ns *corev1.Namespace) bool {
	return ns.Annotations[PriorityAnnotation] == PriorityValue || slices.Contains(c.cfg.PriorityNamespaces, ns.Name)
}

func (c *Controller) onNamespace(key string, obj any, deleted bool) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok || deleted {
		c.mu.Lock()
		// Its endpoints and slices go with their own events.
		delete(c.resyncToken, key)
		if !slices.Contains(c.cfg.PriorityNamespaces, key) {
			delete(c.prioNS, key)
		}
		c.mu.Unlock()
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.synced {
		return
	}
	if prio := c.nsIsPriority(ns); prio != c.prioNS[key] {
		c.prioNS[key] = prio
		for _, s := range c.m.slices {
			if s.ns == key {
				c.prio.Store(s.name, prio)
			}
		}
		c.log.Info("namespace priority changed", "namespace", key, "priority", prio)
	}
	token := ns.Annotations[ResyncAnnotation]
	prev, seen := c.resyncToken[key]
	c.resyncToken[key] = token
	if token != "" && (!seen || token != prev) {
		c.resyncWant[key] = true
		select {
		case c.resyncSignal <- struct{}{}:
		default:
		}
	}
}

func (c *Controller) onSlice(name string, obj any, deleted bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.synced {
		return
	}
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	ces, ok := obj.(*ciliumv2alpha1.CiliumEndpointSlice)
	if !ok {
		return
	}
	s := c.m.slices[name]
	if _, ours := c.deletedUIDs[ces.UID]; ours {
		if deleted {
			delete(c.deletedUIDs, ces.UID)
		}
		c.echo()
		return
	}
	if deleted {
		if s != nil && s.observed != nil && s.observed.UID == ces.UID {
			s.observed = nil
			if !c.m.inSync(s) {
				c.markDirty(s)
			}
		}
		return
	}
	if s == nil {
		c.foreignSlice(ces)
		return
	}
	if string(ces.UID) == s.ownUID && ces.Generation <= s.ownGeneration {
		c.echo()
		return
	}
	if s.inflight != nil && sameContent(s.inflight, ces) &&
		(s.observed == nil || s.observed.UID != ces.UID || ces.Generation > s.observed.Generation) {
		// The echo of a write that has not returned yet.
		s.observed = ces
		c.echo()
		return
	}
	if s.observed != nil && s.observed.UID == ces.UID && ces.Generation < s.observed.Generation {
		return // older than what this controller already knows
	}
	s.observed = ces
	if c.cfg.Shadow {
		c.shadowFollow(s)
	}
	if !c.m.inSync(s) {
		c.markDirty(s)
	}
}

// requeueOutOfSync queues every slice whose known content differs from the model: what was
// held back while this controller did not hold the writer guard. The informers kept watching
// meanwhile, so the cache is current and no re-list is needed (a re-list racing the first writes
// would also hide their echoes).
func (c *Controller) requeueOutOfSync() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.synced {
		return // seeding queues what differs
	}
	for _, s := range c.m.slices {
		if !c.m.inSync(s) {
			c.markDirty(s)
		}
	}
}

func (c *Controller) echo() {
	c.counts.echoes++
	c.metrics.EchoSuppressed()
}

// foreignSlice takes in a slice this controller did not create. In shadow mode it is adopted as
// the other writer's placement; otherwise its entries duplicate endpoints placed elsewhere and it
// is deleted. c.mu is held.
func (c *Controller) foreignSlice(ces *ciliumv2alpha1.CiliumEndpointSlice) {
	gk := c.m.groupKey(ces.Namespace, 0)
	if c.cfg.GroupByIdentity && len(ces.Endpoints) > 0 {
		gk = c.m.groupKey(ces.Namespace, ces.Endpoints[0].IdentityID)
	}
	s := c.m.newSlice(c.m.group(gk, ces.Namespace), ces.Name)
	s.observed = ces
	if c.cfg.Shadow {
		c.shadowFollow(s)
	} else {
		c.log.Info("slice not placed by this controller", "slice", ces.Name, "namespace", ces.Namespace, "endpoints", len(ces.Endpoints))
	}
	if !c.m.inSync(s) {
		c.markDirty(s)
	}
}

// shadowFollow moves endpoints that the observed slice lists, and that no other observed slice
// holds where the model put them, into s: in shadow mode the other writer's placement wins, so
// the diff shows only real disagreements. c.mu is held.
func (c *Controller) shadowFollow(s *slice) {
	for _, ep := range s.observed.Endpoints {
		e := c.m.endpoints[s.ns+"/"+ep.Name]
		if e == nil || e.slice == s || e.group != s.group.key || len(s.members) >= c.m.max {
			continue
		}
		if e.slice != nil && e.slice.observed != nil && slices.ContainsFunc(e.slice.observed.Endpoints, func(o ciliumv2alpha1.CoreCiliumEndpoint) bool { return o.Name == ep.Name }) {
			continue
		}
		if e.slice != nil {
			c.m.drop(e.slice, e)
		} else {
			s.group.size++
		}
		e.slice = s
		c.m.add(s, e)
	}
}

func (c *Controller) processNext(ctx context.Context) bool {
	name, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	defer c.queue.Done(name)
	err := c.sync(ctx, name)
	if ctx.Err() != nil {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.m.slices[name]
	if err == nil {
		c.queue.Forget(name)
		c.counts.syncs++
		c.consecutive = 0
		if s != nil {
			s.failures = 0
		}
		delete(c.failing, name)
		c.evaluateDegraded()
		return true
	}
	c.counts.failures++
	c.consecutive++
	c.lastErr, c.lastErrAt = err, c.cfg.Clock.Now()
	if s != nil {
		s.failures++
		if s.failures >= c.cfg.ErrorThreshold {
			c.failing[name] = true
		}
	}
	c.metrics.Sync("fail", "transient")
	c.log.Warn("slice sync failed; will retry", "slice", name, "error", err, "retries", c.queue.NumRequeues(name))
	c.evaluateDegraded()
	c.queue.AddRateLimited(name)
	return true
}

// evaluateDegraded sets Degraded when the controller as a whole, or any one slice, has failed
// ErrorThreshold times in a row (tracked in c.failing, so this never scans the slices). c.mu is
// held.
func (c *Controller) evaluateDegraded() {
	why := ""
	if c.consecutive >= c.cfg.ErrorThreshold {
		why = fmt.Sprintf("%d consecutive failed syncs", c.consecutive)
	} else if len(c.failing) > 0 {
		name := slices.Min(slices.Collect(maps.Keys(c.failing)))
		if s := c.m.slices[name]; s != nil {
			why = fmt.Sprintf("slice %s failed %d times in a row", name, s.failures)
		} else {
			why = fmt.Sprintf("slice %s failed %d times in a row", name, c.cfg.ErrorThreshold)
		}
	}
	if (why != "") == c.degraded {
		c.degradedWhy = cmp.Or(why, c.degradedWhy)
		return
	}
	c.degraded = why != ""
	c.metrics.Degraded(c.degraded)
	select {
	case c.beat <- struct{}{}:
	default:
	}
	if c.degraded {
		c.degradedWhy = why
		c.log.Error("slicer degraded", "reason", why, "error", c.lastErr)
	} else {
		c.degradedWhy = ""
		c.log.Info("slicer recovered")
	}
}

// sync brings one slice in line with the model: nothing when it already is, a diff in shadow
// mode, else one API write (more on conflicts).
func (c *Controller) sync(ctx context.Context, name string) error {
	c.mu.Lock()
	s := c.m.slices[name]
	if s == nil {
		c.mu.Unlock()
		return nil
	}
	if c.m.inSync(s) {
		c.counts.noops++
		c.metrics.Sync("success", "")
		s.dirtySince = time.Time{}
		delete(c.diffs, name)
		if s.observed == nil {
			c.m.forget(s)
			c.prio.Delete(name)
		}
		c.mu.Unlock()
		return nil
	}
	if c.cfg.Shadow || !c.mayWrite() {
		// Shadow mode, or standing by while another controller holds the writer guard: record
		// the difference; taking the guard re-lists and queues what differs then.
		c.diffs[name] = diffSlices(c.m.desired(s), s.observed)
		c.metrics.Sync("success", "")
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if err := c.limiter.wait(ctx); err != nil {
			return err
		}
		done, err := c.write(ctx, name)
		if done || err == nil {
			return err
		}
		if attempt >= c.cfg.ConflictRetries {
			return err
		}
		// Conflict: re-read the slice and apply again at once.
		fresh, gerr := c.client.CiliumEndpointSlices().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(gerr) {
			fresh, gerr = nil, nil
		}
		if gerr != nil {
			return fmt.Errorf("re-read slice %s after conflict: %w", name, gerr)
		}
		c.mu.Lock()
		if s := c.m.slices[name]; s != nil {
			s.observed = fresh
		}
		c.mu.Unlock()
	}
}

// write makes one API write for the slice. done=false with an error means a conflict worth
// retrying after a re-read.
func (c *Controller) write(ctx context.Context, name string) (done bool, err error) {
	c.mu.Lock()
	s := c.m.slices[name]
	if s == nil || c.m.inSync(s) {
		c.mu.Unlock()
		return true, nil
	}
	want := c.m.desired(s)
	base := s.observed
	since := s.dirtySince
	s.inflight = want
	snapAt := c.cfg.Clock.Now()
	members := make([]string, 0, len(s.members))
	for key := range s.members {
		members = append(members, key)
	}
	c.mu.Unlock()

	api := c.client.CiliumEndpointSlices()
	var got *ciliumv2alpha1.CiliumEndpointSlice
	var verb string
	var size int
	switch {
	case want == nil:
		verb = "delete"
		uid := base.UID
		err = api.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if apierrors.IsNotFound(err) {
			err = nil
		}
	case base == nil:
		verb = "create"
		size = objectSize(want)
		got, err = api.Create(ctx, want, metav1.CreateOptions{})
	default:
		verb = "update"
		obj := base.DeepCopy()
		obj.Namespace, obj.Endpoints = want.Namespace, want.Endpoints
		size = objectSize(obj)
		got, err = api.Update(ctx, obj, metav1.UpdateOptions{})
	}
	if err != nil {
		c.mu.Lock()
		if s := c.m.slices[name]; s != nil {
			s.inflight = nil
		}
		c.mu.Unlock()
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) || (verb == "update" && apierrors.IsNotFound(err)) {
			c.mu.Lock()
			c.counts.conflicts++
			c.mu.Unlock()
			c.metrics.Conflict()
			return false, fmt.Errorf("%s slice %s: %w", verb, name, err)
		}
		return true, fmt.Errorf("%s slice %s: %w", verb, name, err)
	}

	now := c.cfg.Clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.metrics.Write(verb, size)
	c.counts.bytes += int64(size)
	inserted, removed := changeCounts(want, base)
	switch verb {
	case "create":
		c.counts.creates++
	case "update":
		c.counts.updates++
	case "delete":
		c.counts.deletes++
		c.deletedUIDs[base.UID] = now
	}
	c.metrics.Sync("success", "")
	c.metrics.EndpointChanges("cepinserted", inserted)
	c.metrics.EndpointChanges("cepremoved", removed)
	if want != nil {
		c.metrics.EndpointsPerSlice(len(want.Endpoints))
	}
	if !since.IsZero() {
		c.metrics.Propagation(now.Sub(since))
	}
	s = c.m.slices[name]
	if s == nil {
		return true, nil
	}
	s.inflight = nil
	s.observed = got
	if got != nil {
		s.ownUID, s.ownGeneration = string(got.UID), got.Generation
	}
	// Adapt the coalescing window: a slice written again soon after its last write doubles it.
	if !s.lastWrite.IsZero() && !since.IsZero() && since.Sub(s.lastWrite) < c.cfg.BatchMaxDelay {
		s.window = min(max(2*s.window, 10*time.Millisecond, c.cfg.BatchMinDelay), c.cfg.BatchMaxDelay)
	} else {
		s.window = 0
	}
	s.lastWrite = now
	c.m.written(s, members)
	if c.m.inSync(s) {
		s.dirtySince = time.Time{}
	} else {
		s.dirtySince = snapAt
	}
	if got == nil {
		c.m.forget(s)
		c.prio.Delete(name)
	}
	c.publishSliceCounts()
	return true, nil
}

func objectSize(o *ciliumv2alpha1.CiliumEndpointSlice) int {
	b, err := json.Marshal(o)
	if err != nil {
		return 0
	}
	return len(b)
}

// changeCounts counts the endpoints want inserts into and removes from base (by name).
func changeCounts(want, base *ciliumv2alpha1.CiliumEndpointSlice) (inserted, removed int) {
	d := diffSlices(want, base)
	return len(d.Added), len(d.Removed)
}

// publishSliceCounts reports desired (perfectly packed) and actual slice counts. c.mu is held.
func (c *Controller) publishSliceCounts() {
	desired := 0
	for _, g := range c.m.groups {
		desired += (g.size + c.m.max - 1) / c.m.max
	}
	c.metrics.Slices(desired, len(c.m.slices))
}

// resyncLoop runs the jittered periodic anti-entropy pass and manual resyncs asked for through
// the namespace annotation.
func (c *Controller) resyncLoop(ctx context.Context) {
	next := func() time.Duration {
		return time.Duration(float64(c.cfg.ResyncPeriod) * (0.9 + 0.2*rand.Float64()))
	}
	t := c.cfg.Clock.NewTimer(next())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			c.antiEntropy(ctx)
			t.Reset(next())
		case <-c.resyncSignal:
			c.mu.Lock()
			want := make([]string, 0, len(c.resyncWant))
			for ns := range c.resyncWant {
				want = append(want, ns)
			}
			clear(c.resyncWant)
			c.mu.Unlock()
			slices.Sort(want)
			for _, ns := range want {
				n, err := c.Resync(ctx, ns)
				if err != nil {
					c.log.Warn("manual resync failed", "namespace", ns, "error", err)
					continue
				}
				c.log.Info("manual resync", "namespace", ns, "trigger", "annotation", "repaired", n)
			}
		}
	}
}

// antiEntropy is the periodic pass: it re-lists the slices from the API server (as [Resync]
// does), so that a slice the informer never saw, because it was written and then deleted by
// someone else while the slice watch was down, is noticed and rewritten; the informer's re-list
// after a watch gap cannot report a deletion of an object it never held. When the list fails it
// falls back to comparing with the cache.
func (c *Controller) antiEntropy(ctx context.Context) {
	c.mu.Lock()
	now := c.cfg.Clock.Now()
	for uid, at := range c.deletedUIDs {
		if now.Sub(at) > 10*time.Minute {
			delete(c.deletedUIDs, uid)
		}
	}
	c.mu.Unlock()
	n, err := c.Resync(ctx, "")
	if err != nil {
		c.log.Warn("anti-entropy re-list failed; comparing with the cache", "error", err)
		c.periodicResync()
		return
	}
	if n > 0 {
		c.log.Info("anti-entropy pass repaired slices", "slices", n)
	}
}

// periodicResync re-evaluates pending endpoints, compacts sparse groups and queues every slice
// whose newest known content differs from the model, comparing with the cache only.
func (c *Controller) periodicResync() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key := range c.pending {
		c.syncEndpointLocked(key)
	}
	now := c.cfg.Clock.Now()
	for uid, at := range c.deletedUIDs {
		if now.Sub(at) > 10*time.Minute {
			delete(c.deletedUIDs, uid)
		}
	}
	if c.cfg.CompactionThreshold > 0 {
		if n := c.m.compact(c.cfg.CompactionThreshold, nil); n > 0 {
			c.log.Info("compacting sparse slices", "slices", n)
		}
	}
	drift := 0
	for _, s := range c.m.slices {
		if !c.m.inSync(s) {
			drift++
			c.markDirty(s)
		}
	}
	c.counts.repaired += int64(drift)
	c.publishSliceCounts()
}

// Resync re-reads the slices from the API server (not the cache) and the endpoints of namespace
// from the cache, compacts the namespace when it is sparse, and queues every slice that differs
// from what it should be. namespace "" means all. It returns how many slices were out of sync.
// This is the manual override of FR2.3; setting the [ResyncAnnotation] on a Namespace does the
// same without code.
func (c *Controller) Resync(ctx context.Context, namespace string) (int, error) {
	c.mu.Lock()
	synced := c.synced
	c.mu.Unlock()
	if !synced {
		return 0, ErrNotSynced
	}
	list, err := c.client.CiliumEndpointSlices().List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, fmt.Errorf("resync %q: list slices: %w", namespace, err)
	}
	match := func(ns string) bool { return namespace == "" || ns == namespace }
	c.mu.Lock()
	defer c.mu.Unlock()
	listed := map[string]bool{}
	for i := range list.Items {
		obj := &list.Items[i]
		if !match(obj.Namespace) {
			continue
		}
		listed[obj.Name] = true
		if _, ours := c.deletedUIDs[obj.UID]; ours {
			continue
		}
		if s := c.m.slices[obj.Name]; s != nil {
			s.observed = obj
		} else {
			c.foreignSlice(obj)
		}
	}
	for _, s := range c.m.slices {
		if match(s.ns) && !listed[s.name] {
			s.observed = nil
		}
	}
	for _, key := range c.endpoints.GetStore().ListKeys() {
		if ns, _, _ := cache.SplitMetaNamespaceKey(key); match(ns) {
			c.syncEndpointLocked(key)
		}
	}
	for key, e := range c.m.endpoints {
		if _, exists, _ := c.endpoints.GetStore().GetByKey(key); !exists && match(e.ns) {
			c.syncEndpointLocked(key)
		}
	}
	if c.cfg.CompactionThreshold > 0 {
		c.m.compact(c.cfg.CompactionThreshold, func(g *group) bool { return match(g.ns) })
	}
	drift := 0
	for _, s := range c.m.slices {
		if match(s.ns) && !c.m.inSync(s) {
			drift++
			c.markDirty(s)
		}
	}
	c.counts.repaired += int64(drift)
	c.publishSliceCounts()
	return drift, nil
}
