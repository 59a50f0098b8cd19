package azure

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v8"
)

func problems(t *testing.T, err error) []Problem {
	t.Helper()
	if err == nil {
		return nil
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
	}
	return ve.Problems
}

func hasProblem(ps []Problem, code, field string) bool {
	for _, p := range ps {
		if p.Code == code && p.Field == field {
			return true
		}
	}
	return false
}

func TestValidateAcceptsValidSpecs(t *testing.T) {
	specs := map[string]ClusterSpec{
		"overlay":     fxOverlay(),
		"pod subnet":  fxPodSubnet(),
		"node subnet": fxNodeSubnet(),
		"azure dataplane with NPM": func() ClusterSpec {
			s := fxNodeSubnet()
			s.Network.Dataplane, s.Network.Policy = DataplaneAzure, PolicyAzure
			return s
		}(),
		"everything": func() ClusterSpec {
			s := fxOverlay()
			s.ACNS = &ACNS{Observability: true, Security: true, AdvancedNetworkPolicies: AdvancedPoliciesL7, ContainerNetworkLogs: true}
			s.MonitoringWorkspaceID = fxWorkspace
			s.Identity = fxUAI
			s.Network.CiliumEndpointSlices = true
			s.Pools[1].OrchestratorVersion = "1.32.5"
			s.APIVersion = "2025-08-01"
			return s
		}(),
		"preview api-version": func() ClusterSpec {
			s := fxOverlay()
			s.APIVersion = "2025-05-02-preview"
			s.ACNS = &ACNS{Security: true}
			return s
		}(),
	}
	for name, s := range specs {
		t.Run(name, func(t *testing.T) {
			if err := Validate(s); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

// TestValidateRules has one case per rule: the mutation of a valid spec that breaks it, and the
// problem it must produce.
func TestValidateRules(t *testing.T) {
	tests := []struct {
		name      string
		base      func() ClusterSpec
		mutate    func(*ClusterSpec)
		wantCode  string
		wantField string
	}{
		// Syntax.
		{"subscription not a GUID", fxOverlay, func(s *ClusterSpec) { s.SubscriptionID = "sub-1" }, CodeInvalidSubscriptionID, "subscriptionId"},
		{"resource group ends with a period", fxOverlay, func(s *ClusterSpec) { s.ResourceGroup = "rg." }, CodeInvalidResourceGroupName, "resourceGroup"},
		{"cluster name with a space", fxOverlay, func(s *ClusterSpec) { s.Name = "my cluster"; s.DNSPrefix = "x" }, CodeInvalidClusterName, "name"},
		{"location display name", fxOverlay, func(s *ClusterSpec) { s.Location = "East US 2" }, CodeInvalidLocation, "location"},
		{"kubernetes version with v", fxOverlay, func(s *ClusterSpec) { s.KubernetesVersion = "v1.33" }, CodeInvalidKubernetesVersion, "kubernetesVersion"},
		{"dns prefix from a name with underscore", fxOverlay, func(s *ClusterSpec) { s.Name = "ces_1" }, CodeInvalidDNSPrefix, "dnsPrefix"},
		{"api-version syntax", fxOverlay, func(s *ClusterSpec) { s.APIVersion = "2025-13-01" }, CodeInvalidAPIVersion, "apiVersion"},
		{"identity not a user-assigned identity", fxOverlay, func(s *ClusterSpec) { s.Identity = fxWorkspace }, CodeInvalidIdentity, "identity"},
		{"workspace not a workspace", fxOverlay, func(s *ClusterSpec) { s.MonitoringWorkspaceID = fxUAI }, CodeInvalidWorkspaceID, "monitoringWorkspaceId"},
		// Model, dataplane, policy.
		{"unknown model", fxOverlay, func(s *ClusterSpec) { s.Network.Model = "bridge" }, CodeInvalidNetworkModel, "network.model"},
		{"kubenet desired", fxOverlay, func(s *ClusterSpec) { s.Network.Model = ModelKubenet }, CodeKubenetNotSupported, "network.model"},
		{"unknown dataplane", fxOverlay, func(s *ClusterSpec) { s.Network.Dataplane = "ebpf"; s.Network.Policy = PolicyNone }, CodeInvalidNetworkDataplane, "network.dataplane"},
		{"unknown policy", fxOverlay, func(s *ClusterSpec) { s.Network.Policy = "antrea" }, CodeInvalidNetworkPolicy, "network.policy"},
		{"cilium dataplane with NPM", fxOverlay, func(s *ClusterSpec) { s.Network.Policy = PolicyAzure }, CodeCiliumDataplaneRequiresNetworkPolicyCilium, "network.policy"},
		{"cilium dataplane without policy", fxOverlay, func(s *ClusterSpec) { s.Network.Policy = PolicyNone }, CodeCiliumDataplaneRequiresNetworkPolicyCilium, "network.policy"},
		{"cilium policy on azure dataplane", fxOverlay, func(s *ClusterSpec) { s.Network.Dataplane = DataplaneAzure; s.Network.Policy = PolicyCilium }, CodeNetworkPolicyCiliumRequiresCiliumDataplane, "network.policy"},
		{"outbound type", fxOverlay, func(s *ClusterSpec) { s.Network.OutboundType = "nat" }, CodeInvalidOutboundType, "network.outboundType"},
		// Overlay and subnets.
		{"overlay without pod CIDR", fxOverlay, func(s *ClusterSpec) { s.Network.PodCIDR = "" }, CodePodCidrRequired, "network.podCidr"},
		{"overlay with a pod subnet", fxOverlay, func(s *ClusterSpec) { s.Pools[1].PodSubnetID = fxSubnet("v", "pods") }, CodePodSubnetNotAllowed, "pools[1].podSubnetId"},
		{"pod CIDR outside overlay", fxNodeSubnet, func(s *ClusterSpec) { s.Network.PodCIDR = "192.168.0.0/16" }, CodePodCidrNotAllowed, "network.podCidr"},
		{"node subnet with a pod subnet", fxNodeSubnet, func(s *ClusterSpec) { s.Pools[0].PodSubnetID = fxSubnet("existing", "pods") }, CodePodSubnetNotAllowed, "pools[0].podSubnetId"},
		{"node subnet without subnet", fxNodeSubnet, func(s *ClusterSpec) { s.Pools[1].VNetSubnetID = "" }, CodeSubnetRequired, "pools[1].vnetSubnetId"},
		{"pod subnet without pod subnet", fxPodSubnet, func(s *ClusterSpec) { s.Pools[1].PodSubnetID = "" }, CodeSubnetRequired, "pools[1].podSubnetId"},
		{"pod subnet without node subnet", fxPodSubnet, func(s *ClusterSpec) { s.Pools[0].VNetSubnetID = "" }, CodeSubnetRequired, "pools[0].vnetSubnetId"},
		{"subnet ID unparseable", fxNodeSubnet, func(s *ClusterSpec) { s.Pools[0].VNetSubnetID = "subnet-1" }, CodeInvalidSubnetID, "pools[0].vnetSubnetId"},
		{"subnet ID of a VNet", fxNodeSubnet, func(s *ClusterSpec) {
			s.Pools[0].VNetSubnetID = strings.TrimSuffix(fxSubnet("existing", "aks"), "/subnets/aks")
		}, CodeInvalidSubnetID, "pools[0].vnetSubnetId"},
		{"subnets in two VNets", fxNodeSubnet, func(s *ClusterSpec) { s.Pools[1].VNetSubnetID = fxSubnet("other", "aks") }, CodeSubnetsInDifferentVNets, "pools[1].vnetSubnetId"},
		{"pod subnet in another VNet", fxPodSubnet, func(s *ClusterSpec) {
			s.VNet = nil
			s.Pools[0].VNetSubnetID, s.Pools[0].PodSubnetID = fxSubnet("a", "nodes"), fxSubnet("b", "pods")
			s.Pools[1].VNetSubnetID, s.Pools[1].PodSubnetID = fxSubnet("a", "nodes"), fxSubnet("a", "pods")
		}, CodeSubnetsInDifferentVNets, "pools[0].podSubnetId"},
		{"pod subnet is the node subnet", fxPodSubnet, func(s *ClusterSpec) { s.Pools[1].PodSubnetID = s.Pools[1].VNetSubnetID }, CodePodSubnetIsNodeSubnet, "pools[1].podSubnetId"},
		{"pool names a subnet outside the spec's VNet", fxPodSubnet, func(s *ClusterSpec) { s.Pools[1].PodSubnetID = s.SubnetID("missing") }, CodeSubnetNotInVNet, "pools[1].podSubnetId"},
		// CIDRs and DNS.
		{"pod CIDR unparseable", fxOverlay, func(s *ClusterSpec) { s.Network.PodCIDR = "192.168.0.0" }, CodeInvalidCidr, "network.podCidr"},
		{"service CIDR not a network address", fxOverlay, func(s *ClusterSpec) { s.Network.ServiceCIDR = "10.0.0.5/16" }, CodeInvalidCidr, "network.serviceCidr"},
		{"service CIDR IPv6", fxOverlay, func(s *ClusterSpec) { s.Network.ServiceCIDR = "fd00::/108"; s.Network.DNSServiceIP = "fd00::a" }, CodeInvalidCidr, "network.serviceCidr"},
		{"service CIDR reserved", fxOverlay, func(s *ClusterSpec) { s.Network.ServiceCIDR = "172.30.0.0/16" }, CodeCidrInReservedRange, "network.serviceCidr"},
		{"pod CIDR overlaps service CIDR", fxOverlay, func(s *ClusterSpec) { s.Network.PodCIDR = "10.0.0.0/14" }, CodePodCidrOverlapsServiceCidr, "network.podCidr"},
		{"pod CIDR too small", fxOverlay, func(s *ClusterSpec) { s.Network.PodCIDR = "192.168.0.0/23" }, CodePodCidrTooSmall, "network.podCidr"},
		{"pod CIDR overlaps VNet", fxPodSubnet, func(s *ClusterSpec) {
			s.Network.Model, s.Network.PodCIDR = ModelOverlay, "10.230.0.0/16"
			for i := range s.Pools {
				s.Pools[i].PodSubnetID = ""
			}
		}, CodeNetworkProfileCIDROverlapVNET, "network.podCidr"},
		{"service CIDR overlaps a subnet", fxPodSubnet, func(s *ClusterSpec) { s.Network.ServiceCIDR = "10.224.0.0/20" }, CodeServiceCidrOverlapExistingSubnetsCidr, "network.serviceCidr"},
		{"service CIDR overlaps the VNet", fxPodSubnet, func(s *ClusterSpec) { s.Network.ServiceCIDR = "10.230.0.0/16" }, CodeNetworkProfileCIDROverlapVNET, "network.serviceCidr"},
		{"DNS IP unparseable", fxOverlay, func(s *ClusterSpec) { s.Network.DNSServiceIP = "10.0.0" }, CodeInvalidDNSServiceIP, "network.dnsServiceIP"},
		{"DNS IP outside service CIDR", fxOverlay, func(s *ClusterSpec) { s.Network.DNSServiceIP = "10.1.0.10" }, CodeDNSServiceIPOutsideServiceCidr, "network.dnsServiceIP"},
		{"DNS IP network address", fxOverlay, func(s *ClusterSpec) { s.Network.DNSServiceIP = "10.0.0.0" }, CodeDNSServiceIPReserved, "network.dnsServiceIP"},
		{"DNS IP first address", fxOverlay, func(s *ClusterSpec) { s.Network.DNSServiceIP = "10.0.0.1" }, CodeDNSServiceIPReserved, "network.dnsServiceIP"},
		{"DNS IP broadcast", fxOverlay, func(s *ClusterSpec) { s.Network.DNSServiceIP = "10.0.255.255" }, CodeDNSServiceIPReserved, "network.dnsServiceIP"},
		// VNet.
		{"VNet name", fxPodSubnet, func(s *ClusterSpec) { s.VNet.Name = "-vnet" }, CodeInvalidVNet, "vnet.name"},
		{"VNet without address space", fxPodSubnet, func(s *ClusterSpec) { s.VNet.AddressSpace = nil }, CodeInvalidVNet, "vnet.addressSpace"},
		{"subnet outside VNet", fxPodSubnet, func(s *ClusterSpec) { s.VNet.Subnets[1].Prefix = "10.240.0.0/16" }, CodeNetcfgSubnetRangeOutsideVnet, "vnet.subnets[1].prefix"},
		{"subnets overlap", fxPodSubnet, func(s *ClusterSpec) { s.VNet.Subnets[1].Prefix = "10.224.128.0/17" }, CodeNetcfgSubnetRangesOverlap, "vnet.subnets[1].prefix"},
		{"duplicate subnet", fxPodSubnet, func(s *ClusterSpec) { s.VNet.Subnets[1].Name = "Nodes" }, CodeDuplicateSubnetName, "vnet.subnets[1].name"},
		{"delegation syntax", fxPodSubnet, func(s *ClusterSpec) { s.VNet.Subnets[1].Delegation = "aks" }, CodeInvalidVNet, "vnet.subnets[1].delegation"},
		// Pools.
		{"no pools", fxOverlay, func(s *ClusterSpec) { s.Pools = nil }, CodeMustDefineAtLeastOneSystemPool, "pools"},
		{"no system pool", fxOverlay, func(s *ClusterSpec) { s.Pools[0].Mode = ModeUser }, CodeMustDefineAtLeastOneSystemPool, "pools"},
		{"too many pools", fxOverlay, func(s *ClusterSpec) {
			for i := range 100 {
				s.Pools = append(s.Pools, Pool{Name: fmt.Sprintf("p%d", i), Count: 1, VMSize: "Standard_D4s_v5"})
			}
		}, CodeTooManyAgentPools, "pools"},
		{"pool name uppercase", fxOverlay, func(s *ClusterSpec) { s.Pools[1].Name = "User" }, CodeInvalidAgentPoolName, "pools[1].name"},
		{"linux pool name too long", fxOverlay, func(s *ClusterSpec) { s.Pools[1].Name = "abcdefghijklm" }, CodeInvalidAgentPoolName, "pools[1].name"},
		{"windows pool name too long", fxOverlay, func(s *ClusterSpec) {
			s.Network.Dataplane, s.Network.Policy = DataplaneAzure, PolicyNone
			s.Pools[1].Name, s.Pools[1].OSType, s.Pools[1].OSSKU = "windows", OSTypeWindows, ""
		}, CodeWindowsAgentPoolNameTooLong, "pools[1].name"},
		{"duplicate pool names", fxOverlay, func(s *ClusterSpec) { s.Pools[1].Name = "system" }, CodeDuplicateAgentPoolName, "pools[1].name"},
		{"pool mode", fxOverlay, func(s *ClusterSpec) { s.Pools[1].Mode = "Gateway" }, CodeInvalidAgentPoolMode, "pools[1].mode"},
		{"system pool count 0", fxOverlay, func(s *ClusterSpec) { s.Pools[0].Count = 0 }, CodeInvalidAgentPoolCount, "pools[0].count"},
		{"user pool count too high", fxOverlay, func(s *ClusterSpec) { s.Pools[1].Count = 1001 }, CodeInvalidAgentPoolCount, "pools[1].count"},
		{"missing VM size", fxOverlay, func(s *ClusterSpec) { s.Pools[1].VMSize = "" }, CodeMissingVMSize, "pools[1].vmSize"},
		{"OS type", fxOverlay, func(s *ClusterSpec) { s.Pools[1].OSType = "linux" }, CodeInvalidOSType, "pools[1].osType"},
		{"OS SKU unknown", fxOverlay, func(s *ClusterSpec) { s.Pools[1].OSSKU = "Debian" }, CodeInvalidOSSKU, "pools[1].osSku"},
		{"OS SKU of another OS", fxOverlay, func(s *ClusterSpec) { s.Pools[1].OSSKU = "Windows2022" }, CodeInvalidOSSKU, "pools[1].osSku"},
		{"windows system pool", fxOverlay, func(s *ClusterSpec) {
			s.Network.Dataplane, s.Network.Policy = DataplaneAzure, PolicyNone
			s.Pools[0].Name, s.Pools[0].OSType = "win", OSTypeWindows
		}, CodeSystemPoolMustBeLinux, "pools[0].osType"},
		{"windows pool with Cilium", fxOverlay, func(s *ClusterSpec) { s.Pools[1].Name, s.Pools[1].OSType, s.Pools[1].OSSKU = "win", OSTypeWindows, "" }, CodeWindowsNotSupportedWithCilium, "pools[1].osType"},
		{"maxPods too low", fxOverlay, func(s *ClusterSpec) { s.Pools[1].MaxPods = 9 }, CodeInvalidMaxPods, "pools[1].maxPods"},
		{"maxPods too high", fxOverlay, func(s *ClusterSpec) { s.Pools[0].MaxPods = 251 }, CodeInvalidMaxPods, "pools[0].maxPods"},
		{"pool version syntax", fxOverlay, func(s *ClusterSpec) { s.Pools[1].OrchestratorVersion = "latest" }, CodeInvalidOrchestratorVersion, "pools[1].orchestratorVersion"},
		{"pool newer than control plane", fxOverlay, func(s *ClusterSpec) { s.Pools[1].OrchestratorVersion = "1.34" }, CodeInvalidOrchestratorVersion, "pools[1].orchestratorVersion"},
		// ACNS, CES.
		{"ACNS on azure dataplane", fxOverlay, func(s *ClusterSpec) {
			s.Network.Dataplane, s.Network.Policy = DataplaneAzure, PolicyNone
			s.ACNS = &ACNS{Observability: true}
		}, CodeACNSRequiresCilium, "acns"},
		{"ACNS before 1.29", fxOverlay, func(s *ClusterSpec) { s.KubernetesVersion = "1.28"; s.ACNS = &ACNS{Observability: true} }, CodeACNSRequiresKubernetes129, "kubernetesVersion"},
		{"ACNS with nothing on", fxOverlay, func(s *ClusterSpec) { s.ACNS = &ACNS{} }, CodeACNSNoFeatureEnabled, "acns"},
		{"advanced policies without security", fxOverlay, func(s *ClusterSpec) {
			s.ACNS = &ACNS{Observability: true, AdvancedNetworkPolicies: AdvancedPoliciesFQDN}
		}, CodeAdvancedNetworkPoliciesRequireSecurity, "acns.advancedNetworkPolicies"},
		{"advanced policies value", fxOverlay, func(s *ClusterSpec) { s.ACNS = &ACNS{Security: true, AdvancedNetworkPolicies: "HTTP"} }, CodeInvalidAdvancedNetworkPolicies, "acns.advancedNetworkPolicies"},
		{"container network logs without observability", fxOverlay, func(s *ClusterSpec) {
			s.ACNS = &ACNS{Security: true, ContainerNetworkLogs: true}
			s.MonitoringWorkspaceID = fxWorkspace
		}, CodeContainerNetworkLogsRequireObservability, "acns.containerNetworkLogs"},
		{"container network logs without monitoring", fxOverlay, func(s *ClusterSpec) { s.ACNS = &ACNS{Observability: true, ContainerNetworkLogs: true} }, CodeContainerNetworkLogsRequireMonitoring, "monitoringWorkspaceId"},
		{"container network logs before 1.33", fxOverlay, func(s *ClusterSpec) {
			s.KubernetesVersion = "1.32"
			s.ACNS = &ACNS{Observability: true, ContainerNetworkLogs: true}
			s.MonitoringWorkspaceID = fxWorkspace
		}, CodeContainerNetworkLogsRequireKubernetes133, "kubernetesVersion"},
		{"CES before 1.32", fxOverlay, func(s *ClusterSpec) { s.KubernetesVersion = "1.31.3"; s.Network.CiliumEndpointSlices = true }, CodeCiliumEndpointSlicesRequireKubernetes132, "kubernetesVersion"},
		{"CES without Cilium", fxOverlay, func(s *ClusterSpec) {
			s.Network.Dataplane, s.Network.Policy = DataplaneAzure, PolicyNone
			s.Network.CiliumEndpointSlices = true
		}, CodeCiliumEndpointSlicesRequireCilium, "network.ciliumEndpointSlices"},
		// API versions.
		{"networkDataplane before 2023-02-02-preview", fxOverlay, func(s *ClusterSpec) { s.APIVersion = "2023-01-02-preview" }, CodeUnsupportedAPIVersion, "apiVersion"},
		{"networkDataplane in stable 2023-02-01", fxOverlay, func(s *ClusterSpec) { s.APIVersion = "2023-02-01" }, CodeUnsupportedAPIVersion, "apiVersion"},
		{"ACNS before 2024-09-01", fxOverlay, func(s *ClusterSpec) { s.APIVersion = "2024-07-01"; s.ACNS = &ACNS{Observability: true} }, CodeUnsupportedAPIVersion, "apiVersion"},
		{"advanced policies before 2025-08-01", fxOverlay, func(s *ClusterSpec) { s.APIVersion = "2025-07-01"; s.ACNS = &ACNS{Security: true} }, CodeUnsupportedAPIVersion, "apiVersion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.base()
			tt.mutate(&s)
			ps := problems(t, Validate(s))
			if !hasProblem(ps, tt.wantCode, tt.wantField) {
				t.Errorf("want problem %s at %s, got %v", tt.wantCode, tt.wantField, ps)
			}
			for _, p := range ps {
				if p.Message == "" || p.Field == "" {
					t.Errorf("problem without field or message: %+v", p)
				}
			}
		})
	}
}

func TestValidateReportsAllProblemsTogether(t *testing.T) {
	s := fxOverlay()
	s.Network.PodCIDR = ""                        // PodCidrRequired
	s.Network.Policy = PolicyCalico               // CiliumDataplaneRequiresNetworkPolicyCilium
	s.Network.DNSServiceIP = "10.9.0.10"          // DNSServiceIPOutsideServiceCidr
	s.Pools[1].MaxPods = 300                      // InvalidMaxPods
	s.Pools[1].OSType = OSTypeWindows             // WindowsNotSupportedWithCilium (+ name, SKU)
	s.ACNS = &ACNS{AdvancedNetworkPolicies: "L7"} // ACNSNoFeatureEnabled, AdvancedNetworkPoliciesRequireSecurity
	s.APIVersion = "2022-01-01"                   // UnsupportedAPIVersion
	err := Validate(s)
	ps := problems(t, err)
	want := []struct{ code, field string }{
		{CodePodCidrRequired, "network.podCidr"},
		{CodeCiliumDataplaneRequiresNetworkPolicyCilium, "network.policy"},
		{CodeDNSServiceIPOutsideServiceCidr, "network.dnsServiceIP"},
		{CodeInvalidMaxPods, "pools[1].maxPods"},
		{CodeWindowsNotSupportedWithCilium, "pools[1].osType"},
		{CodeACNSNoFeatureEnabled, "acns"},
		{CodeAdvancedNetworkPoliciesRequireSecurity, "acns.advancedNetworkPolicies"},
		{CodeUnsupportedAPIVersion, "apiVersion"},
	}
	for _, w := range want {
		if !hasProblem(ps, w.code, w.field) {
			t.Errorf("missing %s at %s", w.code, w.field)
		}
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, fmt.Sprintf("invalid cluster spec: %d problems:", len(ps))) {
		t.Errorf("Error() = %q", msg)
	}
	for _, p := range ps {
		if !strings.Contains(msg, p.Code) || !strings.Contains(msg, p.Field) {
			t.Errorf("Error() lacks %s at %s", p.Code, p.Field)
		}
	}
	if !strings.Contains(msg, `pools[1].maxPods="300"`) {
		t.Errorf("Error() does not name the value: %s", msg)
	}
}

func TestAPIVersionOrdering(t *testing.T) {
	tests := []struct {
		v    string
		ok   bool
		want bool // supports networkDataplane
	}{
		{"2025-10-01", true, true},
		{"2023-03-01", true, true},
		{"2023-02-02-preview", true, true},
		{"2023-02-01", true, false},
		{"2023-01-02-preview", true, false},
		{"2022-09-02-preview", true, false},
		{"2023-02-30", false, false},
		{"2023-2-1", false, false},
		{"2023-02-01-beta", false, false},
	}
	for _, tt := range tests {
		v, ok := parseAPIVersion(tt.v)
		if ok != tt.ok {
			t.Errorf("parseAPIVersion(%q) ok = %v, want %v", tt.v, ok, tt.ok)
			continue
		}
		if ok && v.supports(featureDataplane) != tt.want {
			t.Errorf("%s supports networkDataplane = %v, want %v", tt.v, !tt.want, tt.want)
		}
	}
}

// TestValidateUpdateRules has one case per transition rule.
func TestValidateUpdateRules(t *testing.T) {
	kubenet := func() ClusterSpec {
		s := fxOverlay()
		s.Network = Network{Model: ModelKubenet, Dataplane: DataplaneAzure, Policy: PolicyNone, PodCIDR: "10.244.0.0/16"}
		s.Identity = fxUAI
		return s
	}
	azureCNI := func() ClusterSpec {
		s := fxNodeSubnet()
		s.Network.Dataplane, s.Network.Policy = DataplaneAzure, PolicyAzure
		return s
	}
	tests := []struct {
		name      string
		current   func() armcontainerservice.ManagedCluster
		desired   func() ClusterSpec
		wantCode  string
		wantField string
	}{
		{"another cluster", func() armcontainerservice.ManagedCluster { return fxLive(fxOverlay()) },
			func() ClusterSpec { s := fxOverlay(); s.Name = "ces2"; s.DNSPrefix = "ces1"; return s }, CodeClusterMismatch, "name"},
		{"location", func() armcontainerservice.ManagedCluster { return fxLive(fxOverlay()) },
			func() ClusterSpec { s := fxOverlay(); s.Location = "westeurope"; return s }, CodeLocationImmutable, "location"},
		{"dns prefix", func() armcontainerservice.ManagedCluster { return fxLive(fxOverlay()) },
			func() ClusterSpec { s := fxOverlay(); s.DNSPrefix = "other"; return s }, CodeDNSPrefixImmutable, "dnsPrefix"},
		{"identity change", func() armcontainerservice.ManagedCluster { return fxLive(fxOverlay()) },
			func() ClusterSpec { s := fxOverlay(); s.Identity = fxUAI; return s }, CodeIdentityChangeNotSupported, "identity"},
		{"downgrade", func() armcontainerservice.ManagedCluster { return fxLive(fxOverlay()) },
			func() ClusterSpec { s := fxOverlay(); s.KubernetesVersion = "1.32"; return s }, CodeKubernetesVersionDowngrade, "kubernetesVersion"},
		{"upgrade skips a minor", func() armcontainerservice.ManagedCluster { return fxLive(fxOverlay()) },
			func() ClusterSpec { s := fxOverlay(); s.KubernetesVersion = "1.35"; return s }, CodeKubernetesUpgradeSkipsMinor, "kubernetesVersion"},
		{"cilium to azure", func() armcontainerservice.ManagedCluster { return fxLive(fxOverlay()) },
			func() ClusterSpec {
				s := fxOverlay()
				s.Network.Dataplane, s.Network.Policy = DataplaneAzure, PolicyNone
				return s
			}, CodeCiliumDataplaneCannotBeDisabled, "network.dataplane"},
		{"overlay to pod subnet", func() armcontainerservice.ManagedCluster { return fxLive(fxOverlay()) },
			func() ClusterSpec {
				s := fxPodSubnet()
				s.VNet, s.CreateResourceGroup = nil, false
				return s
			}, CodeNetworkModelChangeNotSupported, "network.model"},
		{"pod subnet to overlay", func() armcontainerservice.ManagedCluster {
			s := fxPodSubnet()
			s.VNet = nil
			return fxLive(s)
		}, func() ClusterSpec {
			s := fxPodSubnet()
			s.VNet = nil
			s.Network.Model, s.Network.PodCIDR = ModelOverlay, "192.168.0.0/16"
			for i := range s.Pools {
				s.Pools[i].PodSubnetID = ""
			}
			return s
		}, CodeNetworkModelChangeNotSupported, "network.model"},
		{"node subnet to pod subnet", func() armcontainerservice.ManagedCluster { return fxLive(fxNodeSubnet()) },
			func() ClusterSpec {
				s := fxNodeSubnet()
				s.Network.Model = ModelPodSubnet
				for i := range s.Pools {
					s.Pools[i].PodSubnetID = fxSubnet("existing", "pods")
				}
				return s
			}, CodeNetworkModelChangeNotSupported, "network.model"},
		{"overlay migration before 1.27", func() armcontainerservice.ManagedCluster {
			s := kubenet()
			s.KubernetesVersion = "1.26"
			return fxLive(s)
		}, func() ClusterSpec {
			s := fxOverlay()
			s.KubernetesVersion, s.Identity = "1.26", fxUAI
			s.Network.Dataplane = DataplaneAzure
			return s
		}, CodeOverlayMigrationRequiresKubernetes127, "kubernetesVersion"},
		{"kubenet with a system-assigned identity", func() armcontainerservice.ManagedCluster {
			s := kubenet()
			s.Identity = ""
			return fxLive(s)
		}, fxOverlay, CodeKubenetMigrationRequiresUserAssignedIdentity, "identity"},
		{"keeping NPM through overlay", func() armcontainerservice.ManagedCluster { return fxLive(azureCNI()) },
			func() ClusterSpec {
				s := azureCNI()
				s.Network.Model, s.Network.PodCIDR = ModelOverlay, "192.168.0.0/16"
				return s
			}, CodeOverlayMigrationWithNetworkPolicy, "network.policy"},
		{"NPM to calico", func() armcontainerservice.ManagedCluster { return fxLive(azureCNI()) },
			func() ClusterSpec { s := azureCNI(); s.Network.Policy = PolicyCalico; return s }, CodeNetworkPolicyChangeNotSupported, "network.policy"},
		{"node auto-provisioning", func() armcontainerservice.ManagedCluster {
			mc := fxLive(azureCNI())
			mc.Properties.NodeProvisioningProfile = &armcontainerservice.ManagedClusterNodeProvisioningProfile{Mode: to.Ptr(armcontainerservice.NodeProvisioningModeAuto)}
			return mc
		}, fxNodeSubnet, CodeNodeAutoProvisioningNotSupported, "network.dataplane"},
		{"windows pool blocks cilium", func() armcontainerservice.ManagedCluster {
			s := azureCNI()
			s.Pools = append(s.Pools, Pool{Name: "win", Count: 1, VMSize: "Standard_D4s_v5", OSType: OSTypeWindows, VNetSubnetID: fxSubnet("existing", "aks")})
			return fxLive(s)
		}, func() ClusterSpec {
			s := fxNodeSubnet()
			s.Pools = append(s.Pools, Pool{Name: "win", Count: 1, VMSize: "Standard_D4s_v5", VNetSubnetID: fxSubnet("existing", "aks")})
			return s
		}, CodeWindowsNotSupportedWithCilium, "pools[2].osType"},
		{"maxPods of an existing pool", func() armcontainerservice.ManagedCluster { return fxLive(fxOverlay()) },
			func() ClusterSpec { s := fxOverlay(); s.Pools[1].MaxPods = 100; return s }, CodeMaxPodsImmutable, "pools[1].maxPods"},
		{"node subnet of an existing pool", func() armcontainerservice.ManagedCluster { return fxLive(fxNodeSubnet()) },
			func() ClusterSpec {
				s := fxNodeSubnet()
				s.Pools[1].VNetSubnetID = fxSubnet("existing", "aks2")
				return s
			}, CodeSubnetImmutable, "pools[1].vnetSubnetId"},
		{"VM size of an existing pool", func() armcontainerservice.ManagedCluster { return fxLive(fxOverlay()) },
			func() ClusterSpec { s := fxOverlay(); s.Pools[0].VMSize = "Standard_D16s_v5"; return s }, CodeAgentPoolPropertyImmutable, "pools[0].vmSize"},
		{"pool removed", func() armcontainerservice.ManagedCluster { return fxLive(fxOverlay()) },
			func() ClusterSpec { s := fxOverlay(); s.Pools = s.Pools[:1]; return s }, CodeAgentPoolRemovalNotSupported, "pools"},
		{"service CIDR", func() armcontainerservice.ManagedCluster { return fxLive(fxOverlay()) },
			func() ClusterSpec { s := fxOverlay(); s.Network.ServiceCIDR = "172.16.0.0/16"; return s }, CodeServiceCidrImmutable, "network.serviceCidr"},
		{"DNS service IP", func() armcontainerservice.ManagedCluster { return fxLive(fxOverlay()) },
			func() ClusterSpec { s := fxOverlay(); s.Network.DNSServiceIP = "10.0.0.20"; return s }, CodeDNSServiceIPImmutable, "network.dnsServiceIP"},
		{"pod CIDR within overlay", func() armcontainerservice.ManagedCluster { return fxLive(fxOverlay()) },
			func() ClusterSpec { s := fxOverlay(); s.Network.PodCIDR = "100.64.0.0/16"; return s }, CodePodCidrImmutable, "network.podCidr"},
		{"outbound type", func() armcontainerservice.ManagedCluster { return fxLive(fxOverlay()) },
			func() ClusterSpec { s := fxOverlay(); s.Network.OutboundType = "managedNATGateway"; return s }, CodeOutboundTypeChangeNotSupported, "network.outboundType"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := problems(t, ValidateUpdate(tt.desired(), tt.current()))
			if !hasProblem(ps, tt.wantCode, tt.wantField) {
				t.Errorf("want problem %s at %s, got %v", tt.wantCode, tt.wantField, ps)
			}
		})
	}
}

func TestValidateUpdateAllowsPlannedTransitions(t *testing.T) {
	kubenetCalico := fxOverlay()
	kubenetCalico.Network = Network{Model: ModelKubenet, Dataplane: DataplaneAzure, Policy: PolicyCalico, PodCIDR: "10.244.0.0/16"}
	kubenetCalico.Identity = fxUAI
	azureCNI := fxNodeSubnet()
	azureCNI.Network.Dataplane, azureCNI.Network.Policy = DataplaneAzure, PolicyAzure
	withACNS := fxOverlay()
	withACNS.ACNS = &ACNS{Observability: true}
	grown := fxOverlay()
	grown.Pools[1].Count = 5
	grown.Pools = append(grown.Pools, Pool{Name: "more", Count: 1, VMSize: "Standard_D4s_v5"})
	upgraded := fxOverlay()
	upgraded.KubernetesVersion = "1.34"
	tests := []struct {
		name    string
		current ClusterSpec
		desired ClusterSpec
	}{
		{"kubenet with calico to overlay and cilium", kubenetCalico, fxOverlay()},
		{"azure CNI with NPM to cilium", azureCNI, fxNodeSubnet()},
		{"node subnet to overlay", fxNodeSubnet(), func() ClusterSpec {
			s := fxNodeSubnet()
			s.Network.Model, s.Network.PodCIDR = ModelOverlay, "192.168.0.0/16"
			return s
		}()},
		{"ACNS on", fxOverlay(), withACNS},
		{"pools grow", fxOverlay(), grown},
		{"upgrade", fxOverlay(), upgraded},
		{"same", fxOverlay(), fxOverlay()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := ValidateUpdate(tt.desired, fxLive(tt.current)); err != nil {
				t.Errorf("ValidateUpdate: %v", err)
			}
		})
	}
}
