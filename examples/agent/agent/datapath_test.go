package agent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ceskit/ceskit/datapath"
	"github.com/ceskit/ceskit/internal/bpftest"
	"github.com/ceskit/ceskit/observe"
	"github.com/ceskit/ceskit/policy"
	"github.com/ceskit/ceskit/slicer"
	"github.com/ceskit/ceskit/slicer/ciliumv2alpha1"
)

// The datapath tests build a node out of network namespaces, named with a random "cesa…" prefix
// and deleted when the test ends (nothing is added to the test process's own namespace):
//
//	pod a (10.201.1.2) ─ veth ─┐
//	                            node (10.201.{1,2}.1 on the host-side veths, forwarding)
//	pod b (10.201.2.2) ─ veth ─┘
//
// The agent attaches each pod's programs to the node side of its veth from inside the node
// namespace (Config.Netns), as it would on a real node with hostNetwork.

// inNS runs fn on a thread in the named namespace (the thread exits afterwards).
func inNS(ns string, fn func() error) error {
	return inNetns(filepath.Join("/var/run/netns", ns), fn)
}

// node is the test network.
type node struct {
	prefix      string
	ns          string // the node's namespace
	netnsPath   string
	a, b        string // the pods' namespaces
	hostA       string // node-side veths
	hostB       string
	aIP, bIP    netip.Addr
	bridgeRoute netip.Addr // routed to a bridge in the node namespace
	gwRoute     netip.Addr // routed through pod a as a gateway
}

