package monitor

import (
	"slices"
	"sync"

	"github.com/ceskit/ceskit/observe"
)

// Resolver names what verdict events carry as numbers. Implementations must be safe for
// concurrent use; the Monitor calls them for every event, so they should be map lookups. The
// values they return go into flows as they are and must not be modified afterwards.
type Resolver interface {
	// Endpoint returns a local endpoint by its datapath endpoint ID: namespace, pod name,
	// labels, identity, workloads. ok is false when it is unknown.
	Endpoint(id uint32) (e observe.Endpoint, ok bool)
	// Identity returns what a remote security identity stands for: its labels, and the
	// namespace (and pod) where that is known. ok is false when it is unknown (reserved
	// identities then get their "reserved:…" label).
	Identity(id uint32) (e observe.Endpoint, ok bool)
	// Policy returns the policies behind a rule cookie (datapath.Entry.Cookie) and the rule's
	// name within them. ok is false when the cookie is unknown.
	Policy(cookie uint32) (policies []observe.Policy, rule string, ok bool)
}

// StaticResolver is a Resolver over maps its owner keeps up to date with Set and Delete calls,
// e.g. from the agent's endpoint, identity and policy caches. It is safe for concurrent use; its
// zero value is empty and ready to use. Set stores a deep copy, so callers may reuse what they
// pass.
type StaticResolver struct {
	mu         sync.RWMutex
	endpoints  map[uint32]observe.Endpoint
	identities map[uint32]observe.Endpoint
	policies   map[uint32]policyRef
}

type policyRef struct {
	policies []observe.Policy
	rule     string
}

var _ Resolver = (*StaticResolver)(nil)

// SetEndpoint sets the local endpoint with datapath endpoint ID id.
func (r *StaticResolver) SetEndpoint(id uint32, e observe.Endpoint) {
	e = cloneEndpoint(e)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.endpoints == nil {
		r.endpoints = map[uint32]observe.Endpoint{}
	}
	r.endpoints[id] = e
}

// DeleteEndpoint forgets the local endpoint id.
func (r *StaticResolver) DeleteEndpoint(id uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.endpoints, id)
}

// SetIdentity sets what the security identity id stands for.
func (r *StaticResolver) SetIdentity(id uint32, e observe.Endpoint) {
	e = cloneEndpoint(e)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.identities == nil {
		r.identities = map[uint32]observe.Endpoint{}
	}
	r.identities[id] = e
}

// DeleteIdentity forgets the identity id.
func (r *StaticResolver) DeleteIdentity(id uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.identities, id)
}

// SetPolicy sets the policies and the rule name behind a rule cookie.
func (r *StaticResolver) SetPolicy(cookie uint32, rule string, policies ...observe.Policy) {
	ps := make([]observe.Policy, len(policies))
	for i, p := range policies {
		p.Labels = slices.Clone(p.Labels)
		ps[i] = p
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.policies == nil {
		r.policies = map[uint32]policyRef{}
	}
	r.policies[cookie] = policyRef{policies: ps, rule: rule}
}

// DeletePolicy forgets a rule cookie.
func (r *StaticResolver) DeletePolicy(cookie uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.policies, cookie)
}

// Endpoint implements Resolver.
func (r *StaticResolver) Endpoint(id uint32) (observe.Endpoint, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.endpoints[id]
	return e, ok
}

// Identity implements Resolver.
func (r *StaticResolver) Identity(id uint32) (observe.Endpoint, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.identities[id]
	return e, ok
}

// Policy implements Resolver.
func (r *StaticResolver) Policy(cookie uint32) ([]observe.Policy, string, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	p, ok := r.policies[cookie]
	return p.policies, p.rule, ok
}

func cloneEndpoint(e observe.Endpoint) observe.Endpoint {
	e.Labels = slices.Clone(e.Labels)
	e.Workloads = slices.Clone(e.Workloads)
	return e
}
