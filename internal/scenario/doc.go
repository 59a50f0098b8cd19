// Package scenario generates the lab's simulated cluster, deterministically from a seed: the
// Namespaces, the Nodes (with their InternalIP), the CiliumEndpoints that Cilium's agents would
// write (IPv4 and IPv6 addresses, node IP, a security identity out of N per namespace, a service
// account, a named port), and the churn that follows (endpoints replaced, endpoints given another
// identity). The shapes are those of the lab's simulator (examples/operator/simulate.go): names
// sim-NNN, sim-node-NNN and pod-NNNNNNN, node IPs 192.168.x.y, endpoint addresses from
// 10.16.0.1 onwards and in fd00::/64, identities 100000+100×namespace+app.
//
// It serves the scale benchmark of the slicer and, later, the lab. Objects are written through
// the slicer's typed clients ([slicer.Client]); the client should have no client-side rate
// limit (the default of [slicer.NewClient]) so that the bounded worker pools set the pace.
//
//	s, err := scenario.New(scenario.Config{Seed: 1, Endpoints: 100_000, Namespaces: 1000, Nodes: 5000})
//	err = s.Seed(ctx, client, scenario.SeedOptions{Workers: 32, Progress: func(p scenario.Progress) { log.Print(p) }})
//	churn := s.NewChurn()
//	ctx, cancel := context.WithTimeout(ctx, time.Minute)
//	stats, err := churn.Run(ctx, client, scenario.ChurnOptions{Rate: 200, OnDone: record})
//
// The same Config gives the same objects ([Scenario.Endpoint] is a pure function of the seed
// and the endpoint's number) and the same sequence of churn operations ([Churn.Next]), whatever
// the concurrency of the writes.
//
// [slicer.Client]: https://pkg.go.dev/github.com/ceskit/ceskit/slicer#Client
// [slicer.NewClient]: https://pkg.go.dev/github.com/ceskit/ceskit/slicer#NewClient
package scenario
