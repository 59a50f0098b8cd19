package policy_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ceskit/ceskit/policy"
)

// lintCluster is an AKS cluster with Azure CNI overlay pods and a node subnet.
var lintCluster = policy.LintConfig{
	PodCIDRs:  []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")},
	NodeCIDRs: []netip.Prefix{netip.MustParsePrefix("10.224.0.0/16")},
}

// finding is the part of a policy.Finding the table tests compare.
type finding struct {
	Code, Field string
}

func findings(fs []policy.Finding) []finding {
	var out []finding
	for _, f := range fs {
		out = append(out, finding{f.Code, f.Field})
	}
	return out
}

const npHeader = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: shop}
`

const cnpHeader = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: c, namespace: shop}
`

func TestLint(t *testing.T) {
	managed := lintCluster
	managed.ManagedAKS = true
	managedACNS := managed
	managedACNS.ACNS = true
	spec := lintCluster
	spec.Mode = policy.ModeSpec

	tests := []struct {
		name string
		cfg  policy.LintConfig
		in   string
		want []finding
	}{
		{
			name: "clean policies",
			cfg:  lintCluster,
			in: npHeader + `spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - {}
  - from: []
  - from:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: shop}}
      podSelector: {matchLabels: {app.kubernetes.io/name: front}}
  egress:
  - to:
    - ipBlock: {cidr: 192.0.2.0/24}
---
` + cnpHeader + `spec:
  endpointSelector: {matchLabels: {"k8s:app": web}}
  ingress:
  - fromEntities: [host, remote-node]
    icmps: [{fields: [{type: 8}]}]
  egress:
  - toEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": kube-system}}]
`,
		},
		{
			name: "ipBlock inside the pod range",
			cfg:  lintCluster,
			in: npHeader + `spec:
  podSelector: {}
  egress:
  - to:
    - ipBlock: {cidr: 192.0.2.0/24}
    - ipBlock: {cidr: 10.244.1.0/24}
`,
			want: []finding{{"ipblock-covers-pods", "spec.egress[0].to[1].ipBlock"}},
		},
		{
			name: "ipBlock over pod and node ranges, ingress",
			cfg:  lintCluster,
			in: npHeader + `spec:
  podSelector: {}
  ingress:
  - from:
    - ipBlock: {cidr: 10.0.0.0/8}
`,
			want: []finding{
				{"ipblock-covers-nodes", "spec.ingress[0].from[0].ipBlock"},
				{"ipblock-covers-pods", "spec.ingress[0].from[0].ipBlock"},
			},
		},
		{
			name: "default route with excepts covering the cluster",
			cfg:  lintCluster,
			in: npHeader + `spec:
  podSelector: {}
  egress:
  - to:
    - ipBlock: {cidr: 0.0.0.0/0, except: [10.244.0.0/16, 10.224.0.0/17, 172.16.0.0/12]}
`,
			want: []finding{
				// The node range is only half excepted: the other half is still covered.
				{"ipblock-covers-nodes", "spec.egress[0].to[0].ipBlock"},
				{"ipblock-except-covers-pods", "spec.egress[0].to[0].ipBlock.except[0]"},
				{"ipblock-except-covers-nodes", "spec.egress[0].to[0].ipBlock.except[1]"},
			},
		},
		{
			name: "no CIDR findings in ModeSpec",
			cfg:  spec,
			in: npHeader + `spec:
  podSelector: {}
  egress:
  - to:
    - ipBlock: {cidr: 10.244.1.0/24, except: [10.244.1.0/25]}
`,
		},
		{
			name: "no CIDR findings without cluster ranges",
			cfg:  policy.LintConfig{},
			in: npHeader + `spec:
  podSelector: {}
  egress:
  - to:
    - ipBlock: {cidr: 10.244.1.0/24}
`,
		},
		{
			name: "Cilium CIDR peers in allow and deny rules",
			cfg:  lintCluster,
			in: cnpHeader + `spec:
  endpointSelector: {}
  egress:
  - toCIDR: [10.224.0.4/32, 198.51.100.0/24]
  - toCIDRSet:
    - cidr: 10.0.0.0/8
      except: [10.244.0.0/16, 10.224.0.0/16]
  ingressDeny:
  - fromCIDR: [10.244.3.0/24]
  egressDeny:
  - toCIDRSet: [{cidr: 10.244.0.0/15}]
`,
			want: []finding{
				{"cidr-covers-nodes", "spec.egress[0].toCIDR[0]"},
				{"cidr-except-covers-pods", "spec.egress[1].toCIDRSet[0].except[0]"},
				{"cidr-except-covers-nodes", "spec.egress[1].toCIDRSet[0].except[1]"},
				{"cidr-covers-pods", "spec.egressDeny[0].toCIDRSet[0].cidr"},
				{"cidr-covers-pods", "spec.ingressDeny[0].fromCIDR[0]"},
			},
		},
		{
			name: "policyTypes omit a present section",
			cfg:  lintCluster,
			in: npHeader + `spec:
  podSelector: {}
  policyTypes: [Egress]
  ingress:
  - from: [{podSelector: {}}]
  egress:
  - {}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: q, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Ingress]
  egress:
  - to: [{podSelector: {}}]
`,
			want: []finding{
				{"policytypes-section-ignored", "spec.ingress"},
				{"policytypes-section-ignored", "spec.egress"},
			},
		},
		{
			name: "toFQDNs without any DNS rule",
			cfg:  lintCluster,
			in: cnpHeader + `spec:
  endpointSelector: {}
  egress:
  - toFQDNs: [{matchName: api.example.com}]
    toPorts: [{ports: [{port: "443", protocol: TCP}]}]
`,
			want: []finding{{"fqdn-without-dns-rule", "spec.egress[0].toFQDNs"}},
		},
		{
			name: "toFQDNs with a DNS rule in another policy",
			cfg:  lintCluster,
			in: cnpHeader + `spec:
  endpointSelector: {}
  egress:
  - toFQDNs:
    - matchName: api.example.com
    - matchPattern: "*.example.com"
    - matchName: other.example.org
    - matchPattern: "**.example.org"
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: dns}
spec:
  endpointSelector: {}
  egress:
  - toEndpoints: [{matchLabels: {"k8s:io.kubernetes.pod.namespace": kube-system, "k8s:k8s-app": kube-dns}}]
    toPorts:
    - ports: [{port: "53", protocol: ANY}]
      rules:
        dns:
        - matchPattern: "*.example.com"
        - matchName: api.example.com
`,
			want: []finding{
				{"fqdn-not-in-dns-rule", "spec.egress[0].toFQDNs[2]"},
				{"fqdn-not-in-dns-rule", "spec.egress[0].toFQDNs[3]"},
			},
		},
		{
			name: "managed AKS without ACNS: FQDN and L7 are blocked",
			cfg:  managed,
			in: cnpHeader + `spec:
  endpointSelector: {}
  egress:
  - toFQDNs: [{matchName: api.example.com}]
  - toEndpoints: [{matchLabels: {"k8s:k8s-app": kube-dns}}]
    toPorts:
    - ports: [{port: "53", protocol: UDP}]
      rules:
        dns: [{matchName: api.example.com}]
  ingress:
  - toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules:
        http: [{method: GET, path: "/"}]
`,
			want: []finding{
				{"aks-fqdn-requires-acns", "spec.egress[0].toFQDNs"},
				{"aks-fqdn-requires-acns", "spec.egress[1].toPorts[0].rules.dns"},
				{"aks-l7-requires-acns", "spec.ingress[0].toPorts[0].rules.http"},
				{"l7-enforced-at-l4", "spec.ingress[0].toPorts[0].rules.http"},
			},
		},
		{
			name: "managed AKS with ACNS: L7 level and DNS wildcard",
			cfg:  managedACNS,
			in: cnpHeader + `spec:
  endpointSelector: {}
  egress:
  - toFQDNs: [{matchName: api.example.com}]
  - toEndpoints: [{matchLabels: {"k8s:k8s-app": kube-dns}}]
    toPorts:
    - ports: [{port: "53", protocol: UDP}]
      rules:
        dns: [{matchPattern: "*"}]
  - toEndpoints: [{matchLabels: {app: kafka}}]
    toPorts:
    - ports: [{port: "9092", protocol: TCP}]
      rules:
        kafka: [{role: produce, topic: orders}]
`,
			want: []finding{
				{"aks-dns-wildcard-unsupported", "spec.egress[1].toPorts[0].rules.dns[0].matchPattern"},
				{"aks-l7-needs-acns-l7", "spec.egress[2].toPorts[0].rules.kafka"},
				{"l7-enforced-at-l4", "spec.egress[2].toPorts[0].rules.kafka"},
			},
		},
		{
			name: "L7 http outside managed AKS",
			cfg:  lintCluster,
			in: cnpHeader + `specs:
- endpointSelector: {}
  ingress:
  - toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules:
        http: [{method: GET}]
`,
			want: []finding{{"l7-enforced-at-l4", "specs[0].ingress[0].toPorts[0].rules.http"}},
		},
		{
			name: "host policy",
			cfg:  lintCluster,
			in: `apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: host}
spec:
  nodeSelector: {}
  ingress:
  - toPorts: [{ports: [{port: "22", protocol: TCP}]}]
`,
			want: []finding{{"host-policy-not-enforced", "spec.nodeSelector"}},
		},
		{
			name: "fields the engine does not enforce",
			cfg:  lintCluster,
			in: cnpHeader + `spec:
  endpointSelector: {}
  ingress:
  - fromEndpoints: [{matchLabels: {app: a}}]
    fromRequires: [{matchLabels: {env: prod}}]
    fromGroups: [{aws: {securityGroupsIds: [sg-1]}}]
    authentication: {mode: required}
    toPorts:
    - ports: [{port: "443", protocol: TCP}]
      serverNames: [shop.example.com]
      terminatingTLS: {secret: {name: t}}
      originatingTLS: {secret: {name: o}}
      listener: {envoyConfig: {name: e}, name: l}
  - fromCIDRSet:
    - cidrGroupRef: office
    - cidrGroupSelector: {matchLabels: {site: hq}}
  - icmps: [{fields: [{type: EchoRequest, family: IPv6}]}]
  egress:
  - toServices: [{k8sService: {serviceName: db, namespace: shop}}]
  - toGroups: [{aws: {securityGroupsNames: [db]}}]
  - toEndpoints: [{matchLabels: {app: b}}]
    toRequires: [{matchLabels: {env: prod}}]
    authentication: {mode: disabled}
`,
			want: []finding{
				{"not-enforced", "spec.egress[0].toServices"},
				{"not-enforced", "spec.egress[1].toGroups"},
				{"not-enforced", "spec.egress[2].toRequires"},
				{"not-enforced", "spec.ingress[0].authentication"},
				{"not-enforced", "spec.ingress[0].fromGroups"},
				{"not-enforced", "spec.ingress[0].fromRequires"},
				{"not-enforced", "spec.ingress[0].toPorts[0].listener"},
				{"not-enforced", "spec.ingress[0].toPorts[0].originatingTLS"},
				{"not-enforced", "spec.ingress[0].toPorts[0].serverNames"},
				{"not-enforced", "spec.ingress[0].toPorts[0].terminatingTLS"},
				{"not-enforced", "spec.ingress[1].fromCIDRSet[0].cidrGroupRef"},
				{"not-enforced", "spec.ingress[1].fromCIDRSet[1].cidrGroupSelector"},
			},
		},
		{
			name: "labels the identity filter drops",
			cfg:  lintCluster,
			in: npHeader + `spec:
  podSelector:
    matchLabels: {app: web, pod-template-hash: 7d9f8c}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: shop}}
      podSelector:
        matchExpressions:
        - {key: statefulset.kubernetes.io/pod-name, operator: In, values: [db-0]}
        - {key: tier, operator: Exists}
---
` + cnpHeader + `spec:
  endpointSelector:
    matchLabels: {"k8s:controller-revision-hash": abc, "any:app": web}
  egress:
  - toEndpoints:
    - matchExpressions:
      - {key: topology.kubernetes.io/zone, operator: NotIn, values: [eu-1]}
      - {key: "k8s:io.kubernetes.pod.namespace", operator: Exists}
`,
			want: []finding{
				{"selector-label-not-identity", "spec.egress[0].toEndpoints[0].matchExpressions[0].key"},
				{"selector-label-not-identity", "spec.endpointSelector.matchLabels[k8s:controller-revision-hash]"},
				{"selector-label-not-identity", "spec.ingress[0].from[0].podSelector.matchExpressions[0].key"},
				{"selector-label-not-identity", "spec.podSelector.matchLabels[pod-template-hash]"},
			},
		},
		{
			name: "unknown fields",
			cfg:  lintCluster,
			in: npHeader + `spec:
  podSelektor: {}
  ingress:
  - fromm: []
`,
			want: []finding{
				{"unknown-field", "spec.ingress[0].fromm"},
				{"unknown-field", "spec.podSelektor"},
			},
		},
		{
			name: "invalid policies give one finding per field error",
			cfg:  lintCluster,
			in: npHeader + `spec:
  podSelector: {}
  egress:
  - to:
    - ipBlock: {cidr: 10.244.0.0/16, except: [192.0.2.0/24]}
    ports:
    - {endPort: 90}
  ingress:
  - fromm: []
---
` + cnpHeader + `spec:
  endpointSelector: {}
  egress:
  - toEntities: [wrld]
`,
			want: []finding{
				{"invalid", "spec.egress[0].toEntities[0]"},
				{"invalid", "spec.egress[0].ports[0].endPort"},
				{"invalid", "spec.egress[0].to[0].ipBlock.except[0]"},
				{"unknown-field", "spec.ingress[0].fromm"},
			},
		},
		{
			name: "NetworkPolicy without namespace is linted as in default",
			cfg:  lintCluster,
			in: `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p}
spec:
  podSelector: {}
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := policy.Lint([]byte(tt.in), tt.cfg)
			if err != nil {
				t.Fatalf("Lint: %v", err)
			}
			if diff := cmp.Diff(tt.want, findings(got)); diff != "" {
				t.Errorf("Lint (-want +got):\n%s", diff)
				for _, f := range got {
					t.Logf("%s", f)
				}
			}
			for _, f := range got {
				if f.Message == "" {
					t.Errorf("%s %s: empty message", f.Code, f.Field)
				}
			}
		})
	}
}

func TestLintSeverities(t *testing.T) {
	cfg := lintCluster
	cfg.ManagedAKS = true
	in := npHeader + `spec:
  podSelector: {}
  egress:
  - to:
    - ipBlock: {cidr: 0.0.0.0/0}
    - ipBlock: {cidr: 10.244.0.0/24, except: [10.244.0.0/25]}
---
` + cnpHeader + `spec:
  endpointSelector: {}
  ingress:
  - fromGroups: [{aws: {securityGroupsIds: [sg-1]}}]
  - fromRequires: [{matchLabels: {env: prod}}]
  egress:
  - toFQDNs: [{matchName: example.com}]
  - toEndpoints: [{}]
    toRequires: [{matchLabels: {env: prod}}]
`
	got, err := policy.Lint([]byte(in), cfg)
	if err != nil {
		t.Fatal(err)
	}
	type sev struct {
		Code, Field, Severity string
	}
	var gotSev []sev
	for _, f := range got {
		gotSev = append(gotSev, sev{f.Code, f.Field, f.Severity.String()})
	}
	want := []sev{
		{"aks-fqdn-requires-acns", "spec.egress[0].toFQDNs", "error"},
		{"fqdn-without-dns-rule", "spec.egress[0].toFQDNs", "warning"},
		{"not-enforced", "spec.egress[1].toRequires", "warning"},
		// The engine reads a rule whose only peer it ignores as matching every source.
		{"not-enforced", "spec.ingress[0].fromGroups", "error"},
		{"not-enforced", "spec.ingress[1].fromRequires", "error"},
		{"ipblock-covers-nodes", "spec.egress[0].to[0].ipBlock", "info"},
		{"ipblock-covers-pods", "spec.egress[0].to[0].ipBlock", "info"},
		{"ipblock-covers-pods", "spec.egress[0].to[1].ipBlock", "warning"},
		{"ipblock-except-covers-pods", "spec.egress[0].to[1].ipBlock.except[0]", "info"},
	}
	if diff := cmp.Diff(want, gotSev); diff != "" {
		t.Errorf("severities (-want +got):\n%s", diff)
	}
	for _, f := range got {
		if strings.HasPrefix(f.Code, "ipblock-covers") && !strings.Contains(f.Message, "Network policies cannot use ipBlock to allow access to node or pod IPs") {
			t.Errorf("%s: message does not quote the AKS limitation: %s", f.Code, f.Message)
		}
		if f.Code == "ipblock-covers-nodes" && !strings.Contains(f.Fix, "no way") {
			t.Errorf("ipblock-covers-nodes fix does not say NetworkPolicy cannot select nodes: %s", f.Fix)
		}
	}
}

func TestLintSortsByPolicy(t *testing.T) {
	in := `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b, namespace: ns-x}
spec: {podSelector: {}, podSelektor: {}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a, namespace: ns-y}
spec: {podSelector: {}, podSelektor: {}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a, namespace: ns-x}
spec: {podSelector: {}, podSelektor: {}}
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: z}
spec: {endpointSelector: {}, bogus: 1}
`
	got, err := policy.Lint([]byte(in), policy.LintConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, f := range got {
		refs = append(refs, f.Policy.String())
	}
	want := []string{"CiliumClusterwideNetworkPolicy z", "NetworkPolicy ns-x/a", "NetworkPolicy ns-x/b", "NetworkPolicy ns-y/a"}
	if diff := cmp.Diff(want, refs); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

func TestLintUndecodable(t *testing.T) {
	for _, in := range []string{
		"apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n",
		"- just\n- a list\n",
		"kind: NetworkPolicy\n",
	} {
		if got, err := policy.Lint([]byte(in), policy.LintConfig{}); err == nil {
			t.Errorf("Lint(%q) = %v, want an error", in, got)
		}
	}
}

func TestLintObjects(t *testing.T) {
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "shop"},
		Spec: networkingv1.NetworkPolicySpec{
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.244.7.0/24"}}},
			}},
		},
	}
	before := np.DeepCopy()
	got := policy.LintObjects([]runtime.Object{np, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "y"}}}, lintCluster)
	want := []finding{
		{"unsupported-object", ""}, // kind "*v1.Pod" sorts first
		{"policytypes-section-ignored", "spec.egress"},
		{"ipblock-covers-pods", "spec.egress[0].to[0].ipBlock"},
	}
	if diff := cmp.Diff(want, findings(got)); diff != "" {
		t.Errorf("LintObjects (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(before, np); diff != "" {
		t.Errorf("LintObjects modified its input (-before +after):\n%s", diff)
	}
}

func TestSeverityString(t *testing.T) {
	for s, want := range map[policy.Severity]string{
		policy.SeverityInfo: "info", policy.SeverityWarning: "warning", policy.SeverityError: "error", 7: "severity(7)",
	} {
		if got := s.String(); got != want {
			t.Errorf("Severity(%d).String() = %q, want %q", int(s), got, want)
		}
	}
}

func TestLintSortsFieldsByElement(t *testing.T) {
	cidrs := make([]string, 11)
	for i := range cidrs {
		cidrs[i] = fmt.Sprintf("10.244.%d.0/24", i)
	}
	in := cnpHeader + `spec:
  endpointSelector: {}
  egress:
  - toCIDR: [` + strings.Join(cidrs, ", ") + `]
  egressDeny:
  - toCIDR: [10.244.99.0/24]
`
	got, err := policy.Lint([]byte(in), lintCluster)
	if err != nil {
		t.Fatal(err)
	}
	var fields []string
	for _, f := range got {
		fields = append(fields, f.Field)
	}
	var want []string
	for i := range cidrs {
		want = append(want, fmt.Sprintf("spec.egress[0].toCIDR[%d]", i))
	}
	want = append(want, "spec.egressDeny[0].toCIDR[0]")
	if diff := cmp.Diff(want, fields); diff != "" {
		t.Errorf("field order (-want +got):\n%s", diff)
	}
}
