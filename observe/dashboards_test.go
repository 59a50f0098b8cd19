package observe_test

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ceskit/ceskit/observe"
)

// promMetrics returns the metric names a PromQL expression selects, histogram suffixes
// (_bucket, _sum, _count) stripped. It is a small tokenizer, not a parser: an identifier is a
// metric name unless it is a keyword or aggregation operator, a function or aggregation (followed by "("), inside a
// label matcher ({...}), a range or subquery ([...]), a string, or the label list of a
// by/without/on/ignoring/group_left/group_right clause.
func promMetrics(expr string) []string {
	keywords := map[string]bool{
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
		"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
		"inf": true, "nan": true,
		// Aggregation operators may be followed by a by/without clause instead of "(".
		"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
		"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
		"limitk": true, "limit_ratio": true,
	}
	grouping := map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}
	isStart := func(c byte) bool { return c == '_' || c == ':' || (c|0x20) >= 'a' && (c|0x20) <= 'z' }
	isPart := func(c byte) bool { return isStart(c) || c >= '0' && c <= '9' }
	var names []string
	braces, brackets := 0, 0
	skipParen := false // the next "(" opens a grouping label list
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(expr) && expr[j] != c {
				if expr[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			i = j + 1
		case c == '{':
			braces++
			i++
		case c == '}':
			braces--
			i++
		case c == '[':
			brackets++
			i++
		case c == ']':
			brackets--
			i++
		case c == '(' && skipParen:
			j := strings.IndexByte(expr[i:], ')')
			if j < 0 {
				return names
			}
			i += j + 1
			skipParen = false
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isPart(expr[i]) || expr[i] == '.') {
				i++
			}
		case isStart(c):
			j := i
			for j < len(expr) && isPart(expr[j]) {
				j++
			}
			word := expr[i:j]
			k := j
			for k < len(expr) && expr[k] == ' ' {
				k++
			}
			next := byte(0)
			if k < len(expr) {
				next = expr[k]
			}
			switch {
			case braces > 0 || brackets > 0:
			case grouping[strings.ToLower(word)]:
				skipParen = true
			case keywords[strings.ToLower(word)]:
			case next == '(':
			default:
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if s, ok := strings.CutSuffix(word, suffix); ok {
						word = s
						break
					}
				}
				if !slices.Contains(names, word) {
					names = append(names, word)
				}
			}
			i = j
		default:
			i++
		}
	}
	return names
}

func TestPromMetrics(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`max by (kind) (ceskit_slicer_slices)`, []string{"ceskit_slicer_slices"}},
		{`histogram_quantile(0.99, sum by (le) (rate(a_seconds_bucket{job="x",le!="y"}[5m])))`, []string{"a_seconds"}},
		{`sum(rate(b_sum[5m])) / sum(rate(b_count[5m:1m] offset 1h))`, []string{"b"}},
		{`x{kind="actual"} - ignoring(kind) y{kind="desired"} > bool 0`, []string{"x", "y"}},
		{`sum without (instance) (z) or on (a, b) group_left (c) w`, []string{"z", "w"}},
		{`label_replace(m, "dst", "$1", "src", "(.*)")`, []string{"m"}},
		{`1e3 * 0.5`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, promMetrics(tt.expr)); diff != "" {
				t.Errorf("promMetrics(%q) (-want +got):\n%s", tt.expr, diff)
			}
		})
	}
}

