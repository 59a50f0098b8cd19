package datapath

// Metrics receives the datapath's measurements. Implementations must be safe for concurrent
// use. It uses only plain types so that [github.com/ceskit/ceskit/observe.DatapathMetrics],
// which does not import this package, implements it on Prometheus with Cilium's names (given in
// parentheses below).
type Metrics interface {
	// Packets adds n packets the programs handled. drop is Cilium's drop-reason code (133 policy
	// denied, 181 policy deny rule, 134 invalid packet, 157 unsupported fragment) or 0 for a
	// forwarded packet; direction is "INGRESS" or "EGRESS"
	// (cilium_drop_count_total{reason,direction}, cilium_forward_count_total{direction}).
	Packets(drop uint32, direction string, n uint64)
	// LostEvents adds n verdict events that were not delivered: source "ring_buffer" (the ring
	// buffer was full) or "rate_limit" (over the per-CPU event rate)
	// (hubble_lost_events_total{source}).
	LostEvents(source string, n uint64)
	// MapPressure reports how full a map is: entries in use and its capacity
	// (cilium_bpf_map_pressure{map_name}).
	MapPressure(mapName string, entries, capacity int)
	// MapOps adds n map operations: operation "update" or "delete", outcome "success" or
	// "fail" (cilium_bpf_map_ops_total{map_name,operation,outcome}).
	MapOps(mapName, operation, outcome string, n int)
}

// NopMetrics discards every measurement. Its zero value is ready to use.
type NopMetrics struct{}

// Packets does nothing.
func (NopMetrics) Packets(uint32, string, uint64) {}

// LostEvents does nothing.
func (NopMetrics) LostEvents(string, uint64) {}

// MapPressure does nothing.
func (NopMetrics) MapPressure(string, int, int) {}

// MapOps does nothing.
func (NopMetrics) MapOps(string, string, string, int) {}

var _ Metrics = NopMetrics{}
