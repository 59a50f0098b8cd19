// Command operator runs ceskit's CiliumEndpointSlice controller ([slicer.Controller]) and identity
// garbage collector ([identity.GC]) as a stand-alone operator, with Prometheus metrics
// ([observe.SlicerMetrics], [observe.IdentityMetrics]) and a small HTTP API on two listeners.
// --listen (default 127.0.0.1:9963; the Deployment uses :9963 for the kubelet and Prometheus)
// serves metrics and probes only:
//
//	GET  /metrics                  Prometheus metrics (slicer, identity GC, leader, Go runtime, process)
//	GET  /healthz                  liveness: 200 "ok" unless informers are wedged or writers failed to stop
//	GET  /readyz                   readiness: writers synced and not Degraded, or a follower standing by
//
// --admin-listen (default 127.0.0.1:9965, also in the Deployment; empty: off) serves what shows
// slice contents or writes, without authentication:
//
//	GET  /status                   JSON: this replica (identity, leader, leading) and Controller.Status
//	GET  /diff                     JSON of Controller.Diff (what shadow mode would write)
//	POST /resync?namespace=NS      Controller.Resync; JSON {"namespace":..,"outOfSync":n}
//
// Several replicas may run: with --leader-elect (the default outside the lab and shadow mode)
// only the one holding a coordination.k8s.io Lease runs the writers, and it stops them before
// any other replica can take the Lease over (see election.go for the argument).
//
// It reaches a cluster through --kubeconfig, $KUBECONFIG, the in-cluster service account or
// ~/.kube/config, in that order. The lab that ran here with --embedded (a throw-away control
// plane, simulated churn, propagation measurements) is examples/lab now: `make lab`.
//
// Every [slicer.Config] field has a flag, except Logger, Metrics, Clock and IdentityFunc; the
// endpoint source is "ciliumendpoints" only, since "pods" needs an identity function this example
// does not have. deploy/ holds the RBAC and Deployment manifests. See README.md for every flag.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/ceskit/ceskit/identity"
	"github.com/ceskit/ceskit/internal/discovery"
	"github.com/ceskit/ceskit/internal/kubeconfig"
	"github.com/ceskit/ceskit/slicer"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, a second one kills the process at once.
	context.AfterFunc(ctx, stop)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case err != nil:
		fmt.Fprintln(os.Stderr, "operator:", err)
		os.Exit(1)
	}
}

// options are the parsed command line.
type options struct {
	kubeconfig  string
	installCRDs bool
	listen      string
	adminListen string
	logLevel    string
	debugLogs   bool

	source             string
	rateLimits         string
	priorityNamespaces string
	cfg                slicer.Config // fields without a string form are set directly

	leaderElect bool
	election    electionConfig
	syncTimeout time.Duration

	gcEnabled bool
	gc        identity.GCConfig // Logger, Metrics, Clock, InUse and IgnoreEndpoints are not flags

	embedded bool // the lab moved to examples/lab: refused with a pointer there
	duration time.Duration
}

