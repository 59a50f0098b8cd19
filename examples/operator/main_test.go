package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/ceskit/ceskit/identity"
	"github.com/ceskit/ceskit/internal/testenv"
	"github.com/ceskit/ceskit/observe"
	"github.com/ceskit/ceskit/slicer"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParseFlags(t *testing.T) {
	t.Setenv("KUBECONFIG", "")
	tests := []struct {
		name    string
		args    []string
		wantErr string // substring; "" means success
		check   func(t *testing.T, o *options)
	}{{
		name: "defaults",
		check: func(t *testing.T, o *options) {
			want := slicer.Config{Source: slicer.SourceCiliumEndpoints}
			if diff := cmp.Diff(want, o.cfg); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
			if o.listen != "127.0.0.1:9963" || o.adminListen != "127.0.0.1:9965" {
				t.Errorf("listen=%q admin-listen=%q, want 127.0.0.1:9963 and 127.0.0.1:9965", o.listen, o.adminListen)
			}
			wantElection := electionConfig{Namespace: "kube-system", Name: "ceskit-operator",
				LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}
			if diff := cmp.Diff(wantElection, o.election); diff != "" || !o.leaderElect || !o.gcEnabled {
				t.Errorf("leader-elect=%t identity-gc=%t, want both true; election (-want +got):\n%s", o.leaderElect, o.gcEnabled, diff)
			}
		},
	}, {
		name: "leader election and identity gc flags",
		args: []string{
			"--leader-elect-namespace=ceskit", "--leader-elect-name=op", "--leader-elect-lease-duration=2s",
			"--leader-elect-renew-deadline=1500ms", "--leader-elect-retry-period=300ms", "--cache-sync-timeout=1m",
			"--identity-gc-namespace=ids", "--identity-gc-interval=1s", "--identity-gc-min-age=2s", "--identity-gc-grace-period=3s",
			"--identity-gc-claim-grace-period=4s", "--identity-gc-write-qps=50", "--identity-gc-workers=2",
		},
		check: func(t *testing.T, o *options) {
			wantElection := electionConfig{Namespace: "ceskit", Name: "op",
				LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 300 * time.Millisecond}
			if diff := cmp.Diff(wantElection, o.election); diff != "" {
				t.Errorf("election (-want +got):\n%s", diff)
			}
			wantGC := identity.GCConfig{Namespace: "ids", Interval: time.Second, MinAge: 2 * time.Second, GracePeriod: 3 * time.Second,
				ClaimGracePeriod: 4 * time.Second, WriteQPS: 50, Workers: 2}
			if diff := cmp.Diff(wantGC, o.gc, cmpopts.IgnoreFields(identity.GCConfig{}, "InUse")); diff != "" {
				t.Errorf("identity gc (-want +got):\n%s", diff)
			}
			if o.syncTimeout != time.Minute {
				t.Errorf("cache-sync-timeout = %s, want 1m", o.syncTimeout)
			}
		},
	}, {
		name: "single replica without gc",
		args: []string{"--leader-elect=false", "--identity-gc=false"},
		check: func(t *testing.T, o *options) {
			if o.leaderElect || o.gcEnabled {
				t.Errorf("leader-elect=%t identity-gc=%t, want both false", o.leaderElect, o.gcEnabled)
			}
		},
	}, {
		name: "shadow needs no leader",
		args: []string{"--shadow"},
		check: func(t *testing.T, o *options) {
			if o.leaderElect || o.gcEnabled {
				t.Errorf("leader-elect=%t identity-gc=%t with --shadow, want both false", o.leaderElect, o.gcEnabled)
			}
		},
	}, {
		name: "every config flag",
		args: []string{
			"--max-endpoints-per-slice=50", "--group-by-identity", "--batch-min-delay=5ms", "--batch-max-delay=1s",
			"--write-qps=20", "--write-burst=40", `--ces-rate-limits=[{"nodes":0,"limit":5,"burst":10},{"nodes":10,"limit":20,"burst":30}]`,
			"--workers=8", "--priority-namespaces=kube-system, web,,", "--priority-weight=2", "--error-threshold=3",
			"--retry-base-delay=20ms", "--retry-max-delay=2s", "--conflict-retries=5", "--resync-period=1m",
			"--compaction-threshold=0.25", "--disable-compaction", "--shadow",
			"--heartbeat-lease=ceskit/beat", "--heartbeat-interval=2s",
		},
		check: func(t *testing.T, o *options) {
			want := slicer.Config{
				MaxEndpointsPerSlice: 50, Source: slicer.SourceCiliumEndpoints, GroupByIdentity: true,
				BatchMinDelay: 5 * time.Millisecond, BatchMaxDelay: time.Second, WriteQPS: 20, WriteBurst: 40,
				RateLimits:         []slicer.RateLimitStep{{Nodes: 0, Limit: 5, Burst: 10}, {Nodes: 10, Limit: 20, Burst: 30}},
				Workers:            8,
				PriorityNamespaces: []string{"kube-system", "web"}, PriorityWeight: 2, ErrorThreshold: 3,
				RetryBaseDelay: 20 * time.Millisecond, RetryMaxDelay: 2 * time.Second, ConflictRetries: 5,
				ResyncPeriod: time.Minute, CompactionThreshold: 0.25, DisableCompaction: true, Shadow: true,
				HeartbeatLease: "ceskit/beat", HeartbeatInterval: 2 * time.Second,
			}
			if diff := cmp.Diff(want, o.cfg); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		},
	}, {
		name:    "embedded lab moved",
		args:    []string{"--embedded"},
		wantErr: "flag --embedded: the lab moved to examples/lab",
	}, {
		name:    "pods source",
		args:    []string{"--source=pods"},
		wantErr: "flag --source=pods: slim mode needs slicer.Config.IdentityFunc",
	}, {
		name:    "unknown source",
		args:    []string{"--source=endpointslices"},
		wantErr: `flag --source="endpointslices": this example supports only "ciliumendpoints"`,
	}, {
		name:    "bad rate limits JSON",
		args:    []string{"--ces-rate-limits={"},
		wantErr: "flag --ces-rate-limits: invalid slicer config: RateLimits={",
	}, {
		name:    "bad rate limit step",
		args:    []string{`--ces-rate-limits=[{"nodes":0,"limit":0,"burst":1}]`},
		wantErr: "flag --ces-rate-limits: invalid slicer config: RateLimits[nodes=0].limit=0",
	}, {
		name:    "config error names the flag",
		args:    []string{"--workers=65"},
		wantErr: "flag --workers: invalid slicer config: Workers=65",
	}, {
		name:    "heartbeat lease",
		args:    []string{"--heartbeat-lease=nonamespace"},
		wantErr: "flag --heartbeat-lease: invalid slicer config: HeartbeatLease=nonamespace",
	}, {
		name:    "shadow with leader election",
		args:    []string{"--shadow", "--leader-elect"},
		wantErr: "flag --leader-elect with --shadow: shadow mode writes nothing",
	}, {
		name:    "shadow with identity gc",
		args:    []string{"--shadow", "--identity-gc=true"},
		wantErr: "flag --identity-gc with --shadow",
	}, {
		name:    "renew deadline not below lease duration",
		args:    []string{"--leader-elect-lease-duration=10s", "--leader-elect-renew-deadline=10s"},
		wantErr: "flag --leader-elect-renew-deadline=10s: must be positive and shorter than --leader-elect-lease-duration=10s",
	}, {
		name:    "lease duration in whole seconds",
		args:    []string{"--leader-elect-lease-duration=2500ms", "--leader-elect-renew-deadline=1s", "--leader-elect-retry-period=100ms"},
		wantErr: "flag --leader-elect-lease-duration=2.5s: must be a whole number of seconds",
	}, {
		name:    "retry period too long",
		args:    []string{"--leader-elect-retry-period=9s"},
		wantErr: "flag --leader-elect-retry-period=9s: must be positive and less than --leader-elect-renew-deadline / 1.2",
	}, {
		name:    "election lease name",
		args:    []string{"--leader-elect-name=Not_A_Name"},
		wantErr: `flag --leader-elect-name="Not_A_Name"`,
	}, {
		name: "election flags unchecked without election",
		args: []string{"--leader-elect=false", "--leader-elect-renew-deadline=1h"},
		check: func(t *testing.T, o *options) {
			if o.leaderElect {
				t.Error("leader-elect = true, want false")
			}
		},
	}, {
		name:    "identity gc flag",
		args:    []string{"--identity-gc-grace-period=-1s"},
		wantErr: "flag --identity-gc-grace-period: invalid identity config: GracePeriod=-1s: must not be negative",
	}, {
		name:    "cache sync timeout",
		args:    []string{"--cache-sync-timeout=0"},
		wantErr: "flag --cache-sync-timeout=0s: must be positive",
	}, {
		name:    "log level",
		args:    []string{"--log-level=loud"},
		wantErr: `flag --log-level="loud"`,
	}, {
		name:    "arguments",
		args:    []string{"extra"},
		wantErr: "unexpected arguments",
	}, {
		name:    "listen without port",
		args:    []string{"--listen=0.0.0.0"},
		wantErr: `flag --listen="0.0.0.0": address 0.0.0.0: missing port in address`,
	}, {
		name:    "admin listen without port",
		args:    []string{"--admin-listen=localhost"},
		wantErr: `flag --admin-listen="localhost": address localhost: missing port in address`,
	}, {
		name:    "admin listen on the public port",
		args:    []string{"--listen=:9963", "--admin-listen=127.0.0.1:9963"},
		wantErr: `flag --admin-listen="127.0.0.1:9963": port 9963 is --listen's (":9963")`,
	}, {
		name: "admin listener off",
		args: []string{"--admin-listen=", "--listen=127.0.0.1:0"},
		check: func(t *testing.T, o *options) {
			if o.adminListen != "" || o.listen != "127.0.0.1:0" {
				t.Errorf("listen=%q admin-listen=%q, want 127.0.0.1:0 and off", o.listen, o.adminListen)
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseFlags(%q) error = %v, want one containing %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags(%q): %v", tt.args, err)
			}
			tt.check(t, o)
		})
	}
}

