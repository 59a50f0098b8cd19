package azure

import (
	"encoding/json"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestExportTemplate(t *testing.T) {
	s := fxPodSubnet()
	s.MonitoringWorkspaceID = fxWorkspace
	s.ACNS = &ACNS{Observability: true, Security: true}
	// The golden file holds the template without observe's resources, which observe's own
	// tests pin; the merge is checked below.
	plain, err := ExportTemplate(s, ExportOptions{})
	if err != nil {
		t.Fatalf("ExportTemplate: %v", err)
	}
	golden(t, "export_podsubnet.golden", plain)
	data, err := ExportTemplate(s, ExportOptions{Monitoring: true})
	if err != nil {
		t.Fatalf("ExportTemplate with monitoring: %v", err)
	}

	var tmpl map[string]any
	if err := json.Unmarshal(data, &tmpl); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	for _, k := range []string{"$schema", "contentVersion", "parameters", "resources"} {
		if _, ok := tmpl[k]; !ok {
			t.Errorf("template lacks %s", k)
		}
	}
	if tmpl["$schema"] != ARMTemplateSchema {
		t.Errorf("$schema %v", tmpl["$schema"])
	}

	// Every parameters('x') names a declared parameter.
	params := tmpl["parameters"].(map[string]any)
	ref := regexp.MustCompile(`parameters\('([^']+)'\)`)
	for _, m := range ref.FindAllStringSubmatch(string(data), -1) {
		if _, ok := params[m[1]]; !ok {
			t.Errorf("template references undeclared parameter %s", m[1])
		}
	}
	for name, p := range params {
		if _, ok := p.(map[string]any)["type"]; !ok {
			t.Errorf("parameter %s has no type", name)
		}
	}
	if got := at(params, "clusterName", "defaultValue"); got != s.Name {
		t.Errorf("clusterName default %v, want %s", got, s.Name)
	}
	if got := at(params, "workspaceId", "defaultValue"); got != fxWorkspace {
		t.Errorf("workspaceId default %v", got)
	}

	// Resource types and api-versions, in order.
	type rt struct{ Type, APIVersion string }
	var got []rt
	resources := tmpl["resources"].([]any)
	for _, r := range resources {
		m := r.(map[string]any)
		got = append(got, rt{m["type"].(string), m["apiVersion"].(string)})
		if m["name"] == nil {
			t.Errorf("resource %v has no name", m["type"])
		}
	}
	want := []rt{
		{"Microsoft.Network/virtualNetworks", "2025-05-01"},
		{"Microsoft.ContainerService/managedClusters", "2025-10-01"},
		{"Microsoft.AlertsManagement/prometheusRuleGroups", "2023-03-01"},
		{"Microsoft.Insights/scheduledQueryRules", "2023-12-01"},
		{"Microsoft.Insights/workbooks", "2023-06-01"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("resources (-want +got):\n%s", diff)
	}

	// The cluster is the body the plan sends, depending on the VNet.
	cluster := resources[1].(map[string]any)
	p, err := Plan(t.Context(), s, nil)
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	if err := json.Unmarshal(p.Steps[len(p.Steps)-1].Body, &body); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"properties", "identity", "location"} {
		if diff := cmp.Diff(body[k], cluster[k]); diff != "" {
			t.Errorf("cluster %s differs from the plan's body (-plan +template):\n%s", k, diff)
		}
	}
	if diff := cmp.Diff([]any{"[resourceId('Microsoft.Network/virtualNetworks', 'ces-vnet')]"}, cluster["dependsOn"]); diff != "" {
		t.Errorf("dependsOn (-want +got):\n%s", diff)
	}
	var vnetBody map[string]any
	if err := json.Unmarshal(p.Steps[1].Body, &vnetBody); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(vnetBody["properties"], resources[0].(map[string]any)["properties"]); diff != "" {
		t.Errorf("VNet properties differ from the plan's body (-plan +template):\n%s", diff)
	}
}

func TestExportTemplateWithoutVNetOrMonitoring(t *testing.T) {
	data, err := ExportTemplate(fxOverlay(), ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var tmpl struct {
		Parameters map[string]any   `json:"parameters"`
		Resources  []map[string]any `json:"resources"`
	}
	if err := json.Unmarshal(data, &tmpl); err != nil {
		t.Fatal(err)
	}
	if len(tmpl.Resources) != 1 || tmpl.Resources[0]["type"] != "Microsoft.ContainerService/managedClusters" || tmpl.Resources[0]["dependsOn"] != nil {
		t.Errorf("resources %v", tmpl.Resources)
	}
	if len(tmpl.Parameters) != 0 {
		t.Errorf("parameters %v", tmpl.Parameters)
	}
}

func TestExportTemplateEscapesLiteralExpressions(t *testing.T) {
	s := fxOverlay()
	s.Tags = map[string]string{"note": "[not an expression]"}
	data, err := ExportTemplate(s, ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var tmpl struct {
		Resources []map[string]any `json:"resources"`
	}
	if err := json.Unmarshal(data, &tmpl); err != nil {
		t.Fatal(err)
	}
	if got := at(tmpl.Resources[0], "tags", "note"); got != "[[not an expression]" {
		t.Errorf("tag %v, want it escaped with [[", got)
	}
}

func TestExportTemplateValidates(t *testing.T) {
	s := fxOverlay()
	s.Pools[0].MaxPods = 500
	_, err := ExportTemplate(s, ExportOptions{})
	if ps := problems(t, err); !hasProblem(ps, CodeInvalidMaxPods, "pools[0].maxPods") {
		t.Errorf("problems %v", ps)
	}
}
