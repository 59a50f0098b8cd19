package observe_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/yaml"

	"github.com/ceskit/ceskit/observe"
)

// The -update flag (go test ./observe -run TestAlertFiles -update) rewrites observe/alerts/*.
// Other test files of this package may define the same flag; whichever runs first defines it
// and alertsUpdating reads it at use time.
var _ = func() bool {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite generated files instead of comparing them")
	}
	return true
}()

func alertsUpdating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// TestAlertFiles compares the committed renderings under observe/alerts/ with the Go
// definitions, and rewrites them with -update.
func TestAlertFiles(t *testing.T) {
	for _, tc := range []struct {
		file   string
		render func() ([]byte, error)
	}{
		{"prometheus-rules.yaml", observe.PrometheusRules},
		{"azure-prometheus-rule-group.json", observe.PrometheusRuleGroupARM},
		{"azure-scheduled-query-rules.json", observe.ScheduledQueryRulesARM},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got, err := tc.render()
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("alerts", tc.file)
			if alertsUpdating() {
				if err := os.MkdirAll("alerts", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (regenerate with: go test ./observe -run TestAlertFiles -update)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s is out of date; regenerate with: go test ./observe -run TestAlertFiles -update\n(-want +got):\n%s", path, diff)
			}
		})
	}
}

// TestAlertRenderings checks the shape of the renderings: every rule in each, ARM types and API
// versions, and the scheduled query being the KQL library's.
func TestAlertRenderings(t *testing.T) {
	rules := observe.AlertRules()
	names := make([]string, len(rules))
	for i, r := range rules {
		names[i] = r.Name
		if r.Severity != observe.SeverityCritical && r.Severity != observe.SeverityWarning {
			t.Errorf("rule %s: severity %q", r.Name, r.Severity)
		}
		if r.Summary == "" || r.Description == "" {
			t.Errorf("rule %s: summary or description empty", r.Name)
		}
		if _, err := pqParse(r.Expr); err != nil {
			t.Errorf("rule %s: %v", r.Name, err)
		}
	}

	y, err := observe.PrometheusRules()
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert, Expr, For string
				Labels           map[string]string
			}
		}
	}
	if err := yamlUnmarshal(y, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Groups) != 1 || file.Groups[0].Name != "ceskit" {
		t.Fatalf("groups = %+v, want one named ceskit", file.Groups)
	}
	var got []string
	for i, r := range file.Groups[0].Rules {
		got = append(got, r.Alert)
		if r.Expr != rules[i].Expr || r.Labels["severity"] != rules[i].Severity {
			t.Errorf("rule %s rendered as %+v", rules[i].Name, r)
		}
	}
	if diff := cmp.Diff(names, got); diff != "" {
		t.Errorf("prometheus rule names (-want +got):\n%s", diff)
	}

	var group struct {
		Resources []struct {
			Type, APIVersion string
			Properties       struct {
				Rules []struct {
					Alert, Expression, For string
					Severity               int
				}
			}
		}
	}
	b, err := observe.PrometheusRuleGroupARM()
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &group); err != nil {
		t.Fatal(err)
	}
	if len(group.Resources) != 1 || group.Resources[0].Type != "Microsoft.AlertsManagement/prometheusRuleGroups" || group.Resources[0].APIVersion != "2023-03-01" {
		t.Fatalf("rule group resources = %+v", group.Resources)
	}
	got = nil
	for _, r := range group.Resources[0].Properties.Rules {
		got = append(got, r.Alert)
	}
	if diff := cmp.Diff(names, got); diff != "" {
		t.Errorf("rule group rule names (-want +got):\n%s", diff)
	}

	var sq struct {
		Resources []struct {
			Type, APIVersion, Kind string
			Properties             struct {
				Criteria struct {
					AllOf []struct{ Query, MetricMeasureColumn string }
				}
			}
		}
	}
	b, err = observe.ScheduledQueryRulesARM()
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &sq); err != nil {
		t.Fatal(err)
	}
	if len(sq.Resources) != 1 || sq.Resources[0].Type != "Microsoft.Insights/scheduledQueryRules" || sq.Resources[0].APIVersion != "2023-12-01" || sq.Resources[0].Kind != "LogAlert" {
		t.Fatalf("scheduled query resources = %+v", sq.Resources)
	}
	var denied string
	for _, q := range observe.Queries() {
		if q.Name == "denied-flows-by-namespace" {
			denied = q.KQL
		}
	}
	allOf := sq.Resources[0].Properties.Criteria.AllOf
	if len(allOf) != 1 || allOf[0].Query != denied || !strings.Contains(denied, allOf[0].MetricMeasureColumn+" = ") {
		t.Errorf("scheduled query criteria = %+v, want the query denied-flows-by-namespace", allOf)
	}
}

