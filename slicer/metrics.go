package slicer

import "time"

// Metrics receives the controller's measurements. Implementations must be safe for concurrent
// use. [github.com/ceskit/ceskit/observe] provides a Prometheus implementation whose names follow
// Cilium's operator (prefix cilium_operator_) where Cilium has the metric, so existing dashboards
// keep working; the names below are those.
type Metrics interface {
	// EndpointsPerSlice observes the size of a slice after a write
	// (number_of_ceps_per_ces).
	EndpointsPerSlice(n int)
	// EndpointChanges observes how many endpoints one write inserted ("cepinserted") or removed
	// ("cepremoved") (number_of_cep_changes_per_ces{opcode}).
	EndpointChanges(opcode string, n int)
	// Sync counts every processed slice, as Cilium does: outcome "success" (a write, nothing to
	// write, or a shadow-mode diff) or "fail", failureType "" or "transient"
	// (ces_sync_total{outcome,failure_type}).
	Sync(outcome, failureType string)
	// QueueingDelay observes how long a slice waited in queue "fast" (priority) or "standard"
	// (ces_queueing_delay_seconds{queue}).
	QueueingDelay(queue string, d time.Duration)
	// Propagation observes the time from the first endpoint change a write carries to the end of
	// that write.
	Propagation(d time.Duration)
	// Write counts one API write by verb ("create", "update", "delete") with the bytes of the
	// object sent.
	Write(verb string, bytes int)
	// Conflict counts a write rejected with 409 Conflict or AlreadyExists.
	Conflict()
	// EchoSuppressed counts a watch event for the controller's own write that was not reconciled.
	EchoSuppressed()
	// Slices reports the slices a perfect packing needs (desired) and the slices that exist.
	Slices(desired, actual int)
	// Degraded reports whether the controller is Degraded.
	Degraded(degraded bool)
}

// NopMetrics discards every measurement. Its zero value is ready to use.
type NopMetrics struct{}

// EndpointsPerSlice does nothing.
func (NopMetrics) EndpointsPerSlice(int) {}

// EndpointChanges does nothing.
func (NopMetrics) EndpointChanges(string, int) {}

// Sync does nothing.
func (NopMetrics) Sync(string, string) {}

// QueueingDelay does nothing.
func (NopMetrics) QueueingDelay(string, time.Duration) {}

// Propagation does nothing.
func (NopMetrics) Propagation(time.Duration) {}

// Write does nothing.
func (NopMetrics) Write(string, int) {}

// Conflict does nothing.
func (NopMetrics) Conflict() {}

// EchoSuppressed does nothing.
func (NopMetrics) EchoSuppressed() {}

// Slices does nothing.
func (NopMetrics) Slices(int, int) {}

// Degraded does nothing.
func (NopMetrics) Degraded(bool) {}

var _ Metrics = NopMetrics{}
