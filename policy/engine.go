package policy

import (
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/ceskit/ceskit/identity"
)

// DefaultMapCapacity is Cilium's default policy map size (bpf-policy-map-max).
const DefaultMapCapacity = 16384

// Config holds the optional settings of an [Engine]. The zero value is valid.
type Config struct {
	// Mode decides whether CIDR rules select pod addresses. Default: ModeAKS (they do not).
	Mode Mode

	// MapCapacity is the number of map entries one endpoint may need (both directions). An
	// endpoint over it gets an *OverflowError and a fail-closed, empty map. 256–65536, as
	// Cilium's bpf-policy-map-max. Default: 16384.
	MapCapacity int

	// AuditNamespaces puts every NetworkPolicy and CiliumNetworkPolicy of these namespaces in
	// audit mode: what they would deny is allowed and reported as Audit.
	AuditNamespaces []string

	// AuditPolicies puts these policies in audit mode.
	AuditPolicies []PolicyRef

	// Filter selects the identity-relevant labels of endpoints when the engine assigns
	// identities. Default: identity.DefaultFilter().
	Filter *identity.Filter

	// DenyHostIngress stops the engine from allowing the local host (kubelet probes) into
	// isolated endpoints, which Cilium allows by default (allow-localhost).
	DenyHostIngress bool

	// DNS configures the name cache that ObserveDNS feeds (TTL floor, addresses per name).
	DNS DNSCacheConfig

	// Logger receives the engine's logs. Default: discard.
	Logger *slog.Logger

	// Metrics receives the engine's measurements: policy changes, revision, update durations,
	// enforcement, map pressure, overflows and the selector cache (see [Engine] for when each is
	// reported). Default: NopMetrics. observe.PolicyMetrics implements it on Prometheus. The
	// engine calls it mostly with its lock held: implementations must return quickly and must not
	// call back into the engine, which would deadlock.
	Metrics Metrics
}

// Validate reports the first bad field as a *[ConfigError].
func (c Config) Validate() error {
	if c.Mode != ModeAKS && c.Mode != ModeSpec {
		return &ConfigError{Field: "Mode", Value: c.Mode.String(), Reason: "must be ModeAKS or ModeSpec"}
	}
	if c.MapCapacity != 0 && (c.MapCapacity < 256 || c.MapCapacity > 65536) {
		return &ConfigError{Field: "MapCapacity", Value: fmt.Sprint(c.MapCapacity), Reason: "must be 0 (default 16384) or within 256–65536"}
	}
	if err := c.DNS.Validate(); err != nil {
		return &ConfigError{Field: "DNS", Value: fmt.Sprintf("%+v", c.DNS), Reason: err.Error()}
	}
	for i, ns := range c.AuditNamespaces {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return &ConfigError{Field: fmt.Sprintf("AuditNamespaces[%d]", i), Value: ns, Reason: errs[0]}
		}
	}
	return nil
}

// Engine computes, for every endpoint, the policy map state its datapath needs, from endpoints,
// nodes and policies, and keeps it current incrementally: every change returns the per-endpoint
// diffs to apply. It is safe for concurrent use; changes are serialized.
//
// Every change is reported to [Config].Metrics before the call returns:
//
//   - UpsertPolicy/UpsertPolicies and DeletePolicy: PolicyChange("update" or "delete", "success"
//     or "failure") once per policy named in the call (a failing call changes nothing, so all
//     its policies fail); on success also Policies (policies held) and Revision
//     ([Engine.Revision]).
//   - Every successful change (scope "policy", "endpoint" for UpsertEndpoint(s) and
//     DeleteEndpoint, "node" for UpsertNode and DeleteNode, "dns" for ObserveDNS and ExpireDNS):
//     Update with the time spent holding the engine's lock and [Update].Recomputed; then
//     MapPressure (entries of the fullest endpoint map, an overflowed one counting as empty, and
//     [Config].MapCapacity) and SelectorCache (selectors in use and the sum over them of the
//     identities each selects, an identity counted once per selector selecting it).
//   - Policy and endpoint changes: Enforcement, the endpoints isolated (default deny, audited or
//     not) at ingress only, egress only, both, or none.
//   - Overflow whenever recomputing an endpoint needs more than [Config].MapCapacity entries
//     (every such recomputation, also of an endpoint already over capacity).
//
// Failed calls other than policy changes report nothing. The aggregates are maintained as
// endpoints are recomputed, so reporting costs no pass over all endpoints.
type Engine struct {
	cfg     Config
	log     *slog.Logger
	metrics Metrics
	audit   map[PolicyRef]bool
	auditNS map[string]bool

	mu        sync.Mutex
	endpoints map[string]*epState
	nodes     map[string]Node
	byIP      map[netip.Addr]string // endpoint ID by address (unmapped), for Explain
	nodeByIP  map[netip.Addr]string // node name by address
	hosts     []identity.NumericIdentity
	policies  map[PolicyRef]*Policy
	rules     []*rule

	ids        map[identity.NumericIdentity]*idInfo
	podIDs     map[string]identity.NumericIdentity // label key → engine-assigned identity
	idRefs     map[identity.NumericIdentity]int    // endpoints using a pod identity
	nextID     identity.NumericIdentity
	nextSplit  identity.NumericIdentity
	nextNode   identity.NumericIdentity
	nodeIDs    map[string]identity.NumericIdentity // remote nodes with a split identity (ModeSpec)
	nodeSplits map[string]identity.NumericIdentity
	local      *identity.LocalAllocator
	prefixes   map[netip.Prefix]int // prefixes named by policies, with reference counts
	splits     map[string]identity.NumericIdentity

	dns     *DNSCache
	fqdnIDs map[netip.Addr]identity.NumericIdentity

	sels     map[string]*selEntry
	selUsers map[string]map[*rule]struct{} // selector key → rules using it as subject or peer
	ruleSels map[*rule]*ruleSels           // the selector-cache entries of each registered rule
	// bySubject indexes rules by subject identity during one apply (nil: scan all rules).
	bySubject map[identity.NumericIdentity][]*rule

	// Aggregates for metrics, kept current as endpoints are settled, added and removed.
	revision uint64
	enforced [4]int      // endpoints by enforcement (bit 0 ingress, bit 1 egress)
	sizes    map[int]int // endpoints by map entries
	maxSize  int         // largest key of sizes
	selIDs   int         // sum over e.sels of len(ids)
}

