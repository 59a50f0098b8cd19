package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"

	"github.com/ceskit/ceskit/internal/testenv"
)

// requireControlPlane skips (fails under CI) without the control-plane binaries.
func requireControlPlane(t *testing.T) {
	t.Helper()
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(testenv.BinDir(), b)); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("the lab needs the control plane under CI: %v (run make controlplane)", err)
			}
			t.Skipf("skipping: %v: %v (run make controlplane)", testenv.ErrNoBinaries, err)
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for the lab's writes and the test's reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// labRun is a lab running in the test.
type labRun struct {
	addr   string
	stdout *lockedBuffer
	stderr *lockedBuffer
	cancel context.CancelFunc
	done   chan error
}

// startLab runs the lab with args until the test stops it (stop) or it ends.
func startLab(t *testing.T, args ...string) *labRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &labRun{stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, cancel: cancel, done: make(chan error, 1)}
	started := make(chan string, 1)
	go func() { r.done <- run(ctx, args, r.stdout, r.stderr, started) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(time.Minute):
			t.Error("the lab did not stop within a minute of its cancellation")
		}
		t.Logf("lab stdout:\n%s", r.stdout)
		if s := r.stderr.String(); s != "" {
			t.Logf("lab stderr:\n%s", s)
		}
	})
	select {
	case r.addr = <-started:
	case err := <-r.done:
		r.done <- err
		t.Fatalf("the lab ended before serving: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the lab did not serve within 2 minutes")
	}
	return r
}

// stop ends the run (Ctrl-C) and returns run's error.
func (r *labRun) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err
		return err
	case <-time.After(time.Minute):
		t.Fatal("the lab did not stop within a minute")
		return nil
	}
}

