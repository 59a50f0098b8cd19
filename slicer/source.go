package slicer

import (
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/ceskit/ceskit/slicer/ciliumv2"
	"github.com/ceskit/ceskit/slicer/ciliumv2alpha1"
)

// CoreEndpointFromCEP converts a CiliumEndpoint into the slim form a slice carries, as Cilium's
// ConvertCEPToCoreCEP does, and validates it. ready=false (with a nil error) means the endpoint
// has no security identity yet and belongs in no slice for now. A malformed endpoint returns an
// *[EndpointError] naming the field and value.
func CoreEndpointFromCEP(cep *ciliumv2.CiliumEndpoint) (core ciliumv2alpha1.CoreCiliumEndpoint, ready bool, err error) {
	key := cep.Namespace + "/" + cep.Name
	st := &cep.Status
	if st.Identity == nil || st.Identity.ID == 0 {
		return core, false, nil
	}
	if st.Identity.ID < 0 || st.Identity.ID > 0xFFFFFFFF {
		return core, false, &EndpointError{Endpoint: key, Field: "status.identity.id", Value: fmt.Sprint(st.Identity.ID), Reason: "must be a 32-bit unsigned security identity"}
	}
	if err := validateNetworking(key, "status.networking", st.Networking); err != nil {
		return core, false, err
	}
	if err := validatePorts(key, "status.named-ports", st.NamedPorts); err != nil {
		return core, false, err
	}
	core = ciliumv2alpha1.CoreCiliumEndpoint{
		Name:           cep.Name,
		IdentityID:     st.Identity.ID,
		Encryption:     st.Encryption,
		ServiceAccount: st.ServiceAccount,
	}
	if st.Networking != nil {
		core.Networking = st.Networking.DeepCopy()
	}
	if len(st.NamedPorts) > 0 {
		core.NamedPorts = slices.Clone(st.NamedPorts)
		for i, p := range core.NamedPorts {
			core.NamedPorts[i] = p.DeepCopy()
		}
	}
	for _, ref := range cep.OwnerReferences {
		if ref.Kind == "Pod" && ref.APIVersion == "v1" {
			core.PodUID = ref.UID
		}
	}
	return core, true, nil
}

// CoreEndpointFromPod converts a Pod into the slim form a slice carries ("slim" mode: no
// CiliumEndpoint exists). ready=false means the pod belongs in no slice now: it uses the host
// network, has finished, has no IP yet, or identity reports its identity unknown.
func CoreEndpointFromPod(pod *corev1.Pod, identity func(*corev1.Pod) (int64, bool)) (core ciliumv2alpha1.CoreCiliumEndpoint, ready bool, err error) {
	key := pod.Namespace + "/" + pod.Name
	if pod.Spec.HostNetwork || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed || pod.DeletionTimestamp != nil {
		return core, false, nil
	}
	ips := pod.Status.PodIPs
	if len(ips) == 0 && pod.Status.PodIP != "" {
		ips = []corev1.PodIP{{IP: pod.Status.PodIP}}
	}
	if len(ips) == 0 {
		return core, false, nil
	}
	id, ok := identity(pod)
	if !ok {
		return core, false, nil
	}
	if id <= 0 || id > 0xFFFFFFFF {
		return core, false, &EndpointError{Endpoint: key, Field: "identity", Value: fmt.Sprint(id), Reason: "must be a 32-bit unsigned security identity other than 0"}
	}
	pair := &ciliumv2.AddressPair{}
	for i, ip := range ips {
		a, err := netip.ParseAddr(ip.IP)
		if err != nil {
			return core, false, &EndpointError{Endpoint: key, Field: fmt.Sprintf("status.podIPs[%d].ip", i), Value: ip.IP, Reason: "not an IP address"}
		}
		if a.Is4() && pair.IPV4 == "" {
			pair.IPV4 = a.String()
		} else if !a.Is4() && pair.IPV6 == "" {
			pair.IPV6 = a.String()
		}
	}
	core = ciliumv2alpha1.CoreCiliumEndpoint{
		Name:           pod.Name,
		IdentityID:     id,
		Networking:     &ciliumv2.EndpointNetworking{Addressing: ciliumv2.AddressPairList{pair}, NodeIP: pod.Status.HostIP},
		ServiceAccount: pod.Spec.ServiceAccountName,
		PodUID:         pod.UID,
	}
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == "" {
				continue
			}
			proto := string(p.Protocol)
			if proto == "" {
				proto = string(corev1.ProtocolTCP)
			}
			core.NamedPorts = append(core.NamedPorts, &ciliumv2.Port{Name: p.Name, Port: uint16(p.ContainerPort), Protocol: proto})
		}
	}
	return core, true, nil
}

func validateNetworking(key, path string, n *ciliumv2.EndpointNetworking) error {
	if n == nil {
		return nil
	}
	for i, p := range n.Addressing {
		if p == nil {
			return &EndpointError{Endpoint: key, Field: fmt.Sprintf("%s.addressing[%d]", path, i), Value: "null", Reason: "must be an address pair"}
		}
		if p.IPV4 != "" {
			if a, err := netip.ParseAddr(p.IPV4); err != nil || !a.Is4() {
				return &EndpointError{Endpoint: key, Field: fmt.Sprintf("%s.addressing[%d].ipv4", path, i), Value: p.IPV4, Reason: "not an IPv4 address"}
			}
		}
		if p.IPV6 != "" {
			if a, err := netip.ParseAddr(p.IPV6); err != nil || !a.Is6() || a.Is4In6() || a.Zone() != "" {
				return &EndpointError{Endpoint: key, Field: fmt.Sprintf("%s.addressing[%d].ipv6", path, i), Value: p.IPV6, Reason: "not an IPv6 address"}
			}
		}
	}
	if n.NodeIP != "" {
		if a, err := netip.ParseAddr(n.NodeIP); err != nil || a.Zone() != "" {
			return &EndpointError{Endpoint: key, Field: path + ".node", Value: n.NodeIP, Reason: "not an IP address"}
		}
	}
	return nil
}

func validatePorts(key, path string, ports ciliumv2.NamedPorts) error {
	for i, p := range ports {
		if p == nil {
			return &EndpointError{Endpoint: key, Field: fmt.Sprintf("%s[%d]", path, i), Value: "null", Reason: "must be a port"}
		}
		switch p.Protocol {
		case "", "TCP", "UDP", "SCTP", "ICMP", "ICMPV6", "ANY":
		default:
			return &EndpointError{Endpoint: key, Field: fmt.Sprintf("%s[%d].protocol", path, i), Value: p.Protocol, Reason: "must be TCP, UDP, SCTP, ICMP, ICMPV6 or ANY"}
		}
	}
	return nil
}
