package datapath

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

// Sentinel errors. Test with errors.Is.
var (
	// ErrNotSupported is returned when the kernel lacks a feature the datapath needs (BPF,
	// tcx, LPM tries, ring buffers) or the process may not use it (no CAP_BPF/CAP_NET_ADMIN).
	ErrNotSupported = errors.New("datapath not supported here")
	// ErrCapacity is returned when entries do not fit; nothing was changed.
	ErrCapacity = errors.New("datapath map capacity exceeded")
	// ErrInvalid is returned for entries, prefixes or settings the datapath cannot use.
	ErrInvalid = errors.New("invalid datapath input")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("datapath closed")
)

// Anchor says where a program goes in an interface's tcx chain.
type Anchor int

const (
	// AnchorHead runs ceskit before the programs already attached (default): denied traffic
	// never reaches them, allowed traffic continues to them (TCX_NEXT).
	AnchorHead Anchor = iota
	// AnchorTail runs ceskit after them.
	AnchorTail
)

// Spec describes a datapath to load. The zero value is valid: every field's comment gives its
// default.
type Spec struct {
	// PolicyEntries is the size of each of the two shared policy maps (exact and prefix), for
	// all endpoints together. Default: 262144.
	PolicyEntries int
	// MaxEntriesPerEndpoint bounds one endpoint's materialised entries. Default: 16384
	// (Cilium's bpf-policy-map-max).
	MaxEntriesPerEndpoint int
	// IPCacheEntries and IPCachePrefixes size the address → identity maps (exact /32 and /128,
	// and other prefixes). Defaults: 65536 and 16384.
	IPCacheEntries, IPCachePrefixes int
	// RangeExpansion is the largest port range (in ports) written into the exact map, one
	// element per port, so that it costs one hash lookup per packet instead of prefix-trie
	// probes. When an endpoint's entries would then exceed MaxEntriesPerEndpoint, SyncEndpoint
	// halves it for that endpoint until they fit (1: no expansion). 1–65536. Default: 256.
	RangeExpansion int
	// ConntrackEntries sizes the LRU connection-tracking map. Default: 262144.
	ConntrackEntries int
	// ConntrackTimeout is how long an idle tracked flow keeps passing without a policy lookup.
	// Default: 5 min.
	ConntrackTimeout time.Duration
	// DisableConntrack looks every packet up in the policy (replies need their own allow).
	DisableConntrack bool
	// EventsBytes sizes the verdict-event ring buffer (a power of two ≥ the page size).
	// Default: 1 MiB.
	EventsBytes int
	// EventRate and EventBurst limit verdict events per CPU (events per second, bucket size).
	// Defaults: 1000 and 100.
	EventRate, EventBurst int
	// ReportNewFlows also reports allowed new flows (denied and audited ones always are).
	ReportNewFlows bool
	// PassOnAllow returns TCX_PASS instead of TCX_NEXT on allow, ending the tcx chain.
	PassOnAllow bool
	// PinPath, when set, is a bpffs directory where maps and tcx links are pinned: a Load with
	// the same PinPath after a restart reuses the maps (policy, ipcache, conntrack) and replaces
	// the programs of pinned links atomically, so traffic keeps flowing.
	PinPath string
	// Logger receives the datapath's logs. Default: discard.
	Logger *slog.Logger
	// Metrics receives map fill and map operation counts (see the README for the map names):
	// MapPressure after every change of the policy or ipcache maps' fill (SyncEndpoint,
	// ApplyEndpoint, DetachEndpoint, SetIdentities, and Load's restore of pinned maps), MapOps
	// for every batch of updates and deletes. It is called with the Datapath's lock held, so it
	// must not call the Datapath. Packet counters and lost events are not pushed: read Stats
	// (the monitor package turns them into Metrics.Packets and LostEvents). Default: NopMetrics.
	Metrics Metrics
}

