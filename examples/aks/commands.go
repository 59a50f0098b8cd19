package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v8"

	"github.com/ceskit/ceskit/azure"
)

// ---- validate ----

func runValidate(ctx context.Context, args []string, stdout, stderr io.Writer, env deps) error {
	var sf specFlags
	var output string
	fs := newFlagSet("validate", "Checks the cluster the flags (and --spec) describe, as a new cluster, and prints every\nproblem. Exit code 1 when there is any.", stderr)
	sf.register(fs)
	fs.String(&output, "output", "o", "FORMAT", "table", "table or json")
	if err := parse(fs, args); err != nil {
		return err
	}
	format, err := outputFormat(output)
	if err != nil {
		return err
	}
	s, err := sf.base(nil)
	if err != nil {
		return err
	}
	sf.locate(fs, &s, env.getenv)
	if err := sf.apply(fs, &s, true); err != nil {
		return err
	}
	d := s.WithDefaults()
	problems, err := validationProblems(azure.Validate(d))
	if err != nil {
		return err
	}
	if format == "json" {
		if err := writeJSON(stdout, validateResult{Valid: len(problems) == 0, Problems: problems, Spec: d}); err != nil {
			return err
		}
	} else if len(problems) == 0 {
		fmt.Fprintf(stdout, "valid: %s\n  %s\n", d.ResourceID(), summarize(d))
	} else {
		printProblems(stdout, problems)
	}
	if len(problems) > 0 {
		return exitError(exitFailed)
	}
	return nil
}

// validateResult is validate's JSON output.
type validateResult struct {
	Valid    bool              `json:"valid"`
	Problems []problem         `json:"problems"`
	Spec     azure.ClusterSpec `json:"spec"` // with defaults filled in
}

// ---- plan ----

// planFlags are the flags of plan, and of apply when it computes the plan.
type planFlags struct {
	specFlags
	current    string
	live       bool
	showBodies bool
	out        string
	output     string
	cred       credFlags
}

func (f *planFlags) register(fs *flagSet, forApply bool) {
	f.specFlags.register(fs)
	fs.String(&f.current, "current", "", "FILE", "", "the current cluster: JSON as `az aks show -o json` (or the ARM REST API) prints it")
	fs.Bool(&f.live, "live", "", "read the current cluster from Azure (a missing cluster plans a create)")
	if !forApply {
		fs.Bool(&f.showBodies, "show-bodies", "", "print each request body, secrets redacted")
		fs.String(&f.out, "out", "", "FILE", "", "also save the plan, bodies unredacted, for apply --plan (mode 0600)")
	}
	fs.String(&f.output, "output", "o", "FORMAT", "table", "table or json")
	f.cred.register(fs, forApply)
}

// credFlags select the Azure credential (plan --live, apply).
type credFlags struct {
	managedIdentityClientID string
	workloadIdentity        bool
	verbose                 bool
	pollInterval            time.Duration
}

func (f *credFlags) register(fs *flagSet, forApply bool) {
	fs.String(&f.managedIdentityClientID, "managed-identity-client-id", "", "ID", "", "authenticate as this user-assigned managed identity (default: azidentity's default chain: environment, workload identity, managed identity, Azure CLI)")
	fs.Bool(&f.workloadIdentity, "workload-identity", "", "authenticate with Kubernetes workload identity (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE)")
	if !forApply {
		return
	}
	fs.Bool(&f.verbose, "verbose", "v", "log every step phase of the Applier to stderr")
	// Only tests poll faster than azcore's 1 s minimum; hidden.
	fs.HiddenDuration(&f.pollInterval, "poll-interval", 0, "poll frequency of long-running operations (default 30s)")
}

// clients builds the ARM clients for subscription.
func (f *credFlags) clients(subscription string, env deps) (*azure.Clients, error) {
	if subscription == "" {
		return nil, usagef("no subscription: set --subscription or $AZURE_SUBSCRIPTION_ID")
	}
	cred := env.Credential
	if cred == nil {
		var opts azure.CredentialOptions
		opts.ManagedIdentityClientID = f.managedIdentityClientID
		opts.Workload = f.workloadIdentity
		if env.ClientOptions != nil {
			opts.ClientOptions = env.ClientOptions.ClientOptions
		}
		c, err := azure.NewCredential(opts)
		if err != nil {
			return nil, err
		}
		cred = c
	}
	return azure.NewClients(subscription, cred, env.ClientOptions)
}

