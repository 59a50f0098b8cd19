package slicer

import (
	"fmt"

	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/gentype"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/ceskit/ceskit/slicer/ciliumv2"
	"github.com/ceskit/ceskit/slicer/ciliumv2alpha1"
)

// EndpointClient is the typed client for CiliumEndpoints of one namespace (or all, with "").
type EndpointClient = gentype.ClientWithList[*ciliumv2.CiliumEndpoint, *ciliumv2.CiliumEndpointList]

// SliceClient is the typed client for the cluster-scoped CiliumEndpointSlices.
type SliceClient = gentype.ClientWithList[*ciliumv2alpha1.CiliumEndpointSlice, *ciliumv2alpha1.CiliumEndpointSliceList]

// Client bundles the API clients the slicer needs: the core Kubernetes clientset (Pods,
// Namespaces, Nodes) and typed clients for cilium.io/v2 CiliumEndpoints and cilium.io/v2alpha1
// CiliumEndpointSlices. It is safe for concurrent use.
type Client struct {
	// Kube is the core Kubernetes clientset.
	Kube kubernetes.Interface
	// Ext reads CustomResourceDefinitions, to tell a CRD that is being deleted.
	Ext apiextensionsclient.Interface

	v2, v2alpha1 rest.Interface
	codec        runtime.ParameterCodec
}

// NewClient builds a Client from a REST config.
//
// When cfg.QPS is 0, NewClient disables client-go's client-side limit (5 QPS by default): the
// [Controller] charges its own write limiter ([Config.WriteQPS]) per API write, and reads go to
// informers. Set cfg.QPS to keep a client-side limit as well.
func NewClient(cfg *rest.Config) (*Client, error) {
	if cfg == nil {
		return nil, fmt.Errorf("new client: rest config is nil")
	}
	c := rest.CopyConfig(cfg)
	if c.QPS == 0 && c.RateLimiter == nil {
		c.QPS = -1
	}
	kube, err := kubernetes.NewForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("new kubernetes client: %w", err)
	}
	ext, err := apiextensionsclient.NewForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("new apiextensions client: %w", err)
	}
	scheme := runtime.NewScheme()
	if err := ciliumv2.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := ciliumv2alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	codecs := serializer.NewCodecFactory(scheme)
	v2, err := restFor(c, ciliumv2.SchemeGroupVersion, codecs)
	if err != nil {
		return nil, err
	}
	v2alpha1, err := restFor(c, ciliumv2alpha1.SchemeGroupVersion, codecs)
	if err != nil {
		return nil, err
	}
	return &Client{Kube: kube, Ext: ext, v2: v2, v2alpha1: v2alpha1, codec: runtime.NewParameterCodec(scheme)}, nil
}

func restFor(cfg *rest.Config, gv schema.GroupVersion, codecs serializer.CodecFactory) (rest.Interface, error) {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &gv
	c.APIPath = "/apis"
	c.ContentType = runtime.ContentTypeJSON
	c.NegotiatedSerializer = codecs.WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("new %s client: %w", gv, err)
	}
	return rc, nil
}

// CiliumEndpoints returns a client for the CiliumEndpoints of namespace; "" means all namespaces
// (for List and Watch).
func (c *Client) CiliumEndpoints(namespace string) *EndpointClient {
	return gentype.NewClientWithList[*ciliumv2.CiliumEndpoint, *ciliumv2.CiliumEndpointList](
		"ciliumendpoints", c.v2, c.codec, namespace,
		func() *ciliumv2.CiliumEndpoint { return &ciliumv2.CiliumEndpoint{} },
		func() *ciliumv2.CiliumEndpointList { return &ciliumv2.CiliumEndpointList{} })
}

// CiliumEndpointSlices returns a client for CiliumEndpointSlices.
func (c *Client) CiliumEndpointSlices() *SliceClient {
	return gentype.NewClientWithList[*ciliumv2alpha1.CiliumEndpointSlice, *ciliumv2alpha1.CiliumEndpointSliceList](
		"ciliumendpointslices", c.v2alpha1, c.codec, "",
		func() *ciliumv2alpha1.CiliumEndpointSlice { return &ciliumv2alpha1.CiliumEndpointSlice{} },
		func() *ciliumv2alpha1.CiliumEndpointSliceList { return &ciliumv2alpha1.CiliumEndpointSliceList{} })
}

// NewEndpointInformer returns a shared informer over the CiliumEndpoints of namespace ("" means
// all), with no resync period. The caller runs it.
func (c *Client) NewEndpointInformer(namespace string) cache.SharedIndexInformer {
	api := c.CiliumEndpoints(namespace)
	return newInformer(&ciliumv2.CiliumEndpoint{}, api.List, api.Watch)
}

// NewSliceInformer returns a shared informer over all CiliumEndpointSlices, with no resync
// period. The caller runs it.
func (c *Client) NewSliceInformer() cache.SharedIndexInformer {
	api := c.CiliumEndpointSlices()
	return newInformer(&ciliumv2alpha1.CiliumEndpointSlice{}, api.List, api.Watch)
}