// parseFlags parses args into options and the slicer configuration they describe.
func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("operator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: operator [flags]\n\nRuns ceskit's CiliumEndpointSlice controller. A zero value means the slicer's default.\n\nFlags:")
		fs.PrintDefaults()
	}

	// Where and how.
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, else the in-cluster service account, else ~/.kube/config)")
	fs.BoolVar(&o.installCRDs, "install-crds", false, "install ceskit's CiliumEndpoint and CiliumEndpointSlice CRDs first (never on a cluster that runs Cilium: it owns them)")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:9963", "address of the HTTP server for /metrics, /healthz and /readyz")
	fs.StringVar(&o.adminListen, "admin-listen", "127.0.0.1:9965", "address of the unauthenticated HTTP server for /status, /diff and POST /resync; keep it on loopback (empty: off)")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&o.debugLogs, "debug-logs", false, "debug logging with source file and line (overrides --log-level)")

	// slicer.Config, one flag per field.
	c := &o.cfg
	fs.StringVar(&o.source, "source", string(slicer.SourceCiliumEndpoints), `endpoint source; this example supports only "ciliumendpoints" ("pods" needs an identity function)`)
	fs.IntVar(&c.MaxEndpointsPerSlice, "max-endpoints-per-slice", 0, "endpoints per slice, 1-1000 (0: 100, Cilium's ces-max-ciliumendpoints-per-ces)")
	fs.BoolVar(&c.GroupByIdentity, "group-by-identity", false, "keep the endpoints of one security identity together (Cilium's \"identity\" slice mode)")
	fs.DurationVar(&c.BatchMinDelay, "batch-min-delay", 0, "least time between a slice's first pending change and its write (0: write idle slices at once)")
	fs.DurationVar(&c.BatchMaxDelay, "batch-max-delay", 0, "cap of the adaptive coalescing window, batch-min-delay to 1m (0: 100ms)")
	fs.Float64Var(&c.WriteQPS, "write-qps", 0, "fixed API write rate; replaces --ces-rate-limits when set (0: use the node-count table)")
	fs.IntVar(&c.WriteBurst, "write-burst", 0, "burst for --write-qps (0: 2 x write-qps)")
	fs.StringVar(&o.rateLimits, "ces-rate-limits", "", `node-count write-rate table in Cilium's JSON form, e.g. '[{"nodes":0,"limit":10,"burst":20},{"nodes":100,"limit":50,"burst":100}]' (empty: that default)`)
	fs.IntVar(&c.Workers, "workers", 0, "concurrent slice writers, 1-64 (0: 4)")
	fs.StringVar(&o.priorityNamespaces, "priority-namespaces", "", "comma-separated namespaces served from the priority queue (as are those annotated cilium.io/ces-namespace=priority)")
	fs.IntVar(&c.PriorityWeight, "priority-weight", 0, "priority slices served per standard slice while both queues hold work, 1-100 (0: 4)")
	fs.IntVar(&c.ErrorThreshold, "error-threshold", 0, "consecutive failed syncs before the controller reports Degraded, 1-10000 (0: 15)")
	fs.DurationVar(&c.RetryBaseDelay, "retry-base-delay", 0, "first backoff after a failed slice sync (0: 10ms)")
	fs.DurationVar(&c.RetryMaxDelay, "retry-max-delay", 0, "backoff cap (0: 10s)")
	fs.IntVar(&c.ConflictRetries, "conflict-retries", 0, "immediate re-read-and-apply attempts after a 409 Conflict, 0-20 (0: 3)")
	fs.DurationVar(&c.ResyncPeriod, "resync-period", 0, "mean period of the anti-entropy pass, 1s-24h (0: 5m)")
	fs.Float64Var(&c.CompactionThreshold, "compaction-threshold", 0, "compact namespaces whose slices are on average less full than this fraction, 0-1 (0: 0.5)")
	fs.BoolVar(&c.DisableCompaction, "disable-compaction", false, "never compact sparse slices")
	fs.BoolVar(&c.Shadow, "shadow", false, "compute slices and the diff against the existing ones, write nothing (for managed AKS; see /diff); needs no leader and runs no identity GC")
	fs.StringVar(&c.HeartbeatLease, "heartbeat-lease", "", `"namespace/name" of the Lease the controller renews for node-side watchers; "-" disables it (empty: `+slicer.DefaultHeartbeatLease+`)`)
	fs.DurationVar(&c.HeartbeatInterval, "heartbeat-interval", 0, "renewal period of --heartbeat-lease, 1s-5m (0: 5s)")

	// Leader election.
	e := &o.election
	fs.BoolVar(&o.leaderElect, "leader-elect", true, "run the writers only while holding the election Lease, so that several replicas never write at once (off unless set with --shadow)")
	fs.StringVar(&e.Namespace, "leader-elect-namespace", defaultElectionNamespace, "namespace of the election Lease")
	fs.StringVar(&e.Name, "leader-elect-name", defaultElectionName, "name of the election Lease")
	fs.DurationVar(&e.LeaseDuration, "leader-elect-lease-duration", defaultLeaseDuration, "how long followers wait after the last renewal they saw before taking over; whole seconds")
	fs.DurationVar(&e.RenewDeadline, "leader-elect-renew-deadline", defaultRenewDeadline, "the leader stops its writers when it has not renewed the Lease for this long; less than the lease duration")
	fs.DurationVar(&e.RetryPeriod, "leader-elect-retry-period", defaultRetryPeriod, "period of renewals and of followers' attempts")
	fs.DurationVar(&o.syncTimeout, "cache-sync-timeout", 3*time.Minute, "/healthz fails when the writers' caches have not synced this long after they started")

	// Identity garbage collection (identity.GCConfig).
	g := &o.gc
	fs.BoolVar(&o.gcEnabled, "identity-gc", true, "run the CiliumIdentity garbage collector with the writers (off unless set with --shadow)")
	fs.StringVar(&g.Namespace, "identity-gc-namespace", "", "namespace of the allocators' claim and holder Leases (empty: kube-system)")
	fs.DurationVar(&g.Interval, "identity-gc-interval", 0, "time between collection passes (0: 5s)")
	fs.DurationVar(&g.MinAge, "identity-gc-min-age", 0, "identities younger than this are never marked (0: 5s)")
	fs.DurationVar(&g.GracePeriod, "identity-gc-grace-period", 0, "how long an unused identity stays marked before it is deleted (0: 30s; Cilium: identity-heartbeat-timeout)")
	fs.DurationVar(&g.ClaimGracePeriod, "identity-gc-claim-grace-period", 0, "how long claim Leases of deleted identities and expired holder records are kept (0: 10m)")
	fs.Float64Var(&g.WriteQPS, "identity-gc-write-qps", 0, "collector writes (marks, unmarks, deletions) per second (0: 250)")
	fs.IntVar(&g.Workers, "identity-gc-workers", 0, "collector writes in flight (0: 16)")

	fs.DurationVar(&o.duration, "duration", 0, "stop after this long (0: run until SIGINT or SIGTERM)")
	fs.BoolVar(&o.embedded, "embedded", false, "removed: the lab (embedded control plane, simulated churn) is examples/lab; run make lab")

	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	switch slicer.Source(o.source) {
	case slicer.SourceCiliumEndpoints:
		c.Source = slicer.SourceCiliumEndpoints
	case slicer.SourcePods:
		return nil, errors.New(`flag --source=pods: slim mode needs slicer.Config.IdentityFunc, which this example does not provide; ` +
			`use "ciliumendpoints", or build your own binary that sets IdentityFunc`)
	default:
		return nil, fmt.Errorf("flag --source=%q: this example supports only %q", o.source, slicer.SourceCiliumEndpoints)
	}
	if o.rateLimits != "" {
		steps, err := slicer.ParseRateLimits(o.rateLimits)
		if err != nil {
			return nil, fmt.Errorf("flag --ces-rate-limits: %w", err)
		}
		c.RateLimits = steps
	}
	for ns := range strings.SplitSeq(o.priorityNamespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			c.PriorityNamespaces = append(c.PriorityNamespaces, ns)
		}
	}
	if err := c.Validate(); err != nil {
		return nil, flagError(err)
	}

	if o.embedded {
		return nil, errors.New("flag --embedded: the lab moved to examples/lab: run `make lab` or `go run ./examples/lab` (see examples/lab/README.md)")
	}
	// Shadow mode writes nothing, so it needs neither a leader nor the collector (which writes).
	for _, f := range []struct {
		name string
		v    *bool
	}{{"leader-elect", &o.leaderElect}, {"identity-gc", &o.gcEnabled}} {
		switch {
		case c.Shadow && set[f.name] && *f.v:
			return nil, fmt.Errorf("flag --%s with --shadow: shadow mode writes nothing, so it needs no leader and runs no identity GC", f.name)
		case !set[f.name] && c.Shadow:
			*f.v = false
		}
	}
	if o.leaderElect {
		if err := o.election.validate(); err != nil {
			return nil, err
		}
	}
	if err := o.gc.Validate(); err != nil {
		return nil, gcFlagError(err)
	}
	if o.syncTimeout <= 0 {
		return nil, fmt.Errorf("flag --cache-sync-timeout=%s: must be positive", o.syncTimeout)
	}
	if o.duration < 0 {
		return nil, fmt.Errorf("flag --duration=%s: must not be negative", o.duration)
	}
	if _, err := parseLevel(o.logLevel); err != nil {
		return nil, err
	}
	if err := checkListeners(o.listen, o.adminListen); err != nil {
		return nil, err
	}
	return o, nil
}

