package slicer_test

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/ceskit/ceskit/internal/scenario"
	"github.com/ceskit/ceskit/internal/testenv"
	"github.com/ceskit/ceskit/slicer"
)

// BenchmarkScale runs the lab's scenario (internal/scenario) at cluster scale on a control plane
// of its own, and measures what issue 10 asks: the controller's initial sync, the propagation
// of churn into slices, the objects the API server holds, and the bytes one node receives when
// it watches slices versus CiliumEndpoints. It takes minutes and gigabytes, so it runs only when
// asked for by name or with CESKIT_SCALE=1 (`make bench`'s `-bench .` skips it):
//
//	CESKIT_SCALE=1 go test -run '^$' -bench BenchmarkScale -benchtime 1x -timeout 60m ./slicer/
//
// Sizes come from the environment: CESKIT_SCALE_ENDPOINTS (default 100000), CESKIT_SCALE_NODES
// (5000), CESKIT_SCALE_NAMESPACES (endpoints/100: the lab's 100 endpoints per namespace),
// CESKIT_SCALE_CHURN (operations per second, default 200), CESKIT_SCALE_DURATION (seconds of
// churn, default 60), CESKIT_SCALE_SEED (1).
func BenchmarkScale(b *testing.B) {
	if !scaleRequested() {
		b.Skip("scale benchmark: set CESKIT_SCALE=1 or name it in -bench")
	}
	sc := scaleSettings{
		endpoints: envInt(b, "CESKIT_SCALE_ENDPOINTS", 100_000),
		nodes:     envInt(b, "CESKIT_SCALE_NODES", 5000),
		churn:     float64(envInt(b, "CESKIT_SCALE_CHURN", 200)),
		duration:  time.Duration(envInt(b, "CESKIT_SCALE_DURATION", 60)) * time.Second,
		seed:      uint64(envInt(b, "CESKIT_SCALE_SEED", 1)),
	}
	sc.namespaces = envInt(b, "CESKIT_SCALE_NAMESPACES", max(1, sc.endpoints/100))
	name := fmt.Sprintf("endpoints=%d,nodes=%d,churn=%g", sc.endpoints, sc.nodes, sc.churn)
	b.Run(name, func(b *testing.B) { benchScale(b, sc) })
}

type scaleSettings struct {
	endpoints, nodes, namespaces int
	churn                        float64
	duration                     time.Duration
	seed                         uint64
}

// scaleRequested: CESKIT_SCALE=1, or a -bench pattern that names this benchmark.
func scaleRequested() bool {
	if os.Getenv("CESKIT_SCALE") == "1" {
		return true
	}
	f := flag.Lookup("test.bench")
	return f != nil && strings.Contains(f.Value.String(), "Scale")
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSuffix(v, "s"))
	if err != nil || n < 0 {
		b.Fatalf("%s=%q: want a non-negative integer", name, v)
	}
	return n
}

func benchScale(b *testing.B, sc scaleSettings) {
	t0 := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "scale %6s  %s\n", time.Since(t0).Round(time.Second), fmt.Sprintf(format, args...))
	}
	logf("load average %s; %d CPUs; %s", loadavg(), runtime.NumCPU(), memAvailable())
	crds, err := slicer.CRDs()
	if err != nil {
		b.Fatal(err)
	}
	// A control plane of its own: testenv raises max-requests-inflight to 2000 and
	// max-mutating-requests-inflight to 1000, and the administrator this benchmark connects as
	// is exempt from priority and fairness, so no limit of the API server applies before its CPU.
	cp := testenv.New(b, testenv.Options{CRDs: crds})
	cfg := rest.CopyConfig(cp.Config)
	cfg.QPS, cfg.Burst = -1, 0
	procs := findControlPlane(b, cfg.Host)
	c, err := slicer.NewClient(cfg)
	if err != nil {
		b.Fatal(err)
	}
	s, err := scenario.New(scenario.Config{Seed: sc.seed, Endpoints: sc.endpoints, Namespaces: sc.namespaces, Nodes: sc.nodes})
	if err != nil {
		b.Fatal(err)
	}

	seedStart := time.Now()
	err = s.Seed(context.Background(), c, scenario.SeedOptions{Workers: 32, ProgressEvery: 15 * time.Second,
		Progress: func(p scenario.Progress) { logf("seed %s", p) }})
	if err != nil {
		b.Fatal(err)
	}
	seedTook := time.Since(seedStart)
	logf("seeded in %s; load average %s; %s", seedTook.Round(time.Second), loadavg(), memAvailable())
	churn := s.NewChurn()

	for b.Loop() {
		m := runScale(b, cfg, c, churn, sc, procs, logf)
		m["seed-s"] = seedTook.Seconds()
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var sum strings.Builder
		for _, k := range keys {
			b.ReportMetric(m[k], k)
			fmt.Fprintf(&sum, "%s=%.4g ", k, m[k])
		}
		logf("figures: %s", sum.String())
	}
	logf("done; load average %s; %s", loadavg(), memAvailable())
}

