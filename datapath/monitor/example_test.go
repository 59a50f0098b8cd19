package monitor_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"time"

	"github.com/ceskit/ceskit/datapath"
	"github.com/ceskit/ceskit/datapath/monitor"
	"github.com/ceskit/ceskit/observe"
)

func ExampleFlowFromEvent() {
	// Names for what the event carries as numbers.
	r := &monitor.StaticResolver{}
	r.SetEndpoint(1789, observe.Endpoint{Identity: 23456, Namespace: "shop", PodName: "payments-1"})
	r.SetIdentity(12345, observe.Endpoint{Namespace: "shop", Labels: []string{"k8s:app=frontend"}})
	r.SetPolicy(7, "deny-frontend", observe.Policy{Kind: "CiliumNetworkPolicy", Namespace: "shop", Name: "payments"})

	// A deny rule dropped frontend → payments:8080 at ingress, 250 ms (on CLOCK_MONOTONIC)
	// before now.
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	mono := 3600 * time.Second
	ev := datapath.Event{
		Time: mono - 250*time.Millisecond, Endpoint: 1789, Remote: 12345,
		Src: netip.MustParseAddr("10.0.1.5"), Dst: netip.MustParseAddr("10.0.2.7"), SrcPort: 41234, DstPort: 8080,
		Protocol: datapath.ProtoTCP, Direction: datapath.Ingress, Verdict: datapath.Deny,
		Cookie: 7, Match: datapath.MatchL3L4, Reason: datapath.ReasonDropDeny,
	}
	f := monitor.FlowFromEvent(ev, now, mono, r, "node-1")
	if err := observe.NewJSONLinesSink(os.Stdout).Write(context.Background(), observe.Record{Flow: &f}); err != nil {
		fmt.Println(err)
	}
	// Output:
	// {"flow":{"time":"2026-05-01T09:59:59.750Z","drop_reason":181,"verdict":"DROPPED","IP":{"source":"10.0.1.5","destination":"10.0.2.7","ipVersion":"IPv4"},"l4":{"TCP":{"source_port":41234,"destination_port":8080}},"source":{"identity":12345,"namespace":"shop","labels":["k8s:app=frontend"]},"destination":{"ID":1789,"identity":23456,"namespace":"shop","pod_name":"payments-1"},"Type":"L3_L4","node_name":"node-1","event_type":{"type":5},"traffic_direction":"INGRESS","policy_match_type":2,"drop_reason_desc":"POLICY_DENY","ingress_denied_by":[{"name":"payments","namespace":"shop","kind":"CiliumNetworkPolicy"}],"ceskit":{"cookie":7,"rule":"deny-frontend"}},"node_name":"node-1","time":"2026-05-01T09:59:59.750Z"}
}

func ExampleNew() {
	// Needs CAP_BPF and CAP_NET_ADMIN (root): not run as a test.
	d, err := datapath.Load(datapath.Spec{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
	resolver := &monitor.StaticResolver{} // kept up to date from the agent's caches
	mon, err := monitor.New(d, monitor.Config{
		Sink:     observe.NewJSONLinesSink(os.Stdout), // `hubble observe -o json` lines
		Resolver: resolver,
		Metrics:  datapath.NopMetrics{}, // e.g. observe.NewDatapathMetrics(registry)
		NodeName: "node-1",
		Logger:   slog.Default(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := mon.Run(ctx); err != nil { // until Ctrl-C; drains the ring buffer first
		fmt.Println(err)
	}
}
