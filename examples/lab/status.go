package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ceskit/ceskit/identity"
	"github.com/ceskit/ceskit/observe"
	"github.com/ceskit/ceskit/slicer"
)

// Status is the lab's state: /api/status serves it while the lab runs, and the final one is the
// report (printed as a table, and written as this JSON with --report). Figures that a mode does
// not have are zero or absent.
type Status struct {
	// Phase is "starting", "seeding", "churning", "finishing" or "done" ("watching" when
	// attached to a cluster).
	Phase string `json:"phase"`
	// Mode is "ces", "cep", "shadow" or "attach".
	Mode string `json:"mode"`
	// Elapsed is the time since the simulation (or watching) started; Duration the time it runs
	// for (0: until Ctrl-C); Setup how long the set-up before it took.
	ElapsedSeconds  float64 `json:"elapsedSeconds"`
	DurationSeconds float64 `json:"durationSeconds"`
	SetupSeconds    float64 `json:"setupSeconds"`
	// Config is what the lab was asked to do.
	Config RunConfig `json:"config"`

	Simulation  SimStatus        `json:"simulation"`
	Slices      SliceStatus      `json:"slices"`
	Writes      WriteStatus      `json:"writes"`
	Propagation PropagationStats `json:"propagation"`
	Identities  IdentityStatus   `json:"identities"`
	Policy      PolicyStatus     `json:"policy"`
	// Verdicts counts the agent's verdict flows by verdict (FORWARDED, DROPPED, AUDIT).
	Verdicts map[string]uint64 `json:"verdicts"`
	Agent    AgentStatus       `json:"agent"`
	Watchers []WatcherSummary  `json:"watchers"`
	Probes   ProbeStatus       `json:"probes"`
	// RecentFlows are the agent's last verdict flows, newest first.
	RecentFlows []FlowSummary `json:"recentFlows"`
	// Series has one point per --interval.
	Series []Point `json:"series"`
	// Shadow is what the controller would write (modes shadow and attach).
	Shadow *ShadowStatus `json:"shadow,omitempty"`
	// Errors are problems the lab met (set-up steps that failed, components that stopped).
	Errors []string `json:"errors,omitempty"`
}

// RunConfig is the lab's configuration in the report.
type RunConfig struct {
	Nodes        int     `json:"nodes"`
	Pods         int     `json:"pods"`
	Namespaces   int     `json:"namespaces"`
	Churn        float64 `json:"churnPerSecond"`
	SliceSize    int     `json:"sliceSize"`
	WriteQPS     float64 `json:"writeQPS,omitempty"`
	Watchers     int     `json:"watchers"`
	Interval     float64 `json:"intervalSeconds"`
	Datapath     bool    `json:"datapath"`
	ControlPlane string  `json:"controlPlane"` // "embedded" or the attached cluster's host
}

// SimStatus is the simulator's work.
type SimStatus struct {
	LivePods       int     `json:"livePods"`
	Seeded         int64   `json:"seeded"`
	SeedSeconds    float64 `json:"seedSeconds"`
	CEPCreates     int64   `json:"cepCreates"`
	CEPUpdates     int64   `json:"cepUpdates"`
	CEPDeletes     int64   `json:"cepDeletes"`
	CEPErrors      int64   `json:"cepErrors"`
	Rollouts       int64   `json:"rollouts"`
	Changes        int64   `json:"changes"`
	ChangesPerSec  float64 `json:"changesPerSecond"`
	ChurnPerSecond float64 `json:"churnPerSecond"` // measured during the churn phase
}

// SliceStatus is the controller's view of the slices.
type SliceStatus struct {
	Count       int     `json:"count"`
	Desired     int     `json:"desired"`
	Endpoints   int     `json:"endpoints"`
	MaxPerSlice int     `json:"maxPerSlice"`
	FillPercent float64 `json:"fillPercent"` // endpoints / (count × max)
	Fill        [10]int `json:"fill"`        // slices by fill, in tenths
	OutOfSync   int     `json:"outOfSync"`
	Synced      bool    `json:"synced"`
	Degraded    bool    `json:"degraded"`
	Reason      string  `json:"degradedReason,omitempty"`
	RateLimit   string  `json:"rateLimit"`
}

