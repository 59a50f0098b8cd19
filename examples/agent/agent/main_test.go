package agent

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"github.com/ceskit/ceskit/identity"
	identityv2 "github.com/ceskit/ceskit/identity/ciliumv2"
	"github.com/ceskit/ceskit/internal/testenv"
	"github.com/ceskit/ceskit/policy"
	policyv2 "github.com/ceskit/ceskit/policy/ciliumv2"
	"github.com/ceskit/ceskit/slicer"
	slicerv2 "github.com/ceskit/ceskit/slicer/ciliumv2"
	"github.com/ceskit/ceskit/slicer/ciliumv2alpha1"
)

// The package's integration tests share one real kube-apiserver + etcd with the CRDs of
// CiliumEndpointSlices, CiliumEndpoints, CiliumIdentities, CiliumNetworkPolicies and
// CiliumClusterwideNetworkPolicies installed.
var (
	apiConfig *rest.Config
	noAPI     error
)

func TestMain(m *testing.M) {
	crds, err := allCRDs()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(testenv.RunShared(m, testenv.Options{CRDs: crds}, func(cfg *rest.Config, missing error) {
		apiConfig, noAPI = cfg, missing
	}))
}

// allCRDs are what the shared control plane serves: baseCRDs and policyCRDs.
func allCRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	base, err := baseCRDs()
	if err != nil {
		return nil, err
	}
	pols, err := policyCRDs()
	return append(base, pols...), err
}

// baseCRDs are the slices', endpoints' and identities' CRDs: what the agent needs to start.
func baseCRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	crds, err := slicer.CRDs()
	if err != nil {
		return nil, err
	}
	ids, err := identity.CRDs()
	return append(crds, ids...), err
}

// policyCRDs are the CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy CRDs.
func policyCRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	return testenv.ReadCRDs("../../../policy/crds/*.yaml")
}

// api returns the shared control plane's config, or skips the test when there is none.
func api(tb testing.TB) *rest.Config {
	tb.Helper()
	if apiConfig == nil {
		tb.Skipf("skipping integration test: %v", noAPI)
	}
	return rest.CopyConfig(apiConfig)
}

// cluster creates objects in the shared API server for one test and deletes them when it ends.
type cluster struct {
	t   *testing.T
	sc  *slicer.Client
	ic  *identity.Client
	pc  *policyClient
	ctx context.Context
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	cfg := api(t)
	sc, err := slicer.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ic, err := identity.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := newPolicyClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{t: t, sc: sc, ic: ic, pc: pc, ctx: context.Background()}
}

func (c *cluster) check(what string, err error) {
	c.t.Helper()
	if err != nil {
		c.t.Fatalf("%s: %v", what, err)
	}
}

// cleanup registers a deletion that ignores NotFound.
func (c *cluster) cleanup(what string, del func() error) {
	c.t.Cleanup(func() {
		if err := del(); err != nil && !apierrors.IsNotFound(err) {
			c.t.Errorf("cleanup %s: %v", what, err)
		}
	})
}

// namespace creates a namespace named prefix-<random> and returns its name. (Deleted namespaces
// stay Terminating here, without a namespace controller: names are never reused.)
func (c *cluster) namespace(prefix string) string {
	c.t.Helper()
	ns, err := c.sc.Kube.CoreV1().Namespaces().Create(c.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}, metav1.CreateOptions{})
	c.check("create namespace", err)
	c.cleanup("namespace "+ns.Name, func() error {
		return c.sc.Kube.CoreV1().Namespaces().Delete(c.ctx, ns.Name, metav1.DeleteOptions{})
	})
	return ns.Name
}

func (c *cluster) node(name, ip string) {
	c.t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}}}
	created, err := c.sc.Kube.CoreV1().Nodes().Create(c.ctx, n, metav1.CreateOptions{})
	c.check("create node", err)
	created.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}, {Type: corev1.NodeHostName, Address: name}}
	_, err = c.sc.Kube.CoreV1().Nodes().UpdateStatus(c.ctx, created, metav1.UpdateOptions{})
	c.check("set node addresses", err)
	c.cleanup("node "+name, func() error { return c.sc.Kube.CoreV1().Nodes().Delete(c.ctx, name, metav1.DeleteOptions{}) })
}

// identity creates CiliumIdentity id for a pod of namespace ns with labels, as Cilium's agent
// writes them (namespace, its metadata.name label, service account, cluster).
func (c *cluster) identity(id int, ns string, labels map[string]string) {
	c.t.Helper()
	lbls, err := identity.PodLabels(ns, labels, map[string]string{"kubernetes.io/metadata.name": ns}, "default", "default")
	c.check("pod labels", err)
	ci := &identityv2.CiliumIdentity{
		ObjectMeta:     metav1.ObjectMeta{Name: strconv.Itoa(id), Labels: map[string]string{identity.LabelNamespace: ns}},
		SecurityLabels: lbls.SecurityLabels(),
	}
	_, err = c.ic.CiliumIdentities().Create(c.ctx, ci, metav1.CreateOptions{})
	c.check("create identity", err)
	c.cleanup("identity", func() error { return c.ic.CiliumIdentities().Delete(c.ctx, ci.Name, metav1.DeleteOptions{}) })
}

