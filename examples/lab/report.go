package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
)

// printReport prints the final status as a table.
func printReport(out *printer, st Status) {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, args...)) }
	fmt.Fprintf(&b, "\nceskit lab report (mode %s)\n", st.Mode)
	c := st.Config
	if st.Mode == modeAttach {
		row("cluster", "%s (read-only)", c.ControlPlane)
		row("watched for", "%.1fs", st.ElapsedSeconds)
	} else {
		row("run", "%.1fs after %.1fs of set-up; %d pods, %d namespaces, %d nodes, churn %g/s, slice size %d, %d watchers",
			st.ElapsedSeconds, st.SetupSeconds, c.Pods, c.Namespaces, c.Nodes, c.Churn, c.SliceSize, c.Watchers)
		s := st.Simulation
		row("endpoint changes", "%d (creates %d, updates %d, deletes %d, errors %d; %d rollouts); seeded %d in %.1fs; churn %.1f/s",
			s.Changes, s.CEPCreates, s.CEPUpdates, s.CEPDeletes, s.CEPErrors, s.Rollouts, s.Seeded, s.SeedSeconds, s.ChurnPerSecond)
	}
	if st.Mode != modeCEP {
		sl := st.Slices
		row("slices", "%d (desired %d) holding %d endpoints, %.1f%% full; out of sync %d; write limit %s", sl.Count, sl.Desired, sl.Endpoints, sl.FillPercent, sl.OutOfSync, sl.RateLimit)
		w := st.Writes
		row("slice writes", "%d (creates %d, updates %d, deletes %d) = %.1f/s, %.3f per endpoint change; %d conflicts, %d echoes suppressed",
			w.Total, w.Creates, w.Updates, w.Deletes, w.PerSecond, w.PerChange, w.Conflicts, w.EchoesSuppressed)
	}
	if st.Mode != modeAttach {
		p := st.Propagation
		if st.Mode == modeCES {
			row("propagation to slices", "seed %s; churn %s", p.Slice.Seed, p.Slice.Churn)
		}
		row("propagation to nodes", "seed %s; churn %s", p.Node.Seed, p.Node.Churn)
		row("deletes to nodes", "%s (includes the watchers' 1s delete grace)", p.NodeDelete.All)
		row("not propagated", "slices %d, nodes %d (at the end; a run that was not interrupted waits up to %s for them)", p.PendingSlice, p.PendingNode, drainTimeout)
		id := st.Identities
		row("identities", "%d CiliumIdentities (%d held by the simulator); %d allocations, %d created, %d API writes; GC: %d passes, %d deleted, %d marked in the last pass",
			id.Known, id.Held, id.Allocations, id.Created, id.APIWrites, id.GCRuns, id.GCDeleted, id.GCMarked)
		a := st.Agent
		mode := a.Mode
		if a.ModeReason != "" {
			mode += " (" + a.ModeReason + ")"
		}
		row("agent", "%s on %s, %s; %d local endpoints, %d attached; %d endpoints known", mode, a.Node, a.Source, st.Policy.LocalEndpoints, a.Attached, a.Endpoints)
		row("policy", "%d policies (%d invalid), revision %d; %d map entries, %d in the datapath", st.Policy.Policies, st.Policy.Invalid, st.Policy.Revision, st.Policy.Entries, st.Policy.DatapathEntries)
		row("verdicts", "%s", verdictText(st.Verdicts))
	}
	for _, w := range st.Watchers {
		reason := ""
		if w.Reason != "" {
			reason = " (" + w.Reason + ")"
		}
		row(w.Name, "%s%s, %d endpoints, %d switches", w.Source, reason, w.Endpoints, w.Switches)
	}
	if sh := st.Shadow; sh != nil {
		row("would write", "%d creates, %d updates, %d deletes of slices; endpoints %d added, %d removed, %d changed",
			sh.Creates, sh.Updates, sh.Deletes, sh.Added, sh.Removed, sh.Changed)
		if st.Mode == modeAttach {
			row("writes refused", "%d (the lab's client refuses every write)", sh.WritesRefused)
		}
	}
	for _, e := range st.Errors {
		row("error", "%s", e)
	}
	tw.Flush()
	if st.Mode != modeAttach {
		pr := st.Probes
		verdict := "as expected"
		if !pr.Passed {
			verdict = "NOT as expected"
		}
		if pr.Rounds == 0 {
			verdict = "not run (the agent was not ready)"
		}
		fmt.Fprintf(&b, "\nprobes (%s, %d rounds): %s\n", probeMethod(pr.Method), pr.Rounds, verdict)
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "flow\texpected\tobserved\tengine\tmatched\tslow\n")
		for _, r := range pr.Results {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%d\n", r.Probe, r.Expected, r.Last, r.Engine, r.Matched, r.Rounds, r.Slow)
		}
		tw.Flush()
		for _, r := range pr.Results {
			for _, m := range r.Mismatches {
				fmt.Fprintf(&b, "  %s: %s\n", r.Probe, m)
			}
		}
	}
	if sh := st.Shadow; sh != nil && len(sh.Diff) > 0 {
		fmt.Fprintf(&b, "\nslices the controller would write (first %d of %d):\n", min(len(sh.Diff), 10), sh.Creates+sh.Updates+sh.Deletes)
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "slice\tnamespace\top\tadded\tremoved\tchanged\n")
		for _, d := range sh.Diff[:min(len(sh.Diff), 10)] {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\n", d.Slice, d.Namespace, d.Op, len(d.Added), len(d.Removed), len(d.Changed))
		}
		tw.Flush()
	}
	out.Printf("%s\n", b.String())
}

func probeMethod(m string) string {
	switch m {
	case "tcp":
		return "real TCP connections through the datapath"
	case "engine":
		return "decided by the policy engine, no datapath"
	}
	return "none"
}

// writeReport writes st as indented JSON to path.
func writeReport(path string, st Status) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("flag --report: %w", err)
	}
	return nil
}
