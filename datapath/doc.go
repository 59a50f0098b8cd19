// Package datapath enforces policy in the kernel: eBPF programs, loaded with cilium/ebpf and
// attached with tcx to each endpoint's interface, decide every packet from per-endpoint policy
// entries keyed by security identity (the policy package's MapState, converted by a small
// adapter: datapath does not import policy), and report verdicts with the deciding rule's cookie
// at packet time.
//
// # Per packet
//
// The program (datapath/bpf/ceskit.c, built by bpf2go and committed) parses Ethernet, IPv4 and
// IPv6 (hop-by-hop, routing, destination-options, fragment and authentication headers), TCP,
// UDP, SCTP, ICMP and ICMPv6 (the ICMP type stands for the port, as in Cilium). Connection
// tracking comes first: packets of an allowed flow and its replies pass without a policy lookup.
// Otherwise the remote address's identity comes from the ipcache (an exact hash for /32 and /128,
// then a prefix trie; unknown addresses are the world, 2) and the verdict from the endpoint's
// entries:
//
//  1. exact hash (endpoint, identity, direction, protocol, port)
//  2. exact hash (endpoint, any identity, …)
//  3. prefix trie (endpoint, identity, direction, protocol, port prefix)
//  4. prefix trie (endpoint, any identity, …)
//
// [Datapath.SyncEndpoint] materialises the entries so that the first hit is the answer of the
// datapath arbitration ([Lookup]: specific vs wildcard identity, precedence, longest prefix):
// an exact-port rule costs one lookup, a wildcard-identity exact-port rule two; port ranges of
// up to [Spec].RangeExpansion ports are written as exact ports (one lookup), larger ranges and
// protocol-wide rules cost three or four. Allowed packets return TCX_NEXT (the next tcx program runs:
// ceskit coexists with others, e.g. Cilium's on AKS), denied ones are dropped, audited ones pass
// and are reported.
//
// Fragments: the first fragment is decided and tracked like any packet; later fragments carry no
// ports and are looked up with port 0, so only entries that cover every port of the protocol (or
// any protocol) allow them. Malformed or truncated IP packets are dropped; non-IP frames pass.
//
// Policy changes take effect for new connections at once. Established connections keep passing
// through conntrack until idle for [Spec].ConntrackTimeout, unless [Datapath.FlushConntrack] is
// called for the endpoint.
//
// # Go side
//
// [Load] creates the shared maps (reusing pinned ones under [Spec].PinPath), [Datapath.AttachEndpoint]
// loads the endpoint's two program instances (endpoint ID and direction are load-time constants)
// and attaches them with tcx at the head or tail of the chain; with PinPath the links are pinned
// and a restarted agent replaces the programs in them atomically. [Datapath.SetIdentities] and
// [Datapath.SyncEndpoint] write the ipcache and the policy with batch operations, new entries
// before deletions, after capacity checks ([ErrCapacity]: nothing written). [Datapath.Events]
// reads typed [Event]s from the ring buffer (rate-limited per CPU, losses counted), each with the
// deciding entry's cookie and [MatchType], and [Datapath.Stats] sums the per-CPU counters by
// [Reason] and direction. [Spec].Metrics receives the maps' fill and operation counts
// ([Metrics]); the [github.com/ceskit/ceskit/datapath/monitor] package turns events into
// Hubble flows and the counters into metrics. Without privileges or kernel support the errors
// wrap [ErrNotSupported].
package datapath
