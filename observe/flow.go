package observe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
)

// This file holds the audit/flow log: the [Flow] record of a policy verdict, the [Event] record
// of an endpoint or slice change, and the [Sink]s that write them.
//
// Flow's JSON is Hubble's: the keys, nesting and value spellings are those of the Flow message
// in Cilium's api/v1/flow/flow.proto as protojson writes it with the proto field names
// (UseProtoNames), which is what `hubble observe -o json` and Hubble's flow exporter print:
// snake_case keys except where the proto field itself is spelled otherwise ("IP", "ipVersion",
// "ID", "Type", "TCP", "UDP", "ICMPv4"), enum values as their names ("DROPPED", "INGRESS",
// "POLICY_DENIED"), unset fields left out, Timestamps as RFC 3339 in UTC with 0, 3, 6 or 9
// fractional digits, and uint64 values as strings. What Hubble has no field for lives under the
// separate key "ceskit" ([FlowExtras]); endpoint and slice changes, which are not flows at all,
// are [Event]s under "ceskit_event".

// Verdict is the outcome of a flow, Hubble's flow.Verdict; the numbers are the proto's. It is
// written to JSON as the value's name ("FORWARDED") and read from a name or a number.
type Verdict int32

// Verdicts, as in flow.proto. A policy verdict is FORWARDED (allowed), DROPPED (denied) or AUDIT
// (would have been denied, but the endpoint's policy is in audit mode).
const (
	VerdictUnknown    Verdict = 0 // VERDICT_UNKNOWN
	VerdictForwarded  Verdict = 1 // FORWARDED
	VerdictDropped    Verdict = 2 // DROPPED
	VerdictError      Verdict = 3 // ERROR
	VerdictAudit      Verdict = 4 // AUDIT
	VerdictRedirected Verdict = 5 // REDIRECTED
	VerdictTraced     Verdict = 6 // TRACED
	VerdictTranslated Verdict = 7 // TRANSLATED
)

var verdictNames = map[int32]string{
	0: "VERDICT_UNKNOWN", 1: "FORWARDED", 2: "DROPPED", 3: "ERROR",
	4: "AUDIT", 5: "REDIRECTED", 6: "TRACED", 7: "TRANSLATED",
}

// String returns the proto name of v, or its number when flow.proto has no name for it.
func (v Verdict) String() string { return enumString(int32(v), verdictNames) }

// MarshalJSON writes the proto name of v, or its number when it has none (as protojson does).
func (v Verdict) MarshalJSON() ([]byte, error) { return marshalEnum(int32(v), verdictNames) }

// UnmarshalJSON reads a proto name or a number.
func (v *Verdict) UnmarshalJSON(b []byte) error {
	n, err := unmarshalEnum(b, verdictNames, "verdict")
	*v = Verdict(n)
	return err
}

// DropReason is why a flow was dropped, Hubble's flow.DropReason (Cilium's datapath drop codes).
// Policy drops are [DropPolicyDenied] (no policy allowed the flow: default deny) and
// [DropPolicyDeny] (a deny rule matched). It is written to JSON as the value's name and read from
// a name or a number.
type DropReason uint32

// The drop reasons of policy enforcement; every other code of flow.proto has its name too.
const (
	DropReasonUnknown DropReason = 0   // DROP_REASON_UNKNOWN
	DropPolicyDenied  DropReason = 133 // POLICY_DENIED: default deny, no rule allowed the flow
	DropPolicyDeny    DropReason = 181 // POLICY_DENY: an explicit deny rule matched
	DropAuthRequired  DropReason = 189 // AUTH_REQUIRED: the allowing rule requires authentication
)

