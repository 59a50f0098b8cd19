package slicer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/ceskit/ceskit/internal/discovery"
	"github.com/ceskit/ceskit/slicer/ciliumv2"
	"github.com/ceskit/ceskit/slicer/ciliumv2alpha1"
)

// SourceSlices is the [Watcher]'s normal source: CiliumEndpointSlices. Its fallback is
// [SourceCiliumEndpoints].
const SourceSlices Source = "ciliumendpointslices"

// Endpoint is a remote endpoint as a node sees it: the slice entry plus its namespace.
type Endpoint struct {
	Namespace string `json:"namespace"`
	ciliumv2alpha1.CoreCiliumEndpoint
}

// Key returns "namespace/name".
func (e *Endpoint) Key() string { return e.Namespace + "/" + e.Name }

// IPs returns the endpoint's valid addresses. An address with a zone ("fe80::1%eth0") is no pod
// address (no packet carries one) and is left out.
func (e *Endpoint) IPs() []netip.Addr {
	if e.Networking == nil {
		return nil
	}
	var out []netip.Addr
	for _, p := range e.Networking.Addressing {
		if p == nil {
			continue
		}
		for _, s := range []string{p.IPV4, p.IPV6} {
			if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
				out = append(out, a)
			}
		}
	}
	return out
}

// Handler receives a [Watcher]'s endpoint events one at a time, in order, from one goroutine,
// after the Watcher's cache reflects them. Handlers may call the Watcher's lookups.
type Handler interface {
	// EndpointUpdated reports a new endpoint (old == nil) or a changed one.
	EndpointUpdated(old, new *Endpoint)
	// EndpointDeleted reports an endpoint that is gone.
	EndpointDeleted(old *Endpoint)
}

// HandlerFuncs adapts functions to a [Handler]; nil functions are skipped.
type HandlerFuncs struct {
	Updated func(old, new *Endpoint)
	Deleted func(old *Endpoint)
}

// EndpointUpdated calls f.Updated.
func (f HandlerFuncs) EndpointUpdated(old, new *Endpoint) {
	if f.Updated != nil {
		f.Updated(old, new)
	}
}

// EndpointDeleted calls f.Deleted.
func (f HandlerFuncs) EndpointDeleted(old *Endpoint) {
	if f.Deleted != nil {
		f.Deleted(old)
	}
}

// WatcherMetrics receives a [Watcher]'s measurements. Implementations must be safe for
// concurrent use; [NopWatcherMetrics] discards them.
type WatcherMetrics interface {
	// SourceInUse reports the source now in use ("ciliumendpointslices" or "ciliumendpoints").
	SourceInUse(source string)
	// SourceSwitch counts a switch of source with its reason.
	SourceSwitch(from, to, reason string)
	// EndpointEvent counts an event delivered to the handler: "add", "update" or "delete".
	EndpointEvent(kind string)
	// Drift counts endpoints the consistency check found wrong and repaired.
	Drift(n int)
}

// NopWatcherMetrics discards every measurement.
type NopWatcherMetrics struct{}

// SourceInUse does nothing.
func (NopWatcherMetrics) SourceInUse(string) {}

// SourceSwitch does nothing.
func (NopWatcherMetrics) SourceSwitch(string, string, string) {}

// EndpointEvent does nothing.
func (NopWatcherMetrics) EndpointEvent(string) {}

// Drift does nothing.
func (NopWatcherMetrics) Drift(int) {}