// WriteStatus counts the controller's slice writes.
type WriteStatus struct {
	Creates          int64   `json:"creates"`
	Updates          int64   `json:"updates"`
	Deletes          int64   `json:"deletes"`
	Total            int64   `json:"total"`
	PerSecond        float64 `json:"perSecond"`
	PerChange        float64 `json:"perChange"` // slice writes per endpoint change
	Bytes            int64   `json:"bytes"`
	Conflicts        int64   `json:"conflicts"`
	EchoesSuppressed int64   `json:"echoesSuppressed"`
	FailedSyncs      int64   `json:"failedSyncs"`
}

// PropagationStats are the tracker's latencies by stage and phase, and the writes still on
// their way.
type PropagationStats struct {
	Node         PhaseLatency `json:"node"`
	Slice        PhaseLatency `json:"slice"`
	NodeDelete   PhaseLatency `json:"nodeDelete"`
	SliceDelete  PhaseLatency `json:"sliceDelete"`
	PendingNode  int          `json:"pendingNode"`
	PendingSlice int          `json:"pendingSlice"`
}

// PhaseLatency is one stage's latency, overall and by phase.
type PhaseLatency struct {
	All   Latency `json:"all"`
	Seed  Latency `json:"seed"`
	Churn Latency `json:"churn"`
}

// IdentityStatus is the allocator's and the collector's work.
type IdentityStatus struct {
	Known       int   `json:"known"`
	Used        int   `json:"used"`
	Held        int   `json:"held"`
	Allocations int64 `json:"allocations"`
	Created     int64 `json:"created"`
	GCRuns      int64 `json:"gcRuns"`
	GCMarked    int64 `json:"gcMarked"` // in the last pass
	GCDeleted   int64 `json:"gcDeleted"`
	// APIWrites counts the allocator's and collector's writes of CiliumIdentities and Leases.
	APIWrites int64 `json:"apiWrites"`
}

// PolicyStatus is the agent's policy state.
type PolicyStatus struct {
	Policies        int      `json:"policies"`
	Applied         []string `json:"applied"`
	Invalid         int      `json:"invalid"`
	Revision        uint64   `json:"revision"`
	LocalEndpoints  int      `json:"localEndpoints"`
	Entries         int      `json:"entries"`         // policy map keys of the local endpoints
	DatapathEntries int      `json:"datapathEntries"` // map elements the datapath holds for them
	Identities      int      `json:"identities"`      // CiliumIdentities the agent knows
}

// AgentStatus is the agent's summary.
type AgentStatus struct {
	Node       string   `json:"node"`
	Mode       string   `json:"mode"`
	ModeReason string   `json:"modeReason,omitempty"`
	Synced     bool     `json:"synced"`
	Ready      bool     `json:"ready"`
	Attached   int      `json:"attached"`
	Source     string   `json:"source"`
	Endpoints  int      `json:"endpoints"`
	Netns      []string `json:"netns,omitempty"`
	LastError  string   `json:"lastError,omitempty"`
}

// WatcherSummary is one node-side watcher.
type WatcherSummary struct {
	Name      string `json:"name"`
	Source    string `json:"source"`
	Fallback  bool   `json:"fallback"`
	Reason    string `json:"reason,omitempty"`
	Synced    bool   `json:"synced"`
	Endpoints int    `json:"endpoints"`
	Switches  int64  `json:"switches"`
	Events    int64  `json:"events"`
}

// ProbeStatus is the probes' results.
type ProbeStatus struct {
	// Method is "tcp" (real connections through the datapath), "engine" (the policy engine's
	// decision, without a datapath) or "" before the first round.
	Method  string        `json:"method"`
	Rounds  int           `json:"rounds"`
	Results []ProbeResult `json:"results"`
	// Passed is true when every probe matched its expectation in every round.
	Passed bool `json:"passed"`
}

// ProbeResult is one probe over all rounds.
type ProbeResult struct {
	Probe    string `json:"probe"`
	Expected string `json:"expected"`
	Last     string `json:"last"`   // the last round's result
	Engine   string `json:"engine"` // the policy engine's decision in the last round
	Matched  int    `json:"matched"`
	Rounds   int    `json:"rounds"`
	// Slow counts rounds in which the connection of an allowed flow timed out, no drop of it
	// was reported, and a retry with a longer timeout connected: a loaded machine, not policy.
	Slow int    `json:"slow"`
	Why  string `json:"why"`
	// Mismatches describe the first rounds whose result was not the expected one.
	Mismatches []string `json:"mismatches,omitempty"`
}