// grafanaExprs returns the PromQL of every target of a Grafana dashboard, checking its shape.
func grafanaExprs(t *testing.T, out []byte) []string {
	t.Helper()
	var dash struct {
		Title         string `json:"title"`
		UID           string `json:"uid"`
		SchemaVersion int    `json:"schemaVersion"`
		Templating    struct {
			List []struct {
				Name, Type, Query string
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Type       string `json:"type"`
			Title      string `json:"title"`
			Datasource struct {
				Type, UID string
			} `json:"datasource"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(out, &dash); err != nil {
		t.Fatalf("grafana dashboard is not valid JSON: %v", err)
	}
	if dash.Title == "" || dash.UID == "" || dash.SchemaVersion < 36 {
		t.Errorf("grafana dashboard: title %q, uid %q, schemaVersion %d", dash.Title, dash.UID, dash.SchemaVersion)
	}
	if !slices.ContainsFunc(dash.Templating.List, func(v struct{ Name, Type, Query string }) bool {
		return v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus"
	}) {
		t.Errorf("grafana dashboard has no Prometheus datasource variable: %+v", dash.Templating.List)
	}
	var exprs []string
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("grafana panel %q: datasource %+v, %d targets", p.Title, p.Datasource, len(p.Targets))
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	return exprs
}

// workbookExprs returns the PromQL of every managed-Prometheus query of a workbook ARM template,
// checking its shape.
func workbookExprs(t *testing.T, out []byte) []string {
	t.Helper()
	var tmpl struct {
		Schema     string         `json:"$schema"`
		Parameters map[string]any `json:"parameters"`
		Resources  []struct {
			Type       string `json:"type"`
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Properties struct {
				SerializedData string `json:"serializedData"`
				Version        string `json:"version"`
				Category       string `json:"category"`
				SourceID       string `json:"sourceId"`
			} `json:"properties"`
		} `json:"resources"`
	}
	if err := json.Unmarshal(out, &tmpl); err != nil {
		t.Fatalf("workbook is not valid JSON: %v", err)
	}
	if !strings.Contains(tmpl.Schema, "deploymentTemplate.json") || len(tmpl.Resources) != 1 {
		t.Fatalf("workbook: $schema %q, %d resources; want an ARM template with one resource", tmpl.Schema, len(tmpl.Resources))
	}
	if _, ok := tmpl.Parameters["azureMonitorWorkspaceId"]; !ok {
		t.Errorf("workbook template has no azureMonitorWorkspaceId parameter")
	}
	r := tmpl.Resources[0]
	if r.Type != "Microsoft.Insights/workbooks" || r.APIVersion != "2023-06-01" || r.Kind != "shared" ||
		r.Properties.Category != "workbook" || r.Properties.SourceID == "" {
		t.Errorf("workbook resource: %+v", r)
	}
	var data struct {
		Version string            `json:"version"`
		Items   []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal([]byte(r.Properties.SerializedData), &data); err != nil {
		t.Fatalf("workbook serializedData is not valid JSON: %v", err)
	}
	if data.Version != "Notebook/1.0" || len(data.Items) == 0 {
		t.Errorf("workbook serializedData: version %q, %d items", data.Version, len(data.Items))
	}
	var exprs []string
	for _, raw := range data.Items {
		var item struct {
			Type    int `json:"type"`
			Content struct {
				Query        string `json:"query"`
				QueryType    int    `json:"queryType"`
				ResourceType string `json:"resourceType"`
			} `json:"content"`
		}
		if err := json.Unmarshal(raw, &item); err != nil {
			t.Fatalf("workbook item: %v", err)
		}
		if item.Type != 3 {
			continue
		}
		if item.Content.QueryType != 16 || item.Content.ResourceType != "microsoft.monitor/accounts" {
			t.Errorf("workbook query item: queryType %d, resourceType %q; want 16, microsoft.monitor/accounts",
				item.Content.QueryType, item.Content.ResourceType)
		}
		var pq struct {
			Version   string `json:"version"`
			QueryText string `json:"queryText"`
		}
		if err := json.Unmarshal([]byte(item.Content.Query), &pq); err != nil {
			t.Fatalf("workbook query is not a PrometheusQueryProvider document: %v", err)
		}
		if pq.Version != "PrometheusQueryProvider/1.0" {
			t.Errorf("workbook query version %q", pq.Version)
		}
		exprs = append(exprs, pq.QueryText)
	}
	return exprs
}

func TestDashboards(t *testing.T) {
	cat, err := observe.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, m := range cat {
		known[m.Name] = true
	}
	tests := []struct {
		name     string
		generate func() ([]byte, error)
		exprs    func(*testing.T, []byte) []string
	}{
		{"grafana", observe.GrafanaDashboard, grafanaExprs},
		{"workbook", observe.Workbook, workbookExprs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := tt.generate()
			if err != nil {
				t.Fatal(err)
			}
			exprs := tt.exprs(t, out)
			if len(exprs) < 5 {
				t.Fatalf("%d queries; want at least 5", len(exprs))
			}
			used := map[string]bool{}
			for _, e := range exprs {
				names := promMetrics(e)
				if len(names) == 0 {
					t.Errorf("query %q selects no metric", e)
				}
				for _, n := range names {
					used[n] = true
					if !known[n] {
						t.Errorf("query %q reads %s, which is not in observe.Catalog()", e, n)
					}
				}
			}
			for _, want := range []string{
				"ceskit_slicer_slices", "cilium_operator_number_of_ceps_per_ces", "ceskit_slicer_degraded",
				"ceskit_slicer_propagation_seconds", "cilium_operator_ces_sync_total",
				"ceskit_identity_usage_ratio", "cilium_operator_identity_gc_runs",
				"hubble_policy_verdicts_total", "cilium_drop_count_total", "cilium_bpf_map_pressure",
				"hubble_lost_events_total", "cilium_policy_incremental_update_duration",
			} {
				if !used[want] {
					t.Errorf("no panel reads %s", want)
				}
			}
		})
	}
}

func TestDashboardFiles(t *testing.T) {
	tests := []struct {
		file     string
		generate func() ([]byte, error)
	}{
		{"grafana-ceskit.json", observe.GrafanaDashboard},
		{"workbook-ceskit.json", observe.Workbook},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			out, err := tt.generate()
			if err != nil {
				t.Fatal(err)
			}
			checkGenerated(t, filepath.Join("dashboards", tt.file), out)
		})
	}
}
