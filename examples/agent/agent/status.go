package agent

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ceskit/ceskit/slicer"
)

// Modes of an [Agent], in [Status].Mode.
const (
	ModeDatapath   = "datapath"
	ModeNoDatapath = "no-datapath"
)

// Status is a snapshot of an [Agent]. Its JSON is what examples/agent serves at /status.
type Status struct {
	// Node is the node the agent enforces for; NodeIPs its addresses (from its Node object).
	Node    string   `json:"node"`
	NodeIPs []string `json:"nodeIPs"`
	// Mode is "datapath" or "no-datapath"; ModeReason says why there is no datapath.
	Mode       string `json:"mode"`
	ModeReason string `json:"modeReason,omitempty"`
	// Synced is true once every informer and the slice watcher have synced; Ready once the
	// first pass over the local endpoints after that is done.
	Synced bool `json:"synced"`
	Ready  bool `json:"ready"`

	// Watcher is the slice watcher's status (source, fallback reason, events).
	Watcher slicer.WatcherStatus `json:"watcher"`
	// Endpoints counts the endpoints of the cluster the agent knows; InPolicy those the policy
	// engine holds (the others wait for their identity's labels or have a reserved identity, see
	// Unresolved).
	Endpoints int `json:"endpoints"`
	InPolicy  int `json:"inPolicy"`
	// Unresolved lists endpoints that are not in the policy engine, and why.
	Unresolved []EndpointProblem `json:"unresolved,omitempty"`
	// Identities counts the CiliumIdentities known; Nodes the Nodes.
	Identities int `json:"identities"`
	Nodes      int `json:"nodes"`
	// LocalEndpoints are the endpoints of this node, sorted by namespace/name.
	LocalEndpoints []LocalEndpoint `json:"localEndpoints"`

	// Policies counts the policies the engine holds; PolicyRevision is the engine's revision.
	Policies       int    `json:"policies"`
	PolicyRevision uint64 `json:"policyRevision"`
	// PolicySources says, for each policy resource, whether it is watched ("watching") or why
	// not ("not served by the API server").
	PolicySources map[string]string `json:"policySources"`
	// InvalidPolicies are the policies the engine rejected, with every field error. A rejected
	// change of a policy the engine already held keeps the previous version in force.
	InvalidPolicies []InvalidPolicy `json:"invalidPolicies,omitempty"`
	// Cookies counts the rule cookies in use.
	Cookies int `json:"cookies"`

	// IPCache counts the prefixes the agent maps to identities (written to the datapath).
	IPCache int `json:"ipcache"`
	// DatapathSyncs counts local endpoint syncs (computations only, in no-datapath mode);
	// DatapathErrors the failed ones.
	DatapathSyncs  uint64 `json:"datapathSyncs"`
	DatapathErrors uint64 `json:"datapathErrors"`
	// StaleEndpointsRemoved counts the datapath endpoints an earlier run left (with
	// --bpf-pin-path: pinned links and policy entries) for endpoints that are no longer local,
	// removed at the first pass after the sync.
	StaleEndpointsRemoved int `json:"staleEndpointsRemoved"`
	// Verdicts counts the flows of verdict events by verdict (FORWARDED, DROPPED, AUDIT).
	Verdicts map[string]uint64 `json:"verdicts"`
	// MonitorEvents and SinkErrors are the monitor's counts.
	MonitorEvents uint64 `json:"monitorEvents"`
	SinkErrors    uint64 `json:"sinkErrors"`

	// LastError is the most recent error, at LastErrorTime.
	LastError     string    `json:"lastError,omitempty"`
	LastErrorTime time.Time `json:"lastErrorTime,omitzero"`
}

// LocalEndpoint is the state of one endpoint of this node.
type LocalEndpoint struct {
	// Endpoint is "namespace/name"; DatapathID its datapath endpoint ID; Identity its effective
	// security identity; IPs its addresses.
	Endpoint   string   `json:"endpoint"`
	DatapathID uint32   `json:"datapathID"`
	Identity   uint32   `json:"identity"`
	IPs        []string `json:"ips"`
	// PolicyEntries is the number of keys of its policy map state; DatapathEntries the map
	// elements the datapath materialised for them (0 in no-datapath mode).
	PolicyEntries   int `json:"policyEntries"`
	DatapathEntries int `json:"datapathEntries"`
	// Interface is where its programs are attached ("" when not attached).
	Interface string `json:"interface,omitempty"`
	// Syncs counts its syncs; LastSync is the last successful one.
	Syncs    uint64    `json:"syncs"`
	LastSync time.Time `json:"lastSync,omitzero"`
	// FailClosed is true when its policy does not fit (the engine's or the datapath's capacity):
	// its map is empty and it denies everything.
	FailClosed bool `json:"failClosed,omitempty"`
	// Error is the last sync or attach error ("" after a success).
	Error string `json:"error,omitempty"`
}

