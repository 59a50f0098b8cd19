package agent

import (
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/ceskit/ceskit/identity"
	"github.com/ceskit/ceskit/observe"
	"github.com/ceskit/ceskit/policy"
	policyv2 "github.com/ceskit/ceskit/policy/ciliumv2"
	"github.com/ceskit/ceskit/slicer"
)

type (
	policyNP  = networkingv1.NetworkPolicy
	policyCNP = policyv2.CiliumNetworkPolicy
)

func TestSplitIdentityLabels(t *testing.T) {
	lbls, err := identity.PodLabels("shop", map[string]string{"app": "web", "tier": "front", "io.cilium.k8s.sneaky": "x"},
		map[string]string{"kubernetes.io/metadata.name": "shop", "team": "a"}, "web-sa", "default")
	if err != nil {
		t.Fatal(err)
	}
	lbls = append(lbls, identity.Label{Source: identity.SourceContainer, Key: "runtime", Value: "x"})
	pod, ns, sa := splitIdentityLabels(lbls)
	if diff := cmp.Diff(map[string]string{"app": "web", "tier": "front"}, pod); diff != "" {
		t.Errorf("pod labels (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"kubernetes.io/metadata.name": "shop", "team": "a"}, ns); diff != "" {
		t.Errorf("namespace labels (-want +got):\n%s", diff)
	}
	if sa != "web-sa" {
		t.Errorf("service account %q", sa)
	}
	// Round trip: the engine rebuilds the same identity-relevant labels (the cluster name aside).
	again, err := identity.PodLabels("shop", pod, ns, sa, "default")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := identity.PodLabels("shop", map[string]string{"app": "web", "tier": "front"},
		map[string]string{"kubernetes.io/metadata.name": "shop", "team": "a"}, "web-sa", "default")
	if !again.Equal(want) {
		t.Errorf("round trip %s, want %s", again, want)
	}
}

func TestPolicyPrefixes(t *testing.T) {
	objs, err := policy.DecodeObjects([]byte(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np, namespace: x}
spec:
  podSelector: {}
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: cnp, namespace: x}
spec:
  endpointSelector: {}
  egress:
  - toCIDR: [192.0.2.7, 198.51.100.0/24]
  - toCIDRSet: [{cidr: 203.0.113.0/24, except: [203.0.113.128/25]}]
specs:
- endpointSelector: {}
  ingress:
  - fromCIDR: ["2001:db8::/32"]
`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		var ps []netip.Prefix
		switch p := o.(type) {
		case *policyNP:
			ps = policyPrefixes(p.Spec)
		case *policyCNP:
			ps = policyPrefixes(struct{ A, B any }{p.Spec, p.Specs})
		}
		for _, pf := range ps {
			got = append(got, pf.String())
		}
	}
	slices.Sort(got)
	want := []string{"10.0.0.0/8", "10.1.0.0/16", "192.0.2.7/32", "198.51.100.0/24", "2001:db8::/32", "203.0.113.0/24", "203.0.113.128/25"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("prefixes (-want +got):\n%s", diff)
	}
}

func TestUncoveredAddr(t *testing.T) {
	pf := netip.MustParsePrefix
	all := []netip.Prefix{pf("10.0.0.0/8"), pf("10.0.0.0/16"), pf("10.255.0.0/16"), pf("192.168.0.0/24"),
		pf("192.168.0.0/25"), pf("192.168.0.128/25"), pf("172.16.0.0/30"), pf("172.16.0.0/32"), pf("2001:db8::/126"), pf("2001:db8::/128")}
	for _, tc := range []struct {
		p    netip.Prefix
		want string
	}{
		{pf("10.0.0.0/16"), "10.0.0.0"},
		{pf("10.0.0.0/8"), "10.1.0.0"},      // first and last /16 taken: the next free part
		{pf("192.168.0.0/24"), ""},          // fully covered by its two halves
		{pf("172.16.0.0/30"), "172.16.0.1"}, // a host address (an endpoint's) is avoided
		{pf("2001:db8::/126"), "2001:db8::1"},
	} {
		got, ok := uncoveredAddr(tc.p, all)
		if (tc.want == "") == ok || (ok && got.String() != tc.want) {
			t.Errorf("uncoveredAddr(%s) = %s, %v; want %q", tc.p, got, ok, tc.want)
		}
	}
	if got := lastAddr(pf("10.1.0.0/16")); got.String() != "10.1.255.255" {
		t.Errorf("lastAddr = %s", got)
	}
	if got := lastAddr(pf("2001:db8::/126")); got.String() != "2001:db8::3" {
		t.Errorf("lastAddr v6 = %s", got)
	}
}

// TestCIDRIdentities: the ipcache gets the CIDR identity the engine gave each prefix a policy
// names, the same identity the policy map's keys carry.
func TestCIDRIdentities(t *testing.T) {
	e, err := policy.NewEngine(policy.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.UpsertEndpoint(policy.Endpoint{ID: "x/a", Namespace: "x", Labels: map[string]string{"app": "a"},
		IPs: []netip.Addr{netip.MustParseAddr("10.1.0.5")}, Identity: 1000}); err != nil {
		t.Fatal(err)
	}
	objs, err := policy.DecodeObjects([]byte(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}, {ipBlock: {cidr: 192.0.2.0/24}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	np := objs[0].(*policyNP)
	p, err := policy.FromNetworkPolicy(np)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.UpsertPolicy(p); err != nil {
		t.Fatal(err)
	}
	// A node at the first address of 192.0.2.0/24: the probe must avoid it (Explain would answer
	// with the node's identity).
	node := policy.Node{Name: "n1", IPs: []netip.Addr{netip.MustParseAddr("192.0.2.0")}}
	if _, err := e.UpsertNode(node); err != nil {
		t.Fatal(err)
	}
	a := &Agent{engine: e, policies: map[policy.PolicyRef][]netip.Prefix{p.Ref(): policyPrefixes(np.Spec)},
		endpoints: map[string]*endpointState{}, nodes: map[string]policy.Node{"n1": node}}
	out := a.ipcacheLocked()
	ms, err := e.MapState("x/a")
	if err != nil {
		t.Fatal(err)
	}
	keyIDs := map[uint32]bool{}
	for k := range ms {
		keyIDs[uint32(k.Identity)] = true
	}
	for _, s := range []string{"10.0.0.0/8", "10.1.0.0/16", "192.0.2.0/24"} {
		id, ok := out[netip.MustParsePrefix(s)]
		if !ok || identity.NumericIdentity(id).Scope() != identity.ScopeLocal {
			t.Errorf("ipcache[%s] = %d, %v; want a local-scope CIDR identity", s, id, ok)
		}
		if s != "10.1.0.0/16" && !keyIDs[id] {
			t.Errorf("ipcache[%s] = %d, not an identity of the policy map:\n%s", s, id, ms)
		}
	}
	if out[netip.MustParsePrefix("10.0.0.0/8")] == out[netip.MustParsePrefix("192.0.2.0/24")] {
		t.Error("two prefixes got one identity")
	}
	if out[netip.MustParsePrefix("192.0.2.0/32")] != uint32(identity.ReservedRemoteNode) {
		t.Errorf("the node's address: %d, want remote-node", out[netip.MustParsePrefix("192.0.2.0/32")])
	}
	if len(a.cidrIDs) != 3 {
		t.Errorf("cache %v, want the 3 prefixes", a.cidrIDs)
	}
}

func TestConfigValidate(t *testing.T) {
	dpm, err := observe.NewDatapathMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		cfg   Config
		field string
	}{
		{"stats interval", Config{StatsInterval: -time.Second}, "StatsInterval=-1s"},
		{"discovery interval", Config{DiscoveryInterval: time.Millisecond}, "DiscoveryInterval=1ms: must be between 1s and 1h"},
		{"retry base", Config{RetryBaseDelay: -1}, "RetryBaseDelay"},
		{"retry order", Config{RetryBaseDelay: time.Second, RetryMaxDelay: time.Millisecond}, "RetryMaxDelay=1ms"},
		{"datapath metrics", Config{DatapathMetrics: dpm}, "DatapathMetrics=set: needs a Datapath"},
		{"zero", Config{}, ""},
		{"policy", Config{Policy: policy.Config{MapCapacity: 5}}, "MapCapacity=5"},
		{"watcher", Config{Watcher: slicer.WatcherConfig{Source: "pods"}}, "Source=pods"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.field == "" {
				if err != nil {
					t.Errorf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("Validate = %v, want ErrInvalidConfig naming %q", err, tc.field)
			}
		})
	}
	if _, err := New(nil, "n", Config{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("New(nil config) = %v", err)
	}
	if _, err := New(&rest.Config{Host: "https://127.0.0.1:1"}, "", Config{}); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "nodeName") {
		t.Errorf("New without a node name = %v", err)
	}
}

// TestRBACManifest: deploy/rbac.yaml grants exactly RequiredAccess for the default settings, to
// the ServiceAccount the DaemonSet runs as. (TestNoDatapath proves it sufficient by running the
// agent as that ServiceAccount.)
func TestRBACManifest(t *testing.T) {
	r := readRBAC(t)
	type grant struct {
		group, resource, verb, namespace, name string
	}
	expand := func(acc []Access) []grant {
		var out []grant
		for _, a := range acc {
			names := a.ResourceNames
			if len(names) == 0 {
				names = []string{""}
			}
			for _, v := range a.Verbs {
				for _, n := range names {
					out = append(out, grant{a.Group, a.Resource, v, a.Namespace, n})
				}
			}
		}
		slices.SortFunc(out, func(x, y grant) int {
			return strings.Compare(x.group+"/"+x.resource+"/"+x.verb+"/"+x.namespace+"/"+x.name, y.group+"/"+y.resource+"/"+y.verb+"/"+y.namespace+"/"+y.name)
		})
		return out
	}
	var granted []Access
	for _, rule := range r.clusterRole.Rules {
		if len(rule.NonResourceURLs) > 0 {
			t.Errorf("ClusterRole grants non-resource URLs %v", rule.NonResourceURLs)
		}
		for _, g := range rule.APIGroups {
			for _, res := range rule.Resources {
				granted = append(granted, Access{Group: g, Resource: res, Verbs: rule.Verbs, ResourceNames: rule.ResourceNames})
			}
		}
	}
	for _, rule := range r.role.Rules {
		for _, g := range rule.APIGroups {
			for _, res := range rule.Resources {
				granted = append(granted, Access{Group: g, Resource: res, Verbs: rule.Verbs, Namespace: r.role.Namespace, ResourceNames: rule.ResourceNames})
			}
		}
	}
	if diff := cmp.Diff(expand(RequiredAccess(Config{})), expand(granted), cmp.AllowUnexported(grant{})); diff != "" {
		t.Errorf("rbac.yaml grants (-required +granted):\n%s", diff)
	}
	if got := RequiredAccess(Config{Watcher: slicer.WatcherConfig{HeartbeatLease: "-"}}); slices.ContainsFunc(got, func(a Access) bool { return a.Resource == "leases" }) {
		t.Error("without the heartbeat check the agent still asks for leases")
	}
	sa := r.sa.Namespace + "/" + r.sa.Name
	for _, b := range []struct {
		kind, roleKind, roleName, want string
		subjects                       int
		subject                        string
	}{
		{"ClusterRoleBinding", r.clusterBind.RoleRef.Kind, r.clusterBind.RoleRef.Name, r.clusterRole.Name, len(r.clusterBind.Subjects), r.clusterBind.Subjects[0].Namespace + "/" + r.clusterBind.Subjects[0].Name},
		{"RoleBinding", r.roleBinding.RoleRef.Kind, r.roleBinding.RoleRef.Name, r.role.Name, len(r.roleBinding.Subjects), r.roleBinding.Subjects[0].Namespace + "/" + r.roleBinding.Subjects[0].Name},
	} {
		if b.roleName != b.want || b.subjects != 1 || b.subject != sa {
			t.Errorf("%s binds %s %s to %s (%d subjects), want %s to %s", b.kind, b.roleKind, b.roleName, b.subject, b.subjects, b.want, sa)
		}
	}

	// The DaemonSet runs as that ServiceAccount, privileged enough for the datapath, with the
	// node name, bpffs and probes on the agent's endpoints.
	raw, err := os.ReadFile("../deploy/daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var ds appsv1.DaemonSet
	if err := yaml.UnmarshalStrict(raw, &ds); err != nil {
		t.Fatal(err)
	}
	spec := ds.Spec.Template.Spec
	if ds.Namespace+"/"+spec.ServiceAccountName != sa || !spec.HostNetwork || len(spec.Containers) != 1 {
		t.Fatalf("DaemonSet %s: service account %s, hostNetwork %v, %d containers", ds.Name, spec.ServiceAccountName, spec.HostNetwork, len(spec.Containers))
	}
	ctr := spec.Containers[0]
	if !slices.Contains(ctr.Args, "--node-name=$(NODE_NAME)") || !slices.ContainsFunc(ctr.Env, func(e corev1.EnvVar) bool {
		return e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName"
	}) {
		t.Errorf("NODE_NAME from spec.nodeName not passed: args %v env %v", ctr.Args, ctr.Env)
	}
	caps := ctr.SecurityContext.Capabilities.Add
	for _, c := range []corev1.Capability{"BPF", "NET_ADMIN", "SYS_ADMIN"} {
		if !slices.Contains(caps, c) && (ctr.SecurityContext.Privileged == nil || !*ctr.SecurityContext.Privileged) {
			t.Errorf("capability %s missing: %v", c, caps)
		}
	}
	if !slices.ContainsFunc(ctr.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/sys/fs/bpf" }) ||
		!slices.ContainsFunc(spec.Volumes, func(v corev1.Volume) bool { return v.HostPath != nil && v.HostPath.Path == "/sys/fs/bpf" }) {
		t.Error("bpffs not mounted from the host")
	}
	if ctr.LivenessProbe == nil || ctr.LivenessProbe.HTTPGet == nil || ctr.LivenessProbe.HTTPGet.Path != "/healthz" ||
		ctr.ReadinessProbe == nil || ctr.ReadinessProbe.HTTPGet == nil || ctr.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Error("probes must GET /healthz (liveness) and /readyz (readiness)")
	}
	if ctr.LivenessProbe.HTTPGet.Port.IntValue() != 9964 || !slices.Contains(ctr.Args, "--metrics-addr=127.0.0.1:9964") {
		t.Errorf("probe port %s does not match --metrics-addr in %v", ctr.LivenessProbe.HTTPGet.Port.String(), ctr.Args)
	}
}
