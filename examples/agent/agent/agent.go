package agent

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/ceskit/ceskit/datapath/monitor"
	"github.com/ceskit/ceskit/datapath/policymap"
	"github.com/ceskit/ceskit/identity"
	identityv2 "github.com/ceskit/ceskit/identity/ciliumv2"
	"github.com/ceskit/ceskit/internal/retry"
	"github.com/ceskit/ceskit/observe"
	"github.com/ceskit/ceskit/policy"
	policyv2 "github.com/ceskit/ceskit/policy/ciliumv2"
	"github.com/ceskit/ceskit/slicer"
)

// Agent is ceskit's node agent: it keeps the policy of the endpoints of one node current and,
// with a datapath, enforced. See the package documentation for the data flow.
//
// Its methods are safe for concurrent use; Run may be called once.
type Agent struct {
	cfg     Config
	node    string
	log     *slog.Logger
	kube    kubernetes.Interface
	ids     *identity.Client
	pols    *policyClient
	engine  *policy.Engine
	watcher *slicer.Watcher
	monitor *monitor.Monitor // nil in no-datapath mode
	cookies *policymap.Cookies
	res     *resolver
	started atomic.Bool
	wake    chan struct{}

	mu         sync.Mutex // guards everything below; taken before the engine's lock, never after
	endpoints  map[string]*endpointState
	byIdentity map[identity.NumericIdentity]map[string]bool
	identities map[identity.NumericIdentity]identity.Labels
	nodes      map[string]policy.Node
	localIPs   map[netip.Addr]bool
	local      map[string]*localState
	dpIDs      map[uint32]string
	policies   map[policy.PolicyRef][]netip.Prefix // in the engine, with the prefixes they name
	cidrIDs    map[netip.Prefix]uint32             // CIDR identities read back; reset on policy changes
	invalid    map[policy.PolicyRef]InvalidPolicy
	forget     map[policy.PolicyRef]bool // deleted: forget their cookies after the next pass
	sources    map[string]string
	dirty      map[string]time.Time // local endpoint → when to sync it next
	ipcDirty   bool                 // the ipcache needs a full rebuild (ipcache.go)
	ipcEPs     map[string]bool      // endpoints whose addresses the next pass recomputes
	ipc        map[netip.Prefix]uint32
	ipcByIP    map[netip.Prefix]map[string]uint32 // host prefix → endpoints holding it → identity
	ipcClaims  map[string][]netip.Prefix          // endpoint → the host prefixes it holds
	ipcNodes   map[netip.Prefix]uint32            // node addresses → host or remote-node
	ipcNamed   map[netip.Prefix]bool              // host prefixes policies name
	synced     bool
	ready      bool

	pruned       bool // the datapath's endpoints from an earlier run were checked (sync.go)
	staleRemoved int
	syncs        uint64
	syncErrors   uint64
	verdicts     map[string]uint64
	lastErr      string
	lastErrAt    time.Time
}

// endpointState is one endpoint of the cluster.
type endpointState struct {
	ep       slicer.Endpoint
	identity identity.NumericIdentity
	inEngine bool
	problem  string // why it is not in the engine, or why its last change was refused
}

// localState is one endpoint of this node.
type localState struct {
	ep       Endpoint
	gone     bool // no longer local (deleted or moved): detach at the next pass
	identity uint32
	// What the syncer last did.
	target          *Target // attached here
	attachedFor     string  // the addresses the target was chosen for
	written         bool    // the datapath holds entries for it
	policyEntries   int
	datapathEntries int
	syncs           uint64
	lastSync        time.Time
	failClosed      bool
	err             string
	failures        int
}