// fakeController stands in for *slicer.Controller behind the HTTP API.
type fakeController struct {
	synced bool
	status slicer.Status
	diff   []slicer.SliceDiff
	resync func(ns string) (int, error)
}

func (f *fakeController) HasSynced() bool          { return f.synced }
func (f *fakeController) Status() slicer.Status    { return f.status }
func (f *fakeController) Diff() []slicer.SliceDiff { return f.diff }
func (f *fakeController) Resync(_ context.Context, ns string) (int, error) {
	return f.resync(ns)
}

// fakeState stands in for *operator behind the HTTP API.
type fakeState struct {
	ctrl      *fakeController // nil: standing by
	healthErr error
	readyNote string
	readyErr  error
	rep       replicaStatus
}

func (f *fakeState) controller() controller {
	if f.ctrl == nil {
		return nil
	}
	return f.ctrl
}
func (f *fakeState) health() error          { return f.healthErr }
func (f *fakeState) ready() (string, error) { return f.readyNote, f.readyErr }
func (f *fakeState) replica() replicaStatus { return f.rep }

func TestHTTP(t *testing.T) {
	synced := &fakeController{
		synced: true,
		status: slicer.Status{Synced: true, Slices: 3},
		diff:   []slicer.SliceDiff{{Slice: "ces-a", Namespace: "web", Op: "update", Added: []string{"web-1"}}},
		resync: func(ns string) (int, error) { return len(ns), nil },
	}
	leader := &fakeState{ctrl: synced, readyNote: "leading",
		rep: replicaStatus{Identity: "op-a_1", Mode: modeElected, Leading: true, Leader: "op-a_1", Lease: "kube-system/ceskit-operator", IdentityGC: true}}
	follower := &fakeState{readyNote: "follower standing by; leader: op-a_1",
		rep: replicaStatus{Identity: "op-b_2", Mode: modeElected, Leader: "op-a_1", Lease: "kube-system/ceskit-operator", IdentityGC: true}}
	tests := []struct {
		name     string
		state    *fakeState
		method   string
		path     string
		wantCode int
		wantBody string // substring
	}{
		{"healthz ok", leader, "GET", "/healthz", 200, "ok\n"},
		{"healthz follower", follower, "GET", "/healthz", 200, "ok\n"},
		{"healthz wedged", &fakeState{healthErr: errors.New("informers not synced 3m1s after the writers started")},
			"GET", "/healthz", 503, "unhealthy: informers not synced"},
		{"readyz leader", leader, "GET", "/readyz", 200, "ok: leading\n"},
		{"readyz follower", follower, "GET", "/readyz", 200, "ok: follower standing by; leader: op-a_1\n"},
		{"readyz single", &fakeState{ctrl: synced}, "GET", "/readyz", 200, "ok\n"},
		{"readyz not synced", &fakeState{readyErr: errors.New("not synced: caches not filled")}, "GET", "/readyz", 503, "not synced"},
		{"readyz degraded", &fakeState{readyErr: errors.New("degraded: 15 consecutive failed syncs")}, "GET", "/readyz", 503, "degraded: 15 consecutive failed syncs"},
		{"status leader", leader, "GET", "/status", 200, `"slices": 3`},
		{"status leader replica", leader, "GET", "/status", 200, `"leading": true,` + "\n" + `    "leader": "op-a_1"`},
		{"status follower", follower, "GET", "/status", 200, `"leader": "op-a_1"`},
		{"diff", leader, "GET", "/diff", 200, `"added": [` + "\n      \"web-1\""},
		{"diff follower", follower, "GET", "/diff", 503, `no controller runs in this replica (op-b_2, leader "op-a_1")`},
		{"resync", leader, "POST", "/resync?namespace=web", 200, `"namespace": "web",` + "\n" + `  "outOfSync": 3`},
		{"resync all", leader, "POST", "/resync", 200, `"namespace": "",`},
		{"resync needs POST", leader, "GET", "/resync", 405, ""},
		{"resync follower", follower, "POST", "/resync", 503, "no controller runs in this replica"},
		{"resync not synced", &fakeState{ctrl: &fakeController{resync: func(string) (int, error) { return 0, slicer.ErrNotSynced }}},
			"POST", "/resync", 503, "not synced"},
		{"resync error", &fakeState{ctrl: &fakeController{resync: func(string) (int, error) { return 0, errors.New("list slices: boom") }}},
			"POST", "/resync", 500, "boom"},
		{"metrics", leader, "GET", "/metrics", 200, "cilium_operator_ces_sync_total"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			if _, err := observe.NewSlicerMetrics(reg); err != nil {
				t.Fatal(err)
			}
			var mux http.Handler = newMux(tt.state, reg, slog.New(slog.DiscardHandler))
			if adminPaths[strings.Split(tt.path, "?")[0]] {
				mux = newAdminMux(tt.state, slog.New(slog.DiscardHandler))
			}
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), tt.method, tt.path, nil))
			if rec.Code != tt.wantCode || !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Errorf("%s %s = %d %q, want %d and a body containing %q", tt.method, tt.path, rec.Code, rec.Body.String(), tt.wantCode, tt.wantBody)
			}
			if tt.wantCode == http.StatusOK && strings.HasPrefix(tt.wantBody, `"`) {
				if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type = %q, want application/json", ct)
				}
			}
		})
	}
}