// runScale measures one cold sync and one churn phase; it returns the figures by unit.
func runScale(b *testing.B, cfg *rest.Config, c *slicer.Client, churn *scenario.Churn, sc scaleSettings, procs controlPlaneProcs, logf func(string, ...any)) map[string]float64 {
	ctx := context.Background()
	m := map[string]float64{}
	e := &env{tb: b, c: c}
	clearSlices(b, e) // a second iteration starts cold too

	// Every endpoint that lives, to be seen in a slice.
	type want struct {
		key string
		id  int64
	}
	var wants []want
	for cont := ""; ; {
		list, err := c.CiliumEndpoints("").List(ctx, metav1.ListOptions{Limit: 5000, Continue: cont})
		if err != nil {
			b.Fatal(err)
		}
		for i := range list.Items {
			cep := &list.Items[i]
			wants = append(wants, want{cep.Namespace + "/" + cep.Name, cep.Status.Identity.ID})
		}
		if cont = list.Continue; cont == "" {
			break
		}
	}

	// Initial sync: from the controller's start until the last endpoint is seen in a slice by a
	// watcher of the slices.
	sw, stopWatch := watchSlices(b, e)
	defer stopWatch()
	start := time.Now()
	for _, w := range wants {
		sw.want(w.key, w.id, start)
		sw.acked(w.key, start)
	}
	own := &propagationMetrics{}
	ctl, err := slicer.New(c, slicer.Config{Logger: testLogger(b), Metrics: own})
	if err != nil {
		b.Fatal(err)
	}
	ctlCtx, stopCtl := context.WithCancel(ctx)
	ctlDone := make(chan struct{})
	var ctlErr error
	ctlStart := time.Now()
	go func() { ctlErr = ctl.Run(ctlCtx); close(ctlDone) }()
	defer func() {
		stopCtl()
		<-ctlDone
		if ctlErr != nil {
			b.Errorf("controller Run: %v", ctlErr)
		}
	}()
	for !ctl.HasSynced() {
		select {
		case <-ctlDone:
			b.Fatal("controller Run returned before its caches synced")
		case <-time.After(50 * time.Millisecond):
		}
	}
	m["ctl-cache-sync-s"] = time.Since(ctlStart).Seconds()
	logf("controller caches synced in %.1fs; %d endpoints to place", m["ctl-cache-sync-s"], len(wants))
	lastLog := time.Now()
	for {
		sw.mu.Lock()
		unmet := len(sw.expect)
		sw.mu.Unlock()
		if unmet == 0 {
			break
		}
		if time.Since(ctlStart) > 20*time.Minute {
			b.Fatalf("initial sync: %d of %d endpoints in no slice after 20 minutes; controller %+v", unmet, len(wants), ctl.Status())
		}
		if time.Since(lastLog) > 10*time.Second {
			st := ctl.Status()
			logf("initial sync: %d endpoints still in no slice; %d slices, %d writes, %d queued", unmet, st.Slices, writes(st), st.QueuePriority+st.QueueStandard)
			lastLog = time.Now()
		}
		time.Sleep(100 * time.Millisecond)
	}
	sw.mu.Lock()
	lastSeen := start.Add(slices.Max(sw.lat))
	sw.lat, sw.latAck = nil, nil
	sw.mu.Unlock()
	m["sync-s"] = lastSeen.Sub(ctlStart).Seconds()
	afterSync := ctl.Status()
	m["sync-writes"] = float64(writes(afterSync))
	m["ces-objects-initial"] = float64(afterSync.Slices)
	m["load1-sync"] = load1()
	logf("initial sync: every endpoint in a slice after %.1fs, %d slice writes (rate step %+v)", m["sync-s"], writes(afterSync), afterSync.RateLimit)
	for st := ctl.Status(); st.OutOfSync+st.QueuePriority+st.QueueStandard > 0; st = ctl.Status() {
		if time.Since(lastSeen) > 5*time.Minute {
			b.Fatalf("controller not idle 5 minutes after the initial sync: %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// One node on each source, each with its own connection, counted.
	exp := &scaleExpectations{m: map[string]scaleChange{}}
	nodeCtx, stopNodes := context.WithCancel(ctx)
	var nodesWG sync.WaitGroup
	defer func() { stopNodes(); nodesWG.Wait() }()
	var nodes []*scaleNode
	for _, mode := range []struct {
		name   string
		source slicer.Source
	}{{"cep", slicer.SourceCiliumEndpoints}, {"ces", slicer.SourceSlices}} {
		n := startScaleNode(b, nodeCtx, cfg, &nodesWG, mode.name, mode.source, exp)
		begin := time.Now()
		for st := n.w.Status(); !st.Synced || st.Endpoints < len(wants); st = n.w.Status() {
			if time.Since(begin) > 10*time.Minute {
				b.Fatalf("%s node watcher not synced after 10 minutes: %+v", mode.name, st)
			}
			time.Sleep(50 * time.Millisecond)
		}
		m["node-sync-s-"+mode.name] = time.Since(begin).Seconds()
		// The initial list reaches the handler after the sync: wait until it has drained.
		for prev, cur := int64(-1), n.w.Status().SourceEvents; cur != prev; prev, cur = cur, n.w.Status().SourceEvents {
			time.Sleep(500 * time.Millisecond)
		}
		m["watch-bytes/node-initial-"+mode.name] = float64(n.body.Load())
		m["wire-bytes/node-initial-"+mode.name] = float64(n.wire.Load())
		logf("%s node synced in %.1fs: %d bytes of JSON, %d on the wire", mode.name, m["node-sync-s-"+mode.name], n.body.Load(), n.wire.Load())
		nodes = append(nodes, n)
	}
	m["watch-initial-ratio-cep/ces"] = m["watch-bytes/node-initial-cep"] / m["watch-bytes/node-initial-ces"]

	// Churn: operations at sc.churn per second for sc.duration; each write is expected in a slice
	// (the propagation watcher) and at both nodes.
	type base struct{ body, wire, events int64 }
	bases := make([]base, len(nodes))
	for i, n := range nodes {
		bases[i] = base{n.body.Load(), n.wire.Load(), n.w.Status().SourceEvents}
	}
	before := ctl.Status()
	own.reset()
	var writeMu sync.Mutex
	var writeLat []time.Duration
	cpu0, cpuAt0 := procCPU(procs.apiserver), time.Now()
	var acked, failed atomic.Int64
	var firstErr error
	var errOnce sync.Once
	churnStart := time.Now()
	churnCtx, stopChurn := context.WithTimeout(ctx, sc.duration)
	stopProgress := make(chan struct{})
	defer close(stopProgress)
	go func() {
		t := time.NewTicker(15 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				sw.mu.Lock()
				n, unmet := len(sw.latAck), len(sw.expect)
				sw.mu.Unlock()
				logf("churn: %d changes acknowledged, %d failed, %d in slices, %d not yet", acked.Load(), failed.Load(), n, unmet)
			}
		}
	}()
	stats, err := churn.Run(churnCtx, c, scenario.ChurnOptions{
		Rate:        sc.churn,
		MaxInFlight: max(64, int(2*sc.churn)),
		OnSend: func(op scenario.Op, sent time.Time) {
			exp.set(op.Key(), op.Identity(), sent)
			sw.want(op.Key(), op.Identity(), sent)
		},
		OnDone: func(op scenario.Op, sent, done time.Time, err error) {
			writeMu.Lock()
			writeLat = append(writeLat, done.Sub(sent))
			writeMu.Unlock()
			if err != nil {
				failed.Add(1)
				errOnce.Do(func() { firstErr = err })
				exp.cancel(op.Key())
				sw.mu.Lock()
				delete(sw.expect, op.Key())
				sw.mu.Unlock()
				return
			}
			acked.Add(1)
			sw.acked(op.Key(), done)
		},
	})
	stopChurn()
	if err != nil {
		b.Fatal(err)
	}
	cpu1, cpuAt1 := procCPU(procs.apiserver), time.Now()
	m["load1-churn"] = load1()
	logf("churn: %d operations in %s (%.0f/s), %d failed, drained in %s", stats.Ops, stats.Elapsed.Round(time.Millisecond), stats.Rate(), stats.Failed, stats.Drained.Round(time.Millisecond))
	if firstErr != nil {
		logf("churn: first write error: %v", firstErr)
	}
	sent, ackLat, unmet := sw.wait(3 * time.Minute)
	after := ctl.Status()
	// The controller's slice writes per second, from the churn's start until every change was
	// in a slice, and how long that took after the churn ended.
	m["ctl-writes/s"] = float64(writes(after)-writes(before)) / time.Since(churnStart).Seconds()
	m["backlog-s"] = time.Since(churnStart).Seconds() - stats.Elapsed.Seconds()
	changes := float64(acked.Load())
	m["changes/s"] = changes / stats.Elapsed.Seconds()
	m["failed-writes"] = float64(failed.Load())
	m["unpropagated"] = float64(unmet)
	m["p50-ms"] = pct(ackLat, 0.50)
	m["p99-ms"] = pct(ackLat, 0.99)
	m["max-ms"] = pct(ackLat, 1)
	m["e2e-p99-ms"] = pct(sent, 0.99)
	m["writes/change"] = float64(writes(after)-writes(before)) / changes
	slices.Sort(writeLat)
	m["cep-write-p99-ms"] = pct(writeLat, 0.99)
	m["controller-p99-ms"] = pct(own.sorted(), 0.99)
	m["apiserver-cores-churn"] = (cpu1 - cpu0) / cpuAt1.Sub(cpuAt0).Seconds()
	if unmet > 0 {
		b.Errorf("%d of %.0f changes never reached a slice in 3 minutes; controller %+v", unmet, changes, after)
	}

	// Let the nodes catch up with the last change of every endpoint (deletes wait DeleteGrace on
	// the slice node), then count.
	// A node may never see a last change that undid the one before (A→B→A) when the controller
	// wrote both in one slice update, so stop once no node progressed for 5 s.
	deadline := time.Now().Add(2 * time.Minute)
	for _, n := range nodes {
		last, since := -1, time.Now()
		for k := n.behind(exp); k > 0 && time.Since(since) < 5*time.Second && time.Now().Before(deadline); k = n.behind(exp) {
			if k != last {
				last, since = k, time.Now()
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	for i, n := range nodes {
		body, wire := n.body.Load()-bases[i].body, n.wire.Load()-bases[i].wire
		m["watch-bytes/change-"+n.mode] = float64(body) / changes
		m["wire-bytes/change-"+n.mode] = float64(wire) / changes
		m["watch-events/change-"+n.mode] = float64(n.w.Status().SourceEvents-bases[i].events) / changes
		lat := n.latencies()
		m["node-p99-ms-"+n.mode] = pct(lat, 0.99)
		// Changes a node saw, of those written: an intermediate state may be skipped when the
		// controller coalesces two changes of one endpoint into one slice write.
		m["node-seen-"+n.mode] = float64(len(lat)) / float64(max(1, exp.len()))
		m["node-behind-"+n.mode] = float64(n.behind(exp))
	}
	m["watch-churn-ratio-ces/cep"] = m["watch-bytes/change-ces"] / m["watch-bytes/change-cep"]
	logf("churn: slice p50 %.0f ms p99 %.0f ms; per change %.0f B to a slice node, %.0f B to an endpoint node",
		m["p50-ms"], m["p99-ms"], m["watch-bytes/change-ces"], m["watch-bytes/change-cep"])

	// What the API server and etcd hold, and their memory.
	objectCounts(b, c, procs, m)
	m["rss-mb"] = procMemMB(procs.apiserver, "VmRSS")
	m["apiserver-peak-rss-mb"] = procMemMB(procs.apiserver, "VmHWM")
	m["etcd-rss-mb"] = procMemMB(procs.etcd, "VmRSS")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m["bench-heap-mb"] = float64(ms.HeapInuse) / (1 << 20)
	m["bench-peak-rss-mb"] = procMemMB(os.Getpid(), "VmHWM")
	return m
}

// scaleExpectations are the changes the churn made, by endpoint, for the nodes to see.
type scaleExpectations struct {
	mu  sync.Mutex
	seq uint64
	m   map[string]scaleChange
	n   int // expectations set and not cancelled
}

type scaleChange struct {
	id   int64 // 0: deleted
	sent time.Time
	seq  uint64
}

func (x *scaleExpectations) set(key string, id int64, sent time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.seq++
	x.m[key] = scaleChange{id: id, sent: sent, seq: x.seq}
	x.n++
}

func (x *scaleExpectations) cancel(key string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.m, key)
	x.n--
}

func (x *scaleExpectations) len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.n
}

func (x *scaleExpectations) get(key string) (scaleChange, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	c, ok := x.m[key]
	return c, ok
}

// scaleNode is one simulated node: a Watcher on its own connection, counting the JSON bytes of
// its list and watch responses for its source (body) and every byte its connection reads (wire:
// after TLS and gzip, what the network carries), and the time from each change's write to its
// handler seeing it.
type scaleNode struct {
	mode       string
	w          *slicer.Watcher
	body, wire atomic.Int64
	mu         sync.Mutex
	seen       map[string]uint64 // endpoint → seq of the change seen
	lat        []time.Duration
}

func (n *scaleNode) observe(exp *scaleExpectations, key string, id int64) {
	c, ok := exp.get(key)
	if !ok || c.id != id {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.seen[key] != c.seq {
		n.seen[key] = c.seq
		n.lat = append(n.lat, time.Since(c.sent))
	}
}

// behind is the number of endpoints whose last change the node has not seen.
func (n *scaleNode) behind(exp *scaleExpectations) int {
	exp.mu.Lock()
	defer exp.mu.Unlock()
	n.mu.Lock()
	defer n.mu.Unlock()
	count := 0
	for key, c := range exp.m {
		if n.seen[key] != c.seq {
			count++
		}
	}
	return count
}

func (n *scaleNode) latencies() []time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := slices.Clone(n.lat)
	slices.Sort(out)
	return out
}

func startScaleNode(b *testing.B, ctx context.Context, cfg *rest.Config, wg *sync.WaitGroup, mode string, source slicer.Source, exp *scaleExpectations) *scaleNode {
	n := &scaleNode{mode: mode, seen: map[string]uint64{}}
	resource := map[string]string{"cep": "ciliumendpoints", "ces": "ciliumendpointslices"}[mode]
	cfg = rest.CopyConfig(cfg)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return resourceCounter{next: rt, resource: resource, n: &n.body}
	}
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{Conn: conn, n: &n.wire}, nil
	}
	c, err := slicer.NewClient(cfg)
	if err != nil {
		b.Fatal(err)
	}
	h := slicer.HandlerFuncs{
		Updated: func(_, ep *slicer.Endpoint) { n.observe(exp, ep.Key(), ep.IdentityID) },
		Deleted: func(ep *slicer.Endpoint) { n.observe(exp, ep.Key(), 0) },
	}
	// Pinned to its source, without the heartbeat check, and no consistency re-list during the
	// run: only the watch stream is measured.
	n.w, err = slicer.NewWatcher(c, h, slicer.WatcherConfig{Source: source, HeartbeatLease: "-", ConsistencyPeriod: 24 * time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	wg.Go(func() {
		if err := n.w.Run(ctx); err != nil {
			b.Errorf("%s node watcher: %v", mode, err)
		}
	})
	return n
}

// resourceCounter counts the response body bytes of GET requests (lists and watches) of one
// resource.
type resourceCounter struct {
	next     http.RoundTripper
	resource string
	n        *atomic.Int64
}

func (t resourceCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if err == nil && resp.Body != nil && r.Method == http.MethodGet && slices.Contains(strings.Split(r.URL.Path, "/"), t.resource) {
		resp.Body = countingBody{resp.Body, t.n}
	}
	return resp, err
}

// countingConn counts the bytes read from a connection.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// controlPlaneProcs are the process IDs of the benchmark's kube-apiserver and etcd (0: not
// found), and etcd's client URL.
type controlPlaneProcs struct {
	apiserver, etcd int
	etcdURL         string
}

// findControlPlane finds the kube-apiserver serving host, and its etcd, among the processes.
func findControlPlane(b *testing.B, host string) controlPlaneProcs {
	var p controlPlaneProcs
	u, err := url.Parse(host)
	if err != nil {
		return p
	}
	cmdlines := map[int][]string{}
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, d := range dirs {
		raw, err := os.ReadFile(d)
		if err != nil || len(raw) == 0 {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		cmdlines[pid] = strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
	}
	for pid, args := range cmdlines {
		if filepath.Base(args[0]) == "kube-apiserver" && slices.Contains(args, "--secure-port="+u.Port()) {
			p.apiserver = pid
			for _, a := range args {
				if v, ok := strings.CutPrefix(a, "--etcd-servers="); ok {
					p.etcdURL = strings.Split(v, ",")[0]
				}
			}
		}
	}
	for pid, args := range cmdlines {
		if filepath.Base(args[0]) == "etcd" && p.etcdURL != "" && slices.Contains(args, "--listen-client-urls="+p.etcdURL) {
			p.etcd = pid
		}
	}
	if p.apiserver == 0 || p.etcd == 0 {
		b.Logf("control-plane processes not all found (%+v): their memory and CPU are not reported", p)
	}
	return p
}

// procCPU is the CPU seconds a process used so far (user + system; Linux's 100 ticks/s).
func procCPU(pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if pid == 0 || err != nil {
		return 0
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // fields from the 3rd on
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100
}

// procMemMB reads a memory field (VmRSS, VmHWM) of /proc/pid/status, in MiB.
func procMemMB(pid int, field string) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if pid == 0 || err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// load1 is the machine's load average over the last minute.
func load1() float64 {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseFloat(strings.Fields(string(raw))[0], 64)
	return v
}

func loadavg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(raw))[:3], " ")
}

// memAvailable is the machine's MemAvailable.
func memAvailable() string {
	raw, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "memory ?"
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return fmt.Sprintf("%.1f GiB available", kb/(1<<20))
		}
	}
	return "memory ?"
}