// The names of flow.proto's DropReason values.
var dropReasonNames = map[int32]string{
	0: "DROP_REASON_UNKNOWN", 130: "INVALID_SOURCE_MAC", 131: "INVALID_DESTINATION_MAC",
	132: "INVALID_SOURCE_IP", 133: "POLICY_DENIED", 134: "INVALID_PACKET_DROPPED",
	135: "CT_TRUNCATED_OR_INVALID_HEADER", 136: "CT_MISSING_TCP_ACK_FLAG",
	137: "CT_UNKNOWN_L4_PROTOCOL", 138: "CT_CANNOT_CREATE_ENTRY_FROM_PACKET",
	139: "UNSUPPORTED_L3_PROTOCOL", 140: "MISSED_TAIL_CALL", 141: "ERROR_WRITING_TO_PACKET",
	142: "UNKNOWN_L4_PROTOCOL", 143: "UNKNOWN_ICMPV4_CODE", 144: "UNKNOWN_ICMPV4_TYPE",
	145: "UNKNOWN_ICMPV6_CODE", 146: "UNKNOWN_ICMPV6_TYPE", 147: "ERROR_RETRIEVING_TUNNEL_KEY",
	148: "ERROR_RETRIEVING_TUNNEL_OPTIONS", 149: "INVALID_GENEVE_OPTION",
	150: "UNKNOWN_L3_TARGET_ADDRESS", 151: "STALE_OR_UNROUTABLE_IP",
	152: "NO_MATCHING_LOCAL_CONTAINER_FOUND", 153: "ERROR_WHILE_CORRECTING_L3_CHECKSUM",
	154: "ERROR_WHILE_CORRECTING_L4_CHECKSUM", 155: "CT_MAP_INSERTION_FAILED",
	156: "INVALID_IPV6_EXTENSION_HEADER", 157: "IP_FRAGMENTATION_NOT_SUPPORTED",
	158: "SERVICE_BACKEND_NOT_FOUND", 160: "NO_TUNNEL_OR_ENCAPSULATION_ENDPOINT",
	161: "FAILED_TO_INSERT_INTO_PROXYMAP", 162: "REACHED_EDT_RATE_LIMITING_DROP_HORIZON",
	163: "UNKNOWN_CONNECTION_TRACKING_STATE", 164: "LOCAL_HOST_IS_UNREACHABLE",
	165: "NO_CONFIGURATION_AVAILABLE_TO_PERFORM_POLICY_DECISION", 166: "UNSUPPORTED_L2_PROTOCOL",
	167: "NO_MAPPING_FOR_NAT_MASQUERADE", 168: "UNSUPPORTED_PROTOCOL_FOR_NAT_MASQUERADE",
	169: "FIB_LOOKUP_FAILED", 170: "ENCAPSULATION_TRAFFIC_IS_PROHIBITED", 171: "INVALID_IDENTITY",
	172: "UNKNOWN_SENDER", 173: "NAT_NOT_NEEDED", 174: "IS_A_CLUSTERIP",
	175: "FIRST_LOGICAL_DATAGRAM_FRAGMENT_NOT_FOUND", 176: "FORBIDDEN_ICMPV6_MESSAGE",
	177: "DENIED_BY_LB_SRC_RANGE_CHECK", 178: "SOCKET_LOOKUP_FAILED", 179: "SOCKET_ASSIGN_FAILED",
	180: "PROXY_REDIRECTION_NOT_SUPPORTED_FOR_PROTOCOL", 181: "POLICY_DENY", 182: "VLAN_FILTERED",
	183: "INVALID_VNI", 184: "INVALID_TC_BUFFER", 185: "NO_SID", 186: "MISSING_SRV6_STATE",
	187: "NAT46", 188: "NAT64", 189: "AUTH_REQUIRED", 190: "CT_NO_MAP_FOUND",
	191: "SNAT_NO_MAP_FOUND", 192: "INVALID_CLUSTER_ID", 193: "UNSUPPORTED_PROTOCOL_FOR_DSR_ENCAP",
	194: "NO_EGRESS_GATEWAY", 196: "TTL_EXCEEDED", 197: "NO_NODE_ID", 202: "DROP_HOST_NOT_READY",
	203: "DROP_EP_NOT_READY",
}

// String returns the proto name of r, or its number when flow.proto has no name for it.
func (r DropReason) String() string { return enumString(int32(r), dropReasonNames) }

// MarshalJSON writes the proto name of r, or its number when it has none.
func (r DropReason) MarshalJSON() ([]byte, error) { return marshalEnum(int32(r), dropReasonNames) }

// UnmarshalJSON reads a proto name or a number.
func (r *DropReason) UnmarshalJSON(b []byte) error {
	n, err := unmarshalEnum(b, dropReasonNames, "drop reason")
	*r = DropReason(n)
	return err
}

// TrafficDirection is the direction a policy verdict was taken in, Hubble's
// flow.TrafficDirection: INGRESS into the local endpoint, EGRESS out of it.
type TrafficDirection int32

// Traffic directions, as in flow.proto.
const (
	DirectionUnknown TrafficDirection = 0 // TRAFFIC_DIRECTION_UNKNOWN
	DirectionIngress TrafficDirection = 1 // INGRESS
	DirectionEgress  TrafficDirection = 2 // EGRESS
)

var directionNames = map[int32]string{0: "TRAFFIC_DIRECTION_UNKNOWN", 1: "INGRESS", 2: "EGRESS"}

// String returns the proto name of d.
func (d TrafficDirection) String() string { return enumString(int32(d), directionNames) }

// MarshalJSON writes the proto name of d, or its number when it has none.
func (d TrafficDirection) MarshalJSON() ([]byte, error) {
	return marshalEnum(int32(d), directionNames)
}

// UnmarshalJSON reads a proto name or a number.
func (d *TrafficDirection) UnmarshalJSON(b []byte) error {
	n, err := unmarshalEnum(b, directionNames, "traffic direction")
	*d = TrafficDirection(n)
	return err
}

// IPVersion is Hubble's flow.IPVersion.
type IPVersion int32

// IP versions, as in flow.proto.
const (
	IPNotUsed IPVersion = 0 // IP_NOT_USED
	IPv4      IPVersion = 1 // IPv4
	IPv6      IPVersion = 2 // IPv6
)

var ipVersionNames = map[int32]string{0: "IP_NOT_USED", 1: "IPv4", 2: "IPv6"}

// String returns the proto name of v.
func (v IPVersion) String() string { return enumString(int32(v), ipVersionNames) }