func (f *credFlags) logger(stderr io.Writer) *slog.Logger {
	if !f.verbose {
		return nil
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func runPlan(ctx context.Context, args []string, stdout, stderr io.Writer, env deps) error {
	var f planFlags
	fs := newFlagSet("plan", "Prints the ARM requests, in order, that create the cluster (no --current, no --live) or turn\nthe current cluster into the one the flags describe.", stderr)
	f.register(fs, false)
	if err := parse(fs, args); err != nil {
		return err
	}
	format, err := outputFormat(f.output)
	if err != nil {
		return err
	}
	p, create, err := computePlan(ctx, &f, fs, stdout, format, env)
	if err != nil {
		return err
	}
	if f.out != "" {
		if err := writePlanFile(f.out, p); err != nil {
			return err
		}
	}
	if format == "json" {
		return writeJSON(stdout, redactPlan(p))
	}
	printPlan(stdout, p, create, f.showBodies)
	if f.out != "" {
		fmt.Fprintf(stdout, "\nSaved to %s; apply it with: aks apply --plan %s\n", f.out, f.out)
	}
	return nil
}

// computePlan reads the current cluster (--current or --live), builds the desired spec and
// plans. Validation problems are printed to stdout and end the command with exit code 1.
func computePlan(ctx context.Context, f *planFlags, fs *flagSet, stdout io.Writer, format string, env deps) (*azure.ClusterPlan, bool, error) {
	if f.current != "" && f.live {
		return nil, false, usagef("--current and --live exclude each other")
	}
	var current *armcontainerservice.ManagedCluster
	switch {
	case f.current != "":
		mc, err := readManagedCluster(f.current)
		if err != nil {
			return nil, false, err
		}
		current = mc
	case f.live:
		s, err := f.base(nil)
		if err != nil {
			return nil, false, err
		}
		f.locate(fs, &s, env.getenv)
		if s.ResourceGroup == "" || s.Name == "" {
			return nil, false, usagef("--live needs the cluster's --resource-group and --name")
		}
		c, err := f.cred.clients(s.SubscriptionID, env)
		if err != nil {
			return nil, false, err
		}
		resp, err := c.ManagedClusters.Get(ctx, s.ResourceGroup, s.Name, nil)
		var re *azcore.ResponseError
		switch {
		case errors.As(err, &re) && re.StatusCode == http.StatusNotFound:
			// No cluster yet: plan a create.
		case err != nil:
			return nil, false, fmt.Errorf("read cluster %s/%s: %w", s.ResourceGroup, s.Name, err)
		default:
			current = &resp.ManagedCluster
		}
	}

	s, err := f.base(current)
	if err != nil {
		return nil, false, err
	}
	f.locate(fs, &s, env.getenv)
	if err := f.apply(fs, &s, current == nil); err != nil {
		return nil, false, err
	}
	p, err := azure.Plan(ctx, s, current)
	if problems, perr := validationProblems(err); perr != nil {
		return nil, false, fmt.Errorf("plan: %w", perr)
	} else if len(problems) > 0 {
		if format == "json" {
			_ = writeJSON(stdout, validateResult{Problems: problems, Spec: s.WithDefaults()})
		} else {
			fmt.Fprintln(stdout, "The cluster spec is invalid:")
			printProblems(stdout, problems)
		}
		return nil, false, exitError(exitFailed)
	}
	return p, current == nil, nil
}

// redactPlan returns a copy of p with every body passed through azure.RedactBody.
func redactPlan(p *azure.ClusterPlan) *azure.ClusterPlan {
	out := *p
	out.Steps = make([]azure.Step, len(p.Steps))
	for i, s := range p.Steps {
		s.Body = azure.RedactBody(s.Kind, s.Body)
		out.Steps[i] = s
	}
	return &out
}

func writePlanFile(path string, p *azure.ClusterPlan) error {
	var buf bytes.Buffer
	if err := writeJSON(&buf, p); err != nil {
		return err
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("save plan: %w", err)
	}
	return nil
}

func readPlanFile(path string) (*azure.ClusterPlan, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	var p azure.ClusterPlan
	if err := d.Decode(&p); err != nil {
		return nil, fmt.Errorf("read plan %s: %w", path, err)
	}
	for i, s := range p.Steps {
		// A plan printed with -o json has its secrets replaced; applying it would send them.
		if bytes.Contains(s.Body, []byte(`"`+azure.Redacted+`"`)) {
			return nil, fmt.Errorf("read plan %s: step %d has redacted secrets (a plan printed with -o json); save plans with plan --out", path, i+1)
		}
	}
	return &p, nil
}

// ---- apply ----

func runApply(ctx context.Context, args []string, stdout, stderr io.Writer, env deps) error {
	var f planFlags
	var planFile, resumeDir string
	var yes bool
	fs := newFlagSet("apply", "Sends the plan's requests in order and waits for each; a step whose resource already matches\nis skipped. Long-running operations are resumed after an interruption (resume tokens in\n--resume-dir). Without --plan it computes the plan as plan does.", stderr)
	fs.String(&planFile, "plan", "", "FILE", "", "apply a plan saved with plan --out (no cluster flags then: the plan names the cluster)")
	fs.String(&resumeDir, "resume-dir", "", "DIR", "", "where resume tokens of running operations are kept (default $XDG_STATE_HOME/ceskit-aks, else ~/.local/state/ceskit-aks)")
	fs.Bool(&yes, "yes", "y", "apply a plan that disrupts workloads (reimages nodes, reconfigures pod networking)")
	f.register(fs, true)
	if err := parse(fs, args); err != nil {
		return err
	}
	format, err := outputFormat(f.output)
	if err != nil {
		return err
	}
	if resumeDir == "" {
		resumeDir = env.defaultResumeDir()
	}

	var p *azure.ClusterPlan
	if planFile != "" {
		for _, d := range fs.defs {
			if fs.Set(d.long) && clusterFlag(d.long) {
				return usagef("--%s: a saved plan (--plan) already names the cluster and its changes", d.long)
			}
		}
		if p, err = readPlanFile(planFile); err != nil {
			return err
		}
	} else if p, _, err = computePlan(ctx, &f, fs, stdout, format, env); err != nil {
		return err
	}
	if len(p.Steps) == 0 {
		fmt.Fprintln(stdout, "Nothing to do: the cluster matches.")
		return nil
	}

	if disruptive := disruptiveSteps(p); len(disruptive) > 0 && !yes {
		fmt.Fprintf(stderr, "aks apply: the plan for %s disrupts running workloads:\n", p.Cluster)
		for _, i := range disruptive {
			s := p.Steps[i]
			fmt.Fprintf(stderr, "  step %d: %s %s: %s%s\n", i+1, s.Kind, shortID(s.ResourceID), s.Disruption, affects(s, " of pools "))
			for _, w := range s.Warnings {
				fmt.Fprintf(stderr, "    warning: %s\n", w)
			}
		}
		for _, w := range p.Warnings {
			fmt.Fprintf(stderr, "  warning: %s\n", w)
		}
		fmt.Fprintln(stderr, "Review it with aks plan, then re-run with --yes to apply it.")
		return exitError(exitUsage)
	}

	id, err := arm.ParseResourceID(p.Cluster)
	if err != nil {
		return fmt.Errorf("plan cluster %q: %w", p.Cluster, err)
	}
	clients, err := f.cred.clients(id.SubscriptionID, env)
	if err != nil {
		return err
	}
	progress := stdout
	if format == "json" {
		progress = stderr
	}
	fmt.Fprintf(progress, "Applying %d step%s to %s:\n", len(p.Steps), plural(len(p.Steps)), p.Cluster)
	printStepTable(progress, p)
	fmt.Fprintln(progress)
	a := &azure.Applier{
		Clients:       clients,
		Store:         azure.FileResumeStore(resumeDir),
		PollFrequency: f.cred.pollInterval,
		Logger:        f.cred.logger(stderr),
		OnProgress:    func(sp azure.StepProgress) { printProgress(progress, sp) },
	}
	res, err := a.Apply(ctx, p)
	if format == "json" && res != nil {
		if jerr := writeJSON(stdout, applyJSON(res)); jerr != nil && err == nil {
			err = jerr
		}
	} else if res != nil {
		printApplySummary(stdout, res)
	}
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(stderr, "aks apply: interrupted; running operations keep going in Azure, and the next apply with --resume-dir %s resumes them\n", resumeDir)
		}
		return err
	}
	return nil
}