// WatcherConfig holds a [Watcher]'s settings. The zero value is valid.
type WatcherConfig struct {
	// Source pins the watcher to one source: [SourceCiliumEndpoints] for clusters that do not
	// use slices (per-endpoint management, FR5.1), or [SourceSlices] with no fallback. Default
	// "": slices, falling back to CiliumEndpoints when they are unavailable.
	Source Source

	// HeartbeatLease is the "namespace/name" of the [Controller]'s heartbeat Lease. When it says
	// Degraded or stopped, is missing, or was not renewed for StaleAfter, the slices count as
	// unavailable and the watcher falls back to CiliumEndpoints. Default
	// [DefaultHeartbeatLease]; "-" disables the check (e.g. on managed AKS, where Cilium's
	// operator owns the slices and publishes no such lease).
	HeartbeatLease string
	// StaleAfter bounds how old the heartbeat may be. Default 30s; valid 1s–1h.
	StaleAfter time.Duration
	// CheckInterval is how often the slices' availability is checked. Default 5s; valid
	// 100ms–5m.
	CheckInterval time.Duration
	// ReadErrorThreshold is how many checks in a row must fail to read the slices' availability
	// (an error from discovery, or reading the CRD or the heartbeat Lease, other than NotFound)
	// before the watcher falls back to CiliumEndpoints. A check that reads a definite answer (CRD
	// absent or being deleted; heartbeat missing, not ready or stale) switches at once, and any
	// successful check resets the count. While the count is below the threshold, deletes due
	// after DeleteGrace are held, since the source's health is unknown. Default 3; valid 1–100
	// (1: fall back on the first failed read).
	ReadErrorThreshold int
	// DeleteGrace is how long an endpoint listed in no slice is kept before it is reported
	// deleted, so that a move between slices is an update; before a delete is reported the
	// source's health is checked again. Default 1s (Cilium's agent delay); valid 0–1m.
	DeleteGrace time.Duration
	// ConsistencyPeriod is the period of the consistency check (FR2.2). Default 5m; valid
	// 1s–24h.
	ConsistencyPeriod time.Duration
	// Logger receives the watcher's logs. Default: discard.
	Logger *slog.Logger
	// Metrics receives the watcher's measurements. Default: discard.
	Metrics WatcherMetrics
	// Clock is the time source. Default: the real clock.
	Clock clock.WithTicker
}

// Validate checks every field and returns a *[ConfigError] naming the first bad one.
func (c WatcherConfig) Validate() error {
	bad := func(field string, value any, reason string) error {
		return &ConfigError{Field: field, Value: fmt.Sprint(value), Reason: reason}
	}
	switch c.Source {
	case "", SourceSlices, SourceCiliumEndpoints:
	default:
		return bad("Source", c.Source, `must be "", "ciliumendpointslices" or "ciliumendpoints"`)
	}
	if c.HeartbeatLease != "" && c.HeartbeatLease != "-" {
		if _, _, err := splitLease(c.HeartbeatLease); err != nil {
			return bad("HeartbeatLease", c.HeartbeatLease, err.Error())
		}
	}
	if c.StaleAfter != 0 && (c.StaleAfter < time.Second || c.StaleAfter > time.Hour) {
		return bad("StaleAfter", c.StaleAfter, "must be between 1s and 1h")
	}
	if c.CheckInterval != 0 && (c.CheckInterval < 100*time.Millisecond || c.CheckInterval > 5*time.Minute) {
		return bad("CheckInterval", c.CheckInterval, "must be between 100ms and 5m")
	}
	if c.ReadErrorThreshold != 0 && (c.ReadErrorThreshold < 1 || c.ReadErrorThreshold > 100) {
		return bad("ReadErrorThreshold", c.ReadErrorThreshold, "must be between 1 and 100")
	}
	if c.DeleteGrace < 0 || c.DeleteGrace > time.Minute {
		return bad("DeleteGrace", c.DeleteGrace, "must be between 0 and 1m")
	}
	if c.ConsistencyPeriod != 0 && (c.ConsistencyPeriod < time.Second || c.ConsistencyPeriod > 24*time.Hour) {
		return bad("ConsistencyPeriod", c.ConsistencyPeriod, "must be between 1s and 24h")
	}
	return nil
}