func newNode(t *testing.T) *node {
	t.Helper()
	bpftest.RequireRoot(t, "ip")
	var rnd [3]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	p := "cesa" + hex.EncodeToString(rnd[:])
	n := &node{
		prefix: p, ns: p + "-node", a: p + "-a", b: p + "-b", hostA: p + "ha", hostB: p + "hb",
		aIP: netip.MustParseAddr("10.201.1.2"), bIP: netip.MustParseAddr("10.201.2.2"),
		bridgeRoute: netip.MustParseAddr("10.201.8.1"), gwRoute: netip.MustParseAddr("10.201.9.1"),
	}
	n.netnsPath = filepath.Join("/var/run/netns", n.ns)
	for _, ns := range []string{n.ns, n.a, n.b} {
		bpftest.Run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if err := bpftest.RunErr("ip", "netns", "del", ns); err != nil {
				t.Errorf("delete namespace: %v", err)
			}
		})
		bpftest.Run(t, "ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
		bpftest.Run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	bpftest.Run(t, "ip", "netns", "exec", n.ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	for i, pod := range []string{n.a, n.b} {
		host, peer, sub := []string{n.hostA, n.hostB}[i], p+[]string{"pa", "pb"}[i], i+1
		bpftest.Run(t, "ip", "-n", n.ns, "link", "add", host, "type", "veth", "peer", "name", peer, "netns", pod)
		bpftest.Run(t, "ip", "-n", n.ns, "addr", "add", fmt.Sprintf("10.201.%d.1/24", sub), "dev", host)
		bpftest.Run(t, "ip", "-n", n.ns, "link", "set", host, "up")
		bpftest.Run(t, "ip", "-n", pod, "addr", "add", fmt.Sprintf("10.201.%d.2/24", sub), "dev", peer)
		bpftest.Run(t, "ip", "-n", pod, "link", "set", peer, "up")
		bpftest.Run(t, "ip", "-n", pod, "route", "add", "default", "via", fmt.Sprintf("10.201.%d.1", sub))
	}
	// Routes the default attach rule must refuse: to a bridge, and through a gateway.
	bpftest.Run(t, "ip", "-n", n.ns, "link", "add", p+"br", "type", "bridge")
	bpftest.Run(t, "ip", "-n", n.ns, "link", "set", p+"br", "up")
	bpftest.Run(t, "ip", "-n", n.ns, "route", "add", "10.201.8.0/24", "dev", p+"br")
	bpftest.Run(t, "ip", "-n", n.ns, "route", "add", "10.201.9.0/24", "via", "10.201.1.2")
	return n
}

// nameRule maps endpoints to node-side veths by pod name, as an embedder (the lab) would.
func (n *node) nameRule(names map[string]string) AttachRule {
	return func(ep Endpoint) (Target, error) {
		name, ok := names[ep.Name]
		if !ok {
			return Target{}, fmt.Errorf("%w %s: not in the test's table", ErrNoInterface, ep.Key())
		}
		ifc, err := net.InterfaceByName(name) // in Config.Netns: the agent calls the rule there
		if err != nil {
			return Target{}, fmt.Errorf("%w %s: %v", ErrNoInterface, ep.Key(), err)
		}
		return Target{Interface: name, Ifindex: ifc.Index, HostSide: true}, nil
	}
}

// tcxPrograms counts the programs on a node-side interface per tcx hook.
func (n *node) tcxPrograms(t *testing.T, ifname string) (ingress, egress int) {
	t.Helper()
	err := inNS(n.ns, func() error {
		ifc, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		for _, h := range []struct {
			attach ebpf.AttachType
			n      *int
		}{{ebpf.AttachTCXIngress, &ingress}, {ebpf.AttachTCXEgress, &egress}} {
			r, err := link.QueryPrograms(link.QueryOptions{Target: ifc.Index, Attach: h.attach})
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

// serve runs TCP echo servers on ports in namespace ns at addr until the test ends.
func serve(t *testing.T, ns string, addr netip.Addr, ports ...int) {
	t.Helper()
	var lns []net.Listener
	err := inNS(ns, func() error {
		for _, port := range ports {
			ln, err := net.Listen("tcp4", netip.AddrPortFrom(addr, uint16(port)).String())
			if err != nil {
				return err
			}
			lns = append(lns, ln)
		}
		return nil
	})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		for _, ln := range lns {
			ln.Close()
		}
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	for _, ln := range lns {
		wg.Go(func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
				wg.Go(func() {
					defer c.Close()
					line, err := bufio.NewReader(c).ReadString('\n')
					if err == nil {
						_, _ = c.Write([]byte("echo " + line))
					}
				})
			}
		})
	}
}

// tcpEcho connects from ns to addr and exchanges one line, within timeout.
func tcpEcho(ns string, addr netip.AddrPort, timeout time.Duration) error {
	var c net.Conn
	err := inNS(ns, func() error {
		var err error
		c, err = (&net.Dialer{Timeout: timeout}).Dial("tcp4", addr.String())
		return err
	})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if _, err := c.Write([]byte("hello\n")); err != nil {
		return err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if got != "echo hello\n" {
		return fmt.Errorf("reply %q", got)
	}
	return nil
}

// recordSink keeps every flow.
type recordSink struct {
	mu    sync.Mutex
	flows []observe.Flow
}

func (s *recordSink) Write(_ context.Context, r observe.Record) error {
	if r.Flow != nil {
		s.mu.Lock()
		s.flows = append(s.flows, *r.Flow)
		s.mu.Unlock()
	}
	return nil
}

func (s *recordSink) find(match func(f observe.Flow) bool) (observe.Flow, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.flows {
		if match(f) {
			return f, true
		}
	}
	return observe.Flow{}, false
}

// lockedBuffer is a bytes.Buffer safe for the sink's writes and the test's reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func ingressTCP(f observe.Flow, verdict observe.Verdict, port uint32) bool {
	return f.Verdict == verdict && f.TrafficDirection == observe.DirectionIngress &&
		f.L4 != nil && f.L4.TCP != nil && f.L4.TCP.DestinationPort == port
}

const dpPolicies = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-ingress, namespace: dp}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: a}}}]
    ports: [{protocol: TCP, port: 8080}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: b-deny, namespace: dp}
spec:
  endpointSelector: {matchLabels: {app: b}}
  ingressDeny:
  - fromEndpoints: [{matchLabels: {app: a}}]
    toPorts: [{ports: [{port: "7070", protocol: TCP}]}]