// TestAlertRulesUseExistingMetrics checks that every series an alert selects is one ceskit's
// metrics adapters register, with the label values it matches: the series that exist from the
// start, and those that the policy engine, the datapath and the flow log create as they report
// (a policy verdict that was dropped, the fill of the datapath's policy maps).
func TestAlertRulesUseExistingMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := observe.NewSlicerMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := observe.NewIdentityMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := observe.NewPolicyMetrics(reg); err != nil {
		t.Fatal(err)
	}
	dm, err := observe.NewDatapathMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	dm.MapPressure("ceskit_policy", 1, 2)
	fm, err := observe.NewFlowMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	denied := deniedTCPFlow()
	if err := fm.Write(t.Context(), observe.Record{Flow: &denied}); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	// series: exposed name → label sets of its series.
	series := map[string][]map[string]string{}
	for _, mf := range mfs {
		name := mf.GetName()
		for _, m := range mf.GetMetric() {
			ls := map[string]string{}
			for _, lp := range m.GetLabel() {
				ls[lp.GetName()] = lp.GetValue()
			}
			if mf.GetType() == dto.MetricType_HISTOGRAM {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					series[name+s] = append(series[name+s], ls)
				}
				continue
			}
			series[name] = append(series[name], ls)
		}
	}
	for _, r := range observe.AlertRules() {
		n, err := pqParse(r.Expr)
		if err != nil {
			t.Fatalf("rule %s: %v", r.Name, err)
		}
		for _, sel := range pqSelectors(n) {
			sets, ok := series[sel.name]
			if !ok {
				t.Errorf("rule %s selects %s, which no ceskit metric exposes", r.Name, sel.name)
				continue
			}
			if !slices.ContainsFunc(sets, sel.matches) {
				t.Errorf("rule %s: no series of %s matches %v", r.Name, sel.name, sel.matchers)
			}
		}
	}
}