func (c WatcherConfig) withDefaults() WatcherConfig {
	if c.HeartbeatLease == "" {
		c.HeartbeatLease = DefaultHeartbeatLease
	}
	if c.StaleAfter == 0 {
		c.StaleAfter = 30 * time.Second
	}
	if c.CheckInterval == 0 {
		c.CheckInterval = 5 * time.Second
	}
	if c.ReadErrorThreshold == 0 {
		c.ReadErrorThreshold = 3
	}
	if c.DeleteGrace == 0 {
		c.DeleteGrace = time.Second
	}
	if c.ConsistencyPeriod == 0 {
		c.ConsistencyPeriod = 5 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = NopWatcherMetrics{}
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
	return c
}

// WatcherStatus is a snapshot of a [Watcher].
type WatcherStatus struct {
	// Source is the source in use, Reason why (the last switch's reason).
	Source Source `json:"source"`
	Reason string `json:"reason,omitempty"`
	// Synced is true once the first source is synced and the view seeded.
	Synced bool `json:"synced"`
	// Endpoints in the view; PendingDeletes are held for DeleteGrace.
	Endpoints      int `json:"endpoints"`
	PendingDeletes int `json:"pendingDeletes"`
	// Switches counts source switches; Adds, Updates and Deletes the events delivered.
	Switches int64 `json:"switches"`
	Adds     int64 `json:"adds"`
	Updates  int64 `json:"updates"`
	Deletes  int64 `json:"deletes"`
	// SourceEvents counts the watch events the sources delivered (slices or endpoints).
	SourceEvents int64 `json:"sourceEvents"`
	// Drift counts endpoints the consistency checks repaired; Checks the checks run.
	Drift  int64 `json:"drift"`
	Checks int64 `json:"checks"`
	// ReadErrors counts availability checks that failed to read (see
	// [WatcherConfig.ReadErrorThreshold]); ConsecutiveReadErrors is the current run of them.
	ReadErrors            int64 `json:"readErrors"`
	ConsecutiveReadErrors int   `json:"consecutiveReadErrors"`
}

// Watcher is the node-side consumer of CiliumEndpointSlices. It keeps a view of every endpoint
// in the cluster (by namespace/name and by IP), reports each change once to a [Handler], and
// falls back to watching CiliumEndpoints when the slices are unavailable (CRD absent, controller
// Degraded, stopped or silent), and back when they recover, without spurious deletes or duplicate
// adds:
//
//   - an endpoint's value is the one from the slice that last listed or changed it, so a move
//     between slices, or a brief presence in two, is at most one update;
//   - an endpoint listed nowhere is reported deleted only after [WatcherConfig.DeleteGrace] and a
//     fresh check of the source's health, so a slice deleted in a move, or every slice vanishing
//     with its CRD, deletes nothing;
//   - a source switch rebuilds the view from the new source, once synced, and reports only
//     what differs.
//
// Methods are safe for concurrent use; Run may be called once.
type Watcher struct {
	client  *Client
	h       Handler
	cfg     WatcherConfig
	log     *slog.Logger
	metrics WatcherMetrics

	vmu  sync.RWMutex // guards view and byIP
	view map[string]*Endpoint
	byIP map[netip.Addr]string

	mu      sync.Mutex // guards everything below
	active  *source
	reason  string
	pending map[string]time.Time // key → when its delete may be reported
	queue   []event
	wake    chan struct{}
	status  WatcherStatus
	started bool
}

type event struct{ old, new *Endpoint }

// source is one running informer feeding the watcher.
type source struct {
	kind   Source
	inf    cache.SharedIndexInformer
	cancel context.CancelFunc
	done   chan struct{}
	// slices: slice → key → entry; holders: key → slices listing it (SourceSlices only).
	slices  map[string]map[string]sliceEntry
	holders map[string]map[string]bool
	seq     uint64
	// ceps: key → endpoint (SourceCiliumEndpoints only).
	ceps map[string]*Endpoint
}

type sliceEntry struct {
	ep  *Endpoint
	seq uint64
}

// NewWatcher builds a Watcher that reports to h. It validates cfg; nothing runs until Run.
func NewWatcher(client *Client, h Handler, cfg WatcherConfig) (*Watcher, error) {
	if client == nil || h == nil {
		return nil, errors.New("new slicer watcher: client and handler are required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Watcher{
		client: client, h: h, cfg: cfg, log: cfg.Logger, metrics: cfg.Metrics,
		view: map[string]*Endpoint{}, byIP: map[netip.Addr]string{},
		pending: map[string]time.Time{}, wake: make(chan struct{}, 1),
	}, nil
}

// Get returns the endpoint namespace/name.
func (w *Watcher) Get(namespace, name string) (Endpoint, bool) {
	w.vmu.RLock()
	defer w.vmu.RUnlock()
	e, ok := w.view[namespace+"/"+name]
	if !ok {
		return Endpoint{}, false
	}
	return *e, true
}

// LookupIP returns the endpoint that owns addr.
func (w *Watcher) LookupIP(addr netip.Addr) (Endpoint, bool) {
	w.vmu.RLock()
	defer w.vmu.RUnlock()
	key, ok := w.byIP[addr.Unmap()]
	if !ok {
		return Endpoint{}, false
	}
	return *w.view[key], true
}

// List returns every endpoint, sorted by namespace/name.
func (w *Watcher) List() []Endpoint {
	w.vmu.RLock()
	out := make([]Endpoint, 0, len(w.view))
	for _, e := range w.view {
		out = append(out, *e)
	}
	w.vmu.RUnlock()
	slices.SortFunc(out, func(a, b Endpoint) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	return out
}

// Status returns a snapshot of the watcher.
func (w *Watcher) Status() WatcherStatus {
	w.mu.Lock()
	st := w.status
	if w.active != nil {
		st.Source = w.active.kind
	}
	st.Reason = w.reason
	st.PendingDeletes = len(w.pending)
	w.mu.Unlock()
	w.vmu.RLock()
	st.Endpoints = len(w.view)
	w.vmu.RUnlock()
	return st
}

// Run watches until ctx ends and returns after every goroutine it started has stopped.
func (w *Watcher) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.started {
		w.mu.Unlock()
		return errors.New("slicer watcher: Run called twice")
	}
	w.started = true
	w.mu.Unlock()

	var wg sync.WaitGroup
	dispatchCtx, stopDispatch := context.WithCancel(context.WithoutCancel(ctx))
	wg.Go(func() { w.dispatch(dispatchCtx) })
	defer func() {
		w.mu.Lock()
		src := w.active
		w.active = nil
		w.mu.Unlock()
		if src != nil {
			src.stop()
		}
		stopDispatch()
		wg.Wait()
	}()

	want, reason, _ := w.evaluate(ctx)
	for {
		err := w.switchTo(ctx, want, reason)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		w.log.Warn("endpoint source did not start; retrying", "source", want, "error", err)
		if !sleepCtx(ctx, w.cfg.Clock, w.cfg.CheckInterval) {
			return nil
		}
		want, reason, _ = w.evaluate(ctx)
	}
	w.mu.Lock()
	w.status.Synced = true
	w.mu.Unlock()

	check := w.cfg.Clock.NewTicker(w.cfg.CheckInterval)
	defer check.Stop()
	flush := w.cfg.Clock.NewTicker(max(w.cfg.DeleteGrace/2, 20*time.Millisecond))
	defer flush.Stop()
	consistency := w.cfg.Clock.NewTicker(w.cfg.ConsistencyPeriod)
	defer consistency.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-check.C():
			w.maybeSwitch(ctx)
		case <-flush.C():
			w.flushDeletes(ctx)
		case <-consistency.C():
			if _, err := w.CheckConsistency(ctx); err != nil && ctx.Err() == nil {
				w.log.Warn("consistency check failed", "error", err)
			}
		}
	}
}

