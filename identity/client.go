package identity

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/gentype"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/ceskit/ceskit/identity/ciliumv2"
)

// IdentityClient is the typed client for the cluster-scoped CiliumIdentities.
type IdentityClient = gentype.ClientWithList[*ciliumv2.CiliumIdentity, *ciliumv2.CiliumIdentityList]

// Client bundles the API clients the allocator and the garbage collector need: a typed client for
// cilium.io/v2 CiliumIdentities, the core clientset (coordination.k8s.io Leases hold the
// allocation claims and holder records) and a dynamic client that reads CiliumEndpoints and
// CiliumEndpointSlices as references without importing their types. It is safe for concurrent
// use.
type Client struct {
	// Kube is the core Kubernetes clientset.
	Kube kubernetes.Interface
	// Dynamic reads the CiliumEndpoints and CiliumEndpointSlices that reference identities.
	Dynamic dynamic.Interface

	v2    rest.Interface
	codec runtime.ParameterCodec
}

// NewClient builds a Client from a REST config. When cfg.QPS is 0, NewClient disables
// client-go's client-side limit (5 QPS by default): allocation is latency-critical (a pod waits
// for its identity) and the garbage collector charges its own limiter per write
// ([GCConfig.WriteQPS]). Set cfg.QPS to keep a client-side limit as well.
func NewClient(cfg *rest.Config) (*Client, error) {
	if cfg == nil {
		return nil, fmt.Errorf("new identity client: rest config is nil")
	}
	c := rest.CopyConfig(cfg)
	if c.QPS == 0 && c.RateLimiter == nil {
		c.QPS = -1
	}
	kube, err := kubernetes.NewForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("new kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("new dynamic client: %w", err)
	}
	scheme := runtime.NewScheme()
	if err := ciliumv2.AddToScheme(scheme); err != nil {
		return nil, err
	}
	codecs := serializer.NewCodecFactory(scheme)
	rc := rest.CopyConfig(c)
	gv := ciliumv2.SchemeGroupVersion
	rc.GroupVersion = &gv
	rc.APIPath = "/apis"
	rc.ContentType = runtime.ContentTypeJSON
	rc.NegotiatedSerializer = codecs.WithoutConversion()
	if rc.UserAgent == "" {
		rc.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	v2, err := rest.RESTClientFor(rc)
	if err != nil {
		return nil, fmt.Errorf("new %s client: %w", gv, err)
	}
	return &Client{Kube: kube, Dynamic: dyn, v2: v2, codec: runtime.NewParameterCodec(scheme)}, nil
}

// CiliumIdentities returns a client for CiliumIdentities.
func (c *Client) CiliumIdentities() *IdentityClient {
	return gentype.NewClientWithList[*ciliumv2.CiliumIdentity, *ciliumv2.CiliumIdentityList](
		"ciliumidentities", c.v2, c.codec, "",
		func() *ciliumv2.CiliumIdentity { return &ciliumv2.CiliumIdentity{} },
		func() *ciliumv2.CiliumIdentityList { return &ciliumv2.CiliumIdentityList{} })
}

// NewIdentityInformer returns a shared informer over all CiliumIdentities with no resync period.
// The caller adds indexers and handlers and runs it.
func (c *Client) NewIdentityInformer() cache.SharedIndexInformer {
	api := c.CiliumIdentities()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return api.List(ctx, o)
		},
		WatchFuncWithContext: api.Watch,
	}
	return cache.NewSharedIndexInformer(lw, &ciliumv2.CiliumIdentity{}, 0, cache.Indexers{})
}
