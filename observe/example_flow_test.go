package observe_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/ceskit/ceskit/observe"
)

// deniedFlow is a policy verdict: shop/frontend → shop/payments:8080 over TCP, denied at ingress
// by the default deny (no policy allowed it).
func deniedFlow() *observe.Flow {
	return &observe.Flow{
		Time:             time.Date(2026, 5, 1, 10, 0, 0, 250_000_000, time.UTC),
		Verdict:          observe.VerdictDropped,
		DropReasonDesc:   observe.DropPolicyDenied,
		TrafficDirection: observe.DirectionIngress,
		IP:               &observe.IP{Source: "10.0.1.5", Destination: "10.0.2.7", IPVersion: observe.IPv4},
		L4:               &observe.Layer4{TCP: &observe.TCP{SourcePort: 41234, DestinationPort: 8080}},
		Source:           &observe.Endpoint{Identity: 12345, Namespace: "shop", PodName: "frontend-1"},
		Destination:      &observe.Endpoint{ID: 1789, Identity: 23456, Namespace: "shop", PodName: "payments-1"},
		Type:             observe.FlowTypeL3L4,
		EventType:        &observe.EventType{Type: observe.EventTypePolicyVerdict},
		NodeName:         "node-1",
	}
}

func ExampleNewJSONLinesSink() {
	// One line per record, as `hubble observe -o json` prints them: jq '.flow.verdict' works.
	sink := observe.NewJSONLinesSink(os.Stdout)
	ctx := context.Background()
	if err := sink.Write(ctx, observe.Record{Flow: deniedFlow()}); err != nil {
		fmt.Println(err)
	}
	// Endpoint and slice changes go under "ceskit_event", which Hubble's tools skip.
	if err := sink.Write(ctx, observe.Record{Event: &observe.Event{
		Time: time.Date(2026, 5, 1, 10, 0, 1, 0, time.UTC), Kind: observe.EventKindEndpoint,
		Action: observe.ActionMoved, Namespace: "shop", Name: "frontend-1",
		Slice: "ces-b", PreviousSlice: "ces-a", Identity: 12345, NodeName: "node-1",
	}}); err != nil {
		fmt.Println(err)
	}
	// Output:
	// {"flow":{"time":"2026-05-01T10:00:00.250Z","drop_reason":133,"verdict":"DROPPED","IP":{"source":"10.0.1.5","destination":"10.0.2.7","ipVersion":"IPv4"},"l4":{"TCP":{"source_port":41234,"destination_port":8080}},"source":{"identity":12345,"namespace":"shop","pod_name":"frontend-1"},"destination":{"ID":1789,"identity":23456,"namespace":"shop","pod_name":"payments-1"},"Type":"L3_L4","node_name":"node-1","event_type":{"type":5},"traffic_direction":"INGRESS","drop_reason_desc":"POLICY_DENIED"},"node_name":"node-1","time":"2026-05-01T10:00:00.250Z"}
	// {"ceskit_event":{"time":"2026-05-01T10:00:01Z","kind":"endpoint","action":"moved","namespace":"shop","name":"frontend-1","slice":"ces-b","previous_slice":"ces-a","identity":12345,"node_name":"node-1"},"node_name":"node-1","time":"2026-05-01T10:00:01Z"}
}

func ExampleNewSlogSink() {
	// A text handler without the time, so the output is stable.
	h := slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})
	sink := observe.NewSlogSink(slog.New(h))
	// DROPPED is logged at Warn, AUDIT at Info, FORWARDED at Debug.
	if err := sink.Write(context.Background(), observe.Record{Flow: deniedFlow()}); err != nil {
		fmt.Println(err)
	}
	// Output:
	// level=WARN msg="policy verdict" verdict=DROPPED drop_reason=POLICY_DENIED direction=INGRESS match_type=none protocol=TCP source.namespace=shop source.pod=frontend-1 source.identity=12345 source.ip=10.0.1.5 source.port=41234 destination.namespace=shop destination.pod=payments-1 destination.identity=23456 destination.ip=10.0.2.7 destination.port=8080 node=node-1
}

func ExampleMultiSink() {
	// Both sinks get every record; a failing one does not stop the other.
	var b strings.Builder
	sink := observe.MultiSink(observe.NewJSONLinesSink(&b), observe.NewSlogSink(nil))
	if err := sink.Write(context.Background(), observe.Record{Flow: &observe.Flow{Verdict: observe.VerdictAudit}}); err != nil {
		fmt.Println(err)
	}
	fmt.Print(b.String())
	// Output:
	// {"flow":{"verdict":"AUDIT"}}
}

func ExampleLogLevels() {
	// One LogLevels per program; each component logs through its own handler.
	levels := observe.NewLogLevels(slog.LevelInfo, "slicer", "identity", "policy", "datapath", "flows")
	base := slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})
	policyLog := levels.Logger("policy", base)
	flows := observe.NewSlogSink(levels.Logger("flows", base))

	policyLog.Debug("compiled", "policy", "deny-web") // below info: not logged
	forwarded := &observe.Flow{Verdict: observe.VerdictForwarded, NodeName: "node-1"}
	_ = flows.Write(context.Background(), observe.Record{Flow: forwarded}) // FORWARDED is Debug: not logged

	// An operator turns on debug logging of the policy engine and of every flow, at runtime.
	if err := levels.Set("policy", "debug"); err != nil {
		fmt.Println(err)
	}
	if err := levels.Set("flows", "debug"); err != nil {
		fmt.Println(err)
	}
	policyLog.Debug("compiled", "policy", "deny-web")
	_ = flows.Write(context.Background(), observe.Record{Flow: forwarded})

	fmt.Println(levels.Set("bpf", "debug"))
	fmt.Println(levels.Set("policy", "verbose"))
	// Output:
	// level=DEBUG msg=compiled component=policy policy=deny-web
	// level=DEBUG msg=flow component=flows verdict=FORWARDED node=node-1
	// set log level of "bpf": unknown log component (known: datapath, flows, identity, policy, slicer)
	// set log level of "policy": invalid log level "verbose": want debug, info, warn or error
}

func ExampleLogLevels_ServeHTTP() {
	levels := observe.NewLogLevels(slog.LevelInfo, "slicer", "flows")
	mux := http.NewServeMux()
	mux.Handle("/debug/loglevels", levels) // behind the program's admin authentication

	for _, req := range []struct{ method, query string }{
		{http.MethodGet, ""},
		{http.MethodPut, "?component=flows&level=debug"},
		{http.MethodPut, "?component=bpf&level=debug"},
	} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(req.method, "/debug/loglevels"+req.query, nil))
		fmt.Print(req.method, " ", rec.Code, " ", rec.Body.String())
	}
	// Output:
	// GET 200 {"flows":"INFO","slicer":"INFO"}
	// PUT 200 {"flows":"DEBUG","slicer":"INFO"}
	// PUT 404 set log level of "bpf": unknown log component (known: flows, slicer)
}
