package identity

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNumericIdentityStringParse(t *testing.T) {
	tests := []struct {
		in      string
		want    NumericIdentity
		wantErr string
	}{
		{in: "0", want: 0},
		{in: "256", want: 256},
		{in: "65535", want: 65535},
		{in: "16777217", want: MinLocal},
		{in: "4294967295", want: 1<<32 - 1},
		{in: "", wantErr: `parse numeric identity "": not a decimal number`},
		{in: "-1", wantErr: `parse numeric identity "-1": not a decimal number`},
		{in: "+1", wantErr: `parse numeric identity "+1": not a decimal number`},
		{in: "0x100", wantErr: `parse numeric identity "0x100": invalid syntax`},
		{in: "abc", wantErr: `parse numeric identity "abc": invalid syntax`},
		{in: "4294967296", wantErr: `parse numeric identity "4294967296": value out of range`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseNumericIdentity(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("ParseNumericIdentity(%q) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseNumericIdentity(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseNumericIdentity(%q) = %d, want %d", tt.in, got, tt.want)
			}
			if s := got.String(); s != tt.in {
				t.Errorf("String() = %q, want %q", s, tt.in)
			}
		})
	}
}

func TestNumericScope(t *testing.T) {
	tests := []struct {
		id        NumericIdentity
		want      Scope
		wantName  string
		wantWell  bool
		wantUser  bool
		wantResvd bool
	}{
		{id: 0, want: ScopeGlobal, wantName: "global", wantResvd: true},
		{id: ReservedAggregateRemoteNode, want: ScopeGlobal, wantName: "global", wantResvd: true},
		{id: 15, want: ScopeGlobal, wantName: "global"},
		{id: 100, want: ScopeGlobal, wantName: "global", wantWell: true},
		{id: 115, want: ScopeGlobal, wantName: "global", wantWell: true},
		{id: 116, want: ScopeGlobal, wantName: "global"},
		{id: 128, want: ScopeGlobal, wantName: "global", wantUser: true},
		{id: 255, want: ScopeGlobal, wantName: "global", wantUser: true},
		{id: 256, want: ScopeGlobal, wantName: "global"},
		{id: 0x00FF_FFFF, want: ScopeGlobal, wantName: "global"},
		{id: MinLocal, want: ScopeLocal, wantName: "local"},
		{id: MaxLocal, want: ScopeLocal, wantName: "local"},
		{id: 2<<24 | 7, want: ScopeRemoteNode, wantName: "remote-node"},
		{id: 3 << 24, want: Scope(3 << 24), wantName: "scope(0x03000000)"},
	}
	for _, tt := range tests {
		t.Run(tt.id.String(), func(t *testing.T) {
			got := tt.id.Scope()
			if got != tt.want || got.String() != tt.wantName {
				t.Errorf("Scope() = %v (%q), want %v (%q)", uint32(got), got, uint32(tt.want), tt.wantName)
			}
			if g := tt.id.IsWellKnown(); g != tt.wantWell {
				t.Errorf("IsWellKnown() = %v, want %v", g, tt.wantWell)
			}
			if g := tt.id.IsUserReserved(); g != tt.wantUser {
				t.Errorf("IsUserReserved() = %v, want %v", g, tt.wantUser)
			}
			if g := tt.id.IsReserved(); g != tt.wantResvd {
				t.Errorf("IsReserved() = %v, want %v", g, tt.wantResvd)
			}
		})
	}
}

