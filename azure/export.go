package azure

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/ceskit/ceskit/observe"
)

// ARMTemplateSchema is the $schema of the deployment templates [ExportTemplate] writes
// (resource-group scope).
const ARMTemplateSchema = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"

// ExportOptions are the per-call settings of [ExportTemplate]. The zero value exports the VNet
// (when the spec has one) and the cluster.
type ExportOptions struct {
	// Monitoring adds the Azure Monitor resources of package observe: the managed Prometheus
	// rule group ([observe.PrometheusRuleGroupARM]), the log search alert
	// ([observe.ScheduledQueryRulesARM]) and the workbook ([observe.Workbook]), with their
	// parameters (clusterName defaults to the cluster's name, workspaceId to
	// ClusterSpec.MonitoringWorkspaceID when set). Default false.
	Monitoring bool
}

// ExportTemplate returns s.WithDefaults() as an ARM deployment template (resource-group scope,
// schema [ARMTemplateSchema]) that `az deployment group create --template-file` accepts: the
// VNet with its subnets (Microsoft.Network/virtualNetworks@[NetworkAPIVersion]) when s.VNet is
// set, and the cluster (Microsoft.ContainerService/managedClusters@s.APIVersion, depending on
// the VNet) whose properties are exactly the body [Plan] sends to create it. With
// opts.Monitoring, observe's templates are merged in: their parameters and resources join the
// template's. It validates s first and returns [Validate]'s [*ValidationError].
func ExportTemplate(s ClusterSpec, opts ExportOptions) ([]byte, error) {
	d := s.WithDefaults()
	if err := Validate(d); err != nil {
		return nil, err
	}
	tmpl := armTemplateDoc{
		Schema:         ARMTemplateSchema,
		ContentVersion: "1.0.0.0",
		Parameters:     map[string]map[string]any{},
		Resources:      []map[string]any{},
	}
	var dependsOn []string
	if d.VNet != nil {
		vn, err := armResource(vnetModel(d), "Microsoft.Network/virtualNetworks", NetworkAPIVersion, d.VNet.Name)
		if err != nil {
			return nil, fmt.Errorf("export template: %w", err)
		}
		tmpl.Resources = append(tmpl.Resources, vn)
		dependsOn = append(dependsOn, fmt.Sprintf("[resourceId('Microsoft.Network/virtualNetworks', '%s')]", d.VNet.Name))
	}
	mc, err := armResource(d.managedCluster(), "Microsoft.ContainerService/managedClusters", d.APIVersion, d.Name)
	if err != nil {
		return nil, fmt.Errorf("export template: %w", err)
	}
	if dependsOn != nil {
		mc["dependsOn"] = dependsOn
	}
	tmpl.Resources = append(tmpl.Resources, mc)

	if opts.Monitoring {
		sources := []struct {
			name   string
			render func() ([]byte, error)
		}{
			{"prometheus rule group", observe.PrometheusRuleGroupARM},
			{"scheduled query rules", observe.ScheduledQueryRulesARM},
			{"workbook", observe.Workbook},
		}
		for _, src := range sources {
			data, err := src.render()
			if err != nil {
				return nil, fmt.Errorf("export template: %s: %w", src.name, err)
			}
			if err := tmpl.merge(data); err != nil {
				return nil, fmt.Errorf("export template: merge %s: %w", src.name, err)
			}
		}
		if p, ok := tmpl.Parameters["clusterName"]; ok {
			p["defaultValue"] = d.Name
		}
		if p, ok := tmpl.Parameters["workspaceId"]; ok && d.MonitoringWorkspaceID != "" {
			p["defaultValue"] = d.MonitoringWorkspaceID
		}
	}

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(tmpl); err != nil {
		return nil, fmt.Errorf("export template: %w", err)
	}
	return buf.Bytes(), nil
}

// armTemplateDoc is a deployment template.
type armTemplateDoc struct {
	Schema         string                    `json:"$schema"`
	ContentVersion string                    `json:"contentVersion"`
	Parameters     map[string]map[string]any `json:"parameters"`
	Resources      []map[string]any          `json:"resources"`
}

// merge adds the parameters and resources of another template; a parameter both declare must
// have the same type (the first declaration wins).
func (t *armTemplateDoc) merge(data []byte) error {
	var other armTemplateDoc
	if err := json.Unmarshal(data, &other); err != nil {
		return err
	}
	if other.Schema != t.Schema {
		return fmt.Errorf("schema %q, want %q", other.Schema, t.Schema)
	}
	for name, p := range other.Parameters {
		if mine, ok := t.Parameters[name]; ok {
			if mine["type"] != p["type"] {
				return fmt.Errorf("parameter %s has types %v and %v", name, mine["type"], p["type"])
			}
			continue
		}
		t.Parameters[name] = p
	}
	t.Resources = append(t.Resources, other.Resources...)
	return nil
}

// armResource turns an SDK model into a template resource: its JSON with type, apiVersion and
// name added, and literal strings that look like template expressions escaped.
func armResource(model any, typ, apiVersion, name string) (map[string]any, error) {
	data, err := json.Marshal(model)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", typ, err)
	}
	var r map[string]any
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("unmarshal %s: %w", typ, err)
	}
	r = escapeExpressions(r).(map[string]any)
	r["type"] = typ
	r["apiVersion"] = apiVersion
	r["name"] = name
	return r, nil
}

// escapeExpressions doubles the leading "[" of strings ARM would read as expressions.
func escapeExpressions(v any) any {
	switch x := v.(type) {
	case string:
		if strings.HasPrefix(x, "[") && strings.HasSuffix(x, "]") {
			return "[" + x
		}
		return x
	case []any:
		for i := range x {
			x[i] = escapeExpressions(x[i])
		}
		return x
	case map[string]any:
		for k, e := range x {
			x[k] = escapeExpressions(e)
		}
		return x
	}
	return v
}
