// Command agent runs ceskit's node agent ([agent.Agent]) on one node: endpoints from
// CiliumEndpointSlices, labels from CiliumIdentities, NetworkPolicies and Cilium policies through
// the policy engine into the eBPF datapath attached to the pods' veths, verdicts into a
// Hubble-compatible audit log and Prometheus metrics. Without the privileges or kernel support
// for BPF, or with --no-datapath, it runs in no-datapath mode: it computes and reports everything
// and enforces nothing.
//
//	GET  /metrics    Prometheus metrics (policy engine, watcher, datapath, flows, Go runtime)
//	GET  /healthz    200 "ok" while the agent runs, 503 with the error once it failed
//	GET  /readyz     200 "ok" once synced and the local endpoints were synced once, else 503
//	GET  /status     JSON of agent.Status
//	GET  /loglevel   component log levels; PUT /loglevel?component=policy&level=debug changes one
//
// See README.md for the flags, the attach rule and the manifests in deploy/.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/ceskit/ceskit/datapath"
	"github.com/ceskit/ceskit/examples/agent/agent"
	"github.com/ceskit/ceskit/internal/kubeconfig"
	"github.com/ceskit/ceskit/observe"
	"github.com/ceskit/ceskit/policy"
	"github.com/ceskit/ceskit/slicer"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, a second one kills the process at once.
	context.AfterFunc(ctx, stop)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case err != nil:
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(1)
	}
}

// options are the parsed command line.
type options struct {
	kubeconfig     string
	nodeName       string
	noDatapath     bool
	auditLog       string
	metricsAddr    string
	policyMode     policy.Mode
	bpfPinPath     string
	discovery      time.Duration
	netns          string
	reportAllowed  bool
	heartbeatLease string
	source         string
	logLevel       slog.Level
}

// parseFlags parses args; getenv supplies $NODE_NAME.
func parseFlags(args []string, stderr io.Writer, getenv func(string) string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: agent [flags]\n\nRuns ceskit's node agent for one node.\n\nFlags:")
		fs.PrintDefaults()
	}
	var mode, level string
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, else the in-cluster service account, else ~/.kube/config)")
	fs.StringVar(&o.nodeName, "node-name", getenv("NODE_NAME"), "name of the Node this agent enforces for (default $NODE_NAME)")
	fs.BoolVar(&o.noDatapath, "no-datapath", false, "compute and report only: no BPF programs, maps or attachments (also the fallback without root or BPF support)")
	fs.StringVar(&o.auditLog, "audit-log", "", `write every verdict flow as a JSON line (hubble observe -o json form) to this file, "-" for stdout (default: none; flows are still counted in /metrics)`)
	fs.StringVar(&o.metricsAddr, "metrics-addr", "127.0.0.1:9964", "address of the HTTP server for /metrics, /healthz, /readyz, /status and /loglevel")
	fs.StringVar(&mode, "policy-mode", "aks", `CIDR semantics: "aks" (Cilium's default: CIDR rules never select pods or nodes) or "spec" (the NetworkPolicy specification)`)
	fs.StringVar(&o.bpfPinPath, "bpf-pin-path", "", "bpffs directory to pin maps and links in, so a restarted agent takes over without a gap (e.g. /sys/fs/bpf/ceskit; default: no pinning)")
	fs.StringVar(&o.netns, "netns", "", "network namespace (path) holding the pods' interfaces (default: the agent's own, i.e. the node's with hostNetwork)")
	fs.BoolVar(&o.reportAllowed, "report-allowed", false, "report allowed new flows too (FORWARDED), not only DROPPED and AUDIT")
	fs.StringVar(&o.heartbeatLease, "heartbeat-lease", slicer.DefaultHeartbeatLease, `the slice controller's heartbeat Lease "namespace/name"; "-" trusts the slices without one (managed AKS, where Cilium's operator owns them)`)
	fs.StringVar(&o.source, "endpoint-source", "", `pin the endpoint source: "ciliumendpointslices" or "ciliumendpoints" (default: slices, falling back to endpoints)`)
	fs.DurationVar(&o.discovery, "discovery-interval", 30*time.Second, "how often to look again for CiliumNetworkPolicies and CiliumClusterwideNetworkPolicies when the API server did not serve them at start (1s-1h)")
	fs.StringVar(&level, "log-level", "info", "log level of every component at start: debug, info, warn or error (change at runtime through /loglevel)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if o.nodeName == "" {
		return nil, errors.New("flag --node-name: required (or set $NODE_NAME; the DaemonSet sets it from spec.nodeName)")
	}
	switch mode {
	case "aks":
		o.policyMode = policy.ModeAKS
	case "spec":
		o.policyMode = policy.ModeSpec
	default:
		return nil, fmt.Errorf(`flag --policy-mode=%q: want "aks" or "spec"`, mode)
	}
	lv, err := observe.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("flag --log-level: %w", err)
	}
	o.logLevel = lv
	if err := o.watcherConfig().Validate(); err != nil {
		return nil, fmt.Errorf("flag --heartbeat-lease or --endpoint-source: %w", err)
	}
	if o.noDatapath && (o.bpfPinPath != "" || o.reportAllowed) {
		return nil, errors.New("flags --bpf-pin-path and --report-allowed need the datapath: drop --no-datapath")
	}
	return o, nil
}

func (o *options) watcherConfig() slicer.WatcherConfig {
	return slicer.WatcherConfig{HeartbeatLease: o.heartbeatLease, Source: slicer.Source(o.source)}
}

// components are the log components /loglevel controls.
var components = []string{"agent", "slicer", "policy", "datapath", "monitor", "http", "client-go"}

