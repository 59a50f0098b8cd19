package slicer

import (
	"cmp"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/ceskit/ceskit/slicer/ciliumv2alpha1"
)

// Status is a snapshot of the controller's state.
type Status struct {
	// Synced is true once the caches are synced and the existing slices adopted.
	Synced bool `json:"synced"`
	// Shadow is true when the controller writes nothing.
	Shadow bool `json:"shadow"`
	// StandingBy names the controller that holds the single-writer guard (the heartbeat Lease)
	// while this one computes and writes nothing (see [Config].WriterIdentity); empty when this
	// controller writes, or has not renewed the Lease yet.
	StandingBy string `json:"standingBy,omitempty"`
	// Degraded is true after [Config.ErrorThreshold] consecutive failed syncs; DegradedReason
	// says which.
	Degraded       bool   `json:"degraded"`
	DegradedReason string `json:"degradedReason,omitempty"`
	// LastError is the last sync error and LastErrorTime when it happened.
	LastError     string    `json:"lastError,omitempty"`
	LastErrorTime time.Time `json:"lastErrorTime,omitzero"`

	// Slices is the number of slices the controller manages; DesiredSlices the number a perfect
	// packing needs.
	Slices        int `json:"slices"`
	DesiredSlices int `json:"desiredSlices"`
	// Endpoints is the number of endpoints placed in slices.
	Endpoints int `json:"endpoints"`
	// PendingEndpoints have no identity (or IP) yet and are in no slice.
	PendingEndpoints int `json:"pendingEndpoints"`
	// InvalidEndpoints are endpoints whose latest version is malformed, with the error naming
	// the field and value. Each keeps its last valid entry, if it had one.
	InvalidEndpoints []string `json:"invalidEndpoints,omitempty"`
	// OutOfSync is the number of slices whose known content differs from the model: pending
	// writes, or the diff in shadow mode.
	OutOfSync int `json:"outOfSync"`
	// Fill counts slices by how full they are, in tenths of MaxEndpointsPerSlice: Fill[0] holds
	// slices up to 10 % full, Fill[9] those above 90 %.
	Fill [10]int `json:"fill"`

	// QueuePriority and QueueStandard are the slices waiting in each queue.
	QueuePriority int `json:"queuePriority"`
	QueueStandard int `json:"queueStandard"`

	// Writes by verb, bytes of objects sent, and what was avoided.
	Creates          int64 `json:"creates"`
	Updates          int64 `json:"updates"`
	Deletes          int64 `json:"deletes"`
	BytesWritten     int64 `json:"bytesWritten"`
	Conflicts        int64 `json:"conflicts"`
	EchoesSuppressed int64 `json:"echoesSuppressed"`
	NoOpSyncs        int64 `json:"noOpSyncs"`
	Syncs            int64 `json:"syncs"`
	FailedSyncs      int64 `json:"failedSyncs"`
	// Repaired counts slices found out of sync by resyncs.
	Repaired int64 `json:"repaired"`

	// Nodes is the node count and RateLimit the write-rate step in force.
	Nodes     int           `json:"nodes"`
	RateLimit RateLimitStep `json:"rateLimit"`
}

// Status returns a snapshot of the controller's state.
func (c *Controller) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Status{
		Synced:           c.synced,
		Shadow:           c.cfg.Shadow,
		StandingBy:       c.otherWriter,
		Degraded:         c.degraded,
		DegradedReason:   c.degradedWhy,
		LastErrorTime:    c.lastErrAt,
		Slices:           len(c.m.slices),
		PendingEndpoints: len(c.pending),
		QueuePriority:    int(c.fq.fastLen.Load()),
		QueueStandard:    int(c.fq.standardLen.Load()),
		Creates:          c.counts.creates,
		Updates:          c.counts.updates,
		Deletes:          c.counts.deletes,
		BytesWritten:     c.counts.bytes,
		Conflicts:        c.counts.conflicts,
		EchoesSuppressed: c.counts.echoes,
		NoOpSyncs:        c.counts.noops,
		Syncs:            c.counts.syncs,
		FailedSyncs:      c.counts.failures,
		Repaired:         c.counts.repaired,
		Nodes:            len(c.nodes.GetStore().ListKeys()),
		RateLimit:        c.limiter.current(),
	}
	if c.lastErr != nil {
		st.LastError = c.lastErr.Error()
	}
	for _, g := range c.m.groups {
		st.DesiredSlices += (g.size + c.m.max - 1) / c.m.max
		st.Endpoints += g.size
	}
	for _, s := range c.m.slices {
		st.Fill[min(9, max(0, (len(s.members)*10-1)/c.m.max))]++
		if !c.m.inSync(s) {
			st.OutOfSync++
		}
	}
	for _, e := range c.invalid {
		st.InvalidEndpoints = append(st.InvalidEndpoints, e.Error())
	}
	slices.Sort(st.InvalidEndpoints)
	return st
}

// HasSynced reports whether the caches are synced and the existing slices adopted.
func (c *Controller) HasSynced() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.synced
}

// SliceDiff is what the controller would write to one slice.
type SliceDiff struct {
	// Slice is the slice's name and Namespace the namespace of its endpoints.
	Slice     string `json:"slice"`
	Namespace string `json:"namespace"`
	// Op is "create", "update" or "delete".
	Op string `json:"op"`
	// Added, Removed and Changed list endpoint names, sorted.
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
	Changed []string `json:"changed,omitempty"`
}

// Diff returns, in shadow mode, what the controller would write, by slice name. Outside shadow
// mode it is empty: differences are written instead.
func (c *Controller) Diff() []SliceDiff {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]SliceDiff, 0, len(c.diffs))
	for _, d := range c.diffs {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b SliceDiff) int { return cmp.Compare(a.Slice, b.Slice) })
	return out
}

// diffSlices compares a desired slice with an observed one; either may be nil.
func diffSlices(want, have *ciliumv2alpha1.CiliumEndpointSlice) SliceDiff {
	var d SliceDiff
	index := func(o *ciliumv2alpha1.CiliumEndpointSlice) map[string]*ciliumv2alpha1.CoreCiliumEndpoint {
		m := map[string]*ciliumv2alpha1.CoreCiliumEndpoint{}
		if o != nil {
			d.Slice, d.Namespace = o.Name, o.Namespace
			for i := range o.Endpoints {
				m[o.Endpoints[i].Name] = &o.Endpoints[i]
			}
		}
		return m
	}
	h, w := index(have), index(want)
	switch {
	case want == nil:
		d.Op = "delete"
	case have == nil:
		d.Op = "create"
	default:
		d.Op = "update"
	}
	for name, ep := range w {
		if o, ok := h[name]; !ok {
			d.Added = append(d.Added, name)
		} else if !equality.Semantic.DeepEqual(*ep, *o) {
			d.Changed = append(d.Changed, name)
		}
	}
	for name := range h {
		if _, ok := w[name]; !ok {
			d.Removed = append(d.Removed, name)
		}
	}
	slices.Sort(d.Added)
	slices.Sort(d.Removed)
	slices.Sort(d.Changed)
	return d
}
