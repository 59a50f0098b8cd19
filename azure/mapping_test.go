package azure

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v8"
	"github.com/google/go-cmp/cmp"
)

// Fixtures shared by this package's tests.

const (
	fxSub       = "11111111-2222-3333-4444-555555555555"
	fxRG        = "rg-ces"
	fxUAI       = "/subscriptions/" + fxSub + "/resourceGroups/rg-id/providers/Microsoft.ManagedIdentity/userAssignedIdentities/aks-id"
	fxWorkspace = "/subscriptions/" + fxSub + "/resourceGroups/rg-mon/providers/Microsoft.OperationalInsights/workspaces/logs"
)

func fxSubnet(vnet, name string) string {
	return "/subscriptions/" + fxSub + "/resourceGroups/" + fxRG + "/providers/Microsoft.Network/virtualNetworks/" + vnet + "/subnets/" + name
}

// fxOverlay is a valid overlay cluster with two pools.
func fxOverlay() ClusterSpec {
	return ClusterSpec{
		SubscriptionID:    fxSub,
		ResourceGroup:     fxRG,
		Name:              "ces1",
		Location:          "eastus2",
		KubernetesVersion: "1.33",
		Network:           Network{Model: ModelOverlay, PodCIDR: "192.168.0.0/16"},
		Pools: []Pool{
			{Name: "system", Count: 2, VMSize: "Standard_D4s_v5"},
			{Name: "user", Count: 3, VMSize: "Standard_D8s_v5", OSSKU: "AzureLinux"},
		},
	}
}

// fxPodSubnet is a valid pod-subnet cluster whose VNet the plan creates.
func fxPodSubnet() ClusterSpec {
	s := fxOverlay()
	s.Network = Network{Model: ModelPodSubnet, ServiceCIDR: "10.0.0.0/16"}
	s.VNet = &VNet{
		Name:         "ces-vnet",
		AddressSpace: []string{"10.224.0.0/12"},
		Subnets: []Subnet{
			{Name: "nodes", Prefix: "10.224.0.0/16"},
			{Name: "pods", Prefix: "10.225.0.0/16", Delegation: "Microsoft.ContainerService/managedClusters"},
		},
	}
	s.CreateResourceGroup = true
	for i := range s.Pools {
		s.Pools[i].VNetSubnetID = s.SubnetID("nodes")
		s.Pools[i].PodSubnetID = s.SubnetID("pods")
	}
	return s
}

// fxNodeSubnet is a valid node-subnet cluster on existing subnets.
func fxNodeSubnet() ClusterSpec {
	s := fxOverlay()
	s.Network = Network{Model: ModelNodeSubnet}
	for i := range s.Pools {
		s.Pools[i].VNetSubnetID = fxSubnet("existing", "aks")
	}
	return s
}

