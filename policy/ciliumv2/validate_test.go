package ciliumv2

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

// fieldErr is the comparable part of a field.Error: its type, path and bad value (nil for
// Required errors, whose value is not reported).
type fieldErr struct {
	Type  field.ErrorType
	Field string
	Value any
}

func summarize(errs field.ErrorList) []fieldErr {
	var out []fieldErr
	for _, e := range errs {
		v := e.BadValue
		if e.Type == field.ErrorTypeRequired {
			v = nil
		}
		out = append(out, fieldErr{e.Type, e.Field, v})
	}
	return out
}

func invalid(path string, v any) fieldErr { return fieldErr{field.ErrorTypeInvalid, path, v} }
func required(path string) fieldErr       { return fieldErr{field.ErrorTypeRequired, path, nil} }
func notSupported(path string, v any) fieldErr {
	return fieldErr{field.ErrorTypeNotSupported, path, v}
}

// validate decodes a policy document (strictly, as Cilium's field names must match) and validates
// it as the kind it names.
func validate(t *testing.T, doc string) field.ErrorList {
	t.Helper()
	var clusterwide bool
	switch {
	case strings.Contains(doc, "kind: CiliumClusterwideNetworkPolicy"):
		clusterwide = true
	case strings.Contains(doc, "kind: CiliumNetworkPolicy"):
	default:
		t.Fatalf("document names no policy kind:\n%s", doc)
	}
	if clusterwide {
		var p CiliumClusterwideNetworkPolicy
		if err := yaml.UnmarshalStrict([]byte(doc), &p); err != nil {
			t.Fatalf("decode: %v", err)
		}
		return p.Validate()
	}
	var p CiliumNetworkPolicy
	if err := yaml.UnmarshalStrict([]byte(doc), &p); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return p.Validate()
}

