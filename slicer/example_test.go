package slicer_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/ceskit/ceskit/slicer"
	"github.com/ceskit/ceskit/slicer/ciliumv2"
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

// Run the controller against a cluster: it keeps every endpoint in exactly one slice.
func ExampleController_Run() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client, err := slicer.NewClient(restConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	ctl, err := slicer.New(client, slicer.Config{MaxEndpointsPerSlice: 50, PriorityNamespaces: []string{"kube-system"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	done := make(chan error, 1)
	go func() { done <- ctl.Run(ctx) }()

	cep := &ciliumv2.CiliumEndpoint{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "default"},
		Status: ciliumv2.EndpointStatus{
			Identity:   &ciliumv2.EndpointIdentity{ID: 4242},
			Networking: &ciliumv2.EndpointNetworking{Addressing: ciliumv2.AddressPairList{{IPV4: "10.0.0.7"}}, NodeIP: "192.168.0.1"},
		},
	}
	if _, err := client.CiliumEndpoints("default").Create(ctx, cep, metav1.CreateOptions{}); err != nil {
		fmt.Println(err)
		return
	}
	for range 500 {
		list, err := client.CiliumEndpointSlices().List(ctx, metav1.ListOptions{})
		if err == nil && len(list.Items) == 1 && len(list.Items[0].Endpoints) == 1 {
			s := list.Items[0]
			fmt.Printf("slice in namespace %s holds %s with identity %d\n", s.Namespace, s.Endpoints[0].Name, s.Endpoints[0].IdentityID)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = client.CiliumEndpoints("default").Delete(ctx, "web-0", metav1.DeleteOptions{})
	for ctl.Status().Slices != 0 {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	fmt.Println("run:", <-done)
	// Output:
	// slice in namespace default holds web-0 with identity 4242
	// run: <nil>
}

// Shadow mode, for managed AKS where Cilium's operator owns the slices: compute, compare, write
// nothing.
func ExampleController_Diff() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client, err := slicer.NewClient(restConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	cep := &ciliumv2.CiliumEndpoint{
		ObjectMeta: metav1.ObjectMeta{Name: "api-0", Namespace: "default"},
		Status:     ciliumv2.EndpointStatus{Identity: &ciliumv2.EndpointIdentity{ID: 777}},
	}
	if _, err := client.CiliumEndpoints("default").Create(ctx, cep, metav1.CreateOptions{}); err != nil {
		fmt.Println(err)
		return
	}
	defer client.CiliumEndpoints("default").Delete(context.Background(), "api-0", metav1.DeleteOptions{})
	ctl, err := slicer.New(client, slicer.Config{Shadow: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	done := make(chan error, 1)
	go func() { done <- ctl.Run(ctx) }()
	for len(ctl.Diff()) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	d := ctl.Diff()[0]
	fmt.Println(d.Op, d.Namespace, d.Added)
	fmt.Println("writes:", ctl.Status().Creates+ctl.Status().Updates+ctl.Status().Deletes)
	cancel()
	<-done
	// Output:
	// create default [api-0]
	// writes: 0
}

// Cilium's `ces-rate-limits` option drops in as it is.
func ExampleParseRateLimits() {
	steps, err := slicer.ParseRateLimits(`[{"nodes":0,"limit":10,"burst":20},{"nodes":100,"limit":50,"burst":100}]`)
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := slicer.Config{RateLimits: steps}
	fmt.Println(cfg.Validate(), steps[1].Nodes, steps[1].Limit, steps[1].Burst)
	// Output: <nil> 100 50 100
}

// Validate names the field and the value.
func ExampleConfig_Validate() {
	err := slicer.Config{MaxEndpointsPerSlice: 5000}.Validate()
	fmt.Println(err)
	fmt.Println(errors.Is(err, slicer.ErrInvalidConfig))
	// Output:
	// invalid slicer config: MaxEndpointsPerSlice=5000: must be between 1 and 1000
	// true
}

// A CiliumEndpoint becomes the slim entry a slice carries; malformed ones are refused with the
// field and value.
func ExampleCoreEndpointFromCEP() {
	cep := &ciliumv2.CiliumEndpoint{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "shop"},
		Status: ciliumv2.EndpointStatus{
			Identity:   &ciliumv2.EndpointIdentity{ID: 4242},
			Networking: &ciliumv2.EndpointNetworking{Addressing: ciliumv2.AddressPairList{{IPV4: "10.0.0.300"}}},
		},
	}
	_, _, err := slicer.CoreEndpointFromCEP(cep)
	fmt.Println(err)
	cep.Status.Networking.Addressing[0].IPV4 = "10.0.0.30"
	core, ready, err := slicer.CoreEndpointFromCEP(cep)
	fmt.Println(core.Name, core.IdentityID, ready, err)
	// Output:
	// invalid endpoint shop/web-0: status.networking.addressing[0].ipv4="10.0.0.300": not an IPv4 address
	// web-0 4242 true <nil>
}

// The CRDs are embedded; InstallCRDs puts them on a cluster without Cilium.
func ExampleCRDs() {
	crds, err := slicer.CRDs()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, c := range crds {
		fmt.Println(c.Name, c.Spec.Scope, c.Spec.Names.ShortNames)
	}
	// Output:
	// ciliumendpoints.cilium.io Namespaced [cep ciliumep]
	// ciliumendpointslices.cilium.io Cluster [ces]
}

// A node agent's view of every endpoint, fed by the slices and falling back to CiliumEndpoints
// when they are unavailable.
func ExampleWatcher() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client, err := slicer.NewClient(restConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	events := make(chan string, 10)
	w, err := slicer.NewWatcher(client, slicer.HandlerFuncs{
		Updated: func(old, ep *slicer.Endpoint) {
			if old == nil && ep.Key() == "default/cache-0" {
				events <- fmt.Sprintf("add %s identity %d", ep.Key(), ep.IdentityID)
			}
		},
	}, slicer.WatcherConfig{Source: slicer.SourceCiliumEndpoints}) // a cluster without slices
	if err != nil {
		fmt.Println(err)
		return
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	cep := &ciliumv2.CiliumEndpoint{
		ObjectMeta: metav1.ObjectMeta{Name: "cache-0", Namespace: "default"},
		Status: ciliumv2.EndpointStatus{
			Identity:   &ciliumv2.EndpointIdentity{ID: 5150},
			Networking: &ciliumv2.EndpointNetworking{Addressing: ciliumv2.AddressPairList{{IPV4: "10.9.0.5"}}},
		},
	}
	if _, err := client.CiliumEndpoints("default").Create(ctx, cep, metav1.CreateOptions{}); err != nil {
		fmt.Println(err)
		return
	}
	defer client.CiliumEndpoints("default").Delete(context.Background(), "cache-0", metav1.DeleteOptions{})
	fmt.Println(<-events)
	ep, ok := w.LookupIP(netip.MustParseAddr("10.9.0.5"))
	fmt.Println(ep.Name, ok, w.Status().Source)
	cancel()
	fmt.Println("run:", <-done)
	// Output:
	// add default/cache-0 identity 5150
	// cache-0 true ciliumendpoints
	// run: <nil>
}