// TestAlertRulesEvaluate evaluates each rule, as promtool's rule tests do, on synthetic series
// (scraped every 30 s, values in promtool's "a+bxn" notation) that must make it fire and on
// series that must not.
func TestAlertRulesEvaluate(t *testing.T) {
	const (
		fail    = `cilium_operator_ces_sync_total{outcome="fail",failure_type="transient"}`
		success = `cilium_operator_ces_sync_total{outcome="success",failure_type=""}`
		gcFail  = `cilium_operator_identity_gc_runs{outcome="fail",identity_type="crd"}`
		gcOK    = `cilium_operator_identity_gc_runs{outcome="success",identity_type="crd"}`
	)
	// propagation returns the buckets of ceskit_slicer_propagation_seconds after each scrape
	// adds perScrape[le] observations at or below le (non-cumulative), for 60 scrapes.
	propagation := func(perScrape map[string]float64) map[string]string {
		les := []string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "+Inf"}
		out := map[string]string{}
		cum := 0.0
		for _, le := range les {
			cum += perScrape[le]
			out[fmt.Sprintf(`ceskit_slicer_propagation_seconds_bucket{le=%q}`, le)] = fmt.Sprintf("0+%gx60", cum)
		}
		return out
	}
	pressure := func(mapName string) string { return fmt.Sprintf(`cilium_bpf_map_pressure{map_name=%q}`, mapName) }
	lost := func(source string) string { return fmt.Sprintf(`hubble_lost_events_total{source=%q}`, source) }
	// verdicts names a series of hubble_policy_verdicts_total, of one scrape target if instance
	// is given.
	verdicts := func(action, direction string, instance ...string) string {
		extra := ""
		if len(instance) > 0 {
			extra = fmt.Sprintf(`,instance=%q`, instance[0])
		}
		return fmt.Sprintf(`hubble_policy_verdicts_total{action=%q,direction=%q,match="none"%s}`, action, direction, extra)
	}
	for _, tc := range []struct {
		rule   string
		name   string
		series map[string]string
		fires  bool
	}{
		{"CeskitSliceSyncFailing", "failures rising", map[string]string{fail: "0+1x60", success: "0+10x60"}, true},
		{"CeskitSliceSyncFailing", "no failures", map[string]string{fail: "0+0x60", success: "0+10x60"}, false},
		{"CeskitSliceSyncFailing", "failures stopped 10m ago", map[string]string{fail: "0+1x40 40+0x20", success: "0+10x60"}, false},
		{"CeskitSlicerDegraded", "degraded for 20m", map[string]string{"ceskit_slicer_degraded": "0+0x20 1+0x40"}, true},
		{"CeskitSlicerDegraded", "recovered", map[string]string{"ceskit_slicer_degraded": "1+0x40 0+0x20"}, false},
		{"CeskitSlicerDegraded", "degraded for 2m only", map[string]string{"ceskit_slicer_degraded": "0+0x56 1+0x4"}, false},
		{"CeskitSlicePropagationSlow", "p99 in (0.25, 0.5]", propagation(map[string]float64{"0.05": 8, "0.5": 2}), true},
		{"CeskitSlicePropagationSlow", "p99 below 25 ms", propagation(map[string]float64{"0.01": 5, "0.025": 5}), false},
		{"CeskitSlicePropagationSlow", "no writes", propagation(nil), false},
		{"CeskitIdentityRangeNearlyExhausted", "95% used", map[string]string{"ceskit_identity_usage_ratio": "0.5+0.01x45 0.95+0x15"}, true},
		{"CeskitIdentityRangeNearlyExhausted", "89% used", map[string]string{"ceskit_identity_usage_ratio": "0.89+0x60"}, false},
		{"CeskitIdentityGCFailing", "a pass failed 5m ago", map[string]string{gcFail: "0+0x50 1+0x10", gcOK: "0+1x60"}, true},
		{"CeskitIdentityGCFailing", "failures only long ago", map[string]string{gcFail: "2+0x120", gcOK: "0+1x120"}, false},
		{"CeskitPolicyMapPressureHigh", "engine's map 95% full", map[string]string{
			pressure("cilium_policy"): "0.5+0.01x45 0.95+0x15", pressure("ceskit_policy"): "0.2+0x60",
		}, true},
		{"CeskitPolicyMapPressureHigh", "datapath's LPM map 92% full", map[string]string{
			pressure("cilium_policy"): "0.1+0x60", pressure("ceskit_policy_lpm"): "0.92+0x60",
		}, true},
		{"CeskitPolicyMapPressureHigh", "policy maps at 90% exactly", map[string]string{
			pressure("cilium_policy"): "0.9+0x60", pressure("ceskit_policy"): "0.9+0x60",
		}, false},
		{"CeskitPolicyMapPressureHigh", "full for 5m only", map[string]string{pressure("ceskit_policy"): "0.5+0x50 0.99+0x10"}, false},
		{"CeskitPolicyMapPressureHigh", "a non-policy map full", map[string]string{
			pressure("cilium_policy"): "0.3+0x60", pressure("ceskit_ipcache4"): "0.99+0x60", pressure("ceskit_ct"): "1+0x60",
		}, false},
		// 45 denials per 30 s scrape at ingress and 15 at egress: 2/s in all.
		{"CeskitDeniedFlowsHigh", "2 denied flows per second", map[string]string{
			verdicts("dropped", "ingress"): "0+45x60", verdicts("dropped", "egress"): "0+15x60", verdicts("forwarded", "ingress"): "0+300x60",
		}, true},
		// Two nodes at 0.75/s each: the cluster-wide sum is over the threshold.
		{"CeskitDeniedFlowsHigh", "two nodes together", map[string]string{
			verdicts("dropped", "ingress", "a"): "0+22.5x60", verdicts("dropped", "ingress", "b"): "0+22.5x60",
		}, true},
		{"CeskitDeniedFlowsHigh", "0.5 denied flows per second", map[string]string{
			verdicts("dropped", "ingress"): "0+15x60", verdicts("forwarded", "ingress"): "0+3000x60",
		}, false},
		{"CeskitDeniedFlowsHigh", "audited, not denied", map[string]string{verdicts("audit", "ingress"): "0+300x60"}, false},
		{"CeskitDeniedFlowsHigh", "burst stopped 10m ago", map[string]string{verdicts("dropped", "ingress"): "0+300x40 12000+0x20"}, false},
		{"CeskitVerdictEventsLost", "ring buffer losing events", map[string]string{
			lost("ring_buffer"): "0+10x60", lost("rate_limit"): "0+0x60",
		}, true},
		{"CeskitVerdictEventsLost", "no losses", map[string]string{lost("ring_buffer"): "0+0x60", lost("rate_limit"): "0+0x60"}, false},
		{"CeskitVerdictEventsLost", "one burst 15m ago", map[string]string{lost("rate_limit"): "0+0x20 500+0x40"}, false},
	} {
		t.Run(tc.rule+"/"+tc.name, func(t *testing.T) {
			var rule *observe.AlertRule
			for _, r := range observe.AlertRules() {
				if r.Name == tc.rule {
					rule = &r
				}
			}
			if rule == nil {
				t.Fatalf("no rule %s", tc.rule)
			}
			db, end, err := pqLoad(tc.series, 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			n, err := pqParse(rule.Expr)
			if err != nil {
				t.Fatal(err)
			}
			fires, err := pqFiring(n, db, end, rule.For)
			if err != nil {
				t.Fatal(err)
			}
			if fires != tc.fires {
				t.Errorf("%s at the end of the series: firing = %v, want %v", rule.Expr, fires, tc.fires)
			}
		})
	}
}

