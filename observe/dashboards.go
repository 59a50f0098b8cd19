package observe

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// dashPanel is one chart of ceskit's dashboards; GrafanaDashboard and Workbook render the same list.
type dashPanel struct {
	row     string // section heading the panel sits under
	title   string
	unit    string // Grafana unit id
	stat    bool   // a single-value panel rather than a time series
	width   int    // Grafana grid columns out of 24
	metrics []string
	queries []dashQuery
	// threshold, if not 0, colours the value: green below, red at or above.
	threshold float64
}

type dashQuery struct {
	expr, legend string
}

// dashboardPanels lists the panels. Each names the catalogue metrics its queries read, so
// the generators fail (and the descriptions carry the metrics' help texts) from the catalogue.
func dashboardPanels() []dashPanel {
	const rate = "[5m]"
	return []dashPanel{
		{
			row: "Slices", title: "Slices: desired vs actual", unit: "short", width: 8,
			metrics: []string{"ceskit_slicer_slices"},
			queries: []dashQuery{{`max by (kind) (ceskit_slicer_slices)`, "{{kind}}"}},
		},
		{
			row: "Slices", title: "Endpoints per slice", unit: "short", width: 8,
			metrics: []string{"cilium_operator_number_of_ceps_per_ces"},
			queries: []dashQuery{
				{`histogram_quantile(0.5, sum by (le) (rate(cilium_operator_number_of_ceps_per_ces_bucket` + rate + `)))`, "p50"},
				{`histogram_quantile(0.99, sum by (le) (rate(cilium_operator_number_of_ceps_per_ces_bucket` + rate + `)))`, "p99"},
				{`sum(rate(cilium_operator_number_of_ceps_per_ces_sum` + rate + `)) / sum(rate(cilium_operator_number_of_ceps_per_ces_count` + rate + `))`, "mean"},
			},
		},
		{
			row: "Slices", title: "Controller degraded", unit: "bool_yes_no", stat: true, width: 8, threshold: 1,
			metrics: []string{"ceskit_slicer_degraded"},
			queries: []dashQuery{{`max(ceskit_slicer_degraded)`, "degraded"}},
		},
		{
			row: "Slices", title: "Propagation latency (endpoint change to slice write)", unit: "s", width: 12,
			metrics: []string{"ceskit_slicer_propagation_seconds"},
			queries: []dashQuery{
				{`histogram_quantile(0.5, sum by (le) (rate(ceskit_slicer_propagation_seconds_bucket` + rate + `)))`, "p50"},
				{`histogram_quantile(0.99, sum by (le) (rate(ceskit_slicer_propagation_seconds_bucket` + rate + `)))`, "p99"},
			},
		},
		{
			row: "Slices", title: "Slice sync errors", unit: "ops", width: 12,
			metrics: []string{"cilium_operator_ces_sync_total"},
			queries: []dashQuery{
				{`sum by (failure_type) (rate(cilium_operator_ces_sync_total{outcome="fail"}` + rate + `))`, "fail {{failure_type}}"},
				{`sum(rate(cilium_operator_ces_sync_total{outcome="success"}` + rate + `))`, "success"},
			},
		},
		{
			row: "Slices", title: "Slice API writes", unit: "ops", width: 24,
			metrics: []string{"ceskit_slicer_writes_total", "ceskit_slicer_conflicts_total"},
			queries: []dashQuery{
				{`sum by (verb) (rate(ceskit_slicer_writes_total` + rate + `))`, "{{verb}}"},
				{`sum(rate(ceskit_slicer_conflicts_total` + rate + `))`, "conflicts"},
			},
		},
		{
			row: "Identities", title: "Identity range usage", unit: "percentunit", stat: true, width: 6, threshold: 0.9,
			metrics: []string{"ceskit_identity_usage_ratio"},
			queries: []dashQuery{{`max(ceskit_identity_usage_ratio)`, "usage"}},
		},
		{
			row: "Identities", title: "Identities used vs range size", unit: "short", width: 6,
			metrics: []string{"ceskit_identity_used", "ceskit_identity_space_size"},
			queries: []dashQuery{
				{`max(ceskit_identity_used)`, "used"},
				{`max(ceskit_identity_space_size)`, "size"},
			},
		},
		{
			row: "Identities", title: "Identity GC runs (per hour)", unit: "short", width: 6,
			metrics: []string{"cilium_operator_identity_gc_runs"},
			queries: []dashQuery{{`sum by (outcome) (increase(cilium_operator_identity_gc_runs[1h]))`, "{{outcome}}"}},
		},
		{
			row: "Identities", title: "Identity GC entries", unit: "short", width: 6,
			metrics: []string{"cilium_operator_identity_gc_entries", "cilium_operator_identity_gc_latency"},
			queries: []dashQuery{
				{`sum by (status) (cilium_operator_identity_gc_entries)`, "{{status}}"},
				{`max by (outcome) (cilium_operator_identity_gc_latency)`, "last pass seconds ({{outcome}})"},
			},
		},
		{
			row: "Policy", title: "Policy verdicts by action and direction", unit: "ops", width: 12,
			metrics: []string{"hubble_policy_verdicts_total"},
			queries: []dashQuery{{`sum by (action, direction) (rate(hubble_policy_verdicts_total` + rate + `))`, "{{action}} {{direction}}"}},
		},
		{
			row: "Policy", title: "Policy update latency", unit: "s", width: 12,
			metrics: []string{"cilium_policy_incremental_update_duration"},
			queries: []dashQuery{
				{`histogram_quantile(0.99, sum by (le, scope) (rate(cilium_policy_incremental_update_duration_bucket` + rate + `)))`, "p99 {{scope}}"},
				{`histogram_quantile(0.5, sum by (le) (rate(cilium_policy_incremental_update_duration_bucket` + rate + `)))`, "p50"},
			},
		},
		{
			row: "Policy", title: "Policy changes", unit: "ops", width: 8,
			metrics: []string{"cilium_policy_change_total"},
			queries: []dashQuery{{`sum by (operation, outcome) (rate(cilium_policy_change_total` + rate + `))`, "{{operation}} {{outcome}}"}},
		},
		{
			row: "Policy", title: "Endpoints by policy enforcement", unit: "short", width: 8,
			metrics: []string{"cilium_policy_endpoint_enforcement_status", "cilium_policy"},
			queries: []dashQuery{
				{`sum by (enforcement) (cilium_policy_endpoint_enforcement_status)`, "{{enforcement}}"},
				{`max(cilium_policy)`, "policies"},
			},
		},
		{
			row: "Policy", title: "Policy map overflows (per hour)", unit: "short", width: 8, threshold: 1,
			metrics: []string{"ceskit_policy_map_overflows_total"},
			queries: []dashQuery{{`sum(increase(ceskit_policy_map_overflows_total[1h]))`, "endpoints left fail-closed"}},
		},
		{
			row: "Datapath", title: "Map pressure (policy and datapath maps)", unit: "percentunit", width: 12, threshold: 0.9,
			metrics: []string{"cilium_bpf_map_pressure"},
			queries: []dashQuery{{`max by (map_name) (cilium_bpf_map_pressure)`, "{{map_name}}"}},
		},
		{
			row: "Datapath", title: "Drops by reason", unit: "pps", width: 12,
			metrics: []string{"cilium_drop_count_total"},
			queries: []dashQuery{{`sum by (reason) (rate(cilium_drop_count_total` + rate + `))`, "{{reason}}"}},
		},
		{
			row: "Datapath", title: "Lost verdict events", unit: "ops", width: 12,
			metrics: []string{"hubble_lost_events_total"},
			queries: []dashQuery{{`sum by (source) (rate(hubble_lost_events_total` + rate + `))`, "{{source}}"}},
		},
		{
			row: "Datapath", title: "Failed map operations", unit: "ops", width: 12,
			metrics: []string{"cilium_bpf_map_ops_total"},
			queries: []dashQuery{{`sum by (map_name, operation) (rate(cilium_bpf_map_ops_total{outcome="fail"}` + rate + `))`, "{{map_name}} {{operation}}"}},
		},
	}
}

