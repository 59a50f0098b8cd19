package ciliumv2_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/ceskit/ceskit/internal/crdinstall"
	"github.com/ceskit/ceskit/internal/testenv"
	"github.com/ceskit/ceskit/policy/ciliumv2"
)

// TestCRDs installs the generated CRDs into a real kube-apiserver (which rejects non-structural
// schemas and CEL rules over budget), creates every example policy and reads it back: nothing may
// be pruned, so the schema covers every field the Go types carry.
func TestCRDs(t *testing.T) {
	var manifests [][]byte
	for _, f := range []string{"cilium.io_ciliumnetworkpolicies.yaml", "cilium.io_ciliumclusterwidenetworkpolicies.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "crds", f))
		if err != nil {
			t.Fatal(err)
		}
		manifests = append(manifests, b)
	}
	crds, err := crdinstall.Decode(manifests...)
	if err != nil {
		t.Fatal(err)
	}
	cp := testenv.New(t, testenv.Options{CRDs: crds})
	client, err := dynamic.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var obj unstructured.Unstructured
			if err := yaml.Unmarshal(data, &obj.Object); err != nil {
				t.Fatal(err)
			}
			status, hasStatus := obj.Object["status"]
			delete(obj.Object, "status") // the status subresource ignores it on create
			res := client.Resource(ciliumv2.SchemeGroupVersion.WithResource("ciliumclusterwidenetworkpolicies"))
			var ri dynamic.ResourceInterface = res
			if obj.GetKind() == "CiliumNetworkPolicy" {
				if obj.GetNamespace() == "" {
					obj.SetNamespace("default")
				}
				ri = client.Resource(ciliumv2.SchemeGroupVersion.WithResource("ciliumnetworkpolicies")).Namespace(obj.GetNamespace())
			}
			created, err := ri.Create(t.Context(), &obj, metav1.CreateOptions{FieldValidation: "Strict"})
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			for _, f := range []string{"spec", "specs"} {
				if diff := cmp.Diff(generic(t, obj.Object[f]), generic(t, created.Object[f])); diff != "" {
					t.Errorf("%s changed by the API server (-sent +stored):\n%s", f, diff)
				}
			}
			if hasStatus {
				created.Object["status"] = status
				updated, err := ri.UpdateStatus(t.Context(), created, metav1.UpdateOptions{FieldValidation: "Strict"})
				if err != nil {
					t.Fatalf("update status: %v", err)
				}
				if diff := cmp.Diff(generic(t, status), generic(t, updated.Object["status"])); diff != "" {
					t.Errorf("status changed by the API server (-sent +stored):\n%s", diff)
				}
			}
		})
	}

	t.Run("no spec", func(t *testing.T) {
		obj := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
			"metadata": map[string]any{"name": "empty", "namespace": "default"},
		}}
		_, err := client.Resource(ciliumv2.SchemeGroupVersion.WithResource("ciliumnetworkpolicies")).Namespace("default").
			Create(t.Context(), obj, metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "spec or specs must be provided") {
			t.Errorf("create without spec: got %v, want the CRD's CEL rule to reject it", err)
		}
	})
}

// generic re-encodes v through JSON so that numbers compare equal whatever their Go type.
func generic(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
