package identity

import (
	"errors"
	"fmt"
	"strconv"
)

// NumericIdentity is the numeric form of a security identity, as carried in
// the datapath, in CiliumIdentity object names and in CiliumEndpointSlices.
//
// Bit layout, as in Cilium:
//
//	bits  0-15: identity within its cluster (0-14 with 511 clusters)
//	bits 16-23: cluster ID (15-23 with 511 clusters)
//	bits 24-31: scope, see [Scope]
type NumericIdentity uint32

// String returns the identity in decimal, the form used as the name of a
// CiliumIdentity object.
func (id NumericIdentity) String() string {
	return strconv.FormatUint(uint64(id), 10)
}

// ParseNumericIdentity parses the decimal form produced by
// [NumericIdentity.String]. Unlike Cilium, which also accepts "0x…" prefixes,
// only plain decimal digits are accepted because CiliumIdentity names are
// always decimal.
func ParseNumericIdentity(s string) (NumericIdentity, error) {
	if s == "" || s[0] == '+' || s[0] == '-' {
		return 0, fmt.Errorf("parse numeric identity %q: not a decimal number", s)
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		var numErr *strconv.NumError
		if errors.As(err, &numErr) {
			err = numErr.Err
		}
		return 0, fmt.Errorf("parse numeric identity %q: %w", s, err)
	}
	return NumericIdentity(n), nil
}

// Scope is the top byte of a [NumericIdentity]; it tells how the identity
// was allocated.
type Scope uint32

const (
	// ScopeGlobal holds reserved identities and cluster-wide identities
	// allocated through CiliumIdentity objects.
	ScopeGlobal Scope = 0
	// ScopeLocal holds node-local identities for CIDR and FQDN label sets.
	// They are allocated by each node on its own (see [LocalAllocator]) and
	// never go through the API server.
	ScopeLocal Scope = 1 << 24
	// ScopeRemoteNode holds identities of remote nodes, when Cilium is
	// configured to give each node its own identity.
	ScopeRemoteNode Scope = 2 << 24

	scopeMask = 0xFF00_0000
)

// Scope returns the scope encoded in the top byte of id.
func (id NumericIdentity) Scope() Scope {
	return Scope(uint32(id) & scopeMask)
}

// String returns "global", "local", "remote-node", or the hexadecimal value
// for scopes Cilium does not define.
func (s Scope) String() string {
	switch s {
	case ScopeGlobal:
		return "global"
	case ScopeLocal:
		return "local"
	case ScopeRemoteNode:
		return "remote-node"
	default:
		return fmt.Sprintf("scope(%#08x)", uint32(s))
	}
}

// Reserved identities, with the numbers and names Cilium hard-codes. They are
// never allocated; the datapath and policy engine know them by number.
const (
	// IdentityUnknown is the zero identity: not known yet, or not found. In
	// policy maps it is the wildcard.
	IdentityUnknown NumericIdentity = 0
	// ReservedHost is the local host ("reserved:host").
	ReservedHost NumericIdentity = 1
	// ReservedWorld is anything outside the cluster ("reserved:world").
	ReservedWorld NumericIdentity = 2
	// ReservedUnmanaged is an endpoint Cilium does not manage
	// ("reserved:unmanaged").
	ReservedUnmanaged NumericIdentity = 3
	// ReservedHealth is the node's cilium-health endpoint ("reserved:health").
	ReservedHealth NumericIdentity = 4
	// ReservedInit is an endpoint that has not received its labels yet
	// ("reserved:init").
	ReservedInit NumericIdentity = 5
	// ReservedRemoteNode is any node other than the local one
	// ("reserved:remote-node").
	ReservedRemoteNode NumericIdentity = 6
	// ReservedKubeAPIServer is a remote node running a kube-apiserver backend
	// ("reserved:kube-apiserver").
	ReservedKubeAPIServer NumericIdentity = 7
	// ReservedIngress is the source address of Cilium's ingress proxies
	// ("reserved:ingress").
	ReservedIngress NumericIdentity = 8
	// ReservedWorldIPv4 is the IPv4 world in dual-stack mode
	// ("reserved:world-ipv4").
	ReservedWorldIPv4 NumericIdentity = 9
	// ReservedWorldIPv6 is the IPv6 world in dual-stack mode
	// ("reserved:world-ipv6").
	ReservedWorldIPv6 NumericIdentity = 10

	// Identities 11-14 are the policy-map aggregation placeholders Cilium
	// v1.20 added (cilium/cilium#46813 and #47216, which replaced the
	// removed "overlay-to-encrypt" identity 11). The names follow #47216
	// ("reserved:aggregate-…"); the number for each name follows
	// cilium-ces-identity.md §6.2 and was not confirmed against the v1.20
	// numericidentity.go source, which was not available.

	// ReservedAggregateCluster stands for every identity of the local
	// cluster in policy maps ("reserved:aggregate-cluster").
	ReservedAggregateCluster NumericIdentity = 11
	// ReservedAggregateClusterMesh stands for every identity of every
	// connected cluster ("reserved:aggregate-cluster-mesh").
	ReservedAggregateClusterMesh NumericIdentity = 12
	// ReservedAggregateWorld stands for every world identity, including
	// local-scope CIDR/FQDN identities ("reserved:aggregate-world").
	ReservedAggregateWorld NumericIdentity = 13
	// ReservedAggregateRemoteNode stands for every remote-node identity
	// ("reserved:aggregate-remote-node").
	ReservedAggregateRemoteNode NumericIdentity = 14
)