func (s Spec) withDefaults() (Spec, error) {
	def := func(v *int, d int, name string) error {
		if *v < 0 {
			return fmt.Errorf("%w: Spec.%s=%d must not be negative", ErrInvalid, name, *v)
		}
		if *v == 0 {
			*v = d
		}
		return nil
	}
	for _, f := range []struct {
		v    *int
		d    int
		name string
	}{
		{&s.PolicyEntries, 262144, "PolicyEntries"}, {&s.MaxEntriesPerEndpoint, 16384, "MaxEntriesPerEndpoint"},
		{&s.IPCacheEntries, 65536, "IPCacheEntries"}, {&s.IPCachePrefixes, 16384, "IPCachePrefixes"},
		{&s.ConntrackEntries, 262144, "ConntrackEntries"}, {&s.EventsBytes, 1 << 20, "EventsBytes"},
		{&s.EventRate, 1000, "EventRate"}, {&s.EventBurst, 100, "EventBurst"},
		{&s.RangeExpansion, 256, "RangeExpansion"},
	} {
		if err := def(f.v, f.d, f.name); err != nil {
			return s, err
		}
	}
	if s.RangeExpansion > 65536 {
		return s, fmt.Errorf("%w: Spec.RangeExpansion=%d must be at most 65536", ErrInvalid, s.RangeExpansion)
	}
	if s.EventsBytes&(s.EventsBytes-1) != 0 || s.EventsBytes < os.Getpagesize() {
		return s, fmt.Errorf("%w: Spec.EventsBytes=%d must be a power of two of at least %d", ErrInvalid, s.EventsBytes, os.Getpagesize())
	}
	if s.ConntrackTimeout < 0 {
		return s, fmt.Errorf("%w: Spec.ConntrackTimeout=%s must not be negative", ErrInvalid, s.ConntrackTimeout)
	}
	if s.ConntrackTimeout == 0 {
		s.ConntrackTimeout = 5 * time.Minute
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.Metrics == nil {
		s.Metrics = NopMetrics{}
	}
	return s, nil
}

// Datapath is a loaded ceskit datapath: shared maps, per-endpoint programs and their tcx links.
// It is safe for concurrent use.
type Datapath struct {
	spec  Spec
	cspec *ebpf.CollectionSpec
	maps  ceskitMaps

	mu        sync.Mutex
	closed    bool
	endpoints map[uint32]*endpoint
	ipcache   map[netip.Prefix]uint32
	ipcCounts [3]int // of ipcache: IPv4 hosts, IPv6 hosts, other prefixes (see ipcacheClass)
}

// endpoint is one endpoint's state: its programs, links and written policy.
type endpoint struct {
	progs   [2]*ebpf.Program // by Direction
	links   []link.Link
	written materialized
	entries []Entry
	// pinned are the link pins found for the endpoint under Spec.PinPath at Load: links an
	// earlier process attached, still enforcing. AttachEndpoint reuses those of the interface it
	// attaches to and removes the others; DetachEndpoint removes them all.
	pinned []string
}

// Load loads the datapath's maps (reusing pinned ones under Spec.PinPath). Programs are loaded
// per endpoint by AttachEndpoint or Program. It returns an error wrapping ErrNotSupported when
// the kernel or the process's privileges do not allow it.
func Load(spec Spec) (*Datapath, error) {
	spec, err := spec.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("%w: remove memlock limit: %w", ErrNotSupported, err)
	}
	cs, err := loadCeskit()
	if err != nil {
		return nil, fmt.Errorf("load BPF object spec: %w", err)
	}
	sizes := map[string]int{
		"ceskit_policy": spec.PolicyEntries, "ceskit_policy_lpm": spec.PolicyEntries,
		"ceskit_ipcache": spec.IPCacheEntries, "ceskit_ipcache4": spec.IPCacheEntries, "ceskit_ipcache_lpm": spec.IPCachePrefixes,
		"ceskit_ct": spec.ConntrackEntries, "ceskit_events": spec.EventsBytes,
	}
	for name, n := range sizes {
		cs.Maps[name].MaxEntries = uint32(n)
	}
	opts := &ebpf.CollectionOptions{}
	if spec.PinPath == "" {
		for _, m := range cs.Maps {
			m.Pinning = ebpf.PinNone
		}
	} else {
		if err := os.MkdirAll(spec.PinPath, 0o700); err != nil {
			return nil, fmt.Errorf("create pin path %s: %w", spec.PinPath, err)
		}
		opts.Maps.PinPath = spec.PinPath
		if err := replaceIncompatiblePins(cs, spec); err != nil {
			return nil, err
		}
	}
	d := &Datapath{spec: spec, cspec: cs, endpoints: map[uint32]*endpoint{}, ipcache: map[netip.Prefix]uint32{}}
	if err := cs.LoadAndAssign(&d.maps, opts); err != nil {
		return nil, classify("load maps", err)
	}
	if spec.PinPath != "" {
		// Pinned maps keep what an earlier process wrote: take it as written, so that the
		// first syncs replace it and delete what is stale.
		if err := d.restore(); err != nil {
			d.maps.Close()
			return nil, err
		}
		if err := d.restorePinnedLinks(); err != nil {
			d.maps.Close()
			return nil, err
		}
		d.reportPolicyPressure()
		d.reportIPCachePressure()
	}
	return d, nil
}

