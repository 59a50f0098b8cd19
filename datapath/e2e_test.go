package datapath_test

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/ceskit/ceskit/datapath"
	"github.com/ceskit/ceskit/internal/bpftest"
	"github.com/ceskit/ceskit/policy"
)

// The end-to-end tests build a small routed network out of network namespaces, all named with a
// random "cesk…" prefix and deleted when the test ends:
//
//	client1 (10.199.1.2) ─┐
//	client2 (10.199.2.2) ─┼─ node (10.199.{1,2,3}.1, forwarding) ─ server (10.199.3.2)
//
// The datapath enforces the server endpoint's policy on the host (node) side of the server's
// veth, as Cilium attaches to a pod's lxc device, and real TCP and UDP traffic runs from
// sockets opened inside the client namespaces.

// e2eTopo is the test network.
type e2eTopo struct {
	prefix            string
	node, c1, c2, srv string // namespace names
	srvHost           string // the node-side veth of the server
	srvHostIfindex    int    // its ifindex in the node namespace
	c1IP, c2IP, srvIP netip.Addr
}

func e2eNewTopo(t *testing.T) *e2eTopo {
	t.Helper()
	bpftest.RequireRoot(t, "ip")
	var rnd [3]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	p := "cesk" + hex.EncodeToString(rnd[:]) // 10 characters: interface names stay under 16
	tp := &e2eTopo{
		prefix: p, node: p + "-node", c1: p + "-c1", c2: p + "-c2", srv: p + "-srv",
		c1IP: netip.MustParseAddr("10.199.1.2"), c2IP: netip.MustParseAddr("10.199.2.2"),
		srvIP: netip.MustParseAddr("10.199.3.2"), srvHost: p + "h3",
	}
	for _, ns := range []string{tp.node, tp.c1, tp.c2, tp.srv} {
		bpftest.Run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if err := bpftest.RunErr("ip", "netns", "del", ns); err != nil {
				t.Errorf("delete namespace: %v", err)
			}
		})
		// No IPv6: no router solicitations or MLD reports to confuse the verdict counters.
		bpftest.Run(t, "ip", "netns", "exec", ns, "sysctl", "-q", "-w",
			"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
		bpftest.Run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	bpftest.Run(t, "ip", "netns", "exec", tp.node, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	for i, peer := range []string{tp.c1, tp.c2, tp.srv} {
		n := i + 1
		host, pod := fmt.Sprintf("%sh%d", p, n), fmt.Sprintf("%sp%d", p, n)
		bpftest.Run(t, "ip", "-n", tp.node, "link", "add", host, "type", "veth", "peer", "name", pod, "netns", peer)
		bpftest.Run(t, "ip", "-n", tp.node, "addr", "add", fmt.Sprintf("10.199.%d.1/24", n), "dev", host)
		bpftest.Run(t, "ip", "-n", tp.node, "link", "set", host, "up")
		bpftest.Run(t, "ip", "-n", peer, "addr", "add", fmt.Sprintf("10.199.%d.2/24", n), "dev", pod)
		bpftest.Run(t, "ip", "-n", peer, "link", "set", pod, "up")
		bpftest.Run(t, "ip", "-n", peer, "route", "add", "default", "via", fmt.Sprintf("10.199.%d.1", n))
	}
	err := bpftest.InNetns(tp.node, func() error {
		ifc, err := net.InterfaceByName(tp.srvHost)
		if err != nil {
			return err
		}
		tp.srvHostIfindex = ifc.Index
		return nil
	})
	if err != nil {
		t.Fatalf("server's host-side veth: %v", err)
	}
	return tp
}

// e2eServer runs TCP echo servers (8080, 9090) and a UDP echo server (5353) in the server
// namespace until the test ends. Every reply is "echo " + the request.
type e2eServer struct {
	wg    gosync.WaitGroup
	mu    gosync.Mutex
	conns []net.Conn
}

func e2eStartServer(t *testing.T, tp *e2eTopo) {
	t.Helper()
	s := &e2eServer{}
	var lns []net.Listener
	var pc net.PacketConn
	err := bpftest.InNetns(tp.srv, func() error {
		for _, port := range []int{8080, 9090} {
			ln, err := net.Listen("tcp4", fmt.Sprintf("%s:%d", tp.srvIP, port))
			if err != nil {
				return err
			}
			lns = append(lns, ln)
		}
		var err error
		pc, err = net.ListenPacket("udp4", tp.srvIP.String()+":5353")
		return err
	})
	t.Cleanup(func() {
		for _, ln := range lns {
			ln.Close()
		}
		if pc != nil {
			pc.Close()
		}
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.conns = nil
		s.mu.Unlock()
		s.wg.Wait()
	})
	if err != nil {
		t.Fatalf("start servers: %v", err)
	}
	for _, ln := range lns {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				s.mu.Lock()
				s.conns = append(s.conns, c)
				s.mu.Unlock()
				s.wg.Add(1)
				go func() {
					defer s.wg.Done()
					defer c.Close()
					r := bufio.NewReader(c)
					for {
						line, err := r.ReadString('\n')
						if err != nil {
							return
						}
						if _, err := c.Write([]byte("echo " + line)); err != nil {
							return
						}
					}
				}()
			}
		}()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if _, err := pc.WriteTo(append([]byte("echo "), buf[:n]...), from); err != nil {
				return
			}
		}
	}()
}

