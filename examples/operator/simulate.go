package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/ceskit/ceskit/slicer"
	"github.com/ceskit/ceskit/slicer/ciliumv2"
	"github.com/ceskit/ceskit/slicer/ciliumv2alpha1"
)

// simOptions are the simulator's settings (--simulate-*, --churn).
type simOptions struct {
	// Pods is the number of CiliumEndpoints kept alive.
	Pods int
	// Namespaces the endpoints spread over, round robin.
	Namespaces int
	// Nodes is the number of Node objects created.
	Nodes int
	// Churn is endpoint changes per second after the initial creation.
	Churn float64
}

// Lab parameters.
const (
	identitiesPerNamespace = 8               // security identities ("apps") per namespace
	seedWorkers            = 16              // concurrent creates while seeding
	reportEvery            = 5 * time.Second // period of the progress line
	churnTick              = 20 * time.Millisecond
	maxSamples             = 100_000 // latency samples kept (reservoir) for percentiles
)

// simulator plays the part of Cilium's agents: it creates Namespaces, Nodes and CiliumEndpoints,
// then churns the endpoints, while a watcher on the slices measures how long each change takes
// to show up in one. Run owns every goroutine it starts.
type simulator struct {
	client *slicer.Client
	ctrl   controllerView
	opts   simOptions
	out    io.Writer
	log    *slog.Logger
	track  *tracker

	cepCreates, cepUpdates, cepDeletes, cepErrors atomic.Int64

	// mu guards the fields below; seeding writes them from several goroutines.
	mu      sync.Mutex
	rng     *rand.Rand
	live    []*ciliumv2.CiliumEndpoint
	nextPod int

	start time.Time // set before the reporter starts
}

// controllerView is what the simulator reads of the controller.
type controllerView interface {
	HasSynced() bool
	Status() slicer.Status
}

func newSimulator(client *slicer.Client, ctrl controllerView, opts simOptions, out io.Writer, logger *slog.Logger) *simulator {
	return &simulator{
		client: client,
		ctrl:   ctrl,
		opts:   opts,
		out:    out,
		log:    logger.With("component", "simulator"),
		track:  newTracker(),
		rng:    rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
}

// Run waits for the controller, creates the objects, churns until ctx ends and prints a summary.
// It returns an error only when the lab cannot be set up.
func (s *simulator) Run(ctx context.Context) error {
	if !s.waitSynced(ctx) {
		return nil
	}
	if err := s.createInfra(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	ready := make(chan struct{})
	wg.Go(func() { s.watchSlices(ctx, ready) })
	select {
	case <-ready:
	case <-ctx.Done():
		return nil
	}
	s.start = time.Now()
	wg.Go(func() { s.report(ctx) })

	s.seed(ctx)
	if ctx.Err() == nil {
		fmt.Fprintf(s.out, "seeded %d endpoints in %d namespaces on %d nodes in %s\n",
			s.cepCreates.Load(), s.opts.Namespaces, s.opts.Nodes, time.Since(s.start).Round(time.Millisecond))
	}
	s.churn(ctx)

	wg.Wait()
	s.summary()
	return nil
}

func (s *simulator) waitSynced(ctx context.Context) bool {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !s.ctrl.HasSynced() {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

func nsName(i int) string   { return fmt.Sprintf("sim-%03d", i) }
func nodeName(i int) string { return fmt.Sprintf("sim-node-%03d", i) }
func nodeIP(i int) string   { return fmt.Sprintf("192.168.%d.%d", i/250, i%250+1) }

// createInfra creates the Namespaces and Nodes.
func (s *simulator) createInfra(ctx context.Context) error {
	for i := range s.opts.Namespaces {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nsName(i), Labels: map[string]string{"ceskit.io/simulated": "true"}}}
		if _, err := s.client.Kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create namespace %s: %w", ns.Name, err)
		}
	}
	for i := range s.opts.Nodes {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: nodeName(i), Labels: map[string]string{"ceskit.io/simulated": "true"}},
			Status:     corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: nodeIP(i)}}},
		}
		if _, err := s.client.Kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node %s: %w", node.Name, err)
		}
	}
	return nil
}

func identityOf(nsIdx, app int) int64 { return int64(100_000 + nsIdx*100 + app) }