// disposableMaps hold nothing a restart must keep: counters, lost-event counters and the event
// ring buffer.
var disposableMaps = []string{ceskitMapCeskitCounters, ceskitMapCeskitLost, ceskitMapCeskitEvents}

// replaceIncompatiblePins removes the pins of disposable maps that the new spec cannot reuse
// (an older layout, as the counters' before they were counted per direction, or another
// Spec.EventsBytes), so that Load creates them anew instead of failing. Programs still attached
// through pinned links keep the old maps until AttachEndpoint replaces them. The policy,
// ipcache and conntrack maps are never replaced: their incompatibility stays an error.
func replaceIncompatiblePins(cs *ebpf.CollectionSpec, spec Spec) error {
	for _, name := range disposableMaps {
		path := filepath.Join(spec.PinPath, name)
		m, err := ebpf.LoadPinnedMap(path, nil)
		if err != nil {
			continue // not pinned yet; other errors surface when the collection loads
		}
		err = cs.Maps[name].Compatible(m)
		m.Close()
		if !errors.Is(err, ebpf.ErrMapIncompatible) {
			continue
		}
		spec.Logger.Info("replacing incompatible pinned map", "map", name, "reason", err.Error())
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove incompatible pinned map %s: %w", path, err)
		}
	}
	return nil
}

// restore reads the policy and ipcache maps back into the tracked state.
func (d *Datapath) restore() error {
	var pk ceskitPolicyKey
	var pv ceskitPolicyVal
	it := d.maps.CeskitPolicy.Iterate()
	for it.Next(&pk, &pv) {
		d.endpoint(pk.EpId).written.exact[pk] = pv
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read pinned policy: %w", err)
	}
	var lk ceskitPolicyLpmKey
	it = d.maps.CeskitPolicyLpm.Iterate()
	for it.Next(&lk, &pv) {
		d.endpoint(lk.EpId).written.lpm[lk] = pv
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read pinned prefix policy: %w", err)
	}
	ipc, err := d.readIPCache()
	if err != nil {
		return fmt.Errorf("read pinned %w", err)
	}
	d.ipcache = ipc
	d.ipcCounts = ipcacheCountsArr(d.ipcache)
	return nil
}

// linkPinPattern names an endpoint's pinned links: endpoint ID, direction, interface index.
const linkPinPattern = "link_ep%d_%s_if%d"

