package slicer_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ceskit/ceskit/slicer"
	"github.com/ceskit/ceskit/slicer/ciliumv2"
	"github.com/ceskit/ceskit/slicer/ciliumv2alpha1"
	"k8s.io/client-go/rest"

	"github.com/ceskit/ceskit/internal/testenv"
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

// TestKubectl runs the real kubectl (built from the same release as the API server) the way a
// user checks CES on AKS: `kubectl get ces` and `kubectl get cep`.
func TestKubectl(t *testing.T) {
	kubectl := filepath.Join(testenv.BinDir(), "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("kubectl needed under CI: %v", err)
		}
		t.Skipf("skipping: %v (run make controlplane)", err)
	}
	e := newEnv(t)
	ns := e.namespace("kubectl", nil)
	ctl := e.start(slicer.Config{})
	e.createCEPs(t.Context(), ns, "web", 3, 1)
	st := e.converge(ctl, 100)
	kc, err := testenv.Kubeconfig(api(t))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		out, err := exec.CommandContext(t.Context(), kubectl, append([]string{"--kubeconfig", path}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	name := slicesOf(st, ns)[0].Name
	for _, resource := range []string{"ces", "ciliumendpointslices", "ciliumendpointslices.cilium.io"} {
		if out := run("get", resource, "-o", "name"); !strings.Contains(out, "ciliumendpointslice.cilium.io/"+name) {
			t.Errorf("kubectl get %s does not list %s:\n%s", resource, name, out)
		}
	}
	out := run("get", "cep", "-n", ns)
	for _, want := range []string{"SECURITY IDENTITY", "ENDPOINT STATE", "IPV4", "web-0", "1000", "ready"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl get cep lacks %q:\n%s", want, out)
		}
	}
	if out := run("get", "ces", name, "-o", "jsonpath={.namespace} {.endpoints[*].name}"); out != ns+" web-0 web-1 web-2" {
		t.Errorf("kubectl get ces -o jsonpath = %q", out)
	}
}
