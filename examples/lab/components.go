package main

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/ceskit/ceskit/examples/agent/agent"
	"github.com/ceskit/ceskit/identity"
	"github.com/ceskit/ceskit/observe"
	"github.com/ceskit/ceskit/policy"
	"github.com/ceskit/ceskit/slicer"
	"github.com/ceskit/ceskit/slicer/ciliumv2alpha1"
)

// createInfra creates the simulated namespaces and nodes, the lab's namespace and node, and the
// policies.
func (l *lab) createInfra(ctx context.Context) error {
	l.track = newTracker(l.o.watchers, l.o.mode == modeCES)
	t0 := time.Now()
	if err := createNamespace(ctx, l.client, labNamespace); err != nil {
		return err
	}
	if err := createNode(ctx, l.client, labNode, labNodeIP); err != nil {
		return err
	}
	var err error
	if l.applied, err = applyPolicies(ctx, l.restCfg, l.client.Kube); err != nil {
		return err
	}
	// The simulator gets its allocator in startComponents.
	l.sim = newSimulator(l.client, nil, l.o.sim, l.track, l.log)
	if err := l.sim.createInfra(ctx); err != nil {
		return err
	}
	l.out.Printf("lab: created %d namespaces and %d nodes (and %s, %s) and %d policies in %s in %s\n",
		l.o.sim.Namespaces, l.o.sim.Nodes, labNamespace, labNode, len(l.applied), labNamespace, time.Since(t0).Round(100*time.Millisecond))
	return nil
}

// watcherSource is the endpoint source the watchers (and the agent) use in the lab's mode.
func (l *lab) watcherSource() slicer.Source {
	if l.o.mode == modeCEP {
		return slicer.SourceCiliumEndpoints
	}
	return "" // slices, falling back to CiliumEndpoints
}

// startComponents builds and starts the controller, the identity allocator and collector, the
// slice watch, the node watchers and the agent.
func (l *lab) startComponents(ctx context.Context, wg *sync.WaitGroup, fail func(string, error)) error {
	o := l.o
	var err error
	if o.mode != modeCEP {
		sm, err := observe.NewSlicerMetrics(l.reg)
		if err != nil {
			return err
		}
		cfg := o.sliceConfig()
		cfg.Logger, cfg.Metrics = l.log.With("component", "slicer"), sm
		if l.ctrl, err = slicer.New(l.client, cfg); err != nil {
			return err
		}
		wg.Go(func() { fail("slicer controller", l.ctrl.Run(ctx)) })
	}
	if l.alloc, err = identity.NewCRDAllocator(l.ids, identity.Config{
		Holder: labHolder, Logger: l.log.With("component", "identity"), Metrics: l.idm,
	}); err != nil {
		return err
	}
	wg.Go(func() { fail("identity allocator", l.alloc.Run(ctx)) })
	if l.gc, err = identity.NewGC(l.ids, identity.GCConfig{
		Interval: gcInterval, GracePeriod: gcGrace, Logger: l.log.With("component", "identity-gc"), Metrics: l.idm,
	}); err != nil {
		return err
	}
	wg.Go(func() { fail("identity gc", l.gc.Run(ctx)) })
	l.sim.alloc = l.alloc
	if o.mode == modeCES {
		wg.Go(func() { l.watchSlices(ctx) })
	}

	wm, err := observe.NewWatcherMetrics(l.reg)
	if err != nil {
		return err
	}
	wcfg := slicer.WatcherConfig{Source: l.watcherSource(), CheckInterval: checkEvery, Metrics: wm}
	for i := range o.watchers {
		obs := i + 1
		nw := &nodeWatcher{name: fmt.Sprintf("node-watcher-%d", i)}
		cfg := wcfg
		cfg.Logger = l.log.With("component", nw.name)
		h := slicer.HandlerFuncs{
			Updated: func(_, ep *slicer.Endpoint) { l.track.observe(obs, ep.Key(), ep.IdentityID, false, time.Now()) },
			Deleted: func(ep *slicer.Endpoint) { l.track.observe(obs, ep.Key(), 0, true, time.Now()) },
		}
		if nw.w, err = slicer.NewWatcher(l.client, h, cfg); err != nil {
			return err
		}
		l.watchers = append(l.watchers, nw)
		wg.Go(func() { fail(nw.name, nw.w.Run(ctx)) })
	}

	fm, err := observe.NewFlowMetrics(l.reg)
	if err != nil {
		return err
	}
	acfg := agent.Config{
		Datapath:         l.dp,
		DatapathMetrics:  l.dpm,
		NoDatapathReason: l.dpReason,
		Sink:             observe.MultiSink(fm, l.flows),
		Registry:         l.reg,
		Watcher:          wcfg,
		StatsInterval:    time.Second,
		Logger:           l.log,
	}
	acfg.Watcher.Logger = l.log.With("component", "agent-watcher")
	if l.net != nil {
		acfg.Netns = l.net.nodeNetns()
	} else {
		acfg.Datapath = nil
	}
	if l.agent, err = agent.New(l.restCfg, labNode, acfg); err != nil {
		return err
	}
	wg.Go(func() { fail("agent", l.agent.Run(ctx)) })
	l.built.Store(true) // status may read the components from now on
	return nil
}