// restorePinnedLinks records, per endpoint, the links an earlier process pinned.
func (d *Datapath) restorePinnedLinks() error {
	paths, err := filepath.Glob(filepath.Join(d.spec.PinPath, "link_ep*"))
	if err != nil {
		return fmt.Errorf("list pinned links: %w", err)
	}
	for _, path := range paths {
		var id uint32
		var dir string
		var ifindex int
		base := filepath.Base(path)
		if n, err := fmt.Sscanf(strings.ReplaceAll(base, "_", " "), "link ep%d %s if%d", &id, &dir, &ifindex); err != nil || n != 3 {
			d.spec.Logger.Warn("ignoring a pinned file that is not an endpoint link", "path", path)
			continue
		}
		ep := d.endpoint(id)
		ep.pinned = append(ep.pinned, path)
	}
	return nil
}

// removePins unpins and closes the pinned links at paths (missing files are fine): a link
// neither pinned nor held detaches its program.
func removePins(paths []string) error {
	var errs []error
	for _, path := range paths {
		l, err := link.LoadPinnedLink(path, nil)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("load pinned link %s: %w", path, err))
			continue
		}
		errs = append(errs, l.Unpin(), l.Close())
	}
	return errors.Join(errs...)
}

// Endpoints returns, sorted, the IDs of the endpoints the Datapath holds anything for: synced,
// attached, or, with Spec.PinPath, left by an earlier process (policy entries in the pinned
// maps, pinned links). An agent that restarts compares them with the endpoints it still has and
// detaches the others ([Datapath.DetachEndpoint]), so that nothing of a deleted endpoint stays.
func (d *Datapath) Endpoints() []uint32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Sorted(maps.Keys(d.endpoints))
}

// readIPCache reads the three ipcache maps from the kernel.
func (d *Datapath) readIPCache() (map[netip.Prefix]uint32, error) {
	out := map[netip.Prefix]uint32{}
	var ik4 [4]byte
	var iv ceskitIpcacheVal
	it := d.maps.CeskitIpcache4.Iterate()
	for it.Next(&ik4, &iv) {
		out[netip.PrefixFrom(netip.AddrFrom4(ik4), 32)] = iv.Identity
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("ipcache: %w", err)
	}
	var ik ceskitIpcacheKey
	it = d.maps.CeskitIpcache.Iterate()
	for it.Next(&ik, &iv) {
		a := netip.AddrFrom16(ik.Addr).Unmap()
		out[netip.PrefixFrom(a, a.BitLen())] = iv.Identity
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("ipcache: %w", err)
	}
	var ilk ceskitIpcacheLpmKey
	it = d.maps.CeskitIpcacheLpm.Iterate()
	for it.Next(&ilk, &iv) {
		a := netip.AddrFrom16(ilk.Addr)
		bits := int(ilk.Prefixlen)
		if a.Is4In6() {
			a, bits = a.Unmap(), bits-96
		}
		out[netip.PrefixFrom(a, bits).Masked()] = iv.Identity
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("ipcache prefixes: %w", err)
	}
	return out, nil
}

