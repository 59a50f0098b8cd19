package azure

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v8"
)

// API versions and defaults ceskit uses.
const (
	// DefaultAPIVersion is the AKS api-version armcontainerservice/v8 v8.2.0 speaks, and the
	// default of ClusterSpec.APIVersion.
	DefaultAPIVersion = "2025-10-01"
	// NetworkAPIVersion is the Microsoft.Network api-version of armnetwork/v9 v9.0.0, used for
	// virtual networks.
	NetworkAPIVersion = "2025-05-01"
	// ResourcesAPIVersion is the Microsoft.Resources api-version of armresources/v3 v3.0.1,
	// used for resource groups.
	ResourcesAPIVersion = "2025-04-01"

	// DefaultServiceCIDR and DefaultDNSServiceIP are AKS's defaults for networkProfile.serviceCidr
	// and networkProfile.dnsServiceIP.
	DefaultServiceCIDR  = "10.0.0.0/16"
	DefaultDNSServiceIP = "10.0.0.10"
	// DefaultOutboundType is AKS's default networkProfile.outboundType.
	DefaultOutboundType = "loadBalancer"

	// IdentitySystemAssigned is the ClusterSpec.Identity of a system-assigned managed identity.
	IdentitySystemAssigned = "SystemAssigned"

	// Agent pool modes and OS types as AKS spells them.
	ModeSystem    = "System"
	ModeUser      = "User"
	OSTypeLinux   = "Linux"
	OSTypeWindows = "Windows"
)

// monitoringAddon is the addonProfiles key of Container Insights, and monitoringWorkspaceKey its
// config key naming the Log Analytics workspace.
const (
	monitoringAddon        = "omsagent"
	monitoringWorkspaceKey = "logAnalyticsWorkspaceResourceID"
)

// DefaultMaxPods is AKS's default maxPods of a pool in each network model: 250 for overlay and
// pod subnet, 30 for node subnet, 110 for kubenet (what the az CLI sets).
func DefaultMaxPods(m NetworkModel) int32 {
	switch m {
	case ModelOverlay, ModelPodSubnet:
		return 250
	case ModelNodeSubnet:
		return 30
	case ModelKubenet:
		return 110
	}
	return 0
}

// WithDefaults returns a copy of s with every empty field that has a default filled in:
//
//   - APIVersion: [DefaultAPIVersion] (2025-10-01).
//   - DNSPrefix: Name. Identity: "SystemAssigned".
//   - Network.Dataplane: cilium. Network.Policy: cilium with the Cilium dataplane, none
//     otherwise (as the az CLI does).
//   - Network.ServiceCIDR: 10.0.0.0/16. Network.DNSServiceIP: the tenth address of the service
//     CIDR (10.0.0.10 for the default). Network.OutboundType: loadBalancer.
//   - Pools: Mode System for the first pool, User for the others; OSType Linux; MaxPods
//     [DefaultMaxPods] of the network model.
//   - ACNS.AdvancedNetworkPolicies: FQDN when ACNS.Security is on.
//
// s itself is not modified (slices, maps and pointers are copied).
func (s ClusterSpec) WithDefaults() ClusterSpec {
	out := s.clone()
	if out.APIVersion == "" {
		out.APIVersion = DefaultAPIVersion
	}
	if out.DNSPrefix == "" {
		out.DNSPrefix = out.Name
	}
	if out.Identity == "" {
		out.Identity = IdentitySystemAssigned
	}
	n := &out.Network
	if n.Dataplane == "" {
		n.Dataplane = DataplaneCilium
	}
	if n.Policy == "" {
		n.Policy = PolicyNone
		if n.Dataplane == DataplaneCilium {
			n.Policy = PolicyCilium
		}
	}
	if n.ServiceCIDR == "" {
		n.ServiceCIDR = DefaultServiceCIDR
	}
	if n.DNSServiceIP == "" {
		n.DNSServiceIP = DefaultDNSServiceIP
		if p, err := netip.ParsePrefix(n.ServiceCIDR); err == nil && p.Addr().Is4() && p.Bits() <= 28 {
			a := p.Masked().Addr().As4()
			a[3] += 10
			n.DNSServiceIP = netip.AddrFrom4(a).String()
		}
	}
	if n.OutboundType == "" {
		n.OutboundType = DefaultOutboundType
	}
	for i := range out.Pools {
		p := &out.Pools[i]
		if p.Mode == "" {
			p.Mode = ModeUser
			if i == 0 {
				p.Mode = ModeSystem
			}
		}
		if p.OSType == "" {
			p.OSType = OSTypeLinux
		}
		if p.MaxPods == 0 {
			p.MaxPods = DefaultMaxPods(n.Model)
		}
	}
	if out.ACNS != nil && out.ACNS.Security && out.ACNS.AdvancedNetworkPolicies == "" {
		out.ACNS.AdvancedNetworkPolicies = AdvancedPoliciesFQDN
	}
	return out
}

