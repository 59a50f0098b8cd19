package identity

import "time"

// Metrics receives the measurements of the allocator and the garbage collector. Implementations
// must be safe for concurrent use. [github.com/ceskit/ceskit/observe] provides a Prometheus
// implementation that uses Cilium's names where Cilium has the metric.
type Metrics interface {
	// Allocation observes one Allocate call by outcome: "held" (this allocator already held the
	// labels), "cached" (found in the informer cache, no API call), "reused" (an existing
	// identity confirmed through the API), "created" (a new CiliumIdentity), "local" (a
	// local-scope CIDR/FQDN identity), "reserved", or "error".
	Allocation(outcome string, d time.Duration)
	// Usage reports how many identities of the allocatable range exist and its size.
	Usage(used, size int)
	// Conflict counts a lost race resolved by the protocol: kind "claim" (claim created or moved
	// by another allocator), "identity" (the numeric ID was taken by other labels) or "update"
	// (an optimistic-concurrency conflict).
	Conflict(kind string)
	// Write counts one API write by verb ("create", "update", "delete") and resource
	// ("ciliumidentities", "leases").
	Write(verb, resource string)
	// GCEntries reports the result of one garbage-collection pass: how many identities were
	// "alive", "marked", "unmarked" and "deleted" (Cilium: identity_gc_entries{status}).
	GCEntries(status string, n int)
	// GCRun observes one garbage-collection pass by outcome "success" or "fail" and its
	// duration (Cilium: identity_gc_runs{outcome}, identity_gc_latency).
	GCRun(outcome string, d time.Duration)
}

// NopMetrics discards every measurement. Its zero value is ready to use.
type NopMetrics struct{}

// Allocation does nothing.
func (NopMetrics) Allocation(string, time.Duration) {}

// Usage does nothing.
func (NopMetrics) Usage(int, int) {}

// Conflict does nothing.
func (NopMetrics) Conflict(string) {}

// Write does nothing.
func (NopMetrics) Write(string, string) {}

// GCEntries does nothing.
func (NopMetrics) GCEntries(string, int) {}

// GCRun does nothing.
func (NopMetrics) GCRun(string, time.Duration) {}