// catalogPanels returns the panels with their descriptions built from the catalogue's help
// texts, or an error naming a panel that reads a metric the catalogue lacks.
func catalogPanels() ([]dashPanel, []string, error) {
	cat, err := Catalog()
	if err != nil {
		return nil, nil, err
	}
	help := map[string]string{}
	for _, m := range cat {
		help[m.Name] = m.Help
	}
	ps := dashboardPanels()
	descs := make([]string, len(ps))
	for i, p := range ps {
		var d bytes.Buffer
		for _, name := range p.metrics {
			h, ok := help[name]
			if !ok {
				return nil, nil, fmt.Errorf("panel %q: metric %s is not in the catalog", p.title, name)
			}
			if d.Len() > 0 {
				d.WriteString("\n")
			}
			fmt.Fprintf(&d, "%s: %s.", name, h)
		}
		descs[i] = d.String()
	}
	return ps, descs, nil
}

type jsonObj = map[string]any

// marshal encodes v indented, without HTML escaping (PromQL uses < and >), newline-terminated.
func marshalDashboard(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// GrafanaDashboard returns a Grafana dashboard (JSON model, schemaVersion 39) of ceskit's
// metrics: slice counts and packing, propagation latency, sync errors, identity range usage and
// identity GC; policy verdicts, policy update latency, policy changes, enforcement and map
// overflows; map pressure of the policy and datapath maps, drops by reason, lost verdict
// events and failed map operations. Its queries go to a Prometheus data source chosen by the ${datasource} variable.
// The committed copy is dashboards/grafana-ceskit.json.
func GrafanaDashboard() ([]byte, error) {
	ps, descs, err := catalogPanels()
	if err != nil {
		return nil, fmt.Errorf("grafana dashboard: %w", err)
	}
	ds := jsonObj{"type": "prometheus", "uid": "${datasource}"}
	var panels []jsonObj
	id, x, y, rowH := 1, 0, 0, 0
	lastRow := ""
	for i, p := range ps {
		if p.row != lastRow {
			if x > 0 {
				y += rowH
			}
			x, rowH = 0, 0
			panels = append(panels, jsonObj{
				"id": id, "type": "row", "title": p.row, "collapsed": false, "panels": []jsonObj{},
				"gridPos": jsonObj{"h": 1, "w": 24, "x": 0, "y": y},
			})
			id++
			y++
			lastRow = p.row
		}
		const h = 8
		if x+p.width > 24 {
			x, y, rowH = 0, y+rowH, 0
		}
		var targets []jsonObj
		for j, q := range p.queries {
			targets = append(targets, jsonObj{
				"refId": string(rune('A' + j)), "datasource": ds, "expr": q.expr, "legendFormat": q.legend,
				"range": true, "instant": false,
			})
		}
		steps := []jsonObj{{"color": "green", "value": nil}}
		if p.threshold != 0 {
			steps = append(steps, jsonObj{"color": "red", "value": p.threshold})
		}
		typ, options := "timeseries", jsonObj{
			"legend":  jsonObj{"displayMode": "list", "placement": "bottom", "showLegend": true},
			"tooltip": jsonObj{"mode": "multi", "sort": "none"},
		}
		if p.stat {
			typ, options = "stat", jsonObj{
				"colorMode": "background", "graphMode": "area", "justifyMode": "auto", "textMode": "auto",
				"reduceOptions": jsonObj{"calcs": []string{"lastNotNull"}, "fields": "", "values": false},
			}
		}
		panels = append(panels, jsonObj{
			"id": id, "type": typ, "title": p.title, "description": descs[i], "datasource": ds,
			"gridPos": jsonObj{"h": h, "w": p.width, "x": x, "y": y},
			"fieldConfig": jsonObj{
				"defaults": jsonObj{
					"unit":       p.unit,
					"thresholds": jsonObj{"mode": "absolute", "steps": steps},
				},
				"overrides": []jsonObj{},
			},
			"options": options,
			"targets": targets,
		})
		id++
		x += p.width
		rowH = max(rowH, h)
	}
	dash := jsonObj{
		"title":         "ceskit",
		"uid":           "ceskit-overview",
		"description":   "CiliumEndpointSlice controller, identity allocator, policy engine and datapath metrics of ceskit (generated by observe.GrafanaDashboard)",
		"tags":          []string{"ceskit", "cilium"},
		"editable":      true,
		"graphTooltip":  1,
		"schemaVersion": 39,
		"version":       1,
		"refresh":       "30s",
		"time":          jsonObj{"from": "now-6h", "to": "now"},
		"timepicker":    jsonObj{},
		"timezone":      "",
		"annotations":   jsonObj{"list": []jsonObj{}},
		"links":         []jsonObj{},
		"templating": jsonObj{"list": []jsonObj{{
			"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
			"current": jsonObj{}, "hide": 0, "refresh": 1, "regex": "", "options": []jsonObj{}, "includeAll": false, "multi": false,
		}}},
		"panels": panels,
	}
	return marshalDashboard(dash)
}

// workbookPrometheusQueryType is the workbook query type of Azure Monitor managed Prometheus
// (a KqlItem whose query is a PrometheusQueryProvider/1.0 document).
const workbookPrometheusQueryType = 16

// Workbook returns an ARM deployment template holding one Azure Monitor workbook
// (Microsoft.Insights/workbooks@2023-06-01) with the panels of [GrafanaDashboard], its PromQL
// queries run against an Azure Monitor workspace (microsoft.monitor/accounts) that stores
// managed Prometheus metrics. Parameters: azureMonitorWorkspaceId (required; the workbook's
// sourceId), workbookName (a GUID; default newGuid()), workbookDisplayName, location.
// The committed copy is dashboards/workbook-ceskit.json.
func Workbook() ([]byte, error) {
	ps, _, err := catalogPanels()
	if err != nil {
		return nil, fmt.Errorf("workbook: %w", err)
	}
	items := []jsonObj{
		{"type": 1, "name": "title", "content": jsonObj{"json": "# ceskit\n\nCiliumEndpointSlice controller, identity allocator, policy engine and datapath metrics from Azure Monitor managed Prometheus (generated by observe.Workbook)."}},
		{"type": 9, "name": "parameters", "content": jsonObj{
			"version": "KqlParameterItem/1.0", "style": "pills", "queryType": 0, "resourceType": "microsoft.operationalinsights/workspaces",
			"parameters": []jsonObj{
				{
					"id": "4f0a6d1e-3c1b-4f0e-9a57-2d1f6c3a0b01", "version": "KqlParameterItem/1.0", "name": "TimeRange", "label": "Time range",
					"type": 4, "isRequired": true, "value": jsonObj{"durationMs": 21600000},
					"typeSettings": jsonObj{"selectableValues": []jsonObj{
						{"durationMs": 3600000}, {"durationMs": 21600000}, {"durationMs": 86400000}, {"durationMs": 604800000},
					}},
				},
				{
					"id": "4f0a6d1e-3c1b-4f0e-9a57-2d1f6c3a0b02", "version": "KqlParameterItem/1.0", "name": "Workspace", "label": "Azure Monitor workspace",
					"type": 5, "isRequired": true,
					"query":                   "resources\n| where type =~ 'microsoft.monitor/accounts'\n| project id",
					"crossComponentResources": []string{"value::all"},
					"typeSettings":            jsonObj{"resourceTypeFilter": jsonObj{"microsoft.monitor/accounts": true}, "additionalResourceOptions": []string{"value::1"}},
					"defaultValue":            "value::1", "queryType": 1, "resourceType": "microsoft.resourcegraph/resources",
				},
			},
		}},
	}
	lastRow := ""
	for i, p := range ps {
		if p.row != lastRow {
			items = append(items, jsonObj{"type": 1, "name": "row - " + p.row, "content": jsonObj{"json": "## " + p.row}})
			lastRow = p.row
		}
		width := "50"
		if p.width >= 24 {
			width = "100"
		}
		for j, q := range p.queries {
			pq, err := json.Marshal(jsonObj{
				"version": "PrometheusQueryProvider/1.0", "queryText": q.expr, "type": "query_range", "customEndpoint": false,
			})
			if err != nil {
				return nil, fmt.Errorf("workbook: %w", err)
			}
			title := p.title
			if len(p.queries) > 1 {
				title += ": " + q.legend
			}
			vis := "timechart"
			if p.stat {
				vis = "tiles"
			}
			items = append(items, jsonObj{
				"type": 3, "name": fmt.Sprintf("panel %d.%d", i+1, j+1), "customWidth": width,
				"content": jsonObj{
					"version": "KqlItem/1.0", "title": title,
					"query": string(pq), "size": 0, "timeContextFromParameter": "TimeRange",
					"queryType": workbookPrometheusQueryType, "resourceType": "microsoft.monitor/accounts",
					"crossComponentResources": []string{"{Workspace}"}, "visualization": vis,
				},
			})
		}
	}
	data, err := json.Marshal(jsonObj{"version": "Notebook/1.0", "items": items, "fallbackResourceIds": []string{"Azure Monitor"}})
	if err != nil {
		return nil, fmt.Errorf("workbook: %w", err)
	}
	tmpl := jsonObj{
		"$schema":        "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
		"contentVersion": "1.0.0.0",
		"parameters": jsonObj{
			"azureMonitorWorkspaceId": jsonObj{"type": "string", "metadata": jsonObj{"description": "Resource ID of the Azure Monitor workspace (microsoft.monitor/accounts) holding the managed Prometheus metrics; the workbook's source."}},
			"workbookName":            jsonObj{"type": "string", "defaultValue": "[newGuid()]", "metadata": jsonObj{"description": "Resource name of the workbook; must be a GUID."}},
			"workbookDisplayName":     jsonObj{"type": "string", "defaultValue": "ceskit"},
			"location":                jsonObj{"type": "string", "defaultValue": "[resourceGroup().location]"},
		},
		"resources": []jsonObj{{
			"type": "Microsoft.Insights/workbooks", "apiVersion": "2023-06-01",
			"name": "[parameters('workbookName')]", "location": "[parameters('location')]", "kind": "shared",
			"properties": jsonObj{
				"displayName":    "[parameters('workbookDisplayName')]",
				"serializedData": string(data),
				"version":        "Notebook/1.0",
				"category":       "workbook",
				"sourceId":       "[parameters('azureMonitorWorkspaceId')]",
				"description":    "ceskit slice, identity, policy and datapath metrics (generated by observe.Workbook)",
			},
		}},
	}
	return marshalDashboard(tmpl)
}
