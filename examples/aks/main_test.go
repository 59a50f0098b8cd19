package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v8"
	csfake "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v8/fake"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/ceskit/ceskit/azure"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testSub     = "00000000-0000-0000-0000-000000000001"
	testCluster = "/subscriptions/" + testSub + "/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/c1"
	vnetID      = "/subscriptions/" + testSub + "/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/v1"
)

// overlayArgs describe a valid new overlay cluster with Cilium.
var overlayArgs = []string{
	"-g", "rg1", "-n", "c1", "--subscription", testSub, "-l", "eastus2", "--kubernetes-version", "1.33",
	"--network-plugin", "azure", "--network-plugin-mode", "overlay", "--network-dataplane", "cilium",
	"--pod-cidr", "192.168.0.0/16", "--node-vm-size", "Standard_D4s_v5", "--node-count", "2",
}

// result is one run of the CLI.
type result struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, env deps, args ...string) result {
	t.Helper()
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	var out, errOut bytes.Buffer
	code := run(t.Context(), args, &out, &errOut, env)
	return result{code, out.String(), errOut.String()}
}

func args(base []string, more ...string) []string {
	return append(append([]string(nil), base...), more...)
}

// noAzure is a deps whose transport fails the test on any request.
func noAzure(t *testing.T) deps {
	return deps{
		Credential: &azfake.TokenCredential{},
		ClientOptions: &arm.ClientOptions{ClientOptions: azcore.ClientOptions{
			Transport: transportFunc(func(r *http.Request) (*http.Response, error) {
				t.Errorf("unexpected request %s %s", r.Method, r.URL)
				return nil, context.Canceled
			}),
		}},
	}
}

type transportFunc func(*http.Request) (*http.Response, error)

func (f transportFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }

