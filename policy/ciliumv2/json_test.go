package ciliumv2

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// TestRoundTrip decodes Cilium's documented example policies strictly (an unknown or misspelled
// field fails), checks that they validate, and that encoding them again gives the same JSON.
func TestRoundTrip(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test data: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(data, &tm); err != nil {
				t.Fatal(err)
			}
			var (
				obj  runtime.Object
				errs func() error
			)
			switch tm.Kind {
			case "CiliumNetworkPolicy":
				p := &CiliumNetworkPolicy{}
				obj, errs = p, func() error { return p.Validate().ToAggregate() }
			case "CiliumClusterwideNetworkPolicy":
				p := &CiliumClusterwideNetworkPolicy{}
				obj, errs = p, func() error { return p.Validate().ToAggregate() }
			default:
				t.Fatalf("unexpected kind %q", tm.Kind)
			}
			if err := yaml.UnmarshalStrict(data, obj); err != nil {
				t.Fatalf("strict decode: %v", err)
			}
			if err := errs(); err != nil {
				t.Errorf("Validate: %v", err)
			}
			if diff := cmp.Diff(obj, obj.DeepCopyObject()); diff != "" {
				t.Errorf("DeepCopy differs (-orig +copy):\n%s", diff)
			}
			out, err := json.Marshal(obj)
			if err != nil {
				t.Fatal(err)
			}
			in, err := yaml.YAMLToJSON(data)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(normalize(t, in), normalize(t, out)); diff != "" {
				t.Errorf("re-encoded policy differs (-input +output):\n%s", diff)
			}
		})
	}
}

// normalize decodes JSON into generic values and drops what encoding adds by itself: an empty
// status and a null creationTimestamp.
func normalize(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if s, ok := m["status"].(map[string]any); ok && len(s) == 0 {
		delete(m, "status")
	}
	if md, ok := m["metadata"].(map[string]any); ok {
		if v, ok := md["creationTimestamp"]; ok && v == nil {
			delete(md, "creationTimestamp")
		}
	}
	return m
}

// TestDecodeSelectorKeys checks that source-prefixed selector keys and empty selectors survive
// decoding as written.
func TestDecodeSelectorKeys(t *testing.T) {
	data, err := os.ReadFile("testdata/dns-matchname.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var p CiliumNetworkPolicy
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		t.Fatal(err)
	}
	got := p.Spec.Egress[1].ToEndpoints[0].MatchLabels
	want := map[string]string{"k8s:io.kubernetes.pod.namespace": "kube-system", "k8s:k8s-app": "kube-dns"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("toEndpoints[0].matchLabels (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]FQDNSelector{{MatchName: "api.github.com"}}, p.Spec.Egress[0].ToFQDNs); diff != "" {
		t.Errorf("toFQDNs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]PortRuleDNS{{MatchPattern: "*"}}, p.Spec.Egress[1].ToPorts[0].Rules.DNS); diff != "" {
		t.Errorf("rules.dns (-want +got):\n%s", diff)
	}

	var ccnp CiliumClusterwideNetworkPolicy
	if err := yaml.UnmarshalStrict([]byte(ccnpHeader+"spec:\n  endpointSelector: {}\n"), &ccnp); err != nil {
		t.Fatal(err)
	}
	if ccnp.Spec.EndpointSelector == nil || ccnp.Spec.NodeSelector != nil {
		t.Errorf("endpointSelector {} decoded as %+v, nodeSelector as %+v", ccnp.Spec.EndpointSelector, ccnp.Spec.NodeSelector)
	}
	out, err := json.Marshal(ccnp.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `{"endpointSelector":{}}` {
		t.Errorf("spec encoded as %s, want {\"endpointSelector\":{}}", out)
	}
}

func TestAddToScheme(t *testing.T) {
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"CiliumNetworkPolicy", "CiliumNetworkPolicyList", "CiliumClusterwideNetworkPolicy", "CiliumClusterwideNetworkPolicyList"} {
		if _, err := s.New(SchemeGroupVersion.WithKind(kind)); err != nil {
			t.Errorf("scheme.New(%s): %v", kind, err)
		}
	}
	if got, want := Resource("ciliumnetworkpolicies").String(), "ciliumnetworkpolicies.cilium.io"; got != want {
		t.Errorf("Resource() = %s, want %s", got, want)
	}
}
