// Command lab runs ceskit's parts together on a throw-away control plane and measures them: it is
// what `make lab` starts.
//
// It starts kube-apiserver and etcd (internal/testenv, from bin/), installs the CRDs, and
// simulates a cluster of nodes and pods with churn, with identities from an
// [identity.CRDAllocator] and the [identity.GC] collecting unused ones. The [slicer.Controller]
// groups the endpoints into CiliumEndpointSlices; several [slicer.Watcher]s stand in for nodes and
// measure how long each endpoint change takes to reach them; one node agent
// (examples/agent/agent) enforces the policies (a default deny and the AKS documentation's
// examples) with the real eBPF datapath on veths in network namespaces the lab creates, where
// it runs as root, and real TCP connections between those namespaces probe what is allowed and
// denied. Without the privileges the agent runs in no-datapath mode and the policy engine
// decides the probes.
//
// Progress goes to the terminal; a live status page, its JSON (/api/status) and Prometheus
// metrics (/metrics) are served on --listen. The run ends with a report table (and --report
// FILE writes the same as JSON). Everything it created is removed on exit, also on Ctrl-C.
//
// With --kubeconfig it attaches to an existing cluster read-only instead: the controller in
// shadow mode and the watchers, no simulation, no writes (refused at the HTTP transport), and it
// reports what the controller would change. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/ceskit/ceskit/slicer"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, a second one kills the process at once.
	context.AfterFunc(ctx, stop)
	routeLibraryLogs = true
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case err != nil:
		fmt.Fprintln(os.Stderr, "lab:", err)
		os.Exit(1)
	}
}

// Modes (--mode).
const (
	modeCES    = "ces"    // the slicer controller writes slices; watchers read them
	modeCEP    = "cep"    // no controller; watchers read CiliumEndpoints (per-endpoint management)
	modeShadow = "shadow" // the controller computes slices and writes nothing; watchers fall back
	modeAttach = "attach" // --kubeconfig: read-only on an existing cluster (shadow controller)
)

// options are the parsed command line.
type options struct {
	kubeconfig string
	listen     string
	report     string
	logLevel   string
	mode       string
	noDatapath bool
	watchers   int
	duration   time.Duration
	interval   time.Duration
	linger     time.Duration
	sliceSize  int
	writeQPS   float64
	sim        simOptions
}

