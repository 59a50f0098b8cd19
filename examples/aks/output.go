package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ceskit/ceskit/azure"
)

// writeJSON writes v as indented JSON, HTML characters unescaped.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// problem is one validation problem as the CLI prints it.
type problem = azure.Problem

// validationProblems splits err into the problems of an *azure.ValidationError (nil error) and
// any other error.
func validationProblems(err error) ([]problem, error) {
	if err == nil {
		return nil, nil
	}
	var ve *azure.ValidationError
	if errors.As(err, &ve) {
		return ve.Problems, nil
	}
	return nil, err
}

// printProblems prints problems as a table: FIELD VALUE CODE MESSAGE.
func printProblems(w io.Writer, problems []problem) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FIELD\tVALUE\tCODE\tMESSAGE")
	for _, p := range problems {
		v := p.Value
		if v == "" {
			v = `""`
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Field, v, p.Code, p.Message)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d problem%s\n", len(problems), plural(len(problems)))
}

// summarize describes a defaulted spec in one line.
func summarize(s azure.ClusterSpec) string {
	n := s.Network
	parts := []string{
		"model " + string(n.Model),
		"dataplane " + string(n.Dataplane),
		"policy " + string(n.Policy),
	}
	if n.PodCIDR != "" {
		parts = append(parts, "pods "+n.PodCIDR)
	}
	parts = append(parts, "services "+n.ServiceCIDR, "dns "+n.DNSServiceIP)
	if a := s.ACNS; a != nil {
		acns := []string{}
		if a.Observability {
			acns = append(acns, "observability")
		}
		if a.Security {
			acns = append(acns, "security "+string(a.AdvancedNetworkPolicies))
		}
		if a.ContainerNetworkLogs {
			acns = append(acns, "container network logs")
		}
		parts = append(parts, "acns "+strings.Join(acns, "+"))
	}
	pools := make([]string, len(s.Pools))
	for i, p := range s.Pools {
		pools[i] = fmt.Sprintf("%s %dx%s", p.Name, p.Count, p.VMSize)
	}
	parts = append(parts, "pools "+strings.Join(pools, ", "))
	return strings.Join(parts, "; ")
}

// shortID is a resource ID without the subscription, resource group and provider namespace:
// managedClusters/c1/agentPools/np1, virtualNetworks/v1, resourceGroups/rg.
func shortID(id string) string {
	if i := strings.LastIndex(strings.ToLower(id), "/providers/"); i >= 0 {
		rest := id[i+len("/providers/"):]
		if j := strings.Index(rest, "/"); j >= 0 {
			return rest[j+1:]
		}
		return rest
	}
	if i := strings.Index(strings.ToLower(id), "/resourcegroups/"); i >= 0 {
		return id[i+1:]
	}
	return id
}

// affects returns prefix + the pools a step affects, or "".
func affects(s azure.Step, prefix string) string {
	if len(s.Affects) == 0 {
		return ""
	}
	return prefix + strings.Join(s.Affects, ", ")
}

// printPlan prints p as a table of steps, then each step's description, warnings and (with
// bodies) its redacted body, then the plan's warnings.
func printPlan(w io.Writer, p *azure.ClusterPlan, create, bodies bool) {
	what := "update"
	if create {
		what = "create"
	}
	fmt.Fprintf(w, "Plan to %s %s: %d step%s\n", what, p.Cluster, len(p.Steps), plural(len(p.Steps)))
	if len(p.Steps) == 0 {
		fmt.Fprintln(w, "Nothing to do: the cluster matches.")
	} else {
		fmt.Fprintln(w)
		printStepTable(w, p)
	}
	for i, s := range p.Steps {
		fmt.Fprintf(w, "\nStep %d: %s\n", i+1, s.Description)
		fmt.Fprintf(w, "  %s %s?api-version=%s\n", s.Method, s.ResourceID, s.APIVersion)
		for _, warn := range s.Warnings {
			fmt.Fprintf(w, "  warning: %s\n", warn)
		}
		if bodies && len(s.Body) > 0 {
			var buf bytes.Buffer
			red := azure.RedactBody(s.Kind, s.Body)
			if err := json.Indent(&buf, red, "    ", "  "); err != nil {
				buf.Reset()
				buf.Write(red)
			}
			fmt.Fprintf(w, "  body:\n    %s\n", buf.String())
		}
	}
	if len(p.Warnings) > 0 {
		fmt.Fprintln(w, "\nWarnings:")
		for _, warn := range p.Warnings {
			fmt.Fprintf(w, "  - %s\n", warn)
		}
	}
}

// printStepTable prints one row per step: STEP KIND METHOD RESOURCE DISRUPTION POOLS WARNINGS.
func printStepTable(w io.Writer, p *azure.ClusterPlan) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tKIND\tMETHOD\tRESOURCE\tDISRUPTION\tPOOLS\tWARNINGS")
	for i, s := range p.Steps {
		pools := affects(s, "")
		if pools == "" {
			pools = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\n", i+1, s.Kind, s.Method, shortID(s.ResourceID), s.Disruption, pools, len(s.Warnings))
	}
	tw.Flush()
}

// printProgress prints one line per step phase.
func printProgress(w io.Writer, sp azure.StepProgress) {
	prefix := fmt.Sprintf("[%d/%d] %s %s:", sp.Index+1, sp.Total, sp.Kind, shortID(sp.ResourceID))
	switch sp.Phase {
	case azure.PhaseStarted:
		fmt.Fprintf(w, "%s reading\n", prefix)
	case azure.PhaseSubmitted:
		fmt.Fprintf(w, "%s submitted, waiting for Azure\n", prefix)
	case azure.PhaseResuming:
		fmt.Fprintf(w, "%s resuming the operation an earlier apply started\n", prefix)
	case azure.PhaseDone:
		fmt.Fprintf(w, "%s %s in %s\n", prefix, sp.Outcome, round(sp.Elapsed))
	case azure.PhaseFailed:
		fmt.Fprintf(w, "%s failed after %s\n", prefix, round(sp.Elapsed))
	default:
		fmt.Fprintf(w, "%s %s\n", prefix, sp.Phase)
	}
}

// printApplySummary counts the outcomes.
func printApplySummary(w io.Writer, r *azure.ApplyResult) {
	counts := map[azure.Outcome]int{}
	var order []azure.Outcome
	for _, s := range r.Steps {
		if counts[s.Outcome] == 0 {
			order = append(order, s.Outcome)
		}
		counts[s.Outcome]++
	}
	parts := make([]string, len(order))
	for i, o := range order {
		parts[i] = fmt.Sprintf("%d %s", counts[o], o)
	}
	fmt.Fprintf(w, "Result for %s: %s\n", shortID(r.Cluster), strings.Join(parts, ", "))
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= time.Microsecond:
		return d.Round(time.Microsecond)
	}
	return d
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