// EndpointProblem names an endpoint and why it is not (fully) handled.
type EndpointProblem struct {
	Endpoint string `json:"endpoint"`
	Reason   string `json:"reason"`
}

// InvalidPolicy is a policy the engine rejected.
type InvalidPolicy struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Errors lists every field error (path, value, reason); Error is the whole message.
	Errors []FieldError `json:"errors,omitempty"`
	Error  string       `json:"error"`
	// KeptPrevious is true when an earlier valid version of the policy stays in force.
	KeptPrevious bool      `json:"keptPrevious"`
	Since        time.Time `json:"since"`
}

// FieldError is one field of a rejected policy.
type FieldError struct {
	Field  string `json:"field"`
	Value  string `json:"value"`
	Reason string `json:"reason"`
}

// Status returns a snapshot of the agent. It is safe to call at any time.
func (a *Agent) Status() Status {
	ws := a.watcher.Status()
	a.mu.Lock()
	st := Status{
		Node:                  a.node,
		Mode:                  ModeNoDatapath,
		Synced:                a.synced,
		Ready:                 a.ready,
		Watcher:               ws,
		Endpoints:             len(a.endpoints),
		Identities:            len(a.identities),
		Nodes:                 len(a.nodes),
		Policies:              len(a.policies),
		PolicySources:         maps.Clone(a.sources),
		IPCache:               len(a.ipc),
		DatapathSyncs:         a.syncs,
		DatapathErrors:        a.syncErrors,
		StaleEndpointsRemoved: a.staleRemoved,
		Verdicts:              maps.Clone(a.verdicts),
		LastError:             a.lastErr,
		LastErrorTime:         a.lastErrAt,
	}
	if a.cfg.Datapath != nil {
		st.Mode = ModeDatapath
	} else {
		st.ModeReason = a.cfg.NoDatapathReason
	}
	for ip := range a.localIPs {
		st.NodeIPs = append(st.NodeIPs, ip.String())
	}
	slices.Sort(st.NodeIPs)
	for key, e := range a.endpoints {
		if e.inEngine {
			st.InPolicy++
		}
		if e.problem != "" {
			st.Unresolved = append(st.Unresolved, EndpointProblem{Endpoint: key, Reason: e.problem})
		}
	}
	slices.SortFunc(st.Unresolved, func(x, y EndpointProblem) int { return strings.Compare(x.Endpoint, y.Endpoint) })
	for key, l := range a.local {
		if l.gone {
			continue
		}
		le := LocalEndpoint{
			Endpoint: key, DatapathID: l.ep.DatapathID, Identity: l.identity,
			PolicyEntries: l.policyEntries, DatapathEntries: l.datapathEntries,
			Syncs: l.syncs, LastSync: l.lastSync, FailClosed: l.failClosed, Error: l.err,
		}
		if le.Identity == 0 {
			le.Identity = l.ep.Identity
		}
		for _, ip := range l.ep.IPs {
			le.IPs = append(le.IPs, ip.String())
		}
		if l.target != nil {
			le.Interface = l.target.Interface
		}
		st.LocalEndpoints = append(st.LocalEndpoints, le)
	}
	slices.SortFunc(st.LocalEndpoints, func(x, y LocalEndpoint) int { return strings.Compare(x.Endpoint, y.Endpoint) })
	for _, ip := range slices.SortedFunc(maps.Values(a.invalid), func(x, y InvalidPolicy) int {
		return strings.Compare(x.Kind+"/"+x.Namespace+"/"+x.Name, y.Kind+"/"+y.Namespace+"/"+y.Name)
	}) {
		ip.Errors = slices.Clone(ip.Errors)
		st.InvalidPolicies = append(st.InvalidPolicies, ip)
	}
	a.mu.Unlock()
	if st.Verdicts == nil {
		st.Verdicts = map[string]uint64{}
	}
	st.PolicyRevision = a.engine.Revision()
	st.Cookies = a.cookies.Len()
	if a.monitor != nil {
		c := a.monitor.Counts()
		st.MonitorEvents, st.SinkErrors = c.Events, c.SinkErrors
	}
	return st
}
