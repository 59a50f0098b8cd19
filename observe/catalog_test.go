package observe_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ceskit/ceskit/observe"
)

// updateFlag rewrites the generated files (METRICS.md, dashboards/*.json) instead of comparing
// them: go test ./observe -run 'TestMetricsDoc|TestDashboardFiles' -update
// Another test file of this package may define the same flag; whichever initializes first
// defines it and the other reuses it.
var updateFlag = func() *flag.Flag {
	if f := flag.Lookup("update"); f != nil {
		return f
	}
	flag.Bool("update", false, "rewrite generated files instead of comparing them")
	return flag.Lookup("update")
}()

func updating() bool { return updateFlag.Value.String() == "true" }

// checkGenerated compares got with the file at path, or writes it with -update.
func checkGenerated(t *testing.T, path string, got []byte) {
	t.Helper()
	if updating() {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v (run go test ./observe -update to generate it)", path, err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s is out of date; run go test ./observe -update (-want +got):\n%s", path, diff)
	}
}

func TestCatalog(t *testing.T) {
	cat, err := observe.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]observe.MetricInfo{}
	for i, m := range cat {
		if i > 0 && cat[i-1].Name >= m.Name {
			t.Errorf("catalog not sorted by name: %s before %s", cat[i-1].Name, m.Name)
		}
		if m.Help == "" {
			t.Errorf("%s has no help text", m.Name)
		}
		byName[m.Name] = m
	}
	tests := []struct {
		want   observe.MetricInfo
		series []string
	}{
		{
			want: observe.MetricInfo{
				Name: "ceskit_slicer_propagation_seconds", Type: "histogram", Labels: []string{}, Component: "slicer",
			},
			series: []string{"ceskit_slicer_propagation_seconds_bucket", "ceskit_slicer_propagation_seconds_sum", "ceskit_slicer_propagation_seconds_count"},
		},
		{
			want: observe.MetricInfo{
				Name: "cilium_operator_ces_sync_total", Type: "counter", Labels: []string{"failure_type", "outcome"}, Component: "slicer",
			},
			series: []string{"cilium_operator_ces_sync_total"},
		},
		{
			want: observe.MetricInfo{
				Name: "cilium_operator_number_of_cep_changes_per_ces", Type: "histogram", Labels: []string{"opcode"}, Component: "slicer",
			},
			series: []string{"cilium_operator_number_of_cep_changes_per_ces_bucket", "cilium_operator_number_of_cep_changes_per_ces_sum", "cilium_operator_number_of_cep_changes_per_ces_count"},
		},
		{
			want: observe.MetricInfo{
				Name: "ceskit_watcher_source_switches_total", Type: "counter", Labels: []string{"from", "to"}, Component: "watcher",
			},
			series: []string{"ceskit_watcher_source_switches_total"},
		},
		{
			want: observe.MetricInfo{
				Name: "cilium_operator_identity_gc_entries", Type: "gauge", Labels: []string{"identity_type", "status"}, Component: "identity",
			},
			series: []string{"cilium_operator_identity_gc_entries"},
		},
		{
			want: observe.MetricInfo{
				Name: "ceskit_identity_usage_ratio", Type: "gauge", Labels: []string{}, Component: "identity",
			},
			series: []string{"ceskit_identity_usage_ratio"},
		},
		{
			want: observe.MetricInfo{
				Name: "cilium_policy_change_total", Type: "counter", Labels: []string{"operation", "outcome", "source"}, Component: "policy",
			},
			series: []string{"cilium_policy_change_total"},
		},
		{
			want: observe.MetricInfo{
				Name: "cilium_policy_incremental_update_duration", Type: "histogram", Labels: []string{"scope"}, Component: "policy",
			},
			series: []string{"cilium_policy_incremental_update_duration_bucket", "cilium_policy_incremental_update_duration_sum", "cilium_policy_incremental_update_duration_count"},
		},
		{
			want: observe.MetricInfo{
				Name: "cilium_bpf_map_pressure", Type: "gauge", Labels: []string{"map_name"}, Component: "policy, datapath",
			},
			series: []string{"cilium_bpf_map_pressure"},
		},
		{
			want: observe.MetricInfo{
				Name: "cilium_drop_count_total", Type: "counter", Labels: []string{"direction", "reason"}, Component: "datapath",
			},
			series: []string{"cilium_drop_count_total"},
		},
		{
			want: observe.MetricInfo{
				Name: "hubble_policy_verdicts_total", Type: "counter", Labels: []string{"action", "direction", "match"}, Component: "flow",
			},
			series: []string{"hubble_policy_verdicts_total"},
		},
		{
			want: observe.MetricInfo{
				Name: "ceskit_metrics_errors_total", Type: "counter", Labels: []string{"metric"}, Component: "policy, datapath, flow",
			},
			series: []string{"ceskit_metrics_errors_total"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.want.Name, func(t *testing.T) {
			got, ok := byName[tt.want.Name]
			if !ok {
				t.Fatalf("%s not in catalog", tt.want.Name)
			}
			got.Help = "" // help texts are the adapters' business
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("catalog entry (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.series, got.Series()); diff != "" {
				t.Errorf("Series() (-want +got):\n%s", diff)
			}
		})
	}
	// The README documents 11 slicer, 4 watcher, 10 identity, 10 policy, 5 datapath and 4 flow
	// metrics, of which cilium_bpf_map_pressure is shared by policy and datapath, and the
	// registry's error counter, which policy, datapath and flow all register.
	count := map[string]int{}
	for _, m := range cat {
		count[m.Component]++
	}
	want := map[string]int{
		"slicer": 11, "watcher": 4, "identity": 10, "policy": 9, "datapath": 4, "flow": 4,
		"policy, datapath": 1, "policy, datapath, flow": 1,
	}
	if diff := cmp.Diff(want, count); diff != "" {
		t.Errorf("metrics per component (-want +got):\n%s", diff)
	}
}

// metricsDoc renders METRICS.md from the catalogue.
func metricsDoc(cat []observe.MetricInfo) []byte {
	var b bytes.Buffer
	b.WriteString("# ceskit metrics\n\n")
	b.WriteString("<!-- Generated from observe.Catalog() by TestMetricsDoc; do not edit.\n")
	b.WriteString("     Regenerate: go test ./observe -run TestMetricsDoc -update -->\n\n")
	b.WriteString("Every metric the Prometheus adapters of package `observe` export (`NewSlicerMetrics`,\n")
	b.WriteString("`NewWatcherMetrics`, `NewIdentityMetrics`, `NewPolicyMetrics`, `NewDatapathMetrics`,\n")
	b.WriteString("`NewFlowMetrics`). A metric several adapters share lists them all under Component.\n")
	b.WriteString("README.md explains what each one means and which label values it takes; `dashboards/`\n")
	b.WriteString("holds dashboards built from this list.\n\n")
	b.WriteString("| Name | Type | Component | Labels | Series | Help |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, m := range cat {
		labels := "–"
		if len(m.Labels) > 0 {
			labels = "`" + strings.Join(m.Labels, "`, `") + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | `%s` | %s |\n",
			m.Name, m.Type, m.Component, labels, strings.Join(m.Series(), "`, `"),
			strings.ReplaceAll(m.Help, "|", `\|`))
	}
	return b.Bytes()
}

func TestMetricsDoc(t *testing.T) {
	cat, err := observe.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	checkGenerated(t, "METRICS.md", metricsDoc(cat))
}