// clone deep-copies s.
func (s ClusterSpec) clone() ClusterSpec {
	out := s
	if s.Tags != nil {
		out.Tags = make(map[string]string, len(s.Tags))
		for k, v := range s.Tags {
			out.Tags[k] = v
		}
	}
	out.Pools = append([]Pool(nil), s.Pools...)
	if s.ACNS != nil {
		a := *s.ACNS
		out.ACNS = &a
	}
	if s.VNet != nil {
		v := *s.VNet
		v.AddressSpace = append([]string(nil), s.VNet.AddressSpace...)
		v.Subnets = append([]Subnet(nil), s.VNet.Subnets...)
		out.VNet = &v
	}
	return out
}

// ResourceID returns the cluster's ARM resource ID,
// /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.ContainerService/managedClusters/<name>.
func (s ClusterSpec) ResourceID() string {
	return s.resourceGroupID() + "/providers/Microsoft.ContainerService/managedClusters/" + s.Name
}

// SubnetID returns the resource ID of the subnet named subnet of s.VNet, for Pool.VNetSubnetID
// and Pool.PodSubnetID. Without s.VNet it returns "".
func (s ClusterSpec) SubnetID(subnet string) string {
	if s.VNet == nil {
		return ""
	}
	return s.vnetID() + "/subnets/" + subnet
}

func (s ClusterSpec) resourceGroupID() string {
	return "/subscriptions/" + s.SubscriptionID + "/resourceGroups/" + s.ResourceGroup
}

func (s ClusterSpec) vnetID() string {
	return s.resourceGroupID() + "/providers/Microsoft.Network/virtualNetworks/" + s.VNet.Name
}

func (s ClusterSpec) agentPoolID(pool string) string {
	return s.ResourceID() + "/agentPools/" + pool
}

// ManagedCluster returns the armcontainerservice/v8 model of s.WithDefaults(), the body of the
// PUT that creates the cluster. It validates first and returns the [*ValidationError] of
// [Validate] when s is invalid.
//
// The mapping: overlay is networkPlugin azure + networkPluginMode overlay + podCidr; pod subnet
// and node subnet are networkPlugin azure (pools carry vnetSubnetID/podSubnetID); kubenet is
// networkPlugin kubenet + podCidr. networkDataplane and networkPolicy come from Network
// (networkPolicy is omitted when none, AKS's default). ACNS is
// advancedNetworking{enabled, observability.enabled, security{enabled, advancedNetworkPolicies}}.
// MonitoringWorkspaceID enables addonProfiles.omsagent with config
// logAnalyticsWorkspaceResourceID. Identity is SystemAssigned, or UserAssigned with the ID as
// the key of userAssignedIdentities.
func (s ClusterSpec) ManagedCluster() (armcontainerservice.ManagedCluster, error) {
	d := s.WithDefaults()
	if err := Validate(d); err != nil {
		return armcontainerservice.ManagedCluster{}, err
	}
	return d.managedCluster(), nil
}

// managedCluster maps a defaulted spec without validating it.
func (s ClusterSpec) managedCluster() armcontainerservice.ManagedCluster {
	mc := armcontainerservice.ManagedCluster{
		Location: to.Ptr(s.Location),
		Tags:     tagsModel(s.Tags),
		Identity: identityModel(s.Identity),
		Properties: &armcontainerservice.ManagedClusterProperties{
			DNSPrefix:         to.Ptr(s.DNSPrefix),
			KubernetesVersion: to.Ptr(s.KubernetesVersion),
			NetworkProfile:    s.networkProfile(),
		},
	}
	for _, p := range s.Pools {
		mc.Properties.AgentPoolProfiles = append(mc.Properties.AgentPoolProfiles, poolProfile(p))
	}
	if s.MonitoringWorkspaceID != "" {
		mc.Properties.AddonProfiles = map[string]*armcontainerservice.ManagedClusterAddonProfile{
			monitoringAddon: monitoringAddonModel(s.MonitoringWorkspaceID),
		}
	}
	return mc
}

func tagsModel(tags map[string]string) map[string]*string {
	if tags == nil {
		return nil
	}
	out := make(map[string]*string, len(tags))
	for k, v := range tags {
		out[k] = to.Ptr(v)
	}
	return out
}

