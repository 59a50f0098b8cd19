package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ceskit/ceskit/identity"
	"github.com/ceskit/ceskit/slicer"
	"github.com/ceskit/ceskit/slicer/ciliumv2"
)

// simOptions are the simulator's settings (--nodes, --pods, --namespaces, --churn).
type simOptions struct {
	// Pods is the number of CiliumEndpoints kept alive.
	Pods int
	// Namespaces the endpoints spread over, round robin.
	Namespaces int
	// Nodes is the number of Node objects; each endpoint runs on a random one.
	Nodes int
	// Churn is endpoint changes per second after seeding.
	Churn float64
}

// Simulation parameters.
const (
	appsPerNamespace = 8                     // "app" label values per namespace
	seedWorkers      = 16                    // concurrent creates while seeding
	churnWorkers     = 8                     // churn steps in flight
	churnTick        = 20 * time.Millisecond // period of the churn loop
	rolloutShare     = 0.05                  // share of churn steps that are rollouts
	simLabel         = "ceskit.io/simulated"
)

// simulator plays the part of Cilium's agents and of the workloads: it creates Namespaces, Nodes
// and CiliumEndpoints whose identities it allocates through the CRD allocator, then churns them:
// pods are replaced, relabelled (a new identity) and rolled out (every pod of one app gets a new
// version label, hence a new identity, and the old identity becomes garbage). It tells the
// tracker about every write. Its methods are safe for concurrent use.
type simulator struct {
	client *slicer.Client
	alloc  identity.Allocator
	opts   simOptions
	log    *slog.Logger
	track  *tracker

	cepCreates, cepUpdates, cepDeletes, cepErrors, rollouts atomic.Int64
	seeded                                                  atomic.Int64 // pods created while seeding

	mu       sync.Mutex // guards the fields below
	rng      *rand.Rand
	live     []*simPod
	versions map[appKey]int
	nextPod  int
}

// appKey is one app of one namespace.
type appKey struct{ ns, app int }

// simPod is a live simulated pod.
type simPod struct {
	cep      *ciliumv2.CiliumEndpoint
	app      appKey
	version  int
	identity identity.NumericIdentity
}

func newSimulator(client *slicer.Client, alloc identity.Allocator, opts simOptions, track *tracker, logger *slog.Logger) *simulator {
	return &simulator{
		client:   client,
		alloc:    alloc,
		opts:     opts,
		log:      logger.With("component", "simulator"),
		track:    track,
		rng:      rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		versions: map[appKey]int{},
	}
}

func nsName(i int) string   { return fmt.Sprintf("sim-%03d", i) }
func nodeName(i int) string { return fmt.Sprintf("sim-node-%03d", i) }
func nodeIP(i int) string   { return fmt.Sprintf("192.168.%d.%d", i/250, i%250+1) }

// createInfra creates the simulated Namespaces and Nodes.
func (s *simulator) createInfra(ctx context.Context) error {
	for i := range s.opts.Namespaces {
		if err := createNamespace(ctx, s.client, nsName(i)); err != nil {
			return err
		}
	}
	for i := range s.opts.Nodes {
		if err := createNode(ctx, s.client, nodeName(i), nodeIP(i)); err != nil {
			return err
		}
	}
	return nil
}

func createNamespace(ctx context.Context, client *slicer.Client, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{simLabel: "true"}}}
	if _, err := client.Kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

// createNode creates a Node with one InternalIP address.
func createNode(ctx context.Context, client *slicer.Client, name, ip string) error {
	api := client.Kube.CoreV1().Nodes()
	addrs := []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}, {Type: corev1.NodeHostName, Address: name}}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{simLabel: "true", "kubernetes.io/hostname": name}},
		Status:     corev1.NodeStatus{Addresses: addrs},
	}
	got, err := api.Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create node %s: %w", name, err)
	}
	if len(got.Status.Addresses) == 0 { // status dropped on create
		got.Status.Addresses = addrs
		if _, err := api.UpdateStatus(ctx, got, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("set addresses of node %s: %w", name, err)
		}
	}
	return nil
}

// podLabels are the identity labels of a pod of app k in version v of namespace ns.
func podLabels(ns, app string, version int) (identity.Labels, error) {
	pod := map[string]string{"app": app}
	if version > 0 {
		pod["version"] = fmt.Sprintf("v%d", version)
	}
	return identity.PodLabels(ns, pod, map[string]string{"kubernetes.io/metadata.name": ns}, app, "default")
}

func appName(i int) string { return fmt.Sprintf("app-%d", i) }

func key(ns, name string) string { return ns + "/" + name }

// endpointIPv4 is the address of simulated pod n: 10.16.0.0/10 onwards, never .0.
func endpointIPv4(n int) string {
	host := n + 1
	return fmt.Sprintf("10.%d.%d.%d", 16+host>>16&0x3f, host>>8&0xff, host&0xff)
}