// MarshalJSON writes the proto name of v, or its number when it has none.
func (v IPVersion) MarshalJSON() ([]byte, error) { return marshalEnum(int32(v), ipVersionNames) }

// UnmarshalJSON reads a proto name or a number.
func (v *IPVersion) UnmarshalJSON(b []byte) error {
	n, err := unmarshalEnum(b, ipVersionNames, "IP version")
	*v = IPVersion(n)
	return err
}

// FlowType is Hubble's flow.FlowType; policy verdicts are [FlowTypeL3L4].
type FlowType int32

// Flow types, as in flow.proto.
const (
	FlowTypeUnknown FlowType = 0 // UNKNOWN_TYPE
	FlowTypeL3L4    FlowType = 1 // L3_L4
	FlowTypeL7      FlowType = 2 // L7
	FlowTypeSock    FlowType = 3 // SOCK
)

var flowTypeNames = map[int32]string{0: "UNKNOWN_TYPE", 1: "L3_L4", 2: "L7", 3: "SOCK"}

// String returns the proto name of t.
func (t FlowType) String() string { return enumString(int32(t), flowTypeNames) }

// MarshalJSON writes the proto name of t, or its number when it has none.
func (t FlowType) MarshalJSON() ([]byte, error) { return marshalEnum(int32(t), flowTypeNames) }

// UnmarshalJSON reads a proto name or a number.
func (t *FlowType) UnmarshalJSON(b []byte) error {
	n, err := unmarshalEnum(b, flowTypeNames, "flow type")
	*t = FlowType(n)
	return err
}

// PolicyMatchType is what part of a policy entry matched a policy verdict, Hubble's
// policy_match_type: a plain uint32 in flow.proto (so a number in JSON), with the values of
// Cilium's pkg/monitor/api PolicyMatch* constants.
type PolicyMatchType uint32

// Policy match types, as Cilium numbers them.
const (
	PolicyMatchNone      PolicyMatchType = 0 // no entry matched (default deny or default allow)
	PolicyMatchL3Only    PolicyMatchType = 1 // the peer identity, any port and protocol
	PolicyMatchL3L4      PolicyMatchType = 2 // the peer identity and the port
	PolicyMatchL4Only    PolicyMatchType = 3 // the port, any peer
	PolicyMatchAll       PolicyMatchType = 4 // allow-all
	PolicyMatchL3Proto   PolicyMatchType = 5 // the peer identity and the protocol, any port
	PolicyMatchProtoOnly PolicyMatchType = 6 // the protocol, any peer and port
)

// String returns Hubble's spelling of t ("L3-L4"), as in `hubble observe` and the match label
// of hubble_policy_verdicts_total.
func (t PolicyMatchType) String() string {
	switch t {
	case PolicyMatchNone:
		return "none"
	case PolicyMatchL3Only:
		return "L3-Only"
	case PolicyMatchL3L4:
		return "L3-L4"
	case PolicyMatchL4Only:
		return "L4-Only"
	case PolicyMatchAll:
		return "all"
	case PolicyMatchL3Proto:
		return "L3-Proto"
	case PolicyMatchProtoOnly:
		return "Proto-Only"
	}
	return strconv.FormatUint(uint64(t), 10)
}

// Cilium monitor message types (pkg/monitor/api MessageType*), the values of [EventType].Type.
const (
	EventTypeDrop          int32 = 1 // MessageTypeDrop: a drop notification
	EventTypePolicyVerdict int32 = 5 // MessageTypePolicyVerdict: a policy verdict notification
)

// EventType is the Cilium event a flow came from, Hubble's flow.CiliumEventType. Policy verdicts
// have Type [EventTypePolicyVerdict] and SubType 0.
type EventType struct {
	Type    int32 `json:"type,omitempty"`
	SubType int32 `json:"sub_type,omitempty"`
}

// Workload is the controller owning a pod, Hubble's flow.Workload.
type Workload struct {
	Name string `json:"name,omitempty"`
	Kind string `json:"kind,omitempty"` // "Deployment", "DaemonSet", …
}

// Endpoint is one side of a flow, Hubble's flow.Endpoint. For the remote side of a verdict only
// Identity (and what the identity's labels tell) may be known.
type Endpoint struct {
	// ID is the local endpoint's ID on its node (0 for remote peers).
	ID uint32 `json:"ID,omitempty"`
	// Identity is the numeric security identity.
	Identity uint32 `json:"identity,omitempty"`
	// Namespace is the pod's namespace.
	Namespace string `json:"namespace,omitempty"`
	// Labels are the identity's labels in Cilium's "source:key=value" form, sorted:
	// "k8s:app=web", "k8s:io.kubernetes.pod.namespace=shop", "reserved:world".
	Labels []string `json:"labels,omitempty"`
	// PodName is the pod's name.
	PodName string `json:"pod_name,omitempty"`
	// Workloads are the pod's owning controllers.
	Workloads []Workload `json:"workloads,omitempty"`
}

