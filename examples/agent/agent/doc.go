// Package agent is ceskit's node agent as a library: it joins the slicer's node-side watcher,
// the identity cache, the policy engine, the datapath and its monitor, and observe's metrics and
// flow log, for the endpoints of one node. examples/agent runs it as a DaemonSet; the lab embeds
// one agent per simulated node.
//
// # Data flow
//
//   - [github.com/ceskit/ceskit/slicer.Watcher] reports every endpoint of the cluster (from
//     CiliumEndpointSlices, falling back to CiliumEndpoints). A slice entry carries the
//     endpoint's addresses, node IP, named ports and numeric identity only; the labels come from
//     the identity's CiliumIdentity, which the agent watches (read-only: it allocates nothing).
//     Endpoints go into the [policy.Engine] with those labels and their cluster identity; an
//     endpoint whose CiliumIdentity is not known yet waits (listed in [Status].Unresolved).
//   - Nodes (their InternalIP and ExternalIP addresses) go into the engine as well; the Node named
//     by New's nodeName is the local one, and an endpoint is local when its node IP is one of
//     that Node's addresses.
//   - NetworkPolicies, CiliumNetworkPolicies and CiliumClusterwideNetworkPolicies (the latter two
//     where the API server serves them) are converted by the policy package and applied. A
//     policy it rejects changes nothing (the engine applies a policy whole or not at all; a
//     previous valid version stays in force), is logged with every field and value, and is
//     listed in [Status].InvalidPolicies.
//   - Every engine change returns per-endpoint diffs; the local endpoints among them are marked
//     and one syncer goroutine writes each one's current map state to the datapath with
//     [policymap.Entries] and [datapath.Datapath.SyncEndpoint], the ipcache (every endpoint
//     and node address, and the CIDR identities of the prefixes policies name) with
//     SetIdentities, and attaches the endpoint's programs to the interface [Config].Attach
//     chooses ([RouteAttachRule] by default). Datapath endpoint IDs come from [DatapathID];
//     rule cookies from [policymap.Cookies]. An endpoint whose policy does not fit (engine or datapath
//     capacity) fails closed: its map is emptied, so it denies everything.
//   - A [github.com/ceskit/ceskit/datapath/monitor.Monitor] turns the verdict events into
//     Hubble flows for [Config].Sink, naming endpoints, identities and policies from the agent's
//     state (default-deny drops name the isolating policies), and the datapath's counters into
//     metrics.
//
// Without a datapath ([Config].Datapath nil: not root, no BPF, or switched off) the agent does
// all of the above except writing the datapath, attaching and monitoring: [Status] still shows
// every local endpoint's computed entries.
//
// # Example
//
//	a, err := agent.New(restConfig, nodeName, agent.Config{
//		Datapath: dp, // nil: no-datapath mode
//		Sink:     observe.MultiSink(observe.NewJSONLinesSink(auditLog), flowMetrics),
//		Registry: reg,
//		Logger:   logger,
//	})
//	if err != nil {
//		return err
//	}
//	go a.Run(ctx)
//	st := a.Status()
//
// [RequiredAccess] lists the API permissions the agent uses; examples/agent/deploy holds the
// RBAC and DaemonSet manifests.
package agent