func sleepCtx(ctx context.Context, clk clock.WithTicker, d time.Duration) bool {
	t := clk.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

// evaluate decides which source should be in use, and why. readErr is true when the answer
// comes from a failed read (the slices' availability is unknown) rather than from what was read.
func (w *Watcher) evaluate(ctx context.Context) (want Source, reason string, readErr bool) {
	if w.cfg.Source != "" {
		return w.cfg.Source, "pinned by configuration", false
	}
	served, err := w.served(ctx, ciliumv2alpha1.SchemeGroupVersion.String(), "ciliumendpointslices")
	switch {
	case err != nil:
		return SourceCiliumEndpoints, "cannot discover CiliumEndpointSlices: " + err.Error(), true
	case !served:
		return SourceCiliumEndpoints, "CiliumEndpointSlice CRD absent", false
	}
	// While a CRD is being deleted it is still served, and its objects are deleted one by one.
	// Without RBAC to read CRDs (an embedder's narrower role) the deletion check is skipped, as
	// it always was: discovery and the heartbeat still decide.
	crd, err := w.client.Ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, "ciliumendpointslices.cilium.io", metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return SourceCiliumEndpoints, "CiliumEndpointSlice CRD absent", false
	case apierrors.IsForbidden(err):
	case err != nil:
		return SourceCiliumEndpoints, "cannot read the CiliumEndpointSlice CRD: " + err.Error(), true
	case crd.DeletionTimestamp != nil:
		return SourceCiliumEndpoints, "CiliumEndpointSlice CRD being deleted", false
	}
	if w.cfg.HeartbeatLease == "-" {
		return SourceSlices, "slices available", false
	}
	ns, name, _ := splitLease(w.cfg.HeartbeatLease)
	lease, err := w.client.Kube.CoordinationV1().Leases(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return SourceCiliumEndpoints, "no controller heartbeat: lease " + w.cfg.HeartbeatLease + " missing", false
	case err != nil:
		return SourceCiliumEndpoints, "cannot read controller heartbeat: " + err.Error(), true
	}
	switch lease.Annotations[StateAnnotation] {
	case StateDegraded:
		return SourceCiliumEndpoints, "controller degraded: " + lease.Annotations[ReasonAnnotation], false
	case StateStopped:
		return SourceCiliumEndpoints, "controller stopped", false
	case StateSyncing:
		return SourceCiliumEndpoints, "controller still writing slices", false
	}
	if lease.Spec.RenewTime == nil {
		return SourceCiliumEndpoints, "controller heartbeat never renewed", false
	}
	if age := w.cfg.Clock.Since(lease.Spec.RenewTime.Time); age > w.cfg.StaleAfter {
		return SourceCiliumEndpoints, fmt.Sprintf("slices stale: controller heartbeat %s old (bound %s)", age.Round(time.Second), w.cfg.StaleAfter), false
	}
	return SourceSlices, "slices available", false
}

