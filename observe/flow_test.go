package observe_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ceskit/ceskit/observe"
)

// The Hubble samples below are what Hubble writes for the same two flows, built by hand from
// the Flow message of Cilium's api/v1/flow/flow.proto (field names and numbers, the enums
// Verdict, DropReason, TrafficDirection, IPVersion, FlowType, and the Policy message of the
// {egress,ingress}_{allowed,denied}_by fields) and from protojson's rules as Hubble applies them
// in `hubble observe -o json` (MarshalOptions with UseProtoNames): proto field names as keys,
// enum values by name, unset fields left out, a set google.protobuf.BoolValue written even when
// false, uint64 as a JSON string, Timestamps in UTC with 0/3/6/9 fractional digits. Keys are in
// the proto's declaration order, as protojson writes them. policy_match_type uses Cilium's
// pkg/monitor/api values (2 = PolicyMatchL3L4); event_type 5 is MessageTypePolicyVerdict.

// hubbleDeniedTCP: an ingress TCP SYN from shop/frontend to shop/payments:8080, dropped by an
// explicit deny rule of CiliumNetworkPolicy shop/deny-frontend.
const hubbleDeniedTCP = `{
  "time": "2026-05-01T10:00:00.123456789Z",
  "verdict": "DROPPED",
  "drop_reason": 181,
  "IP": {"source": "10.0.1.5", "destination": "10.0.2.7", "ipVersion": "IPv4"},
  "l4": {"TCP": {"source_port": 41234, "destination_port": 8080, "flags": {"SYN": true}}},
  "source": {
    "identity": 12345,
    "namespace": "shop",
    "labels": ["k8s:app=frontend", "k8s:io.kubernetes.pod.namespace=shop"],
    "pod_name": "frontend-7d9f8-abcde"
  },
  "destination": {
    "ID": 1789,
    "identity": 23456,
    "namespace": "shop",
    "labels": ["k8s:app=payments", "k8s:io.kubernetes.pod.namespace=shop"],
    "pod_name": "payments-5c8b7-xyz12",
    "workloads": [{"name": "payments", "kind": "Deployment"}]
  },
  "Type": "L3_L4",
  "node_name": "aks-nodepool1-12345678-vmss000001",
  "event_type": {"type": 5},
  "traffic_direction": "INGRESS",
  "policy_match_type": 2,
  "drop_reason_desc": "POLICY_DENY",
  "is_reply": false,
  "ingress_denied_by": [{
    "name": "deny-frontend",
    "namespace": "shop",
    "labels": [
      "k8s:io.cilium.k8s.policy.derived-from=CiliumNetworkPolicy",
      "k8s:io.cilium.k8s.policy.name=deny-frontend",
      "k8s:io.cilium.k8s.policy.namespace=shop"
    ],
    "revision": "42",
    "kind": "CiliumNetworkPolicy"
  }]
}`

// hubbleAuditedUDP: an egress DNS query over IPv6 from shop/frontend that no policy allows
// (default deny, policy_match_type 0 and so left out) on an endpoint in audit mode.
const hubbleAuditedUDP = `{
  "time": "2026-05-01T10:00:01.500Z",
  "verdict": "AUDIT",
  "IP": {"source": "fd00::a", "destination": "fd00::35", "ipVersion": "IPv6"},
  "l4": {"UDP": {"source_port": 53000, "destination_port": 53}},
  "source": {
    "ID": 311,
    "identity": 12345,
    "namespace": "shop",
    "labels": ["k8s:app=frontend", "k8s:io.kubernetes.pod.namespace=shop"],
    "pod_name": "frontend-7d9f8-abcde"
  },
  "destination": {"identity": 2, "labels": ["reserved:world"]},
  "Type": "L3_L4",
  "node_name": "aks-nodepool1-12345678-vmss000001",
  "event_type": {"type": 5},
  "traffic_direction": "EGRESS"
}`

