package policy_test

// FuzzParsePolicy feeds arbitrary bytes to the decoding, validation and compilation path a
// policy file takes (DecodeObjects, UnknownFields, the From… conversions, Decode, the engine) and
// checks that it never panics, that every error names where it comes from, that whatever is
// accepted compiles, and that the compiled policies decide every flow of a small fixed cluster as
// the reference evaluator of reference_test.go does, whenever the policies stay within the
// subset the reference supports. The seed corpus is in testdata/fuzz/FuzzParsePolicy; the
// fixtures of ciliumv2/testdata are added as seeds too.

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ceskit/ceskit/policy"
	"github.com/ceskit/ceskit/policy/ciliumv2"
)

// parseMaxInput bounds the inputs FuzzParsePolicy decodes: larger ones only cost time.
const parseMaxInput = 64 << 10

func FuzzParsePolicy(f *testing.F) {
	fixtures, err := filepath.Glob(filepath.Join("ciliumv2", "testdata", "*.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range fixtures {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > parseMaxInput {
			return
		}
		checkParse(t, data)
	})
}

// parseWorld is the cluster FuzzParsePolicy compiles decoded policies against: two namespaces
// with labelled pods and named ports (the labels of the seeds), the two nodes and three external
// addresses. Pods with equal namespace and labels would share an identity and must then have
// equal named ports; these all differ.
func parseWorld() *refWorld {
	alpha := map[string]string{"kubernetes.io/metadata.name": "alpha", "env": "prod", "team": "t1"}
	beta := map[string]string{"kubernetes.io/metadata.name": "beta", "env": "dev"}
	ep := func(id, ns string, nsl map[string]string, ip string, labels map[string]string, ports ...policy.NamedPort) policy.Endpoint {
		return policy.Endpoint{ID: id, Namespace: ns, Labels: labels, NamespaceLabels: nsl, IPs: []netip.Addr{netip.MustParseAddr(ip)}, NamedPorts: ports}
	}
	return &refWorld{
		Pods: []policy.Endpoint{
			ep("alpha/web", "alpha", alpha, "10.0.0.1", map[string]string{"app": "a", "tier": "web"},
				policy.NamedPort{Name: "http", Port: 80, Protocol: policy.ProtoTCP}),
			ep("alpha/db", "alpha", alpha, "10.0.0.2", map[string]string{"app": "b", "tier": "db"},
				policy.NamedPort{Name: "metrics", Port: 9090, Protocol: policy.ProtoTCP},
				policy.NamedPort{Name: "dns", Port: 53, Protocol: policy.ProtoUDP}),
			ep("alpha/bare", "alpha", alpha, "10.0.1.3", map[string]string{}),
			ep("beta/web", "beta", beta, "10.0.2.1", map[string]string{"app": "a", "tier": "web"},
				policy.NamedPort{Name: "http", Port: 8080, Protocol: policy.ProtoTCP}),
			ep("beta/c", "beta", beta, "10.0.2.2", map[string]string{"app": "c", "role": "x"},
				policy.NamedPort{Name: "dns", Port: 53, Protocol: policy.ProtoUDP},
				policy.NamedPort{Name: "http", Port: 443, Protocol: policy.ProtoSCTP}),
		},
		HostIP:       netip.MustParseAddr("10.0.255.1"),
		RemoteNodeIP: netip.MustParseAddr("10.0.255.2"),
		External:     []netip.Addr{netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("192.168.1.10"), netip.MustParseAddr("172.16.5.5")},
	}
}

