package policy_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/ceskit/ceskit/policy"
	"github.com/ceskit/ceskit/policy/ciliumv2"
)

func k8sProto(p corev1.Protocol) *corev1.Protocol { return &p }
func k8sInt32(i int32) *int32                     { return &i }
func k8sIntPort(i int32) *intstr.IntOrString      { p := intstr.FromInt32(i); return &p }
func k8sNamedPort(s string) *intstr.IntOrString   { p := intstr.FromString(s); return &p }

func TestDefaultNetworkPolicy(t *testing.T) {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	ingress := networkingv1.PolicyTypeIngress
	egress := networkingv1.PolicyTypeEgress
	tests := []struct {
		name string
		in   networkingv1.NetworkPolicySpec
		want networkingv1.NetworkPolicySpec
	}{
		{
			name: "empty spec gets Ingress only",
			in:   networkingv1.NetworkPolicySpec{},
			want: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{ingress}},
		},
		{
			name: "egress rules add Egress",
			in:   networkingv1.NetworkPolicySpec{Egress: []networkingv1.NetworkPolicyEgressRule{{}}},
			want: networkingv1.NetworkPolicySpec{
				Egress:      []networkingv1.NetworkPolicyEgressRule{{}},
				PolicyTypes: []networkingv1.PolicyType{ingress, egress},
			},
		},
		{
			name: "empty egress list does not add Egress",
			in:   networkingv1.NetworkPolicySpec{Egress: []networkingv1.NetworkPolicyEgressRule{}},
			want: networkingv1.NetworkPolicySpec{
				Egress:      []networkingv1.NetworkPolicyEgressRule{},
				PolicyTypes: []networkingv1.PolicyType{ingress},
			},
		},
		{
			name: "explicit policyTypes kept even with egress rules",
			in: networkingv1.NetworkPolicySpec{
				Egress:      []networkingv1.NetworkPolicyEgressRule{{}},
				PolicyTypes: []networkingv1.PolicyType{ingress},
			},
			want: networkingv1.NetworkPolicySpec{
				Egress:      []networkingv1.NetworkPolicyEgressRule{{}},
				PolicyTypes: []networkingv1.PolicyType{ingress},
			},
		},
		{
			name: "explicit Egress only kept",
			in:   networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{egress}},
			want: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{egress}},
		},
		{
			name: "ports without protocol get TCP in ingress and egress, explicit protocol kept",
			in: networkingv1.NetworkPolicySpec{
				Ingress: []networkingv1.NetworkPolicyIngressRule{
					{Ports: []networkingv1.NetworkPolicyPort{{Port: k8sIntPort(80)}, {Protocol: &udp}}},
					{Ports: []networkingv1.NetworkPolicyPort{{}}},
				},
				Egress: []networkingv1.NetworkPolicyEgressRule{
					{Ports: []networkingv1.NetworkPolicyPort{{Port: k8sNamedPort("dns")}}},
				},
			},
			want: networkingv1.NetworkPolicySpec{
				Ingress: []networkingv1.NetworkPolicyIngressRule{
					{Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: k8sIntPort(80)}, {Protocol: &udp}}},
					{Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp}}},
				},
				Egress: []networkingv1.NetworkPolicyEgressRule{
					{Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: k8sNamedPort("dns")}}},
				},
				PolicyTypes: []networkingv1.PolicyType{ingress, egress},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			np := &networkingv1.NetworkPolicy{Spec: tt.in}
			policy.DefaultNetworkPolicy(np)
			if diff := cmp.Diff(tt.want, np.Spec); diff != "" {
				t.Errorf("DefaultNetworkPolicy (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("nil", func(t *testing.T) {
		policy.DefaultNetworkPolicy(nil) // must not panic
	})
	t.Run("idempotent", func(t *testing.T) {
		np := &networkingv1.NetworkPolicy{Spec: networkingv1.NetworkPolicySpec{Egress: []networkingv1.NetworkPolicyEgressRule{{}}}}
		policy.DefaultNetworkPolicy(np)
		once := np.DeepCopy()
		policy.DefaultNetworkPolicy(np)
		if diff := cmp.Diff(once, np); diff != "" {
			t.Errorf("second DefaultNetworkPolicy changed the policy (-once +twice):\n%s", diff)
		}
	})
}