func (w *Watcher) served(ctx context.Context, gv, resource string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	return discovery.Served(w.client.Kube.Discovery(), gv, resource)
}

// maybeSwitch checks the slices' availability and switches source when it says so. It reports
// whether the active source's health is known: false while failed reads are below
// ReadErrorThreshold (the watcher stays, and deletes wait).
func (w *Watcher) maybeSwitch(ctx context.Context) (known bool) {
	want, reason, readErr := w.evaluate(ctx)
	if ctx.Err() != nil {
		return false
	}
	w.mu.Lock()
	cur := w.active
	same := cur != nil && cur.kind == want
	if readErr {
		w.status.ReadErrors++
		w.status.ConsecutiveReadErrors++
	} else {
		w.status.ConsecutiveReadErrors = 0
	}
	if cur != nil && !same && readErr && w.status.ConsecutiveReadErrors < w.cfg.ReadErrorThreshold {
		n := w.status.ConsecutiveReadErrors
		w.mu.Unlock()
		w.log.Info("slices' availability unknown; staying", "source", cur.kind, "reason", reason,
			"consecutiveReadErrors", n, "threshold", w.cfg.ReadErrorThreshold)
		return false
	}
	if same && w.reason != reason {
		w.log.Info("endpoint source reason changed", "source", want, "reason", reason)
		w.reason = reason
	}
	w.mu.Unlock()
	if same {
		return true
	}
	if want == SourceCiliumEndpoints {
		if ok, _ := w.served(ctx, ciliumv2.SchemeGroupVersion.String(), "ciliumendpoints"); !ok {
			w.log.Warn("cannot fall back: CiliumEndpoints not served either", "reason", reason)
			return false // the active source is unhealthy and there is no other: hold deletes
		}
	}
	if err := w.switchTo(ctx, want, reason); err != nil && ctx.Err() == nil {
		w.log.Warn("source switch failed; staying", "to", want, "reason", reason, "error", err)
	}
	return true
}

