//go:build !linux

package main

import (
	"errors"
	"net/netip"
	"time"
)

// netLab needs Linux network namespaces; elsewhere the lab runs the agent without a datapath.
type netLab struct{}

func privilegeProblem() string { return "network namespaces and eBPF need Linux" }

func removeStaleNetns() []string { return nil }

func newNetLab([]labPod) (*netLab, error) { return nil, errors.New("network namespaces need Linux") }

func (n *netLab) nodeNetns() string                                  { return "" }
func (n *netLab) Namespaces() []string                               { return nil }
func (n *netLab) Probe(string, netip.AddrPort, time.Duration) string { return "error: no network" }
func (n *netLab) Close() error                                       { return nil }