func identityModel(id string) *armcontainerservice.ManagedClusterIdentity {
	if id == "" || strings.EqualFold(id, IdentitySystemAssigned) {
		return &armcontainerservice.ManagedClusterIdentity{
			Type: to.Ptr(armcontainerservice.ResourceIdentityTypeSystemAssigned),
		}
	}
	return &armcontainerservice.ManagedClusterIdentity{
		Type: to.Ptr(armcontainerservice.ResourceIdentityTypeUserAssigned),
		UserAssignedIdentities: map[string]*armcontainerservice.ManagedServiceIdentityUserAssignedIdentitiesValue{
			id: {},
		},
	}
}

func monitoringAddonModel(workspace string) *armcontainerservice.ManagedClusterAddonProfile {
	return &armcontainerservice.ManagedClusterAddonProfile{
		Enabled: to.Ptr(true),
		Config:  map[string]*string{monitoringWorkspaceKey: to.Ptr(workspace)},
	}
}

func (s ClusterSpec) networkProfile() *armcontainerservice.NetworkProfile {
	n := s.Network
	np := &armcontainerservice.NetworkProfile{
		NetworkDataplane: to.Ptr(armcontainerservice.NetworkDataplane(n.Dataplane)),
		ServiceCidr:      to.Ptr(n.ServiceCIDR),
		DNSServiceIP:     to.Ptr(n.DNSServiceIP),
		OutboundType:     to.Ptr(armcontainerservice.OutboundType(n.OutboundType)),
	}
	if n.Policy != PolicyNone && n.Policy != "" {
		np.NetworkPolicy = to.Ptr(armcontainerservice.NetworkPolicy(n.Policy))
	}
	switch n.Model {
	case ModelOverlay:
		np.NetworkPlugin = to.Ptr(armcontainerservice.NetworkPluginAzure)
		np.NetworkPluginMode = to.Ptr(armcontainerservice.NetworkPluginModeOverlay)
		np.PodCidr = to.Ptr(n.PodCIDR)
	case ModelPodSubnet, ModelNodeSubnet:
		np.NetworkPlugin = to.Ptr(armcontainerservice.NetworkPluginAzure)
	case ModelKubenet:
		np.NetworkPlugin = to.Ptr(armcontainerservice.NetworkPluginKubenet)
		np.PodCidr = to.Ptr(n.PodCIDR)
	}
	np.AdvancedNetworking = acnsModel(s.ACNS)
	return np
}

// acnsModel maps ACNS; nil maps to nil (left off on create).
func acnsModel(a *ACNS) *armcontainerservice.AdvancedNetworking {
	if a == nil {
		return nil
	}
	sec := &armcontainerservice.AdvancedNetworkingSecurity{Enabled: to.Ptr(a.Security)}
	if a.Security && a.AdvancedNetworkPolicies != "" {
		sec.AdvancedNetworkPolicies = to.Ptr(armcontainerservice.AdvancedNetworkPolicies(a.AdvancedNetworkPolicies))
	}
	return &armcontainerservice.AdvancedNetworking{
		Enabled:       to.Ptr(true),
		Observability: &armcontainerservice.AdvancedNetworkingObservability{Enabled: to.Ptr(a.Observability)},
		Security:      sec,
	}
}

// acnsOff is the advancedNetworking that turns ACNS off on an existing cluster.
func acnsOff() *armcontainerservice.AdvancedNetworking {
	return &armcontainerservice.AdvancedNetworking{
		Enabled:       to.Ptr(false),
		Observability: &armcontainerservice.AdvancedNetworkingObservability{Enabled: to.Ptr(false)},
		Security:      &armcontainerservice.AdvancedNetworkingSecurity{Enabled: to.Ptr(false)},
	}
}

func poolProfile(p Pool) *armcontainerservice.ManagedClusterAgentPoolProfile {
	pp := &armcontainerservice.ManagedClusterAgentPoolProfile{
		Name:    to.Ptr(p.Name),
		Mode:    to.Ptr(armcontainerservice.AgentPoolMode(p.Mode)),
		Count:   to.Ptr(p.Count),
		VMSize:  to.Ptr(p.VMSize),
		OSType:  to.Ptr(armcontainerservice.OSType(p.OSType)),
		MaxPods: to.Ptr(p.MaxPods),
	}
	if p.OSSKU != "" {
		pp.OSSKU = to.Ptr(armcontainerservice.OSSKU(p.OSSKU))
	}
	if p.VNetSubnetID != "" {
		pp.VnetSubnetID = to.Ptr(p.VNetSubnetID)
	}
	if p.PodSubnetID != "" {
		pp.PodSubnetID = to.Ptr(p.PodSubnetID)
	}
	if p.OrchestratorVersion != "" {
		pp.OrchestratorVersion = to.Ptr(p.OrchestratorVersion)
	}
	return pp
}

