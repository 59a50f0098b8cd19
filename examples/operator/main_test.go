package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

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
			if o.listen != "127.0.0.1:9963" || o.sim.Pods != 0 {
				t.Errorf("listen=%q simulate-pods=%d, want 127.0.0.1:9963 and 0", o.listen, o.sim.Pods)
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
			}
			if diff := cmp.Diff(want, o.cfg); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		},
	}, {
		name: "embedded defaults",
		args: []string{"--embedded"},
		check: func(t *testing.T, o *options) {
			want := simOptions{Pods: 2000, Namespaces: 20, Nodes: 50, Churn: 50}
			if diff := cmp.Diff(want, o.sim); diff != "" {
				t.Errorf("simulation (-want +got):\n%s", diff)
			}
		},
	}, {
		name: "embedded without simulation",
		args: []string{"--embedded", "--simulate-pods=0"},
		check: func(t *testing.T, o *options) {
			if o.sim.Pods != 0 {
				t.Errorf("simulate-pods = %d, want 0", o.sim.Pods)
			}
		},
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
		name:    "simulation needs embedded",
		args:    []string{"--simulate-pods=10"},
		wantErr: "runs only with --embedded",
	}, {
		name:    "embedded and kubeconfig",
		args:    []string{"--embedded", "--kubeconfig=/dev/null"},
		wantErr: "mutually exclusive",
	}, {
		name:    "log level",
		args:    []string{"--log-level=loud"},
		wantErr: `flag --log-level="loud"`,
	}, {
		name:    "arguments",
		args:    []string{"extra"},
		wantErr: "unexpected arguments",
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

func TestHTTP(t *testing.T) {
	synced := &fakeController{
		synced: true,
		status: slicer.Status{Synced: true, Slices: 3},
		diff:   []slicer.SliceDiff{{Slice: "ces-a", Namespace: "web", Op: "update", Added: []string{"web-1"}}},
		resync: func(ns string) (int, error) { return len(ns), nil },
	}
	tests := []struct {
		name     string
		ctrl     *fakeController
		method   string
		path     string
		wantCode int
		wantBody string // substring
	}{
		{"healthz ok", synced, "GET", "/healthz", 200, "ok\n"},
		{"healthz not synced", &fakeController{}, "GET", "/healthz", 503, "not synced"},
		{"healthz degraded", &fakeController{synced: true, status: slicer.Status{Synced: true, Degraded: true, DegradedReason: "15 consecutive failed syncs"}},
			"GET", "/healthz", 503, "degraded: 15 consecutive failed syncs"},
		{"status", synced, "GET", "/status", 200, `"slices": 3`},
		{"diff", synced, "GET", "/diff", 200, `"added": [` + "\n      \"web-1\""},
		{"resync", synced, "POST", "/resync?namespace=web", 200, `"namespace": "web",` + "\n" + `  "outOfSync": 3`},
		{"resync all", synced, "POST", "/resync", 200, `"namespace": "",`},
		{"resync needs POST", synced, "GET", "/resync", 405, ""},
		{"resync not synced", &fakeController{resync: func(string) (int, error) { return 0, slicer.ErrNotSynced }},
			"POST", "/resync", 503, "not synced"},
		{"resync error", &fakeController{resync: func(string) (int, error) { return 0, errors.New("list slices: boom") }},
			"POST", "/resync", 500, "boom"},
		{"metrics", synced, "GET", "/metrics", 200, "cilium_operator_ces_sync_total"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			if _, err := observe.NewSlicerMetrics(reg); err != nil {
				t.Fatal(err)
			}
			mux := newMux(tt.ctrl, reg, slog.New(slog.DiscardHandler))
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