// newCEP builds the next simulated endpoint. s.mu is held.
func (s *simulator) newCEP() (cep *ciliumv2.CiliumEndpoint, nsIdx int) {
	n := s.nextPod
	s.nextPod++
	nsIdx = n % s.opts.Namespaces
	app := s.rng.IntN(identitiesPerNamespace)
	node := 0
	if s.opts.Nodes > 0 {
		node = s.rng.IntN(s.opts.Nodes)
	}
	host := n + 1 // never .0
	cep = &ciliumv2.CiliumEndpoint{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod-%07d", n), Namespace: nsName(nsIdx)},
		Status: ciliumv2.EndpointStatus{
			ID: int64(n%65535 + 1),
			Identity: &ciliumv2.EndpointIdentity{
				ID:     identityOf(nsIdx, app),
				Labels: []string{"k8s:io.kubernetes.pod.namespace=" + nsName(nsIdx), fmt.Sprintf("k8s:app=app-%d", app)},
			},
			Networking: &ciliumv2.EndpointNetworking{
				Addressing: ciliumv2.AddressPairList{{
					IPV4: fmt.Sprintf("10.%d.%d.%d", 16+host>>16&0x3f, host>>8&0xff, host&0xff),
					IPV6: fmt.Sprintf("fd00::%x:%x", host>>16, host&0xffff),
				}},
				NodeIP: nodeIP(node),
			},
			State:          "ready",
			NamedPorts:     ciliumv2.NamedPorts{{Name: "http", Port: 8080, Protocol: "TCP"}},
			ServiceAccount: fmt.Sprintf("app-%d", app),
		},
	}
	return cep, nsIdx
}

func key(ns, name string) string { return ns + "/" + name }

// create writes a new endpoint and tracks its propagation.
func (s *simulator) create(ctx context.Context, phase string) {
	s.mu.Lock()
	cep, _ := s.newCEP()
	s.mu.Unlock()
	s.track.expect(key(cep.Namespace, cep.Name), cep.Status.Identity.ID, phase)
	got, err := s.client.CiliumEndpoints(cep.Namespace).Create(ctx, cep, metav1.CreateOptions{})
	if err != nil {
		s.track.cancel(key(cep.Namespace, cep.Name))
		s.writeFailed(ctx, "create", cep, err)
		return
	}
	s.cepCreates.Add(1)
	s.mu.Lock()
	s.live = append(s.live, got)
	s.mu.Unlock()
}

func (s *simulator) writeFailed(ctx context.Context, verb string, cep *ciliumv2.CiliumEndpoint, err error) {
	if ctx.Err() != nil {
		return
	}
	s.cepErrors.Add(1)
	s.log.Warn("simulated endpoint write failed", "verb", verb, "endpoint", key(cep.Namespace, cep.Name), "error", err)
}

// seed creates the initial endpoints with a few concurrent writers.
func (s *simulator) seed(ctx context.Context) {
	todo := make(chan struct{})
	var wg sync.WaitGroup
	for range seedWorkers {
		wg.Go(func() {
			for range todo {
				s.create(ctx, "seed")
			}
		})
	}
	defer wg.Wait()
	defer close(todo)
	for range s.opts.Pods {
		select {
		case todo <- struct{}{}:
		case <-ctx.Done():
			return
		}
	}
}

// churn makes opts.Churn endpoint changes per second until ctx ends: each step either replaces
// a random endpoint (a delete and a create: two changes) or gives one a new identity.
func (s *simulator) churn(ctx context.Context) {
	if s.opts.Churn <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(churnTick)
	defer t.Stop()
	last, due := time.Now(), 0.0
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			due = min(due+s.opts.Churn*now.Sub(last).Seconds(), s.opts.Churn) // at most 1 s of backlog
			last = now
		}
		for due >= 1 && ctx.Err() == nil {
			if s.intN(2) == 0 {
				s.replace(ctx)
				due -= 2
			} else {
				s.changeIdentity(ctx)
				due--
			}
		}
	}
}

func (s *simulator) intN(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.IntN(n)
}

// pick removes and returns a random live endpoint, or nil.
func (s *simulator) pick() *ciliumv2.CiliumEndpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.live) == 0 {
		return nil
	}
	i := s.rng.IntN(len(s.live))
	cep := s.live[i]
	s.live[i] = s.live[len(s.live)-1]
	s.live = s.live[:len(s.live)-1]
	return cep
}

func (s *simulator) replace(ctx context.Context) {
	if cep := s.pick(); cep != nil {
		k := key(cep.Namespace, cep.Name)
		s.track.expectGone(k, "churn")
		uid := cep.UID
		err := s.client.CiliumEndpoints(cep.Namespace).Delete(ctx, cep.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) {
			s.track.cancel(k)
			s.writeFailed(ctx, "delete", cep, err)
			s.mu.Lock()
			s.live = append(s.live, cep)
			s.mu.Unlock()
			return
		}
		s.cepDeletes.Add(1)
	}
	s.create(ctx, "churn")
}

