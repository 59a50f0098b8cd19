package azmonitor

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite dcr.json and table.json from the Go definitions")

// TestSchemaFiles fails when dcr.json or table.json differ from the Go definitions; run
// `go test -run TestSchemaFiles -update` to regenerate them.
func TestSchemaFiles(t *testing.T) {
	for _, f := range []struct {
		name string
		v    any
	}{
		{"dcr.json", DataCollectionRule("[parameters('workspaceResourceId')]", "[parameters('dataCollectionEndpointId')]")},
		{"table.json", TableDefinition()},
	} {
		want, err := json.MarshalIndent(f.v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, '\n')
		if *update {
			if err := os.WriteFile(f.name, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(f.name)
		if err != nil {
			t.Fatalf("%v (run go test -run TestSchemaFiles -update)", err)
		}
		if !bytes.Equal(want, got) {
			t.Errorf("%s is stale (run go test -run TestSchemaFiles -update); (-want +got):\n%s", f.name, cmp.Diff(string(want), string(got)))
		}
	}
}

// TestFlowRecordMatchesSchema keeps FlowRecord's JSON fields and the declared columns in step.
func TestFlowRecordMatchesSchema(t *testing.T) {
	typ := reflect.TypeFor[FlowRecord]()
	var fields []string
	for f := range typ.Fields() {
		fields = append(fields, strings.Split(f.Tag.Get("json"), ",")[0])
	}
	var cols []string
	for _, c := range StreamDeclaration().Columns {
		cols = append(cols, c.Name)
	}
	if diff := cmp.Diff(cols, fields); diff != "" {
		t.Errorf("FlowRecord fields vs. columns (-columns +fields):\n%s", diff)
	}
	tbl := TableDefinition().Properties.Schema
	if tbl.Name != TableName || !strings.HasSuffix(tbl.Name, "_CL") || tbl.Columns[0].Name != "TimeGenerated" || tbl.Columns[0].Type != "datetime" {
		t.Errorf("table schema %s starts with %+v", tbl.Name, tbl.Columns[0])
	}
	for i, c := range tbl.Columns {
		if c.Description == "" || cols[i] != c.Name || StreamDeclaration().Columns[i].Type != c.Type {
			t.Errorf("table column %d %+v differs from the stream or lacks a description", i, c)
		}
	}
	dcr := DataCollectionRule("ws", "dce")
	if _, ok := dcr.Properties.StreamDeclarations[StreamName]; !ok || !strings.HasPrefix(StreamName, "Custom-") ||
		dcr.Properties.DataFlows[0].OutputStream != "Custom-"+TableName {
		t.Errorf("DCR %+v", dcr)
	}
	b, err := json.Marshal(FlowRecord{EventType: "flow"})
	if err != nil || !bytes.Contains(b, []byte(`"TimeGenerated":"0001-01-01T00:00:00Z"`)) {
		t.Errorf("FlowRecord JSON %s, %v", b, err)
	}
}
