package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/ceskit/ceskit/datapath"
	"github.com/ceskit/ceskit/datapath/policymap"
	"github.com/ceskit/ceskit/identity"
	"github.com/ceskit/ceskit/observe"
	"github.com/ceskit/ceskit/policy"
)

// The syncer is level-triggered: the handlers only mark local endpoints (and the ipcache)
// dirty; one goroutine reads the engine's current map state of each dirty endpoint and makes
// the datapath hold it. Changes that arrive while a sync runs coalesce into the next one, and a
// failed endpoint is retried with backoff.

func (a *Agent) runSyncer(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		next := a.syncOnce()
		if next > 0 {
			timer.Reset(next)
		}
		select {
		case <-ctx.Done():
			return
		case <-a.wake:
		case <-timer.C:
		}
	}
}

// syncJob is what one pass needs of a local endpoint, copied under the lock.
type syncJob struct {
	key string
	ls  *localState
	localState
}

// syncOnce runs one pass and returns when the next retry is due (0: none).
func (a *Agent) syncOnce() time.Duration {
	a.mu.Lock()
	if !a.synced {
		a.mu.Unlock()
		return 0
	}
	now := time.Now()
	var jobs []syncJob
	for key, at := range a.dirty {
		if now.Before(at) {
			continue
		}
		delete(a.dirty, key)
		if ls := a.local[key]; ls != nil {
			jobs = append(jobs, syncJob{key: key, ls: ls, localState: *ls})
		}
	}
	slices.SortFunc(jobs, func(x, y syncJob) int { return strings.Compare(x.key, y.key) })
	if !a.pruned {
		a.pruned = true
		a.pruneStaleLocked()
	}
	ipc := a.planIPCacheLocked()
	forget := a.forget
	a.forget = map[policy.PolicyRef]bool{}
	a.mu.Unlock()

	if err := ipc.apply(a.cfg.Datapath); err != nil {
		a.recordError("write ipcache", err)
		a.mu.Lock()
		a.ipcDirty = true
		a.mu.Unlock()
	}
	for _, j := range jobs {
		a.syncEndpoint(j)
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	for ref := range forget {
		if _, back := a.policies[ref]; !back {
			a.cookies.Forget(ref)
		}
	}
	a.ready = true
	var next time.Duration
	if a.ipcDirty {
		next = a.cfg.RetryBaseDelay
	}
	for _, at := range a.dirty {
		d := max(time.Until(at), time.Millisecond)
		if next == 0 || d < next {
			next = d
		}
	}
	return next
}

// pruneStaleLocked detaches, once after the sync, the datapath endpoints that no local endpoint
// holds: with Spec.PinPath, the pinned links and policy entries of endpoints deleted while the
// agent was down. It runs under the agent's lock so that no endpoint takes one of those IDs
// meanwhile.
func (a *Agent) pruneStaleLocked() {
	dp := a.cfg.Datapath
	if dp == nil {
		return
	}
	for _, id := range dp.Endpoints() {
		if _, ok := a.dpIDs[id]; ok {
			continue
		}
		if err := dp.DetachEndpoint(id); err != nil {
			a.lastErr, a.lastErrAt = fmt.Sprintf("remove stale datapath endpoint %d: %v", id, err), time.Now()
			a.log.Warn("remove stale datapath endpoint", "datapathID", id, "error", err)
			continue
		}
		a.staleRemoved++
		a.log.Info("removed a datapath endpoint left by an earlier run", "datapathID", id)
	}
}

// syncEndpoint makes the datapath hold one local endpoint's current policy, attached to its
// interface; in no-datapath mode it computes the entries only. Order: detach from a changed
// interface, write the entries (so the programs never run on an empty map for a known
// endpoint), then attach.
func (a *Agent) syncEndpoint(j syncJob) {
	dp := a.cfg.Datapath
	id := j.ep.DatapathID
	if j.gone {
		var err error
		if dp != nil && (j.target != nil || j.written) {
			err = dp.DetachEndpoint(id)
		}
		a.res.DeleteEndpoint(id)
		a.mu.Lock()
		if a.local[j.key] == j.ls && j.ls.gone {
			delete(a.local, j.key)
			delete(a.dpIDs, id)
		}
		a.mu.Unlock()
		if err != nil {
			a.recordError("detach endpoint "+j.key, err)
		} else {
			a.log.Info("local endpoint gone", "endpoint", j.key, "datapath_id", id, "detached", j.target != nil)
		}
		return
	}

	ms, err := a.engine.MapState(j.key)
	if errors.Is(err, policy.ErrNotFound) {
		// Not in the engine (waiting for its identity, or a reserved identity): nothing known to
		// enforce yet. Status lists why; a later change marks it again.
		return
	}
	overflow := err
	entries := policymap.Entries(ms, a.cookies)
	effective, _ := a.engine.Identity(j.key)
	res := syncResult{policyEntries: len(ms), identity: uint32(effective), failClosed: overflow != nil,
		target: j.target, attachedFor: j.attachedFor, written: j.written}
	if overflow != nil {
		res.err = overflow
	}
	if dp != nil {
		a.syncDatapath(dp, j, entries, &res)
	}
	a.finishSync(j, res)
}

type syncResult struct {
	policyEntries, datapathEntries int
	identity                       uint32
	failClosed, written            bool
	target                         *Target
	attachedFor                    string
	err                            error
}

func (a *Agent) syncDatapath(dp *datapath.Datapath, j syncJob, entries []datapath.Entry, res *syncResult) {
	id := j.ep.DatapathID
	addrs := fmt.Sprint(j.ep.IPs)
	var target Target
	var terr error
	needTarget := res.target == nil || res.attachedFor != addrs
	if needTarget {
		terr = inNetns(a.cfg.Netns, func() error {
			var err error
			target, err = a.cfg.Attach(j.ep)
			return err
		})
		if terr == nil && res.target != nil && *res.target != target {
			if err := dp.DetachEndpoint(id); err != nil {
				res.err = fmt.Errorf("detach from %s: %w", res.target, err)
				return
			}
			a.log.Info("endpoint interface changed", "endpoint", j.key, "from", res.target.String(), "to", target.String())
			res.target, res.written = nil, false
		}
		if terr == nil && res.target != nil {
			res.attachedFor = addrs // same interface, new addresses
		}
	}
	st, err := dp.SyncEndpoint(id, entries)
	if errors.Is(err, datapath.ErrCapacity) {
		// Fail closed: an empty map denies everything, never a partial one.
		res.failClosed = true
		if _, cerr := dp.SyncEndpoint(id, nil); cerr != nil {
			err = errors.Join(err, fmt.Errorf("fail closed: %w", cerr))
		}
		st = datapath.SyncStats{}
	}
	res.written = true
	res.datapathEntries = st.Entries
	if err != nil {
		res.err = errors.Join(res.err, fmt.Errorf("sync entries: %w", err))
		if !errors.Is(err, datapath.ErrCapacity) {
			return
		}
	}
	if terr != nil {
		res.err = errors.Join(res.err, fmt.Errorf("attach rule: %w", terr))
		return
	}
	if res.target == nil {
		err := inNetns(a.cfg.Netns, func() error {
			return dp.AttachEndpoint(id, datapath.Attachment{Ifindex: target.Ifindex, HostSide: target.HostSide})
		})
		if err != nil {
			res.err = errors.Join(res.err, fmt.Errorf("attach to %s: %w", target, err))
			return
		}
		res.target, res.attachedFor = &target, addrs
		a.log.Info("endpoint attached", "endpoint", j.key, "datapath_id", id, "interface", target.String(), "entries", st.Entries)
	}
}

// finishSync records a sync's outcome and schedules a retry after a failure.
func (a *Agent) finishSync(j syncJob, res syncResult) {
	if a.cfg.Datapath != nil && res.target != nil {
		a.mu.Lock()
		lbls := a.identities[identity.NumericIdentity(j.ep.Identity)]
		a.mu.Unlock()
		strs := make([]string, len(lbls))
		for i, l := range lbls {
			strs[i] = l.String()
		}
		slices.Sort(strs)
		a.res.SetEndpoint(j.ep.DatapathID, observe.Endpoint{
			Namespace: j.ep.Namespace, PodName: j.ep.Name, Identity: res.identity, Labels: strs,
		})
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.syncs++
	ls := a.local[j.key]
	if ls != j.ls {
		return // deleted meanwhile; a new state was created and is dirty
	}
	ls.policyEntries, ls.datapathEntries, ls.identity = res.policyEntries, res.datapathEntries, res.identity
	ls.target, ls.attachedFor, ls.written, ls.failClosed = res.target, res.attachedFor, res.written, res.failClosed
	ls.syncs++
	if res.err == nil {
		ls.err, ls.failures, ls.lastSync = "", 0, time.Now()
		return
	}
	a.syncErrors++
	ls.err = res.err.Error()
	ls.failures++
	a.lastErr, a.lastErrAt = "sync endpoint "+j.key+": "+ls.err, time.Now()
	if _, queued := a.dirty[j.key]; !queued {
		backoff := a.cfg.RetryBaseDelay << min(ls.failures-1, 20)
		a.dirty[j.key] = time.Now().Add(min(backoff, a.cfg.RetryMaxDelay))
	}
	a.log.Warn("endpoint sync failed; retrying", "endpoint", j.key, "failures", ls.failures, "error", res.err)
}

// addCIDRIdentitiesLocked adds the prefixes the policies name (ipBlock, fromCIDR, toCIDR,
// CIDR sets and their excepts) with their CIDR identities. The engine does not export them, so
// each is read back through Explain with an address of the prefix that is neither in a longer
// named prefix nor an endpoint's or node's address (the engine answers with the identity of the
// longest prefix containing it); a prefix with no such address is skipped, since the datapath's
// longest-prefix match never ends on it. The answers are cached until the policies change (a
// prefix keeps its identity while it is named). Host prefixes that are endpoint or node
// addresses keep those identities: the cluster's own addresses are not CIDR identities.
func (a *Agent) addCIDRIdentitiesLocked(out map[netip.Prefix]uint32) {
	var all []netip.Prefix
	for _, ps := range a.policies {
		all = append(all, ps...)
	}
	if len(all) == 0 {
		return
	}
	slices.SortFunc(all, comparePrefixes)
	all = slices.Compact(all)
	if a.cidrIDs == nil {
		a.cidrIDs = map[netip.Prefix]uint32{}
	}
	var avoid []netip.Prefix // filled on the first cache miss
	for _, p := range all {
		if _, taken := out[p]; taken {
			continue
		}
		id, cached := a.cidrIDs[p]
		if !cached {
			if avoid == nil {
				avoid = slices.Clone(all)
				for q := range out {
					if q.IsSingleIP() {
						avoid = append(avoid, q)
					}
				}
			}
			if probe, ok := uncoveredAddr(p, avoid); ok {
				x, err := a.engine.Explain(policy.Peer{IP: probe}, policy.Peer{IP: probe}, policy.ProtoTCP, 0)
				if err == nil && x.Ingress.Identity.Scope() == identity.ScopeLocal {
					id = uint32(x.Ingress.Identity)
				}
			}
			a.cidrIDs[p] = id // 0: none (skipped until the policies change)
		}
		if id != 0 {
			out[p] = id
		}
	}
}

func comparePrefixes(x, y netip.Prefix) int {
	if c := x.Addr().Compare(y.Addr()); c != 0 {
		return c
	}
	return x.Bits() - y.Bits()
}

// uncoveredAddr returns an address of p that no prefix of avoid longer than p contains, found by
// halving p towards the parts the longer prefixes leave free.
func uncoveredAddr(p netip.Prefix, avoid []netip.Prefix) (netip.Addr, bool) {
	p = p.Masked()
	var inside []netip.Prefix
	for _, q := range avoid {
		if q.Bits() > p.Bits() && q.Addr().Is4() == p.Addr().Is4() && p.Contains(q.Addr()) {
			inside = append(inside, q.Masked())
		}
	}
	var find func(r netip.Prefix) (netip.Addr, bool)
	find = func(r netip.Prefix) (netip.Addr, bool) {
		overlaps := false
		for _, q := range inside {
			if q.Bits() <= r.Bits() && q.Contains(r.Addr()) {
				return netip.Addr{}, false // all of r is covered
			}
			if r.Contains(q.Addr()) {
				overlaps = true
			}
		}
		if !overlaps {
			return r.Addr(), true
		}
		if r.Bits() == r.Addr().BitLen() {
			return netip.Addr{}, false
		}
		left := netip.PrefixFrom(r.Addr(), r.Bits()+1)
		if a, ok := find(left); ok {
			return a, true
		}
		return find(netip.PrefixFrom(lastAddr(left).Next(), r.Bits()+1))
	}
	return find(p)
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// policyPrefixes returns the prefixes a policy spec names: every string under a "cidr",
// "except", "fromCIDR" or "toCIDR" key of its JSON (NetworkPolicy ipBlocks, Cilium CIDR rules
// and CIDR sets), single addresses as host prefixes.
func policyPrefixes(spec any) []netip.Prefix {
	b, err := json.Marshal(spec)
	if err != nil {
		return nil
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil
	}
	var out []netip.Prefix
	add := func(s string) {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		} else if ip, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
		}
	}
	var walk func(v any, key string)
	walk = func(v any, key string) {
		switch t := v.(type) {
		case map[string]any:
			for k, c := range t {
				walk(c, k)
			}
		case []any:
			for _, c := range t {
				walk(c, key)
			}
		case string:
			switch key {
			case "cidr", "except", "fromCIDR", "toCIDR":
				add(t)
			}
		}
	}
	walk(v, "")
	return out
}