func TestNumericReserved(t *testing.T) {
	want := map[NumericIdentity]string{
		0: "unknown", 1: "host", 2: "world", 3: "unmanaged", 4: "health", 5: "init",
		6: "remote-node", 7: "kube-apiserver", 8: "ingress", 9: "world-ipv4", 10: "world-ipv6",
		11: "aggregate-cluster", 12: "aggregate-cluster-mesh", 13: "aggregate-world", 14: "aggregate-remote-node",
	}
	got := map[NumericIdentity]string{}
	for _, id := range ReservedIdentities() {
		name, ok := id.ReservedName()
		if !ok {
			t.Fatalf("ReservedName(%d) not found", id)
		}
		got[id] = name
		back, ok := LookupReserved(name)
		if !ok || back != id {
			t.Errorf("LookupReserved(%q) = %d, %v; want %d, true", name, back, ok, id)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reserved identities (-want +got):\n%s", diff)
	}

	ids := ReservedIdentities()
	ids[0] = 99
	if ReservedIdentities()[0] != 0 {
		t.Error("ReservedIdentities shares its backing array")
	}
	if _, ok := NumericIdentity(15).ReservedName(); ok {
		t.Error("ReservedName(15) found")
	}
	if _, ok := LookupReserved("cluster"); ok {
		t.Error(`LookupReserved("cluster") found`)
	}
}

func TestRange(t *testing.T) {
	tests := []struct {
		name     string
		r        Range
		wantSize int
		wantStr  string
		wantErr  string
	}{
		{name: "default", r: Range{256, 65535}, wantSize: 65280, wantStr: "256-65535"},
		{name: "single", r: Range{300, 300}, wantSize: 1, wantStr: "300-300"},
		{name: "cluster 255", r: Range{255 << 16, 1<<24 - 1}, wantSize: 1 << 16, wantStr: "16711680-16777215"},
		{name: "below minimal", r: Range{255, 1000}, wantSize: 746, wantStr: "255-1000",
			wantErr: "validate identity range 255-1000: Min 255 is below the minimal allocation identity 256"},
		{name: "inverted", r: Range{1000, 999}, wantSize: 0, wantStr: "1000-999",
			wantErr: "validate identity range 1000-999: Min 1000 is greater than Max 999"},
		{name: "local scope", r: Range{256, MinLocal}, wantSize: int(MinLocal) - 255, wantStr: "256-16777217",
			wantErr: "validate identity range 256-16777217: Max 16777217 is outside the global scope (must be below 16777216)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r.Size(); got != tt.wantSize {
				t.Errorf("Size() = %d, want %d", got, tt.wantSize)
			}
			if got := tt.r.String(); got != tt.wantStr {
				t.Errorf("String() = %q, want %q", got, tt.wantStr)
			}
			err := tt.r.Validate()
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if gotErr != tt.wantErr {
				t.Errorf("Validate() = %q, want %q", gotErr, tt.wantErr)
			}
			if tt.wantSize > 0 {
				if !tt.r.Contains(tt.r.Min) || !tt.r.Contains(tt.r.Max) {
					t.Error("Contains(Min/Max) = false")
				}
				if tt.r.Contains(tt.r.Min-1) || tt.r.Contains(tt.r.Max+1) {
					t.Error("Contains outside the range = true")
				}
			}
		})
	}
}

func TestClusterRange(t *testing.T) {
	tests := []struct {
		name       string
		clusterID  uint32
		maxCluster uint32
		want       Range
		wantErr    string
	}{
		{name: "cluster 0 of 255", clusterID: 0, maxCluster: 255, want: Range{256, 65535}},
		{name: "cluster 1 of 255", clusterID: 1, maxCluster: 255, want: Range{65536, 131071}},
		{name: "cluster 255 of 255", clusterID: 255, maxCluster: 255, want: Range{255 << 16, 1<<24 - 1}},
		{name: "cluster 0 of 511", clusterID: 0, maxCluster: 511, want: Range{256, 32767}},
		{name: "cluster 1 of 511", clusterID: 1, maxCluster: 511, want: Range{32768, 65535}},
		{name: "cluster 511 of 511", clusterID: 511, maxCluster: 511, want: Range{511 << 15, 1<<24 - 1}},
		{name: "bad max", clusterID: 0, maxCluster: 256,
			wantErr: "compute cluster identity range: maxConnectedClusters 256: must be 255 or 511"},
		{name: "cluster too big", clusterID: 256, maxCluster: 255,
			wantErr: "compute cluster identity range: clusterID 256: must be at most maxConnectedClusters 255"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ClusterRange(tt.clusterID, tt.maxCluster)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("ClusterRange error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ClusterRange: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ClusterRange (-want +got):\n%s", diff)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
			for _, id := range []NumericIdentity{got.Min, got.Max} {
				if c := id.ClusterID(tt.maxCluster); c != tt.clusterID {
					t.Errorf("NumericIdentity(%d).ClusterID(%d) = %d, want %d", id, tt.maxCluster, c, tt.clusterID)
				}
			}
		})
	}
}

func TestDefaultRange(t *testing.T) {
	want, err := ClusterRange(0, DefaultMaxConnectedClusters)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, DefaultRange()); diff != "" {
		t.Errorf("DefaultRange (-want +got):\n%s", diff)
	}
	if got := NumericIdentity(70000).ClusterID(300); got != 1 {
		t.Errorf("ClusterID with unsupported max = %d, want 1 (treated as 255)", got)
	}
	if !strings.Contains(DefaultRange().String(), "-") {
		t.Error("String() lacks separator")
	}
}
