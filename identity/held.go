package identity

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// hold takes a reference on id for key.
func (a *CRDAllocator) hold(id NumericIdentity, key string, lbls Labels) {
	a.mu.Lock()
	h := a.held[id]
	if h == nil || h.key != key {
		if h != nil {
			delete(a.heldKeys, h.key)
		}
		h = &holding{id: id, key: key, labels: lbls}
		a.held[id] = h
		a.heldKeys[key] = h
		a.holderDirty = true
	}
	h.refs++
	h.restored = false
	a.mu.Unlock()
	a.signalHolder()
}

// Release drops one reference on id taken by Allocate. When the last reference goes, the
// identity leaves this allocator's holder record; the garbage collector deletes it once nothing
// else uses it for a grace period. Reserved identities are never released (released is false);
// local-scope identities are freed at once. It returns [ErrNotHeld] for an identity this
// allocator does not hold.
func (a *CRDAllocator) Release(_ context.Context, id NumericIdentity) (bool, error) {
	switch {
	case id.IsReserved():
		return false, nil
	case id.Scope() == ScopeLocal:
		if _, ok := a.local.Lookup(id); !ok {
			return false, fmt.Errorf("release identity %s: %w", id, ErrNotHeld)
		}
		return a.local.Release(id), nil
	}
	a.mu.Lock()
	h := a.held[id]
	if h == nil || (h.refs == 0 && !h.restored) {
		a.mu.Unlock()
		return false, fmt.Errorf("release identity %s: %w", id, ErrNotHeld)
	}
	if h.refs > 0 {
		h.refs--
	}
	released := h.refs == 0
	if released {
		delete(a.held, id)
		delete(a.heldKeys, h.key)
		a.holderDirty = true
	}
	a.mu.Unlock()
	if released {
		a.signalHolder()
	}
	return released, nil
}

// Lookup returns the labels of id: reserved identities by name, local-scope identities from the
// local allocator, others from the CiliumIdentity cache. It makes no API call.
func (a *CRDAllocator) Lookup(id NumericIdentity) (Labels, bool) {
	if name, ok := id.ReservedName(); ok {
		return Labels{{Source: SourceReserved, Key: name}}, true
	}
	if id.Scope() == ScopeLocal {
		return a.local.Lookup(id)
	}
	a.mu.RLock()
	k := a.known[id]
	a.mu.RUnlock()
	if k == nil {
		return nil, false
	}
	return k.labels, true
}

// LookupByLabels returns the identity of lbls' identity-relevant labels from the cache, without
// allocating: the one this allocator holds, else the oldest CiliumIdentity with those labels
// (the one Cilium's agents pick among duplicates).
func (a *CRDAllocator) LookupByLabels(lbls Labels) (NumericIdentity, bool) {
	rel, kind, err := a.classify(lbls)
	if err != nil {
		return 0, false
	}
	switch kind {
	case kindReserved:
		return rel.reservedID, true
	case kindLocal:
		return a.local.LookupByLabels(rel.labels)
	}
	key := rel.labels.Key()
	a.mu.RLock()
	defer a.mu.RUnlock()
	if h := a.heldKeys[key]; h != nil {
		return h.id, true
	}
	if ids := a.keys[key]; len(ids) > 0 {
		return ids[0], true
	}
	return 0, false
}

// Status is a snapshot of a [CRDAllocator].
type Status struct {
	// Synced is true once the cache is synced and the holder record restored.
	Synced bool
	// Range is the allocatable range and Used how many of its identities exist.
	Range Range
	Used  int
	// Ratio is Used / Range.Size().
	Ratio float64
	// Known is the number of CiliumIdentities in the cache, in or out of Range.
	Known int
	// Held is the number of identities this allocator holds; Restored how many of them were
	// restored from the holder record and not allocated again yet.
	Held, Restored int
	// Duplicates is the number of label sets with more than one CiliumIdentity (written by
	// something other than ceskit; ceskit never creates them).
	Duplicates int
	// Local is the number of local-scope (CIDR/FQDN) identities.
	Local int
}

// Status returns a snapshot of the allocator.
func (a *CRDAllocator) Status() Status {
	a.mu.RLock()
	defer a.mu.RUnlock()
	s := Status{
		Synced: a.HasSynced(),
		Range:  a.cfg.Range,
		Used:   a.usedN,
		Ratio:  float64(a.usedN) / float64(a.cfg.Range.Size()),
		Known:  len(a.known),
		Held:   len(a.held),
		Local:  a.local.Len(),
	}
	for _, h := range a.held {
		if h.restored {
			s.Restored++
		}
	}
	for _, ids := range a.keys {
		if len(ids) > 1 {
			s.Duplicates++
		}
	}
	return s
}