// reservedNames maps reserved identities 0-14 to their Cilium names. It is
// never modified.
var reservedNames = [...]string{
	IdentityUnknown:              "unknown",
	ReservedHost:                 "host",
	ReservedWorld:                "world",
	ReservedUnmanaged:            "unmanaged",
	ReservedHealth:               "health",
	ReservedInit:                 "init",
	ReservedRemoteNode:           "remote-node",
	ReservedKubeAPIServer:        "kube-apiserver",
	ReservedIngress:              "ingress",
	ReservedWorldIPv4:            "world-ipv4",
	ReservedWorldIPv6:            "world-ipv6",
	ReservedAggregateCluster:     "aggregate-cluster",
	ReservedAggregateClusterMesh: "aggregate-cluster-mesh",
	ReservedAggregateWorld:       "aggregate-world",
	ReservedAggregateRemoteNode:  "aggregate-remote-node",
}

// ReservedName returns the Cilium name of a reserved identity ("host",
// "world", …) and true, or "" and false if id is not reserved.
func (id NumericIdentity) ReservedName() (string, bool) {
	if uint64(id) >= uint64(len(reservedNames)) {
		return "", false
	}
	return reservedNames[id], true
}

// LookupReserved returns the reserved identity with the given Cilium name
// (without the "reserved:" source), or false if there is none.
func LookupReserved(name string) (NumericIdentity, bool) {
	for id, n := range reservedNames {
		if n == name {
			return NumericIdentity(id), true
		}
	}
	return 0, false
}

// IsReserved reports whether id is one of the reserved identities 0-14.
func (id NumericIdentity) IsReserved() bool {
	_, ok := id.ReservedName()
	return ok
}

// ReservedIdentities returns all reserved identities in ascending order. The
// slice is freshly allocated; callers may modify it.
func ReservedIdentities() []NumericIdentity {
	ids := make([]NumericIdentity, len(reservedNames))
	for i := range ids {
		ids[i] = NumericIdentity(i)
	}
	return ids
}

// Fixed ranges below [MinimalAllocation].
const (
	// MinWellKnown is the first well-known identity (kube-dns, CoreDNS,
	// cilium-operator, … in two variants each).
	MinWellKnown NumericIdentity = 100
	// MaxWellKnown is the last well-known identity.
	MaxWellKnown NumericIdentity = 115
	// MinUserReserved is the first identity users may reserve for their
	// own fixed identities.
	MinUserReserved NumericIdentity = 128
	// MaxUserReserved is the last user-reserved identity.
	MaxUserReserved NumericIdentity = 255
	// MinimalAllocation is the lowest identity the global allocator of
	// cluster 0 hands out (Cilium's MinimalNumericIdentity).
	MinimalAllocation NumericIdentity = 256

	// MinLocal is the lowest local-scope identity.
	MinLocal = NumericIdentity(ScopeLocal) | 1
	// MaxLocal is the highest local-scope identity.
	MaxLocal = NumericIdentity(ScopeLocal) | 0xFF_FFFF
)

// IsWellKnown reports whether id is in the well-known range 100-115.
func (id NumericIdentity) IsWellKnown() bool {
	return id >= MinWellKnown && id <= MaxWellKnown
}

