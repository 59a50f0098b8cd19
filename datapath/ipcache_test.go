package datapath_test

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ceskit/ceskit/datapath"
	"github.com/ceskit/ceskit/internal/bpftest"
)

// randomPrefix draws from a small space, so that sets and removals collide: IPv4 and IPv6 hosts,
// IPv4-mapped hosts (the same entries as their IPv4 form) and IPv4 prefixes.
func randomPrefix(r *rand.Rand) netip.Prefix {
	v4 := netip.AddrFrom4([4]byte{10, 1, 0, byte(r.IntN(40))})
	switch r.IntN(5) {
	case 0:
		return netip.PrefixFrom(netip.AddrFrom16(v4.As16()), 128) // IPv4-mapped
	case 1:
		a := netip.MustParseAddr("fd00::").As16()
		a[15] = byte(r.IntN(30))
		return netip.PrefixFrom(netip.AddrFrom16(a), 128)
	case 2:
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16, byte(r.IntN(12)), 0}), 24)
	}
	return netip.PrefixFrom(v4, 32)
}

func normalise(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

func counts(m map[netip.Prefix]uint32) [3]int {
	var c [3]int
	for p := range m {
		switch {
		case !p.IsSingleIP():
			c[2]++
		case p.Addr().Is4():
			c[0]++
		default:
			c[1]++
		}
	}
	return c
}

// TestUpdateIdentities applies 400 random deltas to a loaded datapath and checks after each that
// the kernel's ipcache maps and the tracked state equal a model: sets win over removals, removing
// an absent prefix is harmless, a delta that would exceed capacity fails with ErrCapacity and
// changes nothing, and an invalid prefix fails with ErrInvalid and changes nothing.
func TestUpdateIdentities(t *testing.T) {
	spec := testSpec()
	spec.IPCacheEntries, spec.IPCachePrefixes = 48, 8
	d := bpftest.Load(t, spec)
	r := rand.New(rand.NewPCG(7, 11))
	model := map[netip.Prefix]uint32{}
	for range 20 {
		model[normalise(randomPrefix(r))] = uint32(1000 + r.IntN(50))
	}
	if err := d.SetIdentities(model); err != nil {
		t.Fatal(err)
	}
	check := func(step string) {
		t.Helper()
		kernel, err := d.KernelIPCache()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(model, kernel); diff != "" {
			t.Fatalf("%s: kernel ipcache (-model +kernel):\n%s", step, diff)
		}
		tracked, n := d.TrackedIPCache()
		if diff := cmp.Diff(model, tracked); diff != "" || n != counts(model) {
			t.Fatalf("%s: tracked counts %v, want %v; tracked (-model +tracked):\n%s", step, n, counts(model), diff)
		}
	}
	check("after SetIdentities")
	capacityErrors := 0
	for step := range 400 {
		set := map[netip.Prefix]uint32{}
		inSet := map[netip.Prefix]bool{}
		for range r.IntN(6) {
			// One form per address: an IPv4 address and its IPv4-mapped form are one entry,
			// and a set naming both with different identities would be contradictory.
			if p := randomPrefix(r); !inSet[normalise(p)] {
				inSet[normalise(p)] = true
				set[p] = uint32(1000 + r.IntN(50))
			}
		}
		var remove []netip.Prefix
		for range r.IntN(6) {
			remove = append(remove, randomPrefix(r))
		}
		next := maps.Clone(model)
		normSet := map[netip.Prefix]bool{}
		for p := range set {
			normSet[normalise(p)] = true
		}
		for _, p := range remove {
			if !normSet[normalise(p)] {
				delete(next, normalise(p))
			}
		}
		for p, id := range set {
			next[normalise(p)] = id
		}
		c := counts(next)
		err := d.UpdateIdentities(set, remove)
		name := fmt.Sprintf("step %d (set %v, remove %v)", step, set, remove)
		if c[0]+c[1] > spec.IPCacheEntries || c[2] > spec.IPCachePrefixes {
			if !errors.Is(err, datapath.ErrCapacity) {
				t.Fatalf("%s: %v, want ErrCapacity (result %v)", name, err, c)
			}
			capacityErrors++
		} else {
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			model = next
		}
		check(name)
	}
	if capacityErrors == 0 || capacityErrors > 200 {
		t.Errorf("%d of 400 deltas exceeded capacity: want some, but not most", capacityErrors)
	}
	if err := d.UpdateIdentities(map[netip.Prefix]uint32{{}: 5}, nil); !errors.Is(err, datapath.ErrInvalid) {
		t.Errorf("invalid prefix to set: %v, want ErrInvalid", err)
	}
	if err := d.UpdateIdentities(nil, []netip.Prefix{{}}); !errors.Is(err, datapath.ErrInvalid) {
		t.Errorf("invalid prefix to remove: %v, want ErrInvalid", err)
	}
	check("after invalid deltas")
	t.Logf("%d deltas applied, %d refused for capacity; final ipcache %d entries", 400-capacityErrors, capacityErrors, len(model))
}

// TestSetIdentitiesAtCapacity replaces every prefix of a full prefix map: the result fits, so it
// must succeed although writing the new prefixes before deleting the old ones would not.
func TestSetIdentitiesAtCapacity(t *testing.T) {
	spec := testSpec()
	spec.IPCachePrefixes = 4
	d := bpftest.Load(t, spec)
	gen := func(third byte) map[netip.Prefix]uint32 {
		m := map[netip.Prefix]uint32{}
		for i := range 4 {
			m[netip.PrefixFrom(netip.AddrFrom4([4]byte{172, third, byte(i), 0}), 24)] = uint32(100 + i)
		}
		return m
	}
	for _, third := range []byte{16, 17} {
		want := gen(third)
		if err := d.SetIdentities(want); err != nil {
			t.Fatalf("SetIdentities(172.%d.x.0/24): %v", third, err)
		}
		got, err := d.KernelIPCache()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("kernel ipcache (-want +got):\n%s", diff)
		}
	}
	if err := d.SetIdentities(maps.Collect(func(yield func(netip.Prefix, uint32) bool) {
		for p, id := range gen(18) {
			yield(p, id)
		}
		yield(netip.MustParsePrefix("10.9.0.0/16"), 9)
	})); !errors.Is(err, datapath.ErrCapacity) {
		t.Errorf("5 prefixes into 4: %v, want ErrCapacity", err)
	}
}

// BenchmarkIPCacheChange measures one endpoint's address changing identity in an ipcache of
// 10,000 host addresses: the whole map through SetIdentities versus the delta through
// UpdateIdentities.
func BenchmarkIPCacheChange(b *testing.B) {
	spec := testSpec()
	spec.IPCacheEntries = 16384
	d := bpftest.Load(b, spec)
	full := map[netip.Prefix]uint32{}
	for i := range 10000 {
		full[netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)}), 32)] = uint32(1000 + i%100)
	}
	if err := d.SetIdentities(full); err != nil {
		b.Fatal(err)
	}
	p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 2, 0, 7}), 32)
	b.Run("SetIdentities", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			full[p] = uint32(2000 + i%2)
			if err := d.SetIdentities(full); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/change")
	})
	b.Run("UpdateIdentities", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if err := d.UpdateIdentities(map[netip.Prefix]uint32{p: uint32(2000 + i%2)}, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/change")
	})
}