const maxMismatches = 5

// FlowSummary is one verdict flow.
type FlowSummary struct {
	Time      time.Time `json:"time"`
	Verdict   string    `json:"verdict"`
	Direction string    `json:"direction"`
	Source    string    `json:"source"`
	Dest      string    `json:"destination"`
	Port      uint32    `json:"port"`
	Policies  []string  `json:"policies,omitempty"`
	// Reason is the drop reason and the deciding rule, when known.
	Reason string `json:"reason,omitempty"`
}

// Point is one interval of the series.
type Point struct {
	T               float64 `json:"t"` // seconds since the start, at the end of the interval
	Phase           string  `json:"phase"`
	NodeP50Ms       float64 `json:"nodeP50Ms"`
	NodeP99Ms       float64 `json:"nodeP99Ms"`
	NodeN           int64   `json:"nodeN"`
	SliceP50Ms      float64 `json:"sliceP50Ms"`
	SliceP99Ms      float64 `json:"sliceP99Ms"`
	WritesPerSec    float64 `json:"writesPerSec"`    // slice writes
	CEPWritesPerSec float64 `json:"cepWritesPerSec"` // simulated endpoint writes
	Slices          int     `json:"slices"`
	Identities      int     `json:"identities"`
}

// ShadowStatus is what the controller would write.
type ShadowStatus struct {
	Creates       int                `json:"creates"`
	Updates       int                `json:"updates"`
	Deletes       int                `json:"deletes"`
	Added         int                `json:"added"`
	Removed       int                `json:"removed"`
	Changed       int                `json:"changed"`
	WritesRefused int64              `json:"writesRefused"` // attach mode: writes the read-only transport refused
	Diff          []slicer.SliceDiff `json:"diff"`          // at most maxDiff slices
}

const maxDiff = 200

// round1 rounds to 0.1, so the page and the report show the same figures.
func round1(x float64) float64 { return float64(int64(x*10+0.5)) / 10 }

func sliceStatus(st slicer.Status, maxPerSlice int) SliceStatus {
	s := SliceStatus{
		Count: st.Slices, Desired: st.DesiredSlices, Endpoints: st.Endpoints, MaxPerSlice: maxPerSlice,
		Fill: st.Fill, OutOfSync: st.OutOfSync, Synced: st.Synced, Degraded: st.Degraded, Reason: st.DegradedReason,
		RateLimit: fmt.Sprintf("%g/s burst %d (from %d nodes; %d nodes)", st.RateLimit.Limit, st.RateLimit.Burst, st.RateLimit.Nodes, st.Nodes),
	}
	if st.Slices > 0 && maxPerSlice > 0 {
		s.FillPercent = round1(100 * float64(st.Endpoints) / float64(st.Slices*maxPerSlice))
	}
	return s
}

func writeStatus(st slicer.Status, seconds float64, changes int64) WriteStatus {
	w := WriteStatus{
		Creates: st.Creates, Updates: st.Updates, Deletes: st.Deletes, Total: st.Creates + st.Updates + st.Deletes,
		Bytes: st.BytesWritten, Conflicts: st.Conflicts, EchoesSuppressed: st.EchoesSuppressed, FailedSyncs: st.FailedSyncs,
	}
	if seconds > 0 {
		w.PerSecond = round1(float64(w.Total) / seconds)
	}
	if changes > 0 {
		w.PerChange = float64(int64(float64(w.Total)/float64(changes)*1000+0.5)) / 1000
	}
	return w
}

func shadowStatus(diff []slicer.SliceDiff) *ShadowStatus {
	s := &ShadowStatus{Diff: []slicer.SliceDiff{}}
	for _, d := range diff {
		switch d.Op {
		case "create":
			s.Creates++
		case "update":
			s.Updates++
		case "delete":
			s.Deletes++
		}
		s.Added += len(d.Added)
		s.Removed += len(d.Removed)
		s.Changed += len(d.Changed)
	}
	s.Diff = append(s.Diff, diff[:min(len(diff), maxDiff)]...)
	return s
}