// TestPQEvaluator checks the tiny evaluator against values computed by hand from Prometheus'
// documented rate/increase extrapolation and histogram_quantile interpolation (Prometheus' own
// engine was not run: it would pull a large dependency tree).
func TestPQEvaluator(t *testing.T) {
	db, end, err := pqLoad(map[string]string{
		`c{a="x"}`:               "0+3x20", // 3 per 30 s: rate 0.1/s
		`h_bucket{le="0.1"}`:     "0+1x20",
		`h_bucket{le="1"}`:       "0+3x20",
		`h_bucket{le="+Inf"}`:    "0+4x20",
		`g`:                      "7+0x20",
		`r{a="y"}`:               "0+10x10 0+10x10", // counter reset
		`c{a="other",b="label"}`: "0+0x20",
		`m{n="pol_a",k="x"}`:     "0.5+0x20",
		`m{n="pol_b",k="x"}`:     "0.7+0x20",
		`m{n="pol_b",k="y"}`:     "0.9+0x20",
		`m{n="ct",k="x"}`:        "1+0x20",
	}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		expr string
		want float64 // NaN: empty result
	}{
		{`rate(c{a="x"}[5m])`, 0.1},
		{`increase(c{a="x"}[5m])`, 30},
		{`rate(c{a="x"}[5m]) > 0.1`, math.NaN()},
		{`rate(c{a="x"}[5m]) >= 0.1`, 0.1},
		{`g == 7`, 7},
		{`g >= 8`, math.NaN()},
		{`rate(r{a="y"}[5m])`, 10.0 / 30},
		// 4 observations per scrape: rank 0.5*4=2 in (0.1, 1] at 1 of 2 → 0.1 + 0.9*0.5.
		{`histogram_quantile(0.5, sum by (le) (rate(h_bucket[5m])))`, 0.55},
		// rank 0.99*4 = 3.96 falls in the +Inf bucket: the highest finite bound.
		{`histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))`, 1},
		{`max(m)`, 1},
		{`max(m{n=~"pol_.*"})`, 0.9},
		{`max(m{n!~"pol_.*"})`, 1},
		{`max(m{n=~"pol"})`, math.NaN()}, // regular expressions are anchored
		{`max by (n) (m{n=~"pol_a|ct"}) >= 1`, 1},
		{`sum by (n) (m{n="pol_b"})`, 1.6},
		{`max by (n) (m{k="x"}) > 0.9`, 1},
	} {
		n, err := pqParse(tc.expr)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		v, err := n.eval(db, end)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		if math.IsNaN(tc.want) {
			if len(v.vec) != 0 {
				t.Errorf("%s = %v, want empty", tc.expr, v.vec)
			}
			continue
		}
		if len(v.vec) != 1 || math.Abs(v.vec[0].v-tc.want) > 1e-9 {
			t.Errorf("%s = %v, want one sample %g", tc.expr, v.vec, tc.want)
		}
	}
}

