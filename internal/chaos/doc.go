// Package chaos injects faults between ceskit's components and a real kube-apiserver, for the
// integration tests that check what the slicer and the identity allocator do when the API server
// misbehaves, and a way to kill and restart those components.
//
// An [Injector] sits in a client's transport (installed through rest.Config.WrapTransport by
// [Injector.WrapConfig]) and, at the rates of its [Faults]:
//
//   - answers requests itself with the errors the API server sends under load or in a race:
//     409 Conflict (updates, patches and deletes only), 429 TooManyRequests with a Retry-After
//     header, 500 InternalError, each with the metav1.Status body the server writes, so client-go
//     and the code above it handle them as the real ones (client-go itself waits and retries a
//     429, as it does against a real server);
//   - delays requests (latency plus jitter);
//   - times requests out: the call hangs, then fails with a network timeout; half of those are
//     sent first, so a write may have been applied although its caller saw it fail;
//   - cuts watch streams after a random time, as a dropped connection does;
//   - refuses every request and cuts every watch while set down ([Injector.SetDown]): the
//     component behind it is partitioned away, or dead.
//
// Decisions come from a random source seeded by [Faults].Seed. Counters of what was injected are
// in [Injector.Stats]; [Injector.SetFaults] changes the rates while requests flow, typically to
// turn faults off before a test waits for convergence.
//
// [Proc] runs a component ([Runner]: the slicer's Controller and Watcher, the identity
// CRDAllocator and GC) so that a test can kill it at any point (its injector is set down first,
// so it dies without a last write) and start a fresh instance. [Await] polls an invariant check
// until it holds and reports the time to converge.
//
// To restart the API server itself, with its etcd, port and certificates kept, see
// testenv.ControlPlane.RestartAPIServer.
//
// A test:
//
//	in := chaos.New(chaos.Faults{ErrorRate: 0.1, Latency: 5 * time.Millisecond, Jitter: 20 * time.Millisecond,
//		WatchDisconnectRate: 0.5, WatchMaxDuration: 3 * time.Second, Seed: 1})
//	client, err := slicer.NewClient(in.WrapConfig(cfg)) // the component's client: faults
//	truth, err := slicer.NewClient(cfg)                  // the test's client: none
//	ctl := chaos.NewProc(in, func() (*slicer.Controller, error) { return slicer.New(client, slicer.Config{}) })
//	ctl.Start()
//	// ... churn through truth, ctl.Kill(), ctl.Start() ...
//	in.SetFaults(chaos.Faults{})
//	took, violations := chaos.Await(ctx, time.Minute, 50*time.Millisecond, check)
//	t.Logf("converged in %s; injected %s", took, in.Stats())
package chaos
