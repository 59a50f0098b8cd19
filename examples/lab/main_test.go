package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("k8s.io/klog/v2.(*flushDaemon).run.func1"))
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string // substring; "" means success
		check   func(t *testing.T, o *options)
	}{{
		name: "defaults",
		check: func(t *testing.T, o *options) {
			want := simOptions{Pods: 2000, Namespaces: 20, Nodes: 200, Churn: 50}
			if diff := cmp.Diff(want, o.sim); diff != "" {
				t.Errorf("simulation (-want +got):\n%s", diff)
			}
			if o.mode != modeCES || o.listen != "127.0.0.1:9970" || o.duration != time.Minute || o.watchers != 4 || o.noDatapath {
				t.Errorf("mode=%s listen=%s duration=%s watchers=%d no-datapath=%t", o.mode, o.listen, o.duration, o.watchers, o.noDatapath)
			}
			if cfg := o.sliceConfig(); cfg.Shadow || cfg.MaxEndpointsPerSlice != 0 {
				t.Errorf("slice config %+v, want the slicer's defaults", cfg)
			}
		},
	}, {
		name: "sizes and mode",
		args: []string{"--pods=10", "--nodes=2", "--namespaces=1", "--churn=0", "--slice-size=7", "--write-qps=20", "--mode=shadow", "--watchers=0", "--listen=:0"},
		check: func(t *testing.T, o *options) {
			if cfg := o.sliceConfig(); !cfg.Shadow || cfg.MaxEndpointsPerSlice != 7 || cfg.WriteQPS != 20 {
				t.Errorf("slice config %+v", cfg)
			}
			if diff := cmp.Diff(simOptions{Pods: 10, Nodes: 2, Namespaces: 1}, o.sim); diff != "" {
				t.Errorf("simulation (-want +got):\n%s", diff)
			}
		},
	}, {
		name: "attach",
		args: []string{"--kubeconfig=/dev/null", "--duration=10s"},
		check: func(t *testing.T, o *options) {
			if o.mode != modeAttach || !o.sliceConfig().Shadow {
				t.Errorf("mode=%s shadow=%t, want attach in shadow mode", o.mode, o.sliceConfig().Shadow)
			}
		},
	}, {
		name: "attach with shadow mode",
		args: []string{"--kubeconfig=/dev/null", "--mode=shadow"},
		check: func(t *testing.T, o *options) {
			if o.mode != modeAttach {
				t.Errorf("mode=%s, want attach", o.mode)
			}
		},
	}, {
		name:    "attach writes nothing",
		args:    []string{"--kubeconfig=/dev/null", "--mode=ces"},
		wantErr: "flag --mode=ces with --kubeconfig: attached to a cluster the lab runs read-only",
	}, {
		name:    "attach simulates nothing",
		args:    []string{"--kubeconfig=/dev/null", "--pods=10"},
		wantErr: "flag --pods with --kubeconfig",
	}, {
		name:    "mode",
		args:    []string{"--mode=pods"},
		wantErr: `flag --mode="pods": want "ces", "cep" or "shadow"`,
	}, {
		name:    "slice size",
		args:    []string{"--slice-size=1001"},
		wantErr: "flag --slice-size: invalid slicer config: MaxEndpointsPerSlice=1001",
	}, {
		name:    "write qps",
		args:    []string{"--write-qps=-1"},
		wantErr: "flag --write-qps",
	}, {
		name:    "nodes",
		args:    []string{"--nodes=0"},
		wantErr: "flag --nodes=0: must be between 1 and 10000",
	}, {
		name:    "namespaces",
		args:    []string{"--namespaces=0"},
		wantErr: "flag --namespaces=0",
	}, {
		name:    "churn",
		args:    []string{"--churn=-1"},
		wantErr: "flag --churn=-1: must not be negative",
	}, {
		name:    "watchers",
		args:    []string{"--watchers=33"},
		wantErr: "flag --watchers=33",
	}, {
		name:    "interval",
		args:    []string{"--interval=1ms"},
		wantErr: "flag --interval=1ms: must be at least 100ms",
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
