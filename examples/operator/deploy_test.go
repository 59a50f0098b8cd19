package main

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/ceskit/ceskit/identity"
	"github.com/ceskit/ceskit/policy"
	"github.com/ceskit/ceskit/slicer"
	"github.com/ceskit/ceskit/slicer/ciliumv2alpha1"
)

// manifests is what deploy/ holds, decoded.
type manifests struct {
	serviceAccounts     []*corev1.ServiceAccount
	clusterRoles        []*rbacv1.ClusterRole
	clusterRoleBindings []*rbacv1.ClusterRoleBinding
	roles               []*rbacv1.Role
	roleBindings        []*rbacv1.RoleBinding
	deployments         []*appsv1.Deployment
	kinds               []string // every document's kind, in order
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// readManifests decodes every document of the files with sigs.k8s.io/yaml, strictly: a field
// the API types do not know fails the test.
func readManifests(t *testing.T, files ...string) *manifests {
	t.Helper()
	m := &manifests{}
	for _, file := range files {
		b, err := os.ReadFile(filepath.Join("deploy", file))
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSeparator.Split(string(b), -1) {
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
				t.Fatalf("%s document %d: %v", file, i, err)
			}
			if tm.Kind == "" {
				continue // comments only
			}
			var obj any
			switch tm.Kind {
			case "ServiceAccount":
				o := &corev1.ServiceAccount{}
				m.serviceAccounts, obj = append(m.serviceAccounts, o), o
			case "ClusterRole":
				o := &rbacv1.ClusterRole{}
				m.clusterRoles, obj = append(m.clusterRoles, o), o
			case "ClusterRoleBinding":
				o := &rbacv1.ClusterRoleBinding{}
				m.clusterRoleBindings, obj = append(m.clusterRoleBindings, o), o
			case "Role":
				o := &rbacv1.Role{}
				m.roles, obj = append(m.roles, o), o
			case "RoleBinding":
				o := &rbacv1.RoleBinding{}
				m.roleBindings, obj = append(m.roleBindings, o), o
			case "Deployment":
				o := &appsv1.Deployment{}
				m.deployments, obj = append(m.deployments, o), o
			case "PodDisruptionBudget":
				var pdb map[string]any
				obj = &pdb
			default:
				t.Fatalf("%s document %d: unexpected kind %q", file, i, tm.Kind)
			}
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Fatalf("%s document %d (%s): %v", file, i, tm.Kind, err)
			}
			m.kinds = append(m.kinds, tm.Kind)
		}
	}
	return m
}

// grant is one permission: verb on group/resource, optionally only on some names, in a
// namespace ("" for the ClusterRole).
type grant struct {
	namespace, group, resource, name, verb string
}

func (g grant) String() string {
	s := g.verb + " " + g.resource + "." + g.group
	if g.name != "" {
		s += "/" + g.name
	}
	if g.namespace != "" {
		s += " in " + g.namespace
	}
	return s
}

// grants flattens RBAC rules.
func grants(t *testing.T, namespace string, rules []rbacv1.PolicyRule) []grant {
	t.Helper()
	var out []grant
	for _, r := range rules {
		if len(r.NonResourceURLs) > 0 {
			t.Errorf("rule %+v grants non-resource URLs; discovery comes from system:discovery", r)
		}
		for _, list := range [][]string{r.APIGroups, r.Resources, r.Verbs, r.ResourceNames} {
			if slices.Contains(list, "*") {
				t.Errorf("rule %+v has a wildcard", r)
			}
		}
		names := r.ResourceNames
		if len(names) == 0 {
			names = []string{""}
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					for _, n := range names {
						out = append(out, grant{namespace, g, res, n, v})
					}
				}
			}
		}
	}
	return out
}

// wantGrants is every API call the operator makes with its default flags, from the code:
// slicer.Controller (source ciliumendpoints) and identity.GC, the election lock, the slicer's
// heartbeat. rbac.yaml must grant exactly these.
func wantGrants(t *testing.T) []grant {
	t.Helper()
	cilium := ciliumv2alpha1.SchemeGroupVersion.Group
	lease := coordinationv1.GroupName
	hbNamespace, hbName, ok := strings.Cut(slicer.DefaultHeartbeatLease, "/")
	if !ok {
		t.Fatalf("slicer.DefaultHeartbeatLease = %q", slicer.DefaultHeartbeatLease)
	}
	var want []grant
	add := func(namespace, group, resource, name string, verbs ...string) {
		for _, v := range verbs {
			want = append(want, grant{namespace, group, resource, name, v})
		}
	}
	// Cluster-wide.
	add("", cilium, "ciliumendpoints", "", "list", "watch")                                           // slicer informer; GC references
	add("", cilium, "ciliumendpointslices", "", "get", "list", "watch", "create", "update", "delete") // slicer: informer, conflict re-read, writes, Resync; GC references
	add("", cilium, "ciliumidentities", "", "list", "watch", "update", "delete")                      // GC: informer, mark/unmark, delete
	add("", "", "namespaces", "", "list", "watch")                                                    // slicer informer
	add("", "", "nodes", "", "list", "watch")                                                         // slicer informer (rate table step)
	// Election lock (resourcelock.LeaseLock: Get, Create, Update) and heartbeat (Get, Create,
	// Update); create cannot be limited by name.
	if hbNamespace != defaultElectionNamespace {
		t.Fatalf("heartbeat lease namespace %q != election namespace %q: rbac.yaml assumes one", hbNamespace, defaultElectionNamespace)
	}
	add(defaultElectionNamespace, lease, "leases", "", "create")
	add(defaultElectionNamespace, lease, "leases", defaultElectionName, "get", "update")
	add(hbNamespace, lease, "leases", hbName, "get", "update")
	// Identity GC: informer on claim and holder Leases, deletes them.
	add(identity.DefaultNamespace, lease, "leases", "", "list", "watch", "delete")
	return want
}