func deniedTCPFlow() observe.Flow {
	reply := false
	return observe.Flow{
		Time:    time.Date(2026, 5, 1, 10, 0, 0, 123456789, time.UTC),
		Verdict: observe.VerdictDropped,
		IP:      &observe.IP{Source: "10.0.1.5", Destination: "10.0.2.7", IPVersion: observe.IPv4},
		L4: &observe.Layer4{TCP: &observe.TCP{
			SourcePort: 41234, DestinationPort: 8080, Flags: &observe.TCPFlags{SYN: true},
		}},
		Source: &observe.Endpoint{
			Identity:  12345,
			Namespace: "shop",
			Labels:    []string{"k8s:app=frontend", "k8s:io.kubernetes.pod.namespace=shop"},
			PodName:   "frontend-7d9f8-abcde",
		},
		Destination: &observe.Endpoint{
			ID:        1789,
			Identity:  23456,
			Namespace: "shop",
			Labels:    []string{"k8s:app=payments", "k8s:io.kubernetes.pod.namespace=shop"},
			PodName:   "payments-5c8b7-xyz12",
			Workloads: []observe.Workload{{Name: "payments", Kind: "Deployment"}},
		},
		Type:             observe.FlowTypeL3L4,
		NodeName:         "aks-nodepool1-12345678-vmss000001",
		EventType:        &observe.EventType{Type: observe.EventTypePolicyVerdict},
		TrafficDirection: observe.DirectionIngress,
		PolicyMatchType:  observe.PolicyMatchL3L4,
		DropReasonDesc:   observe.DropPolicyDeny,
		IsReply:          &reply,
		IngressDeniedBy: []observe.Policy{{
			Name:      "deny-frontend",
			Namespace: "shop",
			Labels: []string{
				"k8s:io.cilium.k8s.policy.derived-from=CiliumNetworkPolicy",
				"k8s:io.cilium.k8s.policy.name=deny-frontend",
				"k8s:io.cilium.k8s.policy.namespace=shop",
			},
			Revision: 42,
			Kind:     "CiliumNetworkPolicy",
		}},
	}
}

func auditedUDPFlow() observe.Flow {
	return observe.Flow{
		Time:    time.Date(2026, 5, 1, 10, 0, 1, 500_000_000, time.UTC),
		Verdict: observe.VerdictAudit,
		IP:      &observe.IP{Source: "fd00::a", Destination: "fd00::35", IPVersion: observe.IPv6},
		L4:      &observe.Layer4{UDP: &observe.UDP{SourcePort: 53000, DestinationPort: 53}},
		Source: &observe.Endpoint{
			ID:        311,
			Identity:  12345,
			Namespace: "shop",
			Labels:    []string{"k8s:app=frontend", "k8s:io.kubernetes.pod.namespace=shop"},
			PodName:   "frontend-7d9f8-abcde",
		},
		Destination:      &observe.Endpoint{Identity: 2, Labels: []string{"reserved:world"}},
		Type:             observe.FlowTypeL3L4,
		NodeName:         "aks-nodepool1-12345678-vmss000001",
		EventType:        &observe.EventType{Type: observe.EventTypePolicyVerdict},
		TrafficDirection: observe.DirectionEgress,
		Ceskit:           &observe.FlowExtras{Cookie: 7, Rule: "default-deny", PolicyRevision: 9, Mode: "spec"},
	}
}

// decode unmarshals JSON into generic values, so two documents compare field by field whatever
// their key order and spacing.
func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return m
}

