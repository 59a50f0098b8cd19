package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"k8s.io/client-go/rest"

	"github.com/ceskit/ceskit/examples/agent/agent"
	"github.com/ceskit/ceskit/identity"
	"github.com/ceskit/ceskit/internal/crdinstall"
	"github.com/ceskit/ceskit/internal/testenv"
	"github.com/ceskit/ceskit/observe"
	"github.com/ceskit/ceskit/policy"
	"github.com/ceskit/ceskit/slicer"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("k8s.io/klog/v2.(*flushDaemon).run.func1"))
}

func TestParseFlags(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, o *options)
	}{{
		name: "defaults",
		env:  map[string]string{"NODE_NAME": "aks-1"},
		check: func(t *testing.T, o *options) {
			if o.nodeName != "aks-1" || o.metricsAddr != "127.0.0.1:9964" || o.noDatapath || o.auditLog != "" ||
				o.policyMode != policy.ModeAKS || o.heartbeatLease != slicer.DefaultHeartbeatLease || o.bpfPinPath != "" {
				t.Errorf("defaults: %+v", o)
			}
		},
	}, {
		name: "every flag",
		args: []string{"--node-name=n2", "--kubeconfig=/k", "--audit-log=-", "--metrics-addr=:1", "--policy-mode=spec",
			"--bpf-pin-path=/sys/fs/bpf/x", "--netns=/var/run/netns/n", "--report-allowed", "--heartbeat-lease=-",
			"--endpoint-source=ciliumendpoints", "--log-level=debug"},
		env: map[string]string{"NODE_NAME": "ignored"},
		check: func(t *testing.T, o *options) {
			if o.nodeName != "n2" || o.kubeconfig != "/k" || o.auditLog != "-" || o.metricsAddr != ":1" || o.policyMode != policy.ModeSpec ||
				o.bpfPinPath != "/sys/fs/bpf/x" || o.netns != "/var/run/netns/n" || !o.reportAllowed || o.heartbeatLease != "-" ||
				o.source != "ciliumendpoints" || o.logLevel.String() != "DEBUG" {
				t.Errorf("parsed: %+v", o)
			}
		},
	}, {
		name:    "node name required",
		wantErr: "flag --node-name: required",
	}, {
		name:    "policy mode",
		args:    []string{"--node-name=n", "--policy-mode=strict"},
		wantErr: `flag --policy-mode="strict"`,
	}, {
		name:    "log level",
		args:    []string{"--node-name=n", "--log-level=loud"},
		wantErr: `flag --log-level: invalid log level "loud"`,
	}, {
		name:    "lease",
		args:    []string{"--node-name=n", "--heartbeat-lease=nolease"},
		wantErr: "HeartbeatLease=nolease",
	}, {
		name:    "source",
		args:    []string{"--node-name=n", "--endpoint-source=pods"},
		wantErr: "Source=pods",
	}, {
		name:    "pinning without datapath",
		args:    []string{"--node-name=n", "--no-datapath", "--bpf-pin-path=/sys/fs/bpf/x"},
		wantErr: "need the datapath",
	}, {
		name:    "arguments",
		args:    []string{"--node-name=n", "extra"},
		wantErr: "unexpected arguments",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(tc.args, io.Discard, env(tc.env))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, o)
		})
	}
}

type fakeStatus struct {
	mu sync.Mutex
	st agent.Status
}

