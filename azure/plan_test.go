package azure

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v8"
	"github.com/google/go-cmp/cmp"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *updateGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got; go test -update rewrites it):\n%s", path, diff)
	}
}

func planJSON(t *testing.T, p *ClusterPlan) []byte {
	t.Helper()
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(data, '\n')
}

func fxKubenet() ClusterSpec {
	s := fxOverlay()
	s.Network = Network{Model: ModelKubenet, Dataplane: DataplaneAzure, Policy: PolicyNone, PodCIDR: "10.244.0.0/16"}
	s.Identity = fxUAI
	return s
}

func fxAzureCNI() ClusterSpec {
	s := fxNodeSubnet()
	s.Network.Dataplane, s.Network.Policy = DataplaneAzure, PolicyAzure
	return s
}

// planCase is a desired spec and the current cluster (nil: create).
type planCase struct {
	name      string
	desired   ClusterSpec
	current   *armcontainerservice.ManagedCluster
	wantKinds []StepKind
}

func live(s ClusterSpec) *armcontainerservice.ManagedCluster {
	mc := fxLive(s)
	return &mc
}

func planCases() []planCase {
	withACNS := fxOverlay()
	withACNS.ACNS = &ACNS{Observability: true, Security: true, AdvancedNetworkPolicies: AdvancedPoliciesL7}
	addPool := fxOverlay()
	addPool.Pools = append(addPool.Pools, Pool{Name: "burst", Count: 2, VMSize: "Standard_D8s_v5", MaxPods: 120})
	createOverlay := fxOverlay()
	createOverlay.CreateResourceGroup = true
	kubenetDesired := fxOverlay()
	kubenetDesired.Network.PodCIDR = "10.244.0.0/16" // keep kubenet's pod range
	return []planCase{
		{"create_overlay", createOverlay, nil, []StepKind{KindResourceGroup, KindManagedCluster}},
		{"create_podsubnet_vnet", fxPodSubnet(), nil, []StepKind{KindResourceGroup, KindVirtualNetwork, KindManagedCluster}},
		{"create_nodesubnet", fxNodeSubnet(), nil, []StepKind{KindManagedCluster}},
		{"update_azurecni_to_cilium", fxNodeSubnet(), live(fxAzureCNI()), []StepKind{KindManagedCluster}},
		{"update_kubenet_overlay_cilium", kubenetDesired, live(fxKubenet()), []StepKind{KindManagedCluster, KindManagedCluster}},
		{"update_acns_enable", withACNS, live(fxOverlay()), []StepKind{KindManagedCluster}},
		{"update_add_pool", addPool, live(fxOverlay()), []StepKind{KindAgentPool}},
		{"update_noop", fxOverlay(), live(fxOverlay()), nil},
	}
}

func TestPlanGolden(t *testing.T) {
	for _, tc := range planCases() {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Plan(t.Context(), tc.desired, tc.current)
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			var kinds []StepKind
			for _, st := range p.Steps {
				kinds = append(kinds, st.Kind)
				if st.Method != "PUT" {
					t.Errorf("step %s: method %s", st.ResourceID, st.Method)
				}
			}
			if diff := cmp.Diff(tc.wantKinds, kinds); diff != "" {
				t.Errorf("step kinds (-want +got):\n%s", diff)
			}
			golden(t, "plan_"+tc.name+".golden", planJSON(t, p))
		})
	}
}