func TestFlowJSONMatchesHubble(t *testing.T) {
	for _, tc := range []struct {
		name   string
		flow   observe.Flow
		hubble string
		ceskit map[string]any // what goes under "ceskit", outside Hubble's fields
	}{
		{name: "denied TCP", flow: deniedTCPFlow(), hubble: hubbleDeniedTCP},
		{
			name: "audited UDP", flow: auditedUDPFlow(), hubble: hubbleAuditedUDP,
			ceskit: map[string]any{"cookie": 7.0, "rule": "default-deny", "policy_revision": 9.0, "mode": "spec"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.flow)
			if err != nil {
				t.Fatal(err)
			}
			got := decode(t, b)
			if tc.ceskit != nil {
				if diff := cmp.Diff(tc.ceskit, got["ceskit"]); diff != "" {
					t.Errorf("ceskit extras (-want +got):\n%s", diff)
				}
			} else if _, ok := got["ceskit"]; ok {
				t.Errorf("ceskit key present without extras: %s", b)
			}
			delete(got, "ceskit")
			if diff := cmp.Diff(decode(t, []byte(tc.hubble)), got); diff != "" {
				t.Errorf("JSON differs from Hubble's (-hubble +ceskit):\n%s", diff)
			}

			// Hubble's JSON reads back into the same Flow (less the ceskit extras).
			var back observe.Flow
			if err := json.Unmarshal([]byte(tc.hubble), &back); err != nil {
				t.Fatalf("unmarshal Hubble JSON: %v", err)
			}
			want := tc.flow
			want.Ceskit = nil
			if diff := cmp.Diff(want, back); diff != "" {
				t.Errorf("Flow from Hubble JSON (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFlowJSONKeyOrderStartsWithTime(t *testing.T) {
	b, err := json.Marshal(deniedTCPFlow())
	if err != nil {
		t.Fatal(err)
	}
	// Time comes first, as in protojson's output; drop_reason precedes verdict here (Hubble writes
	// it after), which JSON readers do not see: the golden test above compares as objects.
	if !bytes.HasPrefix(b, []byte(`{"time":"2026-05-01T10:00:00.123456789Z","drop_reason":181,"verdict":"DROPPED",`)) {
		t.Errorf("JSON does not start with time and drop_reason: %s", b)
	}
}

func TestFlowTimeFormat(t *testing.T) {
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC), "2026-05-01T10:00:00Z"},
		{time.Date(2026, 5, 1, 10, 0, 0, 120_000_000, time.UTC), "2026-05-01T10:00:00.120Z"},
		{time.Date(2026, 5, 1, 10, 0, 0, 123_456_000, time.UTC), "2026-05-01T10:00:00.123456Z"},
		{time.Date(2026, 5, 1, 10, 0, 0, 1, time.UTC), "2026-05-01T10:00:00.000000001Z"},
		{time.Date(2026, 5, 1, 12, 0, 0, 0, time.FixedZone("CEST", 2*3600)), "2026-05-01T10:00:00Z"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			b, err := json.Marshal(observe.Flow{Time: tc.t})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := string(b), `{"time":"`+tc.want+`"}`; got != want {
				t.Errorf("got %s, want %s", got, want)
			}
		})
	}
}

func TestFlowZeroJSON(t *testing.T) {
	b, err := json.Marshal(observe.Flow{})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "{}" {
		t.Errorf("zero Flow = %s, want {}", b)
	}
}

