package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ceskit/ceskit/internal/discovery"
	"github.com/ceskit/ceskit/observe"
	"github.com/ceskit/ceskit/slicer"
)

// readOnly is an HTTP transport wrapper that lets reads (GET, HEAD: list, watch, discovery)
// through and refuses every other request, counting them. Attached to a cluster, the lab's
// clients go through it, so that nothing it runs can write.
type readOnly struct {
	refused atomic.Int64
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (ro *readOnly) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.Method == http.MethodGet || req.Method == http.MethodHead {
			return rt.RoundTrip(req)
		}
		ro.refused.Add(1)
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("the lab is attached read-only: refused %s %s", req.Method, req.URL.Path)
	})
}

// attached is a run against an existing cluster.
type attached struct {
	o        *options
	host     string
	ro       *readOnly
	ctrl     *slicer.Controller
	watchers []*nodeWatcher

	mu    sync.Mutex
	start time.Time
	phase string
	final *Status
}

// runAttach attaches read-only to the cluster of --kubeconfig: the controller in shadow mode and
// the watchers, until --duration passes or ctx ends; then it reports what the controller would
// write.
func runAttach(ctx context.Context, o *options, out *printer, logger *slog.Logger, started chan<- string) error {
	cfg, err := loadRESTConfig(o.kubeconfig)
	if err != nil {
		return err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = labUserAgent + " (read-only)"
	a := &attached{o: o, host: cfg.Host, ro: &readOnly{}, phase: "starting"}
	cfg.Wrap(a.ro.wrap)
	client, err := slicer.NewClient(cfg)
	if err != nil {
		return err
	}
	if err := checkCRDs(client); err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	if err := registerRuntime(reg); err != nil {
		return err
	}
	sm, err := observe.NewSlicerMetrics(reg)
	if err != nil {
		return err
	}
	wm, err := observe.NewWatcherMetrics(reg)
	if err != nil {
		return err
	}
	scfg := o.sliceConfig()
	scfg.Logger, scfg.Metrics = logger.With("component", "slicer"), sm
	if a.ctrl, err = slicer.New(client, scfg); err != nil {
		return err
	}
	// Cilium's operator owns the slices on AKS and publishes no ceskit heartbeat: trust them.
	wcfg := slicer.WatcherConfig{HeartbeatLease: "-", CheckInterval: checkEvery, Metrics: wm}
	for i := range o.watchers {
		nw := &nodeWatcher{name: fmt.Sprintf("node-watcher-%d", i)}
		c := wcfg
		c.Logger = logger.With("component", nw.name)
		if nw.w, err = slicer.NewWatcher(client, slicer.HandlerFuncs{}, c); err != nil {
			return err
		}
		a.watchers = append(a.watchers, nw)
	}
	out.Printf("lab: attached read-only to %s: slicer controller in shadow mode, %d watchers; nothing is written\n", cfg.Host, len(a.watchers))

	srvCtx, stopServer := context.WithCancel(context.WithoutCancel(ctx))
	serveDone, err := serve(srvCtx, o.listen, a.status, reg, logger, func(addr string) {
		out.Printf("lab: status page http://%s/  (JSON: /api/status, metrics: /metrics)\n", addr)
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

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if o.duration > 0 {
		var stop context.CancelFunc
		runCtx, stop = context.WithTimeout(runCtx, o.duration)
		defer stop()
	}
	compCtx, stopComponents := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	fail := func(what string, err error) {
		if err != nil && compCtx.Err() == nil {
			cancel(fmt.Errorf("%s: %w", what, err))
		}
	}
	wg.Go(func() { fail("slicer controller", a.ctrl.Run(compCtx)) })
	for _, nw := range a.watchers {
		wg.Go(func() { fail(nw.name, nw.w.Run(compCtx)) })
	}
	a.mu.Lock()
	a.start, a.phase = time.Now(), "watching"
	a.mu.Unlock()

	t := time.NewTicker(o.interval)
loop:
	for {
		select {
		case <-runCtx.Done():
			break loop
		case <-t.C:
			cs := a.ctrl.Status()
			out.Printf("t=%-5s synced=%t slices=%d desired=%d endpoints=%d out-of-sync=%d writes-refused=%d watchers=%s\n",
				fmt.Sprintf("%.0fs", time.Since(a.start).Seconds()), cs.Synced, cs.Slices, cs.DesiredSlices, cs.Endpoints, cs.OutOfSync,
				a.ro.refused.Load(), watcherSourcesOf(a.watchers))
		}
	}
	t.Stop()
	st := a.status()
	st.Phase = "done"
	a.mu.Lock()
	a.final = &st
	a.mu.Unlock()
	stopComponents()
	wg.Wait()
	printReport(out, st)
	if o.report != "" {
		if err := writeReport(o.report, st); err != nil {
			return err
		}
		out.Printf("lab: report written to %s\n", o.report)
	}
	if o.linger > 0 && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(o.linger):
		}
	}
	if err := context.Cause(runCtx); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

func (a *attached) status() Status {
	a.mu.Lock()
	if a.final != nil {
		st := *a.final
		a.mu.Unlock()
		return st
	}
	st := Status{Phase: a.phase, Mode: modeAttach, DurationSeconds: a.o.duration.Seconds()}
	if !a.start.IsZero() {
		st.ElapsedSeconds = round1(time.Since(a.start).Seconds())
	}
	a.mu.Unlock()
	st.Config = RunConfig{SliceSize: a.o.sliceConfig().MaxEndpointsPerSlice, Watchers: a.o.watchers, Interval: a.o.interval.Seconds(), ControlPlane: a.host}
	if st.Config.SliceSize == 0 {
		st.Config.SliceSize = 100
	}
	cs := a.ctrl.Status()
	st.Slices = sliceStatus(cs, st.Config.SliceSize)
	st.Writes = writeStatus(cs, 0, 0)
	st.Shadow = shadowStatus(a.ctrl.Diff())
	st.Shadow.WritesRefused = a.ro.refused.Load()
	st.Verdicts = map[string]uint64{}
	st.Watchers = []WatcherSummary{}
	for _, nw := range a.watchers {
		st.Watchers = append(st.Watchers, watcherSummary(nw.name, nw.w.Status()))
	}
	st.Series, st.Probes.Results, st.RecentFlows, st.Policy.Applied = []Point{}, []ProbeResult{}, []FlowSummary{}, []string{}
	return st
}

func watcherSourcesOf(ws []*nodeWatcher) string {
	count := map[string]int{}
	var names []string
	for _, nw := range ws {
		s := string(nw.w.Status().Source)
		if count[s] == 0 {
			names = append(names, s)
		}
		count[s]++
	}
	if len(names) == 0 {
		return "-"
	}
	slices.Sort(names)
	var parts []string
	for _, s := range names {
		parts = append(parts, fmt.Sprintf("%d×%s", count[s], s))
	}
	return strings.Join(parts, ",")
}

// loadRESTConfig reads the kubeconfig at path.
func loadRESTConfig(path string) (*rest.Config, error) {
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: path}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("flag --kubeconfig: %w", err)
	}
	return cfg, nil
}

// checkCRDs fails early, with advice, when the cluster does not serve CiliumEndpoints and
// CiliumEndpointSlices.
func checkCRDs(client *slicer.Client) error {
	for _, want := range []struct{ gv, name string }{
		{"cilium.io/v2", "ciliumendpoints"},
		{"cilium.io/v2alpha1", "ciliumendpointslices"},
	} {
		ok, err := discovery.Served(client.Kube.Discovery(), want.gv, want.name)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("the cluster does not serve %s (%s): attach to a cluster running Cilium with CiliumEndpointSlices enabled (AKS with Azure CNI powered by Cilium)", want.name, want.gv)
		}
	}
	return nil
}