// checkListeners checks that --listen and --admin-listen are host:port addresses and that the two
// servers do not share a port (which would either fail to bind or serve both on one address).
func checkListeners(listen, admin string) error {
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("flag --listen=%q: %w", listen, err)
	}
	if admin == "" {
		return nil
	}
	_, adminPort, err := net.SplitHostPort(admin)
	if err != nil {
		return fmt.Errorf("flag --admin-listen=%q: %w", admin, err)
	}
	if adminPort == port && port != "0" {
		return fmt.Errorf("flag --admin-listen=%q: port %s is --listen's (%q); the admin endpoints need their own listener", admin, port, listen)
	}
	return nil
}

// isLoopback reports whether the host of addr (host:port) is a loopback address or "localhost".
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// configFlags maps slicer.Config field names, as a *slicer.ConfigError names them, to flags.
var configFlags = map[string]string{
	"MaxEndpointsPerSlice": "max-endpoints-per-slice",
	"Source":               "source",
	"IdentityFunc":         "source",
	"GroupByIdentity":      "group-by-identity",
	"BatchMinDelay":        "batch-min-delay",
	"BatchMaxDelay":        "batch-max-delay",
	"WriteQPS":             "write-qps",
	"WriteBurst":           "write-burst",
	"RateLimits":           "ces-rate-limits",
	"Workers":              "workers",
	"PriorityNamespaces":   "priority-namespaces",
	"PriorityWeight":       "priority-weight",
	"ErrorThreshold":       "error-threshold",
	"RetryBaseDelay":       "retry-base-delay",
	"RetryMaxDelay":        "retry-max-delay",
	"ConflictRetries":      "conflict-retries",
	"ResyncPeriod":         "resync-period",
	"CompactionThreshold":  "compaction-threshold",
	"DisableCompaction":    "disable-compaction",
	"Shadow":               "shadow",
	"HeartbeatLease":       "heartbeat-lease",
	"HeartbeatInterval":    "heartbeat-interval",
}

