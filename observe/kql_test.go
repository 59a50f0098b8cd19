package observe_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ceskit/ceskit/observe"
	"github.com/ceskit/ceskit/observe/azmonitor"
)

// kqlTables lists the columns of each table a query may read.
func kqlTables() map[string][]string {
	var ceskit []string
	for _, c := range azmonitor.TableDefinition().Properties.Schema.Columns {
		ceskit = append(ceskit, c.Name)
	}
	return map[string][]string{
		azmonitor.TableName: ceskit,
		// The columns Microsoft's ACNS lab queries use (shared/reference/azure.md §3.7, from
		// container-network-observability-logs.md and aks-labs): the table's full schema is
		// not documented there, so queries stay within these.
		"ContainerNetworkLogs": {
			"TimeGenerated", "SourceNamespace", "DestinationNamespace", "SourcePodName",
			"DestinationPodName", "Verdict", "TrafficDirection", "IP", "Layer4",
		},
		// learn.microsoft.com/azure/azure-monitor/reference/tables/containerlogv2
		"ContainerLogV2": {
			"TimeGenerated", "Computer", "ContainerId", "ContainerName", "KubernetesMetadata",
			"LogLevel", "LogMessage", "LogSource", "PodName", "PodNamespace", "SourceSystem",
			"TenantId", "Type", "_ResourceId", "_SubscriptionId",
		},
		// learn.microsoft.com/azure/azure-monitor/reference/tables/containerlog: no
		// ContainerName; Name is "<pod UID>/<container name>".
		"ContainerLog": {
			"TimeGenerated", "Computer", "ContainerID", "Image", "ImageTag", "LogEntry",
			"LogEntrySource", "Name", "Repository", "SourceSystem", "TimeOfCommand", "TenantId",
			"Type", "_ResourceId", "_SubscriptionId",
		},
	}
}

// kqlWords are the KQL keywords, operators, literals and types the queries use; an identifier
// that is none of these and not followed by "(" (a function call) or preceded by "." (a
// property of a dynamic column) names a column.
var kqlWords = map[string]bool{
	"where": true, "project": true, "extend": true, "summarize": true, "by": true,
	"order": true, "sort": true, "top": true, "asc": true, "desc": true, "take": true,
	"limit": true, "mv-expand": true, "to": true, "and": true, "or": true, "not": true,
	"in": true, "has": true, "has_any": true, "contains": true, "startswith": true,
	"true": true, "false": true, "string": true, "long": true, "int": true, "real": true,
	"bool": true, "datetime": true, "dynamic": true,
}

var (
	kqlString = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	kqlToken  = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_-]*|==|!=|[0-9][0-9.]*[a-z]*|\S`)
)

// kqlColumns returns the table a query reads and the columns it references, and the columns it
// defines (Name = … in extend, summarize, project and mv-expand).
func kqlColumns(kql string) (table string, refs, defined []string) {
	stages := strings.Split(kqlString.ReplaceAllString(kql, `""`), "|")
	table = strings.TrimSpace(stages[0])
	for _, stage := range stages[1:] {
		toks := kqlToken.FindAllString(stage, -1)
		for i, tok := range toks {
			if tok[0] != '_' && (tok[0] < 'A' || tok[0] > 'Z') && (tok[0] < 'a' || tok[0] > 'z') {
				continue
			}
			if kqlWords[tok] {
				continue
			}
			if i+1 < len(toks) && toks[i+1] == "(" {
				continue // function
			}
			if i > 0 && toks[i-1] == "." {
				continue // property of a dynamic value
			}
			if i+1 < len(toks) && toks[i+1] == "=" {
				defined = append(defined, tok)
				continue
			}
			refs = append(refs, tok)
		}
	}
	return table, refs, defined
}

func TestQueries(t *testing.T) {
	if observe.TableCeskitFlows != azmonitor.TableName {
		t.Errorf("TableCeskitFlows = %q, azmonitor.TableName = %q", observe.TableCeskitFlows, azmonitor.TableName)
	}
	tables := kqlTables()
	seen := map[string]bool{}
	for _, q := range observe.Queries() {
		t.Run(q.Name, func(t *testing.T) {
			if seen[q.Name] {
				t.Errorf("duplicate query name %s", q.Name)
			}
			seen[q.Name] = true
			if q.Description == "" {
				t.Error("no description")
			}
			cols, ok := tables[q.Table]
			if !ok {
				t.Fatalf("unknown table %s", q.Table)
			}
			table, refs, defined := kqlColumns(q.KQL)
			if table != q.Table {
				t.Errorf("query reads %q, Table is %q", table, q.Table)
			}
			if len(refs) == 0 {
				t.Error("query references no column")
			}
			for _, c := range refs {
				if !slices.Contains(cols, c) && !slices.Contains(defined, c) {
					t.Errorf("column %s is not a column of %s nor defined by the query", c, q.Table)
				}
			}
		})
	}
}

// TestQueriesTokenizer checks that the column check catches what it is for: the AKS
// documentation's endpoint-slice query filters ContainerLog on ContainerName, a column only
// ContainerLogV2 has.
func TestQueriesTokenizer(t *testing.T) {
	const documented = `ContainerLog
| where ContainerName contains "cilium"
| where LogEntry contains "endpoint-slice"
| where LogEntry contains "error"
| project TimeGenerated, LogEntry`
	table, refs, defined := kqlColumns(documented)
	if table != "ContainerLog" || len(defined) != 0 {
		t.Fatalf("table %q, defined %v", table, defined)
	}
	want := []string{"ContainerName", "LogEntry", "LogEntry", "TimeGenerated", "LogEntry"}
	if !slices.Equal(refs, want) {
		t.Fatalf("refs = %v, want %v", refs, want)
	}
	if slices.Contains(kqlTables()["ContainerLog"], "ContainerName") {
		t.Error("ContainerLog lists ContainerName")
	}
	_, refs, defined = kqlColumns(`T | extend X = tostring(IP.destination) | summarize N = count() by X, Y | top 5 by N desc`)
	if !slices.Equal(refs, []string{"IP", "X", "Y", "N"}) || !slices.Equal(defined, []string{"X", "N"}) {
		t.Errorf("refs = %v, defined = %v", refs, defined)
	}
}