// classify wraps permission and feature errors in ErrNotSupported.
func classify(op string, err error) error {
	if errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("%s: %w: %w", op, ErrNotSupported, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Close detaches every endpoint (pinned links stay attached) and closes programs and maps
// (pinned maps stay in bpffs).
func (d *Datapath) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	var errs []error
	for _, ep := range d.endpoints {
		errs = append(errs, ep.close())
	}
	d.endpoints = nil
	errs = append(errs, d.maps.Close())
	return errors.Join(errs...)
}

func (ep *endpoint) close() error {
	var errs []error
	for _, l := range ep.links {
		errs = append(errs, l.Close())
	}
	for _, p := range ep.progs {
		if p != nil {
			errs = append(errs, p.Close())
		}
	}
	return errors.Join(errs...)
}

// loadProgram loads a policy (or the empty) program instance for an endpoint and direction.
func (d *Datapath) loadProgram(name string, id uint32, dir Direction) (*ebpf.Program, error) {
	cs := d.cspec.Copy()
	set := func(v string, val any) error {
		if err := cs.Variables[v].Set(val); err != nil {
			return fmt.Errorf("set %s: %w", v, err)
		}
		return nil
	}
	allow := int32(-1) // TCX_NEXT
	if d.spec.PassOnAllow {
		allow = 0
	}
	var newFlows, useCT uint8
	if d.spec.ReportNewFlows {
		newFlows = 1
	}
	if !d.spec.DisableConntrack {
		useCT = 1
	}
	for _, kv := range []struct {
		name string
		val  any
	}{
		{"endpoint_id", id}, {"policy_dir", uint8(dir)}, {"allow_ret", allow}, {"use_ct", useCT},
		{"ct_timeout_ns", uint64(d.spec.ConntrackTimeout.Nanoseconds())},
		{"event_rate", uint64(d.spec.EventRate)}, {"event_burst", uint64(d.spec.EventBurst)},
		{"event_new_flows", newFlows},
	} {
		if err := set(kv.name, kv.val); err != nil {
			return nil, err
		}
	}
	var objs struct {
		Prog *ebpf.Program `ebpf:"ceskit_policy_prog"`
	}
	var empty struct {
		Prog *ebpf.Program `ebpf:"ceskit_empty"`
	}
	opts := &ebpf.CollectionOptions{MapReplacements: d.mapReplacements()}
	if name == "ceskit_empty" {
		if err := cs.LoadAndAssign(&empty, opts); err != nil {
			return nil, classify("load program", err)
		}
		return empty.Prog, nil
	}
	if err := cs.LoadAndAssign(&objs, opts); err != nil {
		return nil, classify("load program", err)
	}
	return objs.Prog, nil
}

func (d *Datapath) mapReplacements() map[string]*ebpf.Map {
	m := d.maps
	return map[string]*ebpf.Map{
		"ceskit_ipcache": m.CeskitIpcache, "ceskit_ipcache4": m.CeskitIpcache4, "ceskit_ipcache_lpm": m.CeskitIpcacheLpm,
		"ceskit_policy": m.CeskitPolicy, "ceskit_policy_lpm": m.CeskitPolicyLpm, "ceskit_ct": m.CeskitCt,
		"ceskit_events": m.CeskitEvents, "ceskit_counters": m.CeskitCounters, "ceskit_lost": m.CeskitLost,
		"ceskit_ratelimit": m.CeskitRatelimit,
	}
}

// Program returns the endpoint's program for a direction, loading it if needed, without
// attaching it: for BPF_PROG_TEST_RUN (Program.Run) and for callers that attach themselves. The
// Datapath owns it.
func (d *Datapath) Program(id uint32, dir Direction) (*ebpf.Program, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, ErrClosed
	}
	return d.program(id, dir)
}

func (d *Datapath) program(id uint32, dir Direction) (*ebpf.Program, error) {
	if dir > Egress {
		return nil, fmt.Errorf("%w: direction %d", ErrInvalid, dir)
	}
	ep := d.endpoint(id)
	if ep.progs[dir] == nil {
		p, err := d.loadProgram("ceskit_policy_prog", id, dir)
		if err != nil {
			return nil, err
		}
		ep.progs[dir] = p
	}
	return ep.progs[dir], nil
}

func (d *Datapath) endpoint(id uint32) *endpoint {
	ep := d.endpoints[id]
	if ep == nil {
		ep = &endpoint{written: materialized{exact: map[ceskitPolicyKey]ceskitPolicyVal{}, lpm: map[ceskitPolicyLpmKey]ceskitPolicyVal{}}}
		d.endpoints[id] = ep
	}
	return ep
}

// EmptyProgram loads a program that only returns the allow code, as the benchmarks' baseline.
// The caller closes it.
func (d *Datapath) EmptyProgram() (*ebpf.Program, error) {
	return d.loadProgram("ceskit_empty", 0, Ingress)
}