// IP is a flow's layer 3, Hubble's flow.IP; addresses are in their textual form.
type IP struct {
	Source      string    `json:"source,omitempty"`
	Destination string    `json:"destination,omitempty"`
	IPVersion   IPVersion `json:"ipVersion,omitempty"`
	Encrypted   bool      `json:"encrypted,omitempty"`
}

// TCPFlags are the TCP flags of a packet, Hubble's flow.TCPFlags.
type TCPFlags struct {
	FIN bool `json:"FIN,omitempty"`
	SYN bool `json:"SYN,omitempty"`
	RST bool `json:"RST,omitempty"`
	PSH bool `json:"PSH,omitempty"`
	ACK bool `json:"ACK,omitempty"`
	URG bool `json:"URG,omitempty"`
	ECE bool `json:"ECE,omitempty"`
	CWR bool `json:"CWR,omitempty"`
	NS  bool `json:"NS,omitempty"`
}

// TCP is Hubble's flow.TCP.
type TCP struct {
	SourcePort      uint32    `json:"source_port,omitempty"`
	DestinationPort uint32    `json:"destination_port,omitempty"`
	Flags           *TCPFlags `json:"flags,omitempty"`
}

// UDP is Hubble's flow.UDP.
type UDP struct {
	SourcePort      uint32 `json:"source_port,omitempty"`
	DestinationPort uint32 `json:"destination_port,omitempty"`
}

// SCTP is Hubble's flow.SCTP.
type SCTP struct {
	SourcePort      uint32 `json:"source_port,omitempty"`
	DestinationPort uint32 `json:"destination_port,omitempty"`
}

// ICMP is Hubble's flow.ICMPv4 and flow.ICMPv6, which have the same fields.
type ICMP struct {
	Type uint32 `json:"type,omitempty"`
	Code uint32 `json:"code,omitempty"`
}

// Layer4 is a flow's layer 4, Hubble's flow.Layer4: at most one field is set (a oneof in the
// proto).
type Layer4 struct {
	TCP    *TCP  `json:"TCP,omitempty"`
	UDP    *UDP  `json:"UDP,omitempty"`
	ICMPv4 *ICMP `json:"ICMPv4,omitempty"`
	ICMPv6 *ICMP `json:"ICMPv6,omitempty"`
	SCTP   *SCTP `json:"SCTP,omitempty"`
}

// Protocol returns "TCP", "UDP", "ICMPv4", "ICMPv6", "SCTP", or "" when none is set.
func (l *Layer4) Protocol() string {
	switch {
	case l == nil:
		return ""
	case l.TCP != nil:
		return "TCP"
	case l.UDP != nil:
		return "UDP"
	case l.ICMPv4 != nil:
		return "ICMPv4"
	case l.ICMPv6 != nil:
		return "ICMPv6"
	case l.SCTP != nil:
		return "SCTP"
	}
	return ""
}

// ports returns the source and destination ports of TCP, UDP or SCTP.
func (l *Layer4) ports() (src, dst uint32, ok bool) {
	switch {
	case l == nil:
	case l.TCP != nil:
		return l.TCP.SourcePort, l.TCP.DestinationPort, true
	case l.UDP != nil:
		return l.UDP.SourcePort, l.UDP.DestinationPort, true
	case l.SCTP != nil:
		return l.SCTP.SourcePort, l.SCTP.DestinationPort, true
	}
	return 0, 0, false
}

// Policy names a policy that allowed or denied a flow, Hubble's flow.Policy.
type Policy struct {
	// Name is the policy's name.
	Name string `json:"name,omitempty"`
	// Namespace is the policy's namespace; empty for cluster-wide policies.
	Namespace string `json:"namespace,omitempty"`
	// Labels are the rule's labels in "source:key=value" form, as Cilium derives them
	// ("k8s:io.cilium.k8s.policy.name=deny-web", …).
	Labels []string `json:"labels,omitempty"`
	// Revision is the policy repository revision the verdict was attributed at. protojson
	// writes uint64 as a JSON string, and so does this.
	Revision uint64 `json:"revision,omitempty,string"`
	// Kind is the policy's kind: "NetworkPolicy", "CiliumNetworkPolicy",
	// "CiliumClusterwideNetworkPolicy", ….
	Kind string `json:"kind,omitempty"`
}

// String returns "kind/namespace/name", leaving out the parts that are empty.
func (p Policy) String() string {
	parts := make([]string, 0, 3)
	for _, s := range []string{p.Kind, p.Namespace, p.Name} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, "/")
}

// FlowExtras is what ceskit records about a flow that Hubble has no field for. It is written
// under the key "ceskit", which is not part of Hubble's Flow: Hubble's tools ignore it.
type FlowExtras struct {
	// Cookie is the rule cookie the datapath carried in the verdict event, so the verdict is
	// attributed at packet time rather than re-looked-up afterwards as Cilium does.
	Cookie uint32 `json:"cookie,omitempty"`
	// Rule names the rule within the policy that decided the verdict, when known.
	Rule string `json:"rule,omitempty"`
	// PolicyRevision is the revision of the endpoint's compiled policy that took the verdict.
	PolicyRevision uint64 `json:"policy_revision,omitempty"`
	// Mode is the semantic mode of the policy engine ("spec" or "cilium-compat").
	Mode string `json:"mode,omitempty"`
}