// switchTo starts the source, waits for its cache, then makes it the active one and reports
// only the endpoints that differ from the view.
func (w *Watcher) switchTo(ctx context.Context, kind Source, reason string) error {
	src := w.newSource(kind)
	srcCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	src.cancel, src.done = cancel, make(chan struct{})
	go func() { defer close(src.done); src.inf.RunWithContext(srcCtx) }()
	syncCtx, cancelSync := context.WithTimeout(ctx, 30*time.Second)
	defer cancelSync()
	if !cache.WaitForCacheSync(syncCtx.Done(), src.inf.HasSynced) {
		src.stop()
		return fmt.Errorf("sync %s: %w", kind, cmpErr(syncCtx.Err()))
	}
	w.mu.Lock()
	old := w.active
	w.active = src
	w.reason = reason
	// Rebuild the source's state from its synced cache, then reconcile every key.
	for _, obj := range src.inf.GetStore().List() {
		w.applyLocked(src, obj, false)
	}
	keys := map[string]bool{}
	w.vmu.RLock()
	for k := range w.view {
		keys[k] = true
	}
	w.vmu.RUnlock()
	for k := range src.keys() {
		keys[k] = true
	}
	for k := range keys {
		w.reconcileLocked(k)
	}
	from := Source("")
	if old != nil {
		from = old.kind
		w.status.Switches++
	}
	w.mu.Unlock()
	if old != nil {
		old.stop()
		w.log.Warn("endpoint source switched", "from", from, "to", kind, "reason", reason)
		w.metrics.SourceSwitch(string(from), string(kind), reason)
	} else {
		w.log.Info("endpoint source", "source", kind, "reason", reason)
	}
	w.metrics.SourceInUse(string(kind))
	return nil
}

func cmpErr(err error) error {
	if err == nil {
		return errors.New("not synced")
	}
	return err
}

func (w *Watcher) newSource(kind Source) *source {
	src := &source{kind: kind}
	if kind == SourceSlices {
		src.inf = w.client.NewSliceInformer()
		src.slices, src.holders = map[string]map[string]sliceEntry{}, map[string]map[string]bool{}
	} else {
		src.inf = w.client.NewEndpointInformer("")
		src.ceps = map[string]*Endpoint{}
	}
	handle := func(obj any, deleted bool) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.active != src {
			return // not (yet, or any more) the active source: its store is read at the switch
		}
		w.status.SourceEvents++
		for _, k := range w.applyLocked(src, obj, deleted) {
			w.reconcileLocked(k)
		}
	}
	_, _ = src.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { handle(obj, false) },
		UpdateFunc: func(_, obj any) { handle(obj, false) },
		DeleteFunc: func(obj any) { handle(obj, true) },
	})
	return src
}

func (s *source) stop() {
	s.cancel()
	<-s.done
}

func (s *source) keys() map[string]bool {
	out := map[string]bool{}
	if s.kind == SourceSlices {
		for k := range s.holders {
			out[k] = true
		}
	} else {
		for k := range s.ceps {
			out[k] = true
		}
	}
	return out
}