// k8sFieldErr is the part of a field.Error the tests compare: type, path and offending value.
type k8sFieldErr struct {
	Type  field.ErrorType
	Field string
	Value string
}

func k8sSummarize(errs field.ErrorList) []k8sFieldErr {
	var out []k8sFieldErr
	for _, e := range errs {
		v := ""
		if e.Type == field.ErrorTypeInvalid || e.Type == field.ErrorTypeNotSupported {
			v = fmt.Sprintf("%T(%v)", e.BadValue, e.BadValue)
		}
		out = append(out, k8sFieldErr{Type: e.Type, Field: e.Field, Value: v})
	}
	return out
}

// k8sValidPolicy returns a defaulted policy the API server accepts.
func k8sValidPolicy() *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "allow-web", Namespace: "prod"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				Ports: []networkingv1.NetworkPolicyPort{
					{Port: k8sIntPort(80)},
					{Protocol: k8sProto(corev1.ProtocolSCTP), Port: k8sIntPort(1000), EndPort: k8sInt32(2000)},
					{Protocol: k8sProto(corev1.ProtocolUDP), Port: k8sNamedPort("dns")},
				},
				From: []networkingv1.NetworkPolicyPeer{
					{PodSelector: &metav1.LabelSelector{}},
					{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
						{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpIn, Values: []string{"a", "b"}},
					}}},
				},
			}},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To: []networkingv1.NetworkPolicyPeer{
					{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"10.1.0.0/16"}}},
					{IPBlock: &networkingv1.IPBlock{CIDR: "fd00::/64", Except: []string{"fd00::/96"}}},
				},
			}},
		},
	}
	policy.DefaultNetworkPolicy(np)
	return np
}