// Flow is one flow log record, shaped as Hubble's flow.Flow where the two overlap: a policy
// verdict has Time, Verdict, DropReasonDesc (for DROPPED), TrafficDirection, Source and
// Destination, IP, L4, PolicyMatchType, the policies that allowed or denied it, NodeName, Type
// [FlowTypeL3L4] and EventType {Type: [EventTypePolicyVerdict]}.
//
// Its JSON (see [Flow.MarshalJSON]) is what Hubble prints for the same flow, field for field, so
// tools reading `hubble observe -o json` read it too; ceskit's own additions are under "ceskit".
// Hubble fields ceskit does not produce (ethernet, l7, services, trace and debug points,
// Summary, …) are left out, as protojson leaves out unset fields. The zero Flow is valid and
// writes "{}".
type Flow struct {
	// Time is when the event was observed. JSON: protojson's Timestamp form, UTC, "Z" suffix,
	// 0, 3, 6 or 9 fractional digits ("2026-05-01T10:00:00.123Z"); left out when zero.
	Time time.Time `json:"time"`
	// UUID identifies the flow, when assigned.
	UUID string `json:"uuid,omitempty"`
	// Verdict is FORWARDED, DROPPED or AUDIT for policy verdicts.
	Verdict Verdict `json:"verdict,omitempty"`
	// IP is the flow's layer 3.
	IP *IP `json:"IP,omitempty"`
	// L4 is the flow's layer 4.
	L4 *Layer4 `json:"l4,omitempty"`
	// Source is the sending endpoint.
	Source *Endpoint `json:"source,omitempty"`
	// Destination is the receiving endpoint.
	Destination *Endpoint `json:"destination,omitempty"`
	// Type is L3_L4 for policy verdicts.
	Type FlowType `json:"Type,omitempty"`
	// NodeName is the node that observed the flow.
	NodeName string `json:"node_name,omitempty"`
	// EventType is the Cilium event the flow came from.
	EventType *EventType `json:"event_type,omitempty"`
	// TrafficDirection is INGRESS or EGRESS, seen from the local endpoint.
	TrafficDirection TrafficDirection `json:"traffic_direction,omitempty"`
	// PolicyMatchType is what part of a policy entry matched (policy verdicts only).
	PolicyMatchType PolicyMatchType `json:"policy_match_type,omitempty"`
	// DropReasonDesc is why the flow was dropped (DROPPED only). The JSON also carries it as the
	// deprecated number "drop_reason", as Hubble does.
	DropReasonDesc DropReason `json:"drop_reason_desc,omitempty"`
	// IsReply tells whether the packet was in the reply direction; nil when unknown.
	IsReply *bool `json:"is_reply,omitempty"`
	// EgressAllowedBy are the policies that allowed the flow at egress.
	EgressAllowedBy []Policy `json:"egress_allowed_by,omitempty"`
	// IngressAllowedBy are the policies that allowed the flow at ingress.
	IngressAllowedBy []Policy `json:"ingress_allowed_by,omitempty"`
	// EgressDeniedBy are the policies that denied the flow at egress (for AUDIT: that would
	// have denied it).
	EgressDeniedBy []Policy `json:"egress_denied_by,omitempty"`
	// IngressDeniedBy are the policies that denied the flow at ingress (for AUDIT: that would
	// have denied it).
	IngressDeniedBy []Policy `json:"ingress_denied_by,omitempty"`
	// Ceskit holds what Hubble has no field for; not part of Hubble's Flow.
	Ceskit *FlowExtras `json:"ceskit,omitempty"`
}

// flowFields is Flow without its methods, for encoding/json.
type flowFields Flow

