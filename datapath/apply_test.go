package datapath_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ceskit/ceskit/datapath"
	"github.com/ceskit/ceskit/internal/bpftest"
)

// TestApplyEndpoint: applying a diff equals syncing the resulting state, and writes only what
// changed.
func TestApplyEndpoint(t *testing.T) {
	d := bpftest.Load(t, datapath.Spec{DisableConntrack: true})
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

// TestRangeExpansionFallback: ranges are written as exact ports while they fit the endpoint's
// limit; when they do not, smaller ranges only (here none), and the verdicts stay the same.
func TestRangeExpansionFallback(t *testing.T) {
	spec := testSpec()
	spec.MaxEntriesPerEndpoint = 300
	d := loadTest(t, spec)
	const ep = 12
	r1 := datapath.Entry{Identity: 1001, Protocol: datapath.ProtoTCP, Port: 8192, PortPrefixLen: 8, Verdict: datapath.Allow, Precedence: 2}
	st, err := d.SyncEndpoint(ep, []datapath.Entry{r1})
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries != 256 {
		t.Errorf("one 256-port range: %d map elements, want 256 (expanded)", st.Entries)
	}
	r2 := r1
	r2.Port = 16384
	st, err = d.SyncEndpoint(ep, []datapath.Entry{r1, r2})
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries != 2 {
		t.Errorf("two 256-port ranges over a 300 limit: %d map elements, want 2 (prefix entries)", st.Entries)
	}
	for _, tc := range []struct {
		port uint16
		want uint32
	}{{8191, retDrop}, {8192, retAllow}, {8447, retAllow}, {8448, retDrop}, {16400, retAllow}} {
		if got := runProg(t, d, ep, datapath.Ingress, tcpPkt("10.0.1.1", podV4, 1, tc.port).bytes()); got != tc.want {
			t.Errorf("port %d: %s, want %s", tc.port, retName(got), retName(tc.want))
		}
	}
}