// New returns an agent for node nodeName (the Node object's name) that reaches the API server
// through restConfig. It validates cfg and builds the clients, the policy engine, the slice
// watcher and, with a datapath, the monitor; nothing runs until Run. Metrics are registered into
// cfg.Registry here, so a Registry can hold one agent only.
func New(restConfig *rest.Config, nodeName string, cfg Config) (*Agent, error) {
	if restConfig == nil {
		return nil, &ConfigError{Field: "restConfig", Value: "nil", Reason: "a REST config is required"}
	}
	if nodeName == "" {
		return nil, &ConfigError{Field: "nodeName", Value: `""`, Reason: "the node's name is required"}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	a := newState(cfg, nodeName)

	sc, err := slicer.NewClient(restConfig)
	if err != nil {
		return nil, err
	}
	a.kube = sc.Kube
	if a.ids, err = identity.NewClient(restConfig); err != nil {
		return nil, err
	}
	if a.pols, err = newPolicyClient(restConfig); err != nil {
		return nil, err
	}

	pcfg, wcfg := cfg.Policy, cfg.Watcher
	if pcfg.Logger == nil {
		pcfg.Logger = cfg.logger("policy")
	}
	if wcfg.Logger == nil {
		wcfg.Logger = cfg.logger("slicer")
	}
	dpMetrics := cfg.DatapathMetrics
	if cfg.Registry != nil {
		if pcfg.Metrics == nil {
			m, err := observe.NewPolicyMetrics(cfg.Registry)
			if err != nil {
				return nil, err
			}
			pcfg.Metrics = m
		}
		if wcfg.Metrics == nil {
			m, err := observe.NewWatcherMetrics(cfg.Registry)
			if err != nil {
				return nil, err
			}
			wcfg.Metrics = m
		}
		if cfg.Datapath != nil && dpMetrics == nil {
			if dpMetrics, err = observe.NewDatapathMetrics(cfg.Registry); err != nil {
				return nil, err
			}
		}
	}
	if a.engine, err = policy.NewEngine(pcfg); err != nil {
		return nil, err
	}
	a.watcher, err = slicer.NewWatcher(sc, slicer.HandlerFuncs{Updated: a.endpointUpdated, Deleted: a.endpointDeleted}, wcfg)
	if err != nil {
		return nil, err
	}
	if cfg.Datapath != nil {
		mcfg := monitor.Config{
			Sink: &verdictSink{a: a, next: cfg.Sink}, Resolver: a.res, NodeName: nodeName,
			StatsInterval: cfg.StatsInterval, Logger: cfg.logger("monitor"),
		}
		if dpMetrics != nil {
			mcfg.Metrics = dpMetrics
		}
		if a.monitor, err = monitor.New(cfg.Datapath, mcfg); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// newState is an Agent's state with no clients yet: what New builds on, and the unit tests use.
func newState(cfg Config, nodeName string) *Agent {
	a := &Agent{
		cfg: cfg, node: nodeName, log: cfg.logger("agent"), cookies: &policymap.Cookies{}, wake: make(chan struct{}, 1),
		endpoints: map[string]*endpointState{}, byIdentity: map[identity.NumericIdentity]map[string]bool{},
		identities: map[identity.NumericIdentity]identity.Labels{}, nodes: map[string]policy.Node{},
		localIPs: map[netip.Addr]bool{}, local: map[string]*localState{}, dpIDs: map[uint32]string{},
		policies: map[policy.PolicyRef][]netip.Prefix{}, invalid: map[policy.PolicyRef]InvalidPolicy{},
		forget: map[policy.PolicyRef]bool{}, sources: map[string]string{}, dirty: map[string]time.Time{},
		verdicts: map[string]uint64{},
	}
	a.res = &resolver{cookies: a.cookies}
	return a
}

// Engine returns the agent's policy engine, for reading (MapState, Explain, Identity). Changing
// it behind the agent's back desynchronises the datapath.
func (a *Agent) Engine() *policy.Engine { return a.engine }

// Watcher returns the agent's slice watcher, for lookups by name and address.
func (a *Agent) Watcher() *slicer.Watcher { return a.watcher }

// Cookies returns the agent's rule cookies.
func (a *Agent) Cookies() *policymap.Cookies { return a.cookies }

// Run starts the informers (Nodes, CiliumIdentities, NetworkPolicies and, where the API server
// serves them, CiliumNetworkPolicies and CiliumClusterwideNetworkPolicies), waits for them, starts
// the slice watcher, waits for it, and from then on keeps the local endpoints' policy synced to
// the datapath (and the monitor running) until ctx ends. Policy resources not served at start are
// looked for again every [Config].DiscoveryInterval and watched once served. It returns after
// every goroutine it started has stopped, nil when ctx ended, or at once with an error wrapping
// [ErrCRDMissing] when CiliumIdentities are not served; a discovery read that fails at start is
// retried (100ms doubling to 5s) until ctx ends. Local endpoints stay attached when Run returns (with
// Spec.PinPath a restarted agent takes them over); closing the Datapath detaches them.
func (a *Agent) Run(ctx context.Context) error {
	if !a.started.CompareAndSwap(false, true) {
		return errors.New("agent: Run called twice")
	}
	var have map[string]bool
	err := retry.Until(ctx, a.log, "discovery of cilium.io/v2", retry.DefaultBackoff, func(context.Context) error {
		var err error
		have, err = served(a.kube, identityv2.SchemeGroupVersion, resIdentities, resCNP, resCCNP)
		return err
	}, nil)
	if err != nil {
		return nil // ctx ended
	}
	if !have[resIdentities] {
		return fmt.Errorf("%w: %s (cilium.io/v2): endpoints in slices carry only their identity number; the agent needs its labels", ErrCRDMissing, resIdentities)
	}

	infCtx, stopInformers := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer func() {
		stopInformers()
		wg.Wait()
	}()
	type named struct {
		name string
		inf  cache.SharedIndexInformer
		on   func(obj any, deleted bool)
	}
	infs := []named{
		{resNodes, nodeInformer(a.kube), a.onNode},
		{resIdentities, a.ids.NewIdentityInformer(), a.onIdentity},
		{resNP, networkPolicyInformer(a.kube), a.onPolicy},
	}
	a.setSource(resNP, "watching")
	policyInformer := func(r string) named {
		if r == resCNP {
			api := a.pols.cnps("")
			return named{r, informer(&policyv2.CiliumNetworkPolicy{}, api.List, api.Watch), a.onPolicy}
		}
		api := a.pols.ccnps()
		return named{r, informer(&policyv2.CiliumClusterwideNetworkPolicy{}, api.List, api.Watch), a.onPolicy}
	}
	var late []string // policy resources not served yet
	for _, r := range []string{resCNP, resCCNP} {
		if !have[r] {
			a.setSource(r, "not served by the API server")
			a.log.Warn("policy resource not served; looking again every "+a.cfg.DiscoveryInterval.String(), "resource", r)
			late = append(late, r)
			continue
		}
		a.setSource(r, "watching")
		infs = append(infs, policyInformer(r))
	}
	// start registers an informer's handlers and runs it until the informers stop.
	start := func(n named) (cache.InformerSynced, error) {
		on := n.on
		if _, err := n.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { on(obj, false) },
			UpdateFunc: func(_, obj any) { on(obj, false) },
			DeleteFunc: func(obj any) { on(obj, true) },
		}); err != nil {
			return nil, fmt.Errorf("watch %s: %w", n.name, err)
		}
		// A list or watch that fails (RBAC, a CRD gone) shows in Status instead of only in
		// client-go's log; the reflector retries with backoff.
		if err := n.inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *cache.Reflector, err error) {
			switch {
			case ctx.Err() != nil, errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
				apierrors.IsResourceExpired(err), apierrors.IsGone(err):
				cache.DefaultWatchErrorHandler(ctx, r, err) // the normal end of a watch
			default:
				a.recordError("list and watch "+n.name, err)
			}
		}); err != nil {
			return nil, fmt.Errorf("watch %s: %w", n.name, err)
		}
		wg.Go(func() { n.inf.RunWithContext(infCtx) })
		return n.inf.HasSynced, nil
	}
	var synced []cache.InformerSynced
	for _, n := range infs {
		hs, err := start(n)
		if err != nil {
			return err
		}
		synced = append(synced, hs)
	}
	if len(late) > 0 {
		wg.Go(func() {
			a.discoverLate(infCtx, late, func(r string) error { _, err := start(policyInformer(r)); return err })
		})
	}
	a.log.Info("agent starting", "node", a.node, "mode", a.mode(), "informers", len(infs))
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return nil // ctx ended
	}

	// The watcher runs under its own context so that it stops after the syncer (which reads it).
	wctx, stopWatcher := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWatcher()
	wg.Go(func() {
		if err := a.watcher.Run(wctx); err != nil {
			a.recordError("slice watcher", err)
		}
	})
	for !a.watcher.Status().Synced {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(20 * time.Millisecond):
		}
	}
	a.mu.Lock()
	a.synced = true
	a.ipcDirty = true
	for key := range a.local {
		a.dirty[key] = time.Time{}
	}
	a.mu.Unlock()
	st := a.Status()
	a.log.Info("agent synced", "endpoints", st.Endpoints, "local", len(st.LocalEndpoints), "identities", st.Identities,
		"policies", st.Policies, "invalid_policies", len(st.InvalidPolicies), "source", st.Watcher.Source)

	var runners sync.WaitGroup
	runners.Go(func() { a.runSyncer(ctx) })
	if a.monitor != nil {
		runners.Go(func() {
			if err := a.monitor.Run(ctx); err != nil {
				a.recordError("monitor", err)
			}
		})
	}
	runners.Wait()
	a.log.Info("agent stopped")
	return nil
}

