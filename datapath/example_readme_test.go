package datapath_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/ceskit/ceskit/datapath"
)

// Load the datapath, attach an endpoint's programs to the host side of its veth, and enforce
// "TCP/5432 from identity 1001 only" on its ingress. Needs root (CAP_BPF, CAP_NET_ADMIN) and a
// veth named lxc-db: compiled, not run as a test.
func ExampleLoad() {
	d, err := datapath.Load(datapath.Spec{PinPath: "/sys/fs/bpf/ceskit"}) // pinned: a restart keeps the maps and links
	if errors.Is(err, datapath.ErrNotSupported) {
		fmt.Println("no BPF here (not root, or the kernel lacks tcx):", err)
		return
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()

	const db = 42 // the endpoint's datapath ID, stable across restarts
	veth, err := net.InterfaceByName("lxc-db")
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := d.AttachEndpoint(db, datapath.Attachment{Ifindex: veth.Index, HostSide: true}); err != nil {
		fmt.Println(err)
		return
	}
	// The ipcache: which identity each address has (unknown addresses are the world, 2).
	if err := d.SetIdentities(map[netip.Prefix]uint32{
		netip.MustParsePrefix("10.0.1.5/32"): 1001, // the web pod
		netip.MustParsePrefix("10.0.2.7/32"): 1789, // the db pod itself
	}); err != nil {
		fmt.Println(err)
		return
	}
	// The endpoint's whole policy: one allow; everything else at ingress is a default deny.
	st, err := d.SyncEndpoint(db, []datapath.Entry{{
		Identity: 1001, Direction: datapath.Ingress, Protocol: datapath.ProtoTCP, Port: 5432, PortPrefixLen: 16,
		Verdict: datapath.Allow, Precedence: 2, Cookie: 7,
	}, {
		Direction: datapath.Egress, Verdict: datapath.Allow, Precedence: 2, // egress: anything
	}})
	if err != nil {
		fmt.Println(err) // ErrCapacity or ErrInvalid: nothing written
		return
	}
	fmt.Println("entries:", st.Entries)

	events, err := d.Events()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer events.Close()
	for {
		ev, err := events.Read() // denied (and audited) packets, with the deciding entry's cookie
		if err != nil {
			fmt.Println(err) // the reader was closed
			return
		}
		fmt.Println(ev.Direction, ev.Src, "→", ev.Dst, ev.DstPort, ev.Verdict, ev.Reason, "cookie", ev.Cookie)
	}
}

// Lookup is the Go model of the program's decision: a specific identity's entry against a
// wildcard one, by precedence, then prefix length.
func ExampleLookup() {
	entries := []datapath.Entry{
		// Any identity may reach TCP ports 8000–8003 (a 14-bit port prefix).
		{Direction: datapath.Ingress, Protocol: datapath.ProtoTCP, Port: 8000, PortPrefixLen: 14, Verdict: datapath.Allow, Precedence: 2, Cookie: 1},
		// Identity 1001 is denied TCP/8002; a deny's precedence beats the wildcard allow.
		{Identity: 1001, Direction: datapath.Ingress, Protocol: datapath.ProtoTCP, Port: 8002, PortPrefixLen: 16, Verdict: datapath.Deny, Precedence: 4, Cookie: 2},
	}
	for _, c := range []struct {
		id   uint32
		port uint16
	}{{1001, 8001}, {1001, 8002}, {2002, 8002}, {2002, 9000}} {
		e, ok := datapath.Lookup(entries, c.id, datapath.Ingress, datapath.ProtoTCP, c.port)
		if !ok {
			fmt.Printf("identity %d TCP/%d: default deny\n", c.id, c.port)
			continue
		}
		fmt.Printf("identity %d TCP/%d: %s (cookie %d)\n", c.id, c.port, e.Verdict, e.Cookie)
	}
	// Output:
	// identity 1001 TCP/8001: allow (cookie 1)
	// identity 1001 TCP/8002: deny (cookie 2)
	// identity 2002 TCP/8002: allow (cookie 1)
	// identity 2002 TCP/9000: default deny
}
