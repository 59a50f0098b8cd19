package datapath_test

import (
	"fmt"
	"net/netip"
	"os"
	"testing"

	"github.com/ceskit/ceskit/datapath"
	"github.com/ceskit/ceskit/datapath/policymap"
	"github.com/ceskit/ceskit/identity"
	"github.com/ceskit/ceskit/internal/bpftest"
	"github.com/ceskit/ceskit/policy"
)

// The tests below run what the policy engine computes, converted by datapath/policymap (the
// adapter, with its own unit tests), through loaded programs. datapath itself does not import
// policy; its external tests may.

// adaptSync writes what a policy engine computed into a datapath: the map state of every
// endpoint of eps that ids gives a datapath endpoint id (SyncEndpoint), and an ipcache mapping
// the addresses of all of eps to their endpoint's effective identity (SetIdentities, host
// prefixes). It returns the cookies, which name the rule behind each cookie in events.
func adaptSync(d *datapath.Datapath, e *policy.Engine, eps []policy.Endpoint, ids map[string]uint32) (*policymap.Cookies, error) {
	states := map[string]policy.MapState{}
	for _, ep := range eps {
		if _, ok := ids[ep.ID]; !ok {
			continue
		}
		ms, err := e.MapState(ep.ID)
		if err != nil {
			return nil, fmt.Errorf("map state of %s: %w", ep.ID, err)
		}
		states[ep.ID] = ms
	}
	cookies := &policymap.Cookies{}
	ipc := map[netip.Prefix]uint32{}
	for _, ep := range eps {
		id, err := e.Identity(ep.ID)
		if err != nil {
			return nil, fmt.Errorf("identity of %s: %w", ep.ID, err)
		}
		for _, a := range ep.IPs {
			ipc[netip.PrefixFrom(a, a.BitLen())] = uint32(id)
		}
	}
	if err := d.SetIdentities(ipc); err != nil {
		return nil, fmt.Errorf("set identities: %w", err)
	}
	for _, ep := range eps {
		ms, ok := states[ep.ID]
		if !ok {
			continue
		}
		if _, err := d.SyncEndpoint(ids[ep.ID], policymap.Entries(ms, cookies)); err != nil {
			return nil, fmt.Errorf("sync endpoint %s: %w", ep.ID, err)
		}
	}
	return cookies, nil
}

// adaptWorld is a small cluster with allow, deny, range, audit and default-deny rules, for the
// adapter tests.
type adaptWorld struct {
	engine *policy.Engine
	eps    []policy.Endpoint
}

func newAdaptWorld(t *testing.T) *adaptWorld {
	t.Helper()
	e, err := policy.NewEngine(policy.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ep := func(name, app, ip string) policy.Endpoint {
		return policy.Endpoint{ID: "prod/" + name, Namespace: "prod", Labels: map[string]string{"app": app},
			IPs: []netip.Addr{netip.MustParseAddr(ip)}}
	}
	w := &adaptWorld{engine: e, eps: []policy.Endpoint{
		ep("db", "db", "10.198.0.10"), ep("web", "web", "10.198.0.11"),
		ep("admin", "admin", "10.198.0.12"), ep("other", "other", "10.198.0.13"),
	}}
	if _, err := e.UpsertEndpoints(w.eps...); err != nil {
		t.Fatal(err)
	}
	manifests, err := os.ReadFile("policymap/testdata/cluster.yaml") // the adapter's own test cluster
	if err != nil {
		t.Fatal(err)
	}
	ps, err := policy.Decode(manifests)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.UpsertPolicies(ps...); err != nil {
		t.Fatal(err)
	}
	return w
}

// adaptFlow is one flow the adapter tests check, from the endpoint's point of view.
type adaptFlow struct {
	remote identity.NumericIdentity
	dir    policy.Direction
	proto  policy.Protocol
	port   uint16
}

// flows lists flows from and to every endpoint, the reserved host and world identities, at ports
// at and around every rule's edges.
func (w *adaptWorld) flows(t *testing.T) []adaptFlow {
	t.Helper()
	remotes := []identity.NumericIdentity{identity.ReservedHost, identity.ReservedWorld}
	for _, ep := range w.eps {
		id, err := w.engine.Identity(ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		remotes = append(remotes, id)
	}
	var out []adaptFlow
	for _, id := range remotes {
		for _, dir := range []policy.Direction{policy.Ingress, policy.Egress} {
			for _, proto := range []policy.Protocol{policy.ProtoTCP, policy.ProtoUDP, policy.ProtoICMP} {
				for _, port := range []uint16{0, 22, 5432, 7999, 8000, 8100, 8101, 9090, 29999, 30000, 30500, 30999, 31000, 65535} {
					out = append(out, adaptFlow{id, dir, proto, port})
				}
			}
		}
	}
	return out
}

// TestAdaptSyncEngine syncs a whole engine into a loaded datapath and runs one packet per flow
// through each endpoint's programs (BPF_PROG_TEST_RUN, conntrack off so every packet is looked
// up): allowed and audited flows return TCX_NEXT, the rest TCX_DROP, as the map state decides.
func TestAdaptSyncEngine(t *testing.T) {
	d := bpftest.Load(t, datapath.Spec{DisableConntrack: true})
	w := newAdaptWorld(t)
	ids := map[string]uint32{}
	for i, ep := range w.eps {
		ids[ep.ID] = uint32(i + 1)
	}
	if _, err := adaptSync(d, w.engine, w.eps, ids); err != nil {
		t.Fatal(err)
	}
	addrOf := map[identity.NumericIdentity]netip.Addr{
		identity.ReservedWorld: netip.MustParseAddr("192.0.2.1"), // not in the ipcache: world
	}
	for _, ep := range w.eps {
		id, err := w.engine.Identity(ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		addrOf[id] = ep.IPs[0]
	}
	checked := map[uint32]int{} // by expected return code
	for _, ep := range w.eps {
		ms, err := w.engine.MapState(ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range w.flows(t) {
			remote, ok := addrOf[f.remote]
			if !ok || f.proto == policy.ProtoICMP {
				continue // the host has no address here; ICMP "ports" are types, checked elsewhere
			}
			prog, err := d.Program(ids[ep.ID], policymap.Direction(f.dir))
			if err != nil {
				t.Fatal(err)
			}
			src, dst := remote, ep.IPs[0]
			if f.dir == policy.Egress {
				src, dst = dst, remote
			}
			pkt := benchPacket(src, dst, uint8(f.proto), 40000, f.port)
			ret, _, err := prog.Test(pkt)
			if err != nil {
				t.Fatal(err)
			}
			pe, pok := ms.Lookup(f.remote, f.dir, f.proto, f.port)
			want := uint32(benchTCXDrop)
			if pok && pe.Verdict != policy.Deny {
				want = benchTCXNext
			}
			if ret != want {
				t.Errorf("%s %s %s→%s %s/%d: program returned %d, map state says %d (%+v found=%v)",
					ep.ID, f.dir, src, dst, f.proto, f.port, int32(ret), int32(want), pe, pok)
			}
			checked[want]++
		}
	}
	if checked[benchTCXNext] == 0 || checked[benchTCXDrop] == 0 {
		t.Fatalf("checked %d allowed and %d denied flows, want some of each", checked[benchTCXNext], checked[benchTCXDrop])
	}
	t.Logf("checked %d allowed and %d denied flows", checked[benchTCXNext], checked[benchTCXDrop])
}
