package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/client-go/rest"

	"github.com/ceskit/ceskit/datapath"
	"github.com/ceskit/ceskit/examples/agent/agent"
	"github.com/ceskit/ceskit/identity"
	"github.com/ceskit/ceskit/internal/testenv"
	"github.com/ceskit/ceskit/observe"
	"github.com/ceskit/ceskit/slicer"
)

// Lab timings.
const (
	syncTimeout      = 2 * time.Minute       // components must sync within this
	drainTimeout     = 5 * time.Second       // at the end, wait this long for changes on their way
	probeTimeout     = time.Second           // a probe's connection and exchange
	slowProbeTimeout = 3 * time.Second       // the retry of an allowed probe that timed out
	checkEvery       = time.Second           // watchers' source checks
	gcInterval       = 2 * time.Second       // identity GC passes
	gcGrace          = 10 * time.Second      // identity GC grace period
	pollEvery        = 50 * time.Millisecond // waits for components
	labHolder        = "lab-simulator"       // the allocator's holder record
	labUserAgent     = "ceskit-lab"          // every client's user agent
)

// lab is one embedded run: the control plane, the simulation and every component. Its status
// methods are safe for concurrent use.
type lab struct {
	o   *options
	log *slog.Logger
	out *printer

	cleanups []cleanup // run in reverse order by cleanup

	restCfg  *rest.Config
	client   *slicer.Client
	ids      *identity.Client
	reg      *prometheus.Registry
	idm      *idCounter
	ctrl     *slicer.Controller // nil in mode cep
	alloc    *identity.CRDAllocator
	gc       *identity.GC
	watchers []*nodeWatcher
	agent    *agent.Agent
	net      *netLab // nil without the datapath
	dp       *datapath.Datapath
	dpm      *observe.DatapathMetrics
	dpReason string
	sim      *simulator
	track    *tracker
	flows    *flowRing
	applied  []string
	addr     string // the status page's address

	setupStart time.Time
	// built is set once the fields above are, before the HTTP handlers read them.
	built atomic.Bool

	mu         sync.Mutex // guards the fields below
	setupTime  time.Duration
	phase      string
	start      time.Time // the simulation's start
	seedTime   time.Duration
	churnStart time.Time
	churnBase  int64 // endpoint changes when churn started
	series     []Point
	lastSample time.Time
	lastWrites int64
	lastCEP    int64
	probe      ProbeStatus
	errs       []string
	final      *Status
}

type cleanup struct {
	what string
	fn   func() error
}

// nodeWatcher is a slicer.Watcher standing in for a node.
type nodeWatcher struct {
	name string
	w    *slicer.Watcher
}

// runEmbedded runs the lab on an embedded control plane.
func runEmbedded(ctx context.Context, o *options, out *printer, logger *slog.Logger, started chan<- string) error {
	l := &lab{o: o, log: logger, out: out, flows: &flowRing{}, phase: "starting", setupStart: time.Now()}
	defer l.cleanup()
	return l.run(ctx, started)
}

func (l *lab) addCleanup(what string, fn func() error) {
	l.cleanups = append(l.cleanups, cleanup{what, fn})
}

// cleanup undoes the set-up in reverse order, once, and prints what it did.
func (l *lab) cleanup() {
	if len(l.cleanups) == 0 {
		return
	}
	var done []string
	for i := len(l.cleanups) - 1; i >= 0; i-- {
		c := l.cleanups[i]
		if err := c.fn(); err != nil {
			l.out.Printf("lab: cleanup: %s: %v\n", c.what, err)
			continue
		}
		done = append(done, c.what)
	}
	l.cleanups = nil
	l.out.Printf("lab: cleaned up: %s\n", strings.Join(done, ", "))
}

func (l *lab) setPhase(p string) {
	l.mu.Lock()
	l.phase = p
	l.mu.Unlock()
}

func (l *lab) addError(err error) {
	l.mu.Lock()
	l.errs = append(l.errs, err.Error())
	l.mu.Unlock()
}