// fxLive returns s as a GET would: the model of s (defaulted, not validated) with the resource's
// read-only fields set, AKS's defaults filled in and unmodeled settings present.
func fxLive(s ClusterSpec) armcontainerservice.ManagedCluster {
	d := s.WithDefaults()
	mc := d.managedCluster()
	mc.ID = to.Ptr(d.ResourceID())
	mc.Name = to.Ptr(d.Name)
	mc.Type = to.Ptr("Microsoft.ContainerService/ManagedClusters")
	mc.ETag = to.Ptr("etag-1")
	mc.SKU = &armcontainerservice.ManagedClusterSKU{Name: to.Ptr(armcontainerservice.ManagedClusterSKUNameBase), Tier: to.Ptr(armcontainerservice.ManagedClusterSKUTierFree)}
	if mc.Identity.Type != nil && *mc.Identity.Type == armcontainerservice.ResourceIdentityTypeSystemAssigned {
		mc.Identity.PrincipalID = to.Ptr("principal")
		mc.Identity.TenantID = to.Ptr("tenant")
	}
	p := mc.Properties
	p.ProvisioningState = to.Ptr("Succeeded")
	p.PowerState = &armcontainerservice.PowerState{Code: to.Ptr(armcontainerservice.CodeRunning)}
	p.Fqdn = to.Ptr(d.DNSPrefix + "-abc.hcp.eastus2.azmk8s.io")
	p.AzurePortalFQDN = to.Ptr(d.DNSPrefix + "-abc.portal.hcp.eastus2.azmk8s.io")
	p.CurrentKubernetesVersion = to.Ptr(d.KubernetesVersion + ".4")
	p.MaxAgentPools = to.Ptr[int32](100)
	p.ResourceUID = to.Ptr("uid")
	p.NodeResourceGroup = to.Ptr("MC_" + d.ResourceGroup + "_" + d.Name + "_eastus2")
	p.EnableRBAC = to.Ptr(true)
	p.AutoUpgradeProfile = &armcontainerservice.ManagedClusterAutoUpgradeProfile{
		NodeOSUpgradeChannel: to.Ptr(armcontainerservice.NodeOSUpgradeChannelNodeImage),
	}
	np := p.NetworkProfile
	np.LoadBalancerSKU = to.Ptr(armcontainerservice.LoadBalancerSKUStandard)
	np.LoadBalancerProfile = &armcontainerservice.ManagedClusterLoadBalancerProfile{
		ManagedOutboundIPs:   &armcontainerservice.ManagedClusterLoadBalancerProfileManagedOutboundIPs{Count: to.Ptr[int32](1)},
		EffectiveOutboundIPs: []*armcontainerservice.ResourceReference{{ID: to.Ptr("/subscriptions/x/pip")}},
	}
	np.IPFamilies = []*armcontainerservice.IPFamily{to.Ptr(armcontainerservice.IPFamilyIPv4)}
	np.PodCidrs = nil
	if np.PodCidr != nil {
		np.PodCidrs = []*string{np.PodCidr}
	}
	np.ServiceCidrs = []*string{np.ServiceCidr}
	if np.NetworkPolicy == nil && d.Network.Policy != PolicyNone {
		np.NetworkPolicy = to.Ptr(armcontainerservice.NetworkPolicy(d.Network.Policy))
	}
	if np.NetworkPolicy == nil {
		np.NetworkPolicy = to.Ptr(armcontainerservice.NetworkPolicyNone)
	}
	if mc.Properties.AddonProfiles != nil {
		mc.Properties.AddonProfiles[monitoringAddon].Identity = &armcontainerservice.ManagedClusterAddonProfileIdentity{ClientID: to.Ptr("oms-client")}
	}
	for _, ap := range p.AgentPoolProfiles {
		if ap.OrchestratorVersion == nil {
			ap.OrchestratorVersion = to.Ptr(d.KubernetesVersion)
		}
		ap.CurrentOrchestratorVersion = to.Ptr(d.KubernetesVersion + ".4")
		ap.NodeImageVersion = to.Ptr("AKSUbuntu-2204gen2containerd-202601.01.0")
		ap.ProvisioningState = to.Ptr("Succeeded")
		ap.ETag = to.Ptr("pool-etag")
		ap.Type = to.Ptr(armcontainerservice.AgentPoolTypeVirtualMachineScaleSets)
		ap.OSDiskSizeGB = to.Ptr[int32](128)
		ap.PowerState = &armcontainerservice.PowerState{Code: to.Ptr(armcontainerservice.CodeRunning)}
		if ap.OSSKU == nil {
			ap.OSSKU = to.Ptr(armcontainerservice.OSSKUUbuntu)
		}
	}
	return mc
}

