package datapath

import "net/netip"

// KernelIPCache reads the ipcache maps from the kernel, for tests.
func (d *Datapath) KernelIPCache() (map[netip.Prefix]uint32, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.readIPCache()
}

// TrackedIPCache returns the ipcache as the Datapath tracks it and its counts, for tests.
func (d *Datapath) TrackedIPCache() (map[netip.Prefix]uint32, [3]int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[netip.Prefix]uint32, len(d.ipcache))
	for p, id := range d.ipcache {
		out[p] = id
	}
	return out, d.ipcCounts
}