func (l *lab) run(ctx context.Context, started chan<- string) error {
	o := l.o
	if stale := removeStaleNetns(); len(stale) > 0 {
		l.out.Printf("lab: removed network namespaces a killed lab run left: %s\n", strings.Join(stale, " "))
	}

	// The control plane.
	crds, err := slicer.CRDs()
	if err != nil {
		return err
	}
	idCRDs, err := identity.CRDs()
	if err != nil {
		return err
	}
	crds = append(append(crds, idCRDs...), policyCRDs()...)
	l.out.Printf("lab: starting kube-apiserver and etcd from %s\n", testenv.BinDir())
	t0 := time.Now()
	cp, err := testenv.Start(testenv.Options{CRDs: crds})
	if err != nil {
		return err
	}
	l.addCleanup("control plane stopped", cp.Stop)
	l.out.Printf("lab: control plane up at %s in %s; CRDs installed: %s\n", cp.Config.Host, time.Since(t0).Round(100*time.Millisecond), crdNames(crds))
	l.restCfg = rest.CopyConfig(cp.Config)
	l.restCfg.UserAgent = labUserAgent
	if kc, err := testenv.Kubeconfig(cp.Config); err == nil {
		if f, err := os.CreateTemp("", "ceskit-lab-*.kubeconfig"); err == nil {
			_, werr := f.Write(kc)
			f.Close()
			l.addCleanup("kubeconfig removed", func() error { return os.Remove(f.Name()) })
			if werr == nil {
				l.out.Printf("lab: kubectl reaches it while the lab runs: bin/kubectl --kubeconfig %s get ces\n", f.Name())
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return nil
	}

	if err := l.newClients(); err != nil {
		return err
	}
	l.setupDatapath()

	// The HTTP server serves from now on, until run returns.
	srvCtx, stopServer := context.WithCancel(context.WithoutCancel(ctx))
	serveDone, err := serve(srvCtx, o.listen, l.status, l.reg, l.log, func(addr string) {
		l.addr = addr
		l.out.Printf("lab: status page http://%s/  (JSON: /api/status, metrics: /metrics)\n", addr)
		if started != nil {
			started <- addr
		}
	})
	if err != nil {
		stopServer()
		return err
	}
	defer func() {
		stopServer()
		<-serveDone
	}()

	// Components run under compCtx until the report is out; the simulation under simCtx.
	compCtx, stopComponents := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer func() {
		stopComponents()
		wg.Wait()
	}()
	simCtx, endSim := context.WithCancelCause(ctx)
	defer endSim(nil)
	fail := func(what string, err error) {
		if err == nil || compCtx.Err() != nil {
			return
		}
		err = fmt.Errorf("%s: %w", what, err)
		l.addError(err)
		l.log.Error("component failed", "error", err)
		endSim(err)
	}

	if err := l.createInfra(ctx); err != nil {
		return err
	}
	if err := l.startComponents(compCtx, &wg, fail); err != nil {
		return err
	}
	if err := l.waitSynced(simCtx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if err := l.createLabPods(simCtx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	setup := time.Since(l.setupStart)
	l.mu.Lock()
	l.setupTime = setup
	l.mu.Unlock()
	l.out.Printf("lab: set up in %s; seeding %d pods in %d namespaces on %d nodes (mode %s)\n",
		setup.Round(100*time.Millisecond), o.sim.Pods, o.sim.Namespaces, o.sim.Nodes, o.mode)

	// The simulation: seeding, then --duration of churn.
	probeCtx, stopProbes := context.WithCancel(simCtx)
	defer stopProbes()
	wg.Go(func() { l.probeLoop(compCtx, probeCtx) })
	now := time.Now()
	l.mu.Lock()
	l.start, l.lastSample, l.phase = now, now, "seeding"
	l.mu.Unlock()
	var sampler sync.WaitGroup
	samplerCtx, stopSampler := context.WithCancel(compCtx)
	sampler.Go(func() { l.sampleLoop(samplerCtx) })
	l.sim.seed(simCtx)
	l.mu.Lock()
	l.seedTime = time.Since(l.start)
	l.churnStart, l.churnBase, l.phase = time.Now(), l.sim.changes(), "churning"
	l.mu.Unlock()
	if simCtx.Err() == nil {
		l.out.Printf("lab: seeded %d pods in %s; churning for %s\n", l.sim.seeded.Load(), l.seedTime.Round(time.Millisecond), durationText(o.duration))
	}
	runCtx := simCtx
	if o.duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(simCtx, o.duration)
		defer cancel()
	}
	l.sim.churn(runCtx)
	stopProbes()
	stopSampler()
	sampler.Wait()

	// The report.
	l.setPhase("finishing")
	if ctx.Err() == nil {
		l.drain(ctx)
		l.probeRound(ctx)
	}
	l.sample(time.Now())
	st := l.status()
	st.Phase = "done"
	l.mu.Lock()
	l.final = &st
	l.mu.Unlock()
	printReport(l.out, st)
	var reportErr error
	if o.report != "" {
		reportErr = writeReport(o.report, st)
		if reportErr == nil {
			l.out.Printf("lab: report written to %s\n", o.report)
		}
	}

	// Stop everything but the status page, then linger.
	stopComponents()
	wg.Wait()
	l.cleanup()
	if o.linger > 0 && ctx.Err() == nil {
		l.out.Printf("lab: serving the final status page at http://%s/ for %s (Ctrl-C ends)\n", l.addr, o.linger)
		select {
		case <-ctx.Done():
		case <-time.After(o.linger):
		}
	}
	if reportErr != nil {
		return reportErr
	}
	if err := context.Cause(simCtx); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

func durationText(d time.Duration) string {
	if d == 0 {
		return "ever (Ctrl-C ends)"
	}
	return d.String()
}

func crdNames(crds []*apiextensionsv1.CustomResourceDefinition) string {
	var names []string
	for _, c := range crds {
		names = append(names, c.Spec.Names.Plural)
	}
	return strings.Join(names, " ")
}

// newClients builds the API clients and the metrics registry.
func (l *lab) newClients() error {
	var err error
	if l.client, err = slicer.NewClient(l.restCfg); err != nil {
		return err
	}
	if l.ids, err = identity.NewClient(l.restCfg); err != nil {
		return err
	}
	l.reg = prometheus.NewRegistry()
	if err := registerRuntime(l.reg); err != nil {
		return err
	}
	im, err := observe.NewIdentityMetrics(l.reg)
	if err != nil {
		return err
	}
	l.idm = &idCounter{next: im}
	return nil
}

func registerRuntime(reg *prometheus.Registry) error {
	for _, c := range []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register runtime metrics: %w", err)
		}
	}
	return nil
}

// setupDatapath loads the datapath and builds the network namespaces where the process may, or
// says why not (the agent then runs without a datapath).
func (l *lab) setupDatapath() {
	switch {
	case l.o.noDatapath:
		l.dpReason = "disabled by --no-datapath"
	default:
		l.dpReason = privilegeProblem()
	}
	if l.dpReason != "" {
		l.out.Printf("lab: no datapath: %s; the agent runs in no-datapath mode and the policy engine decides the probes\n", l.dpReason)
		return
	}
	dpm, err := observe.NewDatapathMetrics(l.reg)
	if err != nil {
		l.dpReason = "datapath metrics: " + err.Error()
		return
	}
	dp, err := datapath.Load(datapath.Spec{ReportNewFlows: true, Metrics: dpm, Logger: l.log.With("component", "datapath")})
	if err != nil {
		l.dpReason = "load datapath: " + err.Error()
		l.out.Printf("lab: no datapath: %s; the agent runs in no-datapath mode\n", l.dpReason)
		return
	}
	n, err := newNetLab(labPods)
	if err != nil {
		_ = dp.Close()
		l.dpReason = "build network namespaces: " + err.Error()
		l.out.Printf("lab: no datapath: %s; the agent runs in no-datapath mode\n", l.dpReason)
		return
	}
	l.dp, l.net = dp, n
	l.dpm = dpm
	l.addCleanup(fmt.Sprintf("network namespaces and veths deleted (%s)", strings.Join(n.Namespaces(), " ")), n.Close)
	l.addCleanup("datapath closed (programs detached, maps freed)", dp.Close)
	l.out.Printf("lab: datapath loaded; network namespaces %s\n", strings.Join(n.Namespaces(), " "))
}