const (
	cnpHeader  = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p, namespace: ns}\n"
	ccnpHeader = "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: p}\n"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []fieldErr
	}{
		{
			name: "valid allow-all from entities with empty selector",
			doc: cnpHeader + `
spec:
  endpointSelector: {}
  ingress:
  - fromEntities: [world, cluster, host, remote-node, kube-apiserver, health, init, ingress, unmanaged, all, none]
`,
		},
		{
			name: "valid source-prefixed keys, named ports, ranges, bare IP, ICMP",
			doc: cnpHeader + `
spec:
  endpointSelector:
    matchLabels: {"k8s:app": web, "any:tier": front, plain: x}
    matchExpressions:
    - {key: "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name", operator: In, values: [prod]}
    - {key: "reserved:host", operator: DoesNotExist}
  ingress:
  - fromCIDR: [192.0.2.1, 10.0.0.0/8, "2001:db8::/32"]
    toPorts:
    - ports:
      - {port: http, protocol: TCP}
      - {port: HTTP-Alt}
      - {port: "8000", endPort: 8080, protocol: UDP}
      - {port: "0", protocol: ANY}
      - {port: "1", protocol: SCTP}
  - icmps:
    - fields: [{type: 8}, {family: IPv6, type: EchoRequest}]
  egress:
  - toPorts:
    - ports: [{port: "0", protocol: ICMP}, {port: "0", protocol: ICMPv6}]
  enableDefaultDeny: {ingress: true, egress: false}
  log: {value: "audit me"}
`,
		},
		{
			name: "valid clusterwide host policy",
			doc: ccnpHeader + `
spec:
  nodeSelector: {matchLabels: {"node-role.kubernetes.io/control-plane": ""}}
  ingress:
  - fromEntities: [remote-node]
    toPorts: [{ports: [{port: "6443", protocol: TCP}]}]
`,
		},
		{
			name: "neither spec nor specs",
			doc:  cnpHeader,
			want: []fieldErr{required("spec")},
		},
		{
			name: "empty specs list",
			doc:  cnpHeader + "specs: []\n",
			want: []fieldErr{required("spec")},
		},
		{
			name: "namespaced policy without endpointSelector",
			doc:  cnpHeader + "spec:\n  ingress: [{fromEntities: [world]}]\n",
			want: []fieldErr{required("spec.endpointSelector")},
		},
		{
			name: "namespaced policy with nodeSelector",
			doc:  cnpHeader + "specs:\n- endpointSelector: {}\n- nodeSelector: {matchLabels: {a: b}}\n",
			want: []fieldErr{invalid("specs[1].nodeSelector", "a=b"), required("specs[1].endpointSelector")},
		},
		{
			name: "clusterwide policy with both selectors",
			doc:  ccnpHeader + "spec:\n  endpointSelector: {}\n  nodeSelector: {}\n",
			want: []fieldErr{invalid("spec.nodeSelector", "<none>")},
		},
		{
			name: "clusterwide policy with neither selector",
			doc:  ccnpHeader + "spec:\n  description: nothing\n",
			want: []fieldErr{required("spec.endpointSelector")},
		},
		{
			name: "label selector problems",
			doc: cnpHeader + `
spec:
  endpointSelector:
    matchLabels: {"K8S:app": web, "k8s:-bad": x, ok: "not valid"}
    matchExpressions:
    - {key: app, operator: Foo}
    - {key: app, operator: In}
    - {key: app, operator: Exists, values: [x]}
    - {key: "k8s:", operator: NotIn, values: ["a", "-b-"]}
`,
			want: []fieldErr{
				invalid("spec.endpointSelector.matchLabels", "K8S:app"),
				invalid("spec.endpointSelector.matchLabels", "k8s:-bad"),
				invalid("spec.endpointSelector.matchLabels[ok]", "not valid"),
				notSupported("spec.endpointSelector.matchExpressions[0].operator", "Foo"),
				required("spec.endpointSelector.matchExpressions[1].values"),
				invalid("spec.endpointSelector.matchExpressions[2].values", []string{"x"}),
				invalid("spec.endpointSelector.matchExpressions[3].key", "k8s:"),
				invalid("spec.endpointSelector.matchExpressions[3].values[1]", "-b-"),
			},
		},
		{
			name: "peer selectors are validated too",
			doc: cnpHeader + `
spec:
  endpointSelector: {}
  ingress:
  - fromEndpoints: [{matchLabels: {"a b": c}}]
    fromNodes: [{matchExpressions: [{key: role, operator: In}]}]
  egress:
  - toEndpoints: [{}]
    toRequires: [{matchLabels: {x: "y z"}}]
  - toServices: [{k8sServiceSelector: {selector: {matchLabels: {"k8s:": v}}}}, {}]
`,
			want: []fieldErr{
				invalid("spec.ingress[0].fromEndpoints[0].matchLabels", "a b"),
				required("spec.ingress[0].fromNodes[0].matchExpressions[0].values"),
				invalid("spec.egress[0].toRequires[0].matchLabels[x]", "y z"),
				invalid("spec.egress[1].toServices[0].k8sServiceSelector.selector.matchLabels", "k8s:"),
				required("spec.egress[1].toServices[1]"),
			},
		},
		{
			name: "CIDRs and exceptions",
			doc: cnpHeader + `
specs:
- endpointSelector: {}
  ingress:
  - fromCIDR: [10.0.0.0/33, not-an-ip]
  - fromCIDRSet:
    - cidr: 10.0.0.0/8
      except: [11.0.0.0/16, 10.0.0.0/7, "2001:db8::/64", 10.1.0.0/16, garbage]
    - cidr: 10.0.0.0
    - except: [10.0.0.0/24]
    - {cidr: 10.0.0.0/8, cidrGroupRef: group}
    - cidrGroupRef: Not_A_Name
    - cidrGroupSelector: {matchLabels: {"k8s:app": x}}
  egressDeny:
  - toCIDR: ["::g/64"]
`,
			want: []fieldErr{
				invalid("specs[0].ingress[0].fromCIDR[0]", "10.0.0.0/33"),
				invalid("specs[0].ingress[0].fromCIDR[1]", "not-an-ip"),
				invalid("specs[0].ingress[1].fromCIDRSet[0].except[0]", "11.0.0.0/16"),
				invalid("specs[0].ingress[1].fromCIDRSet[0].except[1]", "10.0.0.0/7"),
				invalid("specs[0].ingress[1].fromCIDRSet[0].except[2]", "2001:db8::/64"),
				invalid("specs[0].ingress[1].fromCIDRSet[0].except[4]", "garbage"),
				invalid("specs[0].ingress[1].fromCIDRSet[1].cidr", "10.0.0.0"),
				required("specs[0].ingress[1].fromCIDRSet[2].cidr"),
				invalid("specs[0].ingress[1].fromCIDRSet[2].except[0]", "10.0.0.0/24"),
				invalid("specs[0].ingress[1].fromCIDRSet[3]", "cidr=10.0.0.0/8 cidrGroupRef=group"),
				invalid("specs[0].ingress[1].fromCIDRSet[4].cidrGroupRef", "Not_A_Name"),
				invalid("specs[0].ingress[1].fromCIDRSet[5].cidrGroupSelector.matchLabels", "k8s:app"),
				invalid("specs[0].egressDeny[0].toCIDR[0]", "::g/64"),
			},
		},
		{
			name: "ports, ranges and protocols",
			doc: cnpHeader + `
spec:
  endpointSelector: {}
  ingress:
  - toPorts:
    - ports:
      - {port: "65536"}
      - {port: "80", endPort: 79}
      - {port: http, endPort: 90}
      - {port: "80", protocol: tcp}
      - {port: "-1"}
      - {port: "web_server"}
      - {port: ""}
      - {port: "1", endPort: 70000}
      - {port: "verylongportname-x"}
  ingressDeny:
  - toPorts: [{ports: [{port: "53", protocol: DNS}]}]
  egressDeny:
  - toPorts: [{ports: [{port: "8080", endPort: 8000}]}]
`,
			want: []fieldErr{
				invalid("spec.ingress[0].toPorts[0].ports[0].port", "65536"),
				invalid("spec.ingress[0].toPorts[0].ports[1].endPort", int32(79)),
				invalid("spec.ingress[0].toPorts[0].ports[2].endPort", int32(90)),
				notSupported("spec.ingress[0].toPorts[0].ports[3].protocol", "tcp"),
				invalid("spec.ingress[0].toPorts[0].ports[4].port", "-1"),
				invalid("spec.ingress[0].toPorts[0].ports[5].port", "web_server"),
				required("spec.ingress[0].toPorts[0].ports[6].port"),
				invalid("spec.ingress[0].toPorts[0].ports[7].endPort", int32(70000)),
				invalid("spec.ingress[0].toPorts[0].ports[8].port", "verylongportname-x"),
				notSupported("spec.ingressDeny[0].toPorts[0].ports[0].protocol", "DNS"),
				invalid("spec.egressDeny[0].toPorts[0].ports[0].endPort", int32(8000)),
			},
		},
		{
			name: "unknown entities",
			doc: cnpHeader + `
spec:
  endpointSelector: {}
  ingressDeny: [{fromEntities: [world, internet]}]
  egress: [{toEntities: [World]}]
`,
			want: []fieldErr{
				notSupported("spec.ingressDeny[0].fromEntities[1]", "internet"),
				notSupported("spec.egress[0].toEntities[0]", "World"),
			},
		},
		{
			name: "FQDN selectors",
			doc: cnpHeader + `
spec:
  endpointSelector: {}
  egress:
  - toFQDNs:
    - {matchName: a.example.com, matchPattern: "*.example.com"}
    - {}
    - matchName: "a/b.example.com"
    - matchPattern: "*.exa mple.com"
    - matchName: "_srv._tcp.example.com."
    - matchPattern: "**.example.com"
  - toFQDNs: [{matchName: example.com}]
    toEndpoints: [{}]
    toCIDR: [10.0.0.0/8]
  - toFQDNs: [{matchPattern: "*"}]
    toRequires: [{}]
`,
			want: []fieldErr{
				invalid("spec.egress[0].toFQDNs[0].matchPattern", "*.example.com"),
				required("spec.egress[0].toFQDNs[1]"),
				invalid("spec.egress[0].toFQDNs[2].matchName", "a/b.example.com"),
				invalid("spec.egress[0].toFQDNs[3].matchPattern", "*.exa mple.com"),
				invalid("spec.egress[1].toFQDNs", []string{"example.com"}),
			},
		},
		{
			name: "L7 rules",
			doc: cnpHeader + `
spec:
  endpointSelector: {}
  ingress:
  - toPorts:
    - ports: [{port: "53", protocol: UDP}]
      rules: {dns: [{matchPattern: "*"}]}
    - ports: [{port: "80", protocol: TCP}]
      rules:
        http: [{path: "/a(", method: GET, headerMatches: [{name: "", mismatch: DROP}]}]
        kafka: [{topic: t}]
  egress:
  - toPorts:
    - rules: {dns: [{matchName: "bad name"}]}
    - ports: [{port: "1"}]
      rules: {l7: [{k: v}]}
`,
			want: []fieldErr{
				invalid("spec.ingress[0].toPorts[0].rules.dns", []string{"*"}),
				invalid("spec.ingress[0].toPorts[1].rules", []string{"http", "kafka"}),
				invalid("spec.ingress[0].toPorts[1].rules.http[0].path", "/a("),
				required("spec.ingress[0].toPorts[1].rules.http[0].headerMatches[0].name"),
				notSupported("spec.ingress[0].toPorts[1].rules.http[0].headerMatches[0].mismatch", "DROP"),
				required("spec.egress[0].toPorts[0].ports"),
				invalid("spec.egress[0].toPorts[0].rules.dns[0].matchName", "bad name"),
				required("spec.egress[0].toPorts[1].rules.l7proto"),
			},
		},
		{
			name: "host policy with L7 rules",
			doc: ccnpHeader + `
spec:
  nodeSelector: {}
  ingress:
  - toPorts: [{ports: [{port: "80", protocol: TCP}], rules: {http: [{}]}}]
`,
			want: []fieldErr{invalid("spec.ingress[0].toPorts[0].rules", []string{"http"})},
		},
		{
			name: "ICMP problems",
			doc: cnpHeader + `
spec:
  endpointSelector: {}
  egress:
  - icmps: [{fields: [{type: 256}, {family: IPv5, type: 0}]}]
  - toPorts: [{ports: [{port: "80"}]}]
    icmps: [{fields: [{type: 8}]}]
`,
			want: []fieldErr{
				invalid("spec.egress[0].icmps[0].fields[0].type", int32(256)),
				notSupported("spec.egress[0].icmps[0].fields[1].family", "IPv5"),
				invalid("spec.egress[1].icmps", 1),
			},
		},
		{
			name: "log value too long",
			doc: cnpHeader + `
spec:
  endpointSelector: {}
  log: {value: "0123456789012345678901234567890123"}
`,
			want: []fieldErr{invalid("spec.log.value", "0123456789012345678901234567890123")},
		},
		{
			name: "spec and specs are both validated",
			doc: ccnpHeader + `
spec:
  endpointSelector: {}
  egress: [{toEntities: [nowhere]}]
specs:
- endpointSelector: {}
- nodeSelector: {}
  ingress: [{fromCIDRSet: [{cidr: 192.168.0.0/16, except: [192.169.0.0/24]}]}]
`,
			want: []fieldErr{
				notSupported("spec.egress[0].toEntities[0]", "nowhere"),
				invalid("specs[1].ingress[0].fromCIDRSet[0].except[0]", "192.169.0.0/24"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := validate(t, tt.doc)
			if diff := cmp.Diff(tt.want, summarize(errs)); diff != "" {
				t.Errorf("Validate() (-want +got):\n%s\nerrors:\n%v", diff, errs)
			}
		})
	}
}