// Attachment says where an endpoint's programs go.
type Attachment struct {
	// Ifindex is the interface to attach to.
	Ifindex int
	// HostSide is true for the host end of the endpoint's veth (as Cilium attaches): packets the
	// pod sends arrive on its tcx ingress (the endpoint's egress), packets for the pod leave on
	// its tcx egress (the endpoint's ingress). False: the interface inside the pod, where tcx
	// egress is the endpoint's egress.
	HostSide bool
	// Anchor places the programs in the tcx chain. Default: AnchorHead.
	Anchor Anchor
}

// AttachEndpoint loads the endpoint's two programs and attaches them with tcx. With Spec.PinPath
// the links are pinned; a pinned link found for the endpoint (after a restart) gets the new
// program atomically instead, so traffic is never unfiltered.
func (d *Datapath) AttachEndpoint(id uint32, a Attachment) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	if a.Ifindex <= 0 {
		return fmt.Errorf("%w: Attachment.Ifindex=%d", ErrInvalid, a.Ifindex)
	}
	ep := d.endpoint(id)
	for _, dir := range []Direction{Ingress, Egress} {
		prog, err := d.program(id, dir)
		if err != nil {
			return err
		}
		attach := ebpf.AttachTCXEgress
		if (dir == Egress) == a.HostSide {
			attach = ebpf.AttachTCXIngress
		}
		pin := ""
		if d.spec.PinPath != "" {
			pin = filepath.Join(d.spec.PinPath, fmt.Sprintf(linkPinPattern, id, dir, a.Ifindex))
			if l, err := link.LoadPinnedLink(pin, nil); err == nil {
				if err := l.Update(prog); err != nil {
					l.Close()
					return classify("replace pinned program", err)
				}
				ep.links = append(ep.links, l)
				continue
			}
		}
		anchor := link.Head()
		if a.Anchor == AnchorTail {
			anchor = link.Tail()
		}
		l, err := link.AttachTCX(link.TCXOptions{Interface: a.Ifindex, Program: prog, Attach: attach, Anchor: anchor})
		if err != nil {
			return classify(fmt.Sprintf("attach endpoint %d %s to ifindex %d", id, dir, a.Ifindex), err)
		}
		if pin != "" {
			if err := l.Pin(pin); err != nil {
				l.Close()
				return fmt.Errorf("pin link %s: %w", pin, err)
			}
		}
		ep.links = append(ep.links, l)
	}
	if len(ep.pinned) > 0 {
		// Links an earlier process pinned on another interface (the pod's veth was replaced)
		// would hold their programs for ever.
		var stale []string
		for _, path := range ep.pinned {
			if !strings.HasSuffix(path, fmt.Sprintf("_if%d", a.Ifindex)) {
				stale = append(stale, path)
			}
		}
		ep.pinned = nil
		if err := removePins(stale); err != nil {
			return fmt.Errorf("remove endpoint %d's links on other interfaces: %w", id, err)
		}
	}
	return nil
}

// DetachEndpoint detaches the endpoint's programs (unpinning their links, and removing the links
// an earlier process pinned for it), removes its policy entries and closes its programs.
func (d *Datapath) DetachEndpoint(id uint32) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	ep := d.endpoints[id]
	if ep == nil {
		return nil
	}
	var errs []error
	for _, l := range ep.links {
		if d.spec.PinPath != "" {
			errs = append(errs, l.Unpin())
		}
	}
	errs = append(errs, removePins(ep.pinned))
	ep.pinned = nil
	errs = append(errs, d.writePolicy(id, ep, materialized{exact: map[ceskitPolicyKey]ceskitPolicyVal{}, lpm: map[ceskitPolicyLpmKey]ceskitPolicyVal{}}))
	errs = append(errs, ep.close())
	delete(d.endpoints, id)
	d.reportPolicyPressure()
	return errors.Join(errs...)
}
