package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/ceskit/ceskit/identity/ciliumv2"
	"github.com/ceskit/ceskit/internal/discovery"
	"github.com/ceskit/ceskit/internal/retry"
)

// Allocator maps identity-relevant label sets to numeric security identities. Every
// implementation is safe for concurrent use.
type Allocator interface {
	// Allocate returns the identity of lbls, creating it when none exists, and takes a reference
	// on it. Labels that are not identity-relevant are ignored.
	Allocate(ctx context.Context, lbls Labels) (NumericIdentity, error)
	// Release drops one reference taken by Allocate. released is true when it was the last one.
	Release(ctx context.Context, id NumericIdentity) (released bool, err error)
	// Lookup returns the labels of id, from the local cache.
	Lookup(id NumericIdentity) (Labels, bool)
	// LookupByLabels returns the identity of lbls, from the local cache, without allocating.
	LookupByLabels(lbls Labels) (NumericIdentity, bool)
}

// CRDAllocator is the [Allocator] backed by CiliumIdentity objects (Cilium's CRD mode) that never
// creates two identities for one label set, however many allocators race. Reserved labels map to
// their reserved identities and CIDR/FQDN labels to local-scope identities, neither through the
// API. See the package documentation for the protocol.
//
// Create it with [NewCRDAllocator], run it with Run; Allocate blocks until its cache is synced.
// It is safe for concurrent use.
type CRDAllocator struct {
	client *Client
	cfg    Config
	log    *slog.Logger
	local  *LocalAllocator
	ids    cache.SharedIndexInformer

	started atomic.Bool
	synced  chan struct{}
	wake    chan struct{}
	repairs chan NumericIdentity

	mu           sync.RWMutex
	known        map[NumericIdentity]*knownIdentity
	keys         map[string][]NumericIdentity // oldest first
	used         []uint64                     // bitmap over cfg.Range
	usedN        int
	pending      map[NumericIdentity]time.Time
	warned       bool
	held         map[NumericIdentity]*holding
	heldKeys     map[string]*holding
	flights      map[string]*flight
	restoreUntil time.Time
	holderDirty  bool
	holderLease  *coordinationv1.Lease
}

type knownIdentity struct {
	obj     *ciliumv2.CiliumIdentity
	labels  Labels
	key     string
	created time.Time
}

type holding struct {
	id       NumericIdentity
	key      string
	labels   Labels
	refs     int
	restored bool
}

type flight struct {
	done chan struct{}
	id   NumericIdentity
	out  string
	err  error
}

// pendingTTL is how long an ID picked for a new identity is kept from other local picks while
// its CiliumIdentity is being created.
const pendingTTL = 10 * time.Second

// freshAge is how old an identity must be before the cache alone answers for it: younger, it may
// be the creation of a round about to lose its verification. Creation timestamps have one-second
// resolution, so this means at least one second; a round verifies within milliseconds.
const freshAge = 2 * time.Second

// errLostRace ends a protocol round that lost a race; the next round starts over.
var errLostRace = errors.New("lost an allocation race")

// NewCRDAllocator returns an allocator over the CiliumIdentities that client reaches. It fills
// cfg's defaults and returns a *[ConfigError] for a bad field.
func NewCRDAllocator(client *Client, cfg Config) (*CRDAllocator, error) {
	if client == nil {
		return nil, &ConfigError{Field: "client", Value: "nil", Reason: "a client is required"}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	a := &CRDAllocator{
		client:   client,
		cfg:      cfg,
		log:      cfg.Logger.With("holder", cfg.Holder),
		local:    NewLocalAllocator(),
		ids:      client.NewIdentityInformer(),
		synced:   make(chan struct{}),
		wake:     make(chan struct{}, 1),
		repairs:  make(chan NumericIdentity, 1024),
		known:    make(map[NumericIdentity]*knownIdentity),
		keys:     make(map[string][]NumericIdentity),
		used:     make([]uint64, (cfg.Range.Size()+63)/64),
		pending:  make(map[NumericIdentity]time.Time),
		held:     make(map[NumericIdentity]*holding),
		heldKeys: make(map[string]*holding),
		flights:  make(map[string]*flight),
	}
	_, err = a.ids.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { a.observe(obj) },
		UpdateFunc: func(_, obj any) { a.observe(obj) },
		DeleteFunc: a.forget,
	})
	if err != nil {
		return nil, fmt.Errorf("add identity event handler: %w", err)
	}
	return a, nil
}

// Config returns the allocator's configuration with defaults filled in.
func (a *CRDAllocator) Config() Config { return a.cfg }

