package identity

import (
	"container/heap"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// ErrLocalExhausted is wrapped by [LocalAllocator.Allocate] when every
// local-scope identity is in use.
var ErrLocalExhausted = errors.New("local identity space exhausted")

// maxLocalIndex is the highest index below the scope byte of a local
// identity (Cilium's MaxAllocatorLocalIdentity).
const maxLocalIndex = 0xFF_FFFF

// LocalAllocator hands out node-local identities ([ScopeLocal]) for CIDR and
// FQDN label sets, as Cilium's localIdentityCache does. They never touch the
// API server and differ from node to node.
//
// Identities are reference counted: allocating the same labels again returns
// the same identity, and it is freed when every reference is released. New
// identities take the lowest free number, ScopeLocal|1 first.
//
// A LocalAllocator is safe for concurrent use. Build it with
// [NewLocalAllocator]; the zero value is not usable.
type LocalAllocator struct {
	mu    sync.Mutex
	max   uint32 // highest index handed out
	next  uint32 // lowest index never handed out
	free  indexHeap
	byKey map[string]*localEntry
	byID  map[NumericIdentity]*localEntry
}

// localEntry is one allocated identity.
type localEntry struct {
	id     NumericIdentity
	labels Labels
	key    string
	refs   int
}

// NewLocalAllocator returns an empty allocator for the whole local range,
// [MinLocal] to [MaxLocal].
func NewLocalAllocator() *LocalAllocator {
	return newLocalAllocator(maxLocalIndex)
}

// newLocalAllocator returns an allocator that hands out indexes 1..max;
// tests use a small max.
func newLocalAllocator(max uint32) *LocalAllocator {
	return &LocalAllocator{
		max:   max,
		next:  1,
		byKey: make(map[string]*localEntry),
		byID:  make(map[NumericIdentity]*localEntry),
	}
}

// checkLocal reports whether l may get a local identity: as in Cilium's
// ScopeForLabels, every label must have source cidr, cidrgroup, fqdn or
// reserved, and at least one must be cidr, cidrgroup or fqdn (reserved-only
// sets are reserved identities).
func checkLocal(l Labels) error {
	if len(l) == 0 {
		return &LabelError{Field: "labels", Value: "", Reason: "local identities need at least one cidr, cidrgroup or fqdn label"}
	}
	hasLocal := false
	for _, lbl := range l {
		switch lbl.Source {
		case SourceCIDR, SourceCIDRGroup, SourceFQDN:
			hasLocal = true
		case SourceReserved:
		default:
			return &LabelError{Field: "source", Value: lbl.Source,
				Reason: fmt.Sprintf("label %s cannot be part of a local identity (only cidr, cidrgroup, fqdn and reserved)", lbl)}
		}
	}
	if !hasLocal {
		return &LabelError{Field: "labels", Value: l.String(), Reason: "local identities need at least one cidr, cidrgroup or fqdn label"}
	}
	return nil
}

// Allocate returns the local identity for l, taking a reference. isNew is true
// when the identity was created by this call. Labels with other sources than
// cidr, cidrgroup, fqdn and reserved return a [*LabelError]; a full
// allocator returns an error wrapping [ErrLocalExhausted]. On error nothing
// changes.
func (a *LocalAllocator) Allocate(l Labels) (id NumericIdentity, isNew bool, err error) {
	norm, err := NewLabels(l...)
	if err != nil {
		return 0, false, fmt.Errorf("allocate local identity: %w", err)
	}
	if err := checkLocal(norm); err != nil {
		return 0, false, fmt.Errorf("allocate local identity: %w", err)
	}
	key := norm.Key()

	a.mu.Lock()
	defer a.mu.Unlock()
	if e, ok := a.byKey[key]; ok {
		e.refs++
		return e.id, false, nil
	}
	var idx uint32
	switch {
	case a.free.Len() > 0:
		idx = heap.Pop(&a.free).(uint32)
	case a.next <= a.max:
		idx = a.next
		a.next++
	default:
		return 0, false, fmt.Errorf("allocate local identity for %s: all %d identities in use: %w", norm, a.max, ErrLocalExhausted)
	}
	e := &localEntry{id: NumericIdentity(ScopeLocal) | NumericIdentity(idx), labels: norm, key: key, refs: 1}
	a.byKey[key] = e
	a.byID[e.id] = e
	return e.id, true, nil
}

// Release drops one reference to id. It returns true when that was the last
// reference and id was freed (as Cilium's localIdentityCache.release), false
// when references remain or id is not allocated.
func (a *LocalAllocator) Release(id NumericIdentity) (released bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.byID[id]
	if !ok {
		return false
	}
	e.refs--
	if e.refs > 0 {
		return false
	}
	delete(a.byID, id)
	delete(a.byKey, e.key)
	heap.Push(&a.free, uint32(id)&maxLocalIndex)
	return true
}

// Lookup returns the labels of an allocated local identity. The returned
// slice is a copy.
func (a *LocalAllocator) Lookup(id NumericIdentity) (Labels, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.byID[id]
	if !ok {
		return nil, false
	}
	return slices.Clone(e.labels), true
}

// LookupByLabels returns the identity allocated for l, without taking a
// reference.
func (a *LocalAllocator) LookupByLabels(l Labels) (NumericIdentity, bool) {
	key := l.Key()
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.byKey[key]
	if !ok {
		return 0, false
	}
	return e.id, true
}

// Len returns the number of allocated identities.
func (a *LocalAllocator) Len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.byID)
}

// indexHeap is a min-heap of freed indexes, so the lowest one is reused
// first.
type indexHeap []uint32

func (h indexHeap) Len() int           { return len(h) }
func (h indexHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h indexHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *indexHeap) Push(x any)        { *h = append(*h, x.(uint32)) }
func (h *indexHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