func TestEnumJSON(t *testing.T) {
	// Values flow.proto has no name for are written as numbers, as protojson does.
	b, err := json.Marshal(observe.Flow{Verdict: 42, DropReasonDesc: 250, TrafficDirection: 9})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"verdict": 42.0, "drop_reason": 250.0, "drop_reason_desc": 250.0, "traffic_direction": 9.0}
	if diff := cmp.Diff(want, decode(t, b)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	// Names and numbers both read back.
	var f observe.Flow
	if err := json.Unmarshal([]byte(`{"verdict":2,"drop_reason_desc":"POLICY_DENIED","traffic_direction":"EGRESS","IP":{"ipVersion":1},"Type":"L7"}`), &f); err != nil {
		t.Fatal(err)
	}
	if f.Verdict != observe.VerdictDropped || f.DropReasonDesc != observe.DropPolicyDenied ||
		f.TrafficDirection != observe.DirectionEgress || f.IP.IPVersion != observe.IPv4 || f.Type != observe.FlowTypeL7 {
		t.Errorf("decoded %+v", f)
	}

	// Hubble before drop_reason_desc: the number fills it.
	f = observe.Flow{}
	if err := json.Unmarshal([]byte(`{"verdict":"DROPPED","drop_reason":133}`), &f); err != nil {
		t.Fatal(err)
	}
	if f.DropReasonDesc != observe.DropPolicyDenied {
		t.Errorf("DropReasonDesc from drop_reason = %v, want POLICY_DENIED", f.DropReasonDesc)
	}

	// An unknown name is an error naming it.
	err = json.Unmarshal([]byte(`{"verdict":"MAYBE"}`), &f)
	if err == nil || !strings.Contains(err.Error(), `"MAYBE"`) {
		t.Errorf("unknown verdict name: err = %v, want one naming \"MAYBE\"", err)
	}
}

func TestStrings(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{observe.VerdictAudit.String(), "AUDIT"},
		{observe.DropPolicyDenied.String(), "POLICY_DENIED"},
		{observe.DropPolicyDeny.String(), "POLICY_DENY"},
		{observe.DropReason(1000).String(), "1000"},
		{observe.DirectionIngress.String(), "INGRESS"},
		{observe.IPv6.String(), "IPv6"},
		{observe.FlowTypeL3L4.String(), "L3_L4"},
		{observe.PolicyMatchL3L4.String(), "L3-L4"},
		{observe.PolicyMatchNone.String(), "none"},
		{observe.PolicyMatchType(9).String(), "9"},
		{observe.Policy{Name: "deny", Namespace: "shop", Kind: "NetworkPolicy"}.String(), "NetworkPolicy/shop/deny"},
		{observe.Policy{Name: "all", Kind: "CiliumClusterwideNetworkPolicy"}.String(), "CiliumClusterwideNetworkPolicy/all"},
		{(&observe.Layer4{SCTP: &observe.SCTP{}}).Protocol(), "SCTP"},
		{(&observe.Layer4{ICMPv6: &observe.ICMP{}}).Protocol(), "ICMPv6"},
		{(*observe.Layer4)(nil).Protocol(), ""},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestRecordJSON(t *testing.T) {
	f := deniedTCPFlow()
	b, err := json.Marshal(observe.Record{Flow: &f})
	if err != nil {
		t.Fatal(err)
	}
	// The envelope of `hubble observe -o json`: {"flow":…,"node_name":…,"time":…}.
	want := map[string]any{
		"flow":      decode(t, []byte(hubbleDeniedTCP)),
		"node_name": "aks-nodepool1-12345678-vmss000001",
		"time":      "2026-05-01T10:00:00.123456789Z",
	}
	if diff := cmp.Diff(want, decode(t, b)); diff != "" {
		t.Errorf("flow record (-want +got):\n%s", diff)
	}

	e := observe.Event{
		Time: time.Date(2026, 5, 1, 10, 0, 2, 0, time.UTC), Kind: observe.EventKindEndpoint,
		Action: observe.ActionMoved, Namespace: "shop", Name: "frontend-7d9f8-abcde",
		Slice: "ces-b", PreviousSlice: "ces-a", Identity: 12345, NodeName: "node-1", Detail: "identity changed",
	}
	b, err = json.Marshal(observe.Record{Event: &e})
	if err != nil {
		t.Fatal(err)
	}
	wantEvent := map[string]any{
		"ceskit_event": map[string]any{
			"time": "2026-05-01T10:00:02Z", "kind": "endpoint", "action": "moved", "namespace": "shop",
			"name": "frontend-7d9f8-abcde", "slice": "ces-b", "previous_slice": "ces-a",
			"identity": 12345.0, "node_name": "node-1", "detail": "identity changed",
		},
		"node_name": "node-1",
		"time":      "2026-05-01T10:00:02Z",
	}
	if diff := cmp.Diff(wantEvent, decode(t, b)); diff != "" {
		t.Errorf("event record (-want +got):\n%s", diff)
	}

	// Both round-trip.
	for _, r := range []observe.Record{{Flow: &f}, {Event: &e}} {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var back observe.Record
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(r, back); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}

	// A Hubble line of another kind decodes to an empty record.
	var other observe.Record
	if err := json.Unmarshal([]byte(`{"node_status":{"node_name":"n"},"time":"2026-05-01T10:00:00Z"}`), &other); err != nil {
		t.Fatal(err)
	}
	if other.Flow != nil || other.Event != nil {
		t.Errorf("node_status line decoded to %+v", other)
	}

	for _, r := range []observe.Record{{}, {Flow: &f, Event: &e}} {
		if _, err := json.Marshal(r); !errors.Is(err, observe.ErrEmptyRecord) {
			t.Errorf("marshal %+v: err = %v, want ErrEmptyRecord", r, err)
		}
	}
}

// lineWriter checks that every Write call is exactly one complete line.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	calls int
	bad   []string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	if bytes.IndexByte(p, '\n') != len(p)-1 {
		w.bad = append(w.bad, string(p))
	}
	return w.buf.Write(p)
}

