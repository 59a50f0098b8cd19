//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// netnsDir is where iproute2 keeps named network namespaces.
const netnsDir = "/var/run/netns"

// netLab is the lab's network: a node namespace and one namespace per lab pod, each pod joined
// to the node by a veth (lxcN on the node side, eth0 in the pod), the node forwarding between
// them; nothing is added to the lab process's own namespace. Names carry the lab's PID
// ("ceslab-<pid>-…") so that a later run can remove what a killed one left.
//
//	pod frontend-0 (10.250.1.2) ─ veth ─┐
//	pod backend-0  (10.250.2.2) ─ veth ─┼─ node (10.250.{1,2,3}.1 on lxc1..3, forwarding)
//	pod other-0    (10.250.3.2) ─ veth ─┘
type netLab struct {
	prefix     string
	nodeNS     string
	namespaces []string          // created, in order
	podNS      map[string]string // pod name → namespace
	lns        []net.Listener
	wg         sync.WaitGroup
	mu         sync.Mutex
	conns      map[net.Conn]bool
	closed     bool
}

// privilegeProblem says why the lab cannot build its network and load the datapath here, or "".
func privilegeProblem() string {
	if os.Geteuid() != 0 {
		return "not running as root (the datapath needs CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN; run make lab as root)"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "iproute2's ip command not found: " + err.Error()
	}
	return ""
}

var staleNetns = regexp.MustCompile(`^ceslab-(\d+)-`)

// removeStaleNetns deletes the namespaces of lab runs whose process is gone (killed before it
// could clean up) and returns their names.
func removeStaleNetns() []string {
	entries, err := os.ReadDir(netnsDir)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range entries {
		m := staleNetns.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || pid == os.Getpid() || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue
		}
		if ipCmd("netns", "del", e.Name()) == nil {
			removed = append(removed, e.Name())
		}
	}
	return removed
}

// newNetLab builds the network for pods and starts their TCP echo servers. On error it removes
// what it created.
func newNetLab(pods []labPod) (_ *netLab, err error) {
	n := &netLab{prefix: fmt.Sprintf("ceslab-%d", os.Getpid()), podNS: map[string]string{}, conns: map[net.Conn]bool{}}
	n.nodeNS = n.prefix + "-node"
	defer func() {
		if err != nil {
			_ = n.Close()
		}
	}()
	addNS := func(name string) error {
		if err := ipCmd("netns", "add", name); err != nil {
			return err
		}
		n.namespaces = append(n.namespaces, name)
		if err := ipCmd("-n", name, "link", "set", "lo", "up"); err != nil {
			return err
		}
		return inNetns(filepath.Join(netnsDir, name), func() error {
			for _, s := range []string{"net/ipv6/conf/all/disable_ipv6", "net/ipv6/conf/default/disable_ipv6"} {
				if err := os.WriteFile("/proc/sys/"+s, []byte("1"), 0o644); err != nil {
					return fmt.Errorf("sysctl %s in %s: %w", s, name, err)
				}
			}
			return nil
		})
	}
	if err := addNS(n.nodeNS); err != nil {
		return nil, err
	}
	if err := inNetns(n.nodeNetns(), func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
	}); err != nil {
		return nil, fmt.Errorf("enable forwarding in %s: %w", n.nodeNS, err)
	}
	for i, p := range pods {
		ns := fmt.Sprintf("%s-%s", n.prefix, p.Name)
		if err := addNS(ns); err != nil {
			return nil, err
		}
		n.podNS[p.Name] = ns
		host, gw := fmt.Sprintf("lxc%d", i+1), gateway(p.IP)
		for _, args := range [][]string{
			{"-n", n.nodeNS, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns},
			{"-n", n.nodeNS, "addr", "add", gw.String() + "/24", "dev", host},
			{"-n", n.nodeNS, "link", "set", host, "up"},
			{"-n", ns, "addr", "add", p.IP.String() + "/24", "dev", "eth0"},
			{"-n", ns, "link", "set", "eth0", "up"},
			{"-n", ns, "route", "add", "default", "via", gw.String()},
		} {
			if err := ipCmd(args...); err != nil {
				return nil, err
			}
		}
		for _, port := range probePorts {
			if err := n.serve(ns, netip.AddrPortFrom(p.IP, port)); err != nil {
				return nil, err
			}
		}
	}
	return n, nil
}