// checkParse is one FuzzParsePolicy run.
func checkParse(t *testing.T, data []byte) {
	objs, err := policy.DecodeObjects(data)
	unknown, uerr := policy.UnknownFields(data)
	ps, derr := policy.Decode(data)
	if (err == nil) != (uerr == nil) {
		t.Fatalf("DecodeObjects error %v but UnknownFields error %v: they must fail together", err, uerr)
	}
	if err != nil {
		if !strings.Contains(err.Error(), "document") {
			t.Fatalf("DecodeObjects error names no document: %v", err)
		}
		if derr == nil {
			t.Fatalf("Decode accepted what DecodeObjects rejected (%v)", err)
		}
		return
	}
	for _, u := range unknown {
		if !strings.HasPrefix(u, "doc[") {
			t.Errorf("unknown field %q does not start with its document", u)
		}
	}

	var valid []*policy.Policy
	allValid := true
	for i, o := range objs {
		p, err := fromObject(o)
		if err != nil {
			allValid = false
			checkInvalid(t, i, o, err)
			continue
		}
		if p == nil {
			t.Fatalf("document %d: %T converted without error to a nil policy", i, o)
		}
		if want := refOf(o); p.Ref() != want {
			t.Errorf("document %d: policy ref %v, want %v", i, p.Ref(), want)
		}
		valid = append(valid, p)
	}
	switch {
	case allValid && derr != nil:
		t.Fatalf("every object converts, but Decode fails: %v", derr)
	case !allValid && derr == nil:
		t.Fatalf("an object is invalid, but Decode accepts the input")
	case derr != nil && (!errors.Is(derr, policy.ErrInvalidPolicy) || !strings.Contains(derr.Error(), "document")):
		t.Fatalf("Decode error is not ErrInvalidPolicy naming its document: %v", derr)
	case derr == nil && len(ps) != len(objs):
		t.Fatalf("Decode returned %d policies for %d objects", len(ps), len(objs))
	}
	if len(valid) == 0 {
		return
	}

	// Valid policies compile: into an engine with the world's endpoints, then every endpoint has
	// a map state and every flow an explanation.
	w := parseWorld()
	for _, mode := range []policy.Mode{policy.ModeAKS, policy.ModeSpec} {
		e := parseEngine(t, w, mode)
		if _, err := e.UpsertPolicies(valid...); err != nil {
			t.Fatalf("mode %s: upsert %d valid policies: %v", mode, len(valid), err)
		}
		for _, ep := range w.Pods {
			if _, err := e.MapState(ep.ID); err != nil {
				if errors.Is(err, policy.ErrOverflow) {
					return // fail-closed by design; the reference knows no capacity
				}
				t.Fatalf("mode %s: map state of %s: %v", mode, ep.ID, err)
			}
		}
	}

	// Within the reference's subset, the compiled policies decide as the reference does.
	if !refSupportedObjects(objs) {
		return
	}
	seen := map[policy.PolicyRef]bool{}
	for i := len(objs) - 1; i >= 0; i-- { // a later document replaces an earlier one of the same ref
		ref := refOf(objs[i])
		if seen[ref] {
			continue
		}
		seen[ref] = true
		switch o := objs[i].(type) {
		case *networkingv1.NetworkPolicy:
			w.NPs = append(w.NPs, o)
		case *ciliumv2.CiliumNetworkPolicy:
			w.CNPs = append(w.CNPs, o)
		case *ciliumv2.CiliumClusterwideNetworkPolicy:
			w.CCNPs = append(w.CCNPs, o)
		}
	}
	h := fnv.New64a()
	h.Write(data)
	seed := h.Sum64()
	refCheckBothModes(t, w, "decoded policies", rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)))
}