// adminPaths are the paths served on --admin-listen only.
var adminPaths = map[string]bool{"/status": true, "/diff": true, "/resync": true}

// TestListenersServeTheirPathsOnly checks that the listener that may face the pod network
// (--listen) serves neither the status, the diff nor the resync, and the admin listener nothing
// else.
func TestListenersServeTheirPathsOnly(t *testing.T) {
	s := &fakeState{ctrl: &fakeController{synced: true, resync: func(string) (int, error) { return 1, nil }}}
	reg := prometheus.NewRegistry()
	public := newMux(s, reg, slog.New(slog.DiscardHandler))
	admin := newAdminMux(s, slog.New(slog.DiscardHandler))
	for _, tt := range []struct {
		method, path string
	}{{"GET", "/metrics"}, {"GET", "/healthz"}, {"GET", "/readyz"}, {"GET", "/status"}, {"GET", "/diff"}, {"POST", "/resync"}, {"GET", "/debug/pprof/"}} {
		for _, m := range []struct {
			name  string
			mux   http.Handler
			serve bool
		}{{"--listen", public, !adminPaths[tt.path] && tt.path != "/debug/pprof/"}, {"--admin-listen", admin, adminPaths[tt.path]}} {
			rec := httptest.NewRecorder()
			m.mux.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), tt.method, tt.path, nil))
			if got := rec.Code != http.StatusNotFound; got != m.serve {
				t.Errorf("%s %s on %s = %d, want served: %t", tt.method, tt.path, m.name, rec.Code, m.serve)
			}
		}
	}
}