// e2eDialTCP connects from namespace ns to addr, giving up after timeout.
func e2eDialTCP(ns string, addr netip.AddrPort, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := bpftest.InNetns(ns, func() error {
		var err error
		c, err = (&net.Dialer{Timeout: timeout}).Dial("tcp4", addr.String())
		return err
	})
	return c, err
}

// e2eTCPEcho connects from ns to addr and exchanges a line both ways.
func e2eTCPEcho(ns string, addr netip.AddrPort, timeout time.Duration) error {
	c, err := e2eDialTCP(ns, addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	msg := strings.Repeat("x", 3000) + "\n" // several segments each way
	if _, err := c.Write([]byte(msg)); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read reply: %w", err)
	}
	if got != "echo "+msg {
		return fmt.Errorf("reply %q…, want the echo", got[:min(len(got), 20)])
	}
	return nil
}

// e2eUDPConn opens a UDP socket in ns connected to addr.
func e2eUDPConn(ns string, addr netip.AddrPort) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := bpftest.InNetns(ns, func() error {
		var err error
		c, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(addr))
		return err
	})
	return c, err
}

// e2eUDPEcho sends up to tries datagrams from ns to addr and returns nil at the first echo.
func e2eUDPEcho(ns string, addr netip.AddrPort, tries int, wait time.Duration) error {
	c, err := e2eUDPConn(ns, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	buf := make([]byte, 1500)
	for i := range tries {
		msg := fmt.Sprintf("ping %d", i)
		if _, err := c.Write([]byte(msg)); err != nil {
			return err
		}
		if err := c.SetReadDeadline(time.Now().Add(wait)); err != nil {
			return err
		}
		for {
			n, err := c.Read(buf)
			if err != nil {
				break
			}
			if string(buf[:n]) == "echo "+msg {
				return nil
			}
		}
	}
	return fmt.Errorf("no UDP echo from %s after %d tries", addr, tries)
}

// e2eWorld is the policy side of the e2e tests: the three pods and the server's policy.
type e2eWorld struct {
	engine *policy.Engine
	eps    []policy.Endpoint
	ids    map[string]uint32 // policy endpoint ID → datapath endpoint ID
}

const (
	e2eServerEP = 42
	e2eServerID = "e2e/server"
	e2eClient1  = "e2e/client1"
	e2eClient2  = "e2e/client2"
)

// e2eServerPolicy allows TCP 8080 from client1 and UDP 5353 from both clients into the server;
// the server's egress is isolated with nothing allowed, so its replies pass only as replies of
// tracked flows. udpBoth false allows UDP 5353 from client1 only.
func e2eServerPolicy(udpBoth bool) string {
	udpFrom := "{podSelector: {matchLabels: {role: client}}}"
	if !udpBoth {
		udpFrom = "{podSelector: {matchLabels: {app: client1}}}"
	}
	return `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server, namespace: e2e}
spec:
  podSelector: {matchLabels: {app: server}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: client1}}}]
    ports: [{protocol: TCP, port: 8080}]
  - from: [` + udpFrom + `]
    ports: [{protocol: UDP, port: 5353}]
`
}

func e2eNewWorld(t *testing.T, tp *e2eTopo) *e2eWorld {
	t.Helper()
	e, err := policy.NewEngine(policy.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ep := func(id string, ip netip.Addr, labels map[string]string) policy.Endpoint {
		return policy.Endpoint{ID: id, Namespace: "e2e", Labels: labels, IPs: []netip.Addr{ip}}
	}
	w := &e2eWorld{engine: e, ids: map[string]uint32{e2eServerID: e2eServerEP}, eps: []policy.Endpoint{
		ep(e2eServerID, tp.srvIP, map[string]string{"app": "server"}),
		ep(e2eClient1, tp.c1IP, map[string]string{"app": "client1", "role": "client"}),
		ep(e2eClient2, tp.c2IP, map[string]string{"app": "client2", "role": "client"}),
	}}
	if _, err := e.UpsertEndpoints(w.eps...); err != nil {
		t.Fatal(err)
	}
	w.setPolicy(t, true)
	return w
}

func (w *e2eWorld) setPolicy(t *testing.T, udpBoth bool) {
	t.Helper()
	ps, err := policy.Decode([]byte(e2eServerPolicy(udpBoth)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.engine.UpsertPolicies(ps...); err != nil {
		t.Fatal(err)
	}
}

func (w *e2eWorld) identity(t *testing.T, ep string) uint32 {
	t.Helper()
	id, err := w.engine.Identity(ep)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(id)
}

// e2eAttach attaches the server endpoint's programs to the node side of its veth, from inside the
// node namespace (tcx resolves the ifindex there).
func e2eAttach(t *testing.T, d *datapath.Datapath, tp *e2eTopo) {
	t.Helper()
	err := bpftest.InNetns(tp.node, func() error {
		return d.AttachEndpoint(e2eServerEP, datapath.Attachment{Ifindex: tp.srvHostIfindex, HostSide: true})
	})
	if err != nil {
		t.Fatalf("attach server endpoint: %v", err)
	}
}

// e2eTCXPrograms counts the programs attached to the server's host-side veth per tcx hook.
func e2eTCXPrograms(t *testing.T, tp *e2eTopo) (ingress, egress int) {
	t.Helper()
	err := bpftest.InNetns(tp.node, func() error {
		for _, h := range []struct {
			attach ebpf.AttachType
			n      *int
		}{{ebpf.AttachTCXIngress, &ingress}, {ebpf.AttachTCXEgress, &egress}} {
			r, err := link.QueryPrograms(link.QueryOptions{Target: tp.srvHostIfindex, Attach: h.attach})
			if err != nil {
				return err
			}
			*h.n = len(r.Programs)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("query tcx programs: %v", err)
	}
	return ingress, egress
}

func TestE2EPolicyTraffic(t *testing.T) {
	tp := e2eNewTopo(t)
	e2eStartServer(t, tp)
	w := e2eNewWorld(t, tp)
	d := bpftest.Load(t, datapath.Spec{ReportNewFlows: true})
	rules, err := adaptSync(d, w.engine, w.eps, w.ids)
	if err != nil {
		t.Fatal(err)
	}
	c1ID, c2ID := w.identity(t, e2eClient1), w.identity(t, e2eClient2)
	events, err := d.Events()
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	e2eAttach(t, d, tp)
	if in, eg := e2eTCXPrograms(t, tp); in != 1 || eg != 1 {
		t.Fatalf("tcx programs on the server's veth: ingress %d, egress %d, want 1 and 1", in, eg)
	}

	tcp8080 := netip.AddrPortFrom(tp.srvIP, 8080)
	udp5353 := netip.AddrPortFrom(tp.srvIP, 5353)
	// Allowed: the server's replies pass only as replies of the tracked flow (its egress
	// allows nothing).
	if err := e2eTCPEcho(tp.c1, tcp8080, 2*time.Second); err != nil {
		t.Errorf("client1 → server TCP 8080 (allowed): %v", err)
	}
	for _, ns := range []string{tp.c1, tp.c2} {
		if err := e2eUDPEcho(ns, udp5353, 5, 300*time.Millisecond); err != nil {
			t.Errorf("%s → server UDP 5353 (allowed): %v", ns, err)
		}
	}
	// Denied: client2 to TCP 8080, client1 to TCP 9090. The SYNs are dropped, so the dials time out.
	var wg gosync.WaitGroup
	denied := []struct {
		name, ns string
		addr     netip.AddrPort
	}{
		{"client2 → server TCP 8080", tp.c2, tcp8080},
		{"client1 → server TCP 9090", tp.c1, netip.AddrPortFrom(tp.srvIP, 9090)},
	}
	for _, dn := range denied {
		wg.Go(func() {
			c, err := e2eDialTCP(dn.ns, dn.addr, 2*time.Second)
			if err == nil {
				c.Close()
				t.Errorf("%s (denied): connected", dn.name)
				return
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("%s (denied): %v, want a timeout (dropped SYNs)", dn.name, err)
			}
		})
	}
	wg.Wait()

	// Events: client2's SYNs denied by default deny; client1's TCP flow allowed by ingress[0].
	var sawDeny, sawAllow bool
	deadline := time.Now().Add(3 * time.Second)
	events.SetDeadline(deadline)
	for i := 0; i < 1000 && !(sawDeny && sawAllow) && time.Now().Before(deadline); i++ {
		ev, err := events.Read()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			t.Fatalf("read event: %v", err)
		}
		t.Logf("event: %+v", ev)
		if ev.Endpoint != e2eServerEP || ev.Direction != datapath.Ingress || ev.Protocol != datapath.ProtoTCP || ev.DstPort != 8080 {
			continue
		}
		switch {
		case ev.Verdict == datapath.Deny && ev.Remote == c2ID:
			sawDeny = true
			if ev.Src != tp.c2IP || ev.Dst != tp.srvIP || ev.Reason != datapath.ReasonDropDefault || ev.Cookie != 0 {
				t.Errorf("deny event %+v: want %s → %s, reason %s, cookie 0", ev, tp.c2IP, tp.srvIP, datapath.ReasonDropDefault)
			}
		case ev.Verdict == datapath.Allow && ev.Remote == c1ID:
			sawAllow = true
			want := policy.RuleRef{Policy: policy.PolicyRef{Kind: "NetworkPolicy", Namespace: "e2e", Name: "server"}, Section: "ingress", Index: 0}
			if got, _ := rules.Rule(ev.Cookie); got != want || !ev.NewFlow || ev.Src != tp.c1IP {
				t.Errorf("allow event %+v: cookie names %v, want %v, a new flow from %s", ev, got, want, tp.c1IP)
			}
		}
	}
	if !sawDeny {
		t.Errorf("no deny event for client2 (identity %d) → server TCP 8080", c2ID)
	}
	if !sawAllow {
		t.Errorf("no allow event for client1 (identity %d) → server TCP 8080", c1ID)
	}

	st, err := d.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stats: %+v", st)
	if st.Packets[datapath.ReasonForwarded] < 3 || st.Packets[datapath.ReasonForwardedCT] < 3 || st.Packets[datapath.ReasonDropDefault] < 2 {
		t.Errorf("counters %v: want ≥3 forwarded (TCP + 2 UDP flows), ≥3 forwarded by conntrack, ≥2 default-deny drops", st.Packets)
	}
	n, err := d.FlushConntrack(e2eServerEP)
	if err != nil || n == 0 {
		t.Errorf("FlushConntrack(server) = %d, %v; want the tracked flows", n, err)
	}

	// Detached, nothing is enforced: client2 reaches TCP 8080.
	if err := d.DetachEndpoint(e2eServerEP); err != nil {
		t.Fatal(err)
	}
	if in, eg := e2eTCXPrograms(t, tp); in != 0 || eg != 0 {
		t.Errorf("tcx programs after detach: ingress %d, egress %d, want none", in, eg)
	}
	if err := e2eTCPEcho(tp.c2, tcp8080, 2*time.Second); err != nil {
		t.Errorf("client2 → server TCP 8080 after detach: %v", err)
	}
}

// e2ePinger sends a UDP ping every interval from client1 and counts echoes, until stopped or
// bounded by count and time.
type e2ePinger struct {
	sent, recv atomic.Int64
	stop       chan struct{}
	done       chan struct{}
}

func e2eStartPinger(t *testing.T, ns string, addr netip.AddrPort) *e2ePinger {
	t.Helper()
	c, err := e2eUDPConn(ns, addr)
	if err != nil {
		t.Fatal(err)
	}
	p := &e2ePinger{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		defer c.Close()
		buf := make([]byte, 1500)
		end := time.Now().Add(60 * time.Second)
		for i := 0; i < 5000 && time.Now().Before(end); i++ {
			select {
			case <-p.stop:
				return
			default:
			}
			msg := fmt.Sprintf("ping %d", i)
			if _, err := c.Write([]byte(msg)); err != nil {
				continue
			}
			p.sent.Add(1)
			_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			for {
				n, err := c.Read(buf)
				if err != nil {
					break
				}
				if string(buf[:n]) == "echo "+msg {
					p.recv.Add(1)
					break
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	t.Cleanup(p.halt)
	return p
}

func (p *e2ePinger) halt() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

// expect waits until n more echoes than now arrived, for at most 3 s.
func (p *e2ePinger) expect(t *testing.T, n int64, phase string) {
	t.Helper()
	start := p.recv.Load()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if p.recv.Load()-start >= n {
			return
		}
	}
	t.Errorf("%s: %d echoes in 3 s, want %d (sent %d, received %d in all)", phase, p.recv.Load()-start, n, p.sent.Load(), p.recv.Load())
}

// e2eExpectBlocked checks that client2 cannot open TCP 8080 (its SYNs are dropped).
func e2eExpectBlocked(t *testing.T, tp *e2eTopo, phase string) {
	t.Helper()
	c, err := e2eDialTCP(tp.c2, netip.AddrPortFrom(tp.srvIP, 8080), time.Second)
	if err == nil {
		c.Close()
		t.Errorf("%s: client2 → server TCP 8080 connected, want it denied", phase)
	}
}

// TestPinRestart: with Spec.PinPath, the tcx links stay attached and enforcing after Close, and a
// new Datapath on the same pins replaces the programs in those links (no second attachment),
// while allowed traffic keeps flowing.
func TestPinRestart(t *testing.T) {
	tp := e2eNewTopo(t)
	e2eStartServer(t, tp)
	w := e2eNewWorld(t, tp)
	pins := filepath.Join(bpftest.MountBPFFS(t), "ceskit")
	spec := datapath.Spec{PinPath: pins}

	d1 := bpftest.Load(t, spec)
	if _, err := adaptSync(d1, w.engine, w.eps, w.ids); err != nil {
		t.Fatal(err)
	}
	e2eAttach(t, d1, tp)
	p := e2eStartPinger(t, tp.c1, netip.AddrPortFrom(tp.srvIP, 5353))
	p.expect(t, 10, "first datapath")
	e2eExpectBlocked(t, tp, "first datapath")

	if err := d1.Close(); err != nil {
		t.Fatalf("close first datapath: %v", err)
	}
	if in, eg := e2eTCXPrograms(t, tp); in != 1 || eg != 1 {
		t.Errorf("tcx programs after Close: ingress %d, egress %d, want the pinned 1 and 1", in, eg)
	}
	pinned, _ := filepath.Glob(filepath.Join(pins, "link_*"))
	if len(pinned) != 2 {
		t.Errorf("pinned links after Close: %v, want 2", pinned)
	}
	p.expect(t, 10, "closed, pinned links")
	e2eExpectBlocked(t, tp, "closed, pinned links")

	d2 := bpftest.Load(t, spec)
	if _, err := adaptSync(d2, w.engine, w.eps, w.ids); err != nil {
		t.Fatal(err)
	}
	e2eAttach(t, d2, tp)
	if in, eg := e2eTCXPrograms(t, tp); in != 1 || eg != 1 {
		t.Errorf("tcx programs after the restart: ingress %d, egress %d, want 1 and 1 (replaced, not added)", in, eg)
	}
	p.expect(t, 10, "second datapath")
	e2eExpectBlocked(t, tp, "second datapath")
	if err := e2eTCPEcho(tp.c1, netip.AddrPortFrom(tp.srvIP, 8080), 2*time.Second); err != nil {
		t.Errorf("second datapath: client1 → server TCP 8080 (allowed): %v", err)
	}
	p.halt()
	t.Logf("UDP pings across the restart: sent %d, echoed %d", p.sent.Load(), p.recv.Load())

	if err := d2.DetachEndpoint(e2eServerEP); err != nil {
		t.Fatal(err)
	}
	if in, eg := e2eTCXPrograms(t, tp); in != 0 || eg != 0 {
		t.Errorf("tcx programs after DetachEndpoint: ingress %d, egress %d, want none", in, eg)
	}
	if pinned, _ := filepath.Glob(filepath.Join(pins, "link_*")); len(pinned) != 0 {
		t.Errorf("pinned links after DetachEndpoint: %v, want none", pinned)
	}
}

// TestPinRestartStaleEndpoint: a new Datapath on the same pins lists the endpoints an earlier
// process left (Endpoints), and DetachEndpoint removes one that is gone without re-attaching it:
// its pinned links (so its programs leave the veth) and its policy entries. An endpoint attached
// again on another interface (its pod's veth was replaced) loses the links of the old one.
func TestPinRestartStaleEndpoint(t *testing.T) {
	tp := e2eNewTopo(t)
	w := e2eNewWorld(t, tp)
	pins := filepath.Join(bpftest.MountBPFFS(t), "ceskit")
	spec := datapath.Spec{PinPath: pins}
	var want []uint32
	for _, id := range w.ids {
		want = append(want, id)
	}
	slices.Sort(want)

	for _, reattach := range []bool{false, true} {
		d1 := bpftest.Load(t, spec)
		if _, err := adaptSync(d1, w.engine, w.eps, w.ids); err != nil {
			t.Fatal(err)
		}
		e2eAttach(t, d1, tp)
		if err := d1.Close(); err != nil {
			t.Fatal(err)
		}
		d2 := bpftest.Load(t, spec)
		if got := d2.Endpoints(); !slices.Equal(got, want) {
			t.Errorf("Endpoints after the restart = %v, want %v (synced and pinned by the first process)", got, want)
		}
		if reattach {
			// The server's endpoint comes back on another interface.
			dummy := tp.prefix + "v9"
			bpftest.Run(t, "ip", "-n", tp.node, "link", "add", dummy, "type", "veth", "peer", "name", tp.prefix+"v8")
			bpftest.Run(t, "ip", "-n", tp.node, "link", "set", dummy, "up")
			err := bpftest.InNetns(tp.node, func() error {
				ifi, err := net.InterfaceByName(dummy)
				if err != nil {
					return err
				}
				return d2.AttachEndpoint(e2eServerEP, datapath.Attachment{Ifindex: ifi.Index, HostSide: true})
			})
			if err != nil {
				t.Fatal(err)
			}
		} else if err := d2.DetachEndpoint(e2eServerEP); err != nil {
			t.Fatal(err)
		}
		if in, eg := e2eTCXPrograms(t, tp); in != 0 || eg != 0 {
			t.Errorf("reattach=%t: tcx programs on the old veth: ingress %d, egress %d, want none", reattach, in, eg)
		}
		pinned, _ := filepath.Glob(filepath.Join(pins, fmt.Sprintf("link_ep%d_*_if%d", e2eServerEP, tp.srvHostIfindex)))
		if len(pinned) != 0 {
			t.Errorf("reattach=%t: pinned links on the old veth: %v, want none", reattach, pinned)
		}
		if !reattach {
			if got := d2.Endpoints(); slices.Contains(got, e2eServerEP) {
				t.Errorf("Endpoints after DetachEndpoint = %v, still has %d", got, e2eServerEP)
			}
		}
		if err := d2.Close(); err != nil {
			t.Fatal(err)
		}
		d3 := bpftest.Load(t, spec)
		if got := d3.Endpoints(); slices.Contains(got, e2eServerEP) != reattach {
			t.Errorf("reattach=%t: Endpoints of a third process = %v", reattach, got)
		}
		for _, id := range d3.Endpoints() {
			if err := d3.DetachEndpoint(id); err != nil {
				t.Fatal(err)
			}
		}
		if err := d3.Close(); err != nil {
			t.Fatal(err)
		}
		if rest, _ := filepath.Glob(filepath.Join(pins, "link_*")); len(rest) != 0 {
			t.Errorf("pinned links after detaching everything: %v", rest)
		}
	}
}

// TestPinRestartPolicyChange: a policy that changed while the agent was down is enforced after
// the restart. The first Datapath allows UDP 5353 from both clients; the second syncs the policy
// that allows it from client1 only, so client2's entries written by the first must go.
func TestPinRestartPolicyChange(t *testing.T) {
	tp := e2eNewTopo(t)
	e2eStartServer(t, tp)
	w := e2eNewWorld(t, tp)
	pins := filepath.Join(bpftest.MountBPFFS(t), "ceskit")
	spec := datapath.Spec{PinPath: pins}
	udp5353 := netip.AddrPortFrom(tp.srvIP, 5353)

	d1 := bpftest.Load(t, spec)
	if _, err := adaptSync(d1, w.engine, w.eps, w.ids); err != nil {
		t.Fatal(err)
	}
	e2eAttach(t, d1, tp)
	if err := e2eUDPEcho(tp.c2, udp5353, 5, 300*time.Millisecond); err != nil {
		t.Fatalf("client2 → server UDP 5353 (allowed before the restart): %v", err)
	}
	if err := d1.Close(); err != nil {
		t.Fatal(err)
	}

	w.setPolicy(t, false)
	d2 := bpftest.Load(t, spec)
	if _, err := adaptSync(d2, w.engine, w.eps, w.ids); err != nil {
		t.Fatal(err)
	}
	e2eAttach(t, d2, tp)
	if _, err := d2.FlushConntrack(0); err != nil { // only the policy decides below
		t.Fatal(err)
	}
	if err := e2eUDPEcho(tp.c1, udp5353, 5, 300*time.Millisecond); err != nil {
		t.Errorf("client1 → server UDP 5353 (allowed after the restart): %v", err)
	}
	if err := e2eUDPEcho(tp.c2, udp5353, 3, 300*time.Millisecond); err == nil {
		t.Errorf("client2 → server UDP 5353 echoed after the restart, but the policy synced after it denies it: " +
			"entries the previous process wrote into the pinned maps survive")
	}
	if err := d2.DetachEndpoint(e2eServerEP); err != nil {
		t.Fatal(err)
	}
}

// TestPinRestartStaleEntries is the BPF_PROG_TEST_RUN form of TestPinRestartPolicyChange, for the
// policy maps and the ipcache: state a previous Datapath wrote into pinned maps and the new one's
// first sync no longer lists must not keep deciding verdicts.
func TestPinRestartStaleEntries(t *testing.T) {
	bpftest.RequireRoot(t, "ip")
	const ep = 9
	src, dst := netip.MustParseAddr("10.198.1.1"), netip.MustParseAddr("10.198.1.2")
	pkt := benchPacket(src, dst, datapath.ProtoUDP, 40000, 5353)
	allow300 := datapath.Entry{Identity: 300, Protocol: datapath.ProtoUDP, Port: 5353, PortPrefixLen: 16, Verdict: datapath.Allow, Precedence: 2}
	allow301 := allow300
	allow301.Identity = 301
	for _, c := range []struct {
		name                string
		before, after       []datapath.Entry
		idsBefore, idsAfter map[netip.Prefix]uint32
	}{
		// The first process allowed identity 300; the policy now allows only 301.
		{"policy", []datapath.Entry{allow300}, []datapath.Entry{allow301},
			map[netip.Prefix]uint32{netip.PrefixFrom(src, 32): 300}, map[netip.Prefix]uint32{netip.PrefixFrom(src, 32): 300}},
		// The address was identity 300's; it is no longer in the ipcache (world), and 300 stays allowed.
		{"ipcache", []datapath.Entry{allow300}, []datapath.Entry{allow300},
			map[netip.Prefix]uint32{netip.PrefixFrom(src, 32): 300}, map[netip.Prefix]uint32{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec := datapath.Spec{PinPath: filepath.Join(bpftest.MountBPFFS(t), "ceskit"), DisableConntrack: true}
			d1 := bpftest.Load(t, spec)
			if err := d1.SetIdentities(c.idsBefore); err != nil {
				t.Fatal(err)
			}
			if _, err := d1.SyncEndpoint(ep, c.before); err != nil {
				t.Fatal(err)
			}
			if err := d1.Close(); err != nil {
				t.Fatal(err)
			}
			d2 := bpftest.Load(t, spec)
			if err := d2.SetIdentities(c.idsAfter); err != nil {
				t.Fatal(err)
			}
			if _, err := d2.SyncEndpoint(ep, c.after); err != nil {
				t.Fatal(err)
			}
			prog, err := d2.Program(ep, datapath.Ingress)
			if err != nil {
				t.Fatal(err)
			}
			ret, _, err := prog.Test(pkt)
			if err != nil {
				t.Fatal(err)
			}
			if ret != benchTCXDrop {
				t.Errorf("%s → %s UDP 5353 after the restart returned %d, want TCX_DROP (%d): the first Datapath's entries survive in the pinned maps",
					src, dst, int32(ret), benchTCXDrop)
			}
		})
	}
}
