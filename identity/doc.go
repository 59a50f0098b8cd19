// Package identity allocates Cilium security identities: the numeric IDs that every policy
// decision keys on, one per set of identity-relevant labels. It is wire-compatible with Cilium's
// CRD mode (cilium.io/v2 CiliumIdentity objects, the default without a kvstore and what AKS
// uses), and unlike it never creates two identities for one label set, however many allocators
// race, and reclaims unused identities in seconds instead of 15–30 minutes.
//
// # Labels
//
// [Labels] hold labels in Cilium's source-prefixed form ("k8s:app=web"); [Labels.Key] is the
// allocation key, byte-identical to Cilium's. [PodLabels] builds a pod's labels as Cilium's agent
// does (pod labels, namespace labels as io.cilium.k8s.namespace.labels.*, namespace, service
// account, cluster). A [Filter] keeps the identity-relevant ones; [DefaultFilter] is Cilium
// v1.20.2's default, including the topology.kubernetes.io exclusion. Invalid keys and values
// are rejected with a *[LabelError] naming them.
//
// # Numeric space
//
// [NumericIdentity] carries the scope in its top 8 bits: reserved identities 0–14 ([ReservedHost],
// [ReservedWorld], …) and the well-known 100–115 are fixed; cluster-local identities come from a
// [Range] (default 256–65535, [ClusterRange] for other cluster IDs); CIDR and FQDN identities live
// in [ScopeLocal] (1<<24) and are allocated in-process by a [LocalAllocator], never through the
// API.
//
// # The allocation protocol
//
// Kubernetes offers one atomic primitive across writers: creating an object whose name is taken
// fails. Cilium's CRD mode uses it only for the numeric ID (the CiliumIdentity's name), so two
// agents that allocate the same labels at once pick two free IDs and both succeed: a duplicate.
// [CRDAllocator] adds a second unique index, the claim: a coordination.k8s.io Lease in
// [Config.Namespace] named "cid-claim-" + SHA-256(key) ([ClaimName]), holding the key and the ID
// the label set uses. Its existence makes the key unique; its content decides the ID. One round:
//
//  1. Claim. Create the claim pointing at a candidate ID (the oldest existing identity with the
//     key, else a random free ID of the range). If it exists, read it: its ID wins.
//  2. Identity. Create the CiliumIdentity the claim points at. If it exists with the same labels,
//     it is the answer (a marked one is unmarked first). If it exists with other labels (a writer
//     that does not use claims took the ID), move the claim to a free ID with an
//     optimistic-concurrency update and start a new round.
//  3. Verify. Read the claim again. If it still points at the ID, return it. If it moved, the
//     claim was stale when read: delete the identity this round created (UID precondition) and
//     start a new round. If it was collected meanwhile, create it again pointing at the ID.
//
// Every allocator that returns an ID for a key has, after creating or finding the identity, read
// the claim pointing at that ID; a claim changes only when its ID is proven to belong to other
// labels. So all allocators report the same ID, and an identity for a key exists only at its
// claim's ID (a round that loses deletes its own creation before telling anyone). A new label set
// costs two creates; a label set in the allocator's cache costs none; one it already holds is a
// reference count. Concurrent calls for one key in one process share one round
// (single-flight). Lost rounds back off with jitter; [Config.MaxAttempts] bounds them.
// Identities created by Cilium agents are adopted: among duplicates the oldest wins, as Cilium's
// agents choose. The guarantee holds among ceskit allocators; agents that create identities
// without claims can still add duplicates, which [Status].Duplicates counts.
//
// # References, restore and garbage collection
//
// Each allocator publishes the identities it holds in a holder record, a Lease named
// [HolderName](Holder), written [Config.HolderSyncDelay] after a change and renewed every third of
// [Config.HolderLeaseDuration]. After a restart with the same Holder it reads the record back,
// holds those identities for [Config.RestoreGracePeriod], and answers Allocate for them without an
// API call.
//
// [GC] deletes identities nothing uses. In use means referenced by a CiliumEndpoint
// (status.identity.id), a CiliumEndpointSlice (endpoints[].id), a live holder record or
// [GCConfig.InUse]. An unused identity is marked with Cilium's io.cilium.heartbeat annotation;
// if it is still unused GracePeriod later (default 30 s) it is deleted with UID and
// resourceVersion preconditions. An allocator that reuses a marked identity removes the mark,
// which changes the resourceVersion, so the deletion fails instead of removing an identity in
// use; allocators also unmark, and re-create through the protocol, identities they hold that get
// marked or deleted. Writes go through a token bucket ([GCConfig.WriteQPS], default 250/s).
// Claims whose identity has been gone for [GCConfig.ClaimGracePeriod] and expired holder records
// are deleted too; until then a label set that comes back gets its old ID.
//
// # Exhaustion and relabels
//
// When no ID of the range is free, Allocate returns an *[ExhaustedError] with the usage and
// writes nothing. [Metrics].Usage reports the usage on every change and a warning is logged once
// usage reaches [Config.WarnRatio] (default 90 %). [CRDAllocator.RelabelNamespace] moves all
// identities of a namespace to its new labels at once, each new label set created once, so a
// namespace relabel on 5,000 nodes does not create 4,999 duplicates.
//
// # Example
//
//	client, _ := identity.NewClient(restConfig)
//	alloc, _ := identity.NewCRDAllocator(client, identity.Config{Holder: nodeName})
//	go alloc.Run(ctx)
//	lbls, _ := identity.PodLabels(pod.Namespace, pod.Labels, ns.Labels, pod.Spec.ServiceAccountName, "default")
//	id, err := alloc.Allocate(ctx, lbls)
//
// [github.com/ceskit/ceskit/observe] provides Prometheus metrics for [Metrics].
package identity