func TestValidateNetworkPolicy(t *testing.T) {
	type np = networkingv1.NetworkPolicy
	tests := []struct {
		name   string
		mutate func(*np)
		want   []k8sFieldErr
	}{
		{name: "valid", mutate: func(*np) {}},
		{
			name:   "generateName without name is accepted",
			mutate: func(p *np) { p.Name, p.GenerateName = "", "allow-" },
		},
		{
			name:   "missing name",
			mutate: func(p *np) { p.Name = "" },
			want:   []k8sFieldErr{{field.ErrorTypeRequired, "metadata.name", ""}},
		},
		{
			name:   "name not a DNS subdomain",
			mutate: func(p *np) { p.Name = "Allow_Web" },
			want:   []k8sFieldErr{{field.ErrorTypeInvalid, "metadata.name", "string(Allow_Web)"}},
		},
		{
			name:   "missing namespace",
			mutate: func(p *np) { p.Namespace = "" },
			want:   []k8sFieldErr{{field.ErrorTypeRequired, "metadata.namespace", ""}},
		},
		{
			name:   "namespace not a DNS label",
			mutate: func(p *np) { p.Namespace = "a.b" },
			want:   []k8sFieldErr{{field.ErrorTypeInvalid, "metadata.namespace", "string(a.b)"}},
		},
		{
			name:   "finalizer neither standard nor qualified",
			mutate: func(p *np) { p.Finalizers = []string{"example.com/ok", "mine"} },
			want:   []k8sFieldErr{{field.ErrorTypeInvalid, "metadata.finalizers[1]", "string(mine)"}},
		},
		{
			name: "In without values",
			mutate: func(p *np) {
				p.Spec.PodSelector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn}}
			},
			want: []k8sFieldErr{{field.ErrorTypeRequired, "spec.podSelector.matchExpressions[0].values", ""}},
		},
		{
			name: "NotIn without values",
			mutate: func(p *np) {
				p.Spec.PodSelector.MatchExpressions = []metav1.LabelSelectorRequirement{
					{Key: "app", Operator: metav1.LabelSelectorOpExists},
					{Key: "tier", Operator: metav1.LabelSelectorOpNotIn, Values: []string{}},
				}
			},
			want: []k8sFieldErr{{field.ErrorTypeRequired, "spec.podSelector.matchExpressions[1].values", ""}},
		},
		{
			name: "Exists with values",
			mutate: func(p *np) {
				p.Spec.PodSelector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpExists, Values: []string{"x"}}}
			},
			want: []k8sFieldErr{{field.ErrorTypeForbidden, "spec.podSelector.matchExpressions[0].values", ""}},
		},
		{
			name: "DoesNotExist with values",
			mutate: func(p *np) {
				p.Spec.PodSelector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpDoesNotExist, Values: []string{"x"}}}
			},
			want: []k8sFieldErr{{field.ErrorTypeForbidden, "spec.podSelector.matchExpressions[0].values", ""}},
		},
		{
			name: "unknown operator",
			mutate: func(p *np) {
				p.Spec.PodSelector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Equals", Values: []string{"x"}}}
			},
			want: []k8sFieldErr{{field.ErrorTypeInvalid, "spec.podSelector.matchExpressions[0].operator", "v1.LabelSelectorOperator(Equals)"}},
		},
		{
			name:   "bad matchLabels key",
			mutate: func(p *np) { p.Spec.PodSelector.MatchLabels = map[string]string{"-app": "web"} },
			want:   []k8sFieldErr{{field.ErrorTypeInvalid, "spec.podSelector.matchLabels", "string(-app)"}},
		},
		{
			name:   "bad matchLabels value",
			mutate: func(p *np) { p.Spec.PodSelector.MatchLabels = map[string]string{"app": "web server"} },
			want:   []k8sFieldErr{{field.ErrorTypeInvalid, "spec.podSelector.matchLabels", "string(web server)"}},
		},
		{
			name: "bad value in matchExpressions",
			mutate: func(p *np) {
				p.Spec.PodSelector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"ok", "not ok"}}}
			},
			want: []k8sFieldErr{{field.ErrorTypeInvalid, "spec.podSelector.matchExpressions[0].values[1]", "string(not ok)"}},
		},
		{
			name: "bad key in a peer's namespaceSelector",
			mutate: func(p *np) {
				p.Spec.Ingress[0].From[1].NamespaceSelector.MatchExpressions[0].Key = "a/b/c"
			},
			want: []k8sFieldErr{{field.ErrorTypeInvalid, "spec.ingress[0].from[1].namespaceSelector.matchExpressions[0].key", "string(a/b/c)"}},
		},
		{
			name: "bad value in an egress peer's podSelector",
			mutate: func(p *np) {
				p.Spec.Egress[0].To = append(p.Spec.Egress[0].To, networkingv1.NetworkPolicyPeer{
					PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": strings.Repeat("x", 64)}},
				})
			},
			want: []k8sFieldErr{{field.ErrorTypeInvalid, "spec.egress[0].to[2].podSelector.matchLabels", "string(" + strings.Repeat("x", 64) + ")"}},
		},
		{
			name:   "protocol not supported",
			mutate: func(p *np) { p.Spec.Ingress[0].Ports[0].Protocol = k8sProto("ICMP") },
			want:   []k8sFieldErr{{field.ErrorTypeNotSupported, "spec.ingress[0].ports[0].protocol", "v1.Protocol(ICMP)"}},
		},
		{
			name:   "protocol is case-sensitive",
			mutate: func(p *np) { p.Spec.Ingress[0].Ports[0].Protocol = k8sProto("tcp") },
			want:   []k8sFieldErr{{field.ErrorTypeNotSupported, "spec.ingress[0].ports[0].protocol", "v1.Protocol(tcp)"}},
		},
		{
			name:   "port 0",
			mutate: func(p *np) { p.Spec.Ingress[0].Ports[0].Port = k8sIntPort(0) },
			want:   []k8sFieldErr{{field.ErrorTypeInvalid, "spec.ingress[0].ports[0].port", "int32(0)"}},
		},
		{
			name:   "port 65536",
			mutate: func(p *np) { p.Spec.Ingress[0].Ports[0].Port = k8sIntPort(65536) },
			want:   []k8sFieldErr{{field.ErrorTypeInvalid, "spec.ingress[0].ports[0].port", "int32(65536)"}},
		},
		{
			name:   "port name longer than 15",
			mutate: func(p *np) { p.Spec.Ingress[0].Ports[2].Port = k8sNamedPort("a-very-long-name") },
			want:   []k8sFieldErr{{field.ErrorTypeInvalid, "spec.ingress[0].ports[2].port", "string(a-very-long-name)"}},
		},
		{
			name:   "numeric string port is not a name",
			mutate: func(p *np) { p.Spec.Ingress[0].Ports[2].Port = k8sNamedPort("53") },
			want:   []k8sFieldErr{{field.ErrorTypeInvalid, "spec.ingress[0].ports[2].port", "string(53)"}},
		},
		{
			name:   "endPort below port reports the port",
			mutate: func(p *np) { p.Spec.Ingress[0].Ports[1].EndPort = k8sInt32(999) },
			want:   []k8sFieldErr{{field.ErrorTypeInvalid, "spec.ingress[0].ports[1].endPort", "int32(1000)"}},
		},
		{
			name:   "endPort equal to port",
			mutate: func(p *np) { p.Spec.Ingress[0].Ports[1].EndPort = k8sInt32(1000) },
		},
		{
			name:   "endPort out of range",
			mutate: func(p *np) { p.Spec.Ingress[0].Ports[1].EndPort = k8sInt32(70000) },
			want:   []k8sFieldErr{{field.ErrorTypeInvalid, "spec.ingress[0].ports[1].endPort", "int32(70000)"}},
		},
		{
			name:   "endPort with named port",
			mutate: func(p *np) { p.Spec.Ingress[0].Ports[2].EndPort = k8sInt32(60) },
			want:   []k8sFieldErr{{field.ErrorTypeInvalid, "spec.ingress[0].ports[2].endPort", "int32(60)"}},
		},
		{
			name: "endPort without port",
			mutate: func(p *np) {
				p.Spec.Egress[0].Ports = []networkingv1.NetworkPolicyPort{{Protocol: k8sProto(corev1.ProtocolTCP), EndPort: k8sInt32(90)}}
			},
			want: []k8sFieldErr{{field.ErrorTypeInvalid, "spec.egress[0].ports[0].endPort", "int32(90)"}},
		},
		{
			name: "empty peer",
			mutate: func(p *np) {
				p.Spec.Egress[0].To = append(p.Spec.Egress[0].To, networkingv1.NetworkPolicyPeer{})
			},
			want: []k8sFieldErr{{field.ErrorTypeRequired, "spec.egress[0].to[2]", ""}},
		},
		{
			name: "ipBlock with podSelector",
			mutate: func(p *np) {
				p.Spec.Ingress[0].From[0].IPBlock = &networkingv1.IPBlock{CIDR: "192.168.0.0/16"}
			},
			want: []k8sFieldErr{{field.ErrorTypeForbidden, "spec.ingress[0].from[0]", ""}},
		},
		{
			name: "ipBlock with namespaceSelector and a bad cidr",
			mutate: func(p *np) {
				p.Spec.Ingress[0].From[1].IPBlock = &networkingv1.IPBlock{CIDR: "192.168.0.0/33"}
			},
			want: []k8sFieldErr{
				{field.ErrorTypeInvalid, "spec.ingress[0].from[1].ipBlock.cidr", "string(192.168.0.0/33)"},
				{field.ErrorTypeForbidden, "spec.ingress[0].from[1]", ""},
			},
		},
		{
			name:   "ipBlock without cidr",
			mutate: func(p *np) { p.Spec.Egress[0].To[0].IPBlock = &networkingv1.IPBlock{Except: []string{"junk"}} },
			want:   []k8sFieldErr{{field.ErrorTypeRequired, "spec.egress[0].to[0].ipBlock.cidr", ""}},
		},
		{
			name:   "cidr without prefix length",
			mutate: func(p *np) { p.Spec.Egress[0].To[0].IPBlock.CIDR = "10.0.0.0" },
			want:   []k8sFieldErr{{field.ErrorTypeInvalid, "spec.egress[0].to[0].ipBlock.cidr", "string(10.0.0.0)"}},
		},
		{
			name:   "cidr with host bits set (strict validation)",
			mutate: func(p *np) { p.Spec.Egress[0].To[0].IPBlock.CIDR = "10.0.0.1/8" },
			want:   []k8sFieldErr{{field.ErrorTypeInvalid, "spec.egress[0].to[0].ipBlock.cidr", "string(10.0.0.1/8)"}},
		},
		{
			name:   "except with leading zeros (strict validation)",
			mutate: func(p *np) { p.Spec.Egress[0].To[0].IPBlock.Except = []string{"10.01.0.0/16"} },
			want:   []k8sFieldErr{{field.ErrorTypeInvalid, "spec.egress[0].to[0].ipBlock.except[0]", "string(10.01.0.0/16)"}},
		},
		{
			name:   "except equal to cidr",
			mutate: func(p *np) { p.Spec.Egress[0].To[0].IPBlock.Except = []string{"10.0.0.0/8"} },
			want:   []k8sFieldErr{{field.ErrorTypeInvalid, "spec.egress[0].to[0].ipBlock.except[0]", "string(10.0.0.0/8)"}},
		},
		{
			name:   "except outside cidr",
			mutate: func(p *np) { p.Spec.Egress[0].To[0].IPBlock.Except = []string{"10.2.0.0/16", "11.0.0.0/16"} },
			want:   []k8sFieldErr{{field.ErrorTypeInvalid, "spec.egress[0].to[0].ipBlock.except[1]", "string(11.0.0.0/16)"}},
		},
		{
			name:   "except of the other family",
			mutate: func(p *np) { p.Spec.Egress[0].To[1].IPBlock.Except = []string{"10.1.0.0/16"} },
			want:   []k8sFieldErr{{field.ErrorTypeInvalid, "spec.egress[0].to[1].ipBlock.except[0]", "string(10.1.0.0/16)"}},
		},
		{
			name:   "except not a CIDR",
			mutate: func(p *np) { p.Spec.Ingress = nil; p.Spec.Egress[0].To[1].IPBlock.Except = []string{"fd00::1"} },
			want:   []k8sFieldErr{{field.ErrorTypeInvalid, "spec.egress[0].to[1].ipBlock.except[0]", "string(fd00::1)"}},
		},
		{
			name: "three policyTypes",
			mutate: func(p *np) {
				p.Spec.PolicyTypes = []networkingv1.PolicyType{"Ingress", "Egress", "Bogus"}
			},
			want: []k8sFieldErr{{field.ErrorTypeInvalid, "spec.policyTypes", "[]v1.PolicyType([Ingress Egress Bogus])"}},
		},
		{
			name:   "unknown policyType",
			mutate: func(p *np) { p.Spec.PolicyTypes = []networkingv1.PolicyType{"Ingress", "egress"} },
			want:   []k8sFieldErr{{field.ErrorTypeNotSupported, "spec.policyTypes[1]", "v1.PolicyType(egress)"}},
		},
		{
			// The API server accepts a duplicated type; so must we.
			name:   "duplicate policyType accepted like the API server",
			mutate: func(p *np) { p.Spec.PolicyTypes = []networkingv1.PolicyType{"Ingress", "Ingress"} },
		},
		{
			name: "errors in order metadata, podSelector, ingress, egress, policyTypes",
			mutate: func(p *np) {
				p.Namespace = ""
				p.Spec.PodSelector.MatchLabels = map[string]string{"app": "-"}
				p.Spec.Ingress[0].Ports[0].Protocol = k8sProto("ICMP")
				p.Spec.Ingress[0].Ports[0].Port = k8sIntPort(0)
				p.Spec.Egress[0].To[0] = networkingv1.NetworkPolicyPeer{}
				p.Spec.PolicyTypes = []networkingv1.PolicyType{"Both"}
			},
			want: []k8sFieldErr{
				{field.ErrorTypeRequired, "metadata.namespace", ""},
				{field.ErrorTypeInvalid, "spec.podSelector.matchLabels", "string(-)"},
				{field.ErrorTypeNotSupported, "spec.ingress[0].ports[0].protocol", "v1.Protocol(ICMP)"},
				{field.ErrorTypeInvalid, "spec.ingress[0].ports[0].port", "int32(0)"},
				{field.ErrorTypeRequired, "spec.egress[0].to[0]", ""},
				{field.ErrorTypeNotSupported, "spec.policyTypes[0]", "v1.PolicyType(Both)"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := k8sValidPolicy()
			tt.mutate(p)
			before := p.DeepCopy()
			got := policy.ValidateNetworkPolicy(p)
			if diff := cmp.Diff(tt.want, k8sSummarize(got)); diff != "" {
				t.Errorf("ValidateNetworkPolicy (-want +got):\n%s\nerrors: %v", diff, got)
			}
			if diff := cmp.Diff(before, p); diff != "" {
				t.Errorf("ValidateNetworkPolicy modified its argument (-before +after):\n%s", diff)
			}
		})
	}
}