func (s *simulator) changeIdentity(ctx context.Context) {
	cep := s.pick()
	if cep == nil {
		return
	}
	cur := cep.Status.Identity.ID
	nsIdx, curApp := int((cur-identityOf(0, 0))/100), int((cur-identityOf(0, 0))%100)
	app := s.intN(identitiesPerNamespace - 1)
	if app >= curApp {
		app++ // any identity but the current one
	}
	next := cep.DeepCopy()
	next.Status.Identity = &ciliumv2.EndpointIdentity{
		ID:     identityOf(nsIdx, app),
		Labels: []string{"k8s:io.kubernetes.pod.namespace=" + cep.Namespace, fmt.Sprintf("k8s:app=app-%d", app)},
	}
	next.Status.ServiceAccount = fmt.Sprintf("app-%d", app)
	k := key(cep.Namespace, cep.Name)
	s.track.expect(k, next.Status.Identity.ID, "churn")
	got, err := s.client.CiliumEndpoints(cep.Namespace).Update(ctx, next, metav1.UpdateOptions{})
	if err != nil {
		s.track.cancel(k)
		s.writeFailed(ctx, "update", cep, err)
		got = cep
	} else {
		s.cepUpdates.Add(1)
	}
	s.mu.Lock()
	s.live = append(s.live, got)
	s.mu.Unlock()
}

// watchSlices feeds every slice event to the tracker until ctx ends. It closes ready after the
// first list.
func (s *simulator) watchSlices(ctx context.Context, ready chan<- struct{}) {
	api := s.client.CiliumEndpointSlices()
	first := true
	for ctx.Err() == nil {
		list, err := api.List(ctx, metav1.ListOptions{})
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("list slices", "error", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		s.track.relist(list.Items, time.Now())
		if first {
			close(ready)
			first = false
		}
		rv := list.ResourceVersion
		for rv != "" && ctx.Err() == nil {
			w, err := api.Watch(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("watch slices", "error", err)
					sleep(ctx, time.Second)
				}
				break
			}
			rv = s.consume(ctx, w, rv)
			w.Stop()
		}
	}
}

// consume handles one watch until it ends. It returns the resource version to watch from next,
// or "" when the watch reported an error and a new list is needed.
func (s *simulator) consume(ctx context.Context, w watch.Interface, rv string) string {
	for {
		select {
		case <-ctx.Done():
			return rv
		case ev, ok := <-w.ResultChan():
			if !ok {
				return rv
			}
			now := time.Now()
			switch ev.Type {
			case watch.Added, watch.Modified, watch.Deleted:
				ces, ok := ev.Object.(*ciliumv2alpha1.CiliumEndpointSlice)
				if !ok {
					continue
				}
				s.track.observe(ces, ev.Type == watch.Deleted, now)
				rv = ces.ResourceVersion
			case watch.Bookmark:
				if m, ok := ev.Object.(metav1.Object); ok {
					rv = m.GetResourceVersion()
				}
			case watch.Error:
				s.log.Debug("slice watch error; listing again", "error", apierrors.FromObject(ev.Object))
				return ""
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// report prints a progress line every reportEvery until ctx ends.
func (s *simulator) report(ctx context.Context) {
	t := time.NewTicker(reportEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fmt.Fprintf(s.out, "t=%-4s %s\n", time.Since(s.start).Round(time.Second), s.figures(s.track.stats("all")))
		}
	}
}

// figures is the body of the progress and summary lines.
func (s *simulator) figures(p latency) string {
	st := s.ctrl.Status()
	return fmt.Sprintf("slices=%d endpoints=%d cep-changes=%d writes=%d (creates=%d updates=%d deletes=%d) echoes-suppressed=%d propagation %s",
		st.Slices, st.Endpoints, s.changes(), st.Creates+st.Updates+st.Deletes, st.Creates, st.Updates, st.Deletes,
		st.EchoesSuppressed, p)
}

func (s *simulator) changes() int64 {
	return s.cepCreates.Load() + s.cepUpdates.Load() + s.cepDeletes.Load()
}

func (s *simulator) summary() {
	st := s.ctrl.Status()
	writes := st.Creates + st.Updates + st.Deletes
	perChange := 0.0
	if n := s.changes(); n > 0 {
		perChange = float64(writes) / float64(n)
	}
	fmt.Fprintf(s.out, "summary: ran=%s %s writes/change=%.3f no-op-syncs=%d conflicts=%d cep-writes(creates=%d updates=%d deletes=%d errors=%d) unpropagated=%d\n",
		time.Since(s.start).Round(time.Millisecond), s.figures(s.track.stats("all")), perChange, st.NoOpSyncs, st.Conflicts,
		s.cepCreates.Load(), s.cepUpdates.Load(), s.cepDeletes.Load(), s.cepErrors.Load(), s.track.pendingCount())
	for _, phase := range []string{"seed", "churn"} {
		fmt.Fprintf(s.out, "summary: %-5s propagation %s\n", phase, s.track.stats(phase))
	}
}

// tracker matches endpoint writes with the first slice event that carries them. It is safe for
// concurrent use.
type tracker struct {
	mu      sync.Mutex
	rng     *rand.Rand
	pending map[string]change           // endpoint key → change not yet seen in a slice
	slices  map[string]map[string]int64 // slice name → endpoint key → identity, as last seen
	in      map[string]int              // endpoint key → number of slices listing it
	samples map[string]*reservoir       // phase ("all", "seed", "churn") → latencies
}

type change struct {
	identity int64 // 0: the endpoint was deleted
	at       time.Time
	phase    string
}

func newTracker() *tracker {
	return &tracker{
		rng:     rand.New(rand.NewPCG(1, 2)),
		pending: map[string]change{},
		slices:  map[string]map[string]int64{},
		in:      map[string]int{},
		samples: map[string]*reservoir{"all": {}, "seed": {}, "churn": {}},
	}
}

// expect records that endpoint k is about to be written with identity id. A change not yet
// seen is superseded.
func (t *tracker) expect(k string, id int64, phase string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending[k] = change{identity: id, at: time.Now(), phase: phase}
}

// expectGone records that endpoint k is about to be deleted. An endpoint no slice lists yet is
// not tracked: there is nothing to propagate.
func (t *tracker) expectGone(k, phase string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.in[k] == 0 {
		delete(t.pending, k)
		return
	}
	t.pending[k] = change{at: time.Now(), phase: phase}
}

// cancel forgets the change of a write that failed.
func (t *tracker) cancel(k string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.pending, k)
}

func (t *tracker) pendingCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}

// relist replaces the known slices with a full list.
func (t *tracker) relist(items []ciliumv2alpha1.CiliumEndpointSlice, now time.Time) {
	listed := map[string]bool{}
	for i := range items {
		listed[items[i].Name] = true
		t.observe(&items[i], false, now)
	}
	t.mu.Lock()
	var gone []string
	for name := range t.slices {
		if !listed[name] {
			gone = append(gone, name)
		}
	}
	t.mu.Unlock()
	for _, name := range gone {
		t.observe(&ciliumv2alpha1.CiliumEndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: name}}, true, now)
	}
}

