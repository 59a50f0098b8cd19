package slicer_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ceskit/ceskit/slicer"
	"github.com/ceskit/ceskit/slicer/ciliumv2"
	"github.com/ceskit/ceskit/slicer/ciliumv2alpha1"
)

func TestCoreEndpointFromCEP(t *testing.T) {
	base := func() *ciliumv2.CiliumEndpoint {
		return &ciliumv2.CiliumEndpoint{
			ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "shop", OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: "web-0", UID: "uid-1"}}},
			Status: ciliumv2.EndpointStatus{
				Identity:       &ciliumv2.EndpointIdentity{ID: 4242},
				Networking:     &ciliumv2.EndpointNetworking{Addressing: ciliumv2.AddressPairList{{IPV4: "10.0.0.1", IPV6: "fd00::1"}}, NodeIP: "192.168.0.1"},
				Encryption:     ciliumv2.EncryptionSpec{Key: 2},
				NamedPorts:     ciliumv2.NamedPorts{{Name: "http", Port: 80, Protocol: "TCP"}},
				ServiceAccount: "web",
				State:          "ready",
			},
		}
	}
	core, ready, err := slicer.CoreEndpointFromCEP(base())
	want := ciliumv2alpha1.CoreCiliumEndpoint{
		Name: "web-0", IdentityID: 4242, PodUID: "uid-1", ServiceAccount: "web",
		Networking: base().Status.Networking, Encryption: ciliumv2.EncryptionSpec{Key: 2},
		NamedPorts: ciliumv2.NamedPorts{{Name: "http", Port: 80, Protocol: "TCP"}},
	}
	if err != nil || !ready {
		t.Fatalf("valid CEP: ready=%v err=%v", ready, err)
	}
	if diff := cmp.Diff(want, core); diff != "" {
		t.Errorf("conversion (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		name   string
		mutate func(*ciliumv2.CiliumEndpoint)
		ready  bool
		field  string // "" means valid
	}{
		{"no identity yet", func(c *ciliumv2.CiliumEndpoint) { c.Status.Identity = nil }, false, ""},
		{"identity 0", func(c *ciliumv2.CiliumEndpoint) { c.Status.Identity.ID = 0 }, false, ""},
		{"negative identity", func(c *ciliumv2.CiliumEndpoint) { c.Status.Identity.ID = -4 }, false, "status.identity.id"},
		{"identity beyond 32 bits", func(c *ciliumv2.CiliumEndpoint) { c.Status.Identity.ID = 1 << 40 }, false, "status.identity.id"},
		{"bad ipv4", func(c *ciliumv2.CiliumEndpoint) { c.Status.Networking.Addressing[0].IPV4 = "10.0.0.256" }, false, "status.networking.addressing[0].ipv4"},
		{"ipv6 in the ipv4 field", func(c *ciliumv2.CiliumEndpoint) { c.Status.Networking.Addressing[0].IPV4 = "fd00::1" }, false, "status.networking.addressing[0].ipv4"},
		{"ipv4 in the ipv6 field", func(c *ciliumv2.CiliumEndpoint) { c.Status.Networking.Addressing[0].IPV6 = "10.0.0.1" }, false, "status.networking.addressing[0].ipv6"},
		{"null address pair", func(c *ciliumv2.CiliumEndpoint) {
			c.Status.Networking.Addressing = append(c.Status.Networking.Addressing, nil)
		}, false, "status.networking.addressing[1]"},
		{"bad node IP", func(c *ciliumv2.CiliumEndpoint) { c.Status.Networking.NodeIP = "node-1" }, false, "status.networking.node"},
		{"bad protocol", func(c *ciliumv2.CiliumEndpoint) { c.Status.NamedPorts[0].Protocol = "HTTP" }, false, "status.named-ports[0].protocol"},
		{"no networking at all", func(c *ciliumv2.CiliumEndpoint) { c.Status.Networking = nil }, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cep := base()
			tc.mutate(cep)
			_, ready, err := slicer.CoreEndpointFromCEP(cep)
			if ready != tc.ready {
				t.Errorf("ready = %v, want %v", ready, tc.ready)
			}
			switch {
			case tc.field == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tc.field != "":
				var epErr *slicer.EndpointError
				if !errors.As(err, &epErr) || epErr.Field != tc.field || epErr.Endpoint != "shop/web-0" || !errors.Is(err, slicer.ErrInvalidEndpoint) {
					t.Errorf("error = %v, want an EndpointError for shop/web-0 naming %s", err, tc.field)
				}
			}
		})
	}
}

func TestCoreEndpointFromPod(t *testing.T) {
	id := func(*corev1.Pod) (int64, bool) { return 7, true }
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "db-0", Namespace: "shop", UID: "uid-2"},
		Spec: corev1.PodSpec{ServiceAccountName: "db", Containers: []corev1.Container{{Ports: []corev1.ContainerPort{
			{Name: "pg", ContainerPort: 5432}, {ContainerPort: 9090}, {Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
		}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, HostIP: "192.168.0.2", PodIPs: []corev1.PodIP{{IP: "fd00::2"}, {IP: "10.0.0.2"}}},
	}
	core, ready, err := slicer.CoreEndpointFromPod(pod, id)
	if err != nil || !ready {
		t.Fatalf("running pod: ready=%v err=%v", ready, err)
	}
	want := ciliumv2alpha1.CoreCiliumEndpoint{
		Name: "db-0", IdentityID: 7, PodUID: "uid-2", ServiceAccount: "db",
		Networking: &ciliumv2.EndpointNetworking{Addressing: ciliumv2.AddressPairList{{IPV4: "10.0.0.2", IPV6: "fd00::2"}}, NodeIP: "192.168.0.2"},
		NamedPorts: ciliumv2.NamedPorts{{Name: "pg", Port: 5432, Protocol: "TCP"}, {Name: "dns", Port: 53, Protocol: "UDP"}},
	}
	if diff := cmp.Diff(want, core); diff != "" {
		t.Errorf("conversion (-want +got):\n%s", diff)
	}
	for name, mutate := range map[string]func(*corev1.Pod){
		"host network": func(p *corev1.Pod) { p.Spec.HostNetwork = true },
		"succeeded":    func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded },
		"no IP yet":    func(p *corev1.Pod) { p.Status.PodIPs = nil },
	} {
		p := pod.DeepCopy()
		mutate(p)
		if _, ready, err := slicer.CoreEndpointFromPod(p, id); ready || err != nil {
			t.Errorf("%s: ready=%v err=%v, want not ready", name, ready, err)
		}
	}
	p := pod.DeepCopy()
	p.Status.PodIPs = []corev1.PodIP{{IP: "10.0.0.999"}}
	if _, _, err := slicer.CoreEndpointFromPod(p, id); err == nil || !strings.Contains(err.Error(), "status.podIPs[0].ip") {
		t.Errorf("bad pod IP: %v", err)
	}
	if _, ready, _ := slicer.CoreEndpointFromPod(pod, func(*corev1.Pod) (int64, bool) { return 0, false }); ready {
		t.Error("unknown identity: ready")
	}
}