func getStatus(t *testing.T, addr string) Status {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func readReport(t *testing.T, path string) Status {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st Status
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// waitPhase polls /api/status until the lab reaches phase.
func waitPhase(t *testing.T, r *labRun, phase string, timeout time.Duration) Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := getStatus(t, r.addr)
		if st.Phase == phase {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("phase %q after %s, want %q", st.Phase, timeout, phase)
		}
		select {
		case err := <-r.done:
			r.done <- err
			t.Fatalf("the lab ended in phase %q: %v", st.Phase, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// leftNetns lists this process's lab network namespaces.
func leftNetns(t *testing.T) []string {
	t.Helper()
	entries, _ := os.ReadDir("/var/run/netns")
	var left []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), fmt.Sprintf("ceslab-%d-", os.Getpid())) {
			left = append(left, e.Name())
		}
	}
	return left
}

// TestLab runs a short lab with the datapath where privileged (it must be under CI), checks
// the report, checks the status page in headless Chromium against it, and checks that
// everything is cleaned up.
func TestLab(t *testing.T) {
	requireControlPlane(t)
	privileged := privilegeProblem() == ""
	if !privileged && os.Getenv("CI") != "" {
		t.Fatalf("the lab's datapath must run under CI: %s", privilegeProblem())
	}
	report := filepath.Join(t.TempDir(), "report.json")
	r := startLab(t, "--pods=150", "--nodes=8", "--namespaces=4", "--churn=30", "--duration=12s", "--interval=2s",
		"--watchers=2", "--listen=127.0.0.1:0", "--report="+report, "--linger=5m")

	t.Run("status page in chromium", func(t *testing.T) { checkPage(t, r, report) })

	st := waitPhase(t, r, "done", 2*time.Minute)
	if diff := cmp.Diff(readReport(t, report), st); diff != "" {
		t.Errorf("/api/status after the run differs from the report (-report +status):\n%s", diff)
	}
	// /metrics: one registry with every observe adapter the lab runs.
	metrics := []string{
		"cilium_operator_ces_sync_total", "ceskit_slicer_writes_total", // slicer
		"ceskit_identity_allocations_total", "cilium_operator_identity_gc_runs", // identity allocator and GC
		"ceskit_watcher_source",                                      // watchers (the lab's and the agent's)
		"cilium_policy_change_total", "hubble_flows_processed_total", // the agent's engine and flows
	}
	if privileged {
		metrics = append(metrics, "cilium_forward_count_total", "cilium_bpf_map_pressure") // the datapath
	}
	resp, err := http.Get("http://" + r.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range metrics {
		if !bytes.Contains(body, []byte("\n"+m)) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("run: %v", err)
	}

	// The report.
	if st.Mode != modeCES || len(st.Errors) != 0 {
		t.Errorf("mode %q, errors %q", st.Mode, st.Errors)
	}
	if st.Simulation.Seeded != 150 || st.Simulation.LivePods != 150 || st.Simulation.CEPErrors != 0 || st.Simulation.Changes <= 150 {
		t.Errorf("simulation %+v: want 150 pods seeded and alive, churn, no errors", st.Simulation)
	}
	if st.Slices.Count == 0 || st.Slices.Endpoints != 150+len(labPods) || st.Writes.Total == 0 {
		t.Errorf("slices %+v, writes %+v: want every endpoint in slices", st.Slices, st.Writes)
	}
	p := st.Propagation
	if p.Node.Churn.N == 0 || p.Slice.Churn.N == 0 || p.NodeDelete.All.N == 0 || p.PendingNode != 0 || p.PendingSlice != 0 {
		t.Errorf("propagation %+v: want samples of every stage and nothing pending", p)
	}
	if st.Identities.Known == 0 || st.Identities.Created == 0 || st.Identities.GCRuns == 0 {
		t.Errorf("identities %+v: want allocations and GC passes", st.Identities)
	}
	if st.Policy.Policies != 4 || st.Policy.Invalid != 0 || st.Policy.LocalEndpoints != len(labPods) || st.Policy.Entries == 0 {
		t.Errorf("policy %+v: want the 4 lab policies enforced for %d endpoints", st.Policy, len(labPods))
	}
	for _, w := range st.Watchers {
		if w.Source != "ciliumendpointslices" || w.Endpoints != 150+len(labPods) {
			t.Errorf("watcher %+v: want it on slices with every endpoint", w)
		}
	}
	if st.Probes.Rounds == 0 || !st.Probes.Passed {
		t.Errorf("probes %+v: want every probe as expected", st.Probes)
	}
	if privileged {
		if st.Agent.Mode != "datapath" || st.Probes.Method != "tcp" || st.Agent.Attached != len(labPods) || st.Policy.DatapathEntries == 0 ||
			st.Verdicts["FORWARDED"] == 0 || st.Verdicts["DROPPED"] == 0 || len(st.RecentFlows) == 0 {
			t.Errorf("agent %+v, probes %s, verdicts %v, %d flows: want the datapath enforcing", st.Agent, st.Probes.Method, st.Verdicts, len(st.RecentFlows))
		}
	} else if st.Agent.Mode != "no-datapath" || st.Probes.Method != "engine" {
		t.Errorf("agent %+v, probes %s: want no-datapath mode with the engine's decisions", st.Agent, st.Probes.Method)
	}
	out := r.stdout.String()
	for _, want := range []string{"ceskit lab report (mode ces)", "propagation to nodes", "probes (", "lab: cleaned up:", "control plane stopped"} {
		if !strings.Contains(out, want) {
			t.Errorf("terminal output lacks %q", want)
		}
	}
	if left := leftNetns(t); len(left) != 0 {
		t.Errorf("network namespaces left behind: %v", left)
	}
}

// chromiumPath finds Debian's chromium (or $CESKIT_CHROMIUM, or another Chrome).
func chromiumPath() string {
	if p := os.Getenv("CESKIT_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// artifactsDir is $CESKIT_ARTIFACTS, else a temporary directory.
func artifactsDir(t *testing.T) string {
	if d := os.Getenv("CESKIT_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// checkPage opens the status page in headless Chromium while the lab runs, waits for live
// figures, then for the final ones, compares them with the report and takes a screenshot.
func checkPage(t *testing.T, r *labRun, report string) {
	exe := chromiumPath()
	if exe == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("the status page test needs Chromium under CI: apt-get install chromium")
		}
		t.Skip("skipping: Chromium not found (Debian: apt-get install chromium; or set $CESKIT_CHROMIUM)")
	}
	browserOut := &lockedBuffer{}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.WindowSize(1400, 1800),
		chromedp.WSURLReadTimeout(2*time.Minute), // a loaded CI machine can take long to start it
		chromedp.CombinedOutput(browserOut))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to run as root with its sandbox
	}
	release := make(chan struct{}) // ends the thread that started Chromium (see below)
	defer close(release)           // after cancelAlloc, deferred later, has closed the browser
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	defer func() {
		if t.Failed() {
			t.Logf("chromium's output:\n%s", browserOut)
		}
	}()
	ctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()

	// chromedp starts Chromium with Pdeathsig, which the kernel ties to the OS thread that forked
	// it, not to the process; and the lab ends threads (a goroutine that switched network
	// namespace ends its thread). Fork from a thread locked until the browser is closed.
	launched := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		launched <- chromedp.Run(ctx)
		<-release
	}()
	if err := <-launched; err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	if err := chromedp.Run(ctx, chromedp.Navigate("http://"+r.addr+"/")); err != nil {
		t.Fatalf("open the status page: %v", err)
	}
	texts := func() map[string]string {
		var m map[string]string
		if err := chromedp.Run(ctx, chromedp.Evaluate(`Object.fromEntries([...document.querySelectorAll("[id]")].map(e => [e.id, e.textContent]))`, &m)); err != nil {
			t.Fatalf("read the page: %v", err)
		}
		return m
	}

	// Live figures: slices and propagation appear while the simulation runs.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		m := texts()
		slices, _ := strconv.Atoi(m["slices"])
		samples, _ := strconv.Atoi(m["node-n"])
		if slices > 0 && samples > 0 && m["phase"] != "done" {
			t.Logf("live: phase %s, %s slices, node p50 %s ms, writes %s/s", m["phase"], m["slices"], m["node-p50"], m["writes-rate"])
			break
		}
		if time.Now().After(deadline) || m["phase"] == "done" {
			t.Fatalf("no live figures on the page before the end: %v", m)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The final figures.
	if err := chromedp.Run(ctx, chromedp.WaitVisible(`body[data-phase="done"]`, chromedp.ByQuery)); err != nil {
		t.Fatalf("wait for the final figures: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // the charts are drawn in the same render; let layout settle for the screenshot
	got := texts()
	st := readReport(t, report)
	node := st.Propagation.Node.Churn
	if node.N == 0 {
		node = st.Propagation.Node.All
	}
	sl := st.Propagation.Slice.Churn
	if sl.N == 0 {
		sl = st.Propagation.Slice.All
	}
	passed := "as expected"
	if !st.Probes.Passed {
		passed = "NOT as expected"
	}
	f1 := func(x float64) string { return strconv.FormatFloat(x, 'f', 1, 64) }
	d := strconv.Itoa
	d64 := func(x int64) string { return strconv.FormatInt(x, 10) }
	u64 := func(x uint64) string { return strconv.FormatUint(x, 10) }
	want := map[string]string{
		"phase": "done", "mode": st.Mode, "elapsed": f1(st.ElapsedSeconds), "agent-mode": st.Agent.Mode,
		"slices": d(st.Slices.Count), "slice-endpoints": d(st.Slices.Endpoints), "slice-fill": f1(st.Slices.FillPercent),
		"slices-desired": d(st.Slices.Desired), "slices-outofsync": d(st.Slices.OutOfSync),
		"writes-rate": f1(st.Writes.PerSecond), "writes-total": d64(st.Writes.Total),
		"writes-per-change": strconv.FormatFloat(st.Writes.PerChange, 'f', 3, 64), "writes-conflicts": d64(st.Writes.Conflicts),
		"node-p50": f1(node.P50Ms), "node-p99": f1(node.P99Ms), "node-n": d64(node.N),
		"slice-p50": f1(sl.P50Ms), "slice-p99": f1(sl.P99Ms), "delete-p50": f1(st.Propagation.NodeDelete.All.P50Ms),
		"ids-known": d(st.Identities.Known), "ids-held": d(st.Identities.Held), "ids-created": d64(st.Identities.Created),
		"ids-gc-deleted": d64(st.Identities.GCDeleted), "ids-gc-runs": d64(st.Identities.GCRuns),
		"policy-entries": d(st.Policy.Entries), "policies": d(st.Policy.Policies), "policy-dp-entries": d(st.Policy.DatapathEntries),
		"policy-endpoints": d(st.Policy.LocalEndpoints), "policy-revision": u64(st.Policy.Revision),
		"verdict-forwarded": u64(st.Verdicts["FORWARDED"]), "verdict-dropped": u64(st.Verdicts["DROPPED"]),
		"probes-passed": passed, "probe-rounds": d(st.Probes.Rounds),
		"pods": d(st.Simulation.LivePods), "changes": d64(st.Simulation.Changes), "churn-rate": f1(st.Simulation.ChurnPerSecond),
		"rollouts": d64(st.Simulation.Rollouts), "cep-errors": d64(st.Simulation.CEPErrors),
	}
	gotSome := map[string]string{}
	for k := range want {
		gotSome[k] = got[k]
	}
	if diff := cmp.Diff(want, gotSome); diff != "" {
		t.Errorf("page figures differ from the report (-report +page):\n%s", diff)
	}
	// The tables: one row per watcher and probe, and the series drawn.
	var rows struct{ Watchers, Probes, Points int }
	if err := chromedp.Run(ctx, chromedp.Evaluate(`({watchers: document.querySelectorAll("#watchers tr").length,
		probes: document.querySelectorAll("#probes tr").length,
		points: document.querySelectorAll("#lat-chart circle").length})`, &rows)); err != nil {
		t.Fatal(err)
	}
	if rows.Watchers != len(st.Watchers) || rows.Probes != len(st.Probes.Results) || rows.Points != 2*len(st.Series) || len(st.Series) == 0 {
		t.Errorf("page tables: %+v, want %d watchers, %d probes, %d points", rows, len(st.Watchers), len(st.Probes.Results), 2*len(st.Series))
	}

	var png []byte
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&png, 100)); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(artifactsDir(t), "lab-status-page.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the status page: %s (%d bytes)", path, len(png))
}

// TestLabInterrupted stops a lab that runs until Ctrl-C in the middle of its churn: it still
// reports, and removes everything it created.
func TestLabInterrupted(t *testing.T) {
	requireControlPlane(t)
	t.Parallel() // with TestAttach, after TestLab (both create network namespaces named after the PID)
	r := startLab(t, "--pods=60", "--nodes=3", "--namespaces=2", "--churn=20", "--duration=0", "--interval=1s",
		"--watchers=1", "--listen=127.0.0.1:0")
	waitPhase(t, r, "churning", 2*time.Minute)
	time.Sleep(time.Second)
	if err := r.stop(t); err != nil {
		t.Fatalf("run after Ctrl-C: %v", err)
	}
	out := r.stdout.String()
	for _, want := range []string{"ceskit lab report (mode ces)", "lab: cleaned up:", "control plane stopped"} {
		if !strings.Contains(out, want) {
			t.Errorf("terminal output lacks %q", want)
		}
	}
	if left := leftNetns(t); len(left) != 0 {
		t.Errorf("network namespaces left behind: %v", left)
	}
	if _, err := http.Get("http://" + r.addr + "/api/status"); err == nil {
		t.Error("the status page still serves after the lab returned")
	}
	if strings.Contains(out, "kubectl reaches it") {
		kc := out[strings.Index(out, "--kubeconfig ")+len("--kubeconfig "):]
		kc = kc[:strings.IndexByte(kc, ' ')]
		if _, err := os.Stat(kc); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("kubeconfig %s left behind: %v", kc, err)
		}
	}
}