// Run checks that the API server serves CiliumIdentities, starts the informer, waits for its
// cache, restores the identities of this allocator's holder record and then keeps the holder
// record current and repairs held identities that are marked or deleted, until ctx ends. It
// returns after every goroutine it started has stopped; it returns an error wrapping
// [ErrCRDMissing] at once when the resource is not served. A discovery read that fails otherwise
// (the API server unreachable or answering 5xx) is retried, 100ms doubling to 5s; Run returns
// nil if ctx ends meanwhile.
func (a *CRDAllocator) Run(ctx context.Context) error {
	if !a.started.CompareAndSwap(false, true) {
		return errors.New("identity allocator: Run called twice")
	}
	if err := untilServed(ctx, a.log, a.client); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { a.ids.RunWithContext(ctx) })
	defer wg.Wait()
	if !cache.WaitForCacheSync(ctx.Done(), a.ids.HasSynced) {
		return nil
	}
	if err := a.restore(ctx); err != nil {
		a.log.Warn("restore held identities", "err", err)
	}
	close(a.synced)
	wg.Go(func() { a.runHolder(ctx) })
	wg.Go(func() { a.runRepairs(ctx) })
	<-ctx.Done()
	return nil
}

// untilServed runs checkServed until it succeeds or reports ErrCRDMissing, retrying other
// errors until ctx ends.
func untilServed(ctx context.Context, log *slog.Logger, c *Client) error {
	return retry.Until(ctx, log, "CiliumIdentity discovery", retry.DefaultBackoff,
		func(context.Context) error { return checkServed(c) }, retry.Is(ErrCRDMissing))
}

func checkServed(c *Client) error {
	ok, err := discovery.Served(c.Kube.Discovery(), ciliumv2.SchemeGroupVersion.String(), "ciliumidentities")
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("%w: ciliumidentities.%s", ErrCRDMissing, ciliumv2.SchemeGroupVersion)
	}
	return nil
}

// HasSynced reports whether the cache is synced and the holder record restored.
func (a *CRDAllocator) HasSynced() bool {
	select {
	case <-a.synced:
		return true
	default:
		return false
	}
}

func (a *CRDAllocator) waitSynced(ctx context.Context) error {
	select {
	case <-a.synced:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNotSynced, context.Cause(ctx))
	}
}

// observe records a CiliumIdentity from the informer.
func (a *CRDAllocator) observe(obj any) {
	cid, ok := obj.(*ciliumv2.CiliumIdentity)
	if !ok {
		return
	}
	id, err := ParseNumericIdentity(cid.Name)
	if err != nil {
		return // not an identity Cilium would use either
	}
	lbls, err := LabelsFromSecurityLabels(cid.SecurityLabels)
	if err != nil {
		a.log.Warn("skip identity with invalid security labels", "identity", cid.Name, "err", err)
		return
	}
	k := &knownIdentity{obj: cid, labels: lbls, key: lbls.Key(), created: cid.CreationTimestamp.Time}
	a.mu.Lock()
	old := a.known[id]
	a.known[id] = k
	if old == nil || old.key != k.key {
		if old != nil {
			a.keys[old.key] = slices.DeleteFunc(a.keys[old.key], func(x NumericIdentity) bool { return x == id })
			if len(a.keys[old.key]) == 0 {
				delete(a.keys, old.key)
			}
		}
		a.keys[k.key] = a.insertByAge(a.keys[k.key], id, k.created)
	}
	if old == nil {
		a.setUsed(id, true)
	}
	delete(a.pending, id)
	h := a.held[id]
	marked := cid.Annotations[HeartbeatAnnotation] != ""
	a.mu.Unlock()
	if h != nil && (marked || h.key != k.key) {
		a.enqueueRepair(id)
	}
}

// insertByAge keeps ids ordered oldest first (ties by ID), the order Cilium's agents use to pick
// among duplicates.
func (a *CRDAllocator) insertByAge(ids []NumericIdentity, id NumericIdentity, created time.Time) []NumericIdentity {
	i, _ := slices.BinarySearchFunc(ids, id, func(x, target NumericIdentity) int {
		xc := a.known[x].created
		if c := xc.Compare(created); c != 0 {
			return c
		}
		return int(int64(x) - int64(target))
	})
	return slices.Insert(ids, i, id)
}

func (a *CRDAllocator) forget(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	cid, ok := obj.(*ciliumv2.CiliumIdentity)
	if !ok {
		return
	}
	id, err := ParseNumericIdentity(cid.Name)
	if err != nil {
		return
	}
	a.mu.Lock()
	old := a.known[id]
	if old != nil {
		delete(a.known, id)
		a.keys[old.key] = slices.DeleteFunc(a.keys[old.key], func(x NumericIdentity) bool { return x == id })
		if len(a.keys[old.key]) == 0 {
			delete(a.keys, old.key)
		}
		a.setUsed(id, false)
	}
	_, held := a.held[id]
	a.mu.Unlock()
	if held {
		a.enqueueRepair(id)
	}
}

