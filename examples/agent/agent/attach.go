package agent

import (
	"fmt"
	"net/netip"
)

// Endpoint is a local endpoint as an [AttachRule] sees it.
type Endpoint struct {
	// Namespace and Name are the pod's.
	Namespace, Name string
	// IPs are the pod's addresses.
	IPs []netip.Addr
	// Identity is the pod's security identity.
	Identity uint32
	// NodeIP is the address of the node the endpoint runs on (one of the local node's).
	NodeIP netip.Addr
	// DatapathID is the endpoint's datapath endpoint ID (see [DatapathID]).
	DatapathID uint32
}

// Key returns "namespace/name", the endpoint's ID in the policy engine and in [Status].
func (e Endpoint) Key() string { return e.Namespace + "/" + e.Name }

// Target is where a local endpoint's programs go.
type Target struct {
	// Interface is the interface's name, for Status and logs.
	Interface string
	// Ifindex is the interface's index in the agent's network namespace ([Config].Netns).
	Ifindex int
	// HostSide is true for the host end of the pod's veth (Cilium's and Azure CNI's lxc*/azv*
	// devices): the endpoint's egress is the interface's tcx ingress. False: the interface
	// inside the pod.
	HostSide bool
}

// String returns e.g. "lxc12ab(ifindex 7, host side)".
func (t Target) String() string {
	side := "pod side"
	if t.HostSide {
		side = "host side"
	}
	return fmt.Sprintf("%s(ifindex %d, %s)", t.Interface, t.Ifindex, side)
}

// AttachRule chooses the interface a local endpoint's programs go to. The agent calls it from
// inside [Config].Netns, for every local endpoint whose policy is known and again when the
// endpoint changes; an error wrapping [ErrNoInterface] (the pod's interface is not there yet) or
// any other error is reported in [Status] and retried with backoff, and the endpoint stays
// unattached meanwhile. It must be safe for concurrent use.
type AttachRule func(ep Endpoint) (Target, error)

// RouteAttachRule is the default [AttachRule], the way Azure CNI and Cilium (with per-endpoint
// routes, as on AKS) wire pods: every pod has a veth pair whose host end (azv…, lxc…) carries a
// host route to the pod's address. For each of the endpoint's addresses in turn (IPv4 first, as
// listed), it asks the kernel for the route to the address (netlink RTM_GETROUTE, as `ip route
// get ADDR` does) and takes its output interface when
//
//   - the route is a unicast route without a gateway (the address is on that link), and
//   - the interface is a veth (netlink IFLA_INFO_KIND "veth").
//
// The programs then go on the host side of that veth. An address routed through a gateway, to
// a bridge, a tunnel or cilium_host (Cilium without endpoint routes), or not routed at all,
// gives an error wrapping [ErrNoInterface]; embedders with another wiring give their own rule.
func RouteAttachRule(ep Endpoint) (Target, error) {
	var errs []error
	for _, ip := range sortedIPs(ep.IPs) {
		t, err := routeTarget(ip)
		if err == nil {
			return t, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", ip, err))
	}
	if len(errs) == 0 {
		return Target{}, fmt.Errorf("%w %s: it has no address", ErrNoInterface, ep.Key())
	}
	return Target{}, fmt.Errorf("%w %s: %v", ErrNoInterface, ep.Key(), errs)
}

// sortedIPs returns the IPv4 addresses first, then the rest, each in their order.
func sortedIPs(ips []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		if ip.Unmap().Is4() {
			out = append(out, ip.Unmap())
		}
	}
	for _, ip := range ips {
		if !ip.Unmap().Is4() {
			out = append(out, ip)
		}
	}
	return out
}