// buildCEP returns the CiliumEndpoint of a pod.
func buildCEP(ns, name string, id identity.NumericIdentity, lbls identity.Labels, ipv4, ipv6, nodeIP, sa string, epID int64) *ciliumv2.CiliumEndpoint {
	return &ciliumv2.CiliumEndpoint{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Status: ciliumv2.EndpointStatus{
			ID:       epID,
			Identity: endpointIdentity(id, lbls),
			Networking: &ciliumv2.EndpointNetworking{
				Addressing: ciliumv2.AddressPairList{{IPV4: ipv4, IPV6: ipv6}},
				NodeIP:     nodeIP,
			},
			State:          "ready",
			NamedPorts:     ciliumv2.NamedPorts{{Name: "http", Port: 8080, Protocol: "TCP"}},
			ServiceAccount: sa,
		},
	}
}

// endpointIdentity is the identity part of a CiliumEndpoint's status.
func endpointIdentity(id identity.NumericIdentity, lbls identity.Labels) *ciliumv2.EndpointIdentity {
	strs := make([]string, len(lbls))
	for i, l := range lbls {
		strs[i] = l.String()
	}
	return &ciliumv2.EndpointIdentity{ID: int64(id), Labels: strs}
}

// create allocates the identity of a new pod of app a (at the app's current version), writes its
// endpoint and tracks its propagation.
func (s *simulator) create(ctx context.Context, a appKey, phase string) bool {
	s.mu.Lock()
	n := s.nextPod
	s.nextPod++
	version := s.versions[a]
	node := s.rng.IntN(s.opts.Nodes)
	s.mu.Unlock()

	ns, app := nsName(a.ns), appName(a.app)
	lbls, err := podLabels(ns, app, version)
	if err != nil {
		s.failed(ctx, "labels", key(ns, "?"), err)
		return false
	}
	id, err := s.alloc.Allocate(ctx, lbls)
	if err != nil {
		s.failed(ctx, "allocate identity", key(ns, "?"), err)
		return false
	}
	host := n + 1
	cep := buildCEP(ns, fmt.Sprintf("pod-%07d", n), id, lbls, endpointIPv4(n), fmt.Sprintf("fd00::%x:%x", host>>16, host&0xffff),
		nodeIP(node), app, int64(n%65535+1))
	k := key(ns, cep.Name)
	s.track.expect(k, int64(id), phase)
	got, err := s.client.CiliumEndpoints(ns).Create(ctx, cep, metav1.CreateOptions{})
	if err != nil {
		s.track.cancel(k)
		s.release(ctx, id)
		s.failed(ctx, "create", k, err)
		return false
	}
	s.cepCreates.Add(1)
	s.mu.Lock()
	s.live = append(s.live, &simPod{cep: got, app: a, version: version, identity: id})
	s.mu.Unlock()
	return true
}

// remove deletes a pod that is no longer in s.live and releases its identity. On failure the pod
// goes back to s.live.
func (s *simulator) remove(ctx context.Context, p *simPod, phase string) bool {
	k := key(p.cep.Namespace, p.cep.Name)
	s.track.expectGone(k, phase)
	uid := p.cep.UID
	err := s.client.CiliumEndpoints(p.cep.Namespace).Delete(ctx, p.cep.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) {
		s.track.cancel(k)
		s.failed(ctx, "delete", k, err)
		s.putBack(p)
		return false
	}
	s.cepDeletes.Add(1)
	s.release(ctx, p.identity)
	return true
}

func (s *simulator) release(ctx context.Context, id identity.NumericIdentity) {
	if _, err := s.alloc.Release(ctx, id); err != nil && ctx.Err() == nil {
		s.log.Warn("release identity", "identity", uint32(id), "error", err)
	}
}

func (s *simulator) failed(ctx context.Context, op, k string, err error) {
	if ctx.Err() != nil {
		return
	}
	s.cepErrors.Add(1)
	s.log.Warn("simulated write failed", "op", op, "endpoint", k, "error", err)
}

func (s *simulator) putBack(p *simPod) {
	s.mu.Lock()
	s.live = append(s.live, p)
	s.mu.Unlock()
}

// seed creates the initial pods with a few concurrent writers, namespaces round robin.
func (s *simulator) seed(ctx context.Context) {
	// As in churn, a create that started completes.
	op := context.WithoutCancel(ctx)
	todo := make(chan appKey)
	var wg sync.WaitGroup
	for range seedWorkers {
		wg.Go(func() {
			for a := range todo {
				if s.create(op, a, phaseSeed) {
					s.seeded.Add(1)
				}
			}
		})
	}
	defer wg.Wait()
	defer close(todo)
	for i := range s.opts.Pods {
		a := appKey{ns: i % s.opts.Namespaces, app: s.intN(appsPerNamespace)}
		select {
		case todo <- a:
		case <-ctx.Done():
			return
		}
	}
}