// discoverLate asks the API server every DiscoveryInterval whether it serves the policy
// resources of late now, and starts watching each one that it does, until all are watched or
// ctx ends. A failed read is logged and asked again next time.
func (a *Agent) discoverLate(ctx context.Context, late []string, start func(resource string) error) {
	t := time.NewTicker(a.cfg.DiscoveryInterval)
	defer t.Stop()
	for len(late) > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		have, err := served(a.kube, policyv2.SchemeGroupVersion, late...)
		if err != nil {
			a.log.Warn("policy resource discovery failed; asking again later", "error", err)
			continue
		}
		var still []string
		for _, r := range late {
			if !have[r] {
				still = append(still, r)
				continue
			}
			if err := start(r); err != nil {
				a.recordError("watch "+r, err)
				still = append(still, r)
				continue
			}
			a.setSource(r, "watching")
			a.log.Info("policy resource now served; watching it", "resource", r)
		}
		late = still
	}
}

func (a *Agent) mode() string {
	if a.cfg.Datapath != nil {
		return ModeDatapath
	}
	return ModeNoDatapath
}

func (a *Agent) setSource(res, state string) {
	a.mu.Lock()
	a.sources[res] = state
	a.mu.Unlock()
}

// recordError keeps err as the last error and logs it.
func (a *Agent) recordError(op string, err error) {
	a.log.Warn(op+" failed", "error", err)
	a.mu.Lock()
	a.lastErr, a.lastErrAt = op+": "+err.Error(), time.Now()
	a.mu.Unlock()
}

