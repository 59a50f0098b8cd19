//go:build linux

package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// inNetns runs fn on an OS thread that has joined the network namespace at path ("": run fn
// here). The thread is locked and never unlocked, so it exits with its goroutine and no other
// goroutine ever runs in that namespace by accident. Needs CAP_SYS_ADMIN for a path.
func inNetns(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
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

// routeTarget asks the kernel for the route to ip (RTM_GETROUTE) and returns its output
// interface when the route is a gateway-less unicast route through a veth.
func routeTarget(ip netip.Addr) (Target, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return Target{}, fmt.Errorf("open netlink socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return Target{}, fmt.Errorf("bind netlink socket: %w", err)
	}
	// Bound the wait for the kernel's answer.
	tv := unix.NsecToTimeval(int64(2 * time.Second))
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)

	family, addr := byte(unix.AF_INET), ip.AsSlice()
	if ip.Is6() {
		family = unix.AF_INET6
	}
	rtm := make([]byte, unix.SizeofRtMsg)
	rtm[0] = family              // rtm_family
	rtm[1] = byte(len(addr) * 8) // rtm_dst_len
	msgs, err := nlRequest(fd, unix.RTM_GETROUTE, append(rtm, rtattr(unix.RTA_DST, addr)...))
	if err != nil {
		return Target{}, fmt.Errorf("route get: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWROUTE || len(m.Data) < unix.SizeofRtMsg {
			continue
		}
		rtype := m.Data[7] // rtm_type
		attrs, err := syscall.ParseNetlinkRouteAttr(&m)
		if err != nil {
			return Target{}, fmt.Errorf("parse route: %w", err)
		}
		oif, gateway := 0, false
		for _, a := range attrs {
			switch a.Attr.Type {
			case unix.RTA_OIF:
				if len(a.Value) >= 4 {
					oif = int(binary.NativeEndian.Uint32(a.Value))
				}
			case unix.RTA_GATEWAY, unix.RTA_VIA:
				gateway = true
			}
		}
		switch {
		case rtype != unix.RTN_UNICAST:
			return Target{}, fmt.Errorf("route type %d is not unicast (a local or unreachable address)", rtype)
		case gateway:
			return Target{}, errors.New("routed through a gateway, not to a pod interface")
		case oif == 0:
			return Target{}, errors.New("route has no output interface")
		}
		name, kind, err := linkInfo(fd, oif)
		if err != nil {
			return Target{}, err
		}
		if kind != "veth" {
			return Target{}, fmt.Errorf("routed through %s (kind %q), not a veth", name, kind)
		}
		return Target{Interface: name, Ifindex: oif, HostSide: true}, nil
	}
	return Target{}, errors.New("no route in the kernel's answer")
}

// linkInfo returns an interface's name and kind ("veth", "bridge", "" for a device without
// link info such as a physical NIC).
func linkInfo(fd, ifindex int) (name, kind string, err error) {
	ifi := make([]byte, unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(ifi[4:], uint32(ifindex)) // ifi_index
	msgs, err := nlRequest(fd, unix.RTM_GETLINK, ifi)
	if err != nil {
		return "", "", fmt.Errorf("link get %d: %w", ifindex, err)
	}
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWLINK {
			continue
		}
		attrs, err := syscall.ParseNetlinkRouteAttr(&m)
		if err != nil {
			return "", "", fmt.Errorf("parse link %d: %w", ifindex, err)
		}
		for _, a := range attrs {
			switch a.Attr.Type {
			case unix.IFLA_IFNAME:
				name = string(trimNUL(a.Value))
			case unix.IFLA_LINKINFO:
				for _, na := range nestedAttrs(a.Value) {
					if na.typ == unix.IFLA_INFO_KIND {
						kind = string(trimNUL(na.value))
					}
				}
			}
		}
		return name, kind, nil
	}
	return "", "", fmt.Errorf("link %d: no answer", ifindex)
}

var nlSeq atomic.Uint32

// nlRequest sends one request and returns the kernel's answer (up to NLMSG_DONE or a single
// message), turning an NLMSG_ERROR into its errno.
func nlRequest(fd int, typ uint16, body []byte) ([]syscall.NetlinkMessage, error) {
	seq := nlSeq.Add(1)
	hdr := make([]byte, unix.SizeofNlMsghdr)
	binary.NativeEndian.PutUint32(hdr[0:], uint32(unix.SizeofNlMsghdr+len(body)))
	binary.NativeEndian.PutUint16(hdr[4:], typ)
	binary.NativeEndian.PutUint16(hdr[6:], unix.NLM_F_REQUEST)
	binary.NativeEndian.PutUint32(hdr[8:], seq)
	if err := unix.Sendto(fd, append(hdr, body...), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("receive: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("parse: %w", err)
		}
		var out []syscall.NetlinkMessage
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue
			}
			if m.Header.Type == unix.NLMSG_ERROR {
				if len(m.Data) >= 4 {
					if errno := int32(binary.NativeEndian.Uint32(m.Data)); errno != 0 {
						return nil, syscall.Errno(-errno)
					}
				}
				return out, nil
			}
			if m.Header.Type == unix.NLMSG_DONE {
				return out, nil
			}
			out = append(out, m)
		}
		if len(out) > 0 {
			return out, nil
		}
	}
}

// rtattr encodes one route attribute.
func rtattr(typ uint16, value []byte) []byte {
	l := unix.SizeofRtAttr + len(value)
	b := make([]byte, (l+3)&^3)
	binary.NativeEndian.PutUint16(b[0:], uint16(l))
	binary.NativeEndian.PutUint16(b[2:], typ)
	copy(b[unix.SizeofRtAttr:], value)
	return b
}

type attr struct {
	typ   uint16
	value []byte
}

// nestedAttrs splits the payload of a nested attribute.
func nestedAttrs(b []byte) []attr {
	var out []attr
	for len(b) >= unix.SizeofRtAttr {
		l := int(binary.NativeEndian.Uint16(b[0:]))
		if l < unix.SizeofRtAttr || l > len(b) {
			break
		}
		out = append(out, attr{typ: binary.NativeEndian.Uint16(b[2:]) &^ unix.NLA_F_NESTED, value: b[unix.SizeofRtAttr:l]})
		b = b[min((l+3)&^3, len(b)):]
	}
	return out
}

func trimNUL(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}