func (f *fakeStatus) Status() agent.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func TestHTTP(t *testing.T) {
	f := &fakeStatus{st: agent.Status{Node: "n1", Mode: agent.ModeNoDatapath}}
	var runErr atomic.Pointer[error]
	levels := observe.NewLogLevels(0, components...)
	reg := prometheus.NewRegistry()
	srv := httptest.NewServer(newMux(f, &runErr, reg, levels, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	get := func(method, path string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("GET", "/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, body := get("GET", "/readyz"); code != 503 || !strings.Contains(body, "not synced") {
		t.Errorf("/readyz before sync = %d %q", code, body)
	}
	f.mu.Lock()
	f.st.Synced = true
	f.mu.Unlock()
	if code, body := get("GET", "/readyz"); code != 503 || !strings.Contains(body, "local endpoints") {
		t.Errorf("/readyz before the first pass = %d %q", code, body)
	}
	f.mu.Lock()
	f.st.Ready = true
	f.mu.Unlock()
	if code, _ := get("GET", "/readyz"); code != 200 {
		t.Errorf("/readyz when ready = %d", code)
	}
	code, body := get("GET", "/status")
	var st agent.Status
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil || st.Node != "n1" {
		t.Errorf("/status = %d %v %+v", code, err, st)
	}
	if code, body := get("PUT", "/loglevel?component=policy&level=debug"); code != 200 || !strings.Contains(body, `"policy":"DEBUG"`) {
		t.Errorf("PUT /loglevel = %d %q", code, body)
	}
	if code, _ := get("PUT", "/loglevel?component=nope&level=debug"); code != 404 {
		t.Errorf("PUT /loglevel unknown component = %d", code)
	}
	if code, _ := get("GET", "/metrics"); code != 200 {
		t.Errorf("/metrics = %d", code)
	}
	err := errors.New("watch failed")
	runErr.Store(&err)
	if code, body := get("GET", "/healthz"); code != 503 || !strings.Contains(body, "watch failed") {
		t.Errorf("/healthz after a failure = %d %q", code, body)
	}
}

// TestRun runs the binary's run against a real API server: no-datapath mode when asked, and the
// datapath when it can (as root), else the no-datapath fallback with the reason. It serves the
// HTTP API and stops on cancel.
func TestRun(t *testing.T) {
	cfg := controlPlane(t)
	kc, err := testenv.Kubeconfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no-datapath", []string{"--no-datapath"}},
		{"auto", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			audit := filepath.Join(t.TempDir(), "audit.log")
			args := append([]string{"--kubeconfig=" + kubeconfig, "--node-name=run-1", "--metrics-addr=127.0.0.1:0",
				"--audit-log=" + audit, "--heartbeat-lease=-", "--log-level=warn"}, tc.args...)
			ctx, cancel := context.WithCancel(context.Background())
			started := make(chan string, 1)
			done := make(chan error, 1)
			go func() { done <- run(ctx, args, io.Discard, io.Discard, started) }()
			var addr string
			select {
			case addr = <-started:
			case err := <-done:
				cancel()
				t.Fatalf("run returned early: %v", err)
			}
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("run: %v", err)
				}
			}()
			deadline := time.Now().Add(20 * time.Second)
			for {
				resp, err := http.Get("http://" + addr + "/readyz")
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == 200 {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("/readyz never 200 (last %v)", err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			resp, err := http.Get("http://" + addr + "/status")
			if err != nil {
				t.Fatal(err)
			}
			var st agent.Status
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.name == "no-datapath":
				if st.Mode != agent.ModeNoDatapath || st.ModeReason != "disabled by --no-datapath" {
					t.Errorf("mode %q (%q)", st.Mode, st.ModeReason)
				}
			case os.Geteuid() == 0:
				if st.Mode != agent.ModeDatapath {
					t.Errorf("as root: mode %q (%q), want datapath", st.Mode, st.ModeReason)
				}
			default:
				if st.Mode != agent.ModeNoDatapath || !strings.HasPrefix(st.ModeReason, "not running as root") {
					t.Errorf("not root: mode %q (%q), want the no-datapath fallback", st.Mode, st.ModeReason)
				}
			}
			if st.Node != "run-1" || !st.Synced || st.PolicySources["networkpolicies"] != "watching" {
				t.Errorf("status %+v", st)
			}
			resp, err = http.Get("http://" + addr + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, m := range []string{"cilium_policy ", "ceskit_watcher_source", "go_goroutines"} {
				if !strings.Contains(string(b), m) {
					t.Errorf("/metrics lacks %s", m)
				}
			}
			if st.Mode == agent.ModeDatapath && !strings.Contains(string(b), "cilium_drop_count_total") {
				t.Error("/metrics lacks the datapath's counters")
			}
			if _, err := os.Stat(audit); err != nil {
				t.Errorf("audit log not created: %v", err)
			}
		})
	}
}

// controlPlane starts a kube-apiserver with the CRDs the agent reads, stopped when the test ends.
func controlPlane(t *testing.T) *rest.Config {
	t.Helper()
	crds, err := slicer.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	ids, err := identity.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("../../policy/crds/*.yaml")
	if err != nil || len(files) != 2 {
		t.Fatalf("policy CRDs: %v (%d files)", err, len(files))
	}
	var docs [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, b)
	}
	pols, err := crdinstall.Decode(docs...)
	if err != nil {
		t.Fatal(err)
	}
	cp := testenv.New(t, testenv.Options{CRDs: append(append(crds, ids...), pols...)})
	return cp.Config
}
