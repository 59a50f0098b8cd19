package agent

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/gentype"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/ceskit/ceskit/internal/discovery"
	"github.com/ceskit/ceskit/policy/ciliumv2"
)

// policyClient reads cilium.io/v2 CiliumNetworkPolicies and CiliumClusterwideNetworkPolicies
// with the policy package's types.
type policyClient struct {
	rc    rest.Interface
	codec runtime.ParameterCodec
}

func newPolicyClient(cfg *rest.Config) (*policyClient, error) {
	scheme := runtime.NewScheme()
	if err := ciliumv2.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c := rest.CopyConfig(cfg)
	gv := ciliumv2.SchemeGroupVersion
	c.GroupVersion = &gv
	c.APIPath = "/apis"
	c.ContentType = runtime.ContentTypeJSON
	c.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("new %s client: %w", gv, err)
	}
	return &policyClient{rc: rc, codec: runtime.NewParameterCodec(scheme)}, nil
}

// cnps returns a client for the CiliumNetworkPolicies of namespace ("": all, for List and Watch).
func (c *policyClient) cnps(namespace string) *gentype.ClientWithList[*ciliumv2.CiliumNetworkPolicy, *ciliumv2.CiliumNetworkPolicyList] {
	return gentype.NewClientWithList[*ciliumv2.CiliumNetworkPolicy, *ciliumv2.CiliumNetworkPolicyList](
		resCNP, c.rc, c.codec, namespace,
		func() *ciliumv2.CiliumNetworkPolicy { return &ciliumv2.CiliumNetworkPolicy{} },
		func() *ciliumv2.CiliumNetworkPolicyList { return &ciliumv2.CiliumNetworkPolicyList{} })
}

func (c *policyClient) ccnps() *gentype.ClientWithList[*ciliumv2.CiliumClusterwideNetworkPolicy, *ciliumv2.CiliumClusterwideNetworkPolicyList] {
	return gentype.NewClientWithList[*ciliumv2.CiliumClusterwideNetworkPolicy, *ciliumv2.CiliumClusterwideNetworkPolicyList](
		resCCNP, c.rc, c.codec, "",
		func() *ciliumv2.CiliumClusterwideNetworkPolicy { return &ciliumv2.CiliumClusterwideNetworkPolicy{} },
		func() *ciliumv2.CiliumClusterwideNetworkPolicyList {
			return &ciliumv2.CiliumClusterwideNetworkPolicyList{}
		})
}

// informer builds a shared informer without resync from a typed list and watch.
func informer[T runtime.Object, L runtime.Object](
	example T,
	list func(context.Context, metav1.ListOptions) (L, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error),
) cache.SharedIndexInformer {
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return list(ctx, o)
		},
		WatchFuncWithContext: watchFn,
	}
	return cache.NewSharedIndexInformer(lw, example, 0, cache.Indexers{})
}

func nodeInformer(kube kubernetes.Interface) cache.SharedIndexInformer {
	api := kube.CoreV1().Nodes()
	return informer(&corev1.Node{}, api.List, api.Watch)
}

func networkPolicyInformer(kube kubernetes.Interface) cache.SharedIndexInformer {
	api := kube.NetworkingV1().NetworkPolicies("")
	return informer(&networkingv1.NetworkPolicy{}, api.List, api.Watch)
}

// Resources the agent reads, as RBAC names them.
const (
	resCES        = "ciliumendpointslices"
	resCEP        = "ciliumendpoints"
	resIdentities = "ciliumidentities"
	resCNP        = "ciliumnetworkpolicies"
	resCCNP       = "ciliumclusterwidenetworkpolicies"
	resNP         = "networkpolicies"
	resNodes      = "nodes"
)

// Access is one permission the agent needs: verbs on a resource of an API group, cluster-wide
// (Namespace "") or in one namespace, on every object or only the named ones.
type Access struct {
	Group         string   `json:"group"`
	Resource      string   `json:"resource"`
	Verbs         []string `json:"verbs"`
	Namespace     string   `json:"namespace,omitempty"`
	ResourceNames []string `json:"resourceNames,omitempty"`
}

// RequiredAccess lists every API permission an agent with settings cfg uses, and nothing more:
// list and watch on what its informers and the slice watcher read (CiliumEndpointSlices,
// CiliumEndpoints as the watcher's fallback, CiliumIdentities, NetworkPolicies,
// CiliumNetworkPolicies, CiliumClusterwideNetworkPolicies, Nodes), get on the
// CiliumEndpointSlice CRD (the watcher tells a CRD being deleted) and, unless the heartbeat
// check is disabled ("-"), get on the slicer's heartbeat Lease. The agent writes nothing.
// deploy/rbac.yaml grants exactly this for the default settings; a test checks it.
func RequiredAccess(cfg Config) []Access {
	lw := []string{"list", "watch"}
	out := []Access{
		{Group: "", Resource: resNodes, Verbs: lw},
		{Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions", Verbs: []string{"get"}, ResourceNames: []string{resCES + ".cilium.io"}},
		{Group: "cilium.io", Resource: resCCNP, Verbs: lw},
		{Group: "cilium.io", Resource: resCEP, Verbs: lw},
		{Group: "cilium.io", Resource: resCES, Verbs: lw},
		{Group: "cilium.io", Resource: resIdentities, Verbs: lw},
		{Group: "cilium.io", Resource: resCNP, Verbs: lw},
		{Group: "networking.k8s.io", Resource: resNP, Verbs: lw},
	}
	lease := cfg.Watcher.HeartbeatLease
	if lease == "" {
		lease = "kube-system/ceskit-slicer" // slicer.DefaultHeartbeatLease
	}
	if lease != "-" {
		ns, name, _ := strings.Cut(lease, "/")
		out = append(out, Access{Group: "coordination.k8s.io", Resource: "leases", Verbs: []string{"get"}, Namespace: ns, ResourceNames: []string{name}})
	}
	return out
}

// served reports which of resources the API server serves in group version gv.
func served(kube kubernetes.Interface, gv schema.GroupVersion, resources ...string) (map[string]bool, error) {
	return discovery.ServedOf(kube.Discovery(), gv.String(), resources...)
}
