// Package monitor turns a [datapath.Datapath]'s verdict events into Hubble-compatible flow
// records and its counters into metrics: the part of Cilium's monitor agent and Hubble
// observer that ceskit needs for policy verdicts.
//
// A [Monitor] reads the datapath's ring buffer, converts each [datapath.Event] with
// [FlowFromEvent] into an [observe.Flow] (verdict, drop reason, direction, addresses, ports, the
// match type, and the endpoints and policies a [Resolver] names) and writes it to an
// [observe.Sink]; every [Config].StatsInterval it reads [datapath.Datapath.Stats] and reports
// the packets by drop reason and direction and the lost events to a [datapath.Metrics] (e.g.
// observe.DatapathMetrics, with Cilium's metric names).
//
//	res := &monitor.StaticResolver{}
//	res.SetEndpoint(epID, observe.Endpoint{Namespace: "shop", PodName: "web-1", Identity: 5000})
//	res.SetIdentity(1001, observe.Endpoint{Namespace: "shop", Labels: []string{"k8s:app=frontend"}})
//	res.SetPolicy(cookie, "allow-http", observe.Policy{Kind: "CiliumNetworkPolicy", Namespace: "shop", Name: "web"})
//	mon, err := monitor.New(dp, monitor.Config{
//		Sink:     observe.NewJSONLinesSink(os.Stdout), // what `hubble observe -o json` prints
//		Resolver: res,
//		Metrics:  dpMetrics,
//		NodeName: node,
//	})
//	if err != nil {
//		return err
//	}
//	return mon.Run(ctx) // until ctx ends; drains the ring buffer first
//
// The package joins datapath and observe and nothing else: names come through the Resolver,
// which the agent fills from its endpoint, identity and policy caches ([StaticResolver] is a
// ready map-based one).
package monitor
