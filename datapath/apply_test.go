package datapath_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ceskit/ceskit/datapath"
)

// TestApplyEndpoint: applying a diff equals syncing the resulting state, and writes only what
// changed.
func TestApplyEndpoint(t *testing.T) {
	d := requireBPF(t, datapath.Spec{DisableConntrack: true})
	const ep = 11
	e80 := datapath.Entry{Identity: 1001, Protocol: datapath.ProtoTCP, Port: 80, PortPrefixLen: 16, Verdict: datapath.Allow, Precedence: 2}
	e81 := e80
	e81.Port = 81
	e443 := e80
	e443.Port, e443.Identity = 443, 0
	if _, err := d.SyncEndpoint(ep, []datapath.Entry{e80, e81}); err != nil {
		t.Fatal(err)
	}
	deny81 := e81
	deny81.Verdict, deny81.Precedence = datapath.Deny, 4
	st, err := d.ApplyEndpoint(ep, []datapath.Entry{deny81, e443}, []datapath.Entry{e80})
	if err != nil {
		t.Fatal(err)
	}
	want := []datapath.Entry{deny81, e443}
	if diff := cmp.Diff(want, d.Entries(ep)); diff != "" {
		t.Errorf("entries after the diff (-want +got):\n%s", diff)
	}
	if st.Written != 2 || st.Deleted != 1 {
		t.Errorf("ApplyEndpoint stats = %+v, want 2 written (81 changed, 443 new) and 1 deleted (80)", st)
	}
}