func TestWithDefaults(t *testing.T) {
	got := fxOverlay().WithDefaults()
	want := fxOverlay()
	want.APIVersion = "2025-10-01"
	want.DNSPrefix = "ces1"
	want.Identity = "SystemAssigned"
	want.Network = Network{Model: ModelOverlay, Dataplane: DataplaneCilium, Policy: PolicyCilium, PodCIDR: "192.168.0.0/16",
		ServiceCIDR: "10.0.0.0/16", DNSServiceIP: "10.0.0.10", OutboundType: "loadBalancer"}
	want.Pools[0].Mode, want.Pools[0].OSType, want.Pools[0].MaxPods = "System", "Linux", 250
	want.Pools[1].Mode, want.Pools[1].OSType, want.Pools[1].MaxPods = "User", "Linux", 250
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("WithDefaults() (-want +got):\n%s", diff)
	}

	tests := []struct {
		name  string
		in    func(*ClusterSpec)
		check func(ClusterSpec) string
	}{
		{"azure dataplane policy none", func(s *ClusterSpec) { s.Network.Dataplane = DataplaneAzure }, func(s ClusterSpec) string { return string(s.Network.Policy) + " none" }},
		{"node subnet maxPods", func(s *ClusterSpec) { s.Network.Model = ModelNodeSubnet }, func(s ClusterSpec) string { return itoa(s.Pools[0].MaxPods) + " 30" }},
		{"kubenet maxPods", func(s *ClusterSpec) { s.Network.Model = ModelKubenet }, func(s ClusterSpec) string { return itoa(s.Pools[0].MaxPods) + " 110" }},
		{"explicit maxPods kept", func(s *ClusterSpec) { s.Pools[1].MaxPods = 60 }, func(s ClusterSpec) string { return itoa(s.Pools[1].MaxPods) + " 60" }},
		{"dns IP from service CIDR", func(s *ClusterSpec) { s.Network.ServiceCIDR = "172.16.0.0/16" }, func(s ClusterSpec) string { return s.Network.DNSServiceIP + " 172.16.0.10" }},
		{"dns prefix kept", func(s *ClusterSpec) { s.DNSPrefix = "pfx" }, func(s ClusterSpec) string { return s.DNSPrefix + " pfx" }},
		{"ACNS security FQDN", func(s *ClusterSpec) { s.ACNS = &ACNS{Security: true} }, func(s ClusterSpec) string { return string(s.ACNS.AdvancedNetworkPolicies) + " FQDN" }},
		{"ACNS observability only", func(s *ClusterSpec) { s.ACNS = &ACNS{Observability: true} }, func(s ClusterSpec) string { return string(s.ACNS.AdvancedNetworkPolicies) + " " }},
		{"api version kept", func(s *ClusterSpec) { s.APIVersion = "2024-09-01" }, func(s ClusterSpec) string { return s.APIVersion + " 2024-09-01" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := fxOverlay()
			tt.in(&s)
			gotWant := strings.SplitN(tt.check(s.WithDefaults()), " ", 2)
			if gotWant[0] != gotWant[1] {
				t.Errorf("got %q, want %q", gotWant[0], gotWant[1])
			}
		})
	}

	t.Run("does not modify its receiver", func(t *testing.T) {
		s := fxOverlay()
		s.ACNS = &ACNS{Security: true}
		_ = s.WithDefaults()
		if s.Pools[0].Mode != "" || s.ACNS.AdvancedNetworkPolicies != "" {
			t.Errorf("WithDefaults modified its receiver: %+v %+v", s.Pools[0], s.ACNS)
		}
	})
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