// statusSource is what the HTTP API needs of the agent.
type statusSource interface {
	Status() agent.Status
}

// run is the whole program. When started is not nil it receives the HTTP server's address.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, started chan<- string) error {
	o, err := parseFlags(args, stderr, os.Getenv)
	if err != nil {
		return err
	}
	levels := observe.NewLogLevels(o.logLevel, components...)
	// Each component's level (LogLevels) decides what reaches the handler.
	base := slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug})
	logger := levels.Logger("agent", base)
	klog.SetSlogLogger(slog.New(levels.Handler("client-go", base)))

	restCfg, err := kubeconfig.Load(o.kubeconfig)
	if err != nil {
		return err
	}
	restCfg = rest.CopyConfig(restCfg)
	restCfg.UserAgent = "ceskit-agent/" + o.nodeName

	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register runtime metrics: %w", err)
		}
	}
	flowMetrics, err := observe.NewFlowMetrics(reg)
	if err != nil {
		return err
	}
	var audit io.Writer
	switch o.auditLog {
	case "":
	case "-":
		audit = stdout
	default:
		f, err := os.OpenFile(o.auditLog, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o640)
		if err != nil {
			return fmt.Errorf("flag --audit-log: %w", err)
		}
		defer f.Close()
		audit = f
	}
	sinks := []observe.Sink{flowMetrics}
	if audit != nil {
		sinks = append(sinks, observe.NewJSONLinesSink(audit))
	}

	cfg := agent.Config{
		Sink: observe.MultiSink(sinks...), Registry: reg, Netns: o.netns,
		Policy:            policy.Config{Mode: o.policyMode},
		Watcher:           o.watcherConfig(),
		DiscoveryInterval: o.discovery,
		Logger:            slog.New(base), LogLevels: levels,
	}
	dp, reason, err := loadDatapath(o, levels.Logger("datapath", base), reg)
	if err != nil {
		return err
	}
	if dp != nil {
		defer func() {
			if err := dp.d.Close(); err != nil {
				logger.Warn("close datapath", "error", err)
			}
		}()
		cfg.Datapath, cfg.DatapathMetrics = dp.d, dp.metrics
	} else {
		cfg.NoDatapathReason = reason
		logger.Warn("running without a datapath: computing and reporting only", "reason", reason)
	}
	a, err := agent.New(restCfg, o.nodeName, cfg)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", o.metricsAddr)
	if err != nil {
		return fmt.Errorf("flag --metrics-addr: %w", err)
	}
	var runErr atomic.Pointer[error]
	srv := &http.Server{
		Handler:           newMux(a, &runErr, reg, levels, levels.Logger("http", base)),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(levels.Handler("http", base), slog.LevelWarn),
	}
	logger.Info("serving", "addr", "http://"+ln.Addr().String(), "paths", "/metrics /healthz /readyz /status /loglevel")
	if started != nil {
		started <- ln.Addr().String()
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			cancel(fmt.Errorf("serve http: %w", err))
		}
	})
	wg.Go(func() {
		<-ctx.Done()
		shutdownCtx, done := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer done()
		if err := srv.Shutdown(shutdownCtx); err != nil {
			logger.Warn("shut down http server", "error", err)
		}
	})
	wg.Go(func() {
		if err := a.Run(ctx); err != nil {
			runErr.Store(&err)
			cancel(err)
		}
	})
	wg.Wait()
	if err := context.Cause(ctx); !errors.Is(err, context.Canceled) {
		return err
	}
	logger.Info("stopped")
	return nil
}

// loadedDatapath is a datapath and the metrics it reports to.
type loadedDatapath struct {
	d       *datapath.Datapath
	metrics *observe.DatapathMetrics
}

// loadDatapath loads the datapath unless --no-datapath. Without root or kernel support it returns
// nil and the reason (the agent then runs in no-datapath mode); other errors are returned.
func loadDatapath(o *options, logger *slog.Logger, reg prometheus.Registerer) (*loadedDatapath, string, error) {
	if o.noDatapath {
		return nil, "disabled by --no-datapath", nil
	}
	m, err := observe.NewDatapathMetrics(reg)
	if err != nil {
		return nil, "", err
	}
	d, err := datapath.Load(datapath.Spec{PinPath: o.bpfPinPath, ReportNewFlows: o.reportAllowed, Metrics: m, Logger: logger})
	if errors.Is(err, datapath.ErrNotSupported) {
		reason := "BPF not supported here: " + err.Error()
		if os.Geteuid() != 0 {
			reason = "not running as root (needs CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN): " + err.Error()
		}
		return nil, reason, nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("load datapath: %w", err)
	}
	return &loadedDatapath{d: d, metrics: m}, "", nil
}

// newMux serves the HTTP API described in the package comment.
func newMux(a statusSource, runErr *atomic.Pointer[error], reg *prometheus.Registry, levels *observe.LogLevels, logger *slog.Logger) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		Registry: reg,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := runErr.Load(); err != nil {
			http.Error(w, "agent failed: "+(*err).Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		st := a.Status()
		switch {
		case !st.Synced:
			http.Error(w, "not ready: informers or the slice watcher not synced yet", http.StatusServiceUnavailable)
		case !st.Ready:
			http.Error(w, "not ready: local endpoints not synced yet", http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, "ok")
		}
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		b, err := json.MarshalIndent(a.Status(), "", "  ")
		if err != nil {
			logger.Error("encode status", "error", err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(append(b, '\n'))
	})
	mux.Handle("/loglevel", levels)
	return mux
}