// observe takes in one slice event seen at now.
func (t *tracker) observe(ces *ciliumv2alpha1.CiliumEndpointSlice, deleted bool, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.slices[ces.Name]
	cur := map[string]int64{}
	if !deleted {
		for _, ep := range ces.Endpoints {
			cur[key(ces.Namespace, ep.Name)] = ep.IdentityID
		}
	}
	for k, id := range cur {
		if _, ok := old[k]; !ok {
			t.in[k]++
		}
		if c, ok := t.pending[k]; ok && c.identity != 0 && c.identity == id {
			t.record(c, now)
			delete(t.pending, k)
		}
	}
	for k := range old {
		if _, ok := cur[k]; ok {
			continue
		}
		if t.in[k]--; t.in[k] > 0 {
			continue
		}
		delete(t.in, k)
		if c, ok := t.pending[k]; ok && c.identity == 0 {
			t.record(c, now)
			delete(t.pending, k)
		}
	}
	if deleted {
		delete(t.slices, ces.Name)
	} else {
		t.slices[ces.Name] = cur
	}
}

// record adds a propagation sample. t.mu is held.
func (t *tracker) record(c change, now time.Time) {
	d := now.Sub(c.at)
	t.samples["all"].add(d, t.rng)
	if r := t.samples[c.phase]; r != nil {
		r.add(d, t.rng)
	}
}

func (t *tracker) stats(phase string) latency {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.samples[phase].latency()
}

// reservoir keeps a uniform sample of at most maxSamples latencies, their count and maximum.
type reservoir struct {
	n       int64
	max     time.Duration
	samples []time.Duration
}

func (r *reservoir) add(d time.Duration, rng *rand.Rand) {
	r.n++
	r.max = max(r.max, d)
	if len(r.samples) < maxSamples {
		r.samples = append(r.samples, d)
	} else if i := rng.Int64N(r.n); i < maxSamples {
		r.samples[i] = d
	}
}

// latency summarises a reservoir.
type latency struct {
	n             int64
	p50, p99, max time.Duration
}

func (r *reservoir) latency() latency {
	l := latency{n: r.n, max: r.max}
	if len(r.samples) == 0 {
		return l
	}
	s := slices.Clone(r.samples)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	l.p50, l.p99 = at(0.50), at(0.99)
	return l
}

func (l latency) String() string {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }
	return fmt.Sprintf("p50=%sms p99=%sms max=%sms (n=%d)", ms(l.p50), ms(l.p99), ms(l.max), l.n)
}