func watcherSummary(name string, st slicer.WatcherStatus) WatcherSummary {
	return WatcherSummary{
		Name: name, Source: string(st.Source), Fallback: st.Source == slicer.SourceCiliumEndpoints, Reason: st.Reason,
		Synced: st.Synced, Endpoints: st.Endpoints, Switches: st.Switches, Events: st.SourceEvents,
	}
}

// idCounter is the identity allocator's and collector's identity.Metrics: it forwards to
// observe's Prometheus adapter and keeps the counts the report needs.
type idCounter struct {
	next *observe.IdentityMetrics

	mu                           sync.Mutex
	allocations, created, gcRuns int64
	gcMarked, gcDeleted          int64
	identityWrites, leaseWrites  int64
}

var _ identity.Metrics = (*idCounter)(nil)

func (c *idCounter) Allocation(outcome string, d time.Duration) {
	c.next.Allocation(outcome, d)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.allocations++
	if outcome == "created" {
		c.created++
	}
}
func (c *idCounter) Usage(used, size int) { c.next.Usage(used, size) }
func (c *idCounter) Conflict(kind string) { c.next.Conflict(kind) }
func (c *idCounter) Write(verb, resource string) {
	c.next.Write(verb, resource)
	c.mu.Lock()
	defer c.mu.Unlock()
	if resource == "ciliumidentities" {
		c.identityWrites++
	} else {
		c.leaseWrites++
	}
}
func (c *idCounter) GCEntries(status string, n int) {
	c.next.GCEntries(status, n)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch status {
	case "marked":
		c.gcMarked = int64(n)
	case "deleted":
		c.gcDeleted += int64(n)
	}
}
func (c *idCounter) GCRun(outcome string, d time.Duration) {
	c.next.GCRun(outcome, d)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gcRuns++
}

func (c *idCounter) fill(s *IdentityStatus) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s.Allocations, s.Created, s.GCRuns, s.GCMarked, s.GCDeleted = c.allocations, c.created, c.gcRuns, c.gcMarked, c.gcDeleted
	s.APIWrites = c.identityWrites + c.leaseWrites
}

// flowRing is a Sink keeping the last flows. It is safe for concurrent use.
type flowRing struct {
	mu    sync.Mutex
	flows []FlowSummary // oldest first
}

const recentFlows = 12

func (r *flowRing) Write(_ context.Context, rec observe.Record) error {
	f := rec.Flow
	if f == nil {
		return nil
	}
	fs := FlowSummary{Time: f.Time, Verdict: f.Verdict.String(), Direction: f.TrafficDirection.String(),
		Source: endpointName(f.Source), Dest: endpointName(f.Destination)}
	if f.L4 != nil && f.L4.TCP != nil {
		fs.Port = f.L4.TCP.DestinationPort
	}
	if f.Verdict == observe.VerdictDropped {
		fs.Reason = f.DropReasonDesc.String()
	}
	if f.Ceskit != nil && f.Ceskit.Rule != "" {
		fs.Reason = strings.TrimSpace(fs.Reason + " " + f.Ceskit.Rule)
	}
	for _, ps := range [][]observe.Policy{f.IngressAllowedBy, f.EgressAllowedBy, f.IngressDeniedBy, f.EgressDeniedBy} {
		for _, p := range ps {
			fs.Policies = append(fs.Policies, p.Kind+" "+p.Name)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flows = append(r.flows, fs)
	if len(r.flows) > recentFlows {
		r.flows = slices.Delete(r.flows, 0, len(r.flows)-recentFlows)
	}
	return nil
}

func endpointName(e *observe.Endpoint) string {
	switch {
	case e == nil:
		return "?"
	case e.PodName != "":
		return e.Namespace + "/" + e.PodName
	}
	for _, l := range e.Labels {
		if strings.HasPrefix(l, "k8s:app=") {
			return strings.TrimPrefix(l, "k8s:")
		}
		if strings.HasPrefix(l, "reserved:") {
			return l
		}
	}
	return fmt.Sprintf("identity %d", e.Identity)
}

// recent returns the flows, newest first.
func (r *flowRing) recent() []FlowSummary {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.flows)
	slices.Reverse(out)
	if out == nil {
		out = []FlowSummary{}
	}
	return out
}

// printer serialises the lab's terminal output.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *printer) Printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, args...)
}