// applyPlan plays a plan's steps onto a cluster the way ARM would store them, returning what a
// GET would then return.
func applyPlan(t *testing.T, current *armcontainerservice.ManagedCluster, p *ClusterPlan) armcontainerservice.ManagedCluster {
	t.Helper()
	var mc armcontainerservice.ManagedCluster
	if current != nil {
		mc = *current
	}
	for _, st := range p.Steps {
		switch st.Kind {
		case KindManagedCluster:
			var next armcontainerservice.ManagedCluster
			if err := json.Unmarshal(st.Body, &next); err != nil {
				t.Fatalf("step body: %v", err)
			}
			next.ID, next.Name = to.Ptr(st.ResourceID), to.Ptr(st.ResourceID[strings.LastIndex(st.ResourceID, "/")+1:])
			next.Properties.ProvisioningState = to.Ptr("Succeeded")
			mc = next
		case KindAgentPool:
			var ap armcontainerservice.AgentPool
			if err := json.Unmarshal(st.Body, &ap); err != nil {
				t.Fatalf("step body: %v", err)
			}
			data, _ := json.Marshal(ap.Properties)
			var prof armcontainerservice.ManagedClusterAgentPoolProfile
			if err := json.Unmarshal(data, &prof); err != nil {
				t.Fatal(err)
			}
			name := st.ResourceID[strings.LastIndex(st.ResourceID, "/")+1:]
			prof.Name = to.Ptr(name)
			i := slices.IndexFunc(mc.Properties.AgentPoolProfiles, func(x *armcontainerservice.ManagedClusterAgentPoolProfile) bool { return sval(x.Name) == name })
			if i < 0 {
				mc.Properties.AgentPoolProfiles = append(mc.Properties.AgentPoolProfiles, &prof)
			} else {
				mc.Properties.AgentPoolProfiles[i] = &prof
			}
		}
	}
	return mc
}

// TestPlanAgainIsEmpty: planning again after applying a plan yields no steps.
func TestPlanAgainIsEmpty(t *testing.T) {
	cases := planCases()
	kubenetCalico := fxKubenet()
	kubenetCalico.Network.Policy = PolicyCalico
	upgraded := fxOverlay()
	upgraded.KubernetesVersion = "1.34"
	upgraded.Pools[1].Count = 1
	upgraded.Tags = map[string]string{"env": "prod"}
	upgraded.MonitoringWorkspaceID = fxWorkspace
	cases = append(cases,
		planCase{name: "kubenet with calico", desired: fxOverlay(), current: live(kubenetCalico)},
		planCase{name: "upgrade, scale, tags, monitoring", desired: upgraded, current: live(fxOverlay())},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Plan(t.Context(), tc.desired, tc.current)
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			after := applyPlan(t, tc.current, p)
			again, err := Plan(t.Context(), tc.desired, &after)
			if err != nil {
				t.Fatalf("Plan after applying: %v", err)
			}
			if len(again.Steps) != 0 {
				t.Errorf("Plan after applying has %d steps, want 0:\n%s", len(again.Steps), planJSON(t, again))
			}
		})
	}
}