// waitSynced waits until every component has synced.
func (l *lab) waitSynced(ctx context.Context) error {
	deadline := time.Now().Add(syncTimeout)
	for {
		var waiting []string
		if l.ctrl != nil && !l.ctrl.HasSynced() {
			waiting = append(waiting, "slicer controller")
		}
		if !l.alloc.HasSynced() {
			waiting = append(waiting, "identity allocator")
		}
		if !l.gc.HasSynced() {
			waiting = append(waiting, "identity gc")
		}
		for _, nw := range l.watchers {
			if !nw.w.Status().Synced {
				waiting = append(waiting, nw.name)
			}
		}
		if !l.agent.Status().Synced {
			waiting = append(waiting, "agent")
		}
		if len(waiting) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("components not synced after %s: %s", syncTimeout, strings.Join(waiting, ", "))
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(pollEvery):
		}
	}
}

// createLabPods allocates the lab pods' identities and creates their endpoints on the agent's
// node.
func (l *lab) createLabPods(ctx context.Context) error {
	for i, p := range labPods {
		lbls, err := podLabels(labNamespace, p.App, 0)
		if err != nil {
			return err
		}
		id, err := l.alloc.Allocate(ctx, lbls)
		if err != nil {
			return fmt.Errorf("allocate identity of %s: %w", p.Name, err)
		}
		cep := buildCEP(labNamespace, p.Name, id, lbls, p.IP.String(), "", labNodeIP, p.App, int64(60000+i))
		if _, err := l.client.CiliumEndpoints(labNamespace).Create(ctx, cep, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create endpoint %s: %w", p.Name, err)
		}
	}
	return nil
}