// Held returns the identities this allocator holds, sorted.
func (a *CRDAllocator) Held() []NumericIdentity {
	a.mu.RLock()
	defer a.mu.RUnlock()
	ids := make([]NumericIdentity, 0, len(a.held))
	for id := range a.held {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// restore reads this allocator's holder record and holds the identities it lists (and that
// still exist) until they are allocated again or [Config.RestoreGracePeriod] passes. A restarted
// agent thus keeps its identities, and gets the same ones back from Allocate without an API call.
func (a *CRDAllocator) restore(ctx context.Context) error {
	l, err := a.client.Kube.CoordinationV1().Leases(a.cfg.Namespace).Get(ctx, HolderName(a.cfg.Holder), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get holder record: %w", err)
	}
	ids, err := decodeIDs(l.Annotations[HolderIDsAnnotation])
	if err != nil {
		return fmt.Errorf("holder record %s: %w", l.Name, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.holderLease = l
	a.restoreUntil = a.cfg.Clock.Now().Add(a.cfg.RestoreGracePeriod)
	restored := 0
	for _, id := range ids {
		k := a.known[id]
		if k == nil || a.held[id] != nil {
			continue
		}
		h := &holding{id: id, key: k.key, labels: k.labels, restored: true}
		a.held[id] = h
		a.heldKeys[k.key] = h
		restored++
	}
	a.holderDirty = true
	a.log.Info("restored held identities", "restored", restored, "listed", len(ids))
	return nil
}

func (a *CRDAllocator) signalHolder() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// runHolder keeps the holder record current: written HolderSyncDelay after the held set changes
// and renewed every third of HolderLeaseDuration.
func (a *CRDAllocator) runHolder(ctx context.Context) {
	renew := a.cfg.Clock.NewTicker(a.cfg.HolderLeaseDuration / 3)
	defer renew.Stop()
	a.signalHolder()
	for {
		select {
		case <-ctx.Done():
			return
		case <-renew.C():
		case <-a.wake:
			select {
			case <-ctx.Done():
				return
			case <-a.cfg.Clock.After(a.cfg.HolderSyncDelay):
			}
		}
		if err := a.writeHolder(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("write holder record", "err", err)
			a.signalHolder() // try again after HolderSyncDelay
		}
	}
}

// writeHolder writes the held set and a fresh renew time into the holder record.
func (a *CRDAllocator) writeHolder(ctx context.Context) error {
	now := a.cfg.Clock.Now()
	a.mu.Lock()
	if !a.restoreUntil.IsZero() && !now.Before(a.restoreUntil) {
		for id, h := range a.held {
			if h.restored && h.refs == 0 {
				delete(a.held, id)
				delete(a.heldKeys, h.key)
			}
		}
		a.restoreUntil = time.Time{}
	}
	ids := make([]NumericIdentity, 0, len(a.held))
	for id := range a.held {
		ids = append(ids, id)
	}
	a.holderDirty = false
	prev := a.holderLease
	a.mu.Unlock()
	slices.Sort(ids)

	leases := a.client.Kube.CoordinationV1().Leases(a.cfg.Namespace)
	t := metav1.NewMicroTime(now)
	secs := int32(a.cfg.HolderLeaseDuration / time.Second)
	for range 3 {
		var l *coordinationv1.Lease
		if prev != nil {
			l = prev.DeepCopy()
		} else {
			l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{
				Name: HolderName(a.cfg.Holder), Namespace: a.cfg.Namespace,
			}}
		}
		if l.Labels == nil {
			l.Labels = map[string]string{}
		}
		if l.Annotations == nil {
			l.Annotations = map[string]string{}
		}
		l.Labels[LeaseKindLabel] = leaseKindHolder
		l.Annotations[HolderIDsAnnotation] = encodeIDs(ids)
		l.Spec.HolderIdentity = &a.cfg.Holder
		l.Spec.LeaseDurationSeconds = &secs
		l.Spec.RenewTime = &t
		if l.Spec.AcquireTime == nil {
			l.Spec.AcquireTime = &t
		}
		var out *coordinationv1.Lease
		var err error
		if prev == nil {
			out, err = leases.Create(ctx, l, metav1.CreateOptions{})
			a.cfg.Metrics.Write("create", "leases")
		} else {
			out, err = leases.Update(ctx, l, metav1.UpdateOptions{})
			a.cfg.Metrics.Write("update", "leases")
		}
		switch {
		case err == nil:
			a.mu.Lock()
			a.holderLease = out
			a.mu.Unlock()
			return nil
		case apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err):
			a.cfg.Metrics.Conflict("update")
			if prev, err = leases.Get(ctx, l.Name, metav1.GetOptions{}); err != nil {
				return fmt.Errorf("get holder record: %w", err)
			}
		case apierrors.IsNotFound(err):
			prev = nil
		default:
			return fmt.Errorf("write holder record: %w", err)
		}
	}
	return fmt.Errorf("write holder record %s: still conflicting after 3 attempts", HolderName(a.cfg.Holder))
}

func (a *CRDAllocator) enqueueRepair(id NumericIdentity) {
	select {
	case a.repairs <- id:
	default:
		a.log.Warn("repair queue full; the next renewal retries", "identity", id)
	}
}

// runRepairs keeps held identities alive: it unmarks a held identity the garbage collector
// marked (its view of the holder record may lag) and re-creates, through the protocol, one that
// was deleted while held.
func (a *CRDAllocator) runRepairs(ctx context.Context) {
	retry := make(map[NumericIdentity]struct{})
	tick := a.cfg.Clock.NewTicker(time.Second)
	defer tick.Stop()
	try := func(id NumericIdentity) {
		if err := a.repair(ctx, id); err != nil && ctx.Err() == nil {
			a.log.Warn("repair held identity", "identity", id, "err", err)
			retry[id] = struct{}{}
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-a.repairs:
			try(id)
		case <-tick.C():
			for id := range retry {
				delete(retry, id)
				try(id)
			}
		}
	}
}

func (a *CRDAllocator) repair(ctx context.Context, id NumericIdentity) error {
	a.mu.RLock()
	h := a.held[id]
	k := a.known[id]
	a.mu.RUnlock()
	if h == nil {
		return nil
	}
	if k != nil && k.key == h.key {
		if k.obj.Annotations[HeartbeatAnnotation] == "" {
			return nil
		}
		err := a.unmark(ctx, k.obj)
		if err == nil || apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return nil // a conflict or deletion shows up as another event
		}
		return err
	}
	got, _, err := a.resolveOnce(ctx, h.key, h.labels)
	if err != nil {
		return err
	}
	if got != id {
		// The claim moved while the identity was gone: the labels now have another ID.
		a.log.Warn("held identity was replaced", "identity", id, "replacement", got)
		a.mu.Lock()
		delete(a.held, id)
		h.id = got
		a.held[got] = h
		a.holderDirty = true
		a.mu.Unlock()
		a.signalHolder()
	}
	return nil
}

// RelabelResult maps the identities of a namespace to their replacements after a relabel.
type RelabelResult struct {
	// Moved maps each old identity to the identity of its relabelled label set.
	Moved map[NumericIdentity]NumericIdentity
	// Created is how many of the new identities did not exist before.
	Created int
}

// RelabelNamespace moves every identity of namespace (those whose io.kubernetes.pod.namespace
// label is namespace) to label sets with namespaceLabels as their io.cilium.k8s.namespace.labels.*
// labels, creating each new identity exactly once, with at most [Config.RelabelWorkers]
// allocations in flight. Run it once (in an operator) when a namespace's labels change: agents
// that then allocate the new label sets find them in their caches, so one relabel costs one
// identity per label set instead of one per node. It takes no references: the new identities are
// collected like any other if nothing uses them. Old identities are left to the garbage
// collector.
func (a *CRDAllocator) RelabelNamespace(ctx context.Context, namespace string, namespaceLabels map[string]string) (RelabelResult, error) {
	if err := a.waitSynced(ctx); err != nil {
		return RelabelResult{}, err
	}
	type job struct {
		old    NumericIdentity
		labels Labels
	}
	var jobs []job
	a.mu.RLock()
	for id, k := range a.known {
		if k.labels.Namespace() != namespace {
			continue
		}
		nl, err := WithNamespaceLabels(k.labels, namespaceLabels)
		if err != nil {
			a.mu.RUnlock()
			return RelabelResult{}, fmt.Errorf("relabel namespace %s: %w", namespace, err)
		}
		rel, _ := a.cfg.Filter.Filter(nl)
		if rel.Key() != k.key {
			jobs = append(jobs, job{id, rel})
		}
	}
	a.mu.RUnlock()

	res := RelabelResult{Moved: make(map[NumericIdentity]NumericIdentity, len(jobs))}
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, a.cfg.RelabelWorkers)
	var wg sync.WaitGroup
	for _, j := range jobs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			id, outcome, err := a.resolveOnce(ctx, j.labels.Key(), j.labels)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("relabel namespace %s: identity %s: %w", namespace, j.old, err)
				}
				return
			}
			res.Moved[j.old] = id
			if outcome == "created" {
				res.Created++
			}
		})
	}
	wg.Wait()
	return res, firstErr
}