const k8sMultiDoc = `# leading comment
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: np1
  namespace: prod
spec:
  podSelector:
    matchLabels:
      app: web
  ingress:
  - ports:
    - port: 80
    - port: http
      protocol: UDP
---
# only a comment
---
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: cnp1
  namespace: prod
spec:
  endpointSelector:
    matchLabels:
      app: web
  ingress:
  - fromEndpoints:
    - {}
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: ccnp1
spec:
  nodeSelector: {}
  ingress:
  - fromEntities: [cluster]
---
apiVersion: v1
kind: List
items:
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata:
    name: np2
    namespace: dev
  spec:
    podSelector: {}
    policyTypes: [Egress]
- apiVersion: cilium.io/v2
  kind: CiliumNetworkPolicy
  metadata:
    name: cnp2
    namespace: dev
  spec:
    endpointSelector: {}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicyList
items:
- metadata:
    name: np3
    namespace: dev
  spec:
    podSelector: {}
`

// k8sRef names a decoded object for comparison.
type k8sRef struct {
	Type, APIVersion, Kind, Namespace, Name string
}

func k8sRefs(t *testing.T, objs []runtime.Object) []k8sRef {
	t.Helper()
	var out []k8sRef
	for _, o := range objs {
		m, ok := o.(metav1.Object)
		if !ok {
			t.Fatalf("%T has no object meta", o)
		}
		gvk := o.GetObjectKind().GroupVersionKind()
		out = append(out, k8sRef{fmt.Sprintf("%T", o), gvk.GroupVersion().String(), gvk.Kind, m.GetNamespace(), m.GetName()})
	}
	return out
}