func (a *Agent) wakeSyncer() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// ---- endpoints -------------------------------------------------------------------------------

func (a *Agent) endpointUpdated(_, ep *slicer.Endpoint) {
	cp := slicer.Endpoint{Namespace: ep.Namespace, CoreCiliumEndpoint: *ep.CoreCiliumEndpoint.DeepCopy()}
	key := cp.Key()
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.endpoints[key]
	if st == nil {
		st = &endpointState{}
		a.endpoints[key] = st
	}
	a.unindexLocked(key, st)
	st.ep = cp
	st.identity = identity.NumericIdentity(cp.IdentityID)
	if a.byIdentity[st.identity] == nil {
		a.byIdentity[st.identity] = map[string]bool{}
	}
	a.byIdentity[st.identity][key] = true
	a.applyEndpointLocked(key)
}

func (a *Agent) endpointDeleted(ep *slicer.Endpoint) {
	key := ep.Key()
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.endpoints[key]
	if st == nil {
		return
	}
	a.unindexLocked(key, st)
	delete(a.endpoints, key)
	if st.inEngine {
		u, err := a.engine.DeleteEndpoint(key)
		if err != nil {
			a.log.Warn("delete endpoint from policy engine", "endpoint", key, "error", err)
		}
		a.noteLocked(u)
	}
	a.updateLocalityLocked(key, nil)
	a.markIPCacheLocked(key)
	a.wakeSyncer()
}

