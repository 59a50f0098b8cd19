package identity_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/ceskit/ceskit/identity"
)

// restConfig stands in for your cluster's config (clientcmd.BuildConfigFromFlags, or
// rest.InClusterConfig). In these examples it is the real kube-apiserver that TestMain starts.
// Without the control-plane binaries (make controlplane) the examples that need it fail, since
// an example cannot skip; NewClient then reports the missing config.
func restConfig() *rest.Config {
	if apiConfig == nil {
		fmt.Fprintln(os.Stderr, "example needs the control plane:", noAPI)
		return nil
	}
	return rest.CopyConfig(apiConfig)
}

// exampleNamespace creates a namespace of its own for an example's claim Leases and holder
// records (kube-system in a real cluster). The returned cleanup, deferred before anything the
// example starts so that it runs after those have stopped, deletes the CiliumIdentities of the
// pods of podNamespace, the Leases and the namespace, and prints what fails, which fails the
// example.
func exampleNamespace(ctx context.Context, client *identity.Client, podNamespace string) (string, func(), error) {
	namespaces := client.Kube.CoreV1().Namespaces()
	ns, err := namespaces.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "example-ids-"}}, metav1.CreateOptions{})
	if err != nil {
		return "", nil, err
	}
	cleanup := func() {
		ctx := context.Background()
		if err := client.CiliumIdentities().DeleteCollection(ctx, metav1.DeleteOptions{},
			metav1.ListOptions{LabelSelector: identity.LabelNamespace + "=" + podNamespace}); err != nil {
			fmt.Println("cleanup:", err)
		}
		if err := client.Kube.CoordinationV1().Leases(ns.Name).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
			fmt.Println("cleanup:", err)
		}
		// The test control plane runs no namespace controller, which would finalize the
		// namespace once empty: do it here, so that the namespace goes away instead of staying
		// terminating.
		if err := namespaces.Delete(ctx, ns.Name, metav1.DeleteOptions{}); err != nil {
			fmt.Println("cleanup:", err)
			return
		}
		cur, err := namespaces.Get(ctx, ns.Name, metav1.GetOptions{})
		if err != nil {
			fmt.Println("cleanup:", err)
			return
		}
		cur.Spec.Finalizers = nil
		if _, err := namespaces.Finalize(ctx, cur, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			fmt.Println("cleanup:", err)
		}
	}
	return ns.Name, cleanup, nil
}