func sortedGrants(gs []grant) []string {
	out := make([]string, 0, len(gs))
	for _, g := range gs {
		out = append(out, g.String())
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestRBACMatchesCode checks that rbac.yaml grants exactly the calls the operator makes, to the
// ServiceAccount the Deployment runs as, and nothing more.
func TestRBACMatchesCode(t *testing.T) {
	m := readManifests(t, "rbac.yaml", "deployment.yaml")
	if len(m.serviceAccounts) != 1 || len(m.clusterRoles) != 1 || len(m.deployments) != 1 {
		t.Fatalf("kinds %q: want one ServiceAccount, one ClusterRole, one Deployment", m.kinds)
	}
	sa := m.serviceAccounts[0]
	var got []grant
	for _, cr := range m.clusterRoles {
		if cr.AggregationRule != nil {
			t.Errorf("ClusterRole %s aggregates other roles", cr.Name)
		}
		for _, r := range cr.Rules {
			if len(r.ResourceNames) > 0 {
				t.Errorf("ClusterRole rule %+v names resources; namespaced ones belong in a Role", r)
			}
		}
		got = append(got, grants(t, "", cr.Rules)...)
	}
	for _, r := range m.roles {
		got = append(got, grants(t, r.Namespace, r.Rules)...)
	}
	if diff := cmp.Diff(sortedGrants(wantGrants(t)), sortedGrants(got)); diff != "" {
		t.Errorf("rbac.yaml grants (-used by the code +granted):\n%s", diff)
	}

	// Every role is bound to the ServiceAccount, and nothing else is.
	subject := rbacv1.Subject{Kind: "ServiceAccount", Name: sa.Name, Namespace: sa.Namespace}
	bound := map[string]bool{}
	for _, b := range m.clusterRoleBindings {
		if diff := cmp.Diff([]rbacv1.Subject{subject}, b.Subjects); diff != "" {
			t.Errorf("ClusterRoleBinding %s subjects (-want +got):\n%s", b.Name, diff)
		}
		bound["ClusterRole/"+b.RoleRef.Name] = true
	}
	for _, b := range m.roleBindings {
		if diff := cmp.Diff([]rbacv1.Subject{subject}, b.Subjects); diff != "" {
			t.Errorf("RoleBinding %s subjects (-want +got):\n%s", b.Name, diff)
		}
		bound[b.RoleRef.Kind+"/"+b.Namespace+"/"+b.RoleRef.Name] = true
	}
	for _, cr := range m.clusterRoles {
		if !bound["ClusterRole/"+cr.Name] {
			t.Errorf("ClusterRole %s is not bound", cr.Name)
		}
	}
	for _, r := range m.roles {
		if !bound["Role/"+r.Namespace+"/"+r.Name] {
			t.Errorf("Role %s/%s is not bound", r.Namespace, r.Name)
		}
	}
	d := m.deployments[0]
	if d.Spec.Template.Spec.ServiceAccountName != sa.Name || d.Namespace != sa.Namespace {
		t.Errorf("Deployment %s/%s runs as %q, want the ServiceAccount %s/%s", d.Namespace, d.Name, d.Spec.Template.Spec.ServiceAccountName, sa.Namespace, sa.Name)
	}
}

// TestDeployment checks the Deployment: its arguments parse, elect a leader on the Lease
// rbac.yaml grants, and the pod is probed, confined and sized.
func TestDeployment(t *testing.T) {
	t.Setenv("KUBECONFIG", "")
	m := readManifests(t, "deployment.yaml")
	if diff := cmp.Diff([]string{"Deployment", "PodDisruptionBudget"}, m.kinds); diff != "" {
		t.Fatalf("kinds (-want +got):\n%s", diff)
	}
	d := m.deployments[0]
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas = %v, want 2", d.Spec.Replicas)
	}
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("containers = %d, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]

	o, err := parseFlags(c.Args, io.Discard)
	if err != nil {
		t.Fatalf("container args %q: %v", c.Args, err)
	}
	wantElection := electionConfig{Namespace: defaultElectionNamespace, Name: defaultElectionName,
		LeaseDuration: defaultLeaseDuration, RenewDeadline: defaultRenewDeadline, RetryPeriod: defaultRetryPeriod}
	if !o.leaderElect || !o.gcEnabled || o.cfg.Shadow {
		t.Errorf("args: leader-elect=%t identity-gc=%t shadow=%t, want true, true, false", o.leaderElect, o.gcEnabled, o.cfg.Shadow)
	}
	if diff := cmp.Diff(wantElection, o.election); diff != "" {
		t.Errorf("election (-want +got):\n%s", diff)
	}
	if o.cfg.HeartbeatLease != "" || o.gc.Namespace != "" {
		t.Errorf("args move the heartbeat lease (%q) or the identity namespace (%q): rbac.yaml grants the defaults", o.cfg.HeartbeatLease, o.gc.Namespace)
	}
	port := ""
	for _, p := range c.Ports {
		if p.Name == "http" {
			port = fmt.Sprintf(":%d", p.ContainerPort)
		}
	}
	if _, p, _ := strings.Cut(o.listen, ":"); ":"+p != port || strings.HasPrefix(o.listen, "127.") {
		t.Errorf("--listen=%q, want every address on the container port %q (probes reach the pod IP)", o.listen, port)
	}
	if !isLoopback(o.adminListen) {
		t.Errorf("--admin-listen=%q, want a loopback address: /status, /diff and /resync have no authentication", o.adminListen)
	}

	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s probe missing or not HTTP", p.name)
			continue
		}
		if p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "http" {
			t.Errorf("%s probe = %s on %s, want %s on http", p.name, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port.String(), p.path)
		}
	}

	psc, sc := pod.SecurityContext, c.SecurityContext
	switch {
	case psc == nil || sc == nil:
		t.Fatal("pod or container securityContext missing")
	case psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0:
		t.Errorf("pod securityContext %+v: want runAsNonRoot and a non-zero runAsUser", psc)
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("container root filesystem is writable")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("container allows privilege escalation")
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}):
		t.Errorf("container capabilities %+v, want all dropped", sc.Capabilities)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v: want CPU and memory requests and a memory limit", c.Resources)
	}
}