// churn makes opts.Churn endpoint changes per second until ctx ends, with churnWorkers steps in
// flight: each step is a replacement (a delete and a create: two changes), a relabel (one), or
// now and then a rollout (two per pod of the app).
func (s *simulator) churn(ctx context.Context) {
	if s.opts.Churn <= 0 {
		<-ctx.Done()
		return
	}
	// A step, once started, completes: its writes do not see ctx end, so that what the
	// simulator believes alive is what exists.
	op := context.WithoutCancel(ctx)
	steps := make(chan int)
	var wg sync.WaitGroup
	for range churnWorkers {
		wg.Go(func() {
			for kind := range steps {
				switch kind {
				case stepRollout:
					s.rollout(op, ctx)
				case stepReplace:
					s.replace(op)
				default:
					s.relabel(op)
				}
			}
		})
	}
	defer wg.Wait()
	defer close(steps)

	rolloutCost := max(2, 2*float64(s.opts.Pods)/float64(s.opts.Namespaces*appsPerNamespace))
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
		for due >= 1 {
			kind, cost := stepRelabel, 1.0
			switch r := s.float(); {
			case r < rolloutShare:
				kind, cost = stepRollout, rolloutCost
			case r < (1+rolloutShare)/2:
				kind, cost = stepReplace, 2
			}
			select {
			case steps <- kind:
				due -= cost
			case <-ctx.Done():
				return
			}
		}
	}
}

// Churn steps.
const (
	stepRelabel = iota
	stepReplace
	stepRollout
)

func (s *simulator) intN(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.IntN(n)
}

func (s *simulator) float() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Float64()
}

// pick removes and returns a random live pod, or nil.
func (s *simulator) pick() *simPod {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.live) == 0 {
		return nil
	}
	i := s.rng.IntN(len(s.live))
	p := s.live[i]
	s.live[i] = s.live[len(s.live)-1]
	s.live = s.live[:len(s.live)-1]
	return p
}

// replace deletes a random pod and creates one of the same app.
func (s *simulator) replace(ctx context.Context) {
	p := s.pick()
	if p == nil {
		return
	}
	if s.remove(ctx, p, phaseChurn) {
		s.create(ctx, p.app, phaseChurn)
	}
}

// relabel moves a random pod to another app of its namespace: a new identity.
func (s *simulator) relabel(ctx context.Context) {
	p := s.pick()
	if p == nil {
		return
	}
	defer s.putBack(p)
	s.mu.Lock()
	next := appKey{ns: p.app.ns, app: s.rng.IntN(appsPerNamespace - 1)}
	if next.app >= p.app.app {
		next.app++ // any app but the current one
	}
	version := s.versions[next]
	s.mu.Unlock()

	ns, app := p.cep.Namespace, appName(next.app)
	k := key(ns, p.cep.Name)
	lbls, err := podLabels(ns, app, version)
	if err != nil {
		s.failed(ctx, "labels", k, err)
		return
	}
	id, err := s.alloc.Allocate(ctx, lbls)
	if err != nil {
		s.failed(ctx, "allocate identity", k, err)
		return
	}
	upd := p.cep.DeepCopy()
	upd.Status.Identity, upd.Status.ServiceAccount = endpointIdentity(id, lbls), app
	s.track.expect(k, int64(id), phaseChurn)
	got, err := s.client.CiliumEndpoints(ns).Update(ctx, upd, metav1.UpdateOptions{})
	if err != nil {
		s.track.cancel(k)
		s.release(ctx, id)
		s.failed(ctx, "update", k, err)
		return
	}
	s.cepUpdates.Add(1)
	s.release(ctx, p.identity)
	p.cep, p.app, p.version, p.identity = got, next, version, id
}

// rollout gives a random pod's app a new version and replaces every pod of the app: they get a
// new identity, and the old one loses its last user. It stops between pods when stop ends.
func (s *simulator) rollout(ctx, stop context.Context) {
	s.mu.Lock()
	if len(s.live) == 0 {
		s.mu.Unlock()
		return
	}
	a := s.live[s.rng.IntN(len(s.live))].app
	s.versions[a]++
	var old []*simPod
	kept := s.live[:0]
	for _, p := range s.live {
		if p.app == a {
			old = append(old, p)
		} else {
			kept = append(kept, p)
		}
	}
	clear(s.live[len(kept):])
	s.live = kept
	s.mu.Unlock()

	s.rollouts.Add(1)
	for _, p := range old {
		if stop.Err() != nil {
			s.putBack(p)
			continue
		}
		if s.remove(ctx, p, phaseChurn) {
			s.create(ctx, a, phaseChurn)
		}
	}
}

// livePods returns the number of live simulated pods.
func (s *simulator) livePods() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.live)
}

// changes is the number of endpoint writes so far.
func (s *simulator) changes() int64 {
	return s.cepCreates.Load() + s.cepUpdates.Load() + s.cepDeletes.Load()
}
