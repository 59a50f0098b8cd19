package azure

import "encoding/json"

// StepKind is the Azure resource a plan step writes.
type StepKind string

// Step kinds, in the order a create plan uses them.
const (
	KindResourceGroup  StepKind = "ResourceGroup"
	KindVirtualNetwork StepKind = "VirtualNetwork"
	KindManagedCluster StepKind = "ManagedCluster"
	KindAgentPool      StepKind = "AgentPool"
)

// Disruption is what a step does to running workloads.
type Disruption string

// Disruption levels.
const (
	DisruptNone Disruption = "none"
	// DisruptReimage: every node of the named pools is reimaged (pods restarted, drained per
	// their PodDisruptionBudgets).
	DisruptReimage Disruption = "reimage"
	// DisruptNetwork: pod networking is reconfigured; connections may reset.
	DisruptNetwork Disruption = "network"
)

// Step is one ARM request of a plan, with its exact body.
type Step struct {
	// Kind and ResourceID name the resource; Method is "PUT" (or "PATCH"/"DELETE");
	// APIVersion the api-version it is sent with.
	Kind       StepKind `json:"kind"`
	ResourceID string   `json:"resourceId"`
	Method     string   `json:"method"`
	APIVersion string   `json:"apiVersion"`
	// Body is the request body, exactly as sent (the SDK's serialization of the model).
	Body json.RawMessage `json:"body,omitempty"`
	// Description says what the step does in a sentence.
	Description string `json:"description"`
	// Disruption and Affects: what the step disrupts and which pools.
	Disruption Disruption `json:"disruption"`
	Affects    []string   `json:"affects,omitempty"`
	// Warnings are what a user must know before applying this step.
	Warnings []string `json:"warnings,omitempty"`
}

// ClusterPlan is the ordered list of requests that turns the current state into the desired
// one, as [Plan] computes it without calling Azure. It is plain data: it can be printed, stored
// as JSON, reviewed, and applied later by an [Applier].
type ClusterPlan struct {
	Cluster string `json:"cluster"` // the cluster's resource ID
	Steps   []Step `json:"steps"`
	// Warnings apply to the plan as a whole.
	Warnings []string `json:"warnings,omitempty"`
}