func (a *Agent) unindexLocked(key string, st *endpointState) {
	if m := a.byIdentity[st.identity]; m != nil {
		delete(m, key)
		if len(m) == 0 {
			delete(a.byIdentity, st.identity)
		}
	}
}

// applyEndpointLocked brings the engine's copy of an endpoint in line with what is known of it.
func (a *Agent) applyEndpointLocked(key string) {
	st := a.endpoints[key]
	pe, problem := a.policyEndpointLocked(st)
	switch {
	case problem == "":
		u, err := a.engine.UpsertEndpoint(pe)
		if err != nil {
			// The engine changed nothing: a previous version, if any, stays.
			st.problem = "refused by the policy engine: " + err.Error()
			a.log.Warn("endpoint refused by the policy engine", "endpoint", key, "identity", uint32(pe.Identity), "error", err)
			break
		}
		st.inEngine, st.problem = true, ""
		a.noteLocked(u)
	default:
		st.problem = problem
		if st.inEngine {
			u, err := a.engine.DeleteEndpoint(key)
			if err != nil {
				a.log.Warn("delete endpoint from policy engine", "endpoint", key, "error", err)
			}
			st.inEngine = false
			a.noteLocked(u)
		}
		a.log.Debug("endpoint not in policy", "endpoint", key, "reason", problem)
	}
	a.updateLocalityLocked(key, st)
	a.markIPCacheLocked(key)
	a.wakeSyncer()
}

// policyEndpointLocked converts an endpoint for the engine. The slice carries the numeric
// identity only; the labels (pod labels, namespace labels, service account) come from the
// identity's CiliumIdentity. problem says why the endpoint cannot go into the engine.
func (a *Agent) policyEndpointLocked(st *endpointState) (pe policy.Endpoint, problem string) {
	id := st.identity
	switch {
	case id == 0:
		return pe, "no security identity"
	case id.Scope() != identity.ScopeGlobal || id < identity.MinimalAllocation:
		return pe, fmt.Sprintf("identity %d is not a cluster identity (reserved or local scope): in the ipcache only", uint32(id))
	}
	lbls, ok := a.identities[id]
	if !ok {
		return pe, fmt.Sprintf("waiting for CiliumIdentity %d", uint32(id))
	}
	podLabels, nsLabels, sa := splitIdentityLabels(lbls)
	if ns := lbls.Namespace(); ns != "" && ns != st.ep.Namespace {
		return pe, fmt.Sprintf("CiliumIdentity %d belongs to namespace %q, not %q", uint32(id), ns, st.ep.Namespace)
	}
	if nsLabels["kubernetes.io/metadata.name"] == "" {
		nsLabels["kubernetes.io/metadata.name"] = st.ep.Namespace // set by the API server on every namespace
	}
	if sa == "" {
		sa = st.ep.ServiceAccount
	}
	pe = policy.Endpoint{
		ID: st.ep.Key(), Namespace: st.ep.Namespace, Labels: podLabels, NamespaceLabels: nsLabels,
		ServiceAccount: sa, IPs: st.ep.IPs(), Identity: id,
	}
	for _, np := range st.ep.NamedPorts {
		if np == nil || np.Name == "" || np.Port == 0 {
			continue
		}
		proto, err := policy.ParseProtocol(np.Protocol)
		if err != nil {
			continue
		}
		pe.NamedPorts = append(pe.NamedPorts, policy.NamedPort{Name: np.Name, Port: np.Port, Protocol: proto})
	}
	return pe, ""
}