// gcFlags maps identity.GCConfig field names, as an *identity.ConfigError names them, to flags.
var gcFlags = map[string]string{
	"Namespace":        "identity-gc-namespace",
	"Interval":         "identity-gc-interval",
	"MinAge":           "identity-gc-min-age",
	"GracePeriod":      "identity-gc-grace-period",
	"ClaimGracePeriod": "identity-gc-claim-grace-period",
	"WriteQPS":         "identity-gc-write-qps",
	"Workers":          "identity-gc-workers",
}

// gcFlagError names the flag behind an *identity.ConfigError.
func gcFlagError(err error) error {
	var ce *identity.ConfigError
	if errors.As(err, &ce) {
		if name, ok := gcFlags[ce.Field]; ok {
			return fmt.Errorf("flag --%s: %w", name, err)
		}
	}
	return err
}

// flagError names the flag behind a *slicer.ConfigError.
func flagError(err error) error {
	var ce *slicer.ConfigError
	if !errors.As(err, &ce) {
		return err
	}
	field, _, _ := strings.Cut(ce.Field, "[")
	if name, ok := configFlags[field]; ok {
		return fmt.Errorf("flag --%s: %w", name, err)
	}
	return err
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("flag --log-level=%q: want debug, info, warn or error", s)
	}
	return l, nil
}

// newLogger builds the process logger and routes client-go's (klog) and controller-runtime's
// (envtest) logs through it.
func newLogger(o *options, stderr io.Writer) *slog.Logger {
	level, _ := parseLevel(o.logLevel)
	hopts := &slog.HandlerOptions{Level: level}
	if o.debugLogs {
		hopts.Level, hopts.AddSource = slog.LevelDebug, true
	}
	h := slog.NewTextHandler(stderr, hopts)
	logger := slog.New(h)
	klog.SetSlogLogger(logger)
	ctrllog.SetLogger(logr.FromSlogHandler(h))
	return logger
}