// applyLocked records one object of src and returns the endpoint keys it touched.
func (w *Watcher) applyLocked(src *source, obj any, deleted bool) []string {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj, deleted = tomb.Obj, true
	}
	switch o := obj.(type) {
	case *ciliumv2alpha1.CiliumEndpointSlice:
		return src.applySlice(o, deleted)
	case *ciliumv2.CiliumEndpoint:
		key := o.Namespace + "/" + o.Name
		core, ready, err := CoreEndpointFromCEP(o)
		if deleted || !ready || err != nil {
			if err != nil && !deleted {
				w.log.Warn("endpoint ignored", "endpoint", key, "error", err)
				return nil // keep its last valid value
			}
			delete(src.ceps, key)
		} else {
			src.ceps[key] = &Endpoint{Namespace: o.Namespace, CoreCiliumEndpoint: core}
		}
		return []string{key}
	}
	return nil
}

func (s *source) applySlice(ces *ciliumv2alpha1.CiliumEndpointSlice, deleted bool) []string {
	old := s.slices[ces.Name]
	next := map[string]sliceEntry{}
	if !deleted {
		for i := range ces.Endpoints {
			ep := &Endpoint{Namespace: ces.Namespace, CoreCiliumEndpoint: *ces.Endpoints[i].DeepCopy()}
			key := ep.Key()
			if prev, ok := old[key]; ok && equality.Semantic.DeepEqual(prev.ep, ep) {
				next[key] = prev
				continue
			}
			s.seq++
			next[key] = sliceEntry{ep: ep, seq: s.seq}
		}
	}
	var touched []string
	for key := range old {
		if _, ok := next[key]; !ok {
			delete(s.holders[key], ces.Name)
			if len(s.holders[key]) == 0 {
				delete(s.holders, key)
			}
			touched = append(touched, key)
		}
	}
	for key, e := range next {
		if prev, ok := old[key]; !ok || prev.seq != e.seq {
			if s.holders[key] == nil {
				s.holders[key] = map[string]bool{}
			}
			s.holders[key][ces.Name] = true
			touched = append(touched, key)
		}
	}
	if deleted || len(next) == 0 {
		delete(s.slices, ces.Name)
	} else {
		s.slices[ces.Name] = next
	}
	return touched
}

// effective is the source's current value for key: for slices, the entry of the slice that
// listed or changed it last.
func (s *source) effective(key string) *Endpoint {
	if s.kind != SourceSlices {
		return s.ceps[key]
	}
	var best sliceEntry
	for name := range s.holders[key] {
		if e := s.slices[name][key]; e.seq > best.seq {
			best = e
		}
	}
	return best.ep
}

// reconcileLocked brings one key of the view in line with the active source. w.mu is held.
func (w *Watcher) reconcileLocked(key string) {
	want := w.active.effective(key)
	w.vmu.RLock()
	have := w.view[key]
	w.vmu.RUnlock()
	if want != nil {
		delete(w.pending, key)
		if have == nil || !equality.Semantic.DeepEqual(have, want) {
			w.emitLocked(have, want)
		}
		return
	}
	if have != nil {
		if _, ok := w.pending[key]; !ok {
			w.pending[key] = w.cfg.Clock.Now().Add(w.cfg.DeleteGrace)
		}
	}
}