// splitIdentityLabels inverts identity.PodLabels: the k8s-source labels of a CiliumIdentity
// become pod labels, namespace labels (io.cilium.k8s.namespace.labels.*) and the service account.
// The namespace and cluster labels, and labels of other sources, are left out: the engine adds
// the namespace itself.
func splitIdentityLabels(lbls identity.Labels) (pod, ns map[string]string, sa string) {
	pod, ns = map[string]string{}, map[string]string{}
	for _, l := range lbls {
		if l.Source != identity.SourceK8s {
			continue
		}
		switch {
		case l.Key == identity.LabelNamespace, l.Key == identity.LabelCluster:
		case l.Key == identity.LabelServiceAccount:
			sa = l.Value
		case strings.HasPrefix(l.Key, identity.LabelNamespaceLabelsPrefix):
			ns[strings.TrimPrefix(l.Key, identity.LabelNamespaceLabelsPrefix)] = l.Value
		default:
			pod[l.Key] = l.Value
		}
	}
	return pod, ns, sa
}

// updateLocalityLocked tracks whether an endpoint (nil: deleted) runs on this node: its node IP
// is one of the local Node's addresses.
func (a *Agent) updateLocalityLocked(key string, st *endpointState) {
	isLocal := false
	var nodeIP netip.Addr
	if st != nil && st.ep.Networking != nil {
		if ip, err := netip.ParseAddr(st.ep.Networking.NodeIP); err == nil {
			nodeIP = ip.Unmap()
			isLocal = a.localIPs[nodeIP]
		}
	}
	ls := a.local[key]
	switch {
	case isLocal:
		if ls == nil {
			ls = &localState{}
			a.local[key] = ls
			ls.ep.DatapathID = a.assignDatapathIDLocked(key)
			a.log.Info("local endpoint", "endpoint", key, "datapath_id", ls.ep.DatapathID)
		}
		ls.gone = false
		ls.ep.Namespace, ls.ep.Name = st.ep.Namespace, st.ep.Name
		ls.ep.IPs, ls.ep.Identity, ls.ep.NodeIP = st.ep.IPs(), uint32(st.identity), nodeIP
		a.markDirtyLocked(key)
	case ls != nil && !ls.gone:
		ls.gone = true
		a.markDirtyLocked(key)
	}
}

// DatapathID is the datapath endpoint ID the agent gives the local endpoint namespace/name when no
// other local endpoint holds it: the FNV-1a hash of "namespace/name" in 31 bits, never 0. So an
// endpoint keeps its ID across agent restarts (with Spec.PinPath the restarted agent replaces the
// programs in the pinned links of the same ID); on a collision the later endpoint takes the next
// free ID.
func DatapathID(key string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	if id := h.Sum32() & 0x7fffffff; id != 0 {
		return id
	}
	return 1
}

func (a *Agent) assignDatapathIDLocked(key string) uint32 {
	id := DatapathID(key)
	for {
		if owner, taken := a.dpIDs[id]; !taken || owner == key {
			break
		}
		id = id%0x7fffffff + 1
	}
	a.dpIDs[id] = key
	return id
}

// markDirtyLocked queues a local endpoint for the syncer's next pass (at once, also when it was
// waiting out a backoff: the change may be what it waited for).
func (a *Agent) markDirtyLocked(key string) {
	a.dirty[key] = time.Time{}
}

// noteLocked marks the local endpoints whose map state an engine change touched.
func (a *Agent) noteLocked(u policy.Update) {
	for key, d := range u.Diffs {
		if _, ok := a.local[key]; ok {
			a.markDirtyLocked(key)
		}
		a.markIPCacheLocked(key) // ModeSpec may give it another effective identity
		if d.Err != nil {
			a.log.Warn("endpoint policy does not fit: failing closed", "endpoint", key, "error", d.Err)
		}
	}
	if len(u.Diffs) > 0 {
		a.wakeSyncer()
	}
}