// parseFlags parses args into options.
func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("lab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: lab [flags]\n\nRuns ceskit's slicer, identity allocator and GC, node watchers and one agent on an embedded\ncontrol plane with simulated churn, or (--kubeconfig) read-only against a cluster.\n\nFlags:")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "attach read-only to this cluster (shadow mode: no simulation, no writes) instead of starting a control plane")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:9970", "address of the status page, /api/status and /metrics (:0 picks a free port)")
	fs.StringVar(&o.report, "report", "", "write the final report as JSON to this file")
	fs.StringVar(&o.logLevel, "log-level", "warn", "log level on stderr: debug, info, warn or error")
	fs.StringVar(&o.mode, "mode", modeCES, `endpoint propagation: "ces" (the controller writes slices, watchers read them), "cep" (no controller, watchers read CiliumEndpoints) or "shadow" (the controller writes nothing, watchers fall back)`)
	fs.BoolVar(&o.noDatapath, "no-datapath", false, "run the agent without the eBPF datapath even when privileged (probes are decided by the policy engine)")
	fs.IntVar(&o.watchers, "watchers", 4, "node-side slice watchers measuring propagation, 0-32")
	fs.DurationVar(&o.duration, "duration", time.Minute, "how long to churn after seeding the pods (attached: how long to watch); 0 runs until Ctrl-C")
	fs.DurationVar(&o.interval, "interval", 5*time.Second, "period of the progress lines, status-page series points and probe rounds")
	fs.DurationVar(&o.linger, "linger", 0, "keep serving the final status page this long after the report (Ctrl-C ends it early)")
	fs.IntVar(&o.sliceSize, "slice-size", 0, "endpoints per slice, 1-1000 (0: the slicer's default, 100)")
	fs.Float64Var(&o.writeQPS, "write-qps", 0, "fixed slice write rate (0: the slicer's node-count table, 10/s below 100 nodes, 50/s from 100)")
	fs.IntVar(&o.sim.Nodes, "nodes", 200, "simulated Nodes")
	fs.IntVar(&o.sim.Pods, "pods", 2000, "simulated pods (CiliumEndpoints) kept alive")
	fs.IntVar(&o.sim.Namespaces, "namespaces", 20, "namespaces the simulated pods spread over")
	fs.Float64Var(&o.sim.Churn, "churn", 50, "endpoint changes per second after seeding: replacements, relabels and rollouts (0: none)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	if o.kubeconfig != "" {
		for _, name := range []string{"nodes", "pods", "namespaces", "churn", "no-datapath", "write-qps"} {
			if set[name] {
				return nil, fmt.Errorf("flag --%s with --kubeconfig: attached to a cluster the lab simulates nothing and writes nothing", name)
			}
		}
		if set["mode"] && o.mode != modeShadow {
			return nil, fmt.Errorf("flag --mode=%s with --kubeconfig: attached to a cluster the lab runs read-only, in shadow mode", o.mode)
		}
		o.mode = modeAttach
	}
	switch o.mode {
	case modeCES, modeCEP, modeShadow, modeAttach:
	default:
		return nil, fmt.Errorf("flag --mode=%q: want %q, %q or %q", o.mode, modeCES, modeCEP, modeShadow)
	}
	switch {
	case o.sim.Nodes < 1 || o.sim.Nodes > 10000:
		return nil, fmt.Errorf("flag --nodes=%d: must be between 1 and 10000", o.sim.Nodes)
	case o.sim.Pods < 0 || o.sim.Pods > 200000:
		return nil, fmt.Errorf("flag --pods=%d: must be between 0 and 200000", o.sim.Pods)
	case o.sim.Namespaces < 1 || o.sim.Namespaces > 1000:
		return nil, fmt.Errorf("flag --namespaces=%d: must be between 1 and 1000", o.sim.Namespaces)
	case o.sim.Churn < 0:
		return nil, fmt.Errorf("flag --churn=%g: must not be negative", o.sim.Churn)
	case o.watchers < 0 || o.watchers > 32:
		return nil, fmt.Errorf("flag --watchers=%d: must be between 0 and 32", o.watchers)
	case o.duration < 0:
		return nil, fmt.Errorf("flag --duration=%s: must not be negative", o.duration)
	case o.interval < 100*time.Millisecond:
		return nil, fmt.Errorf("flag --interval=%s: must be at least 100ms", o.interval)
	case o.linger < 0:
		return nil, fmt.Errorf("flag --linger=%s: must not be negative", o.linger)
	}
	if err := o.sliceConfig().Validate(); err != nil {
		var ce *slicer.ConfigError
		if errors.As(err, &ce) && ce.Field == "WriteQPS" {
			return nil, fmt.Errorf("flag --write-qps: %w", err)
		}
		return nil, fmt.Errorf("flag --slice-size: %w", err)
	}
	if _, err := parseLevel(o.logLevel); err != nil {
		return nil, err
	}
	return o, nil
}

// sliceConfig is the slicer configuration the flags describe (Logger and Metrics unset).
func (o *options) sliceConfig() slicer.Config {
	return slicer.Config{
		MaxEndpointsPerSlice: o.sliceSize,
		WriteQPS:             o.writeQPS,
		Shadow:               o.mode == modeShadow || o.mode == modeAttach,
	}
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("flag --log-level=%q: want debug, info, warn or error", s)
	}
	return l, nil
}

// routeLibraryLogs is set by main: client-go's and controller-runtime's loggers are process-wide,
// so only a process that runs one lab (not the tests, which run several) routes them.
var routeLibraryLogs bool

// newLogger builds the lab's logger and, in main, routes client-go's (klog) and
// controller-runtime's (envtest) logs through it.
func newLogger(o *options, stderr io.Writer) *slog.Logger {
	level, _ := parseLevel(o.logLevel)
	h := slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	if routeLibraryLogs {
		klog.SetSlogLogger(slog.New(h))
		ctrllog.SetLogger(logr.FromSlogHandler(h))
	}
	return slog.New(h)
}

// run is the whole program. When started is not nil it receives the status page's address as
// soon as it serves.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, started chan<- string) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	logger := newLogger(o, stderr)
	out := &printer{w: stdout}
	if o.mode == modeAttach {
		return runAttach(ctx, o, out, logger, started)
	}
	return runEmbedded(ctx, o, out, logger, started)
}