func parseEngine(t *testing.T, w *refWorld, mode policy.Mode) *policy.Engine {
	t.Helper()
	e, err := policy.NewEngine(policy.Config{Filter: refFilter(), Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.UpsertEndpoints(w.Pods...); err != nil {
		t.Fatalf("upsert endpoints: %v", err)
	}
	for _, n := range []policy.Node{{Name: "local", IPs: []netip.Addr{w.HostIP}, Local: true}, {Name: "remote", IPs: []netip.Addr{w.RemoteNodeIP}}} {
		if _, err := e.UpsertNode(n); err != nil {
			t.Fatalf("upsert node: %v", err)
		}
	}
	return e
}

// fromObject converts one decoded object.
func fromObject(o runtime.Object) (*policy.Policy, error) {
	switch v := o.(type) {
	case *networkingv1.NetworkPolicy:
		return policy.FromNetworkPolicy(v)
	case *ciliumv2.CiliumNetworkPolicy:
		return policy.FromCiliumNetworkPolicy(v)
	case *ciliumv2.CiliumClusterwideNetworkPolicy:
		return policy.FromCiliumClusterwideNetworkPolicy(v)
	}
	return nil, fmt.Errorf("DecodeObjects returned an unexpected %T", o)
}

func refOf(o runtime.Object) policy.PolicyRef {
	switch v := o.(type) {
	case *networkingv1.NetworkPolicy:
		return policy.PolicyRef{Kind: "NetworkPolicy", Namespace: v.Namespace, Name: v.Name}
	case *ciliumv2.CiliumNetworkPolicy:
		return policy.PolicyRef{Kind: "CiliumNetworkPolicy", Namespace: v.Namespace, Name: v.Name}
	case *ciliumv2.CiliumClusterwideNetworkPolicy:
		return policy.PolicyRef{Kind: "CiliumClusterwideNetworkPolicy", Name: v.Name}
	}
	return policy.PolicyRef{}
}

// checkInvalid checks the error of an object that does not convert: an *InvalidPolicyError for
// the object, listing at least one problem, each with its field path.
func checkInvalid(t *testing.T, i int, o runtime.Object, err error) {
	t.Helper()
	var ipe *policy.InvalidPolicyError
	if !errors.As(err, &ipe) || !errors.Is(err, policy.ErrInvalidPolicy) {
		t.Fatalf("document %d: %T rejected with %T, want *policy.InvalidPolicyError: %v", i, o, err, err)
	}
	if ipe.Policy != refOf(o) {
		t.Errorf("document %d: error names policy %v, want %v", i, ipe.Policy, refOf(o))
	}
	if len(ipe.Errs) == 0 {
		t.Fatalf("document %d: InvalidPolicyError lists no field: %v", i, err)
	}
	for _, fe := range ipe.Errs {
		if fe == nil || fe.Field == "" {
			t.Fatalf("document %d: a field error without a field: %v", i, err)
		}
	}
}

// refSupportedObjects reports whether every object stays within what the reference evaluator
// models (see reference_test.go).
func refSupportedObjects(objs []runtime.Object) bool {
	for _, o := range objs {
		switch v := o.(type) {
		case *networkingv1.NetworkPolicy:
			// The reference evaluates NetworkPolicies fully.
		case *ciliumv2.CiliumNetworkPolicy:
			if !refSupportedRules(v.Spec, v.Specs) {
				return false
			}
		case *ciliumv2.CiliumClusterwideNetworkPolicy:
			if !refSupportedRules(v.Spec, v.Specs) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func refSupportedRules(spec *ciliumv2.Rule, specs []ciliumv2.Rule) bool {
	for _, r := range refRules(spec, specs) {
		if !refSupportedRule(r) {
			return false
		}
	}
	return true
}

// refSupportedRule: endpointSelector; ingress, ingressDeny, egress, egressDeny with endpoints,
// CIDRs, CIDR sets with a cidr, the five entities the reference knows, and toPorts with plain
// ports (L7 rules are enforced at L4 only, so they may stay); enableDefaultDeny. Selector keys
// must be plain or k8s:/any:-prefixed and not Cilium's own policy labels. Anything else (host
// policies, requires, FQDNs, services, groups, nodes, ICMP, authentication, TLS, listeners) is
// outside the subset.
func refSupportedRule(r ciliumv2.Rule) bool {
	if r.EndpointSelector == nil || !refSupportedSelector(&r.EndpointSelector.LabelSelector) {
		return false
	}
	for _, x := range r.Ingress {
		if !refSupportedPeers(x.FromEndpoints, x.FromCIDRSet, x.FromEntities) || !refSupportedPortRules(x.ToPorts) {
			return false
		}
		x.IngressCommonRule = ciliumv2.IngressCommonRule{FromRequires: x.FromRequires, FromGroups: x.FromGroups, FromNodes: x.FromNodes}
		x.ToPorts = nil
		if !reflect.ValueOf(x).IsZero() {
			return false
		}
	}
	for _, x := range r.IngressDeny {
		if !refSupportedPeers(x.FromEndpoints, x.FromCIDRSet, x.FromEntities) {
			return false
		}
		x.IngressCommonRule = ciliumv2.IngressCommonRule{FromRequires: x.FromRequires, FromGroups: x.FromGroups, FromNodes: x.FromNodes}
		x.ToPorts = nil
		if !reflect.ValueOf(x).IsZero() {
			return false
		}
	}
	for _, x := range r.Egress {
		if !refSupportedPeers(x.ToEndpoints, x.ToCIDRSet, x.ToEntities) || !refSupportedPortRules(x.ToPorts) {
			return false
		}
		x.EgressCommonRule = ciliumv2.EgressCommonRule{ToRequires: x.ToRequires, ToServices: x.ToServices, ToGroups: x.ToGroups, ToNodes: x.ToNodes}
		x.ToPorts = nil
		if !reflect.ValueOf(x).IsZero() {
			return false
		}
	}
	for _, x := range r.EgressDeny {
		if !refSupportedPeers(x.ToEndpoints, x.ToCIDRSet, x.ToEntities) {
			return false
		}
		x.EgressCommonRule = ciliumv2.EgressCommonRule{ToRequires: x.ToRequires, ToServices: x.ToServices, ToGroups: x.ToGroups, ToNodes: x.ToNodes}
		x.ToPorts = nil
		if !reflect.ValueOf(x).IsZero() {
			return false
		}
	}
	return r.NodeSelector == nil
}

func refSupportedPeers(eps []ciliumv2.EndpointSelector, sets []ciliumv2.CIDRRule, entities []ciliumv2.Entity) bool {
	for i := range eps {
		if !refSupportedSelector(&eps[i].LabelSelector) {
			return false
		}
	}
	for _, s := range sets {
		if s.Cidr == "" || s.CIDRGroupRef != "" || s.CIDRGroupSelector != nil {
			return false
		}
	}
	for _, e := range entities {
		switch e {
		case ciliumv2.EntityAll, ciliumv2.EntityWorld, ciliumv2.EntityCluster, ciliumv2.EntityHost, ciliumv2.EntityRemoteNode:
		default:
			return false
		}
	}
	return true
}

func refSupportedPortRules(rules []ciliumv2.PortRule) bool {
	for _, r := range rules {
		if r.TerminatingTLS != nil || r.OriginatingTLS != nil || len(r.ServerNames) > 0 || r.Listener != nil {
			return false
		}
	}
	return true
}

func refSupportedSelector(sel *metav1.LabelSelector) bool {
	ok := func(k string) bool {
		k = strings.TrimPrefix(strings.TrimPrefix(k, "k8s:"), "any:")
		return !strings.Contains(k, ":") && !strings.HasPrefix(k, "io.cilium.k8s.policy.")
	}
	for k := range sel.MatchLabels {
		if !ok(k) {
			return false
		}
	}
	for _, e := range sel.MatchExpressions {
		if !ok(e.Key) {
			return false
		}
	}
	return true
}