// ---- nodes and identities ----------------------------------------------------------------------

func (a *Agent) onNode(obj any, deleted bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj, deleted = tomb.Obj, true
	}
	n, ok := obj.(*corev1.Node)
	if !ok {
		return
	}
	var ips []netip.Addr
	for _, addr := range n.Status.Addresses {
		if addr.Type != corev1.NodeInternalIP && addr.Type != corev1.NodeExternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(addr.Address); err == nil {
			ips = append(ips, ip.Unmap())
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if deleted {
		if _, ok := a.nodes[n.Name]; ok {
			u, err := a.engine.DeleteNode(n.Name)
			if err != nil {
				a.log.Warn("delete node from policy engine", "node", n.Name, "error", err)
			}
			delete(a.nodes, n.Name)
			a.noteLocked(u)
		}
		ips = nil
	} else {
		pn := policy.Node{Name: n.Name, IPs: ips, Labels: n.Labels, Local: n.Name == a.node}
		u, err := a.engine.UpsertNode(pn)
		if err != nil {
			a.log.Warn("node refused by the policy engine", "node", n.Name, "error", err)
			return
		}
		a.nodes[n.Name] = pn
		a.noteLocked(u)
	}
	a.ipcDirty = true
	if n.Name == a.node {
		next := map[netip.Addr]bool{}
		for _, ip := range ips {
			next[ip] = true
		}
		if !mapsEqual(next, a.localIPs) {
			a.localIPs = next
			a.log.Info("local node addresses", "node", a.node, "ips", ips)
			for key, st := range a.endpoints {
				a.updateLocalityLocked(key, st)
			}
		}
	}
	a.wakeSyncer()
}

func mapsEqual(x, y map[netip.Addr]bool) bool {
	if len(x) != len(y) {
		return false
	}
	for k := range x {
		if !y[k] {
			return false
		}
	}
	return true
}

func (a *Agent) onIdentity(obj any, deleted bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj, deleted = tomb.Obj, true
	}
	ci, ok := obj.(*identityv2.CiliumIdentity)
	if !ok {
		return
	}
	n, err := strconv.ParseUint(ci.Name, 10, 32)
	if err != nil {
		a.log.Warn("CiliumIdentity with a non-numeric name ignored", "identity", ci.Name)
		return
	}
	id := identity.NumericIdentity(n)
	a.mu.Lock()
	defer a.mu.Unlock()
	if deleted {
		// Endpoints that still use it keep the engine's copy of its labels.
		delete(a.identities, id)
		a.res.DeleteIdentity(uint32(id))
		return
	}
	lbls, err := identity.LabelsFromSecurityLabels(ci.SecurityLabels)
	if err != nil {
		a.log.Warn("CiliumIdentity with invalid labels ignored", "identity", uint32(id), "error", err)
		return
	}
	old, had := a.identities[id]
	a.identities[id] = lbls
	strs := make([]string, len(lbls))
	for i, l := range lbls {
		strs[i] = l.String()
	}
	slices.Sort(strs)
	a.res.SetIdentity(uint32(id), observe.Endpoint{Namespace: lbls.Namespace(), Labels: strs})
	if had && old.Equal(lbls) {
		return
	}
	keys := make([]string, 0, len(a.byIdentity[id]))
	for k := range a.byIdentity[id] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if had {
		// New labels for a number in use: the engine refuses an identity that stands for two
		// label sets, so take its endpoints out first.
		for _, k := range keys {
			if st := a.endpoints[k]; st != nil && st.inEngine {
				u, _ := a.engine.DeleteEndpoint(k)
				st.inEngine = false
				a.noteLocked(u)
			}
		}
	}
	for _, k := range keys {
		a.applyEndpointLocked(k)
	}
}

// ---- policies ----------------------------------------------------------------------------------