// ---- A tiny PromQL evaluator for exactly the expression shapes the alert rules use:
// instant and range selectors with =, !=, =~ and !~ matchers, rate and increase (with
// Prometheus' extrapolation and counter-reset handling), sum and max (optionally by labels),
// histogram_quantile, and filtering comparisons against a number. Prometheus' engine itself (github.com/prometheus/prometheus)
// would bring a large dependency tree for this one test.

type pqPoint struct {
	t float64 // seconds
	v float64
}

type pqSeries struct {
	labels map[string]string // including __name__
	points []pqPoint
}

type pqDB []pqSeries

type pqElem struct {
	labels map[string]string
	v      float64
}

type pqValue struct {
	scalar   *float64
	vec      []pqElem
	matrix   []pqSeries // range selector result: points within the range
	rangeSec float64
}

type pqNode interface {
	eval(db pqDB, t float64) (pqValue, error)
}

// pqLoad reads series written as `name{l="v",...}` → promtool values "a+bxn a+bxn …" (each
// segment a, a+b, …, a+n·b), one point every step from time 0, and returns the time of the
// latest point.
func pqLoad(in map[string]string, step time.Duration) (pqDB, float64, error) {
	var db pqDB
	end := 0.0
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		n, err := pqParse(k)
		if err != nil {
			return nil, 0, err
		}
		sel, ok := n.(*pqSelector)
		if !ok || sel.rangeSec != 0 {
			return nil, 0, fmt.Errorf("series %q: not an instant selector", k)
		}
		labels := map[string]string{"__name__": sel.name}
		for _, m := range sel.matchers {
			labels[m.name] = m.value
		}
		s := pqSeries{labels: labels}
		i := 0
		for _, seg := range strings.Fields(in[k]) {
			a, rest, _ := strings.Cut(seg, "+")
			start, err := strconv.ParseFloat(a, 64)
			if err != nil {
				return nil, 0, fmt.Errorf("series %q: %w", k, err)
			}
			inc, count := 0.0, 0
			if rest != "" {
				b, c, ok := strings.Cut(rest, "x")
				if !ok {
					return nil, 0, fmt.Errorf("series %q: segment %q", k, seg)
				}
				if inc, err = strconv.ParseFloat(b, 64); err != nil {
					return nil, 0, fmt.Errorf("series %q: %w", k, err)
				}
				if count, err = strconv.Atoi(c); err != nil {
					return nil, 0, fmt.Errorf("series %q: %w", k, err)
				}
			}
			for j := 0; j <= count; j++ {
				s.points = append(s.points, pqPoint{t: float64(i) * step.Seconds(), v: start + float64(j)*inc})
				i++
			}
		}
		end = math.Max(end, s.points[len(s.points)-1].t)
		db = append(db, s)
	}
	return db, end, nil
}

// pqFiring reports whether an alert with expression n and hold time forDur fires at end: n
// returns samples at every evaluation (each minute) from end-forDur to end.
func pqFiring(n pqNode, db pqDB, end float64, forDur time.Duration) (bool, error) {
	for t := end - forDur.Seconds(); t <= end; t += 60 {
		v, err := n.eval(db, t)
		if err != nil {
			return false, err
		}
		if len(v.vec) == 0 {
			return false, nil
		}
	}
	return true, nil
}

type pqMatcher struct {
	name, op, value string
	re              *regexp.Regexp // for =~ and !~: value, fully anchored as in Prometheus
}

type pqSelector struct {
	name     string
	matchers []pqMatcher
	rangeSec float64
}

func (s *pqSelector) matches(ls map[string]string) bool {
	for _, m := range s.matchers {
		var ok bool
		switch m.op {
		case "=":
			ok = ls[m.name] == m.value
		case "!=":
			ok = ls[m.name] != m.value
		case "=~":
			ok = m.re.MatchString(ls[m.name])
		case "!~":
			ok = !m.re.MatchString(ls[m.name])
		}
		if !ok {
			return false
		}
	}
	return true
}

func (s *pqSelector) eval(db pqDB, t float64) (pqValue, error) {
	const lookback = 300
	var out pqValue
	for _, ser := range db {
		if ser.labels["__name__"] != s.name || !s.matches(ser.labels) {
			continue
		}
		if s.rangeSec > 0 {
			w := pqSeries{labels: ser.labels}
			for _, p := range ser.points {
				if p.t > t-s.rangeSec && p.t <= t {
					w.points = append(w.points, p)
				}
			}
			out.matrix = append(out.matrix, w)
			continue
		}
		var last *pqPoint
		for i, p := range ser.points {
			if p.t > t-lookback && p.t <= t {
				last = &ser.points[i]
			}
		}
		if last != nil {
			out.vec = append(out.vec, pqElem{labels: ser.labels, v: last.v})
		}
	}
	out.rangeSec = s.rangeSec
	return out, nil
}

