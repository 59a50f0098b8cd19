package main

import (
	"context"
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ceskit/ceskit/policy"
	policyv2 "github.com/ceskit/ceskit/policy/ciliumv2"
)

// labPolicies are applied in namespace lab: a default deny of both directions, and the AKS
// documentation's examples (REQUIREMENTS.md) as they are written there, in namespace lab:
// allow-frontend-to-backend, the example-ipblock egress workaround (ipBlock 0.0.0.0/0 does not
// reach pods on AKS, so it adds namespaceSelector: {} and podSelector: {}) and
// frontend-to-backend-cilium.
const labPolicies = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny
  namespace: lab
spec:
  podSelector: {}
  policyTypes:
  - Ingress
  - Egress
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-frontend-to-backend
  namespace: lab
spec:
  podSelector:
    matchLabels:
      app: backend
  ingress:
  - from:
    - podSelector:
        matchLabels:
          app: frontend
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: example-ipblock        # the workaround for the ipBlock limitation
  namespace: lab
spec:
  podSelector: {}
  policyTypes:
  - Egress
  egress:
  - to:
    - ipBlock:
        cidr: 0.0.0.0/0
    - namespaceSelector: {}
    - podSelector: {}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: frontend-to-backend-cilium
  namespace: lab
spec:
  endpointSelector:
    matchLabels:
      app: frontend
  egress:
  - toEndpoints:
    - matchLabels:
        app: backend
    toPorts:
    - ports:
      - port: "8080"
        protocol: TCP
`

var cnpResource = schema.GroupVersionResource{Group: "cilium.io", Version: "v2", Resource: "ciliumnetworkpolicies"}

// applyPolicies creates the lab's policies and returns their names ("Kind namespace/name").
func applyPolicies(ctx context.Context, cfg *rest.Config, kube kubernetes.Interface) ([]string, error) {
	objs, err := policy.DecodeObjects([]byte(labPolicies))
	if err != nil {
		return nil, fmt.Errorf("decode lab policies: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("new dynamic client: %w", err)
	}
	var names []string
	for _, obj := range objs {
		switch o := obj.(type) {
		case *networkingv1.NetworkPolicy:
			if _, err := kube.NetworkingV1().NetworkPolicies(o.Namespace).Create(ctx, o, metav1.CreateOptions{}); err != nil {
				return nil, fmt.Errorf("create networkpolicy %s/%s: %w", o.Namespace, o.Name, err)
			}
			names = append(names, "NetworkPolicy "+o.Namespace+"/"+o.Name)
		case *policyv2.CiliumNetworkPolicy:
			m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
			if err != nil {
				return nil, fmt.Errorf("convert ciliumnetworkpolicy %s: %w", o.Name, err)
			}
			u := &unstructured.Unstructured{Object: m}
			u.SetAPIVersion("cilium.io/v2")
			u.SetKind("CiliumNetworkPolicy")
			if _, err := dyn.Resource(cnpResource).Namespace(o.Namespace).Create(ctx, u, metav1.CreateOptions{}); err != nil {
				return nil, fmt.Errorf("create ciliumnetworkpolicy %s/%s: %w", o.Namespace, o.Name, err)
			}
			names = append(names, "CiliumNetworkPolicy "+o.Namespace+"/"+o.Name)
		default:
			return nil, fmt.Errorf("lab policies: unexpected %T", obj)
		}
	}
	return names, nil
}

// policyCRDs are CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy CRDs with an open
// schema, for the embedded control plane only. The policy package converts and validates the
// objects itself (the agent lists a policy it rejects in its status), and its full generated
// manifests (policy/crds, 280 KB each) are not embedded in any package.
func policyCRDs() []*apiextensionsv1.CustomResourceDefinition {
	open := true
	crd := func(kind, plural, short string, scope apiextensionsv1.ResourceScope) *apiextensionsv1.CustomResourceDefinition {
		return &apiextensionsv1.CustomResourceDefinition{
			ObjectMeta: metav1.ObjectMeta{Name: plural + ".cilium.io"},
			Spec: apiextensionsv1.CustomResourceDefinitionSpec{
				Group: "cilium.io",
				Names: apiextensionsv1.CustomResourceDefinitionNames{
					Kind: kind, ListKind: kind + "List", Plural: plural, Singular: plural[:len(plural)-3] + "y", ShortNames: []string{short},
				},
				Scope: scope,
				Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
					Name: "v2", Served: true, Storage: true,
					Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
						Type: "object", XPreserveUnknownFields: &open,
					}},
				}},
			},
		}
	}
	return []*apiextensionsv1.CustomResourceDefinition{
		crd("CiliumNetworkPolicy", "ciliumnetworkpolicies", "cnp", apiextensionsv1.NamespaceScoped),
		crd("CiliumClusterwideNetworkPolicy", "ciliumclusterwidenetworkpolicies", "ccnp", apiextensionsv1.ClusterScoped),
	}
}
