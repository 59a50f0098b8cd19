package observe

import (
	"errors"
	"math"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ceskit/ceskit/observe/metrics"
)

// Label values the datapath package documents. Series with these values exist from the start.
var (
	datapathDirections  = []string{"INGRESS", "EGRESS"}
	datapathLostSources = []string{"ring_buffer", "rate_limit"}
	// datapathPolicyDrops are the policy drop codes whose cilium_drop_count_total series exist
	// from the start, so that a rate of policy drops is 0 rather than absent.
	datapathPolicyDrops = []uint32{uint32(DropPolicyDenied), uint32(DropPolicyDeny)}
)

// ciliumDropReasons are the human-readable drop reasons Cilium's agent puts in the reason label
// of cilium_drop_count_total (pkg/monitor/api/drop.go, DropReason), for the codes ceskit's
// datapath produces.
var ciliumDropReasons = map[uint32]string{
	133: "Policy denied",
	134: "Invalid packet",
	157: "IP fragmentation not supported",
	181: "Policy denied by denylist",
}

// dropReasonLabel returns the reason label value of cilium_drop_count_total for Cilium drop
// code: Cilium's own text for the codes ceskit's datapath produces (133 "Policy denied", 134
// "Invalid packet", 157 "IP fragmentation not supported", 181 "Policy denied by denylist"), the
// flow.proto name of any other code that has one ("AUTH_REQUIRED" for 189), or the code in
// decimal.
func dropReasonLabel(code uint32) string {
	if s, ok := ciliumDropReasons[code]; ok {
		return s
	}
	if code <= math.MaxInt32 {
		if s, ok := dropReasonNames[int32(code)]; ok {
			return s
		}
	}
	return strconv.FormatUint(uint64(code), 10)
}

// DatapathMetrics is the Prometheus implementation of the datapath's Metrics interface
// (github.com/ceskit/ceskit/datapath.Metrics), built on the generic registry of
// [NewPrometheusRegistry]. Build it with [NewDatapathMetrics] and pass it as the datapath's
// Metrics. Its methods are safe for concurrent use. The zero value is not usable; a nil
// *DatapathMetrics discards every measurement.
type DatapathMetrics struct {
	drops    metrics.Counter
	forwards metrics.Counter
	lost     metrics.Counter
	pressure metrics.Gauge
	ops      metrics.Counter
}

// NewDatapathMetrics creates the datapath's metrics on NewPrometheusRegistry(reg) and registers
// them with reg, which must not be nil; nothing is ever registered with Prometheus' global
// registry. When any metric cannot be registered, NewDatapathMetrics unregisters the ones it
// registered and returns an error that wraps the registry's (errors.As with
// *prometheus.AlreadyRegisteredError works).
//
// cilium_bpf_map_pressure is shared with [NewPolicyMetrics]: both can be registered into one
// registry and write their own map_name series of the one gauge.
//
// The metrics, with the names of Cilium's agent and of Hubble:
//
//	cilium_drop_count_total       counter{reason, direction="INGRESS"|"EGRESS"}; dropped packets; reason is Cilium's text for the drop code (see Packets)
//	cilium_forward_count_total    counter{direction}; forwarded packets
//	hubble_lost_events_total      counter{source="ring_buffer"|"rate_limit"}; verdict events not delivered
//	cilium_bpf_map_pressure       gauge{map_name}; entries / capacity of the map
//	cilium_bpf_map_ops_total      counter{map_name, operation="update"|"delete", outcome="success"|"fail"}; map operations
//
// The forward series of both directions, the drop series of the two policy drops (133 "Policy
// denied", 181 "Policy denied by denylist") in both directions and the lost-event series of
// both sources exist from the start at 0; other series appear at first use.
func NewDatapathMetrics(reg prometheus.Registerer) (*DatapathMetrics, error) {
	if reg == nil {
		return nil, errors.New("new datapath metrics: registerer is nil")
	}
	r := NewPrometheusRegistry(reg).(*promRegistry)
	b := builder{r: r}
	m := &DatapathMetrics{}
	m.drops = b.counter(metrics.Opts{
		Name:   "cilium_drop_count_total",
		Help:   "Total dropped packets, tagged by drop reason and ingress/egress direction",
		Labels: []string{"reason", "direction"},
	})
	m.forwards = b.counter(metrics.Opts{
		Name:   "cilium_forward_count_total",
		Help:   "Total forwarded packets, tagged by ingress/egress direction",
		Labels: []string{"direction"},
	})
	m.lost = b.counter(metrics.Opts{
		Name:   "hubble_lost_events_total",
		Help:   "Number of lost events",
		Labels: []string{"source"},
	})
	m.pressure = b.sharedGauge(mapPressureOpts)
	m.ops = b.counter(metrics.Opts{
		Name:   "cilium_bpf_map_ops_total",
		Help:   "Total operations on map, tagged by map name",
		Labels: []string{"map_name", "operation", "outcome"},
	})
	if b.err != nil {
		r.rollback()
		return nil, b.err
	}
	for _, d := range datapathDirections {
		m.forwards.Add(0, d)
		for _, code := range datapathPolicyDrops {
			m.drops.Add(0, dropReasonLabel(code), d)
		}
	}
	for _, s := range datapathLostSources {
		m.lost.Add(0, s)
	}
	return m, nil
}

// Packets adds n packets: forwarded ones (drop 0) to cilium_forward_count_total{direction},
// dropped ones to cilium_drop_count_total{reason,direction}. direction is "INGRESS" or
// "EGRESS". reason is the text Cilium's agent uses for the drop code where ceskit's datapath
// produces it (133 "Policy denied", 134 "Invalid packet", 157 "IP fragmentation not
// supported", 181 "Policy denied by denylist"), otherwise the code's flow.proto name
// ("AUTH_REQUIRED" for 189; see [DropReason]) or, for a code flow.proto lacks, its number.
func (m *DatapathMetrics) Packets(drop uint32, direction string, n uint64) {
	if m == nil {
		return
	}
	if drop == 0 {
		m.forwards.Add(float64(n), direction)
		return
	}
	m.drops.Add(float64(n), dropReasonLabel(drop), direction)
}

// LostEvents adds n verdict events that were not delivered, by source "ring_buffer" or
// "rate_limit" (hubble_lost_events_total{source}).
func (m *DatapathMetrics) LostEvents(source string, n uint64) {
	if m == nil {
		return
	}
	m.lost.Add(float64(n), source)
}

// MapPressure sets cilium_bpf_map_pressure{map_name} to entries/capacity (0 when capacity is
// 0 or less).
func (m *DatapathMetrics) MapPressure(mapName string, entries, capacity int) {
	if m == nil {
		return
	}
	m.pressure.Set(fillRatio(entries, capacity), mapName)
}

// MapOps adds n map operations (cilium_bpf_map_ops_total{map_name,operation,outcome}); a
// negative n is dropped and counted in ceskit_metrics_errors_total.
func (m *DatapathMetrics) MapOps(mapName, operation, outcome string, n int) {
	if m == nil {
		return
	}
	m.ops.Add(float64(n), mapName, operation, outcome)
}