type pqNumber float64

func (n pqNumber) eval(pqDB, float64) (pqValue, error) {
	v := float64(n)
	return pqValue{scalar: &v}, nil
}

type pqCall struct {
	fn   string
	args []pqNode
}

func (c *pqCall) eval(db pqDB, t float64) (pqValue, error) {
	switch c.fn {
	case "rate", "increase":
		if len(c.args) != 1 {
			return pqValue{}, fmt.Errorf("%s takes one argument", c.fn)
		}
		m, err := c.args[0].eval(db, t)
		if err != nil {
			return pqValue{}, err
		}
		if m.rangeSec == 0 {
			return pqValue{}, fmt.Errorf("%s needs a range vector", c.fn)
		}
		var out pqValue
		for _, s := range m.matrix {
			if v, ok := pqExtrapolatedRate(s.points, t-m.rangeSec, t, c.fn == "rate"); ok {
				out.vec = append(out.vec, pqElem{labels: pqWithout(s.labels, "__name__"), v: v})
			}
		}
		return out, nil
	case "histogram_quantile":
		if len(c.args) != 2 {
			return pqValue{}, fmt.Errorf("histogram_quantile takes two arguments")
		}
		q, err := c.args[0].eval(db, t)
		if err != nil {
			return pqValue{}, err
		}
		if q.scalar == nil {
			return pqValue{}, fmt.Errorf("histogram_quantile: first argument is not a number")
		}
		v, err := c.args[1].eval(db, t)
		if err != nil {
			return pqValue{}, err
		}
		return pqValue{vec: pqHistogramQuantile(*q.scalar, v.vec)}, nil
	}
	return pqValue{}, fmt.Errorf("unsupported function %s", c.fn)
}

// pqExtrapolatedRate is Prometheus' extrapolatedRate (promql/functions.go) for counters.
func pqExtrapolatedRate(ps []pqPoint, rangeStart, rangeEnd float64, isRate bool) (float64, bool) {
	if len(ps) < 2 {
		return 0, false
	}
	first, last := ps[0], ps[len(ps)-1]
	result := last.v - first.v
	for i := 1; i < len(ps); i++ {
		if ps[i].v < ps[i-1].v {
			result += ps[i-1].v
		}
	}
	durationToStart := first.t - rangeStart
	durationToEnd := rangeEnd - last.t
	sampled := last.t - first.t
	avg := sampled / float64(len(ps)-1)
	if result > 0 && first.v >= 0 {
		if toZero := sampled * (first.v / result); toZero < durationToStart {
			durationToStart = toZero
		}
	}
	threshold := avg * 1.1
	interval := sampled
	if durationToStart < threshold {
		interval += durationToStart
	} else {
		interval += avg / 2
	}
	if durationToEnd < threshold {
		interval += durationToEnd
	} else {
		interval += avg / 2
	}
	factor := interval / sampled
	if isRate {
		factor /= rangeEnd - rangeStart
	}
	return result * factor, true
}

// pqHistogramQuantile is Prometheus' bucketQuantile over the classic buckets in vec, grouped by
// their labels other than le.
func pqHistogramQuantile(q float64, vec []pqElem) []pqElem {
	type bucket struct{ upper, count float64 }
	groups := map[string][]bucket{}
	glabels := map[string]map[string]string{}
	for _, e := range vec {
		upper, err := strconv.ParseFloat(e.labels["le"], 64)
		if err != nil {
			continue
		}
		ls := pqWithout(e.labels, "le")
		k := fmt.Sprint(ls)
		groups[k] = append(groups[k], bucket{upper, e.v})
		glabels[k] = ls
	}
	var out []pqElem
	for k, bs := range groups {
		sort.Slice(bs, func(i, j int) bool { return bs[i].upper < bs[j].upper })
		v := math.NaN()
		switch {
		case q < 0:
			v = math.Inf(-1)
		case q > 1:
			v = math.Inf(1)
		case len(bs) < 2 || !math.IsInf(bs[len(bs)-1].upper, 1):
		default:
			for i := 1; i < len(bs); i++ { // ensure monotonic
				bs[i].count = math.Max(bs[i].count, bs[i-1].count)
			}
			obs := bs[len(bs)-1].count
			if obs == 0 {
				break
			}
			rank := q * obs
			b := sort.Search(len(bs)-1, func(i int) bool { return bs[i].count >= rank })
			switch {
			case b == len(bs)-1:
				v = bs[len(bs)-2].upper
			case b == 0 && bs[0].upper <= 0:
				v = bs[0].upper
			default:
				start, end, count := 0.0, bs[b].upper, bs[b].count
				if b > 0 {
					start = bs[b-1].upper
					count -= bs[b-1].count
					rank -= bs[b-1].count
				}
				v = start + (end-start)*(rank/count)
			}
		}
		out = append(out, pqElem{labels: glabels[k], v: v})
	}
	return out
}