// gateway is the node side of a pod's /24: its .1.
func gateway(ip netip.Addr) netip.Addr {
	b := ip.As4()
	b[3] = 1
	return netip.AddrFrom4(b)
}

func (n *netLab) nodeNetns() string { return filepath.Join(netnsDir, n.nodeNS) }

// Namespaces returns the names of the network namespaces, node first.
func (n *netLab) Namespaces() []string { return n.namespaces }

// serve runs a TCP echo server (one line) on addr inside namespace ns.
func (n *netLab) serve(ns string, addr netip.AddrPort) error {
	var ln net.Listener
	if err := inNetns(filepath.Join(netnsDir, ns), func() error {
		var err error
		ln, err = net.Listen("tcp4", addr.String())
		return err
	}); err != nil {
		return fmt.Errorf("listen on %s in %s: %w", addr, ns, err)
	}
	n.lns = append(n.lns, ln)
	n.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.mu.Lock()
			if n.closed {
				n.mu.Unlock()
				c.Close()
				return
			}
			n.conns[c] = true
			n.mu.Unlock()
			n.wg.Go(func() {
				defer func() {
					c.Close()
					n.mu.Lock()
					delete(n.conns, c)
					n.mu.Unlock()
				}()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				line, err := bufio.NewReader(c).ReadString('\n')
				if err == nil {
					_, _ = c.Write([]byte("echo " + line))
				}
			})
		}
	})
	return nil
}

// Probe connects from pod from to addr and exchanges one line within timeout. It returns
// verdictAllowed, verdictDenied (the connection timed out: dropped) or an error's text.
func (n *netLab) Probe(from string, addr netip.AddrPort, timeout time.Duration) string {
	ns, ok := n.podNS[from]
	if !ok {
		return "error: unknown pod " + from
	}
	var c net.Conn
	err := inNetns(filepath.Join(netnsDir, ns), func() error {
		var err error
		c, err = (&net.Dialer{Timeout: timeout}).Dial("tcp4", addr.String())
		return err
	})
	if err == nil {
		defer c.Close()
		err = echo(c, timeout)
	}
	var ne net.Error
	switch {
	case err == nil:
		return verdictAllowed
	case errors.As(err, &ne) && ne.Timeout():
		return verdictDenied
	default:
		return "error: " + err.Error()
	}
}

func echo(c net.Conn, timeout time.Duration) error {
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if _, err := c.Write([]byte("probe\n")); err != nil {
		return err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if got != "echo probe\n" {
		return fmt.Errorf("unexpected reply %q", got)
	}
	return nil
}

// Close stops the servers and deletes the namespaces (and with them the veths).
func (n *netLab) Close() error {
	n.mu.Lock()
	n.closed = true
	for c := range n.conns {
		c.Close()
	}
	n.mu.Unlock()
	for _, ln := range n.lns {
		ln.Close()
	}
	n.wg.Wait()
	var errs []error
	for i := len(n.namespaces) - 1; i >= 0; i-- {
		if err := ipCmd("netns", "del", n.namespaces[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ipCmd runs iproute2's ip with a bounded time.
func ipCmd(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// inNetns runs fn on an OS thread that has joined the network namespace at path. The thread
// stays locked and exits with its goroutine, so no other goroutine ever runs in the namespace.
func inNetns(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(path)
		if err != nil {
			errc <- fmt.Errorf("open network namespace: %w", err)
			return
		}
		err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
		f.Close()
		if err != nil {
			errc <- fmt.Errorf("join network namespace %s: %w", path, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
