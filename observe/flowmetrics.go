package observe

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ceskit/ceskit/observe/metrics"
)

// Cilium monitor message types FlowMetrics names besides EventTypeDrop and
// EventTypePolicyVerdict (pkg/monitor/api MessageType*).
const (
	eventTypeCapture   int32 = 3   // MessageTypeCapture
	eventTypeTrace     int32 = 4   // MessageTypeTrace
	eventTypeAccessLog int32 = 129 // MessageTypeAccessLog: an L7 flow
)

// reservedIdentityHost is the numeric identity of reserved:host.
const reservedIdentityHost = 1

// FlowMetrics is a [Sink] that counts flows as Hubble's metrics handlers do ("flow", "drop"
// and "policy", without context options), so that dashboards and alerts written for Hubble's
// metrics work on ceskit's flow log. Put it next to the log sinks with [MultiSink]. It is built
// on the generic registry of [NewPrometheusRegistry]; build it with [NewFlowMetrics]. It is safe
// for concurrent use. The zero value is not usable; a nil *FlowMetrics discards every record.
type FlowMetrics struct {
	flows    metrics.Counter
	drops    metrics.Counter
	verdicts metrics.Counter
	events   metrics.Counter
}

var _ Sink = (*FlowMetrics)(nil)

// NewFlowMetrics creates the flow metrics on NewPrometheusRegistry(reg) and registers them with
// reg, which must not be nil; nothing is ever registered with Prometheus' global registry. When
// any metric cannot be registered (most often because reg already holds a metric of that name,
// e.g. Hubble's own), NewFlowMetrics unregisters the ones it registered and returns an error
// that wraps the registry's (errors.As with *prometheus.AlreadyRegisteredError works).
//
// The metrics; Hubble's names, labels and label values, except ceskit_events_total:
//
//	hubble_flows_processed_total     counter{protocol, type, subtype, verdict}; every flow (see Write)
//	hubble_drop_total                counter{reason, protocol}; DROPPED flows by drop_reason_desc name
//	hubble_policy_verdicts_total     counter{direction, match, action}; policy verdicts, except those from reserved:host
//	ceskit_events_total              counter{kind="endpoint"|"slice", action="created"|"updated"|"deleted"|"moved"}; endpoint and slice events
//
// Series appear at their first record, as in Hubble.
func NewFlowMetrics(reg prometheus.Registerer) (*FlowMetrics, error) {
	if reg == nil {
		return nil, errors.New("new flow metrics: registerer is nil")
	}
	r := NewPrometheusRegistry(reg).(*promRegistry)
	b := builder{r: r}
	m := &FlowMetrics{}
	m.flows = b.counter(metrics.Opts{
		Name:   "hubble_flows_processed_total",
		Help:   "Total number of flows processed",
		Labels: []string{"protocol", "type", "subtype", "verdict"},
	})
	m.drops = b.counter(metrics.Opts{
		Name:   "hubble_drop_total",
		Help:   "Number of drops",
		Labels: []string{"reason", "protocol"},
	})
	m.verdicts = b.counter(metrics.Opts{
		Name:   "hubble_policy_verdicts_total",
		Help:   "Total number of Cilium network policy verdicts",
		Labels: []string{"direction", "match", "action"},
	})
	m.events = b.counter(metrics.Opts{
		Name:   "ceskit_events_total",
		Help:   "Endpoint and endpoint-slice events written to the audit log, by kind and action",
		Labels: []string{"kind", "action"},
	})
	if b.err != nil {
		r.rollback()
		return nil, b.err
	}
	return m, nil
}

// Write counts r and returns nil, or [ErrEmptyRecord] for a record with neither or both of Flow
// and Event (counting nothing). A nil *FlowMetrics counts nothing and returns nil.
//
// A flow adds 1 to
//   - hubble_flows_processed_total{protocol, type, subtype, verdict}, as Hubble's "flow"
//     handler: type "PolicyVerdict" (policy verdict events), "Drop", "Capture", "Trace" or
//     "L7", else "Unknown" with the event type number as subtype ("0" for a flow without
//     event_type); subtype is otherwise "" (ceskit's flows carry no L7 record or trace
//     observation point); verdict is the verdict's name ("FORWARDED", "DROPPED", "AUDIT", …);
//     protocol is the L4 protocol ("TCP", "UDP", "ICMPv4", "ICMPv6", "SCTP", "Unknown L4"), or
//     "Unknown L7" for L7 events and "Unknown flow" for other event types;
//   - hubble_drop_total{reason, protocol} when the verdict is DROPPED, as Hubble's "drop"
//     handler: reason is the drop_reason_desc name ("POLICY_DENIED", "POLICY_DENY", …);
//   - hubble_policy_verdicts_total{direction, match, action} for policy verdict events, as
//     Hubble's "policy" handler: direction, match and action are the traffic direction, the
//     policy match type in Hubble's spelling and the verdict, lower case ("ingress", "l3-l4",
//     "dropped"). Like Hubble, it skips verdicts whose source is reserved:host (identity 1):
//     the host may reach every local endpoint.
//
// An event adds 1 to ceskit_events_total{kind, action}.
func (m *FlowMetrics) Write(_ context.Context, r Record) error {
	if (r.Flow == nil) == (r.Event == nil) {
		return ErrEmptyRecord
	}
	if m == nil {
		return nil
	}
	if e := r.Event; e != nil {
		m.events.Add(1, string(e.Kind), string(e.Action))
		return nil
	}
	f := r.Flow
	var typ int32
	if f.EventType != nil {
		typ = f.EventType.Type
	}
	proto := hubbleFlowProtocol(f, typ)
	typeName, subType := hubbleFlowType(typ)
	m.flows.Add(1, proto, typeName, subType, f.Verdict.String())
	if f.Verdict == VerdictDropped {
		m.drops.Add(1, f.DropReasonDesc.String(), proto)
	}
	if typ == EventTypePolicyVerdict && (f.Source == nil || f.Source.Identity != reservedIdentityHost) {
		m.verdicts.Add(1,
			strings.ToLower(f.TrafficDirection.String()),
			strings.ToLower(f.PolicyMatchType.String()),
			strings.ToLower(f.Verdict.String()))
	}
	return nil
}

// hubbleFlowType returns the type and subtype labels Hubble's flow handler gives an event type.
func hubbleFlowType(typ int32) (typeName, subType string) {
	switch typ {
	case eventTypeAccessLog:
		return "L7", ""
	case EventTypeDrop:
		return "Drop", ""
	case eventTypeCapture:
		return "Capture", ""
	case eventTypeTrace:
		return "Trace", ""
	case EventTypePolicyVerdict:
		return "PolicyVerdict", ""
	}
	return "Unknown", strconv.FormatInt(int64(typ), 10)
}

// hubbleFlowProtocol is Hubble's FlowProtocol (pkg/hubble/api/v1) for ceskit's flows.
func hubbleFlowProtocol(f *Flow, typ int32) string {
	switch typ {
	case eventTypeAccessLog:
		return "Unknown L7"
	case EventTypeDrop, eventTypeTrace, EventTypePolicyVerdict, eventTypeCapture:
		if p := f.L4.Protocol(); p != "" {
			return p
		}
		return "Unknown L4"
	}
	return "Unknown flow"
}
