package policy

import "time"

// Metrics receives the engine's measurements. Implementations must be safe for concurrent use.
// [github.com/ceskit/ceskit/observe.PolicyMetrics] implements it on Prometheus with the names
// of Cilium's agent where Cilium has the metric (given in parentheses below).
type Metrics interface {
	// PolicyChange counts one policy added, changed or removed: operation "update" or "delete",
	// outcome "success" or "failure" (cilium_policy_change_total{source,operation,outcome},
	// source "ceskit").
	PolicyChange(operation, outcome string)
	// Policies reports how many policies (NetworkPolicy, CiliumNetworkPolicy and
	// CiliumClusterwideNetworkPolicy objects) the engine holds (cilium_policy).
	Policies(n int)
	// Revision reports the engine's policy revision, raised by every change of policies
	// (cilium_policy_max_revision).
	Revision(rev uint64)
	// Update observes one call that changed the engine's inputs: scope "policy", "endpoint",
	// "node" or "dns", how long it took, and how many endpoint maps it recomputed
	// (cilium_policy_incremental_update_duration{scope}).
	Update(scope string, d time.Duration, recomputed int)
	// Enforcement reports how many endpoints have policy enforced at ingress only, egress only,
	// both, or none: keys "ingress", "egress", "both", "none"
	// (cilium_policy_endpoint_enforcement_status{enforcement}).
	Enforcement(counts map[string]int)
	// MapPressure reports the fullest endpoint policy map: its entries and Config.MapCapacity
	// (cilium_bpf_map_pressure{map_name="cilium_policy"}).
	MapPressure(entries, capacity int)
	// Overflow counts an endpoint whose map needed more than Config.MapCapacity entries and was
	// left fail-closed.
	Overflow()
	// SelectorCache reports the selector cache: selectors and the identities they select in all
	// (cilium_policy_selector_cache_selectors, cilium_policy_selector_cache_identities).
	SelectorCache(selectors, identities int)
}

// NopMetrics discards every measurement. Its zero value is ready to use.
type NopMetrics struct{}

// PolicyChange does nothing.
func (NopMetrics) PolicyChange(string, string) {}

// Policies does nothing.
func (NopMetrics) Policies(int) {}

// Revision does nothing.
func (NopMetrics) Revision(uint64) {}

// Update does nothing.
func (NopMetrics) Update(string, time.Duration, int) {}

// Enforcement does nothing.
func (NopMetrics) Enforcement(map[string]int) {}

// MapPressure does nothing.
func (NopMetrics) MapPressure(int, int) {}

// Overflow does nothing.
func (NopMetrics) Overflow() {}

// SelectorCache does nothing.
func (NopMetrics) SelectorCache(int, int) {}

var _ Metrics = NopMetrics{}