func TestPlanUpdateBodies(t *testing.T) {
	current := live(fxAzureCNI())
	current.Properties.NodeProvisioningProfile = &armcontainerservice.ManagedClusterNodeProvisioningProfile{Mode: to.Ptr(armcontainerservice.NodeProvisioningModeManual)}
	p, err := Plan(t.Context(), fxNodeSubnet(), current)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Steps) != 1 {
		t.Fatalf("%d steps, want 1", len(p.Steps))
	}
	st := p.Steps[0]
	if st.APIVersion != DefaultAPIVersion || st.ResourceID != fxNodeSubnet().ResourceID() {
		t.Errorf("step %s api-version %s", st.ResourceID, st.APIVersion)
	}
	var body map[string]any
	if err := json.Unmarshal(st.Body, &body); err != nil {
		t.Fatal(err)
	}
	// Changed.
	for path, want := range map[string]any{
		"properties.networkProfile.networkDataplane": "cilium",
		"properties.networkProfile.networkPolicy":    "cilium",
		"properties.networkProfile.networkPlugin":    "azure",
	} {
		if got := at(body, pathOf(path)...); got != want {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
	// Preserved: settings ceskit does not model.
	for path, want := range map[string]any{
		"sku.tier": "Free",
		"properties.autoUpgradeProfile.nodeOSUpgradeChannel":                     "NodeImage",
		"properties.nodeResourceGroup":                                           "MC_rg-ces_ces1_eastus2",
		"properties.networkProfile.loadBalancerProfile.managedOutboundIPs.count": 1.0,
		"properties.nodeProvisioningProfile.mode":                                "Manual",
		"properties.agentPoolProfiles.0.osDiskSizeGB":                            128.0,
		"properties.agentPoolProfiles.0.orchestratorVersion":                     "1.33",
	} {
		if got := at(body, pathOf(path)...); got != want {
			t.Errorf("%s = %v, want %v (preserved)", path, got, want)
		}
	}
	// Stripped: read-only fields.
	for _, path := range []string{
		"id", "name", "type", "etag", "identity.principalId", "identity.tenantId",
		"properties.provisioningState", "properties.powerState", "properties.fqdn", "properties.azurePortalFQDN",
		"properties.currentKubernetesVersion", "properties.maxAgentPools", "properties.resourceUID",
		"properties.networkProfile.loadBalancerProfile.effectiveOutboundIPs",
		"properties.agentPoolProfiles.0.provisioningState", "properties.agentPoolProfiles.0.currentOrchestratorVersion",
		"properties.agentPoolProfiles.0.nodeImageVersion", "properties.agentPoolProfiles.0.eTag",
	} {
		if got := at(body, pathOf(path)...); got != nil {
			t.Errorf("%s = %v, want it stripped", path, got)
		}
	}
	// What it disrupts.
	if st.Disruption != DisruptReimage || !slices.Equal(st.Affects, []string{"system", "user"}) {
		t.Errorf("disruption %s affects %v", st.Disruption, st.Affects)
	}
	for _, w := range []string{warnReimageAll, warnCiliumLate, warnKubeProxy, warnNAP, "Azure NPM is uninstalled"} {
		if !slices.ContainsFunc(st.Warnings, func(s string) bool { return strings.Contains(s, w) }) {
			t.Errorf("warnings lack %q: %q", w, st.Warnings)
		}
	}
	if !slices.Contains(st.Warnings, warnSinglePDB) {
		t.Errorf("no single-system-pool warning: %q", st.Warnings)
	}
}

func pathOf(p string) []any {
	var out []any
	for _, part := range strings.Split(p, ".") {
		if n, err := strconv.Atoi(part); err == nil {
			out = append(out, n)
		} else {
			out = append(out, part)
		}
	}
	return out
}

func TestPlanKubenetPath(t *testing.T) {
	current := fxKubenet()
	current.Network.Policy = PolicyCalico
	current.Pools = current.Pools[:1] // a single System pool
	desired := fxOverlay()
	desired.Pools = desired.Pools[:1]
	p, err := Plan(t.Context(), desired, live(current))
	if err != nil {
		t.Fatal(err)
	}
	var descs []string
	for _, st := range p.Steps {
		descs = append(descs, st.Description)
	}
	if len(p.Steps) != 3 {
		t.Fatalf("%d steps, want 3 (remove Calico, overlay, Cilium):\n%s", len(p.Steps), strings.Join(descs, "\n"))
	}
	state := func(st Step) []any {
		var b map[string]any
		if err := json.Unmarshal(st.Body, &b); err != nil {
			t.Fatal(err)
		}
		var out []any
		for _, k := range []string{"networkPlugin", "networkPluginMode", "networkDataplane", "networkPolicy", "podCidr"} {
			out = append(out, at(b, "properties", "networkProfile", k))
		}
		return out
	}
	want := [][]any{
		{"kubenet", nil, "azure", "none", "10.244.0.0/16"},
		{"azure", "overlay", "azure", "none", "192.168.0.0/16"},
		{"azure", "overlay", "cilium", "cilium", "192.168.0.0/16"},
	}
	for i, st := range p.Steps {
		if diff := cmp.Diff(want[i], state(st)); diff != "" {
			t.Errorf("step %d (%s) plugin, mode, dataplane, policy, podCidr (-want +got):\n%s", i, st.Description, diff)
		}
	}
	if p.Steps[0].Disruption != DisruptNone || !slices.Contains(p.Steps[0].Warnings, warnNoPolicy) {
		t.Errorf("policy removal step: %s %q", p.Steps[0].Disruption, p.Steps[0].Warnings)
	}
	for _, st := range p.Steps[1:] {
		if st.Disruption != DisruptReimage || !slices.Equal(st.Affects, []string{"system"}) {
			t.Errorf("%s: disruption %s affects %v", st.Description, st.Disruption, st.Affects)
		}
		if !slices.Contains(st.Warnings, warnSinglePDB) {
			t.Errorf("%s: no single-system-pool warning: %q", st.Description, st.Warnings)
		}
	}
}

func TestPlanWarnsAboutContainerNetworkLogs(t *testing.T) {
	s := fxOverlay()
	s.ACNS = &ACNS{Observability: true, ContainerNetworkLogs: true}
	s.MonitoringWorkspaceID = fxWorkspace
	p, err := Plan(t.Context(), s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "ContainerNetworkLog") {
		t.Errorf("plan warnings %q", p.Warnings)
	}
}

func TestPlanErrors(t *testing.T) {
	t.Run("invalid create", func(t *testing.T) {
		s := fxOverlay()
		s.Network.PodCIDR = ""
		_, err := Plan(t.Context(), s, nil)
		if ps := problems(t, err); !hasProblem(ps, CodePodCidrRequired, "network.podCidr") {
			t.Errorf("problems %v", ps)
		}
	})
	t.Run("invalid update", func(t *testing.T) {
		s := fxOverlay()
		s.Network.Dataplane, s.Network.Policy = DataplaneAzure, PolicyNone
		_, err := Plan(t.Context(), s, live(fxOverlay()))
		if ps := problems(t, err); !hasProblem(ps, CodeCiliumDataplaneCannotBeDisabled, "network.dataplane") {
			t.Errorf("problems %v", ps)
		}
	})
	t.Run("unreadable current", func(t *testing.T) {
		mc := fxLive(fxOverlay())
		mc.ID = nil
		_, err := Plan(t.Context(), fxOverlay(), &mc)
		var ve *ValidationError
		if err == nil || errors.As(err, &ve) {
			t.Errorf("err = %v, want a plain error", err)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := Plan(ctx, fxOverlay(), nil); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
}

func TestPlanCreateBodyIsManagedCluster(t *testing.T) {
	s := fxPodSubnet()
	p, err := Plan(t.Context(), s, nil)
	if err != nil {
		t.Fatal(err)
	}
	mc, err := s.ManagedCluster()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(mc)
	got := p.Steps[len(p.Steps)-1].Body
	if !bytes.Equal(want, got) {
		t.Errorf("create body differs from ManagedCluster():\n%s\n%s", want, got)
	}
	for _, st := range p.Steps {
		wantAPI := map[StepKind]string{KindResourceGroup: ResourcesAPIVersion, KindVirtualNetwork: NetworkAPIVersion, KindManagedCluster: DefaultAPIVersion}[st.Kind]
		if st.APIVersion != wantAPI {
			t.Errorf("%s api-version %s, want %s", st.Kind, st.APIVersion, wantAPI)
		}
	}
}

func TestPlanLeavesAutoscaledCountsAlone(t *testing.T) {
	current := live(fxOverlay())
	current.Properties.AgentPoolProfiles[1].EnableAutoScaling = to.Ptr(true)
	current.Properties.AgentPoolProfiles[1].Count = to.Ptr[int32](7)
	p, err := Plan(t.Context(), fxOverlay(), current)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Steps) != 0 {
		t.Errorf("%d steps for an autoscaled pool's count, want 0:\n%s", len(p.Steps), planJSON(t, p))
	}
}
