package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"

	"github.com/ceskit/ceskit/identity"
	"github.com/ceskit/ceskit/policy"
	"github.com/ceskit/ceskit/slicer"
	"github.com/ceskit/ceskit/slicer/ciliumv2alpha1"
)

// inNamespace moves the policies of a YAML stream written for namespace "shop", "dp" or "fc" to ns.
func inNamespace(yaml, ns string) string {
	for _, from := range []string{"shop", "dp", "fc"} {
		yaml = strings.ReplaceAll(yaml, "namespace: "+from+"}", "namespace: "+ns+"}")
	}
	return yaml
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// decision is what an endpoint's map state decides for one ingress flow.
func decision(t *testing.T, a *Agent, endpoint string, remote identity.NumericIdentity, port uint16) string {
	t.Helper()
	ms, err := a.Engine().MapState(endpoint)
	if err != nil {
		return "error: " + err.Error()
	}
	e, ok := ms.Lookup(remote, policy.Ingress, policy.ProtoTCP, port)
	if !ok {
		return "default deny"
	}
	var rules []string
	for _, r := range e.Rules {
		rules = append(rules, r.String())
	}
	return e.Verdict.String() + " by " + strings.Join(rules, "; ")
}

func localNames(st Status) []string {
	var out []string
	for _, l := range st.LocalEndpoints {
		out = append(out, l.Endpoint)
	}
	return out
}

const npDB = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{protocol: TCP, port: %d}]
`

const cnpDenyAdmin = `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: deny-admin, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: db}}
  ingressDeny:
  - fromEndpoints: [{matchLabels: {app: admin}}]
    toPorts: [{ports: [{port: "5433", protocol: TCP%s}]}]