// agentPoolModel turns a cluster's agentPoolProfiles entry into the body of an agent pool PUT
// (the same fields without the name), through the SDK's own JSON forms.
func agentPoolModel(pp *armcontainerservice.ManagedClusterAgentPoolProfile) (armcontainerservice.AgentPool, error) {
	data, err := json.Marshal(pp)
	if err != nil {
		return armcontainerservice.AgentPool{}, fmt.Errorf("marshal agent pool profile: %w", err)
	}
	var props armcontainerservice.ManagedClusterAgentPoolProfileProperties
	if err := json.Unmarshal(data, &props); err != nil {
		return armcontainerservice.AgentPool{}, fmt.Errorf("unmarshal agent pool properties: %w", err)
	}
	props.CurrentOrchestratorVersion = nil
	props.ETag = nil
	props.NodeImageVersion = nil
	props.ProvisioningState = nil
	props.Status = nil
	if props.LocalDNSProfile != nil {
		props.LocalDNSProfile.State = nil
	}
	return armcontainerservice.AgentPool{Properties: &props}, nil
}

// SpecFromManagedCluster is the inverse of [ClusterSpec.ManagedCluster]: it reads an existing
// cluster (as a GET returns it) into a ClusterSpec. Subscription, resource group and name come
// from mc.ID (parsed with arm.ParseResourceID). The network model is kubenet for networkPlugin
// kubenet, overlay for azure + overlay, pod subnet when any pool has a podSubnetID, node subnet
// otherwise. A missing networkDataplane reads as azure and a missing networkPolicy as none. ACNS
// is nil unless advancedNetworking.enabled; a feature left unset under enabled reads as on, as
// AKS documents (security only with the Cilium dataplane). A pool's orchestratorVersion equal to
// the cluster's version reads as empty. Network.CiliumEndpointSlices is set when AKS runs them
// (Cilium dataplane, Kubernetes ≥ 1.32). VNet, CreateResourceGroup, APIVersion and
// ACNS.ContainerNetworkLogs are not part of the cluster and stay empty.
func SpecFromManagedCluster(mc armcontainerservice.ManagedCluster) (ClusterSpec, error) {
	if mc.ID == nil {
		return ClusterSpec{}, errors.New("spec from managed cluster: no resource id")
	}
	id, err := arm.ParseResourceID(*mc.ID)
	if err != nil {
		return ClusterSpec{}, fmt.Errorf("spec from managed cluster: parse id %q: %w", *mc.ID, err)
	}
	if !strings.EqualFold(id.ResourceType.String(), "Microsoft.ContainerService/managedClusters") {
		return ClusterSpec{}, fmt.Errorf("spec from managed cluster: id %q is a %s, not a managed cluster", *mc.ID, id.ResourceType)
	}
	p := mc.Properties
	if p == nil {
		return ClusterSpec{}, fmt.Errorf("spec from managed cluster %s: no properties", id.Name)
	}
	s := ClusterSpec{
		SubscriptionID:    id.SubscriptionID,
		ResourceGroup:     id.ResourceGroupName,
		Name:              id.Name,
		Location:          sval(mc.Location),
		KubernetesVersion: sval(p.KubernetesVersion),
		DNSPrefix:         sval(p.DNSPrefix),
	}
	if s.KubernetesVersion == "" {
		s.KubernetesVersion = sval(p.CurrentKubernetesVersion)
	}
	if mc.Tags != nil {
		s.Tags = make(map[string]string, len(mc.Tags))
		for k, v := range mc.Tags {
			s.Tags[k] = sval(v)
		}
	}
	if mc.Identity != nil && mc.Identity.Type != nil {
		switch *mc.Identity.Type {
		case armcontainerservice.ResourceIdentityTypeSystemAssigned:
			s.Identity = IdentitySystemAssigned
		case armcontainerservice.ResourceIdentityTypeUserAssigned:
			ids := make([]string, 0, len(mc.Identity.UserAssignedIdentities))
			for k := range mc.Identity.UserAssignedIdentities {
				ids = append(ids, k)
			}
			if len(ids) != 1 {
				return ClusterSpec{}, fmt.Errorf("spec from managed cluster %s: %d user-assigned identities, want 1", s.Name, len(ids))
			}
			s.Identity = ids[0]
		}
	}

	np := p.NetworkProfile
	if np == nil || np.NetworkPlugin == nil {
		return ClusterSpec{}, fmt.Errorf("spec from managed cluster %s: networkProfile.networkPlugin missing", s.Name)
	}
	podSubnet := false
	for _, pp := range p.AgentPoolProfiles {
		if pp != nil && sval(pp.PodSubnetID) != "" {
			podSubnet = true
		}
	}
	switch *np.NetworkPlugin {
	case armcontainerservice.NetworkPluginKubenet:
		s.Network.Model = ModelKubenet
	case armcontainerservice.NetworkPluginAzure:
		switch {
		case np.NetworkPluginMode != nil && *np.NetworkPluginMode == armcontainerservice.NetworkPluginModeOverlay:
			s.Network.Model = ModelOverlay
		case podSubnet:
			s.Network.Model = ModelPodSubnet
		default:
			s.Network.Model = ModelNodeSubnet
		}
	default:
		return ClusterSpec{}, fmt.Errorf("spec from managed cluster %s: networkPlugin %q is not modeled", s.Name, *np.NetworkPlugin)
	}
	s.Network.Dataplane = DataplaneAzure
	if np.NetworkDataplane != nil {
		s.Network.Dataplane = Dataplane(*np.NetworkDataplane)
	}
	s.Network.Policy = PolicyNone
	if np.NetworkPolicy != nil {
		s.Network.Policy = NetworkPolicyEngine(*np.NetworkPolicy)
	}
	if s.Network.Model == ModelOverlay || s.Network.Model == ModelKubenet {
		s.Network.PodCIDR = sval(np.PodCidr)
	}
	s.Network.ServiceCIDR = sval(np.ServiceCidr)
	s.Network.DNSServiceIP = sval(np.DNSServiceIP)
	if np.OutboundType != nil {
		s.Network.OutboundType = string(*np.OutboundType)
	}
	if v, ok := parseKubeVersion(s.KubernetesVersion); ok && s.Network.Dataplane == DataplaneCilium && v.atLeast(1, 32) {
		s.Network.CiliumEndpointSlices = true
	}
	s.ACNS = acnsFromModel(np.AdvancedNetworking, s.Network.Dataplane)
	s.MonitoringWorkspaceID = monitoringWorkspace(p.AddonProfiles)

	for _, pp := range p.AgentPoolProfiles {
		if pp == nil {
			continue
		}
		pool := Pool{
			Name:                sval(pp.Name),
			Count:               ival(pp.Count),
			VMSize:              sval(pp.VMSize),
			VNetSubnetID:        sval(pp.VnetSubnetID),
			PodSubnetID:         sval(pp.PodSubnetID),
			MaxPods:             ival(pp.MaxPods),
			OrchestratorVersion: sval(pp.OrchestratorVersion),
		}
		if pp.Mode != nil {
			pool.Mode = string(*pp.Mode)
		}
		if pp.OSType != nil {
			pool.OSType = string(*pp.OSType)
		}
		if pp.OSSKU != nil {
			pool.OSSKU = string(*pp.OSSKU)
		}
		if pool.OrchestratorVersion == s.KubernetesVersion {
			pool.OrchestratorVersion = ""
		}
		s.Pools = append(s.Pools, pool)
	}
	return s, nil
}