// epState is one endpoint and its computed policy.
type epState struct {
	ep       Endpoint
	labels   identity.Labels
	base     identity.NumericIdentity // identity of its labels
	id       identity.NumericIdentity // effective identity (ModeSpec may split it by CIDR)
	ms       MapState
	err      error
	isolated [2][]RuleRef
}

// NewEngine returns an empty engine.
func NewEngine(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MapCapacity == 0 {
		cfg.MapCapacity = DefaultMapCapacity
	}
	if cfg.Filter == nil {
		cfg.Filter = identity.DefaultFilter()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NopMetrics{}
	}
	e := &Engine{
		cfg:        cfg,
		log:        cfg.Logger,
		metrics:    cfg.Metrics,
		sizes:      map[int]int{},
		audit:      map[PolicyRef]bool{},
		auditNS:    map[string]bool{},
		endpoints:  map[string]*epState{},
		nodes:      map[string]Node{},
		byIP:       map[netip.Addr]string{},
		nodeByIP:   map[netip.Addr]string{},
		hosts:      []identity.NumericIdentity{identity.ReservedHost},
		policies:   map[PolicyRef]*Policy{},
		ids:        map[identity.NumericIdentity]*idInfo{},
		podIDs:     map[string]identity.NumericIdentity{},
		idRefs:     map[identity.NumericIdentity]int{},
		nextID:     identity.MinimalAllocation,
		nextSplit:  identity.NumericIdentity(identity.ScopeLocal) | 0x800000,
		nextNode:   identity.NumericIdentity(identity.ScopeRemoteNode) | 1,
		nodeIDs:    map[string]identity.NumericIdentity{},
		nodeSplits: map[string]identity.NumericIdentity{},
		local:      identity.NewLocalAllocator(),
		prefixes:   map[netip.Prefix]int{},
		splits:     map[string]identity.NumericIdentity{},
		sels:       map[string]*selEntry{},
		dns:        NewDNSCache(cfg.DNS),
		fqdnIDs:    map[netip.Addr]identity.NumericIdentity{},
		selUsers:   map[string]map[*rule]struct{}{},
		ruleSels:   map[*rule]*ruleSels{},
	}
	for _, r := range cfg.AuditPolicies {
		e.audit[r] = true
	}
	for _, ns := range cfg.AuditNamespaces {
		e.auditNS[ns] = true
	}
	for _, id := range []identity.NumericIdentity{
		identity.ReservedHost, identity.ReservedWorld, identity.ReservedUnmanaged, identity.ReservedHealth,
		identity.ReservedInit, identity.ReservedRemoteNode, identity.ReservedKubeAPIServer, identity.ReservedIngress,
	} {
		name, _ := id.ReservedName()
		info := newIDInfo(id, kindReserved, identity.Labels{{Source: identity.SourceReserved, Key: name}})
		if id == identity.ReservedWorld {
			info.world = true
		}
		e.ids[id] = info
	}
	e.refreshWithin(e.ids[identity.ReservedWorld])
	return e, nil
}

// Update reports what a change did: for every endpoint whose map state changed, its diff; and how
// many endpoints were recomputed (the rest were not affected).
type Update struct {
	Diffs      map[string]Diff
	Recomputed int
}

// change accumulates what a mutation touched.
type change struct {
	endpoints  map[string]bool                   // changed themselves: recompute fully
	identities map[identity.NumericIdentity]bool // came, went, or changed selections
	rules      map[*rule]bool                    // added or removed: recompute their subjects fully
	touched    map[*rule]bool                    // a selector of theirs changed its selection
}

func newChange() *change {
	return &change{endpoints: map[string]bool{}, identities: map[identity.NumericIdentity]bool{},
		rules: map[*rule]bool{}, touched: map[*rule]bool{}}
}

// UpsertEndpoint adds or replaces an endpoint.
func (e *Engine) UpsertEndpoint(ep Endpoint) (Update, error) {
	return e.UpsertEndpoints(ep)
}