`

// TestNoDatapath runs an agent without a datapath as the ServiceAccount of deploy/rbac.yaml
// (impersonated, so the manifest's permissions are proved sufficient) against a real API server:
// slices, identities and policies reach the engine, changes and deletions propagate, an endpoint
// waits for its identity, and an invalid policy is reported and changes nothing.
func TestNoDatapath(t *testing.T) {
	c := newCluster(t)
	c.applyRBAC()
	c.heartbeat()
	ns := c.namespace("shop")
	c.node("nd-local", "192.168.50.10")
	c.node("nd-remote", "192.168.50.11")
	c.identity(1001, ns, map[string]string{"app": "web"})
	c.identity(1002, ns, map[string]string{"app": "db"})
	c.identity(1003, ns, map[string]string{"app": "admin"})
	c.slice("ces-nodp-1", ns,
		ep("web-1", 1001, "10.200.0.1", "192.168.50.10"),
		ep("db-1", 1002, "10.200.0.2", "192.168.50.10"),
		ep("admin-1", 1003, "10.200.1.1", "192.168.50.11"))
	c.apply(inNamespace(fmt.Sprintf(npDB, 5432), ns))

	cfg := api(t)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:kube-system:ceskit-agent"}
	reg := prometheus.NewRegistry()
	a := startAgent(t, cfg, "nd-local", Config{
		NoDatapathReason: "test without datapath",
		Registry:         reg,
		Watcher:          slicer.WatcherConfig{DeleteGrace: 100 * time.Millisecond, CheckInterval: 200 * time.Millisecond},
		Logger:           testLogger(t),
	})

	eventually(t, "initial sync", func() string {
		st := a.Status()
		if !st.Ready || st.InPolicy != 3 || st.Policies != 1 || len(st.LocalEndpoints) != 2 {
			return fmt.Sprintf("ready=%v inPolicy=%d policies=%d local=%v unresolved=%v lastError=%q",
				st.Ready, st.InPolicy, st.Policies, localNames(st), st.Unresolved, st.LastError)
		}
		return ""
	})
	st := a.Status()
	if st.Mode != ModeNoDatapath || st.ModeReason != "test without datapath" {
		t.Errorf("mode %q (%q), want no-datapath with the given reason", st.Mode, st.ModeReason)
	}
	if st.Watcher.Source != slicer.SourceSlices {
		t.Errorf("watcher source %q (%s), want slices (the heartbeat lease is readable as the ServiceAccount)", st.Watcher.Source, st.Watcher.Reason)
	}
	if want := []string{ns + "/db-1", ns + "/web-1"}; !slices.Equal(localNames(st), want) {
		t.Errorf("local endpoints %v, want %v", localNames(st), want)
	}
	if st.LastError != "" {
		t.Errorf("last error %q (a missing permission?)", st.LastError)
	}
	if !slices.Equal(st.NodeIPs, []string{"192.168.50.10"}) {
		t.Errorf("node IPs %v", st.NodeIPs)
	}
	for _, l := range st.LocalEndpoints {
		ms, err := a.Engine().MapState(l.Endpoint)
		if err != nil {
			t.Fatal(err)
		}
		if l.PolicyEntries != len(ms) || l.PolicyEntries == 0 || l.DatapathEntries != 0 || l.Interface != "" || l.Syncs == 0 {
			t.Errorf("%s: %+v, want %d policy entries, no datapath entries, not attached, synced", l.Endpoint, l, len(ms))
		}
	}
	want := func(what, endpoint string, remote identity.NumericIdentity, port uint16, prefix string) {
		t.Helper()
		eventually(t, what, func() string {
			if got := decision(t, a, endpoint, remote, port); !strings.HasPrefix(got, prefix) {
				return fmt.Sprintf("%s ← %d TCP/%d: %q, want %q…", endpoint, remote, port, got, prefix)
			}
			return ""
		})
	}
	want("web → db 5432", ns+"/db-1", 1001, 5432, "allow by NetworkPolicy "+ns+"/db ingress[0]")
	want("admin → db 5432", ns+"/db-1", 1003, 5432, "default deny")

	// A policy update propagates.
	c.apply(inNamespace(fmt.Sprintf(npDB, 5433), ns))
	want("web → db 5433 after the update", ns+"/db-1", 1001, 5433, "allow by NetworkPolicy "+ns+"/db")
	want("web → db 5432 after the update", ns+"/db-1", 1001, 5432, "default deny")

	// An endpoint whose identity is not known yet waits for it.
	c.updateSlice("ces-nodp-1", func(ces *ciliumv2alpha1.CiliumEndpointSlice) {
		ces.Endpoints = append(ces.Endpoints, ep("cache-1", 1004, "10.200.0.4", "192.168.50.10"))
	})
	eventually(t, "endpoint waits for its identity", func() string {
		st := a.Status()
		if !slices.Contains(st.Unresolved, EndpointProblem{Endpoint: ns + "/cache-1", Reason: "waiting for CiliumIdentity 1004"}) {
			return fmt.Sprintf("unresolved %v", st.Unresolved)
		}
		return ""
	})
	c.identity(1004, ns, map[string]string{"app": "cache"})
	eventually(t, "endpoint resolved", func() string {
		st := a.Status()
		if st.InPolicy != 4 || len(st.Unresolved) != 0 || !slices.Contains(localNames(st), ns+"/cache-1") {
			return fmt.Sprintf("inPolicy=%d unresolved=%v local=%v", st.InPolicy, st.Unresolved, localNames(st))
		}
		return ""
	})

	// An endpoint moving to this node becomes local; a deleted one goes, with its identity's
	// entries in its peers' maps.
	c.updateSlice("ces-nodp-1", func(ces *ciliumv2alpha1.CiliumEndpointSlice) {
		var keep []ciliumv2alpha1.CoreCiliumEndpoint
		for _, e := range ces.Endpoints {
			switch e.Name {
			case "web-1":
				continue
			case "admin-1":
				e.Networking.NodeIP = "192.168.50.10"
			}
			keep = append(keep, e)
		}
		ces.Endpoints = keep
	})
	eventually(t, "move and delete", func() string {
		st := a.Status()
		if want := []string{ns + "/admin-1", ns + "/cache-1", ns + "/db-1"}; !slices.Equal(localNames(st), want) {
			return fmt.Sprintf("local %v, want %v", localNames(st), want)
		}
		if slices.Contains(a.Engine().Endpoints(), ns+"/web-1") {
			return ns + "/web-1 still in the engine"
		}
		ms, _ := a.Engine().MapState(ns + "/db-1")
		for k := range ms {
			if k.Identity == 1001 {
				return "db-1 still has an entry for the deleted endpoint's identity: " + k.String()
			}
		}
		return ""
	})

	// A valid CiliumNetworkPolicy applies; an invalid update of it is reported and keeps it.
	c.apply(inNamespace(fmt.Sprintf(cnpDenyAdmin, ""), ns))
	want("deny admin", ns+"/db-1", 1003, 5433, "deny by CiliumNetworkPolicy "+ns+"/deny-admin ingressDeny[0]")
	before, err := a.Engine().MapState(ns + "/db-1")
	if err != nil {
		t.Fatal(err)
	}
	revision := a.Engine().Revision()
	c.apply(inNamespace(fmt.Sprintf(cnpDenyAdmin, ", endPort: 80"), ns))
	eventually(t, "invalid update reported", func() string {
		st := a.Status()
		if len(st.InvalidPolicies) != 1 {
			return fmt.Sprintf("invalid policies %+v", st.InvalidPolicies)
		}
		ip := st.InvalidPolicies[0]
		if ip.Kind != "CiliumNetworkPolicy" || ip.Namespace != ns || ip.Name != "deny-admin" || !ip.KeptPrevious ||
			len(ip.Errors) != 1 || ip.Errors[0].Field != "spec.ingressDeny[0].toPorts[0].ports[0].endPort" || ip.Errors[0].Value != "80" {
			return fmt.Sprintf("invalid policy %+v", ip)
		}
		return ""
	})
	after, err := a.Engine().MapState(ns + "/db-1")
	if err != nil {
		t.Fatal(err)
	}
	if before.String() != after.String() || a.Engine().Revision() != revision || a.Status().Policies != 2 {
		t.Errorf("the invalid update changed the engine: revision %d → %d, map state\n%s\n→\n%s", revision, a.Engine().Revision(), before, after)
	}
	want("deny admin kept", ns+"/db-1", 1003, 5433, "deny by CiliumNetworkPolicy "+ns+"/deny-admin")
	// Fixed again: the report goes.
	c.apply(inNamespace(fmt.Sprintf(cnpDenyAdmin, ""), ns))
	eventually(t, "fixed policy", func() string {
		if st := a.Status(); len(st.InvalidPolicies) != 0 {
			return fmt.Sprintf("invalid policies %+v", st.InvalidPolicies)
		}
		return ""
	})

	// A deleted policy leaves every map state.
	if err := c.sc.Kube.NetworkingV1().NetworkPolicies(ns).Delete(c.ctx, "db", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "policy deleted", func() string {
		if st := a.Status(); st.Policies != 1 {
			return fmt.Sprintf("%d policies", st.Policies)
		}
		for _, key := range []string{ns + "/db-1", ns + "/admin-1", ns + "/cache-1"} {
			ms, _ := a.Engine().MapState(key)
			for k, e := range ms {
				for _, r := range e.Rules {
					if r.Policy.Kind == "NetworkPolicy" {
						return fmt.Sprintf("%s %s still attributed to %s", key, k, r)
					}
				}
			}
		}
		return ""
	})

	// Metrics went to the registry.
	if v := gauge(t, reg, "cilium_policy"); v != 1 {
		t.Errorf("cilium_policy = %g, want 1", v)
	}
	if v := counterSum(t, reg, "ceskit_watcher_endpoint_events_total"); v < 4 {
		t.Errorf("ceskit_watcher_endpoint_events_total = %g, want at least 4", v)
	}
	b, err := json.MarshalIndent(a.Status(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("status:\n%s", b)
}

func metricFamily(t *testing.T, reg *prometheus.Registry, name string) *dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	return nil
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mf := metricFamily(t, reg, name)
	if mf == nil || len(mf.Metric) == 0 {
		t.Fatalf("metric %s not found", name)
	}
	return mf.Metric[0].GetGauge().GetValue()
}

func counterSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	var sum float64
	if mf := metricFamily(t, reg, name); mf != nil {
		for _, m := range mf.Metric {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// rbacObjects reads deploy/rbac.yaml.
type rbacObjects struct {
	sa           *corev1.ServiceAccount
	clusterRole  *rbacv1.ClusterRole
	clusterBind  *rbacv1.ClusterRoleBinding
	role         *rbacv1.Role
	roleBinding  *rbacv1.RoleBinding
	unrecognised []string
}

func readRBAC(t *testing.T) rbacObjects {
	t.Helper()
	b, err := os.ReadFile("../deploy/rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var out rbacObjects
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		var tm metav1.TypeMeta
		if err := json.Unmarshal(raw, &tm); err != nil {
			t.Fatal(err)
		}
		var target any
		switch tm.Kind {
		case "ServiceAccount":
			out.sa = &corev1.ServiceAccount{}
			target = out.sa
		case "ClusterRole":
			out.clusterRole = &rbacv1.ClusterRole{}
			target = out.clusterRole
		case "ClusterRoleBinding":
			out.clusterBind = &rbacv1.ClusterRoleBinding{}
			target = out.clusterBind
		case "Role":
			out.role = &rbacv1.Role{}
			target = out.role
		case "RoleBinding":
			out.roleBinding = &rbacv1.RoleBinding{}
			target = out.roleBinding
		default:
			out.unrecognised = append(out.unrecognised, tm.Kind)
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(target); err != nil {
			t.Fatalf("decode %s: %v", tm.Kind, err)
		}
	}
	if out.sa == nil || out.clusterRole == nil || out.clusterBind == nil || out.role == nil || out.roleBinding == nil || len(out.unrecognised) > 0 {
		t.Fatalf("rbac.yaml: want a ServiceAccount, ClusterRole, ClusterRoleBinding, Role and RoleBinding; unrecognised %v", out.unrecognised)
	}
	return out
}

// applyRBAC creates the objects of deploy/rbac.yaml (the ServiceAccount's namespace exists).
func (c *cluster) applyRBAC() {
	c.t.Helper()
	r := readRBAC(c.t)
	kube := c.sc.Kube
	_, err := kube.CoreV1().ServiceAccounts(r.sa.Namespace).Create(c.ctx, r.sa, metav1.CreateOptions{})
	c.check("create service account", err)
	c.cleanup("service account", func() error {
		return kube.CoreV1().ServiceAccounts(r.sa.Namespace).Delete(c.ctx, r.sa.Name, metav1.DeleteOptions{})
	})
	_, err = kube.RbacV1().ClusterRoles().Create(c.ctx, r.clusterRole, metav1.CreateOptions{})
	c.check("create cluster role", err)
	c.cleanup("cluster role", func() error {
		return kube.RbacV1().ClusterRoles().Delete(c.ctx, r.clusterRole.Name, metav1.DeleteOptions{})
	})
	_, err = kube.RbacV1().ClusterRoleBindings().Create(c.ctx, r.clusterBind, metav1.CreateOptions{})
	c.check("create cluster role binding", err)
	c.cleanup("cluster role binding", func() error {
		return kube.RbacV1().ClusterRoleBindings().Delete(c.ctx, r.clusterBind.Name, metav1.DeleteOptions{})
	})
	_, err = kube.RbacV1().Roles(r.role.Namespace).Create(c.ctx, r.role, metav1.CreateOptions{})
	c.check("create role", err)
	c.cleanup("role", func() error {
		return kube.RbacV1().Roles(r.role.Namespace).Delete(c.ctx, r.role.Name, metav1.DeleteOptions{})
	})
	_, err = kube.RbacV1().RoleBindings(r.roleBinding.Namespace).Create(c.ctx, r.roleBinding, metav1.CreateOptions{})
	c.check("create role binding", err)
	c.cleanup("role binding", func() error {
		return kube.RbacV1().RoleBindings(r.roleBinding.Namespace).Delete(c.ctx, r.roleBinding.Name, metav1.DeleteOptions{})
	})
}