func acnsFromModel(an *armcontainerservice.AdvancedNetworking, dp Dataplane) *ACNS {
	if an == nil || an.Enabled == nil || !*an.Enabled {
		return nil
	}
	a := &ACNS{Observability: true, Security: dp == DataplaneCilium}
	if an.Observability != nil && an.Observability.Enabled != nil {
		a.Observability = *an.Observability.Enabled
	}
	if an.Security != nil && an.Security.Enabled != nil {
		a.Security = *an.Security.Enabled
	}
	if a.Security {
		a.AdvancedNetworkPolicies = AdvancedPoliciesFQDN
		if an.Security != nil && an.Security.AdvancedNetworkPolicies != nil {
			a.AdvancedNetworkPolicies = AdvancedNetworkPolicies(*an.Security.AdvancedNetworkPolicies)
		}
	}
	return a
}

// monitoringWorkspace returns the workspace of an enabled omsagent addon (keys compared without
// case: AKS has returned both omsagent and omsAgent).
func monitoringWorkspace(addons map[string]*armcontainerservice.ManagedClusterAddonProfile) string {
	for name, a := range addons {
		if !strings.EqualFold(name, monitoringAddon) || a == nil || a.Enabled == nil || !*a.Enabled {
			continue
		}
		keys := make([]string, 0, len(a.Config))
		for k := range a.Config {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if strings.EqualFold(k, monitoringWorkspaceKey) {
				return sval(a.Config[k])
			}
		}
	}
	return ""
}

func sval(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func ival(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}