// TestNetworkPolicy decodes deploy/networkpolicy.yaml strictly and evaluates it with ceskit's
// policy engine against the Deployment's pod labels: Prometheus in "monitoring" reaches the
// metrics port and nothing else; other pods, in kube-system or elsewhere, reach nothing.
func TestNetworkPolicy(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("deploy", "networkpolicy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	np := &networkingv1.NetworkPolicy{}
	if err := yaml.UnmarshalStrict(b, np); err != nil {
		t.Fatalf("networkpolicy.yaml: %v", err)
	}
	dep := readManifests(t, "deployment.yaml").deployments[0]
	if np.Namespace != dep.Namespace {
		t.Errorf("policy in %q, Deployment in %q", np.Namespace, dep.Namespace)
	}
	p, err := policy.FromNetworkPolicy(np)
	if err != nil {
		t.Fatalf("the policy package rejects networkpolicy.yaml: %v", err)
	}
	e, err := policy.NewEngine(policy.Config{})
	if err != nil {
		t.Fatal(err)
	}
	pod := func(id, ns string, labels map[string]string, ip string) policy.Endpoint {
		return policy.Endpoint{ID: id, Namespace: ns, Labels: labels, IPs: []netip.Addr{netip.MustParseAddr(ip)},
			NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": ns}}
	}
	if _, err := e.UpsertEndpoints(
		pod("operator", dep.Namespace, dep.Spec.Template.Labels, "10.0.0.1"),
		pod("prometheus", "monitoring", map[string]string{"app": "prometheus"}, "10.0.0.2"),
		pod("coredns", "kube-system", map[string]string{"k8s-app": "kube-dns"}, "10.0.0.3"),
		pod("web", "default", map[string]string{"app": "web"}, "10.0.0.4"),
	); err != nil {
		t.Fatal(err)
	}
	if _, err := e.UpsertPolicy(p); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		from  string
		port  uint16
		allow bool
	}{
		{"prometheus", 9963, true},
		{"prometheus", 9965, false},
		{"prometheus", 8080, false},
		{"coredns", 9963, false},
		{"web", 9963, false},
		{"web", 9965, false},
	} {
		x, err := e.Explain(policy.Peer{Endpoint: tt.from}, policy.Peer{Endpoint: "operator"}, policy.ProtoTCP, tt.port)
		if err != nil {
			t.Fatal(err)
		}
		if x.Allowed != tt.allow {
			t.Errorf("%s → operator TCP %d: allowed %t, want %t (%s)", tt.from, tt.port, x.Allowed, tt.allow, x.Ingress.Reason)
		}
	}
}
