package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ceskit/ceskit/internal/testenv"
	"github.com/ceskit/ceskit/slicer"
	"github.com/ceskit/ceskit/slicer/ciliumv2alpha1"
)

// TestReadOnly checks the attach mode's transport: reads pass, anything else is refused and
// counted, and never reaches the server.
func TestReadOnly(t *testing.T) {
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Method)
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	ro := &readOnly{}
	c := &http.Client{Transport: ro.wrap(http.DefaultTransport)}
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		req, err := http.NewRequestWithContext(t.Context(), m, srv.URL+"/apis/cilium.io/v2alpha1/ciliumendpointslices", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		read := m == http.MethodGet || m == http.MethodHead
		if read != (err == nil) {
			t.Errorf("%s: error %v, want one only for writes", m, err)
		}
		if err == nil {
			resp.Body.Close()
		} else if !strings.Contains(err.Error(), "the lab is attached read-only: refused "+m) {
			t.Errorf("%s: error %v", m, err)
		}
	}
	if !slices.Equal(seen, []string{http.MethodGet, http.MethodHead}) || ro.refused.Load() != 4 {
		t.Errorf("server saw %v, refused %d; want GET and HEAD, 4 refused", seen, ro.refused.Load())
	}
}

// TestAttach runs the lab attached to a "cluster" (a control plane the test starts and fills
// with endpoints and a stale slice): it reports what the controller would write and writes
// nothing.
func TestAttach(t *testing.T) {
	requireControlPlane(t)
	t.Parallel()
	crds, err := slicer.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	cp := testenv.New(t, testenv.Options{CRDs: crds})
	client, err := slicer.NewClient(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := createNamespace(ctx, client, "web"); err != nil {
		t.Fatal(err)
	}
	lbls, err := podLabels("web", "app-0", 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 25 {
		cep := buildCEP("web", "web-"+string(rune('a'+i)), 1000, lbls, endpointIPv4(i), "", "192.168.0.1", "app-0", int64(i+1))
		if _, err := client.CiliumEndpoints("web").Create(ctx, cep, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	stale := &ciliumv2alpha1.CiliumEndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "ces-stale"}, Namespace: "web",
		Endpoints: []ciliumv2alpha1.CoreCiliumEndpoint{{Name: "gone", IdentityID: 1000}},
	}
	stale, err = client.CiliumEndpointSlices().Create(ctx, stale, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kc, err := testenv.Kubeconfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kubeconfig, report := filepath.Join(dir, "kubeconfig"), filepath.Join(dir, "report.json")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		t.Fatal(err)
	}

	r := startLab(t, "--kubeconfig="+kubeconfig, "--duration=4s", "--interval=1s", "--watchers=1", "--listen=127.0.0.1:0", "--report="+report)
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		r.done <- err
	case <-time.After(time.Minute):
		t.Fatal("the attached lab did not end after its duration")
	}
	st := readReport(t, report)
	sh := st.Shadow
	if st.Mode != modeAttach || sh == nil || !st.Slices.Synced {
		t.Fatalf("report mode %q, shadow %+v, slices %+v: want a synced shadow controller", st.Mode, sh, st.Slices)
	}
	if sh.WritesRefused != 0 || sh.Added != 25 || sh.Removed != 1 || sh.Creates+sh.Updates == 0 {
		t.Errorf("shadow %+v: want the 25 endpoints added, the stale one removed, nothing attempted", sh)
	}
	if len(st.Watchers) != 1 || st.Watchers[0].Source != string(slicer.SourceSlices) {
		t.Errorf("watchers %+v: want one on the slices", st.Watchers)
	}
	for _, want := range []string{"ceskit lab report (mode attach)", "would write", "writes refused"} {
		if !strings.Contains(r.stdout.String(), want) {
			t.Errorf("terminal output lacks %q", want)
		}
	}

	// Nothing was written: the stale slice is as it was, no other slice exists, no heartbeat.
	list, err := client.CiliumEndpointSlices().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].ResourceVersion != stale.ResourceVersion {
		t.Errorf("slices after the attached run: %d, first %+v; want only the untouched stale one", len(list.Items), list.Items)
	}
	if _, err := client.Kube.CoordinationV1().Leases("kube-system").Get(ctx, "ceskit-slicer", metav1.GetOptions{}); err == nil {
		t.Error("the attached lab wrote the controller's heartbeat Lease")
	}
	if ns, err := client.Kube.CoreV1().Namespaces().Get(ctx, labNamespace, metav1.GetOptions{}); err == nil {
		t.Errorf("the attached lab created namespace %s", ns.Name)
	}
}