// TestStatusFollowerHasNoControllerFields checks that a follower's /status carries no stale or
// zero controller figures.
func TestStatusFollowerHasNoControllerFields(t *testing.T) {
	s := &fakeState{rep: replicaStatus{Identity: "b", Mode: modeElected, Leader: "a"}}
	rec := httptest.NewRecorder()
	newAdminMux(s, slog.New(slog.DiscardHandler)).ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), "GET", "/status", nil))
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"replica"}, slices.Sorted(maps.Keys(got))); diff != "" {
		t.Errorf("follower /status keys (-want +got):\n%s", diff)
	}
}

// TestRunListeners runs the whole program against a real API server and checks, over TCP, that
// --listen serves the probes and metrics but not the admin paths, that --admin-listen serves
// those, and that an admin address that cannot be bound fails the start, names the flag and
// leaves no listener open.
func TestRunListeners(t *testing.T) {
	crds, err := slicer.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	cp := testenv.New(t, testenv.Options{CRDs: crds})
	kc, err := testenv.Kubeconfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"--kubeconfig=" + path, "--leader-elect=false", "--identity-gc=false", "--heartbeat-lease=-"}

	t.Run("both listeners", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		var stderr syncBuffer
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, append(base, "--listen=127.0.0.1:0", "--admin-listen=127.0.0.1:0"), io.Discard, &stderr)
		}()
		defer func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("run did not return 30s after cancel")
			}
		}()
		addrs := map[string]string{}
		re := regexp.MustCompile(`msg=serving flag=(\S+) addr=(http://\S+)`)
		eventually(t, 30*time.Second, "both listeners logged", func() bool {
			for _, m := range re.FindAllStringSubmatch(stderr.String(), -1) {
				addrs[m[1]] = m[2]
			}
			return len(addrs) == 2
		})
		get := func(method, url string) (int, string) {
			req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", method, url, err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		eventually(t, 60*time.Second, "/readyz 200", func() bool {
			code, _ := get("GET", addrs["listen"]+"/readyz")
			return code == http.StatusOK
		})
		for _, tt := range []struct {
			flag, method, path string
			want               int
			body               string
		}{
			{"listen", "GET", "/metrics", 200, "cilium_operator_ces_sync_total"},
			{"listen", "GET", "/healthz", 200, "ok"},
			{"listen", "GET", "/status", 404, ""},
			{"listen", "GET", "/diff", 404, ""},
			{"listen", "POST", "/resync", 404, ""},
			{"admin-listen", "GET", "/status", 200, `"mode": "single"`},
			{"admin-listen", "GET", "/diff", 200, "[]"},
			{"admin-listen", "POST", "/resync?namespace=web", 200, `"outOfSync": 0`},
			{"admin-listen", "GET", "/metrics", 404, ""},
		} {
			code, body := get(tt.method, addrs[tt.flag]+tt.path)
			if code != tt.want || !strings.Contains(body, tt.body) {
				t.Errorf("%s %s on --%s = %d %q, want %d and %q", tt.method, tt.path, tt.flag, code, body, tt.want, tt.body)
			}
		}
	})

	t.Run("admin address taken", func(t *testing.T) {
		taken, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer taken.Close()
		public, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		publicAddr := public.Addr().String()
		public.Close()
		err = run(t.Context(), append(base, "--listen="+publicAddr, "--admin-listen="+taken.Addr().String()), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "flag --admin-listen: listen tcp "+taken.Addr().String()) {
			t.Fatalf("run = %v, want an error naming --admin-listen and its address", err)
		}
		again, err := net.Listen("tcp", publicAddr)
		if err != nil {
			t.Fatalf("--listen's %s still bound after the failed start: %v", publicAddr, err)
		}
		again.Close()
	})
}
