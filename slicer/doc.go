// Package slicer groups pod endpoints into CiliumEndpointSlices, the way Cilium's operator does on
// AKS with Azure CNI powered by Cilium, wire-compatible with Cilium 1.17–1.20 agents, and with
// every setting the managed service hides.
//
// The package holds:
//
//   - the API types, in [github.com/ceskit/ceskit/slicer/ciliumv2] (CiliumEndpoint, short name
//     cep) and [github.com/ceskit/ceskit/slicer/ciliumv2alpha1] (CiliumEndpointSlice, short name
//     ces), their CRDs ([CRDs], [InstallCRDs]) and typed clients ([Client]);
//   - the operator-side [Controller], which keeps every live endpoint in exactly one slice of
//     its namespace, configured through [Config], and publishes a heartbeat Lease;
//   - the node-side [Watcher], which keeps a view of every endpoint (by name and by IP), reports
//     each change once to a [Handler], and falls back to CiliumEndpoints when the slices are
//     unavailable and back when they recover, configured through [WatcherConfig].
//
// A minimal operator:
//
//	client, err := slicer.NewClient(restConfig)
//	if err != nil { ... }
//	ctl, err := slicer.New(client, slicer.Config{MaxEndpointsPerSlice: 100})
//	if err != nil { ... }
//	go ctl.Run(ctx)
//
// A node agent:
//
//	w, err := slicer.NewWatcher(client, handler, slicer.WatcherConfig{})
//	if err != nil { ... }
//	go w.Run(ctx)
//	ep, ok := w.LookupIP(addr)
//
// On managed AKS, where Cilium's operator already owns the slices, set [Config].Shadow: the
// controller computes its slices and reports the difference ([Controller.Diff]) without
// writing. To force a re-synchronisation (FR2.3) call [Controller.Resync] or annotate the
// namespace with [ResyncAnnotation].
//
// See README.md beside this file for the design, the measured figures and how they compare
// with Cilium's own controller.
package slicer
