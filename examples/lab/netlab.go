package main

import (
	"fmt"
	"net/netip"
)

// labPod is one of the lab's real pods: a network namespace behind a veth (with the datapath),
// and a CiliumEndpoint on the agent's node in namespace labNamespace.
type labPod struct {
	Name string
	App  string
	IP   netip.Addr
}

// The lab's own namespace, node and pods.
const (
	labNamespace = "lab"
	labNode      = "lab-node"
	labNodeIP    = "192.168.250.1"
)

// labPods are the pods the agent enforces for: pod i has 10.250.<i+1>.2/24 behind a veth whose
// node side has 10.250.<i+1>.1.
var labPods = []labPod{
	{Name: "frontend-0", App: "frontend", IP: netip.MustParseAddr("10.250.1.2")},
	{Name: "backend-0", App: "backend", IP: netip.MustParseAddr("10.250.2.2")},
	{Name: "other-0", App: "other", IP: netip.MustParseAddr("10.250.3.2")},
}

// probePorts are the TCP ports every lab pod serves (an echo of one line).
var probePorts = []uint16{8080, 9090}

func labPodByName(name string) labPod {
	for _, p := range labPods {
		if p.Name == name {
			return p
		}
	}
	panic("unknown lab pod " + name)
}

// Probe verdicts.
const (
	verdictAllowed = "allowed"
	verdictDenied  = "denied"
)

// probeSpec is one flow the lab checks, with the verdict the policies call for.
type probeSpec struct {
	From, To string // lab pod names
	Port     uint16
	Expect   string // verdictAllowed or verdictDenied
	Why      string
}

func (p probeSpec) String() string { return fmt.Sprintf("%s → %s:%d", p.From, p.To, p.Port) }

// probes are the flows checked against the policies of policies.go.
var probes = []probeSpec{
	{From: "frontend-0", To: "backend-0", Port: 8080, Expect: verdictAllowed,
		Why: "allow-frontend-to-backend (ingress); egress through example-ipblock's selectors and frontend-to-backend-cilium"},
	{From: "frontend-0", To: "backend-0", Port: 9090, Expect: verdictAllowed,
		Why: "allow-frontend-to-backend names no port; example-ipblock's podSelector allows the egress"},
	{From: "other-0", To: "backend-0", Port: 8080, Expect: verdictDenied,
		Why: "default-deny: only frontend may reach backend"},
	{From: "backend-0", To: "frontend-0", Port: 8080, Expect: verdictDenied,
		Why: "default-deny: nothing allows ingress to frontend"},
	{From: "frontend-0", To: "other-0", Port: 9090, Expect: verdictDenied,
		Why: "default-deny: nothing allows ingress to other"},
}