// clusterFlag reports whether a flag of apply describes the cluster (and so conflicts with
// --plan).
func clusterFlag(long string) bool {
	switch long {
	case "plan", "resume-dir", "yes", "output", "managed-identity-client-id", "workload-identity", "verbose", "poll-interval":
		return false
	}
	return true
}

// disruptiveSteps are the indexes of the steps that disrupt workloads.
func disruptiveSteps(p *azure.ClusterPlan) []int {
	var out []int
	for i, s := range p.Steps {
		if s.Disruption != "" && s.Disruption != azure.DisruptNone {
			out = append(out, i)
		}
	}
	return out
}

// applyResult is apply's JSON output.
type applyResult struct {
	Cluster string       `json:"cluster"`
	Changed bool         `json:"changed"`
	Steps   []stepResult `json:"steps"`
}

type stepResult struct {
	Step       int     `json:"step"` // from 1
	Kind       string  `json:"kind"`
	ResourceID string  `json:"resourceId"`
	Outcome    string  `json:"outcome"`
	Seconds    float64 `json:"seconds"`
	Error      string  `json:"error,omitempty"`
}

func applyJSON(r *azure.ApplyResult) applyResult {
	out := applyResult{Cluster: r.Cluster, Changed: r.Changed(), Steps: []stepResult{}}
	for _, s := range r.Steps {
		sr := stepResult{Step: s.Index + 1, Kind: string(s.Kind), ResourceID: s.ResourceID, Outcome: string(s.Outcome), Seconds: s.Duration.Seconds()}
		if s.Err != nil {
			sr.Error = s.Err.Error()
		}
		out.Steps = append(out.Steps, sr)
	}
	return out
}