func TestValidate(t *testing.T) {
	t.Run("ok", func(t *testing.T) {
		r := runCLI(t, deps{}, args([]string{"validate"}, overlayArgs...)...)
		if r.code != exitOK {
			t.Fatalf("exit %d, want 0; stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stdout, "valid: "+testCluster) || !strings.Contains(r.stdout, "model overlay; dataplane cilium; policy cilium") {
			t.Errorf("stdout:\n%s", r.stdout)
		}
	})

	invalid := []string{
		"validate", "-g", "rg1", "-n", "-bad-", "--subscription", "not-a-guid", "-l", "eastus2",
		"--kubernetes-version", "1.28", "--network-plugin", "azure", "--network-plugin-mode", "overlay",
		"--network-dataplane", "azure", "--network-policy", "cilium", "--pod-cidr", "10.0.0.0/16",
		"--max-pods", "5", "--enable-acns", "--acns-advanced-networkpolicies", "L4",
	}
	t.Run("invalid table", func(t *testing.T) {
		r := runCLI(t, deps{}, invalid...)
		if r.code != exitFailed {
			t.Fatalf("exit %d, want 1; stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		}
		want := wantProblems(t, invalid[1:])
		if len(want) < 5 {
			t.Fatalf("only %d problems: %v", len(want), want)
		}
		if !strings.HasPrefix(r.stdout, "FIELD") || !strings.Contains(r.stdout, "VALUE") || !strings.Contains(r.stdout, "CODE") {
			t.Errorf("no table header:\n%s", r.stdout)
		}
		for _, p := range want {
			if !strings.Contains(r.stdout, p.Field) || !strings.Contains(r.stdout, p.Code) {
				t.Errorf("problem %s %s missing from:\n%s", p.Field, p.Code, r.stdout)
			}
		}
		for _, f := range []string{"name", "subscriptionId", "network.policy", "pools[0].maxPods", "network.podCidr"} {
			if !strings.Contains(r.stdout, f) {
				t.Errorf("field %s missing from:\n%s", f, r.stdout)
			}
		}
	})
	t.Run("invalid json", func(t *testing.T) {
		r := runCLI(t, deps{}, args(invalid, "-o", "json")...)
		if r.code != exitFailed {
			t.Fatalf("exit %d, want 1; stderr:\n%s", r.code, r.stderr)
		}
		var got validateResult
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("%v:\n%s", err, r.stdout)
		}
		if diff := cmp.Diff(wantProblems(t, invalid[1:]), got.Problems); diff != "" || got.Valid {
			t.Errorf("valid=%v, problems (-want +got):\n%s", got.Valid, diff)
		}
	})
	t.Run("usage", func(t *testing.T) {
		for _, a := range [][]string{
			{"validate", "--network-plugin", "kubenet", "--network-plugin-mode", "overlay"},
			{"validate", "--network-plugin", "none"},
			{"validate", "--disable-acns-security"},
			{"validate", "-o", "yaml"},
			{"validate", "--no-such-flag"},
			{"validate", "extra"},
			{"frobnicate"},
			{},
		} {
			if r := runCLI(t, deps{}, a...); r.code != exitUsage {
				t.Errorf("%q: exit %d, want 2; stderr:\n%s", a, r.code, r.stderr)
			}
		}
		if r := runCLI(t, deps{}, "plan", "--help"); r.code != exitOK || !strings.Contains(r.stderr, "-g, --resource-group NAME") || strings.Contains(r.stderr, "poll-interval") {
			t.Errorf("plan --help: exit %d, stderr:\n%s", r.code, r.stderr)
		}
	})
}

// wantProblems is what azure.Validate says of the spec the flags describe.
func wantProblems(t *testing.T, flags []string) []azure.Problem {
	t.Helper()
	s := specOf(t, flags...)
	err := azure.Validate(s)
	ps, perr := validationProblems(err)
	if perr != nil {
		t.Fatal(perr)
	}
	return ps
}

// specOf parses cluster flags into the spec of a new cluster.
func specOf(t *testing.T, flags ...string) azure.ClusterSpec {
	t.Helper()
	var sf specFlags
	fs := newFlagSet("test", "", &bytes.Buffer{})
	sf.register(fs)
	if err := fs.Parse(flags); err != nil {
		t.Fatal(err)
	}
	s, err := sf.base(nil)
	if err != nil {
		t.Fatal(err)
	}
	sf.locate(fs, &s, func(string) string { return "" })
	if err := sf.apply(fs, &s, true); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNetworkModelInference(t *testing.T) {
	sub := vnetID + "/subnets/"
	tests := []struct {
		flags []string
		want  azure.Network
	}{
		{nil, azure.Network{Model: azure.ModelOverlay, PodCIDR: defaultPodCIDR}},
		{[]string{"--network-plugin", "azure", "--network-plugin-mode", "overlay", "--pod-cidr", "192.168.0.0/16"},
			azure.Network{Model: azure.ModelOverlay, PodCIDR: "192.168.0.0/16"}},
		{[]string{"--network-plugin-mode", "overlay"}, azure.Network{Model: azure.ModelOverlay, PodCIDR: defaultPodCIDR}},
		{[]string{"--network-plugin", "azure", "--vnet-subnet-id", sub + "nodes", "--pod-subnet-id", sub + "pods"},
			azure.Network{Model: azure.ModelPodSubnet}},
		{[]string{"--pod-subnet-id", sub + "pods"}, azure.Network{Model: azure.ModelPodSubnet}},
		{[]string{"--network-plugin", "azure", "--vnet-subnet-id", sub + "nodes"}, azure.Network{Model: azure.ModelNodeSubnet}},
		{[]string{"--network-plugin", "kubenet"}, azure.Network{Model: azure.ModelKubenet, PodCIDR: defaultPodCIDR}},
		{[]string{"--network-dataplane", "cilium"}, azure.Network{Model: azure.ModelOverlay, PodCIDR: defaultPodCIDR, Dataplane: "cilium", Policy: "cilium"}},
		{[]string{"--network-dataplane", "azure", "--network-policy", "calico", "--service-cidr", "10.1.0.0/16", "--dns-service-ip", "10.1.0.10"},
			azure.Network{Model: azure.ModelOverlay, PodCIDR: defaultPodCIDR, Dataplane: "azure", Policy: "calico", ServiceCIDR: "10.1.0.0/16", DNSServiceIP: "10.1.0.10"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.flags, " "), func(t *testing.T) {
			if diff := cmp.Diff(tt.want, specOf(t, tt.flags...).Network); diff != "" {
				t.Errorf("network (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSpecFlagsOverrideSpecFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "spec.json")
	base := azure.ClusterSpec{
		SubscriptionID: testSub, ResourceGroup: "rg1", Name: "c1", Location: "westeurope", KubernetesVersion: "1.32",
		Network: azure.Network{Model: azure.ModelPodSubnet},
		Pools: []azure.Pool{
			{Name: "sys", Count: 3, VMSize: "Standard_D4s_v5", VNetSubnetID: vnetID + "/subnets/n", PodSubnetID: vnetID + "/subnets/p"},
			{Name: "user", Count: 5, VMSize: "Standard_D8s_v5", VNetSubnetID: vnetID + "/subnets/n", PodSubnetID: vnetID + "/subnets/p"},
		},
		ACNS: &azure.ACNS{Observability: true, Security: true, AdvancedNetworkPolicies: azure.AdvancedPoliciesL7},
	}
	writeJSONFile(t, file, base)
	got := specOf(t, "--spec", file, "-n", "c2", "--kubernetes-version", "1.33", "--node-count", "4", "--max-pods", "100",
		"--disable-acns-security", "--enable-container-network-logs", "--workspace-resource-id", "/ws",
		"--assign-identity", "/id")
	want := base
	want.Name, want.KubernetesVersion, want.MonitoringWorkspaceID, want.Identity = "c2", "1.33", "/ws", "/id"
	want.Pools = append([]azure.Pool(nil), base.Pools...)
	want.Pools[0].Count, want.Pools[0].MaxPods = 4, 100
	want.ACNS = &azure.ACNS{Observability: true, ContainerNetworkLogs: true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}

	if r := runCLI(t, deps{}, "validate", "--spec", filepath.Join(dir, "missing.json")); r.code != exitFailed {
		t.Errorf("missing spec: exit %d, want 1", r.code)
	}
	os.WriteFile(filepath.Join(dir, "typo.json"), []byte(`{"nmae":"c1"}`), 0o600)
	if r := runCLI(t, deps{}, "validate", "--spec", filepath.Join(dir, "typo.json")); r.code != exitFailed || !strings.Contains(r.stderr, "nmae") {
		t.Errorf("unknown field: exit %d, stderr %q", r.code, r.stderr)
	}
}

func writeJSONFile(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestResumeDirDefault(t *testing.T) {
	env := func(vars map[string]string) deps {
		return deps{Getenv: func(k string) string { return vars[k] }, HomeDir: func() (string, error) { return "/home/u", nil }}
	}
	if got := env(map[string]string{"XDG_STATE_HOME": "/state"}).defaultResumeDir(); got != "/state/ceskit-aks" {
		t.Errorf("with XDG_STATE_HOME: %s", got)
	}
	if got := env(nil).defaultResumeDir(); got != "/home/u/.local/state/ceskit-aks" {
		t.Errorf("without: %s", got)
	}
}

// azureCNICluster is an existing Azure CNI (node subnet) cluster with the Azure dataplane, as
// `az aks show -o json` prints it: properties flattened into the top level.
func azureCNICluster(t *testing.T, extra map[string]any) string {
	t.Helper()
	mc := map[string]any{
		"id":                       testCluster,
		"name":                     "c1",
		"type":                     "Microsoft.ContainerService/ManagedClusters",
		"location":                 "eastus2",
		"identity":                 map[string]any{"type": "SystemAssigned", "principalId": "p", "tenantId": "t"},
		"resourceGroup":            "rg1",
		"provisioningState":        "Succeeded",
		"powerState":               map[string]any{"code": "Running"},
		"kubernetesVersion":        "1.33",
		"currentKubernetesVersion": "1.33.2",
		"dnsPrefix":                "c1",
		"fqdn":                     "c1-abc.hcp.eastus2.azmk8s.io",
		"agentPoolProfiles": []any{map[string]any{
			"name": "nodepool1", "mode": "System", "count": 3, "vmSize": "Standard_D4s_v5", "osType": "Linux",
			"osSku": "Ubuntu", "maxPods": 30, "vnetSubnetId": vnetID + "/subnets/nodes", "orchestratorVersion": "1.33",
			"type": "VirtualMachineScaleSets", "provisioningState": "Succeeded",
		}},
		"networkProfile": map[string]any{
			"networkPlugin": "azure", "networkDataplane": "azure", "networkPolicy": "none",
			"serviceCidr": "10.0.0.0/16", "dnsServiceIp": "10.0.0.10", "outboundType": "loadBalancer",
			"loadBalancerSku": "standard", "podCidr": nil, "ipFamilies": []string{"IPv4"},
		},
	}
	for k, v := range extra {
		mc[k] = v
	}
	file := filepath.Join(t.TempDir(), "current.json")
	writeJSONFile(t, file, mc)
	return file
}

func TestReadManagedCluster(t *testing.T) {
	flat := azureCNICluster(t, nil)
	mc, err := readManagedCluster(flat)
	if err != nil {
		t.Fatal(err)
	}
	// The ARM form (with "properties") reads the same.
	armForm := filepath.Join(t.TempDir(), "arm.json")
	writeJSONFile(t, armForm, mc)
	mc2, err := readManagedCluster(armForm)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*armcontainerservice.ManagedCluster{mc, mc2} {
		s, err := azure.SpecFromManagedCluster(*m)
		if err != nil {
			t.Fatal(err)
		}
		if s.Network.Model != azure.ModelNodeSubnet || s.Network.Dataplane != azure.DataplaneAzure || len(s.Pools) != 1 || s.Pools[0].VNetSubnetID == "" || s.Location != "eastus2" {
			t.Errorf("spec: %+v", s)
		}
	}
}

func TestPlanCreateOverlay(t *testing.T) {
	t.Run("table", func(t *testing.T) {
		r := runCLI(t, noAzure(t), args([]string{"plan"}, overlayArgs...)...)
		if r.code != exitOK {
			t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		}
		for _, s := range []string{"Plan to create " + testCluster + ": 1 step", "STEP", "ManagedCluster", "managedClusters/c1", "PUT"} {
			if !strings.Contains(r.stdout, s) {
				t.Errorf("%q missing from:\n%s", s, r.stdout)
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "plan.json")
		r := runCLI(t, noAzure(t), args([]string{"plan", "-o", "json", "--out", out}, overlayArgs...)...)
		if r.code != exitOK {
			t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
		}
		var p azure.ClusterPlan
		if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
			t.Fatalf("%v:\n%s", err, r.stdout)
		}
		if p.Cluster != testCluster || len(p.Steps) != 1 || p.Steps[0].Kind != azure.KindManagedCluster || p.Steps[0].Method != http.MethodPut {
			t.Fatalf("plan: %+v", p)
		}
		var body armcontainerservice.ManagedCluster
		if err := json.Unmarshal(p.Steps[0].Body, &body); err != nil {
			t.Fatal(err)
		}
		np := body.Properties.NetworkProfile
		if *np.NetworkPlugin != "azure" || *np.NetworkPluginMode != "overlay" || *np.NetworkDataplane != "cilium" || *np.NetworkPolicy != "cilium" || *np.PodCidr != "192.168.0.0/16" {
			t.Errorf("network profile: %s", p.Steps[0].Body)
		}
		saved, err := readPlanFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if saved.Cluster != p.Cluster || len(saved.Steps) != 1 {
			t.Errorf("saved plan: %+v", saved)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		r := runCLI(t, noAzure(t), args([]string{"plan"}, args(overlayArgs, "--max-pods", "500")...)...)
		if r.code != exitFailed || !strings.Contains(r.stdout, "pools[0].maxPods") {
			t.Errorf("exit %d; stdout:\n%s", r.code, r.stdout)
		}
	})
}

// ciliumUpgradeArgs turn the current Azure CNI cluster's dataplane to Cilium.
var ciliumUpgradeArgs = []string{"--network-dataplane", "cilium"}

func TestPlanFromCurrentAzureCNI(t *testing.T) {
	current := azureCNICluster(t, nil)
	r := runCLI(t, noAzure(t), args([]string{"plan", "--current", current}, ciliumUpgradeArgs...)...)
	if r.code != exitOK {
		t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "Plan to update "+testCluster) || !strings.Contains(r.stdout, "reimage") || !strings.Contains(r.stdout, "nodepool1") || !strings.Contains(r.stdout, "warning: ") {
		t.Errorf("stdout:\n%s", r.stdout)
	}

	r = runCLI(t, noAzure(t), args([]string{"plan", "--current", current, "-o", "json"}, ciliumUpgradeArgs...)...)
	var p azure.ClusterPlan
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatalf("%v:\n%s", err, r.stdout)
	}
	if len(p.Steps) != 1 || p.Steps[0].Kind != azure.KindManagedCluster {
		t.Fatalf("steps: %+v", p.Steps)
	}
	st := p.Steps[0]
	if st.Disruption != azure.DisruptReimage || !cmp.Equal(st.Affects, []string{"nodepool1"}) || len(st.Warnings) == 0 {
		t.Errorf("cilium step: disruption %s, affects %v, warnings %q", st.Disruption, st.Affects, st.Warnings)
	}
	var body armcontainerservice.ManagedCluster
	if err := json.Unmarshal(st.Body, &body); err != nil {
		t.Fatal(err)
	}
	np := body.Properties.NetworkProfile
	if *np.NetworkDataplane != "cilium" || *np.NetworkPolicy != "cilium" || *np.DNSServiceIP != "10.0.0.10" || *body.Properties.AgentPoolProfiles[0].VnetSubnetID != vnetID+"/subnets/nodes" {
		t.Errorf("cilium step body: %s", st.Body)
	}
}

func TestShowBodiesRedactsSecrets(t *testing.T) {
	current := azureCNICluster(t, map[string]any{
		"windowsProfile": map[string]any{"adminUsername": "azureuser", "adminPassword": "s3cr3t-P@ssw0rd"},
	})
	for _, a := range [][]string{
		{"plan", "--current", current, "--show-bodies"},
		{"plan", "--current", current, "-o", "json"},
	} {
		r := runCLI(t, noAzure(t), args(a, ciliumUpgradeArgs...)...)
		if r.code != exitOK {
			t.Fatalf("%q: exit %d; stderr:\n%s", a, r.code, r.stderr)
		}
		if strings.Contains(r.stdout+r.stderr, "s3cr3t") {
			t.Errorf("%q printed the secret:\n%s", a, r.stdout)
		}
		if !strings.Contains(r.stdout, `"adminPassword": "REDACTED"`) && !strings.Contains(r.stdout, `\"adminPassword\":\"REDACTED\"`) && !strings.Contains(r.stdout, `"adminPassword":"REDACTED"`) {
			t.Errorf("%q: no redacted adminPassword in:\n%s", a, r.stdout)
		}
	}
}

func TestApplyRefusesDisruptivePlanWithoutYes(t *testing.T) {
	current := azureCNICluster(t, nil)
	r := runCLI(t, noAzure(t), args([]string{"apply", "--current", current, "--resume-dir", t.TempDir()}, ciliumUpgradeArgs...)...)
	if r.code != exitUsage {
		t.Fatalf("exit %d, want 2; stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, s := range []string{"disrupts running workloads", "reimage", "nodepool1", "warning: ", "--yes"} {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("%q missing from stderr:\n%s", s, r.stderr)
		}
	}

	// A saved plan is refused the same way.
	out := filepath.Join(t.TempDir(), "plan.json")
	if r := runCLI(t, noAzure(t), args([]string{"plan", "--current", current, "--out", out}, ciliumUpgradeArgs...)...); r.code != exitOK {
		t.Fatalf("plan --out: exit %d; stderr:\n%s", r.code, r.stderr)
	}
	if r := runCLI(t, noAzure(t), "apply", "--plan", out, "--resume-dir", t.TempDir()); r.code != exitUsage || !strings.Contains(r.stderr, "--yes") {
		t.Errorf("apply --plan: exit %d, want 2; stderr:\n%s", r.code, r.stderr)
	}
	if r := runCLI(t, noAzure(t), "apply", "--plan", out, "-n", "c2"); r.code != exitUsage || !strings.Contains(r.stderr, "--name") {
		t.Errorf("apply --plan -n: exit %d, want 2; stderr:\n%s", r.code, r.stderr)
	}
	// A plan printed with -o json has redacted secrets and is refused.
	redacted := filepath.Join(t.TempDir(), "redacted.json")
	writeJSONFile(t, redacted, azure.ClusterPlan{Cluster: testCluster, Steps: []azure.Step{{
		Kind: azure.KindManagedCluster, ResourceID: testCluster, Method: "PUT",
		Body: json.RawMessage(`{"properties":{"windowsProfile":{"adminPassword":"REDACTED"}}}`),
	}}})
	if r := runCLI(t, noAzure(t), "apply", "--plan", redacted, "--yes"); r.code != exitFailed || !strings.Contains(r.stderr, "redacted") {
		t.Errorf("apply of a redacted plan: exit %d; stderr:\n%s", r.code, r.stderr)
	}
}

// fakeClusters is a ManagedClustersServer holding one cluster: Get answers 404 until it is
// created; BeginCreateOrUpdate answers one non-terminal poll, then the cluster.
type fakeClusters struct {
	mu      sync.Mutex
	cluster *armcontainerservice.ManagedCluster
	gets    int
	creates int
}

func (f *fakeClusters) server() *csfake.ManagedClustersServer {
	return &csfake.ManagedClustersServer{
		Get: func(_ context.Context, rg, name string, _ *armcontainerservice.ManagedClustersClientGetOptions) (resp azfake.Responder[armcontainerservice.ManagedClustersClientGetResponse], errResp azfake.ErrorResponder) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.gets++
			if f.cluster == nil || rg != "rg1" || name != "c1" {
				errResp.SetResponseError(http.StatusNotFound, "ResourceNotFound")
				return
			}
			resp.SetResponse(http.StatusOK, armcontainerservice.ManagedClustersClientGetResponse{ManagedCluster: *f.cluster}, nil)
			return
		},
		BeginCreateOrUpdate: func(_ context.Context, rg, name string, mc armcontainerservice.ManagedCluster, _ *armcontainerservice.ManagedClustersClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armcontainerservice.ManagedClustersClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.creates++
			mc.ID = to.Ptr(testCluster)
			mc.Name = to.Ptr(name)
			mc.Properties.ProvisioningState = to.Ptr("Succeeded")
			f.cluster = &mc
			resp.AddNonTerminalResponse(http.StatusCreated, nil)
			resp.SetTerminalResponse(http.StatusOK, armcontainerservice.ManagedClustersClientCreateOrUpdateResponse{ManagedCluster: mc}, nil)
			return
		},
	}
}

func fakeDeps(srv *csfake.ManagedClustersServer) deps {
	return deps{
		Credential: &azfake.TokenCredential{},
		ClientOptions: &arm.ClientOptions{ClientOptions: azcore.ClientOptions{
			Transport: csfake.NewManagedClustersServerTransport(srv),
		}},
	}
}

func TestApplyCreate(t *testing.T) {
	f := &fakeClusters{}
	env := fakeDeps(f.server())
	resume := t.TempDir()
	r := runCLI(t, env, args([]string{"apply", "--resume-dir", resume, "--poll-interval", "1ms"}, overlayArgs...)...)
	if r.code != exitOK {
		t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, s := range []string{
		"[1/1] ManagedCluster managedClusters/c1: reading",
		"[1/1] ManagedCluster managedClusters/c1: submitted",
		"[1/1] ManagedCluster managedClusters/c1: created in",
		"Result for managedClusters/c1: 1 created",
	} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("%q missing from stdout:\n%s", s, r.stdout)
		}
	}
	t.Logf("stdout:\n%s", r.stdout)
	if f.creates != 1 || f.gets < 1 {
		t.Errorf("creates %d, gets %d; want 1 and ≥1", f.creates, f.gets)
	}
	if np := f.cluster.Properties.NetworkProfile; *np.NetworkDataplane != "cilium" || *np.NetworkPluginMode != "overlay" {
		t.Errorf("created cluster's network profile: %+v", np)
	}
	if left, _ := os.ReadDir(resume); len(left) != 0 {
		t.Errorf("resume tokens left behind: %v", left)
	}

	// Applying again changes nothing, and -o json says so.
	r = runCLI(t, env, args([]string{"apply", "--resume-dir", resume, "--poll-interval", "1ms", "-o", "json"}, overlayArgs...)...)
	if r.code != exitOK {
		t.Fatalf("second apply: exit %d; stderr:\n%s", r.code, r.stderr)
	}
	t.Logf("second apply, -o json:\nstdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	var got applyResult
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v:\n%s", err, r.stdout)
	}
	if got.Changed || len(got.Steps) != 1 || got.Steps[0].Outcome != string(azure.OutcomeUnchanged) || f.creates != 1 {
		t.Errorf("second apply: %+v, creates %d", got, f.creates)
	}

	// plan --live reads the cluster: nothing to do.
	r = runCLI(t, env, args([]string{"plan", "--live"}, overlayArgs...)...)
	if r.code != exitOK {
		t.Fatalf("plan --live: exit %d; stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "Plan to update") {
		t.Errorf("plan --live:\n%s", r.stdout)
	}
}

func TestApplyFailure(t *testing.T) {
	srv := &csfake.ManagedClustersServer{
		Get: func(_ context.Context, _, _ string, _ *armcontainerservice.ManagedClustersClientGetOptions) (resp azfake.Responder[armcontainerservice.ManagedClustersClientGetResponse], errResp azfake.ErrorResponder) {
			errResp.SetResponseError(http.StatusNotFound, "ResourceNotFound")
			return
		},
		BeginCreateOrUpdate: func(_ context.Context, _, _ string, _ armcontainerservice.ManagedCluster, _ *armcontainerservice.ManagedClustersClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armcontainerservice.ManagedClustersClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
			errResp.SetResponseError(http.StatusBadRequest, "InvalidDataplane")
			return
		},
	}
	r := runCLI(t, fakeDeps(srv), args([]string{"apply", "--resume-dir", t.TempDir(), "--poll-interval", "1ms"}, overlayArgs...)...)
	t.Logf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	if r.code != exitFailed || !strings.Contains(r.stderr, "InvalidDataplane") || !strings.Contains(r.stdout, "failed after") {
		t.Errorf("exit %d; stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

func TestExport(t *testing.T) {
	for _, monitoring := range []bool{false, true} {
		a := args([]string{"export"}, overlayArgs...)
		if monitoring {
			a = append(a, "--with-monitoring")
		}
		r := runCLI(t, deps{}, a...)
		if r.code != exitOK {
			t.Fatalf("monitoring=%v: exit %d; stderr:\n%s", monitoring, r.code, r.stderr)
		}
		var tmpl struct {
			Schema    string           `json:"$schema"`
			Resources []map[string]any `json:"resources"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &tmpl); err != nil {
			t.Fatalf("monitoring=%v: %v:\n%s", monitoring, err, r.stdout)
		}
		types := map[string]bool{}
		for _, res := range tmpl.Resources {
			typ, _ := res["type"].(string)
			types[typ] = true
		}
		if !types["Microsoft.ContainerService/managedClusters"] {
			t.Errorf("monitoring=%v: no managed cluster among %v", monitoring, types)
		}
		if got := len(types) > 1; got != monitoring {
			t.Errorf("monitoring=%v: resource types %v", monitoring, types)
		}
	}

	out := filepath.Join(t.TempDir(), "sub", "template.json")
	if r := runCLI(t, deps{}, args([]string{"export", "--out", out}, overlayArgs...)...); r.code != exitOK {
		t.Fatalf("export --out: exit %d; stderr:\n%s", r.code, r.stderr)
	}
	if b, err := os.ReadFile(out); err != nil || !json.Valid(b) {
		t.Errorf("export --out: %v, valid JSON %v", err, json.Valid(b))
	}
	if r := runCLI(t, deps{}, args([]string{"export"}, args(overlayArgs, "--max-pods", "5")...)...); r.code != exitFailed || !strings.Contains(r.stderr, "pools[0].maxPods") {
		t.Errorf("invalid export: exit %d; stderr:\n%s", r.code, r.stderr)
	}
}
