package slicer_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ceskit/ceskit/slicer"
	"github.com/ceskit/ceskit/slicer/ciliumv2"
	"github.com/ceskit/ceskit/slicer/ciliumv2alpha1"
	"k8s.io/client-go/rest"
)

// TestCRDsServed checks that the embedded CRDs install on a real API server, that discovery
// offers the short names kubectl resolves (`kubectl get ces`, `kubectl get cep`), and that objects
// round-trip through the typed clients with Cilium's field names intact.
func TestCRDsServed(t *testing.T) {
	crds, err := slicer.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	_ = crds
	cp := struct{ Config *rest.Config }{api(t)}
	e := newEnv(t) // deletes what the test creates
	c := e.c
	ns := e.namespace("crds", nil)
	// Installing again over the served CRDs is a no-op.
	if err := slicer.InstallCRDs(t.Context(), cp.Config); err != nil {
		t.Fatal(err)
	}

	for gv, want := range map[string][2]string{
		"cilium.io/v2":       {"ciliumendpoints", "cep"},
		"cilium.io/v2alpha1": {"ciliumendpointslices", "ces"},
	} {
		list, err := c.Kube.Discovery().ServerResourcesForGroupVersion(gv)
		if err != nil {
			t.Fatalf("discover %s: %v", gv, err)
		}
		found := false
		for _, r := range list.APIResources {
			if r.Name == want[0] {
				found = slices.Contains(r.ShortNames, want[1])
			}
		}
		if !found {
			t.Errorf("%s: resource %s with short name %s not served: %+v", gv, want[0], want[1], list.APIResources)
		}
	}

	cep := &ciliumv2.CiliumEndpoint{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: ns},
		Status: ciliumv2.EndpointStatus{
			ID:       7,
			Identity: &ciliumv2.EndpointIdentity{ID: 4242, Labels: []string{"k8s:app=web"}},
			Networking: &ciliumv2.EndpointNetworking{
				Addressing: ciliumv2.AddressPairList{{IPV4: "10.0.0.7", IPV6: "fd00::7"}},
				NodeIP:     "192.168.0.1",
			},
			Encryption:     ciliumv2.EncryptionSpec{Key: 3},
			State:          "ready",
			NamedPorts:     ciliumv2.NamedPorts{{Name: "http", Port: 8080, Protocol: "TCP"}},
			ServiceAccount: "web",
		},
	}
	got, err := c.CiliumEndpoints(ns).Create(t.Context(), cep, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(cep.Status, got.Status); diff != "" {
		t.Errorf("CiliumEndpoint status round trip (-want +got):\n%s", diff)
	}

	ces := &ciliumv2alpha1.CiliumEndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "ces-2fvynpvzn-4ncg9"},
		Namespace:  ns,
		Endpoints: []ciliumv2alpha1.CoreCiliumEndpoint{{
			Name: "web-0", IdentityID: 4242, Networking: cep.Status.Networking,
			Encryption: cep.Status.Encryption, NamedPorts: cep.Status.NamedPorts,
			ServiceAccount: "web", PodUID: "0b7e0f3c-0000-4000-8000-000000000001",
		}},
	}
	gotCES, err := c.CiliumEndpointSlices().Create(t.Context(), ces, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ces.Endpoints, gotCES.Endpoints); diff != "" {
		t.Errorf("CiliumEndpointSlice round trip (-want +got):\n%s", diff)
	}
	// A pod UID must survive pruning: it is part of the v1.20 schema.
	raw, err := c.Kube.Discovery().RESTClient().Get().AbsPath("/apis/cilium.io/v2alpha1/ciliumendpointslices/ces-2fvynpvzn-4ncg9").DoRaw(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"namespace":"` + ns + `"`, `"pod-uid":`, `"service-account":"web"`, `"named-ports":[`, `"networking":{"addressing":[{"ipv4":"10.0.0.7"`, `"node":"192.168.0.1"`, `"encryption":{"key":3}`, `"id":4242`} {
		if !containsBytes(raw, field) {
			t.Errorf("wire form lacks %s: %s", field, raw)
		}
	}
}

func containsBytes(b []byte, s string) bool { return strings.Contains(string(b), s) }