// start runs run (a CRDAllocator's or a GC's Run, which blocks until its context ends) in a
// goroutine and returns once synced reports true, or with Run's error if Run returns first.
// stop cancels Run, waits for it to return and returns its result; calling it again returns the
// same.
func start(ctx context.Context, run func(context.Context) error, synced func() bool) (stop func() error, err error) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	stop = sync.OnceValue(func() error {
		cancel()
		return <-done
	})
	deadline := time.After(time.Minute)
	for !synced() {
		select {
		case err := <-done:
			cancel()
			return nil, err
		case <-deadline:
			return nil, fmt.Errorf("not synced after a minute (Run: %v)", stop())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return stop, nil
}

// Allocate the identity of a pod's labels. Identities are picked at random in Range, so the
// number differs from run to run; what does not is that every allocator, on any node, gets the
// same one for the same labels.
func ExampleCRDAllocator_Allocate() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client, err := identity.NewClient(restConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	ns, cleanup, err := exampleNamespace(ctx, client, "shop")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cleanup()

	// One allocator per node, named by the node so it finds its identities again after a
	// restart.
	newAllocator := func(node string) (*identity.CRDAllocator, func() error, error) {
		a, err := identity.NewCRDAllocator(client, identity.Config{
			Holder:    node,
			Namespace: ns,
			Range:     identity.Range{Min: 7000, Max: 7099},
		})
		if err != nil {
			return nil, nil, err
		}
		stop, err := start(ctx, a.Run, a.HasSynced)
		return a, stop, err
	}
	a, stopA, err := newAllocator("node-a")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stopA()
	b, stopB, err := newAllocator("node-b")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stopB()

	web, err := identity.PodLabels("shop", map[string]string{"app": "web", "pod-template-hash": "5d9f7c"}, nil, "web", "default")
	if err != nil {
		fmt.Println(err)
		return
	}
	id, err := a.Allocate(ctx, web)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("identity in %s: %v, scope %s\n", a.Config().Range, a.Config().Range.Contains(id), id.Scope())

	// Another node's allocator, racing or not, gets the same identity.
	other, err := b.Allocate(ctx, web)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("node-b got the same identity:", other == id)

	// Lookup reads the cache, which the allocator's informer fills.
	for range 3000 {
		if lbls, ok := b.Lookup(id); ok {
			fmt.Println("labels:", lbls) // only the identity-relevant ones
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Every Allocate takes a reference; the last Release drops the identity from the node's
	// holder record, and the garbage collector deletes it once no node holds it.
	again, _ := a.Allocate(ctx, web)
	fmt.Println("same identity again:", again == id)
	for _, al := range []*identity.CRDAllocator{a, a, b} {
		released, err := al.Release(ctx, id)
		fmt.Println("released:", released, err)
	}
	fmt.Println("stop:", stopA(), stopB())
	// Output:
	// identity in 7000-7099: true, scope global
	// node-b got the same identity: true
	// labels: k8s:app=web,k8s:io.cilium.k8s.policy.cluster=default,k8s:io.cilium.k8s.policy.serviceaccount=web,k8s:io.kubernetes.pod.namespace=shop
	// same identity again: true
	// released: false <nil>
	// released: true <nil>
	// released: true <nil>
	// stop: <nil> <nil>
}

// Reserved labels map to Cilium's reserved identities and CIDR or FQDN labels to node-local
// identities: neither reaches the API server, nor needs the allocator to run or be synced.
func ExampleCRDAllocator_Allocate_reserved() {
	ctx := context.Background()
	// This client points nowhere: nothing below makes an API call.
	client, err := identity.NewClient(&rest.Config{Host: "https://kube-apiserver.invalid"})
	if err != nil {
		fmt.Println(err)
		return
	}
	a, err := identity.NewCRDAllocator(client, identity.Config{Holder: "node-a"})
	if err != nil {
		fmt.Println(err)
		return
	}
	host, _ := identity.ParseLabels("reserved:host")
	id, err := a.Allocate(ctx, host)
	fmt.Println("reserved:host ->", id, err)
	world, _ := a.Lookup(identity.ReservedWorld)
	fmt.Println(identity.ReservedWorld, "->", world)

	cidr, _ := identity.ParseLabels("cidr:10.0.0.0/8", "reserved:world")
	id, err = a.Allocate(ctx, cidr)
	fmt.Println("cidr:10.0.0.0/8 ->", id, id.Scope(), err)
	released, err := a.Release(ctx, id)
	fmt.Println("released:", released, err)
	// Output:
	// reserved:host -> 1 <nil>
	// 2 -> reserved:world
	// cidr:10.0.0.0/8 -> 16777217 local <nil>
	// released: true <nil>
}

// Collect identities no node holds and no endpoint references: a pass marks an unused
// identity, and a pass at least GracePeriod later deletes it if it is still unused. Run keeps
// passing every Interval; RunOnce passes now.
func ExampleGC_RunOnce() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client, err := identity.NewClient(restConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	ns, cleanup, err := exampleNamespace(ctx, client, "blog")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cleanup()

	a, err := identity.NewCRDAllocator(client, identity.Config{Holder: "node-a", Namespace: ns})
	if err != nil {
		fmt.Println(err)
		return
	}
	g, err := identity.NewGC(client, identity.GCConfig{
		Namespace:   ns, // where the allocators keep their holder records
		Interval:    time.Hour,
		MinAge:      2 * time.Second, // time enough for the holder record to list a new identity
		GracePeriod: 100 * time.Millisecond,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	stopA, err := start(ctx, a.Run, a.HasSynced)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stopA()
	stopGC, err := start(ctx, g.Run, g.HasSynced)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stopGC()

	var ids []identity.NumericIdentity
	for _, app := range []string{"web", "api"} {
		lbls, _ := identity.PodLabels("blog", map[string]string{"app": app}, nil, "", "default")
		id, err := a.Allocate(ctx, lbls)
		if err != nil {
			fmt.Println(err)
			return
		}
		ids = append(ids, id)
	}
	web, api := ids[0], ids[1]
	if _, err := a.Release(ctx, web); err != nil { // api stays held
		fmt.Println(err)
		return
	}

	var total identity.GCResult
	for range 300 {
		res, err := g.RunOnce(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		total.Alive = res.Alive
		total.Marked += res.Marked
		total.Deleted += res.Deleted
		if total.Deleted > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Printf("last pass: alive %d; in all: marked %d, deleted %d\n", total.Alive, total.Marked, total.Deleted)
	_, err = client.CiliumIdentities().Get(ctx, web.String(), metav1.GetOptions{})
	fmt.Println("web's identity deleted:", apierrors.IsNotFound(err))
	_, err = client.CiliumIdentities().Get(ctx, api.String(), metav1.GetOptions{})
	fmt.Println("api's identity kept:", err == nil)
	fmt.Println("stop:", stopGC(), stopA())
	// Output:
	// last pass: alive 1; in all: marked 1, deleted 1
	// web's identity deleted: true
	// api's identity kept: true
	// stop: <nil> <nil>
}

// When a namespace's labels change, every identity of its pods changes too. One operator
// creates the new identities, once each, before the nodes ask for them; the nodes then find them
// in their caches instead of all racing to create them.
func ExampleCRDAllocator_RelabelNamespace() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client, err := identity.NewClient(restConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	ns, cleanup, err := exampleNamespace(ctx, client, "bank")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cleanup()

	op, err := identity.NewCRDAllocator(client, identity.Config{Holder: "operator", Namespace: ns})
	if err != nil {
		fmt.Println(err)
		return
	}
	stop, err := start(ctx, op.Run, op.HasSynced)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()

	// Two apps in namespace bank, labelled team=a.
	pod := func(app string, nsLabels map[string]string) identity.Labels {
		l, _ := identity.PodLabels("bank", map[string]string{"app": app}, nsLabels, "", "default")
		return l
	}
	teamA := map[string]string{"team": "a"}
	var old []identity.NumericIdentity
	for _, app := range []string{"ledger", "vault"} {
		id, err := op.Allocate(ctx, pod(app, teamA))
		if err != nil {
			fmt.Println(err)
			return
		}
		old = append(old, id)
	}
	// RelabelNamespace works from the cache: wait until it holds both.
	for range 3000 {
		_, ok0 := op.Lookup(old[0])
		_, ok1 := op.Lookup(old[1])
		if ok0 && ok1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The namespace is relabelled team=b.
	teamB := map[string]string{"team": "b"}
	res, err := op.RelabelNamespace(ctx, "bank", teamB)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("moved %d, created %d\n", len(res.Moved), res.Created)

	// Allocating the relabelled pod's labels (on any node) returns the identity the relabel
	// created.
	id, err := op.Allocate(ctx, pod("ledger", teamB))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("ledger's new identity:", id == res.Moved[old[0]])

	// Running it again (a retry, a second replica) finds the new identities and creates none.
	res, err = op.RelabelNamespace(ctx, "bank", teamB)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("again: moved %d, created %d\n", len(res.Moved), res.Created)
	fmt.Println("stop:", stop())
	// Output:
	// moved 2, created 2
	// ledger's new identity: true
	// again: moved 2, created 0
	// stop: <nil>
}