`

// TestDatapath runs an agent with a real datapath on a node of network namespaces: the policy
// from a NetworkPolicy and a CiliumNetworkPolicy reaches the programs on the pods' node-side
// veths, real TCP connections are allowed and dropped as the policy says, the audit sink gets
// the flows with the policies named (by cookie, and for a default deny by the isolating
// policy), the drop counter reaches Prometheus, and a deleted endpoint is detached.
func TestDatapath(t *testing.T) {
	n := newNode(t)
	serve(t, n.b, n.bIP, 8080, 9090, 7070)

	c := newCluster(t)
	ns := c.namespace("dp")
	c.node("nd-dp", "192.168.60.10")
	c.identity(2001, ns, map[string]string{"app": "a"})
	c.identity(2002, ns, map[string]string{"app": "b"})
	c.slice("ces-dp-1", ns,
		ep("a-1", 2001, n.aIP.String(), "192.168.60.10"),
		ep("b-1", 2002, n.bIP.String(), "192.168.60.10"))
	c.apply(inNamespace(dpPolicies, ns))

	reg := prometheus.NewRegistry()
	dpm, err := observe.NewDatapathMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	d := bpftest.Load(t, datapath.Spec{ReportNewFlows: true, Metrics: dpm})
	rec := &recordSink{}
	audit := &lockedBuffer{}
	a := startAgent(t, api(t), "nd-dp", Config{
		Datapath:        d,
		DatapathMetrics: dpm,
		Netns:           n.netnsPath,
		Attach:          n.nameRule(map[string]string{"a-1": n.hostA, "b-1": n.hostB}),
		Sink:            observe.MultiSink(rec, observe.NewJSONLinesSink(audit)),
		Registry:        reg,
		StatsInterval:   100 * time.Millisecond,
		Watcher:         slicer.WatcherConfig{HeartbeatLease: "-", DeleteGrace: 100 * time.Millisecond},
		Logger:          testLogger(t),
	})
	eventually(t, "both endpoints attached", attached(a, ns+"/a-1", ns+"/b-1"))
	if in, eg := n.tcxPrograms(t, n.hostB); in != 1 || eg != 1 {
		t.Fatalf("tcx programs on b's veth: ingress %d, egress %d, want 1 and 1", in, eg)
	}

	b8080, b9090, b7070 := netip.AddrPortFrom(n.bIP, 8080), netip.AddrPortFrom(n.bIP, 9090), netip.AddrPortFrom(n.bIP, 7070)
	if err := tcpEcho(n.a, b8080, 3*time.Second); err != nil {
		t.Errorf("a → b TCP 8080 (allowed by the NetworkPolicy): %v", err)
	}
	var wg sync.WaitGroup
	for _, addr := range []netip.AddrPort{b9090, b7070} {
		wg.Go(func() {
			err := tcpEcho(n.a, addr, 1500*time.Millisecond)
			var ne net.Error
			if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("a → b %s (dropped): got %v, want a timeout", addr, err)
			}
		})
	}
	wg.Wait()

	np := observe.Policy{Kind: "NetworkPolicy", Namespace: ns, Name: "b-ingress"}
	cnp := observe.Policy{Kind: "CiliumNetworkPolicy", Namespace: ns, Name: "b-deny"}
	named := func(ps []observe.Policy, want observe.Policy) bool {
		return slices.ContainsFunc(ps, func(p observe.Policy) bool {
			return p.Kind == want.Kind && p.Namespace == want.Namespace && p.Name == want.Name
		})
	}
	eventually(t, "flows in the audit sink", func() string {
		fwd, ok := rec.find(func(f observe.Flow) bool { return ingressTCP(f, observe.VerdictForwarded, 8080) })
		if !ok {
			return "no FORWARDED flow to b:8080"
		}
		if !named(fwd.IngressAllowedBy, np) || fwd.Ceskit == nil || fwd.Ceskit.Cookie == 0 ||
			fwd.Source.PodName != "" || fwd.Destination.PodName != "b-1" || fwd.Destination.Namespace != ns {
			return fmt.Sprintf("FORWARDED flow %+v: want b-1, allowed by %v through a cookie", fwd, np)
		}
		def, ok := rec.find(func(f observe.Flow) bool { return ingressTCP(f, observe.VerdictDropped, 9090) })
		if !ok {
			return "no DROPPED flow to b:9090"
		}
		if def.DropReasonDesc != observe.DropPolicyDenied || !named(def.IngressDeniedBy, np) || def.Ceskit == nil ||
			!strings.Contains(def.Ceskit.Rule, "(default deny)") {
			return fmt.Sprintf("default-deny flow %+v / %+v: want POLICY_DENIED naming %v", def, def.Ceskit, np)
		}
		deny, ok := rec.find(func(f observe.Flow) bool { return ingressTCP(f, observe.VerdictDropped, 7070) })
		if !ok {
			return "no DROPPED flow to b:7070"
		}
		rule := policy.RuleRef{Policy: policy.PolicyRef{Kind: "CiliumNetworkPolicy", Namespace: ns, Name: "b-deny"}, Section: "ingressDeny"}
		if deny.DropReasonDesc != observe.DropPolicyDeny || !named(deny.IngressDeniedBy, cnp) || deny.Ceskit == nil ||
			deny.Ceskit.Cookie != a.Cookies().Cookie(rule) || deny.Ceskit.Rule != rule.String() {
			return fmt.Sprintf("deny flow %+v / %+v: want POLICY_DENY by %v, cookie %d", deny, deny.Ceskit, cnp, a.Cookies().Cookie(rule))
		}
		if !slices.Contains(deny.Source.Labels, "k8s:app=a") {
			return fmt.Sprintf("deny flow source %+v: want the identity's labels", deny.Source)
		}
		return ""
	})
	eventually(t, "drops counted in Prometheus", func() string {
		if v := counterSum(t, reg, "cilium_drop_count_total"); v == 0 {
			return "cilium_drop_count_total = 0"
		}
		if v := counterSum(t, reg, "cilium_forward_count_total"); v == 0 {
			return "cilium_forward_count_total = 0"
		}
		return ""
	})
	st := a.Status()
	if st.Mode != ModeDatapath || st.Verdicts["DROPPED"] < 2 || st.Verdicts["FORWARDED"] < 1 || st.MonitorEvents == 0 || st.IPCache < 3 {
		t.Errorf("status mode=%s verdicts=%v events=%d ipcache=%d", st.Mode, st.Verdicts, st.MonitorEvents, st.IPCache)
	}
	if !strings.Contains(audit.String(), `"verdict":"DROPPED"`) || !strings.Contains(audit.String(), `"name":"b-deny"`) {
		t.Errorf("JSON audit log lacks the drops:\n%s", audit.String())
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("status:\n%s", b)
	for line := range strings.SplitSeq(audit.String(), "\n") {
		if strings.Contains(line, `"destination_port":7070`) || strings.Contains(line, `"destination_port":9090`) {
			t.Logf("audit: %s", line)
		}
	}

	// A deleted endpoint is detached: b is reachable on every port again.
	c.updateSlice("ces-dp-1", func(ces *ciliumv2alpha1.CiliumEndpointSlice) {
		ces.Endpoints = slices.DeleteFunc(ces.Endpoints, func(e ciliumv2alpha1.CoreCiliumEndpoint) bool { return e.Name == "b-1" })
	})
	eventually(t, "b detached", func() string {
		if names := localNames(a.Status()); !slices.Equal(names, []string{ns + "/a-1"}) {
			return fmt.Sprintf("local %v", names)
		}
		if in, eg := n.tcxPrograms(t, n.hostB); in != 0 || eg != 0 {
			return fmt.Sprintf("tcx programs on b's veth: ingress %d, egress %d", in, eg)
		}
		return ""
	})
	if err := tcpEcho(n.a, b9090, 3*time.Second); err != nil {
		t.Errorf("a → b TCP 9090 after b's endpoint was deleted: %v", err)
	}
}

// TestRouteAttachRule checks the default attach rule in a node namespace: a pod's address routed
// to its veth gives the veth's host side; a gateway route, a non-veth device, the node's own
// address and an unrouted address give ErrNoInterface.
func TestRouteAttachRule(t *testing.T) {
	n := newNode(t)
	rule := func(ips ...netip.Addr) (Target, error) {
		var tg Target
		err := inNS(n.ns, func() error {
			var err error
			tg, err = RouteAttachRule(Endpoint{Namespace: "x", Name: "p", IPs: ips})
			return err
		})
		return tg, err
	}
	var want Target
	if err := inNS(n.ns, func() error {
		ifc, err := net.InterfaceByName(n.hostB)
		want = Target{Interface: n.hostB, HostSide: true}
		if ifc != nil {
			want.Ifindex = ifc.Index
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	got, err := rule(n.bIP)
	if err != nil || got != want {
		t.Errorf("RouteAttachRule(%s) = %+v, %v; want %+v", n.bIP, got, err, want)
	}
	// IPv4 first, whatever the order; an address that fails is skipped for one that works.
	if got, err := rule(netip.MustParseAddr("fd00::1"), netip.MustParseAddr("10.201.9.1"), n.bIP); err != nil || got != want {
		t.Errorf("RouteAttachRule(several) = %+v, %v; want %+v", got, err, want)
	}
	for name, ip := range map[string]netip.Addr{
		"gateway":  n.gwRoute,
		"bridge":   n.bridgeRoute,
		"local":    netip.MustParseAddr("10.201.1.1"),
		"unrouted": netip.MustParseAddr("192.0.2.1"),
	} {
		if got, err := rule(ip); !errors.Is(err, ErrNoInterface) {
			t.Errorf("%s: RouteAttachRule(%s) = %+v, %v; want ErrNoInterface", name, ip, got, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if _, err := rule(); !errors.Is(err, ErrNoInterface) {
		t.Errorf("no address: %v, want ErrNoInterface", err)
	}
}

// TestDatapathFailClosed: an endpoint whose entries do not fit the datapath's per-endpoint limit
// is attached with an empty map (everything denied) and reported, never given part of its policy;
// when the policy shrinks it is synced again.
func TestDatapathFailClosed(t *testing.T) {
	n := newNode(t)
	serve(t, n.b, n.bIP, 8080)
	c := newCluster(t)
	ns := c.namespace("fc")
	c.node("nd-fc", "192.168.61.10")
	c.identity(2101, ns, map[string]string{"app": "a"})
	c.identity(2102, ns, map[string]string{"app": "b"})
	c.slice("ces-fc-1", ns,
		ep("a-1", 2101, n.aIP.String(), "192.168.61.10"),
		ep("b-1", 2102, n.bIP.String(), "192.168.61.10"))
	c.apply(inNamespace(dpPolicies, ns))

	d := bpftest.Load(t, datapath.Spec{MaxEntriesPerEndpoint: 3})
	a := startAgent(t, api(t), "nd-fc", Config{
		Datapath: d,
		Netns:    n.netnsPath,
		Attach:   n.nameRule(map[string]string{"a-1": n.hostA, "b-1": n.hostB}),
		Watcher:  slicer.WatcherConfig{HeartbeatLease: "-"},
		Logger:   testLogger(t),
	})
	eventually(t, "b fails closed", func() string {
		st := a.Status()
		for _, l := range st.LocalEndpoints {
			if l.Endpoint == ns+"/b-1" && l.FailClosed && l.Interface != "" && l.DatapathEntries == 0 && strings.Contains(l.Error, "capacity") {
				return ""
			}
		}
		return fmt.Sprintf("local %+v", st.LocalEndpoints)
	})
	if got := d.Entries(a.Status().LocalEndpoints[1].DatapathID); len(got) != 0 {
		t.Errorf("b's datapath entries %v, want none", got)
	}
	if err := tcpEcho(n.a, netip.AddrPortFrom(n.bIP, 8080), time.Second); err == nil {
		t.Error("a → b TCP 8080 passed although b failed closed")
	}
	// Without the CiliumNetworkPolicy b's policy fits: it is synced again (the failure was
	// retried) and the allowed port works.
	if err := c.pc.cnps(ns).Delete(c.ctx, "b-deny", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b recovers", func() string {
		for _, l := range a.Status().LocalEndpoints {
			if l.Endpoint == ns+"/b-1" && !l.FailClosed && l.Error == "" && l.DatapathEntries > 0 {
				return ""
			}
		}
		return fmt.Sprintf("local %+v", a.Status().LocalEndpoints)
	})
	if err := tcpEcho(n.a, netip.AddrPortFrom(n.bIP, 8080), 3*time.Second); err != nil {
		t.Errorf("a → b TCP 8080 after recovery: %v", err)
	}
}

// attached is an eventually condition: the agent is ready, its local endpoints are exactly want
// (sorted), and each is attached to an interface with entries in the datapath and no error.
func attached(a *Agent, want ...string) func() string {
	return func() string {
		st := a.Status()
		if !st.Ready || !slices.Equal(localNames(st), want) {
			return fmt.Sprintf("ready=%v local=%v unresolved=%v", st.Ready, localNames(st), st.Unresolved)
		}
		for _, l := range st.LocalEndpoints {
			if l.Interface == "" || l.Error != "" || l.DatapathEntries == 0 {
				return fmt.Sprintf("%+v", l)
			}
		}
		return ""
	}
}

// TestPinnedRestartRemovesStale: with a pinned datapath, an endpoint deleted while the agent was
// down loses its programs and policy entries when the agent comes back (they would otherwise stay
// in the pinned maps and links for ever), while one that stayed keeps its programs.
func TestPinnedRestartRemovesStale(t *testing.T) {
	n := newNode(t)
	c := newCluster(t)
	ns := c.namespace("pin")
	c.node("nd-pin", "192.168.61.10")
	c.identity(2101, ns, map[string]string{"app": "a"})
	c.identity(2102, ns, map[string]string{"app": "b"})
	c.slice("ces-pin-1", ns,
		ep("a-1", 2101, n.aIP.String(), "192.168.61.10"),
		ep("b-1", 2102, n.bIP.String(), "192.168.61.10"))
	spec := datapath.Spec{PinPath: filepath.Join(bpftest.MountBPFFS(t), "ceskit")}
	config := func(d *datapath.Datapath) Config {
		return Config{
			Datapath: d, Netns: n.netnsPath,
			Attach:  n.nameRule(map[string]string{"a-1": n.hostA, "b-1": n.hostB}),
			Watcher: slicer.WatcherConfig{HeartbeatLease: "-", DeleteGrace: 100 * time.Millisecond},
			Logger:  testLogger(t),
		}
	}
	// First run: both endpoints attached, through pinned links.
	d1, err := datapath.Load(spec)
	if err != nil {
		t.Fatal(err)
	}
	a1, err := New(api(t), "nd-pin", config(d1))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a1.Run(ctx) }()
	eventually(t, "first run: both endpoints attached", attached(a1, ns+"/a-1", ns+"/b-1"))
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := d1.Close(); err != nil {
		t.Fatal(err)
	}
	aID, bID := DatapathID(ns+"/a-1"), DatapathID(ns+"/b-1")

	// b-1 goes while no agent runs; its programs stay attached through the pins.
	c.updateSlice("ces-pin-1", func(s *ciliumv2alpha1.CiliumEndpointSlice) { s.Endpoints = s.Endpoints[:1] })
	if in, eg := n.tcxPrograms(t, n.hostB); in != 1 || eg != 1 {
		t.Fatalf("b's veth with no agent: tcx programs %d and %d, want the pinned 1 and 1", in, eg)
	}

	d2 := bpftest.Load(t, spec)
	if got := d2.Endpoints(); !slices.Equal(got, slices.Sorted(slices.Values([]uint32{aID, bID}))) {
		t.Fatalf("restored endpoints %v, want a-1's %d and b-1's %d", got, aID, bID)
	}
	a2 := startAgent(t, api(t), "nd-pin", config(d2))
	eventually(t, "second run: a-1 attached", attached(a2, ns+"/a-1"))
	eventually(t, "b-1's leftovers removed", func() string {
		if st := a2.Status(); st.StaleEndpointsRemoved != 1 {
			return fmt.Sprintf("stale endpoints removed: %d", st.StaleEndpointsRemoved)
		}
		return ""
	})
	if got := d2.Endpoints(); !slices.Equal(got, []uint32{aID}) {
		t.Errorf("datapath endpoints %v, want only a-1's %d", got, aID)
	}
	if in, eg := n.tcxPrograms(t, n.hostB); in != 0 || eg != 0 {
		t.Errorf("b's veth: tcx programs %d and %d, want none", in, eg)
	}
	if in, eg := n.tcxPrograms(t, n.hostA); in != 1 || eg != 1 {
		t.Errorf("a's veth: tcx programs %d and %d, want 1 and 1 (replaced in place)", in, eg)
	}
	if left, _ := filepath.Glob(filepath.Join(spec.PinPath, fmt.Sprintf("link_ep%d_*", bID))); len(left) != 0 {
		t.Errorf("b-1's pinned links remain: %v", left)
	}
	if e := d2.Entries(bID); len(e) != 0 {
		t.Errorf("b-1's policy entries remain: %d", len(e))
	}
}