// run is the whole program; it returns when ctx ends, --duration passes or a component fails.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	logger := newLogger(o, stderr)

	restCfg, err := connect(ctx, o)
	if err != nil {
		return err
	}
	op, err := newOperator(restCfg, o, logger)
	if err != nil {
		return err
	}

	servers, err := listen(o, op, logger)
	if err != nil {
		return err
	}

	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	fail := func(err error) {
		if err != nil && ctx.Err() == nil {
			cancel(err)
		}
	}

	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Go(func() {
			if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
				fail(fmt.Errorf("serve http on --%s: %w", s.flag, err))
			}
		})
		wg.Go(func() {
			<-ctx.Done()
			shutdownCtx, done := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer done()
			if err := s.srv.Shutdown(shutdownCtx); err != nil {
				logger.Warn("shut down http server", "flag", s.flag, "error", err)
			}
		})
	}
	wg.Go(func() { fail(op.Run(ctx)) })
	wg.Wait()

	if err := context.Cause(ctx); !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	logger.Info("stopped")
	return nil
}

// server is one HTTP listener of the operator and the flag that set its address.
type server struct {
	flag string
	ln   net.Listener
	srv  *http.Server
}

// listen opens --listen and, unless empty, --admin-listen; on an error it closes what it opened.
func listen(o *options, op *operator, logger *slog.Logger) ([]server, error) {
	newServer := func(flag, addr string, h http.Handler, paths string) (server, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return server{}, fmt.Errorf("flag --%s: %w", flag, err)
		}
		logger.Info("serving", "flag", flag, "addr", "http://"+ln.Addr().String(), "paths", paths)
		return server{flag: flag, ln: ln, srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		}}, nil
	}
	public, err := newServer("listen", o.listen, newMux(op, op.reg, logger), "/metrics /healthz /readyz")
	if err != nil {
		return nil, err
	}
	if o.adminListen == "" {
		return []server{public}, nil
	}
	admin, err := newServer("admin-listen", o.adminListen, newAdminMux(op, logger), "/status /diff /resync")
	if err != nil {
		public.ln.Close()
		return nil, err
	}
	if !isLoopback(o.adminListen) {
		logger.Warn("the admin endpoints (/status, /diff, POST /resync) have no authentication and listen beyond loopback",
			"flag", "admin-listen", "addr", o.adminListen)
	}
	return []server{public, admin}, nil
}

// connect returns the REST config of the cluster from loadRESTConfig, with the CRDs installed
// when asked.
func connect(ctx context.Context, o *options) (*rest.Config, error) {
	cfg, err := kubeconfig.Load(o.kubeconfig)
	if err != nil {
		return nil, err
	}
	if o.installCRDs {
		if err := slicer.InstallCRDs(ctx, cfg); err != nil {
			return nil, fmt.Errorf("install CRDs: %w", err)
		}
		if o.gcEnabled {
			if err := identity.InstallCRDs(ctx, cfg); err != nil {
				return nil, fmt.Errorf("install CRDs: %w", err)
			}
		}
	}
	return cfg, nil
}

// checkCRDs fails early, with advice, when the API server does not serve CiliumEndpoints,
// CiliumEndpointSlices or, for the collector, CiliumIdentities; the writers would otherwise wait
// for their caches for ever.
func checkCRDs(client *slicer.Client, gc bool) error {
	type resource struct{ gv, name, advice string }
	need := []resource{
		{"cilium.io/v2", "ciliumendpoints", "install Cilium with CiliumEndpointSlices enabled, or pass --install-crds on a cluster without Cilium"},
		{"cilium.io/v2alpha1", "ciliumendpointslices", "install Cilium with CiliumEndpointSlices enabled, or pass --install-crds on a cluster without Cilium"},
	}
	if gc {
		need = append(need, resource{"cilium.io/v2", "ciliumidentities", "pass --identity-gc=false where identities are not CRDs (kvstore mode), or --install-crds on a cluster without Cilium"})
	}
	for _, want := range need {
		ok, err := discovery.Served(client.Kube.Discovery(), want.gv, want.name)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("the API server does not serve %s (%s): %s", want.name, want.gv, want.advice)
		}
	}
	return nil
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