// ---- export ----

func runExport(ctx context.Context, args []string, stdout, stderr io.Writer, env deps) error {
	var sf specFlags
	var out string
	var withMonitoring bool
	fs := newFlagSet("export", "Prints an ARM deployment template that creates the cluster the flags (and --spec) describe.", stderr)
	sf.register(fs)
	fs.String(&out, "out", "", "FILE", "", "write the template to FILE instead of stdout")
	fs.Bool(&withMonitoring, "with-monitoring", "", "add ceskit's Azure Monitor resources (github.com/ceskit/ceskit/observe): Prometheus rule group, log search alert, workbook")
	if err := parse(fs, args); err != nil {
		return err
	}
	s, err := sf.base(nil)
	if err != nil {
		return err
	}
	sf.locate(fs, &s, env.getenv)
	if err := sf.apply(fs, &s, true); err != nil {
		return err
	}
	tmpl, err := exportTemplate(s, withMonitoring)
	if problems, perr := validationProblems(err); perr != nil {
		return fmt.Errorf("export: %w", perr)
	} else if len(problems) > 0 {
		fmt.Fprintln(stderr, "The cluster spec is invalid:")
		printProblems(stderr, problems)
		return exitError(exitFailed)
	}
	if out == "" {
		_, err := stdout.Write(tmpl)
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := os.WriteFile(out, tmpl, 0o644); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	fmt.Fprintf(stderr, "Wrote %s\n", out)
	return nil
}

// exportTemplate is azure.ExportTemplate; with monitoring, observe's Azure Monitor resources
// join the template.
func exportTemplate(s azure.ClusterSpec, monitoring bool) ([]byte, error) {
	return azure.ExportTemplate(s, azure.ExportOptions{Monitoring: monitoring})
}