// TestRuleValidatePath checks that Rule.Validate prefixes every error with the caller's path.
func TestRuleValidatePath(t *testing.T) {
	r := Rule{
		EndpointSelector: &EndpointSelector{},
		Ingress: []IngressRule{{}, {IngressCommonRule: IngressCommonRule{
			FromCIDRSet: []CIDRRule{{Cidr: "10.0.0.0/8", ExceptCIDRs: []CIDR{"172.16.0.0/12"}}},
		}}},
	}
	got := summarize(r.Validate(field.NewPath("specs").Index(0), false))
	want := []fieldErr{invalid("specs[0].ingress[1].fromCIDRSet[0].except[0]", "172.16.0.0/12")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Validate() (-want +got):\n%s", diff)
	}
}

// TestValidateErrorMessages checks that messages name the field and the value.
func TestValidateErrorMessages(t *testing.T) {
	errs := validate(t, cnpHeader+`
spec:
  endpointSelector: {}
  egress:
  - toFQDNs: [{matchName: example.com}]
    toEndpoints: [{}]
  - toPorts: [{ports: [{port: "80", protocol: tcp}]}]
`)
	if len(errs) != 2 {
		t.Fatalf("got %d errors, want 2: %v", len(errs), errs)
	}
	for _, want := range []string{
		`spec.egress[0].toFQDNs: Invalid value: ["example.com"]: toFQDNs cannot be combined with toEndpoints`,
		`spec.egress[1].toPorts[0].ports[0].protocol: Unsupported value: "tcp": supported values: "TCP", "UDP", "SCTP", "ICMP", "ICMPv6", "ANY"`,
	} {
		if !strings.Contains(errs.ToAggregate().Error(), want) {
			t.Errorf("errors %q do not contain %q", errs.ToAggregate().Error(), want)
		}
	}
}