// pqAgg is an aggregation: sum or max, optionally by labels.
type pqAgg struct {
	op   string // "sum" or "max"
	by   []string
	expr pqNode
}

func (s *pqAgg) eval(db pqDB, t float64) (pqValue, error) {
	v, err := s.expr.eval(db, t)
	if err != nil {
		return pqValue{}, err
	}
	sums := map[string]*pqElem{}
	var order []string
	for _, e := range v.vec {
		ls := map[string]string{}
		for _, l := range s.by {
			if val, ok := e.labels[l]; ok {
				ls[l] = val
			}
		}
		k := fmt.Sprint(ls)
		if sums[k] == nil {
			sums[k] = &pqElem{labels: ls, v: e.v}
			order = append(order, k)
			continue
		}
		switch s.op {
		case "sum":
			sums[k].v += e.v
		case "max":
			sums[k].v = math.Max(sums[k].v, e.v)
		}
	}
	var out pqValue
	for _, k := range order {
		out.vec = append(out.vec, *sums[k])
	}
	return out, nil
}

type pqCompare struct {
	op   string
	l, r pqNode
}

func (c *pqCompare) eval(db pqDB, t float64) (pqValue, error) {
	l, err := c.l.eval(db, t)
	if err != nil {
		return pqValue{}, err
	}
	r, err := c.r.eval(db, t)
	if err != nil {
		return pqValue{}, err
	}
	if r.scalar == nil {
		return pqValue{}, fmt.Errorf("right side of %s is not a number", c.op)
	}
	var out pqValue
	for _, e := range l.vec {
		x, y := e.v, *r.scalar
		var keep bool
		switch c.op {
		case "==":
			keep = x == y
		case "!=":
			keep = x != y
		case ">":
			keep = x > y
		case ">=":
			keep = x >= y
		case "<":
			keep = x < y
		case "<=":
			keep = x <= y
		}
		if keep {
			out.vec = append(out.vec, e)
		}
	}
	return out, nil
}

func pqWithout(ls map[string]string, drop string) map[string]string {
	out := make(map[string]string, len(ls))
	for k, v := range ls {
		if k != drop {
			out[k] = v
		}
	}
	return out
}

// pqSelectors returns the selectors in n.
func pqSelectors(n pqNode) []*pqSelector {
	switch n := n.(type) {
	case *pqSelector:
		return []*pqSelector{n}
	case *pqCall:
		var out []*pqSelector
		for _, a := range n.args {
			out = append(out, pqSelectors(a)...)
		}
		return out
	case *pqAgg:
		return pqSelectors(n.expr)
	case *pqCompare:
		return append(pqSelectors(n.l), pqSelectors(n.r)...)
	}
	return nil
}

// Parser.

type pqParser struct {
	toks []string
	pos  int
}

func pqParse(s string) (pqNode, error) {
	toks, err := pqLex(s)
	if err != nil {
		return nil, err
	}
	p := &pqParser{toks: toks}
	n, err := p.expr()
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", s, err)
	}
	if p.pos != len(p.toks) {
		return nil, fmt.Errorf("parse %q: unexpected %q", s, p.toks[p.pos])
	}
	return n, nil
}