// UpsertEndpoints adds or replaces several endpoints as one change. It validates all of them
// first and changes nothing when one is invalid.
func (e *Engine) UpsertEndpoints(eps ...Endpoint) (Update, error) {
	rels := make([]identity.Labels, len(eps))
	for i, ep := range eps {
		if err := validateEndpoint(ep); err != nil {
			return Update{}, err
		}
		lbls, err := identity.PodLabels(ep.Namespace, ep.Labels, ep.NamespaceLabels, ep.ServiceAccount, "")
		if err != nil {
			return Update{}, fmt.Errorf("%w %s: %w", ErrInvalidEndpoint, ep.ID, err)
		}
		rels[i], _ = e.cfg.Filter.Filter(lbls)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	start := time.Now()
	for i, ep := range eps {
		if err := e.checkIdentity(ep, rels[i]); err != nil {
			return Update{}, err
		}
	}
	ch := newChange()
	for i, ep := range eps {
		e.upsertEndpoint(ep, rels[i], ch)
	}
	u := e.apply(ch)
	e.report(scopeEndpoint, start, u)
	return u, nil
}

// checkIdentity rejects an identity hint that contradicts what the engine knows.
func (e *Engine) checkIdentity(ep Endpoint, rel identity.Labels) error {
	if ep.Identity != 0 {
		if ep.Identity.Scope() != identity.ScopeGlobal || ep.Identity < identity.MinimalAllocation {
			return fmt.Errorf("%w %s: identity %d is not a cluster-local identity (256 and up, global scope)", ErrInvalidEndpoint, ep.ID, ep.Identity)
		}
		if info, ok := e.ids[ep.Identity]; ok && info.labels.Key() != rel.Key() && e.idRefs[ep.Identity] > 0 {
			return fmt.Errorf("%w %s: identity %d already stands for %s, not %s", ErrInvalidEndpoint, ep.ID, ep.Identity, info.labels, rel)
		}
	}
	return nil
}

func (e *Engine) upsertEndpoint(ep Endpoint, rel identity.Labels, ch *change) {
	old := e.endpoints[ep.ID]
	if old != nil {
		e.releaseEndpoint(old, ch)
		unindex(e.byIP, old.ep.IPs, ep.ID)
		e.account(old, -1)
	}
	index(e.byIP, ep.IPs, ep.ID)
	st := &epState{ep: cloneEndpoint(ep), labels: rel}
	st.base = e.podIdentity(rel, ep.Identity, ch)
	e.endpoints[ep.ID] = st
	e.account(st, 1)
	e.assignEffective(st, ch)
	ch.endpoints[ep.ID] = true
	if old != nil && !slices.Equal(old.ep.NamedPorts, ep.NamedPorts) {
		ch.identities[st.id] = true // egress named ports of peers resolve against it
	}
}

// DeleteEndpoint removes an endpoint.
func (e *Engine) DeleteEndpoint(id string) (Update, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	start := time.Now()
	st := e.endpoints[id]
	if st == nil {
		return Update{}, fmt.Errorf("delete endpoint %s: %w", id, ErrNotFound)
	}
	ch := newChange()
	e.releaseEndpoint(st, ch)
	delete(e.endpoints, id)
	e.account(st, -1)
	unindex(e.byIP, st.ep.IPs, id)
	u := e.apply(ch)
	if len(st.ms) > 0 {
		u.Diffs[id] = diffMapStates(st.ms, nil)
	}
	e.report(scopeEndpoint, start, u)
	return u, nil
}

// UpsertNode adds or replaces a node. Node addresses carry the host identity (the local node) or
// the remote-node identity; in ModeSpec a remote node whose addresses lie in policy CIDRs gets its
// own remote-node-scope identity, so CIDR rules select it (and remote-node entity rules still do).
func (e *Engine) UpsertNode(n Node) (Update, error) {
	if n.Name == "" {
		return Update{}, fmt.Errorf("%w: node without a name", ErrInvalidEndpoint)
	}
	for i, ip := range n.IPs {
		if !ip.IsValid() {
			return Update{}, fmt.Errorf("%w: node %s: IPs[%d] is not a valid address", ErrInvalidEndpoint, n.Name, i)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	start := time.Now()
	n.IPs = slices.Clone(n.IPs)
	n.Labels = maps.Clone(n.Labels)
	if old, ok := e.nodes[n.Name]; ok {
		unindex(e.nodeByIP, old.IPs, n.Name)
	}
	index(e.nodeByIP, n.IPs, n.Name)
	e.nodes[n.Name] = n
	ch := newChange()
	e.assignNode(n.Name, ch)
	u := e.apply(ch)
	e.report(scopeNode, start, u)
	return u, nil
}

// DeleteNode removes a node.
func (e *Engine) DeleteNode(name string) (Update, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	start := time.Now()
	if _, ok := e.nodes[name]; !ok {
		return Update{}, fmt.Errorf("delete node %s: %w", name, ErrNotFound)
	}
	unindex(e.nodeByIP, e.nodes[name].IPs, name)
	delete(e.nodes, name)
	ch := newChange()
	e.assignNode(name, ch)
	u := e.apply(ch)
	e.report(scopeNode, start, u)
	return u, nil
}

// nodeIdentity returns the identity a node's traffic carries.
func (e *Engine) nodeIdentity(n Node) identity.NumericIdentity {
	if id, ok := e.nodeIDs[n.Name]; ok {
		return id
	}
	if n.Local {
		return identity.ReservedHost
	}
	return identity.ReservedRemoteNode
}

// assignNode (re)computes a remote node's split identity in ModeSpec.
func (e *Engine) assignNode(name string, ch *change) {
	old, hadSplit := e.nodeIDs[name]
	n, exists := e.nodes[name]
	var within []netip.Prefix
	if exists && e.cfg.Mode == ModeSpec {
		for pfx := range e.prefixes {
			for _, ip := range n.IPs {
				if pfx.Contains(ip) {
					within = append(within, pfx)
					break
				}
			}
		}
	}
	want := identity.NumericIdentity(0)
	if len(within) > 0 {
		sortPrefixes(within)
		reserved, name := identity.ReservedRemoteNode, "remote-node"
		if n.Local {
			reserved, name = identity.ReservedHost, "host"
		}
		key := fmt.Sprint(name, within)
		if id, ok := e.nodeSplits[key]; ok {
			want = id
		} else {
			for e.ids[e.nextNode] != nil {
				e.nextNode++
			}
			want = e.nextNode
			e.nextNode++
			e.nodeSplits[key] = want
			info := newIDInfo(want, kindNode, identity.Labels{{Source: identity.SourceReserved, Key: name}})
			info.node = reserved
			info.within = within
			e.addIdentity(info, ch)
		}
	}
	if want == old {
		return
	}
	if want != 0 {
		e.nodeIDs[name] = want
		e.idRefs[want]++
		ch.identities[want] = true
	} else {
		delete(e.nodeIDs, name)
	}
	if hadSplit {
		e.idRefs[old]--
		if e.idRefs[old] <= 0 {
			delete(e.idRefs, old)
			for k, v := range e.nodeSplits {
				if v == old {
					delete(e.nodeSplits, k)
				}
			}
			e.removeIdentity(old, ch)
		}
	}
}

func sortPrefixes(ps []netip.Prefix) {
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
}

// UpsertPolicy adds or replaces a policy (by kind, namespace and name).
func (e *Engine) UpsertPolicy(p *Policy) (Update, error) {
	return e.UpsertPolicies(p)
}

// UpsertPolicies adds or replaces several policies as one change: every affected endpoint is
// recomputed once. Use it for an initial sync.
func (e *Engine) UpsertPolicies(ps ...*Policy) (Update, error) {
	for i, p := range ps {
		if p == nil {
			for range ps {
				e.metrics.PolicyChange("update", "failure")
			}
			return Update{}, fmt.Errorf("%w: policy %d is nil", ErrInvalidPolicy, i)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	start := time.Now()
	ch := newChange()
	for _, p := range ps {
		if old := e.policies[p.ref]; old != nil {
			e.removePolicy(old, ch)
		}
		e.policies[p.ref] = p
		for _, pfx := range p.cidrs {
			e.prefixes[pfx]++
			if e.prefixes[pfx] == 1 {
				e.addPrefix(pfx, ch)
			}
		}
		for _, r := range p.rules {
			e.rules = append(e.rules, r)
			e.registerRule(r)
			ch.rules[r] = true
		}
	}
	e.resplit(ch)
	u := e.apply(ch)
	if len(ps) > 0 {
		e.revision++
	}
	for range ps {
		e.metrics.PolicyChange("update", "success")
	}
	e.report(scopePolicy, start, u)
	return u, nil
}

// DeletePolicy removes a policy.
func (e *Engine) DeletePolicy(ref PolicyRef) (Update, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	start := time.Now()
	p := e.policies[ref]
	if p == nil {
		e.metrics.PolicyChange("delete", "failure")
		return Update{}, fmt.Errorf("delete policy %s: %w", ref, ErrNotFound)
	}
	ch := newChange()
	e.removePolicy(p, ch)
	e.resplit(ch)
	u := e.apply(ch)
	e.revision++
	e.metrics.PolicyChange("delete", "success")
	e.report(scopePolicy, start, u)
	return u, nil
}

func (e *Engine) removePolicy(p *Policy, ch *change) {
	delete(e.policies, p.ref)
	for _, r := range p.rules {
		ch.rules[r] = true
		e.unregisterRule(r)
	}
	e.rules = slices.DeleteFunc(e.rules, func(r *rule) bool { return r.policy == p })
	for _, pfx := range p.cidrs {
		e.prefixes[pfx]--
		if e.prefixes[pfx] == 0 {
			delete(e.prefixes, pfx)
			e.removePrefix(pfx, ch)
		}
	}
}

// Revision returns the engine's policy revision: 0 for a new engine, raised by one by every
// successful UpsertPolicy, UpsertPolicies (with at least one policy) and DeletePolicy call.
func (e *Engine) Revision() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.revision
}

// Metric scopes of [Metrics.Update].
const (
	scopePolicy   = "policy"
	scopeEndpoint = "endpoint"
	scopeNode     = "node"
	scopeDNS      = "dns"
)

// enforcementNames are the Enforcement keys, indexed by enforcement bits (1 ingress, 2 egress).
var enforcementNames = [4]string{"none", "ingress", "egress", "both"}

// report hands the measurements of one successful change to the metrics. Called with e.mu held.
func (e *Engine) report(scope string, start time.Time, u Update) {
	if scope == scopePolicy {
		e.metrics.Policies(len(e.policies))
		e.metrics.Revision(e.revision)
	}
	e.metrics.Update(scope, time.Since(start), u.Recomputed)
	if scope == scopePolicy || scope == scopeEndpoint {
		counts := make(map[string]int, len(enforcementNames))
		for i, name := range enforcementNames {
			counts[name] = e.enforced[i]
		}
		e.metrics.Enforcement(counts)
	}
	e.metrics.MapPressure(e.maxSize, e.cfg.MapCapacity)
	e.metrics.SelectorCache(len(e.sels), e.selIDs)
}

// account adds (d = 1) or removes (d = -1) an endpoint's enforcement and map size to or from the
// aggregates the metrics report. When the last endpoint of the largest size goes, the new largest
// is found among the distinct sizes.
func (e *Engine) account(st *epState, d int) {
	enf := 0
	if len(st.isolated[Ingress]) > 0 {
		enf |= 1
	}
	if len(st.isolated[Egress]) > 0 {
		enf |= 2
	}
	e.enforced[enf] += d
	n := len(st.ms)
	e.sizes[n] += d
	switch {
	case d > 0:
		e.maxSize = max(e.maxSize, n)
	case e.sizes[n] == 0:
		delete(e.sizes, n)
		if n == e.maxSize {
			e.maxSize = 0
			for s := range e.sizes {
				e.maxSize = max(e.maxSize, s)
			}
		}
	}
}

// MapState returns a copy of an endpoint's current map state. For an endpoint over capacity it
// returns the empty (deny-all) state and the *OverflowError.
func (e *Engine) MapState(endpointID string) (MapState, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.endpoints[endpointID]
	if st == nil {
		return nil, fmt.Errorf("map state of %s: %w", endpointID, ErrNotFound)
	}
	return maps.Clone(st.ms), st.err
}

// Identity returns the effective identity of an endpoint: the one its traffic carries. In
// ModeSpec, pods whose addresses lie in a policy's CIDR get their own local-scope identity so
// that the CIDR rule can select them without selecting their siblings; the datapath's IP cache
// must map their addresses to it.
func (e *Engine) Identity(endpointID string) (identity.NumericIdentity, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.endpoints[endpointID]
	if st == nil {
		return 0, fmt.Errorf("identity of %s: %w", endpointID, ErrNotFound)
	}
	return st.id, nil
}

// Endpoints returns the IDs of the known endpoints, sorted.
func (e *Engine) Endpoints() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	ids := slices.Collect(maps.Keys(e.endpoints))
	slices.Sort(ids)
	return ids
}

func validateEndpoint(ep Endpoint) error {
	switch {
	case ep.ID == "":
		return fmt.Errorf("%w: ID is empty", ErrInvalidEndpoint)
	case ep.Namespace == "":
		return fmt.Errorf("%w %s: Namespace is empty", ErrInvalidEndpoint, ep.ID)
	}
	for i, ip := range ep.IPs {
		if !ip.IsValid() {
			return fmt.Errorf("%w %s: IPs[%d] is not a valid address", ErrInvalidEndpoint, ep.ID, i)
		}
	}
	for i, np := range ep.NamedPorts {
		if errs := validation.IsValidPortName(np.Name); len(errs) > 0 {
			return fmt.Errorf("%w %s: NamedPorts[%d].Name %q: %s", ErrInvalidEndpoint, ep.ID, i, np.Name, errs[0])
		}
		if np.Port == 0 {
			return fmt.Errorf("%w %s: NamedPorts[%d].Port is 0", ErrInvalidEndpoint, ep.ID, i)
		}
	}
	return nil
}

func cloneEndpoint(ep Endpoint) Endpoint {
	ep.Labels = maps.Clone(ep.Labels)
	ep.NamespaceLabels = maps.Clone(ep.NamespaceLabels)
	ep.IPs = slices.Clone(ep.IPs)
	ep.NamedPorts = slices.Clone(ep.NamedPorts)
	return ep
}

// podIdentity returns the identity of a label set: the caller's, or one the engine assigns.
func (e *Engine) podIdentity(lbls identity.Labels, given identity.NumericIdentity, ch *change) identity.NumericIdentity {
	key := lbls.Key()
	id := given
	if id == 0 {
		if known, ok := e.podIDs[key]; ok {
			id = known
		} else {
			for e.ids[e.nextID] != nil {
				e.nextID++
			}
			id = e.nextID
			e.nextID++
		}
	}
	e.podIDs[key] = id
	e.idRefs[id]++
	if e.ids[id] == nil {
		e.addIdentity(newIDInfo(id, kindPod, lbls), ch)
	}
	return id
}

// releaseEndpoint drops an endpoint's identity references.
func (e *Engine) releaseEndpoint(st *epState, ch *change) {
	e.dropRef(st.base, ch)
	if st.id != st.base {
		e.dropRef(st.id, ch)
	}
	ch.identities[st.id] = true
}

func (e *Engine) dropRef(id identity.NumericIdentity, ch *change) {
	e.idRefs[id]--
	if e.idRefs[id] > 0 {
		return
	}
	delete(e.idRefs, id)
	info := e.ids[id]
	if info == nil {
		return
	}
	if info.kind == kindPod && id.Scope() == identity.ScopeGlobal {
		delete(e.podIDs, info.labels.Key())
	}
	if id.Scope() == identity.ScopeLocal {
		for k, v := range e.splits {
			if v == id {
				delete(e.splits, k)
			}
		}
	}
	e.removeIdentity(id, ch)
}

// addIdentity registers an identity and updates every selector's selection.
func (e *Engine) addIdentity(info *idInfo, ch *change) {
	e.refreshWithin(info)
	e.ids[info.id] = info
	ch.identities[info.id] = true
	for k, s := range e.sels {
		if s.sel.matches(info) {
			if _, ok := s.ids[info.id]; !ok {
				e.selIDs++
			}
			s.ids[info.id] = struct{}{}
			s.list = nil
			e.touchSelector(k, ch)
		}
	}
}

func (e *Engine) removeIdentity(id identity.NumericIdentity, ch *change) {
	delete(e.ids, id)
	ch.identities[id] = true
	for k, s := range e.sels {
		if _, ok := s.ids[id]; ok {
			delete(s.ids, id)
			e.selIDs--
			s.list = nil
			e.touchSelector(k, ch)
		}
	}
}

// touchSelector marks the rules that use a selector whose selection changed.
func (e *Engine) touchSelector(key string, ch *change) {
	for r := range e.selUsers[key] {
		ch.touched[r] = true
	}
}

// refreshWithin recomputes which policy prefixes contain an identity's addresses.
func (e *Engine) refreshWithin(info *idInfo) {
	var addrs []netip.Prefix
	switch {
	case info.id == identity.ReservedWorld:
		addrs = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
	case info.kind == kindCIDR:
		for _, l := range info.labels {
			if l.Source == identity.SourceCIDR {
				if p, err := netip.ParsePrefix(l.Key); err == nil {
					addrs = append(addrs, p)
				}
			}
		}
	default:
		return
	}
	info.within = info.within[:0]
	for pfx := range e.prefixes {
		for _, a := range addrs {
			if prefixContains(pfx, a) {
				info.within = append(info.within, pfx)
				break
			}
		}
	}
}

// prefixContains reports whether outer contains all of inner.
func prefixContains(outer, inner netip.Prefix) bool {
	return outer.Addr().Is4() == inner.Addr().Is4() && outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

// addPrefix creates the CIDR identity of a prefix a policy names and refreshes the other
// address identities, whose containing prefixes may have grown.
func (e *Engine) addPrefix(pfx netip.Prefix, ch *change) {
	lbls := identity.Labels{{Source: identity.SourceCIDR, Key: pfx.String()}, {Source: identity.SourceReserved, Key: "world"}}
	id, _, err := e.local.Allocate(lbls)
	if err != nil {
		e.log.Warn("allocate CIDR identity", "prefix", pfx.String(), "err", err)
		return
	}
	e.reindexAddresses(ch)
	info := newIDInfo(id, kindCIDR, lbls)
	info.world = true
	e.addIdentity(info, ch)
}

func (e *Engine) removePrefix(pfx netip.Prefix, ch *change) {
	lbls := identity.Labels{{Source: identity.SourceCIDR, Key: pfx.String()}, {Source: identity.SourceReserved, Key: "world"}}
	if id, ok := e.local.LookupByLabels(lbls); ok {
		e.local.Release(id)
		e.removeIdentity(id, ch)
	}
	e.reindexAddresses(ch)
}

// reindexAddresses recomputes the containing prefixes of CIDR and world identities and the
// selections of CIDR selectors.
func (e *Engine) reindexAddresses(ch *change) {
	for _, info := range e.ids {
		if info.kind == kindCIDR || info.id == identity.ReservedWorld {
			e.refreshWithin(info)
		}
	}
	for k, s := range e.sels {
		if _, ok := s.sel.(*cidrSel); !ok {
			continue
		}
		n := len(s.ids)
		if e.reselect(s, ch) {
			e.touchSelector(k, ch)
		}
		e.selIDs += len(s.ids) - n
	}
}

// reselect recomputes a selector's selection; it reports whether it changed and, when ch is not
// nil, records the identities that entered or left it.
func (e *Engine) reselect(s *selEntry, ch ...*change) bool {
	next := make(map[identity.NumericIdentity]struct{})
	for id, info := range e.ids {
		if s.sel.matches(info) {
			next[id] = struct{}{}
		}
	}
	changed := false
	for id := range next {
		if _, ok := s.ids[id]; !ok {
			changed = true
			for _, c := range ch {
				c.identities[id] = true
			}
		}
	}
	for id := range s.ids {
		if _, ok := next[id]; !ok {
			changed = true
			for _, c := range ch {
				c.identities[id] = true
			}
		}
	}
	s.ids, s.list = next, nil
	return changed
}

// resplit gives, in ModeSpec, every pod whose addresses lie in policy prefixes its own identity
// carrying those prefixes, so CIDR rules select exactly those pods.
func (e *Engine) resplit(ch *change) {
	if e.cfg.Mode != ModeSpec {
		return
	}
	for _, st := range e.endpoints {
		e.assignEffective(st, ch)
	}
	for name := range e.nodes {
		e.assignNode(name, ch)
	}
}

// assignEffective sets an endpoint's effective identity.
func (e *Engine) assignEffective(st *epState, ch *change) {
	want := st.base
	var within []netip.Prefix
	if e.cfg.Mode == ModeSpec {
		for pfx := range e.prefixes {
			for _, ip := range st.ep.IPs {
				if pfx.Contains(ip) {
					within = append(within, pfx)
					break
				}
			}
		}
	}
	var splitKey string
	if len(within) > 0 {
		slices.SortFunc(within, func(a, b netip.Prefix) int {
			if c := a.Addr().Compare(b.Addr()); c != 0 {
				return c
			}
			return a.Bits() - b.Bits()
		})
		splitKey = fmt.Sprint(st.base, within)
		if id, ok := e.splits[splitKey]; ok {
			want = id
		} else {
			// Split identities live in the upper half of the local scope, apart from the CIDR
			// identities the local allocator hands out from the bottom.
			for e.ids[e.nextSplit] != nil {
				e.nextSplit++
			}
			id := e.nextSplit
			e.nextSplit++
			want = id
			e.splits[splitKey] = id
			info := newIDInfo(id, kindPod, e.ids[st.base].labels)
			info.within = within
			e.addIdentity(info, ch)
		}
	}
	if want == st.id {
		return
	}
	old := st.id
	st.id = want
	if want != st.base {
		e.idRefs[want]++
	}
	ch.endpoints[st.ep.ID] = true
	ch.identities[want] = true
	if old != 0 && old != st.base {
		e.dropRef(old, ch)
	}
}

// ruleSels are a rule's selector-cache entries, resolved once when the rule is registered.
type ruleSels struct {
	subject *selEntry
	peers   []*selEntry
}

// registerRule adds a rule's selectors to the selector cache.
func (e *Engine) registerRule(r *rule) {
	rs := &ruleSels{}
	entry := func(s peerSel) *selEntry {
		s = e.modeSelector(s)
		k := s.key()
		se := e.sels[k]
		if se == nil {
			se = &selEntry{sel: s, ids: map[identity.NumericIdentity]struct{}{}}
			e.reselect(se)
			e.sels[k] = se
			e.selIDs += len(se.ids)
		}
		if e.selUsers[k] == nil {
			e.selUsers[k] = map[*rule]struct{}{}
		}
		e.selUsers[k][r] = struct{}{}
		return se
	}
	if r.subject != nil {
		rs.subject = entry(r.subject)
	}
	for _, p := range r.peers {
		rs.peers = append(rs.peers, entry(p))
	}
	e.ruleSels[r] = rs
}

func (e *Engine) unregisterRule(r *rule) {
	delete(e.ruleSels, r)
	sels := append([]peerSel{r.subject}, r.peers...)
	for _, s := range sels {
		if s == nil {
			continue
		}
		k := e.modeSelector(s).key()
		delete(e.selUsers[k], r)
		if len(e.selUsers[k]) == 0 {
			delete(e.selUsers, k)
			if se := e.sels[k]; se != nil {
				e.selIDs -= len(se.ids)
				delete(e.sels, k)
			}
		}
	}
}

// modeSelector adapts CIDR selectors to the engine's mode.
func (e *Engine) modeSelector(s peerSel) peerSel {
	c, ok := s.(*cidrSel)
	if !ok || e.cfg.Mode != ModeAKS || c.worldOnly {
		return s
	}
	w := *c
	w.worldOnly = true
	w.str += " world-only"
	return &w
}

// apply recomputes every endpoint the change affects and returns the diffs.
func (e *Engine) apply(ch *change) Update {
	byID := map[identity.NumericIdentity][]*epState{}
	for _, st := range e.endpoints {
		byID[st.id] = append(byID[st.id], st)
	}
	subjects := func(r *rule) map[identity.NumericIdentity]struct{} {
		if rs := e.ruleSels[r]; rs != nil && rs.subject != nil {
			return rs.subject.ids
		}
		if r.subject == nil {
			return nil
		}
		// A removed rule: its selector may be gone; recompute whatever it could select.
		tmp := &selEntry{sel: e.modeSelector(r.subject)}
		e.reselect(tmp)
		return tmp.ids
	}
	// Full recomputation: endpoints that changed themselves and the subjects of added or removed
	// rules.
	full := map[string]bool{}
	for id := range ch.endpoints {
		full[id] = true
	}
	for r := range ch.rules {
		for id := range subjects(r) {
			for _, st := range byID[id] {
				full[st.ep.ID] = true
			}
		}
	}
	// Identities that came, went or changed selections only add or remove the keys of those
	// identities: the subjects of rules that select (or selected) them are patched, one identity
	// at a time (keys of different identities never interact in a map state).
	delta := map[string]bool{}
	if len(ch.identities) > 0 {
		for _, r := range e.rules {
			if ch.rules[r] || r.isolation {
				continue
			}
			relevant := ch.touched[r] || (r.allPeers && hasNamedPort(r.ports))
			if !relevant && !r.allPeers {
				for _, s := range e.ruleSels[r].peers {
					for id := range ch.identities {
						if _, ok := s.ids[id]; ok {
							relevant = true
							break
						}
					}
					if relevant {
						break
					}
				}
			}
			if !relevant {
				continue
			}
			for id := range subjects(r) {
				for _, st := range byID[id] {
					if !full[st.ep.ID] {
						delta[st.ep.ID] = true
					}
				}
			}
		}
	}
	// The allow-localhost entries of every isolated endpoint list the host's identities.
	hosts := e.hostIdentities()
	hostChanged := !slices.Equal(hosts, e.hosts)
	e.hosts = hosts
	if hostChanged {
		// Every isolated endpoint lets the host in: all maps carry the host identities.
		for id := range e.endpoints {
			full[id] = true
		}
	}
	if len(ch.identities) > maxDeltaIdentities || hostChanged {
		for id := range delta {
			full[id] = true
		}
		delta = nil
	}
	u := Update{Diffs: map[string]Diff{}}
	// Many endpoints to recompute: index the rules by the identities their subjects select once,
	// instead of testing every rule for every identity.
	e.bySubject = nil
	if len(full)+len(delta) > 32 {
		e.bySubject = map[identity.NumericIdentity][]*rule{}
		for _, r := range e.rules {
			if rs := e.ruleSels[r]; rs != nil && rs.subject != nil {
				for id := range rs.subject.ids {
					e.bySubject[id] = append(e.bySubject[id], r)
				}
			}
		}
	}
	cache := map[string]computed{}
	dc := map[[2]uintptr]Diff{}
	for id := range full {
		st := e.endpoints[id]
		if st == nil {
			continue
		}
		key := fmt.Sprint(st.id, st.ep.NamedPorts)
		c, ok := cache[key]
		if !ok {
			c = e.compute(st)
			cache[key] = c
		}
		e.settle(st, c.ms, c.isolated, &u, dc)
	}
	patched := map[string]MapState{}
	for id := range delta {
		st := e.endpoints[id]
		if st == nil {
			continue
		}
		if st.err != nil {
			e.settle(st, e.compute(st).ms, st.isolated, &u, dc) // from fail-closed, start over
			continue
		}
		key := fmt.Sprint(st.id, st.ep.NamedPorts)
		ms, ok := patched[key]
		if !ok {
			ms = e.patch(st, ch.identities)
			patched[key] = ms
		}
		e.settle(st, ms, st.isolated, &u, dc)
	}
	e.bySubject = nil
	return u
}

// hostIdentities are the identities the local node's traffic may carry: host, and in ModeSpec
// its split identity.
func (e *Engine) hostIdentities() []identity.NumericIdentity {
	out := []identity.NumericIdentity{identity.ReservedHost}
	for _, n := range e.nodes {
		if id, ok := e.nodeIDs[n.Name]; ok && n.Local {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// maxDeltaIdentities bounds patching: a change touching more identities recomputes fully.
const maxDeltaIdentities = 8

// settle installs a newly computed map state for an endpoint, applying the capacity check, and
// records the diff. Map states are never modified in place, so endpoints may share them, and
// the diff between two shared states is computed once (dc).
func (e *Engine) settle(st *epState, ms MapState, isolated [2][]RuleRef, u *Update, dc map[[2]uintptr]Diff) {
	u.Recomputed++
	var err error
	if size := len(ms); size > e.cfg.MapCapacity {
		err = &OverflowError{Endpoint: st.ep.ID, Needed: size, Capacity: e.cfg.MapCapacity}
		ms = MapState{}
		e.metrics.Overflow()
		if st.err == nil {
			e.log.Error("policy map overflow: endpoint fails closed", "endpoint", st.ep.ID, "needed", size, "capacity", e.cfg.MapCapacity)
		}
	}
	dk := [2]uintptr{mapID(st.ms), mapID(ms)}
	d, ok := dc[dk]
	if !ok || dk[0] == 0 || dk[1] == 0 {
		d = diffMapStates(st.ms, ms)
		dc[dk] = d
	}
	d.Err = err
	if (err != nil) != (st.err != nil) || !d.Empty() {
		u.Diffs[st.ep.ID] = d
	}
	e.account(st, -1)
	st.ms, st.err, st.isolated = ms, err, isolated
	e.account(st, 1)
}

// mapID identifies a map object (0 for nil).
func mapID(m MapState) uintptr {
	if m == nil {
		return 0
	}
	return uintptr(reflect.ValueOf(m).UnsafePointer())
}

// patch returns st's map state with the keys of the given identities recomputed. Endpoints
// under audited deny rules are recomputed fully: those rules' keys depend on every allow.
func (e *Engine) patch(st *epState, ids map[identity.NumericIdentity]bool) MapState {
	for _, dir := range []Direction{Ingress, Egress} {
		for _, r := range e.rulesFor(st, dir) {
			if r.deny && e.audited(r.policy) {
				return e.compute(st).ms
			}
		}
	}
	out := make(MapState, len(st.ms))
	for k, v := range st.ms {
		if !ids[k.Identity] || k.Identity == 0 {
			out[k] = v
		}
	}
	for id := range ids {
		if id == 0 {
			continue
		}
		b := newMapBuilder()
		for _, dir := range []Direction{Ingress, Egress} {
			for _, r := range e.rulesFor(st, dir) {
				if r.isolation {
					continue
				}
				entry := e.ruleEntry(r)
				for _, k := range e.ruleKeysFor(r, st, id) {
					b.insert(k, entry)
				}
			}
		}
		maps.Copy(out, b.m)
	}
	return out
}

func hasNamedPort(ports []portSel) bool {
	for _, p := range ports {
		if p.name != "" {
			return true
		}
	}
	return false
}

// computed is the map state of one (identity, named ports) combination.
type computed struct {
	ms       MapState
	size     int
	isolated [2][]RuleRef
}

// compute builds an endpoint's map state from scratch.
func (e *Engine) compute(st *epState) computed {
	var c computed
	b := newMapBuilder()
	for _, dir := range []Direction{Ingress, Egress} {
		rules := e.rulesFor(st, dir)
		isolated, auditOnly := false, true
		var iso []RuleRef
		for _, r := range rules {
			if r.defaultDeny {
				isolated = true
				if !e.audited(r.policy) {
					auditOnly = false
				}
				ref := RuleRef{Policy: r.ref.Policy, Spec: r.ref.Spec, Section: "default-deny"}
				if !slices.Contains(iso, ref) {
					iso = append(iso, ref)
				}
			}
		}
		slices.SortFunc(iso, compareRuleRefs)
		c.isolated[dir] = iso
		all := Key{Direction: dir, Protocol: ProtoAny}
		switch {
		case !isolated:
			b.insert(all, Entry{Verdict: Allow, Precedence: PrecedenceAllow})
		case auditOnly:
			b.insert(all, Entry{Verdict: Audit, Precedence: PrecedenceAuditDefault, Rules: iso})
		}
		if dir == Ingress && isolated && !e.cfg.DenyHostIngress {
			for _, h := range e.hostIdentities() {
				b.insert(Key{Identity: h, Direction: Ingress, Protocol: ProtoAny}, Entry{Verdict: Allow, Precedence: PrecedenceAllow})
			}
		}
		var audits []auditKey
		for _, r := range rules {
			if r.isolation {
				continue
			}
			entry := e.ruleEntry(r)
			for _, k := range e.ruleKeys(r, st) {
				if entry.Precedence == PrecedenceAuditDeny {
					audits = append(audits, auditKey{k, entry})
					continue
				}
				b.insert(k, entry)
			}
		}
		b.insertAudits(audits)
	}
	c.ms = b.m
	c.size = len(b.m)
	return c
}

// rulesFor returns the rules whose subject selects st's identity for dir, in engine order.
func (e *Engine) rulesFor(st *epState, dir Direction) []*rule {
	candidates := e.rules
	if e.bySubject != nil {
		candidates = e.bySubject[st.id]
	}
	var rules []*rule
	for _, r := range candidates {
		if r.dir != dir {
			continue
		}
		if rs := e.ruleSels[r]; rs != nil && rs.subject != nil {
			if _, ok := rs.subject.ids[st.id]; ok {
				rules = append(rules, r)
			}
		}
	}
	return rules
}

// ruleEntry is the map entry a rule's keys get.
func (e *Engine) ruleEntry(r *rule) Entry {
	if !r.deny {
		return Entry{Verdict: Allow, Precedence: PrecedenceAllow, Rules: []RuleRef{r.ref}}
	}
	if e.audited(r.policy) {
		return Entry{Verdict: Audit, Precedence: PrecedenceAuditDeny, Rules: []RuleRef{r.ref}}
	}
	return Entry{Verdict: Deny, Precedence: PrecedenceDeny, Rules: []RuleRef{r.ref}}
}

// audited reports whether a policy is in audit mode.
func (e *Engine) audited(p *Policy) bool {
	return p.audit || e.audit[p.ref] || (p.ref.Namespace != "" && e.auditNS[p.ref.Namespace])
}

// ruleKeys expands a rule into map keys for an endpoint.
func (e *Engine) ruleKeys(r *rule, st *epState) []Key {
	var ids []identity.NumericIdentity
	if r.allPeers {
		ids = []identity.NumericIdentity{0}
	} else {
		peers := e.ruleSels[r].peers
		if len(peers) == 1 {
			ids = peers[0].sorted()
		} else {
			seen := map[identity.NumericIdentity]bool{}
			for _, s := range peers {
				for _, id := range s.sorted() {
					if !seen[id] {
						seen[id] = true
						ids = append(ids, id)
					}
				}
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	ports := r.ports
	if len(ports) == 0 {
		ports = []portSel{{proto: ProtoAny}}
	}
	var keys []Key
	for _, ps := range ports {
		if ps.name != "" {
			keys = append(keys, e.namedPortKeys(r, st, ids, ps)...)
			continue
		}
		for _, id := range ids {
			keys = append(keys, portKeys(Key{Identity: id, Direction: r.dir}, ps)...)
		}
	}
	return keys
}

// ruleKeysFor returns the keys of a rule for one remote identity id (never the wildcard).
func (e *Engine) ruleKeysFor(r *rule, st *epState, id identity.NumericIdentity) []Key {
	selected := false
	if !r.allPeers {
		for _, s := range e.ruleSels[r].peers {
			if _, ok := s.ids[id]; ok {
				selected = true
				break
			}
		}
	}
	var keys []Key
	ports := r.ports
	if len(ports) == 0 {
		ports = []portSel{{proto: ProtoAny}}
	}
	for _, ps := range ports {
		switch {
		case ps.name != "" && (selected || (r.allPeers && r.dir == Egress)):
			// An all-peers egress rule with a named port has per-peer keys too.
			keys = append(keys, e.namedPortKeys(r, st, []identity.NumericIdentity{id}, ps)...)
		case ps.name == "" && selected:
			keys = append(keys, portKeys(Key{Identity: id, Direction: r.dir}, ps)...)
		}
	}
	return keys
}

// portKeys expands one port selector for one identity.
func portKeys(base Key, ps portSel) []Key {
	protos := []Protocol{ps.proto}
	if ps.proto == ProtoAny {
		if ps.port == 0 {
			base.Protocol = ProtoAny
			return []Key{base}
		}
		protos = []Protocol{ProtoTCP, ProtoUDP, ProtoSCTP}
	}
	var out []Key
	for _, p := range protos {
		k := base
		k.Protocol = p
		switch {
		case ps.port == 0:
			out = append(out, k)
		case ps.endPort > ps.port:
			out = append(out, portRangeKeys(k, ps.port, ps.endPort)...)
		default:
			k.Port, k.PortPrefixLen = ps.port, 16
			out = append(out, k)
		}
	}
	return out
}

// namedPortKeys resolves a named port against the destination: the endpoint itself for ingress,
// each peer identity's endpoints for egress. Unresolvable names yield nothing.
func (e *Engine) namedPortKeys(r *rule, st *epState, ids []identity.NumericIdentity, ps portSel) []Key {
	if ps.proto == ProtoAny {
		// As Cilium: ANY is expanded first and the name resolved per protocol.
		var out []Key
		for _, p := range []Protocol{ProtoTCP, ProtoUDP, ProtoSCTP} {
			q := ps
			q.proto = p
			out = append(out, e.namedPortKeys(r, st, ids, q)...)
		}
		return out
	}
	var out []Key
	resolve := func(ep Endpoint) (uint16, bool) {
		for _, np := range ep.NamedPorts {
			if strings.EqualFold(np.Name, ps.name) && np.Protocol == ps.proto {
				return np.Port, true
			}
		}
		return 0, false
	}
	if r.dir == Ingress {
		port, ok := resolve(st.ep)
		if !ok {
			return nil
		}
		for _, id := range ids {
			out = append(out, portKeys(Key{Identity: id, Direction: r.dir}, portSel{proto: ps.proto, port: port})...)
		}
		return out
	}
	wanted := map[identity.NumericIdentity]bool{}
	for _, id := range ids {
		wanted[id] = true
	}
	seen := map[Key]bool{}
	for _, peer := range e.endpoints {
		if !wanted[0] && !wanted[peer.id] {
			continue
		}
		port, ok := resolve(peer.ep)
		if !ok {
			continue
		}
		for _, k := range portKeys(Key{Identity: peer.id, Direction: r.dir}, portSel{proto: ps.proto, port: port}) {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	return out
}

// index records addresses as owned by name.
func index(m map[netip.Addr]string, ips []netip.Addr, name string) {
	for _, ip := range ips {
		m[ip.Unmap()] = name
	}
}

// unindex forgets addresses owned by name (not those another owner took since).
func unindex(m map[netip.Addr]string, ips []netip.Addr, name string) {
	for _, ip := range ips {
		if m[ip.Unmap()] == name {
			delete(m, ip.Unmap())
		}
	}
}