// MarshalJSON writes f as Hubble does (protojson with the proto field names): see [Flow]. A
// non-zero DropReasonDesc is also written as the deprecated number "drop_reason", which Hubble
// still fills.
func (f Flow) MarshalJSON() ([]byte, error) {
	w := struct {
		Time       string `json:"time,omitempty"` // shadows flowFields.Time
		DropReason uint32 `json:"drop_reason,omitempty"`
		flowFields
	}{DropReason: uint32(f.DropReasonDesc), flowFields: flowFields(f)}
	if !f.Time.IsZero() {
		w.Time = protoTimestamp(f.Time)
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads a Flow from Hubble's JSON (or from [Flow.MarshalJSON]'s). Hubble fields
// Flow has no place for are ignored; a "drop_reason" number fills DropReasonDesc when
// "drop_reason_desc" is absent (Hubble before 1.13 wrote only the number).
func (f *Flow) UnmarshalJSON(b []byte) error {
	var w struct {
		DropReason uint32 `json:"drop_reason"`
		flowFields
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*f = Flow(w.flowFields)
	if f.DropReasonDesc == 0 {
		f.DropReasonDesc = DropReason(w.DropReason)
	}
	return nil
}

// EventKind tells what an [Event] is about.
type EventKind string

// Event kinds.
const (
	EventKindEndpoint EventKind = "endpoint" // a CiliumEndpoint (or pod endpoint) changed
	EventKindSlice    EventKind = "slice"    // a CiliumEndpointSlice changed
)

// EventAction tells what happened in an [Event].
type EventAction string

// Event actions.
const (
	ActionCreated EventAction = "created"
	ActionUpdated EventAction = "updated"
	ActionDeleted EventAction = "deleted"
	// ActionMoved: an endpoint moved from PreviousSlice to Slice.
	ActionMoved EventAction = "moved"
)

// Event is one audit log record of an endpoint or endpoint-slice change: not a flow and not part
// of Hubble's API, so a [Record] writes it under the key "ceskit_event". Its keys follow Hubble's
// naming (snake_case, "node_name", the same time format as [Flow]). The zero Event is valid.
type Event struct {
	// Time is when the change was made or observed; left out of JSON when zero.
	Time time.Time `json:"time"`
	// Kind is "endpoint" or "slice".
	Kind EventKind `json:"kind,omitempty"`
	// Action is "created", "updated", "deleted" or "moved".
	Action EventAction `json:"action,omitempty"`
	// Namespace is the endpoint's or the slice's namespace.
	Namespace string `json:"namespace,omitempty"`
	// Name is the endpoint's name (kind "endpoint") or the slice's (kind "slice").
	Name string `json:"name,omitempty"`
	// Slice is the slice the endpoint is in (kind "endpoint"; for "moved", the new one).
	Slice string `json:"slice,omitempty"`
	// PreviousSlice is the slice the endpoint left (action "moved").
	PreviousSlice string `json:"previous_slice,omitempty"`
	// Identity is the endpoint's security identity (kind "endpoint"), or the identity the
	// slice groups (kind "slice").
	Identity uint32 `json:"identity,omitempty"`
	// Endpoints is the number of endpoints in the slice after the change (kind "slice").
	Endpoints int `json:"endpoints,omitempty"`
	// NodeName is the node the endpoint runs on, or the node that made the change.
	NodeName string `json:"node_name,omitempty"`
	// Detail says more, in words: why it moved, what was updated.
	Detail string `json:"detail,omitempty"`
}

// eventFields is Event without its methods, for encoding/json.
type eventFields Event

// MarshalJSON writes e with the time in the same form as [Flow.MarshalJSON].
func (e Event) MarshalJSON() ([]byte, error) {
	w := struct {
		Time string `json:"time,omitempty"` // shadows eventFields.Time
		eventFields
	}{eventFields: eventFields(e)}
	if !e.Time.IsZero() {
		w.Time = protoTimestamp(e.Time)
	}
	return json.Marshal(w)
}

// Record is one entry of the audit/flow log: exactly one of Flow and Event is set.
//
// Its JSON is the envelope of Hubble's GetFlowsResponse, which is what `hubble observe -o json`
// prints one per line: {"flow":{…},"node_name":"…","time":"…"}, with node_name and time copied
// from the flow. An Event is written the same way under "ceskit_event", a key Hubble does not
// have, so tools that select .flow skip it.
type Record struct {
	Flow  *Flow
	Event *Event
}

// ErrEmptyRecord is returned for a [Record] with neither Flow nor Event set, or with both.
var ErrEmptyRecord = errors.New("record must have exactly one of Flow and Event")

// MarshalJSON writes r in Hubble's GetFlowsResponse envelope; see [Record].
func (r Record) MarshalJSON() ([]byte, error) {
	w := struct {
		Flow     *Flow  `json:"flow,omitempty"`
		Event    *Event `json:"ceskit_event,omitempty"`
		NodeName string `json:"node_name,omitempty"`
		Time     string `json:"time,omitempty"`
	}{Flow: r.Flow, Event: r.Event}
	var t time.Time
	switch {
	case (r.Flow == nil) == (r.Event == nil):
		return nil, ErrEmptyRecord
	case r.Flow != nil:
		w.NodeName, t = r.Flow.NodeName, r.Flow.Time
	default:
		w.NodeName, t = r.Event.NodeName, r.Event.Time
	}
	if !t.IsZero() {
		w.Time = protoTimestamp(t)
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads a Record from one line of `hubble observe -o json` (or of a
// [JSONLinesSink]). Lines of other kinds (Hubble's node_status, lost_events) leave both fields
// nil and are not an error.
func (r *Record) UnmarshalJSON(b []byte) error {
	var w struct {
		Flow  *Flow  `json:"flow"`
		Event *Event `json:"ceskit_event"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	r.Flow, r.Event = w.Flow, w.Event
	return nil
}

// Sink receives audit/flow log records. Implementations say whether they are safe for
// concurrent use; the ones in this package are.
type Sink interface {
	// Write records r. ctx carries the caller's deadline and values; the sinks in this package
	// write even when ctx is done, so an audit trail is not cut short at shutdown.
	Write(ctx context.Context, r Record) error
}

// JSONLinesSink writes each [Record] as one line of JSON, in the form `hubble observe -o json`
// prints (see [Record]). It is safe for concurrent use: each line reaches the writer in one
// Write call, and lines never interleave.
type JSONLinesSink struct {
	mu sync.Mutex
	w  io.Writer
}

// NewJSONLinesSink returns a sink writing to w, which must not be nil.
func NewJSONLinesSink(w io.Writer) *JSONLinesSink {
	return &JSONLinesSink{w: w}
}

// Write encodes r and writes it followed by a newline. It returns [ErrEmptyRecord] for an empty
// record and the writer's error, wrapped, when writing fails.
func (s *JSONLinesSink) Write(_ context.Context, r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode flow log record: %w", err)
	}
	b = append(b, '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.Write(b); err != nil {
		return fmt.Errorf("write flow log record: %w", err)
	}
	return nil
}

// SlogSink writes each [Record] as one structured log entry. Flows are logged with the message
// "policy verdict" (or "flow" when not from a policy verdict event) at a level set by the
// verdict: DROPPED and ERROR at Warn, AUDIT at Info, everything else (FORWARDED, …) at Debug.
// Events are logged as "endpoint event" or "slice event", "updated" at Debug and every other
// action at Info. It is safe for concurrent use.
//
// Attribute keys: verdict, drop_reason, direction, match_type, protocol, source and destination
// (groups of namespace, pod, identity, labels, ip, port), icmp_type, icmp_code, allowed_by,
// denied_by (lists of "kind/namespace/name"), node, cookie, rule, policy_revision; for events
// action, namespace, endpoint or slice, previous_slice, identity, endpoints, node, detail. Unset
// values are left out.
//
// Give the logger a handler from [LogLevels.Handler] (component "flows") to switch flow logging
// on and off at runtime.
type SlogSink struct {
	l *slog.Logger
}

// NewSlogSink returns a sink logging to l; a nil l discards everything.
func NewSlogSink(l *slog.Logger) *SlogSink {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &SlogSink{l: l}
}

// FlowLevel is the level [SlogSink] logs a flow with verdict v at.
func FlowLevel(v Verdict) slog.Level {
	switch v {
	case VerdictDropped, VerdictError:
		return slog.LevelWarn
	case VerdictAudit:
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

// Write logs r; it returns [ErrEmptyRecord] for an empty record and nil otherwise.
func (s *SlogSink) Write(ctx context.Context, r Record) error {
	switch {
	case (r.Flow == nil) == (r.Event == nil):
		return ErrEmptyRecord
	case r.Flow != nil:
		s.writeFlow(ctx, r.Flow)
	default:
		s.writeEvent(ctx, r.Event)
	}
	return nil
}

func (s *SlogSink) writeFlow(ctx context.Context, f *Flow) {
	level := FlowLevel(f.Verdict)
	if !s.l.Enabled(ctx, level) {
		return
	}
	msg := "flow"
	if f.EventType != nil && f.EventType.Type == EventTypePolicyVerdict {
		msg = "policy verdict"
	}
	attrs := make([]slog.Attr, 0, 16)
	attrs = append(attrs, slog.String("verdict", f.Verdict.String()))
	if f.DropReasonDesc != 0 {
		attrs = append(attrs, slog.String("drop_reason", f.DropReasonDesc.String()))
	}
	if f.TrafficDirection != 0 {
		attrs = append(attrs, slog.String("direction", f.TrafficDirection.String()))
	}
	if f.EventType != nil && f.EventType.Type == EventTypePolicyVerdict {
		attrs = append(attrs, slog.String("match_type", f.PolicyMatchType.String()))
	}
	if p := f.L4.Protocol(); p != "" {
		attrs = append(attrs, slog.String("protocol", p))
	}
	var srcIP, dstIP string
	if f.IP != nil {
		srcIP, dstIP = f.IP.Source, f.IP.Destination
	}
	srcPort, dstPort, _ := f.L4.ports()
	if a, ok := endpointAttr("source", f.Source, srcIP, srcPort); ok {
		attrs = append(attrs, a)
	}
	if a, ok := endpointAttr("destination", f.Destination, dstIP, dstPort); ok {
		attrs = append(attrs, a)
	}
	if f.L4 != nil {
		icmp := f.L4.ICMPv4
		if icmp == nil {
			icmp = f.L4.ICMPv6
		}
		if icmp != nil {
			attrs = append(attrs, slog.Uint64("icmp_type", uint64(icmp.Type)), slog.Uint64("icmp_code", uint64(icmp.Code)))
		}
	}
	if by := policyNames(f.EgressAllowedBy, f.IngressAllowedBy); len(by) > 0 {
		attrs = append(attrs, slog.Any("allowed_by", by))
	}
	if by := policyNames(f.EgressDeniedBy, f.IngressDeniedBy); len(by) > 0 {
		attrs = append(attrs, slog.Any("denied_by", by))
	}
	if f.NodeName != "" {
		attrs = append(attrs, slog.String("node", f.NodeName))
	}
	if x := f.Ceskit; x != nil {
		if x.Cookie != 0 {
			attrs = append(attrs, slog.Uint64("cookie", uint64(x.Cookie)))
		}
		if x.Rule != "" {
			attrs = append(attrs, slog.String("rule", x.Rule))
		}
		if x.PolicyRevision != 0 {
			attrs = append(attrs, slog.Uint64("policy_revision", x.PolicyRevision))
		}
	}
	s.l.LogAttrs(ctx, level, msg, attrs...)
}

// endpointAttr returns the group attribute of one side of a flow; ok is false when it is empty.
func endpointAttr(key string, e *Endpoint, ip string, port uint32) (slog.Attr, bool) {
	var as []slog.Attr
	if e != nil {
		if e.Namespace != "" {
			as = append(as, slog.String("namespace", e.Namespace))
		}
		if e.PodName != "" {
			as = append(as, slog.String("pod", e.PodName))
		}
		if e.Identity != 0 {
			as = append(as, slog.Uint64("identity", uint64(e.Identity)))
		}
		if len(e.Labels) > 0 {
			as = append(as, slog.Any("labels", e.Labels))
		}
	}
	if ip != "" {
		as = append(as, slog.String("ip", ip))
	}
	if port != 0 {
		as = append(as, slog.Uint64("port", uint64(port)))
	}
	if len(as) == 0 {
		return slog.Attr{}, false
	}
	return slog.Attr{Key: key, Value: slog.GroupValue(as...)}, true
}

// policyNames returns the String of every policy in the lists.
func policyNames(lists ...[]Policy) []string {
	var names []string
	for _, l := range lists {
		for _, p := range l {
			names = append(names, p.String())
		}
	}
	return names
}

func (s *SlogSink) writeEvent(ctx context.Context, e *Event) {
	level := slog.LevelInfo
	if e.Action == ActionUpdated {
		level = slog.LevelDebug
	}
	if !s.l.Enabled(ctx, level) {
		return
	}
	msg := "slice event"
	nameKey := "slice"
	if e.Kind != EventKindSlice {
		msg, nameKey = "endpoint event", "endpoint"
	}
	attrs := make([]slog.Attr, 0, 9)
	attrs = append(attrs, slog.String("action", string(e.Action)))
	for _, kv := range [][2]string{
		{"namespace", e.Namespace},
		{nameKey, e.Name},
	} {
		if kv[1] != "" {
			attrs = append(attrs, slog.String(kv[0], kv[1]))
		}
	}
	if e.Kind != EventKindSlice && e.Slice != "" {
		attrs = append(attrs, slog.String("slice", e.Slice))
	}
	if e.PreviousSlice != "" {
		attrs = append(attrs, slog.String("previous_slice", e.PreviousSlice))
	}
	if e.Identity != 0 {
		attrs = append(attrs, slog.Uint64("identity", uint64(e.Identity)))
	}
	if e.Endpoints != 0 {
		attrs = append(attrs, slog.Int("endpoints", e.Endpoints))
	}
	if e.NodeName != "" {
		attrs = append(attrs, slog.String("node", e.NodeName))
	}
	if e.Detail != "" {
		attrs = append(attrs, slog.String("detail", e.Detail))
	}
	s.l.LogAttrs(ctx, level, msg, attrs...)
}

// MultiSink returns a sink writing every record to each of sinks in turn (nil sinks are
// skipped). A failing sink does not stop the others; Write returns their errors joined. It is
// safe for concurrent use when every sink is.
func MultiSink(sinks ...Sink) Sink {
	ms := make(multiSink, 0, len(sinks))
	for _, s := range sinks {
		if s != nil {
			ms = append(ms, s)
		}
	}
	return ms
}

type multiSink []Sink

func (ms multiSink) Write(ctx context.Context, r Record) error {
	var errs []error
	for _, s := range ms {
		if err := s.Write(ctx, r); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// protoTimestamp formats t as protojson formats a google.protobuf.Timestamp: UTC, "Z", and 0, 3,
// 6 or 9 fractional digits.
func protoTimestamp(t time.Time) string {
	s := t.UTC().Format("2006-01-02T15:04:05.000000000")
	for range 3 {
		trimmed, ok := strings.CutSuffix(s, "000")
		if !ok {
			break
		}
		s = trimmed
	}
	return strings.TrimSuffix(s, ".") + "Z"
}

func enumString(v int32, names map[int32]string) string {
	if n, ok := names[v]; ok {
		return n
	}
	return strconv.FormatInt(int64(v), 10)
}

func marshalEnum(v int32, names map[int32]string) ([]byte, error) {
	if n, ok := names[v]; ok {
		return strconv.AppendQuote(nil, n), nil
	}
	return strconv.AppendInt(nil, int64(v), 10), nil
}

func unmarshalEnum(b []byte, names map[int32]string, what string) (int32, error) {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return 0, fmt.Errorf("decode %s: %w", what, err)
		}
		for v, n := range names {
			if n == s {
				return v, nil
			}
		}
		return 0, fmt.Errorf("decode %s: unknown value %q", what, s)
	}
	var n int32
	if err := json.Unmarshal(b, &n); err != nil {
		return 0, fmt.Errorf("decode %s %s: %w", what, b, err)
	}
	return n, nil
}