// setUsed updates the usage bitmap and reports usage; a.mu must be held.
func (a *CRDAllocator) setUsed(id NumericIdentity, used bool) {
	r := a.cfg.Range
	if !r.Contains(id) {
		return
	}
	off := int(id - r.Min)
	word, bit := off/64, uint64(1)<<(off%64)
	if (a.used[word]&bit != 0) == used {
		return
	}
	a.used[word] ^= bit
	if used {
		a.usedN++
	} else {
		a.usedN--
	}
	size := r.Size()
	a.cfg.Metrics.Usage(a.usedN, size)
	ratio := float64(a.usedN) / float64(size)
	switch {
	case ratio >= a.cfg.WarnRatio && !a.warned:
		a.warned = true
		a.log.Warn("identity space nearly exhausted", "used", a.usedN, "size", size, "range", r.String(), "ratio", ratio)
	case ratio < a.cfg.WarnRatio && a.warned:
		a.warned = false
		a.log.Info("identity space usage back below the warning ratio", "used", a.usedN, "size", size, "ratio", ratio)
	}
}

func (a *CRDAllocator) isUsed(id NumericIdentity) bool {
	off := int(id - a.cfg.Range.Min)
	return a.used[off/64]&(1<<(off%64)) != 0
}

// Allocate returns the identity of lbls' identity-relevant labels ([Config.Filter]) and takes a
// reference on it. Reserved labels ("reserved:host", …) return their reserved identity;
// labels with a cidr, cidrgroup or fqdn source get a local-scope identity without any API call.
// Everything else goes through the CiliumIdentity protocol: a label set this allocator already
// holds costs nothing, one in the cache costs nothing (or one update to unmark it), and a new one
// costs two creates (claim and identity). Allocate blocks until the cache is synced and returns
// a *[LabelError] for bad labels and an *[ExhaustedError] when [Config.Range] is full.
func (a *CRDAllocator) Allocate(ctx context.Context, lbls Labels) (NumericIdentity, error) {
	start := a.cfg.Clock.Now()
	id, outcome, err := a.allocate(ctx, lbls)
	if err != nil {
		outcome = "error"
	}
	a.cfg.Metrics.Allocation(outcome, a.cfg.Clock.Since(start))
	return id, err
}

func (a *CRDAllocator) allocate(ctx context.Context, lbls Labels) (NumericIdentity, string, error) {
	rel, kind, err := a.classify(lbls)
	if err != nil {
		return 0, "", err
	}
	switch kind {
	case kindReserved:
		return rel.reservedID, "reserved", nil
	case kindLocal:
		id, _, err := a.local.Allocate(rel.labels)
		return id, "local", err
	}
	if err := a.waitSynced(ctx); err != nil {
		return 0, "", err
	}
	key := rel.labels.Key()
	a.mu.Lock()
	if h := a.heldKeys[key]; h != nil {
		h.refs++
		if h.restored {
			h.restored = false
		}
		a.mu.Unlock()
		return h.id, "held", nil
	}
	a.mu.Unlock()
	id, outcome, err := a.resolveOnce(ctx, key, rel.labels)
	if err != nil {
		return 0, "", err
	}
	a.hold(id, key, rel.labels)
	return id, outcome, nil
}

const (
	kindGlobal = iota
	kindReserved
	kindLocal
)

// classify filters lbls and tells which allocator serves them.
func (a *CRDAllocator) classify(lbls Labels) (relevantSet, int, error) {
	return classifyLabels(a.cfg.Filter, lbls)
}

// relevantSet is the identity-relevant subset of some labels and, for reserved labels, their
// reserved identity.
type relevantSet struct {
	labels     Labels
	reservedID NumericIdentity
}

func classifyLabels(f *Filter, lbls Labels) (relevantSet, int, error) {
	lbls, err := NewLabels(lbls...)
	if err != nil {
		return relevantSet{}, 0, err
	}
	rel, _ := f.Filter(lbls)
	if len(rel) == 0 {
		return relevantSet{}, 0, &LabelError{Field: "labels", Value: lbls.String(), Reason: "no identity-relevant labels (see Config.Filter)"}
	}
	local, reserved := false, false
	for _, l := range rel {
		switch l.Source {
		case SourceCIDR, SourceCIDRGroup, SourceFQDN:
			local = true
		case SourceReserved:
			reserved = true
		}
	}
	switch {
	case local:
		return relevantSet{labels: rel}, kindLocal, nil
	case reserved:
		if _, ok := rel.Get("host"); ok {
			return relevantSet{labels: rel, reservedID: ReservedHost}, kindReserved, nil
		}
		if len(rel) == 1 {
			if id, ok := LookupReserved(rel[0].Key); ok {
				return relevantSet{labels: rel, reservedID: id}, kindReserved, nil
			}
		}
		return relevantSet{}, 0, &LabelError{Field: "labels", Value: rel.String(), Reason: "reserved labels name no single reserved identity"}
	}
	return relevantSet{labels: rel}, kindGlobal, nil
}