// watchSlices feeds every slice event to the tracker until ctx ends.
func (l *lab) watchSlices(ctx context.Context) {
	api := l.client.CiliumEndpointSlices()
	for ctx.Err() == nil {
		list, err := api.List(ctx, metav1.ListOptions{})
		if err != nil {
			if ctx.Err() == nil {
				l.log.Warn("list slices", "error", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		l.track.relistSlices(list.Items, time.Now())
		rv := list.ResourceVersion
		for rv != "" && ctx.Err() == nil {
			w, err := api.Watch(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
			if err != nil {
				if ctx.Err() == nil {
					l.log.Warn("watch slices", "error", err)
					sleep(ctx, time.Second)
				}
				break
			}
			rv = l.consume(ctx, w, rv)
			w.Stop()
		}
	}
}

// consume handles one watch until it ends. It returns the resource version to watch from next,
// or "" when the watch reported an error and a new list is needed.
func (l *lab) consume(ctx context.Context, w watch.Interface, rv string) string {
	for {
		select {
		case <-ctx.Done():
			return rv
		case ev, ok := <-w.ResultChan():
			if !ok {
				return rv
			}
			now := time.Now()
			switch ev.Type {
			case watch.Added, watch.Modified, watch.Deleted:
				ces, ok := ev.Object.(*ciliumv2alpha1.CiliumEndpointSlice)
				if !ok {
					continue
				}
				l.track.observeSlice(ces, ev.Type == watch.Deleted, now)
				rv = ces.ResourceVersion
			case watch.Bookmark:
				if m, ok := ev.Object.(metav1.Object); ok {
					rv = m.GetResourceVersion()
				}
			case watch.Error:
				l.log.Debug("slice watch error; listing again", "error", apierrors.FromObject(ev.Object))
				return ""
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// agentReady reports whether the agent enforces the lab's policies for every lab pod: all
// policies held and, per pod, entries computed and, with the datapath, written and attached.
func (l *lab) agentReady() bool {
	st := l.agent.Status()
	if !st.Ready || st.Policies < len(l.applied) || len(st.LocalEndpoints) != len(labPods) {
		return false
	}
	for _, e := range st.LocalEndpoints {
		if e.Error != "" || e.PolicyEntries == 0 {
			return false
		}
		if l.net != nil && (e.Interface == "" || e.DatapathEntries == 0) {
			return false
		}
	}
	return true
}

// probeLoop runs a probe round every interval once the agent is ready, until sim ends.
func (l *lab) probeLoop(ctx, sim context.Context) {
	for !l.agentReady() {
		select {
		case <-sim.Done():
			return
		case <-time.After(pollEvery):
		}
	}
	l.out.Printf("lab: agent enforces %d policies for %s; probing every %s\n", len(l.applied), strings.Join(labPodNames(), " "), l.o.interval)
	t := time.NewTicker(l.o.interval)
	defer t.Stop()
	for {
		l.probeRound(ctx)
		select {
		case <-sim.Done():
			return
		case <-t.C:
		}
	}
}

func labPodNames() []string {
	var names []string
	for _, p := range labPods {
		names = append(names, p.Name)
	}
	return names
}

// probeRound runs every probe once: real TCP connections between the namespaces with the
// datapath, and the policy engine's decision in any case. It does nothing before the agent is
// ready.
func (l *lab) probeRound(ctx context.Context) {
	if ctx.Err() != nil || !l.agentReady() {
		return
	}
	method := "engine"
	if l.net != nil {
		method = "tcp"
	}
	got := make([]string, len(probes))
	engine := make([]string, len(probes))
	slow := make([]bool, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		to := labPodByName(p.To)
		ex, err := l.agent.Engine().Explain(policy.Peer{Endpoint: key(labNamespace, p.From)}, policy.Peer{Endpoint: key(labNamespace, p.To)}, policy.ProtoTCP, p.Port)
		switch {
		case err != nil:
			engine[i] = "error: " + err.Error()
		case ex.Allowed:
			engine[i] = verdictAllowed
		default:
			engine[i] = verdictDenied
		}
		if l.net == nil {
			got[i] = engine[i]
			continue
		}
		wg.Go(func() {
			addr := netip.AddrPortFrom(to.IP, p.Port)
			got[i] = l.net.Probe(p.From, addr, probeTimeout)
			// An allowed connection that timed out may have been slow (a loaded machine) or
			// dropped: try once more, longer, and count it as slow only when no drop of it was
			// reported meanwhile.
			if p.Expect == verdictAllowed && got[i] == verdictDenied {
				if l.net.Probe(p.From, addr, slowProbeTimeout) == verdictAllowed && l.dropsOf(p) == "" {
					got[i], slow[i] = verdictAllowed, true
				}
			}
		})
	}
	wg.Wait()

	l.mu.Lock()
	defer l.mu.Unlock()
	ps := &l.probe
	ps.Method = method
	ps.Rounds++
	if ps.Results == nil {
		for _, p := range probes {
			ps.Results = append(ps.Results, ProbeResult{Probe: p.String(), Expected: p.Expect, Why: p.Why})
		}
	}
	ps.Passed = true
	for i := range probes {
		r := &ps.Results[i]
		r.Rounds++
		r.Last, r.Engine = got[i], engine[i]
		if slow[i] {
			r.Slow++
		}
		if got[i] == r.Expected {
			r.Matched++
		} else if len(r.Mismatches) < maxMismatches {
			drops := l.dropsOf(probes[i])
			if drops == "" && l.net != nil {
				drops = "; no DROPPED flow reported for it"
			}
			r.Mismatches = append(r.Mismatches, fmt.Sprintf("round %d at t=%.1fs: %s (engine: %s)%s",
				ps.Rounds, time.Since(l.start).Seconds(), got[i], engine[i], drops))
		}
		if r.Matched != r.Rounds {
			ps.Passed = false
		}
	}
}

// dropsOf describes the recent DROPPED flows of a probe's connection, the evidence of an
// unexpected denial, or returns "".
func (l *lab) dropsOf(p probeSpec) string {
	var out []string
	for _, f := range l.flows.recent() {
		if f.Verdict != "DROPPED" || f.Port != uint32(p.Port) || !strings.Contains(f.Source+f.Dest, p.To[:strings.IndexByte(p.To, '-')]) {
			continue
		}
		out = append(out, fmt.Sprintf("%s %s→%s %s by %s", f.Direction, f.Source, f.Dest, f.Reason, strings.Join(f.Policies, ", ")))
	}
	if len(out) == 0 {
		return ""
	}
	return "; DROPPED flows: " + strings.Join(out, "; ")
}

// sampleLoop adds a series point and prints a progress line every interval until ctx ends.
func (l *lab) sampleLoop(ctx context.Context) {
	t := time.NewTicker(l.o.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			l.sample(now)
		}
	}
}

// sample closes the current interval: a series point and a progress line.
func (l *lab) sample(now time.Time) {
	lat := l.track.cut()
	var cs slicer.Status
	if l.ctrl != nil {
		cs = l.ctrl.Status()
	}
	writes := cs.Creates + cs.Updates + cs.Deletes
	cep := l.sim.changes()
	ids := l.alloc.Status()
	l.mu.Lock()
	dt := now.Sub(l.lastSample).Seconds()
	p := Point{
		T: round1(now.Sub(l.start).Seconds()), Phase: l.phase,
		NodeP50Ms: lat[stageNode].P50Ms, NodeP99Ms: lat[stageNode].P99Ms, NodeN: lat[stageNode].N,
		SliceP50Ms: lat[stageSlice].P50Ms, SliceP99Ms: lat[stageSlice].P99Ms,
		Slices: cs.Slices, Identities: ids.Known,
	}
	if dt > 0 {
		p.WritesPerSec = round1(float64(writes-l.lastWrites) / dt)
		p.CEPWritesPerSec = round1(float64(cep-l.lastCEP) / dt)
	}
	l.lastSample, l.lastWrites, l.lastCEP = now, writes, cep
	l.series = append(l.series, p)
	phase := l.phase
	l.mu.Unlock()

	verdicts := l.agent.Status().Verdicts
	l.out.Printf("t=%-5s %-9s pods=%d slices=%d writes/s=%.1f cep-writes/s=%.1f node p50=%.1fms p99=%.1fms (n=%d) ids=%d verdicts=%s watchers=%s\n",
		fmt.Sprintf("%.0fs", p.T), phase, l.sim.livePods(), cs.Slices, p.WritesPerSec, p.CEPWritesPerSec,
		p.NodeP50Ms, p.NodeP99Ms, p.NodeN, ids.Known, verdictText(verdicts), l.watcherSources())
}

func verdictText(v map[string]uint64) string {
	if len(v) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(v)) {
		parts = append(parts, fmt.Sprintf("%s:%d", k, v[k]))
	}
	return strings.Join(parts, ",")
}

// watcherSources summarises the watchers' sources, e.g. "4×ciliumendpointslices".
func (l *lab) watcherSources() string {
	count := map[string]int{}
	for _, nw := range l.watchers {
		count[string(nw.w.Status().Source)]++
	}
	if len(count) == 0 {
		return "-"
	}
	var parts []string
	for _, s := range slices.Sorted(maps.Keys(count)) {
		parts = append(parts, fmt.Sprintf("%d×%s", count[s], s))
	}
	return strings.Join(parts, ",")
}

// drain waits until the changes on their way have arrived, or drainTimeout.
func (l *lab) drain(ctx context.Context) {
	deadline := time.Now().Add(drainTimeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if s, n := l.track.pending(); s == 0 && n == 0 {
			return
		}
		sleep(ctx, pollEvery)
	}
}

// status is the lab's current state, or the final one once the report is out.
func (l *lab) status() Status {
	l.mu.Lock()
	if l.final != nil {
		st := *l.final
		l.mu.Unlock()
		return st
	}
	st := Status{
		Phase: l.phase, Mode: l.o.mode, DurationSeconds: l.o.duration.Seconds(),
		SetupSeconds: round1(l.setupTime.Seconds()),
		Series:       slices.Clone(l.series),
		Probes:       l.probe,
		Errors:       slices.Clone(l.errs),
	}
	st.Probes.Results = slices.Clone(l.probe.Results)
	for i := range st.Probes.Results {
		st.Probes.Results[i].Mismatches = slices.Clone(st.Probes.Results[i].Mismatches)
	}
	start, seedTime, churnStart, churnBase, phase := l.start, l.seedTime, l.churnStart, l.churnBase, l.phase
	l.mu.Unlock()

	o := l.o
	st.Config = RunConfig{
		Nodes: o.sim.Nodes, Pods: o.sim.Pods, Namespaces: o.sim.Namespaces, Churn: o.sim.Churn,
		SliceSize: o.sliceConfig().MaxEndpointsPerSlice, WriteQPS: o.writeQPS, Watchers: o.watchers,
		Interval: o.interval.Seconds(), Datapath: l.net != nil, ControlPlane: "embedded",
	}
	if st.Config.SliceSize == 0 {
		st.Config.SliceSize = 100
	}
	if st.Series == nil {
		st.Series = []Point{}
	}
	st.Verdicts, st.Watchers, st.RecentFlows, st.Policy.Applied = map[string]uint64{}, []WatcherSummary{}, []FlowSummary{}, []string{}
	if !l.built.Load() {
		return st // the components are being set up
	}
	if st.Probes.Results == nil {
		st.Probes.Results = []ProbeResult{}
	}
	var elapsed float64
	if !start.IsZero() {
		elapsed = time.Since(start).Seconds()
		st.ElapsedSeconds = round1(elapsed)
	}

	if s := l.sim; s != nil {
		st.Simulation = SimStatus{
			LivePods: s.livePods(), Seeded: s.seeded.Load(), SeedSeconds: round1(seedTime.Seconds()),
			CEPCreates: s.cepCreates.Load(), CEPUpdates: s.cepUpdates.Load(), CEPDeletes: s.cepDeletes.Load(),
			CEPErrors: s.cepErrors.Load(), Rollouts: s.rollouts.Load(), Changes: s.changes(),
		}
		if elapsed > 0 {
			st.Simulation.ChangesPerSec = round1(float64(st.Simulation.Changes) / elapsed)
		}
		if phase != "seeding" && !churnStart.IsZero() {
			if d := time.Since(churnStart).Seconds(); d > 0 {
				st.Simulation.ChurnPerSecond = round1(float64(s.changes()-churnBase) / d)
			}
		}
	}
	if l.ctrl != nil {
		cs := l.ctrl.Status()
		st.Slices = sliceStatus(cs, st.Config.SliceSize)
		st.Writes = writeStatus(cs, elapsed, st.Simulation.Changes)
		if o.mode == modeShadow {
			st.Shadow = shadowStatus(l.ctrl.Diff())
		}
	}
	if l.track != nil {
		pl := func(stage string) PhaseLatency {
			return PhaseLatency{All: l.track.stats(stage, "all"), Seed: l.track.stats(stage, phaseSeed), Churn: l.track.stats(stage, phaseChurn)}
		}
		st.Propagation = PropagationStats{Node: pl(stageNode), Slice: pl(stageSlice), NodeDelete: pl(stageNodeDelete), SliceDelete: pl(stageSliceDelete)}
		st.Propagation.PendingSlice, st.Propagation.PendingNode = l.track.pending()
	}
	if l.alloc != nil {
		is := l.alloc.Status()
		st.Identities = IdentityStatus{Known: is.Known, Used: is.Used, Held: is.Held}
		l.idm.fill(&st.Identities)
	}
	for _, nw := range l.watchers {
		st.Watchers = append(st.Watchers, watcherSummary(nw.name, nw.w.Status()))
	}
	if l.agent != nil {
		as := l.agent.Status()
		st.Verdicts = as.Verdicts
		st.Agent = AgentStatus{
			Node: as.Node, Mode: as.Mode, ModeReason: as.ModeReason, Synced: as.Synced, Ready: as.Ready,
			Source: string(as.Watcher.Source), Endpoints: as.Endpoints, LastError: as.LastError,
		}
		if l.net != nil {
			st.Agent.Netns = l.net.Namespaces()
		}
		st.Policy = PolicyStatus{Policies: as.Policies, Applied: l.applied, Invalid: len(as.InvalidPolicies), Revision: as.PolicyRevision,
			LocalEndpoints: len(as.LocalEndpoints), Identities: as.Identities}
		for _, e := range as.LocalEndpoints {
			st.Policy.Entries += e.PolicyEntries
			st.Policy.DatapathEntries += e.DatapathEntries
			if e.Interface != "" {
				st.Agent.Attached++
			}
		}
	}
	st.RecentFlows = l.flows.recent()
	return st
}