// wire returns the JSON the SDK sends for mc, as a generic value.
func wire(t *testing.T, v any) map[string]any {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// at walks a path of keys and indices through a decoded JSON value.
func at(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			a, ok := v.([]any)
			if !ok || k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

func TestManagedCluster(t *testing.T) {
	type check struct {
		path []any
		want any
	}
	np := func(k string) []any { return []any{"properties", "networkProfile", k} }
	pool := func(i int, k string) []any { return []any{"properties", "agentPoolProfiles", i, k} }
	tests := []struct {
		name   string
		spec   func() ClusterSpec
		checks []check
	}{
		{"overlay", fxOverlay, []check{
			{[]any{"location"}, "eastus2"},
			{[]any{"identity", "type"}, "SystemAssigned"},
			{[]any{"properties", "dnsPrefix"}, "ces1"},
			{[]any{"properties", "kubernetesVersion"}, "1.33"},
			{np("networkPlugin"), "azure"},
			{np("networkPluginMode"), "overlay"},
			{np("networkDataplane"), "cilium"},
			{np("networkPolicy"), "cilium"},
			{np("podCidr"), "192.168.0.0/16"},
			{np("serviceCidr"), "10.0.0.0/16"},
			{np("dnsServiceIP"), "10.0.0.10"},
			{np("outboundType"), "loadBalancer"},
			{np("advancedNetworking"), nil},
			{pool(0, "name"), "system"},
			{pool(0, "mode"), "System"},
			{pool(0, "osType"), "Linux"},
			{pool(0, "maxPods"), 250.0},
			{pool(0, "count"), 2.0},
			{pool(1, "mode"), "User"},
			{pool(1, "osSKU"), "AzureLinux"},
			{[]any{"properties", "addonProfiles"}, nil},
		}},
		{"pod subnet", fxPodSubnet, []check{
			{np("networkPlugin"), "azure"},
			{np("networkPluginMode"), nil},
			{np("podCidr"), nil},
			{pool(0, "vnetSubnetID"), fxSubnet("ces-vnet", "nodes")},
			{pool(0, "podSubnetID"), fxSubnet("ces-vnet", "pods")},
		}},
		{"node subnet", fxNodeSubnet, []check{
			{np("networkPlugin"), "azure"},
			{np("networkPluginMode"), nil},
			{pool(1, "vnetSubnetID"), fxSubnet("existing", "aks")},
			{pool(1, "podSubnetID"), nil},
			{pool(1, "maxPods"), 30.0},
		}},
		{"ACNS, monitoring, user-assigned identity, tags", func() ClusterSpec {
			s := fxOverlay()
			s.ACNS = &ACNS{Observability: true, Security: true, AdvancedNetworkPolicies: AdvancedPoliciesL7}
			s.MonitoringWorkspaceID = fxWorkspace
			s.Identity = fxUAI
			s.Tags = map[string]string{"env": "test"}
			return s
		}, []check{
			{np("advancedNetworking"), map[string]any{
				"enabled":       true,
				"observability": map[string]any{"enabled": true},
				"security":      map[string]any{"enabled": true, "advancedNetworkPolicies": "L7"},
			}},
			{[]any{"properties", "addonProfiles", "omsagent"}, map[string]any{
				"enabled": true, "config": map[string]any{"logAnalyticsWorkspaceResourceID": fxWorkspace},
			}},
			{[]any{"identity"}, map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{fxUAI: map[string]any{}}}},
			{[]any{"tags"}, map[string]any{"env": "test"}},
		}},
		{"ACNS observability on", func() ClusterSpec {
			s := fxOverlay()
			s.ACNS = &ACNS{Observability: true}
			return s
		}, []check{
			{np("advancedNetworking"), map[string]any{
				"enabled":       true,
				"observability": map[string]any{"enabled": true},
				"security":      map[string]any{"enabled": false},
			}},
		}},
		{"azure dataplane leaves networkPolicy to AKS", func() ClusterSpec {
			s := fxOverlay()
			s.Network.Dataplane = DataplaneAzure
			return s
		}, []check{
			{np("networkDataplane"), "azure"},
			{np("networkPolicy"), nil},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mc, err := tt.spec().ManagedCluster()
			if err != nil {
				t.Fatalf("ManagedCluster: %v", err)
			}
			w := wire(t, mc)
			for _, c := range tt.checks {
				if diff := cmp.Diff(c.want, at(w, c.path...)); diff != "" {
					t.Errorf("%v (-want +got):\n%s", c.path, diff)
				}
			}
		})
	}

	t.Run("invalid spec", func(t *testing.T) {
		s := fxOverlay()
		s.Network.PodCIDR = ""
		if _, err := s.ManagedCluster(); err == nil {
			t.Fatal("ManagedCluster of an overlay spec without pod CIDR: no error")
		}
	})
	t.Run("kubenet mapping", func(t *testing.T) {
		s := fxOverlay()
		s.Network = Network{Model: ModelKubenet, Dataplane: DataplaneAzure, PodCIDR: "10.244.0.0/16"}
		w := wire(t, s.WithDefaults().managedCluster())
		if got := at(w, np("networkPlugin")...); got != "kubenet" {
			t.Errorf("networkPlugin = %v, want kubenet", got)
		}
		if got := at(w, np("podCidr")...); got != "10.244.0.0/16" {
			t.Errorf("podCidr = %v", got)
		}
	})
}

func TestSpecFromManagedClusterRoundTrip(t *testing.T) {
	specs := map[string]func() ClusterSpec{
		"overlay":     fxOverlay,
		"pod subnet":  fxPodSubnet,
		"node subnet": fxNodeSubnet,
		"everything": func() ClusterSpec {
			s := fxOverlay()
			s.ACNS = &ACNS{Observability: true, Security: true, AdvancedNetworkPolicies: AdvancedPoliciesL7}
			s.MonitoringWorkspaceID = fxWorkspace
			s.Identity = fxUAI
			s.Tags = map[string]string{"env": "test", "team": "net"}
			s.DNSPrefix = "ces-one"
			s.Network.CiliumEndpointSlices = true
			s.Network.ServiceCIDR = "172.16.0.0/16"
			s.Pools[1].MaxPods = 110
			s.Pools[1].OrchestratorVersion = "1.32"
			return s
		},
		"azure dataplane": func() ClusterSpec {
			s := fxNodeSubnet()
			s.KubernetesVersion = "1.31.2"
			s.Network.Dataplane = DataplaneAzure
			s.Network.Policy = PolicyAzure
			return s
		},
	}
	for name, mk := range specs {
		t.Run(name, func(t *testing.T) {
			in := mk()
			mc, err := in.ManagedCluster()
			if err != nil {
				t.Fatalf("ManagedCluster: %v", err)
			}
			mc.ID = to.Ptr(in.ResourceID())
			mc.Name = to.Ptr(in.Name)
			got, err := SpecFromManagedCluster(mc)
			if err != nil {
				t.Fatalf("SpecFromManagedCluster: %v", err)
			}
			want := in.WithDefaults()
			want.VNet, want.CreateResourceGroup, want.APIVersion = nil, false, ""
			if want.Network.Dataplane == DataplaneCilium && strings.HasPrefix(want.KubernetesVersion, "1.33") {
				want.Network.CiliumEndpointSlices = true
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
			// And once more through the live shape a GET returns.
			got2, err := SpecFromManagedCluster(fxLive(in))
			if err != nil {
				t.Fatalf("SpecFromManagedCluster(live): %v", err)
			}
			for i := range got2.Pools {
				if in.Pools[i].OSSKU == "" {
					got2.Pools[i].OSSKU = "" // AKS's default, filled in by the live fixture
				}
			}
			if diff := cmp.Diff(want, got2); diff != "" {
				t.Errorf("round trip through a live cluster (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSpecFromManagedClusterReadsAKSDefaults(t *testing.T) {
	mc := fxLive(fxOverlay())
	mc.Properties.NetworkProfile.NetworkDataplane = nil
	mc.Properties.NetworkProfile.NetworkPolicy = nil
	mc.Properties.NetworkProfile.AdvancedNetworking = &armcontainerservice.AdvancedNetworking{Enabled: to.Ptr(true)}
	mc.Properties.AddonProfiles = map[string]*armcontainerservice.ManagedClusterAddonProfile{
		"omsAgent": {Enabled: to.Ptr(true), Config: map[string]*string{"logAnalyticsWorkspaceResourceId": to.Ptr(fxWorkspace)}},
	}
	got, err := SpecFromManagedCluster(mc)
	if err != nil {
		t.Fatal(err)
	}
	if got.Network.Dataplane != DataplaneAzure || got.Network.Policy != PolicyNone {
		t.Errorf("dataplane, policy = %s, %s; want azure, none", got.Network.Dataplane, got.Network.Policy)
	}
	if diff := cmp.Diff(&ACNS{Observability: true}, got.ACNS); diff != "" {
		t.Errorf("ACNS enabled without features on the azure dataplane (-want +got):\n%s", diff)
	}
	if got.MonitoringWorkspaceID != fxWorkspace {
		t.Errorf("MonitoringWorkspaceID = %q", got.MonitoringWorkspaceID)
	}
}

func TestSpecFromManagedClusterErrors(t *testing.T) {
	tests := map[string]func(*armcontainerservice.ManagedCluster){
		"no id":         func(mc *armcontainerservice.ManagedCluster) { mc.ID = nil },
		"bad id":        func(mc *armcontainerservice.ManagedCluster) { mc.ID = to.Ptr("not-an-id") },
		"not a cluster": func(mc *armcontainerservice.ManagedCluster) { mc.ID = to.Ptr(fxSubnet("v", "s")) },
		"no properties": func(mc *armcontainerservice.ManagedCluster) { mc.Properties = nil },
		"no network":    func(mc *armcontainerservice.ManagedCluster) { mc.Properties.NetworkProfile = nil },
		"BYO CNI": func(mc *armcontainerservice.ManagedCluster) {
			mc.Properties.NetworkProfile.NetworkPlugin = to.Ptr(armcontainerservice.NetworkPluginNone)
		},
		"two identities": func(mc *armcontainerservice.ManagedCluster) {
			mc.Identity = &armcontainerservice.ManagedClusterIdentity{
				Type: to.Ptr(armcontainerservice.ResourceIdentityTypeUserAssigned),
				UserAssignedIdentities: map[string]*armcontainerservice.ManagedServiceIdentityUserAssignedIdentitiesValue{
					fxUAI: {}, fxUAI + "2": {},
				},
			}
		},
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			mc := fxLive(fxOverlay())
			mutate(&mc)
			if _, err := SpecFromManagedCluster(mc); err == nil {
				t.Error("no error")
			}
		})
	}
}

func TestMinCiliumVersion(t *testing.T) {
	tests := []struct {
		k8s, want string
		ok        bool
	}{
		{"1.29", "1.14.20", true},
		{"1.30.4", "1.14.20", true},
		{"1.31", "1.16.16", true},
		{"1.32", "1.17.9", true},
		{"1.33.2", "1.17.9", true},
		{"1.34", "1.18.6", true},
		{"1.35", "1.18.6", true},
		{"1.28", "", false},
		{"1.36", "", false},
		{"v1.33", "", false},
	}
	for _, tt := range tests {
		got, ok := MinCiliumVersion(tt.k8s)
		if got != tt.want || ok != tt.ok {
			t.Errorf("MinCiliumVersion(%q) = %q, %v; want %q, %v", tt.k8s, got, ok, tt.want, tt.ok)
		}
	}
}