// ep is one slice entry.
func ep(name string, id int64, ip, nodeIP string) ciliumv2alpha1.CoreCiliumEndpoint {
	return ciliumv2alpha1.CoreCiliumEndpoint{
		Name: name, IdentityID: id,
		Networking: &slicerv2.EndpointNetworking{Addressing: slicerv2.AddressPairList{{IPV4: ip}}, NodeIP: nodeIP},
	}
}

func (c *cluster) slice(name, ns string, eps ...ciliumv2alpha1.CoreCiliumEndpoint) {
	c.t.Helper()
	ces := &ciliumv2alpha1.CiliumEndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: name}, Namespace: ns, Endpoints: eps}
	_, err := c.sc.CiliumEndpointSlices().Create(c.ctx, ces, metav1.CreateOptions{})
	c.check("create slice", err)
	c.cleanup("slice "+name, func() error { return c.sc.CiliumEndpointSlices().Delete(c.ctx, name, metav1.DeleteOptions{}) })
}

func (c *cluster) updateSlice(name string, f func(*ciliumv2alpha1.CiliumEndpointSlice)) {
	c.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ces, err := c.sc.CiliumEndpointSlices().Get(c.ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		f(ces)
		_, err = c.sc.CiliumEndpointSlices().Update(c.ctx, ces, metav1.UpdateOptions{})
		return err
	})
	c.check("update slice "+name, err)
}

// apply creates or replaces the NetworkPolicies and Cilium policies of a YAML document stream.
func (c *cluster) apply(yaml string) {
	c.t.Helper()
	objs, err := policy.DecodeObjects([]byte(yaml))
	c.check("decode policies", err)
	for _, obj := range objs {
		switch o := obj.(type) {
		case *networkingv1.NetworkPolicy:
			api := c.sc.Kube.NetworkingV1().NetworkPolicies(o.Namespace)
			err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
				cur, err := api.Get(c.ctx, o.Name, metav1.GetOptions{})
				if apierrors.IsNotFound(err) {
					_, err = api.Create(c.ctx, o, metav1.CreateOptions{})
					c.cleanup("networkpolicy", func() error { return api.Delete(c.ctx, o.Name, metav1.DeleteOptions{}) })
					return err
				}
				if err != nil {
					return err
				}
				o.ResourceVersion = cur.ResourceVersion
				_, err = api.Update(c.ctx, o, metav1.UpdateOptions{})
				return err
			})
			c.check("apply networkpolicy "+o.Name, err)
		case *policyv2.CiliumNetworkPolicy:
			api := c.pc.cnps(o.Namespace)
			err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
				cur, err := api.Get(c.ctx, o.Name, metav1.GetOptions{})
				if apierrors.IsNotFound(err) {
					_, err = api.Create(c.ctx, o, metav1.CreateOptions{})
					c.cleanup("ciliumnetworkpolicy", func() error { return api.Delete(c.ctx, o.Name, metav1.DeleteOptions{}) })
					return err
				}
				if err != nil {
					return err
				}
				o.ResourceVersion = cur.ResourceVersion
				_, err = api.Update(c.ctx, o, metav1.UpdateOptions{})
				return err
			})
			c.check("apply ciliumnetworkpolicy "+o.Name, err)
		default:
			c.t.Fatalf("apply: unexpected %T", obj)
		}
	}
}

// heartbeat creates the slice controller's heartbeat Lease, ready and renewed now, so that
// watchers use the slices.
func (c *cluster) heartbeat() {
	c.t.Helper()
	now := metav1.NewMicroTime(time.Now())
	l := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "ceskit-slicer", Namespace: "kube-system",
			Annotations: map[string]string{slicer.StateAnnotation: slicer.StateReady}},
		Spec: coordinationv1.LeaseSpec{RenewTime: &now},
	}
	_, err := c.sc.Kube.CoordinationV1().Leases("kube-system").Create(c.ctx, l, metav1.CreateOptions{})
	c.check("create heartbeat lease", err)
	c.cleanup("heartbeat lease", func() error {
		return c.sc.Kube.CoordinationV1().Leases("kube-system").Delete(c.ctx, l.Name, metav1.DeleteOptions{})
	})
}

// startAgent runs an agent until the test ends.
func startAgent(t *testing.T, cfg *rest.Config, node string, acfg Config) *Agent {
	t.Helper()
	a, err := New(cfg, node, acfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent Run: %v", err)
		}
	})
	return a
}

// eventually polls cond until it returns "" (success) or the time is up, then fails with its
// last answer.
func eventually(t *testing.T, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		if last = cond(); last == "" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: %s", what, last)
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