func TestJSONLinesSinkConcurrent(t *testing.T) {
	const writers, perWriter = 8, 200
	w := &lineWriter{}
	sink := observe.NewJSONLinesSink(w)
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range perWriter {
				f := deniedTCPFlow()
				f.UUID = fmt.Sprintf("%d-%d", g, i)
				if err := sink.Write(t.Context(), observe.Record{Flow: &f}); err != nil {
					t.Errorf("write: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()

	if len(w.bad) > 0 {
		t.Errorf("%d writes were not one line each, e.g. %q", len(w.bad), w.bad[0])
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(&w.buf)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r observe.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if r.Flow == nil {
			t.Fatalf("line without flow: %q", sc.Text())
		}
		seen[r.Flow.UUID] = true
	}
	if len(seen) != writers*perWriter || w.calls != writers*perWriter {
		t.Errorf("got %d distinct lines in %d writes, want %d", len(seen), w.calls, writers*perWriter)
	}
}

type failingWriter struct{}

var errDiskFull = errors.New("disk full")

func (failingWriter) Write([]byte) (int, error) { return 0, errDiskFull }

func TestJSONLinesSinkErrors(t *testing.T) {
	sink := observe.NewJSONLinesSink(failingWriter{})
	f := observe.Flow{}
	if err := sink.Write(t.Context(), observe.Record{Flow: &f}); !errors.Is(err, errDiskFull) {
		t.Errorf("write to failing writer: err = %v, want it to wrap %v", err, errDiskFull)
	}
	var buf bytes.Buffer
	if err := observe.NewJSONLinesSink(&buf).Write(t.Context(), observe.Record{}); !errors.Is(err, observe.ErrEmptyRecord) {
		t.Errorf("empty record: err = %v, want ErrEmptyRecord", err)
	}
	if buf.Len() != 0 {
		t.Errorf("empty record wrote %q", buf.String())
	}
}

// captured is one log entry, its attributes flattened to "group.key" → value.
type captured struct {
	Level slog.Level
	Msg   string
	Attrs map[string]any
}

// capture is a slog.Handler keeping every record.
type capture struct {
	level   slog.Level
	mu      *sync.Mutex
	entries *[]captured
}

func newCapture(level slog.Level) *capture {
	return &capture{level: level, mu: new(sync.Mutex), entries: new([]captured)}
}

func (c *capture) Enabled(_ context.Context, l slog.Level) bool { return l >= c.level }
func (c *capture) WithAttrs([]slog.Attr) slog.Handler           { panic("not used") }
func (c *capture) WithGroup(string) slog.Handler                { panic("not used") }

func (c *capture) Handle(_ context.Context, r slog.Record) error {
	e := captured{Level: r.Level, Msg: r.Message, Attrs: map[string]any{}}
	var flatten func(prefix string, a slog.Attr)
	flatten = func(prefix string, a slog.Attr) {
		v := a.Value.Resolve()
		if v.Kind() == slog.KindGroup {
			for _, g := range v.Group() {
				flatten(prefix+a.Key+".", g)
			}
			return
		}
		e.Attrs[prefix+a.Key] = v.Any()
	}
	r.Attrs(func(a slog.Attr) bool { flatten("", a); return true })
	c.mu.Lock()
	defer c.mu.Unlock()
	*c.entries = append(*c.entries, e)
	return nil
}

func (c *capture) got() []captured {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]captured(nil), *c.entries...)
}

func TestSlogSink(t *testing.T) {
	denied, audited := deniedTCPFlow(), auditedUDPFlow()
	forwarded := observe.Flow{
		Verdict:          observe.VerdictForwarded,
		EventType:        &observe.EventType{Type: observe.EventTypePolicyVerdict},
		TrafficDirection: observe.DirectionEgress,
		PolicyMatchType:  observe.PolicyMatchL3Only,
		L4:               &observe.Layer4{ICMPv4: &observe.ICMP{Type: 8}},
		EgressAllowedBy:  []observe.Policy{{Name: "allow-ping", Namespace: "shop", Kind: "NetworkPolicy"}},
	}
	event := observe.Event{
		Kind: observe.EventKindSlice, Action: observe.ActionCreated, Namespace: "shop",
		Name: "ces-a", Identity: 12345, Endpoints: 3, NodeName: "operator-0",
	}
	updated := observe.Event{Kind: observe.EventKindEndpoint, Action: observe.ActionUpdated, Name: "frontend"}

	for _, tc := range []struct {
		name   string
		rec    observe.Record
		want   captured
		atInfo bool // still logged when the handler is at Info
	}{
		{
			name: "dropped", rec: observe.Record{Flow: &denied}, atInfo: true,
			want: captured{Level: slog.LevelWarn, Msg: "policy verdict", Attrs: map[string]any{
				"verdict": "DROPPED", "drop_reason": "POLICY_DENY", "direction": "INGRESS",
				"match_type": "L3-L4", "protocol": "TCP",
				"source.namespace": "shop", "source.pod": "frontend-7d9f8-abcde", "source.identity": uint64(12345),
				"source.labels": []string{"k8s:app=frontend", "k8s:io.kubernetes.pod.namespace=shop"},
				"source.ip":     "10.0.1.5", "source.port": uint64(41234),
				"destination.namespace": "shop", "destination.pod": "payments-5c8b7-xyz12",
				"destination.identity": uint64(23456),
				"destination.labels":   []string{"k8s:app=payments", "k8s:io.kubernetes.pod.namespace=shop"},
				"destination.ip":       "10.0.2.7", "destination.port": uint64(8080),
				"denied_by": []string{"CiliumNetworkPolicy/shop/deny-frontend"},
				"node":      "aks-nodepool1-12345678-vmss000001",
			}},
		},
		{
			name: "audited", rec: observe.Record{Flow: &audited}, atInfo: true,
			want: captured{Level: slog.LevelInfo, Msg: "policy verdict", Attrs: map[string]any{
				"verdict": "AUDIT", "direction": "EGRESS", "match_type": "none", "protocol": "UDP",
				"source.namespace": "shop", "source.pod": "frontend-7d9f8-abcde", "source.identity": uint64(12345),
				"source.labels": []string{"k8s:app=frontend", "k8s:io.kubernetes.pod.namespace=shop"},
				"source.ip":     "fd00::a", "source.port": uint64(53000),
				"destination.identity": uint64(2), "destination.labels": []string{"reserved:world"},
				"destination.ip": "fd00::35", "destination.port": uint64(53),
				"node": "aks-nodepool1-12345678-vmss000001", "cookie": uint64(7), "rule": "default-deny",
				"policy_revision": uint64(9),
			}},
		},
		{
			name: "forwarded", rec: observe.Record{Flow: &forwarded},
			want: captured{Level: slog.LevelDebug, Msg: "policy verdict", Attrs: map[string]any{
				"verdict": "FORWARDED", "direction": "EGRESS", "match_type": "L3-Only", "protocol": "ICMPv4",
				"icmp_type": uint64(8), "icmp_code": uint64(0), "allowed_by": []string{"NetworkPolicy/shop/allow-ping"},
			}},
		},
		{
			name: "slice created", rec: observe.Record{Event: &event}, atInfo: true,
			want: captured{Level: slog.LevelInfo, Msg: "slice event", Attrs: map[string]any{
				"action": "created", "namespace": "shop", "slice": "ces-a", "identity": uint64(12345),
				"endpoints": int64(3), "node": "operator-0",
			}},
		},
		{
			name: "endpoint updated", rec: observe.Record{Event: &updated},
			want: captured{Level: slog.LevelDebug, Msg: "endpoint event", Attrs: map[string]any{
				"action": "updated", "endpoint": "frontend",
			}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newCapture(slog.LevelDebug)
			if err := observe.NewSlogSink(slog.New(h)).Write(t.Context(), tc.rec); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]captured{tc.want}, h.got()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}

			info := newCapture(slog.LevelInfo)
			if err := observe.NewSlogSink(slog.New(info)).Write(t.Context(), tc.rec); err != nil {
				t.Fatal(err)
			}
			if got := len(info.got()); got != map[bool]int{true: 1, false: 0}[tc.atInfo] {
				t.Errorf("at level Info: %d entries, want logged=%v", got, tc.atInfo)
			}
		})
	}
}