// onPolicy converts a NetworkPolicy, CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy and
// applies it. A policy the policy package rejects changes nothing in the engine (a previous
// version stays in force), is logged with every field and value, and listed in Status.
func (a *Agent) onPolicy(obj any, deleted bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj, deleted = tomb.Obj, true
	}
	var (
		ref  policy.PolicyRef
		p    *policy.Policy
		err  error
		pfxs []netip.Prefix
	)
	switch o := obj.(type) {
	case *networkingv1.NetworkPolicy:
		ref = policy.PolicyRef{Kind: "NetworkPolicy", Namespace: o.Namespace, Name: o.Name}
		if !deleted {
			p, err = policy.FromNetworkPolicy(o)
			pfxs = policyPrefixes(o.Spec)
		}
	case *policyv2.CiliumNetworkPolicy:
		ref = policy.PolicyRef{Kind: "CiliumNetworkPolicy", Namespace: o.Namespace, Name: o.Name}
		if !deleted {
			p, err = policy.FromCiliumNetworkPolicy(o)
			pfxs = policyPrefixes(struct {
				A any `json:"a"`
				B any `json:"b"`
			}{o.Spec, o.Specs})
		}
	case *policyv2.CiliumClusterwideNetworkPolicy:
		ref = policy.PolicyRef{Kind: "CiliumClusterwideNetworkPolicy", Name: o.Name}
		if !deleted {
			p, err = policy.FromCiliumClusterwideNetworkPolicy(o)
			pfxs = policyPrefixes(struct {
				A any `json:"a"`
				B any `json:"b"`
			}{o.Spec, o.Specs})
		}
	default:
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	_, held := a.policies[ref]
	switch {
	case deleted:
		delete(a.invalid, ref)
		if !held {
			return
		}
		u, err := a.engine.DeletePolicy(ref)
		if err != nil {
			a.log.Warn("delete policy from engine", "policy", ref.String(), "error", err)
		}
		delete(a.policies, ref)
		a.cidrIDs = nil
		a.forget[ref] = true
		a.noteLocked(u)
		a.ipcDirty = true // the prefixes it named leave the ipcache
		a.wakeSyncer()
		a.log.Info("policy deleted", "policy", ref.String(), "endpoints_changed", len(u.Diffs))
	case err != nil:
		inv := InvalidPolicy{Kind: ref.Kind, Namespace: ref.Namespace, Name: ref.Name, Error: err.Error(), KeptPrevious: held, Since: time.Now()}
		var ipe *policy.InvalidPolicyError
		if errors.As(err, &ipe) {
			for _, fe := range ipe.Errs {
				inv.Errors = append(inv.Errors, FieldError{Field: fe.Field, Value: fmt.Sprint(fe.BadValue), Reason: fe.Detail})
				a.log.Warn("policy rejected", "policy", ref.String(), "field", fe.Field, "value", fmt.Sprint(fe.BadValue),
					"reason", fe.Detail, "kept_previous", held)
			}
		}
		if len(inv.Errors) == 0 {
			a.log.Warn("policy rejected", "policy", ref.String(), "error", err, "kept_previous", held)
		}
		a.invalid[ref] = inv
	default:
		u, err := a.engine.UpsertPolicy(p)
		if err != nil {
			a.invalid[ref] = InvalidPolicy{Kind: ref.Kind, Namespace: ref.Namespace, Name: ref.Name, Error: err.Error(), KeptPrevious: held, Since: time.Now()}
			a.log.Warn("policy refused by the engine", "policy", ref.String(), "error", err)
			return
		}
		delete(a.invalid, ref)
		delete(a.forget, ref)
		a.policies[ref] = pfxs
		a.cidrIDs = nil
		a.noteLocked(u)
		a.ipcDirty = true // the prefixes it names may have changed
		a.wakeSyncer()
		a.log.Info("policy applied", "policy", ref.String(), "endpoints_changed", len(u.Diffs), "recomputed", u.Recomputed)
	}
}

// isNotFound reports an API 404.
func isNotFound(err error) bool { return apierrors.IsNotFound(err) }