// IsUserReserved reports whether id is in the user-reserved range 128-255.
func (id NumericIdentity) IsUserReserved() bool {
	return id >= MinUserReserved && id <= MaxUserReserved
}

// Range is an inclusive range of numeric identities, [Min, Max].
type Range struct {
	// Min is the lowest identity in the range.
	Min NumericIdentity
	// Max is the highest identity in the range.
	Max NumericIdentity
}

// Size returns the number of identities in r, or 0 if Min > Max.
func (r Range) Size() int {
	if r.Min > r.Max {
		return 0
	}
	return int(r.Max-r.Min) + 1
}

// Contains reports whether id is in r.
func (r Range) Contains(id NumericIdentity) bool {
	return id >= r.Min && id <= r.Max
}

// String returns "Min-Max", for example "256-65535".
func (r Range) String() string {
	return r.Min.String() + "-" + r.Max.String()
}

// Validate checks that r is a usable range for global allocation: Min <= Max,
// Min at or above [MinimalAllocation] (below it are reserved, well-known and
// user-reserved identities), and Max within the global scope (below 1<<24).
func (r Range) Validate() error {
	if r.Min < MinimalAllocation {
		return fmt.Errorf("validate identity range %s: Min %d is below the minimal allocation identity %d", r, r.Min, MinimalAllocation)
	}
	if r.Min > r.Max {
		return fmt.Errorf("validate identity range %s: Min %d is greater than Max %d", r, r.Min, r.Max)
	}
	if r.Max.Scope() != ScopeGlobal {
		return fmt.Errorf("validate identity range %s: Max %d is outside the global scope (must be below %d)", r, r.Max, uint32(ScopeLocal))
	}
	return nil
}

// DefaultMaxConnectedClusters is Cilium's default max-connected-clusters: 8
// bits of cluster ID and 16 bits of identity per cluster. The only other value
// Cilium accepts is 511 (9 bits of cluster ID, 15 bits of identity).
const DefaultMaxConnectedClusters = 255

// clusterIDShift returns how far a cluster ID is shifted inside a
// NumericIdentity (16 for 255 clusters, 15 for 511), or false for an
// unsupported maxConnectedClusters.
func clusterIDShift(maxConnectedClusters uint32) (uint32, bool) {
	switch maxConnectedClusters {
	case 255:
		return 16, true
	case 511:
		return 15, true
	default:
		return 0, false
	}
}

// ClusterRange returns the global identities cluster clusterID allocates from,
// as Cilium's GetMinimalAllocationIdentity and GetMaximumAllocationIdentity
// compute them: cluster 0 owns 256..(1<<shift)-1 and cluster N>0 owns
// N<<shift..((N+1)<<shift)-1, where shift is 16 for 255 connected clusters and
// 15 for 511. maxConnectedClusters must be 255 or 511 and clusterID at most
// maxConnectedClusters.
func ClusterRange(clusterID, maxConnectedClusters uint32) (Range, error) {
	shift, ok := clusterIDShift(maxConnectedClusters)
	if !ok {
		return Range{}, fmt.Errorf("compute cluster identity range: maxConnectedClusters %d: must be 255 or 511", maxConnectedClusters)
	}
	if clusterID > maxConnectedClusters {
		return Range{}, fmt.Errorf("compute cluster identity range: clusterID %d: must be at most maxConnectedClusters %d", clusterID, maxConnectedClusters)
	}
	r := Range{
		Min: NumericIdentity(clusterID << shift),
		Max: NumericIdentity((clusterID+1)<<shift - 1),
	}
	if clusterID == 0 {
		r.Min = MinimalAllocation
	}
	return r, nil
}

// DefaultRange returns the range of cluster 0 with the default 255 connected
// clusters: 256-65535.
func DefaultRange() Range {
	return Range{Min: MinimalAllocation, Max: 1<<16 - 1}
}

// ClusterID returns the cluster ID encoded in a global identity for the given
// max-connected-clusters setting (255 or 511; any other value is treated as
// 255). The result is meaningless for local- and remote-node-scope
// identities.
func (id NumericIdentity) ClusterID(maxConnectedClusters uint32) uint32 {
	shift, ok := clusterIDShift(maxConnectedClusters)
	if !ok {
		maxConnectedClusters = DefaultMaxConnectedClusters
		shift, _ = clusterIDShift(maxConnectedClusters)
	}
	return (uint32(id) >> shift) & maxConnectedClusters
}
