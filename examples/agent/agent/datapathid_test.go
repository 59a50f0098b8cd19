package agent

import "testing"

func TestDatapathID(t *testing.T) {
	id := DatapathID("shop/web-1")
	if id == 0 || id > 0x7fffffff || id != DatapathID("shop/web-1") || id == DatapathID("shop/web-2") {
		t.Errorf("DatapathID: %d (web-2: %d)", id, DatapathID("shop/web-2"))
	}
	a := &Agent{dpIDs: map[uint32]string{id: "other/pod"}}
	if got := a.assignDatapathIDLocked("shop/web-1"); got != id+1 {
		t.Errorf("colliding endpoint got %d, want %d", got, id+1)
	}
	if got := a.assignDatapathIDLocked("shop/web-1"); got != id+1 {
		t.Errorf("second assignment %d, want the same %d", got, id+1)
	}
}