func TestSlogSinkNilLoggerAndEmptyRecord(t *testing.T) {
	s := observe.NewSlogSink(nil)
	f := deniedTCPFlow()
	if err := s.Write(t.Context(), observe.Record{Flow: &f}); err != nil {
		t.Errorf("nil logger: %v", err)
	}
	if err := s.Write(t.Context(), observe.Record{}); !errors.Is(err, observe.ErrEmptyRecord) {
		t.Errorf("empty record: err = %v, want ErrEmptyRecord", err)
	}
}

func TestFlowLevel(t *testing.T) {
	for v, want := range map[observe.Verdict]slog.Level{
		observe.VerdictDropped:   slog.LevelWarn,
		observe.VerdictError:     slog.LevelWarn,
		observe.VerdictAudit:     slog.LevelInfo,
		observe.VerdictForwarded: slog.LevelDebug,
		observe.VerdictUnknown:   slog.LevelDebug,
	} {
		if got := observe.FlowLevel(v); got != want {
			t.Errorf("FlowLevel(%v) = %v, want %v", v, got, want)
		}
	}
}

type errSink struct{ err error }

func (s errSink) Write(context.Context, observe.Record) error { return s.err }

func TestMultiSink(t *testing.T) {
	var a, b bytes.Buffer
	errA, errB := errors.New("a broke"), errors.New("b broke")
	sink := observe.MultiSink(observe.NewJSONLinesSink(&a), errSink{errA}, nil, errSink{errB}, observe.NewJSONLinesSink(&b))
	f := auditedUDPFlow()
	err := sink.Write(t.Context(), observe.Record{Flow: &f})
	if !errors.Is(err, errA) || !errors.Is(err, errB) {
		t.Errorf("err = %v, want both sink errors", err)
	}
	if a.Len() == 0 || a.String() != b.String() {
		t.Errorf("sinks got %q and %q, want the same line", a.String(), b.String())
	}
	if err := observe.MultiSink().Write(t.Context(), observe.Record{Flow: &f}); err != nil {
		t.Errorf("empty MultiSink: %v", err)
	}
}