// objectCounts puts into m the CiliumEndpoints and slices the API server holds (counted from a
// list), what its apiserver_storage_objects gauge says of every resource, and etcd's database
// size.
func objectCounts(b *testing.B, c *slicer.Client, procs controlPlaneProcs, m map[string]float64) {
	ctx := context.Background()
	if l, err := c.CiliumEndpoints("").List(ctx, metav1.ListOptions{Limit: 1}); err == nil && l.RemainingItemCount != nil {
		m["cep-objects"] = float64(int64(len(l.Items)) + *l.RemainingItemCount)
	} else {
		n := 0
		for cont := ""; ; {
			l, err := c.CiliumEndpoints("").List(ctx, metav1.ListOptions{Limit: 5000, Continue: cont})
			if err != nil {
				b.Error(err)
				break
			}
			n += len(l.Items)
			if cont = l.Continue; cont == "" {
				break
			}
		}
		m["cep-objects"] = float64(n)
	}
	if l, err := c.CiliumEndpointSlices().List(ctx, metav1.ListOptions{}); err == nil {
		m["ces-objects"] = float64(len(l.Items))
		size := 0
		for i := range l.Items {
			size += len(l.Items[i].Endpoints)
		}
		m["endpoints/ces"] = float64(size) / float64(max(1, len(l.Items)))
	} else {
		b.Error(err)
	}
	if raw, err := c.Kube.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx); err == nil {
		var all float64
		for _, line := range strings.Split(string(raw), "\n") {
			if rest, ok := strings.CutPrefix(line, "apiserver_storage_objects{"); ok {
				if v, err := strconv.ParseFloat(rest[strings.LastIndexByte(rest, ' ')+1:], 64); err == nil {
					all += v
				}
			}
		}
		m["apiserver-storage-objects"] = all
	} else {
		b.Logf("api server metrics: %v", err)
	}
	if procs.etcdURL != "" {
		if v, err := metricValue(procs.etcdURL+"/metrics", "etcd_mvcc_db_total_size_in_bytes"); err == nil {
			m["etcd-db-mb"] = v / (1 << 20)
		} else {
			b.Logf("etcd metrics: %v", err)
		}
	}
}

// metricValue reads one unlabelled metric from a Prometheus text endpoint.
func metricValue(u, name string) (float64, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(u)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", u, name)
}
