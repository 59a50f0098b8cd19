// Package policymap converts what the policy engine computes into what the datapath holds: an
// endpoint's [policy.MapState] into [datapath.Entry] values for [datapath.Datapath.SyncEndpoint],
// and the rules behind them into the uint32 cookies the BPF policy map stores and verdict events
// carry ([Cookies]), resolvable back to Hubble's policy names for flows. The datapath package does
// not import policy (it takes its own Entry, laid out like a policy.Key plus a policy.Entry); this
// package imports both, so that an agent, a test or an embedder does not write the conversion
// again. examples/agent uses it in production.
package policymap

import (
	"hash/fnv"
	"slices"
	"strings"
	"sync"

	"github.com/ceskit/ceskit/datapath"
	"github.com/ceskit/ceskit/observe"
	"github.com/ceskit/ceskit/policy"
)

// Entries converts one endpoint's map state into datapath entries, one per key,
// sorted as [policy.MapState.Keys] sorts them: identity, direction, protocol and port prefix as
// they are; verdict and precedence as they are (both packages number them alike, higher
// precedence wins); the cookie of the entry's first rule (the engine sorts an entry's rules),
// which cookies assigns. An entry without a rule (the allow-all of an endpoint no policy
// isolates, the allow-localhost exception) gets cookie 0, as does every entry when cookies is
// nil.
func Entries(ms policy.MapState, cookies *Cookies) []datapath.Entry {
	out := make([]datapath.Entry, 0, len(ms))
	for _, k := range ms.Keys() {
		e := ms[k]
		var cookie uint32
		if len(e.Rules) > 0 && cookies != nil {
			cookie = cookies.Cookie(e.Rules[0])
		}
		out = append(out, datapath.Entry{
			Identity:      uint32(k.Identity),
			Direction:     Direction(k.Direction),
			Protocol:      uint8(k.Protocol),
			Port:          k.Port,
			PortPrefixLen: k.PortPrefixLen,
			Verdict:       Verdict(e.Verdict),
			Precedence:    e.Precedence,
			Cookie:        cookie,
		})
	}
	return out
}

// Direction converts a policy direction to the datapath's.
func Direction(d policy.Direction) datapath.Direction {
	if d == policy.Egress {
		return datapath.Egress
	}
	return datapath.Ingress
}

// Verdict converts a policy verdict to the datapath's; anything but Allow and Audit is Deny.
func Verdict(v policy.Verdict) datapath.Verdict {
	switch v {
	case policy.Allow:
		return datapath.Allow
	case policy.Audit:
		return datapath.Audit
	}
	return datapath.Deny
}

// Cookies assigns the uint32 rule cookies the datapath stores in its policy entries and reports
// in verdict events, and resolves them back to the policies for flows.
//
// A rule's cookie is the FNV-1a hash of its name ([policy.RuleRef.String], e.g. "NetworkPolicy
// shop/web ingress[0]"), with 0 skipped (it means "no rule"); when two names hash alike, the
// later one takes the next free value. So a rule keeps its cookie for as long as the Cookies
// lives, and, barring collisions, across agent restarts and on every node: events still in a
// pinned ring buffer after a restart resolve to the same rule.
//
// The zero value is ready to use. It is safe for concurrent use.
type Cookies struct {
	mu       sync.RWMutex
	byRule   map[policy.RuleRef]uint32
	byCookie map[uint32]policy.RuleRef
}

// Cookie returns r's cookie, assigning it on first use.
func (c *Cookies) Cookie(r policy.RuleRef) uint32 {
	c.mu.RLock()
	v, ok := c.byRule[r]
	c.mu.RUnlock()
	if ok {
		return v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.byRule[r]; ok {
		return v
	}
	if c.byRule == nil {
		c.byRule, c.byCookie = map[policy.RuleRef]uint32{}, map[uint32]policy.RuleRef{}
	}
	v = hash32(r.String())
	for {
		if _, taken := c.byCookie[v]; !taken && v != 0 {
			break
		}
		v++
	}
	c.byRule[r], c.byCookie[v] = v, r
	return v
}

// Rule returns the rule behind a cookie.
func (c *Cookies) Rule(cookie uint32) (policy.RuleRef, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	r, ok := c.byCookie[cookie]
	return r, ok
}

// Policy resolves a cookie the way [github.com/ceskit/ceskit/datapath/monitor.Resolver] does:
// the policy the rule belongs to, as Hubble names policies (kind, namespace, name and Cilium's
// derived labels), and the rule's name. ok is false for an unknown cookie.
func (c *Cookies) Policy(cookie uint32) (policies []observe.Policy, rule string, ok bool) {
	r, ok := c.Rule(cookie)
	if !ok {
		return nil, "", false
	}
	return []observe.Policy{ObservePolicy(r.Policy)}, r.String(), true
}

// Forget drops the cookies of every rule of the policy ref (after the policy is deleted and the
// datapath no longer holds its entries). A rule that comes back gets its cookie again.
func (c *Cookies) Forget(ref policy.PolicyRef) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for r, v := range c.byRule {
		if r.Policy == ref {
			delete(c.byRule, r)
			delete(c.byCookie, v)
		}
	}
}

// Len returns the number of cookies assigned.
func (c *Cookies) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.byRule)
}

// Policies returns the policies that have cookies, sorted.
func (c *Cookies) Policies() []policy.PolicyRef {
	c.mu.RLock()
	seen := map[policy.PolicyRef]bool{}
	for r := range c.byRule {
		seen[r.Policy] = true
	}
	c.mu.RUnlock()
	out := make([]policy.PolicyRef, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	slices.SortFunc(out, comparePolicyRefs)
	return out
}

func comparePolicyRefs(a, b policy.PolicyRef) int {
	return strings.Compare(a.String(), b.String())
}

// ObservePolicy names a policy as Hubble does in a flow's allowed_by and denied_by lists: kind,
// namespace and name, and the labels Cilium derives for a policy
// ("k8s:io.cilium.k8s.policy.derived-from=NetworkPolicy", "…policy.name=…",
// "…policy.namespace=…" for namespaced policies).
func ObservePolicy(ref policy.PolicyRef) observe.Policy {
	labels := []string{
		"k8s:io.cilium.k8s.policy.derived-from=" + ref.Kind,
		"k8s:io.cilium.k8s.policy.name=" + ref.Name,
	}
	if ref.Namespace != "" {
		labels = append(labels, "k8s:io.cilium.k8s.policy.namespace="+ref.Namespace)
	}
	return observe.Policy{Kind: ref.Kind, Namespace: ref.Namespace, Name: ref.Name, Labels: labels}
}

func hash32(s string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(s))
	return h.Sum32()
}