// emitLocked updates the view and queues the event for the handler. w.mu is held.
func (w *Watcher) emitLocked(old, new *Endpoint) {
	w.vmu.Lock()
	if old != nil {
		for _, ip := range old.IPs() {
			if w.byIP[ip] == old.Key() {
				delete(w.byIP, ip)
			}
		}
	}
	switch {
	case new != nil:
		w.view[new.Key()] = new
		for _, ip := range new.IPs() {
			w.byIP[ip] = new.Key()
		}
	case old != nil:
		delete(w.view, old.Key())
	}
	w.vmu.Unlock()
	switch {
	case new == nil:
		w.status.Deletes++
		w.metrics.EndpointEvent("delete")
	case old == nil:
		w.status.Adds++
		w.metrics.EndpointEvent("add")
	default:
		w.status.Updates++
		w.metrics.EndpointEvent("update")
	}
	w.queue = append(w.queue, event{old: old, new: new})
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// dispatch delivers queued events to the handler in order until ctx ends.
func (w *Watcher) dispatch(ctx context.Context) {
	for {
		w.mu.Lock()
		batch := w.queue
		w.queue = nil
		w.mu.Unlock()
		for _, ev := range batch {
			if ev.new == nil {
				w.h.EndpointDeleted(ev.old)
			} else {
				w.h.EndpointUpdated(ev.old, ev.new)
			}
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
	}
}

// flushDeletes reports the deletes whose grace has passed, after checking that the source is
// still healthy: when it is not, the watcher switches first and the new source decides.
func (w *Watcher) flushDeletes(ctx context.Context) {
	now := w.cfg.Clock.Now()
	w.mu.Lock()
	due := 0
	for _, at := range w.pending {
		if !now.Before(at) {
			due++
		}
	}
	w.mu.Unlock()
	if due == 0 {
		return
	}
	if !w.maybeSwitch(ctx) {
		return // health unknown: the deletes wait for a check that reads an answer
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, key := range slices.Sorted(maps.Keys(w.pending)) {
		if now.Before(w.pending[key]) {
			continue
		}
		delete(w.pending, key)
		if w.active.effective(key) != nil {
			continue
		}
		w.vmu.RLock()
		have := w.view[key]
		w.vmu.RUnlock()
		if have != nil {
			w.emitLocked(have, nil)
		}
	}
}

// CheckConsistency compares the view with a fresh list of the active source from the API server
// (FR2.2). An endpoint the view holds wrongly (differing from both the fresh list and the
// source's cache, so not an event in flight) is repaired, counted and returned.
func (w *Watcher) CheckConsistency(ctx context.Context) (int, error) {
	w.mu.Lock()
	src := w.active
	w.mu.Unlock()
	if src == nil {
		return 0, ErrNotSynced
	}
	fresh := &source{kind: src.kind, slices: map[string]map[string]sliceEntry{}, holders: map[string]map[string]bool{}, ceps: map[string]*Endpoint{}}
	if src.kind == SourceSlices {
		list, err := w.client.CiliumEndpointSlices().List(ctx, metav1.ListOptions{})
		if err != nil {
			return 0, fmt.Errorf("consistency check: list slices: %w", err)
		}
		for i := range list.Items {
			fresh.applySlice(&list.Items[i], false)
		}
	} else {
		list, err := w.client.CiliumEndpoints("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return 0, fmt.Errorf("consistency check: list endpoints: %w", err)
		}
		for i := range list.Items {
			w.mu.Lock()
			w.applyLocked(fresh, &list.Items[i], false)
			w.mu.Unlock()
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.status.Checks++
	if w.active != src {
		return 0, nil // switched meanwhile
	}
	keys := fresh.keys()
	w.vmu.RLock()
	for k := range w.view {
		keys[k] = true
	}
	w.vmu.RUnlock()
	drift := 0
	for key := range keys {
		w.vmu.RLock()
		have := w.view[key]
		w.vmu.RUnlock()
		if _, pending := w.pending[key]; pending {
			continue
		}
		listed, cached := fresh.effective(key), src.effective(key)
		if sameEndpoint(have, listed) || sameEndpoint(have, cached) {
			continue
		}
		drift++
		w.log.Warn("node view drifted; repairing", "endpoint", key)
		if cached == nil {
			w.emitLocked(have, nil)
		} else {
			w.emitLocked(have, cached)
		}
	}
	w.status.Drift += int64(drift)
	if drift > 0 {
		w.metrics.Drift(drift)
	}
	return drift, nil
}

func sameEndpoint(a, b *Endpoint) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return equality.Semantic.DeepEqual(a, b)
}