func TestDecodeObjects(t *testing.T) {
	const np, cnp, ccnp = "*v1.NetworkPolicy", "*ciliumv2.CiliumNetworkPolicy", "*ciliumv2.CiliumClusterwideNetworkPolicy"
	tests := []struct {
		name string
		in   string
		want []k8sRef
	}{
		{
			name: "multi-document YAML with a List and a typed list",
			in:   k8sMultiDoc,
			want: []k8sRef{
				{np, "networking.k8s.io/v1", "NetworkPolicy", "prod", "np1"},
				{cnp, "cilium.io/v2", "CiliumNetworkPolicy", "prod", "cnp1"},
				{ccnp, "cilium.io/v2", "CiliumClusterwideNetworkPolicy", "", "ccnp1"},
				{np, "networking.k8s.io/v1", "NetworkPolicy", "dev", "np2"},
				{cnp, "cilium.io/v2", "CiliumNetworkPolicy", "dev", "cnp2"},
				{np, "networking.k8s.io/v1", "NetworkPolicy", "dev", "np3"},
			},
		},
		{
			name: "JSON stream",
			in: `{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"a","namespace":"x"},"spec":{"podSelector":{}}}
{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"cilium.io/v2","kind":"CiliumNetworkPolicy","metadata":{"name":"b","namespace":"x"}}]}`,
			want: []k8sRef{
				{np, "networking.k8s.io/v1", "NetworkPolicy", "x", "a"},
				{cnp, "cilium.io/v2", "CiliumNetworkPolicy", "x", "b"},
			},
		},
		{name: "empty input", in: ""},
		{name: "only separators and comments", in: "---\n# nothing\n---\n"},
		{name: "empty List", in: "apiVersion: v1\nkind: List\nitems: []\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := policy.DecodeObjects([]byte(tt.in))
			if err != nil {
				t.Fatalf("DecodeObjects: %v", err)
			}
			if diff := cmp.Diff(tt.want, k8sRefs(t, objs)); diff != "" {
				t.Errorf("DecodeObjects (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeObjectsContent(t *testing.T) {
	objs, err := policy.DecodeObjects([]byte(k8sMultiDoc))
	if err != nil {
		t.Fatalf("DecodeObjects: %v", err)
	}
	// The first NetworkPolicy decodes exactly, and is not defaulted by decoding.
	tcp := corev1.ProtocolTCP
	wantSpec := networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{
			{Port: k8sIntPort(80)},
			{Port: k8sNamedPort("http"), Protocol: k8sProto(corev1.ProtocolUDP)},
		}}},
	}
	got := objs[0].(*networkingv1.NetworkPolicy)
	if diff := cmp.Diff(wantSpec, got.Spec); diff != "" {
		t.Errorf("decoded spec (-want +got):\n%s", diff)
	}
	policy.DefaultNetworkPolicy(got)
	if got.Spec.Ingress[0].Ports[0].Protocol == nil || *got.Spec.Ingress[0].Ports[0].Protocol != tcp {
		t.Errorf("after defaulting, protocol = %v, want TCP", got.Spec.Ingress[0].Ports[0].Protocol)
	}
	if errs := policy.ValidateNetworkPolicy(got); len(errs) != 0 {
		t.Errorf("ValidateNetworkPolicy: %v", errs)
	}

	// The Cilium policies decode into their Go types.
	cnp := objs[1].(*ciliumv2.CiliumNetworkPolicy)
	wantCNP := &ciliumv2.Rule{
		EndpointSelector: &ciliumv2.EndpointSelector{LabelSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
		Ingress:          []ciliumv2.IngressRule{{IngressCommonRule: ciliumv2.IngressCommonRule{FromEndpoints: []ciliumv2.EndpointSelector{{}}}}},
	}
	if diff := cmp.Diff(wantCNP, cnp.Spec); diff != "" {
		t.Errorf("cnp1 spec (-want +got):\n%s", diff)
	}
	ccnp := objs[2].(*ciliumv2.CiliumClusterwideNetworkPolicy)
	wantCCNP := &ciliumv2.Rule{
		NodeSelector: &ciliumv2.EndpointSelector{},
		Ingress:      []ciliumv2.IngressRule{{IngressCommonRule: ciliumv2.IngressCommonRule{FromEntities: []ciliumv2.Entity{"cluster"}}}},
	}
	if diff := cmp.Diff(wantCCNP, ccnp.Spec); diff != "" {
		t.Errorf("ccnp1 spec (-want +got):\n%s", diff)
	}
}

func TestDecodeObjectsErrors(t *testing.T) {
	const np = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: a, namespace: b}\n"
	tests := []struct {
		name string
		in   string
		want []string // substrings of the error
	}{
		{
			name: "unsupported kind names index, apiVersion and kind",
			in:   np + "---\n# skipped? no: a comment-only document counts\n---\n" + "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n",
			want: []string{"document 2", `"v1"`, `"Pod"`},
		},
		{
			name: "unsupported group",
			in:   "apiVersion: cilium.io/v2alpha1\nkind: CiliumNetworkPolicy\n",
			want: []string{"document 0", `"cilium.io/v2alpha1"`, `"CiliumNetworkPolicy"`},
		},
		{
			name: "unsupported kind inside a List",
			in:   np + "---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: apps/v1\n  kind: Deployment\n",
			want: []string{"document 1", "item 0", `"apps/v1"`, `"Deployment"`},
		},
		{
			name: "missing kind",
			in:   "apiVersion: networking.k8s.io/v1\nmetadata: {name: a}\n",
			want: []string{"document 0", "kind not set"},
		},
		{
			name: "missing apiVersion",
			in:   "kind: NetworkPolicy\n",
			want: []string{"document 0", "apiVersion not set", `"NetworkPolicy"`},
		},
		{
			name: "not an object",
			in:   np + "---\n- a\n- b\n",
			want: []string{"document 1", "not an object"},
		},
		{
			name: "wrong field type",
			in:   np + "spec:\n  ingress: {}\n",
			want: []string{"document 0", `"NetworkPolicy"`},
		},
		{
			name: "YAML syntax error",
			in:   np + "---\nkind: [\n",
			want: []string{"document 1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := policy.DecodeObjects([]byte(tt.in))
			if err == nil {
				t.Fatalf("DecodeObjects = %d objects, nil error; want error", len(objs))
			}
			if objs != nil {
				t.Errorf("DecodeObjects returned %d objects with an error", len(objs))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if _, uerr := policy.UnknownFields([]byte(tt.in)); uerr == nil {
				t.Errorf("UnknownFields succeeded where DecodeObjects failed")
			}
		})
	}
}

func TestUnknownFields(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{name: "none", in: k8sMultiDoc},
		{
			name: "typos in a NetworkPolicy, a CiliumNetworkPolicy, a List item and a typed list item",
			in: `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: a
  namespace: b
  labelz: {x: y}
spec:
  podselector: {}
  ingress:
  - fromm: []
    ports:
    - port: 80
      endport: 90
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: c, namespace: b}
spec:
  whatever: true
---
apiVersion: v1
kind: List
items:
- apiVersion: cilium.io/v2
  kind: CiliumClusterwideNetworkPolicy
  metadata: {name: d}
  spec: {nodeSelektor: {}}
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: e, namespace: b}
  spec:
    egress:
    - to:
      - ipBlock: {cidr: 10.0.0.0/8, exept: [10.1.0.0/16]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicyList
items:
- metadata: {name: f, namespace: b}
  status: {}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicyList
items:
- metadata: {name: g, namespace: b}
  specs:
  - endpointSelector: {}
    egress:
    - toPorts: [{ports: [{port: "53", protocl: UDP}]}]
`,
			want: []string{
				"doc[0].metadata.labelz",
				"doc[0].spec.ingress[0].fromm",
				"doc[0].spec.ingress[0].ports[0].endport",
				"doc[0].spec.podselector",
				"doc[1].spec.whatever",
				"doc[2].items[0].spec.nodeSelektor",
				"doc[2].items[1].spec.egress[0].to[0].ipBlock.exept",
				"doc[3].items[0].status",
				"doc[4].items[0].specs[0].egress[0].toPorts[0].ports[0].protocl",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := policy.UnknownFields([]byte(tt.in))
			if err != nil {
				t.Fatalf("UnknownFields: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("UnknownFields (-want +got):\n%s", diff)
			}
			if _, err := policy.DecodeObjects([]byte(tt.in)); err != nil {
				t.Errorf("DecodeObjects: %v", err)
			}
		})
	}
}