func pqLex(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			i++
		case strings.HasPrefix(s[i:], "==") || strings.HasPrefix(s[i:], "!=") || strings.HasPrefix(s[i:], ">=") || strings.HasPrefix(s[i:], "<=") ||
			strings.HasPrefix(s[i:], "=~") || strings.HasPrefix(s[i:], "!~"):
			toks = append(toks, s[i:i+2])
			i += 2
		case strings.ContainsRune("(){},=<>", rune(c)):
			toks = append(toks, string(c))
			i++
		case c == '[':
			j := strings.IndexByte(s[i:], ']')
			if j < 0 {
				return nil, fmt.Errorf("unclosed [ in %q", s)
			}
			toks = append(toks, s[i:i+j+1])
			i += j + 1
		case c == '"':
			j := strings.IndexByte(s[i+1:], '"')
			if j < 0 {
				return nil, fmt.Errorf("unclosed string in %q", s)
			}
			toks = append(toks, s[i:i+j+2])
			i += j + 2
		default:
			j := i
			for j < len(s) && (s[j] == '_' || s[j] == ':' || s[j] == '.' || s[j] == '+' && j == i ||
				s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			if j == i {
				return nil, fmt.Errorf("unexpected %q in %q", c, s)
			}
			toks = append(toks, s[i:j])
			i = j
		}
	}
	return toks, nil
}

func (p *pqParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *pqParser) next() string {
	t := p.peek()
	p.pos++
	return t
}

func (p *pqParser) expect(t string) error {
	if got := p.next(); got != t {
		return fmt.Errorf("want %q, got %q", t, got)
	}
	return nil
}

func (p *pqParser) expr() (pqNode, error) {
	l, err := p.term()
	if err != nil {
		return nil, err
	}
	switch op := p.peek(); op {
	case "==", "!=", ">", ">=", "<", "<=":
		p.next()
		r, err := p.term()
		if err != nil {
			return nil, err
		}
		return &pqCompare{op: op, l: l, r: r}, nil
	}
	return l, nil
}

func (p *pqParser) term() (pqNode, error) {
	tok := p.next()
	if tok == "" {
		return nil, fmt.Errorf("unexpected end")
	}
	if f, err := strconv.ParseFloat(tok, 64); err == nil {
		return pqNumber(f), nil
	}
	switch {
	case tok == "sum" || tok == "max":
		s := &pqAgg{op: tok}
		if p.peek() == "by" {
			p.next()
			if err := p.expect("("); err != nil {
				return nil, err
			}
			for p.peek() != ")" {
				l := p.next()
				if l == "" {
					return nil, fmt.Errorf("unclosed by (")
				}
				if l != "," {
					s.by = append(s.by, l)
				}
			}
			p.next()
		}
		if err := p.expect("("); err != nil {
			return nil, err
		}
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		s.expr = e
		return s, p.expect(")")
	case p.peek() == "(":
		p.next()
		c := &pqCall{fn: tok}
		for {
			a, err := p.expr()
			if err != nil {
				return nil, err
			}
			c.args = append(c.args, a)
			if p.peek() != "," {
				break
			}
			p.next()
		}
		return c, p.expect(")")
	}
	sel := &pqSelector{name: tok}
	if p.peek() == "{" {
		p.next()
		for p.peek() != "}" {
			name, op, val := p.next(), p.next(), p.next()
			if op != "=" && op != "!=" && op != "=~" && op != "!~" || !strings.HasPrefix(val, `"`) {
				return nil, fmt.Errorf("matcher %s%s%s", name, op, val)
			}
			m := pqMatcher{name: name, op: op, value: strings.Trim(val, `"`)}
			if op == "=~" || op == "!~" {
				re, err := regexp.Compile("^(?:" + m.value + ")$")
				if err != nil {
					return nil, fmt.Errorf("matcher %s%s%s: %w", name, op, val, err)
				}
				m.re = re
			}
			sel.matchers = append(sel.matchers, m)
			if p.peek() == "," {
				p.next()
			}
		}
		p.next()
	}
	if r := p.peek(); strings.HasPrefix(r, "[") {
		p.next()
		d, err := time.ParseDuration(strings.Trim(r, "[]"))
		if err != nil {
			return nil, fmt.Errorf("range %s: %w", r, err)
		}
		sel.rangeSec = d.Seconds()
	}
	return sel, nil
}

// yamlUnmarshal decodes YAML through JSON, case-insensitively like encoding/json.
func yamlUnmarshal(b []byte, v any) error {
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return err
	}
	return json.NewDecoder(bytes.NewReader(j)).Decode(v)
}
