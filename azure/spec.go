package azure

// NetworkModel is how pods get their IP addresses with Azure CNI.
type NetworkModel string

// The network models of Azure CNI powered by Cilium, and kubenet (only as a current state to
// migrate from).
const (
	// ModelOverlay: pods get addresses from Network.PodCIDR, a private range not routed in the
	// VNet (networkPlugin azure, networkPluginMode overlay).
	ModelOverlay NetworkModel = "overlay"
	// ModelPodSubnet: pods get VNet addresses from a dedicated pod subnet per pool
	// (Pool.PodSubnetID), nodes from Pool.VNetSubnetID.
	ModelPodSubnet NetworkModel = "podsubnet"
	// ModelNodeSubnet: pods and nodes share the node subnet (Azure CNI "legacy").
	ModelNodeSubnet NetworkModel = "nodesubnet"
	// ModelKubenet: kubenet. Never valid as a desired state with Cilium; an existing kubenet
	// cluster is migrated to overlay first.
	ModelKubenet NetworkModel = "kubenet"
)

// Dataplane is networkProfile.networkDataplane.
type Dataplane string

// Dataplanes.
const (
	DataplaneAzure  Dataplane = "azure"
	DataplaneCilium Dataplane = "cilium"
)

// NetworkPolicyEngine is networkProfile.networkPolicy.
type NetworkPolicyEngine string

// Network policy engines.
const (
	PolicyNone   NetworkPolicyEngine = "none"
	PolicyAzure  NetworkPolicyEngine = "azure" // Azure NPM
	PolicyCalico NetworkPolicyEngine = "calico"
	PolicyCilium NetworkPolicyEngine = "cilium"
)

// AdvancedNetworkPolicies is ACNS security's advancedNetworkPolicies.
type AdvancedNetworkPolicies string

// Advanced network policy levels: L7 is a superset of FQDN.
const (
	AdvancedPoliciesNone AdvancedNetworkPolicies = "None"
	AdvancedPoliciesFQDN AdvancedNetworkPolicies = "FQDN"
	AdvancedPoliciesL7   AdvancedNetworkPolicies = "L7"
)

// ClusterSpec is an AKS cluster as ceskit's users describe it: the parts that matter for Azure
// CNI powered by Cilium. It maps onto armcontainerservice/v8's ManagedCluster (api-version
// 2025-10-01); fields it does not model are left for AKS to default on create and are preserved
// from the current cluster on update.
type ClusterSpec struct {
	// SubscriptionID, ResourceGroup and Name locate the cluster. Location is its region
	// ("eastus2").
	SubscriptionID string `json:"subscriptionId"`
	ResourceGroup  string `json:"resourceGroup"`
	Name           string `json:"name"`
	Location       string `json:"location"`
	// KubernetesVersion is "1.33" or "1.33.2".
	KubernetesVersion string `json:"kubernetesVersion"`
	// DNSPrefix defaults to Name.
	DNSPrefix string `json:"dnsPrefix,omitempty"`
	// Tags are the cluster's Azure tags. On update, nil keeps the current tags; non-nil
	// replaces them.
	Tags map[string]string `json:"tags,omitempty"`
	// Identity is the cluster's managed identity: empty or "SystemAssigned", or the resource ID
	// of a user-assigned identity (required to migrate from kubenet). On update, empty keeps the
	// current identity.
	Identity string `json:"identity,omitempty"`

	Network Network `json:"network"`
	// Pools are the agent pools; the first System pool is the one created with the cluster.
	Pools []Pool `json:"pools"`
	// ACNS is Advanced Container Networking Services; nil leaves it off (and turns it off on
	// update).
	ACNS *ACNS `json:"acns,omitempty"`
	// Monitoring enables the Container Insights (omsagent) addon sending to this Log Analytics
	// workspace resource ID; container network logs need it. Empty: no addon (on update, the
	// addon is disabled).
	MonitoringWorkspaceID string `json:"monitoringWorkspaceId,omitempty"`

	// VNet, when set, is created with the cluster (resource group first, then the VNet and its
	// subnets); pools then name subnets of it by resource ID. Nil: the subnets must exist.
	VNet *VNet `json:"vnet,omitempty"`
	// CreateResourceGroup adds a resource-group step before everything else.
	CreateResourceGroup bool `json:"createResourceGroup,omitempty"`
	// APIVersion is the AKS api-version requests are made with; default 2025-10-01, the
	// version armcontainerservice/v8 v8.2.0 speaks. Older versions are only checked by
	// validation (networkDataplane needs 2023-02-02-preview or later).
	APIVersion string `json:"apiVersion,omitempty"`
}

// Network is the cluster's networkProfile.
type Network struct {
	Model NetworkModel `json:"model"`
	// Dataplane defaults to cilium. Policy defaults to cilium with the Cilium dataplane (as the
	// az CLI does), none otherwise.
	Dataplane Dataplane           `json:"dataplane,omitempty"`
	Policy    NetworkPolicyEngine `json:"policy,omitempty"`
	// PodCIDR is required for overlay (and kubenet), forbidden otherwise.
	PodCIDR string `json:"podCidr,omitempty"`
	// ServiceCIDR and DNSServiceIP default to AKS's 10.0.0.0/16 and 10.0.0.10.
	ServiceCIDR  string `json:"serviceCidr,omitempty"`
	DNSServiceIP string `json:"dnsServiceIP,omitempty"`
	// OutboundType defaults to loadBalancer.
	OutboundType string `json:"outboundType,omitempty"`
	// CiliumEndpointSlices says the cluster must run CiliumEndpointSlices (ceskit's slicer relies
	// on them). AKS turns them on by itself, and not tunably, with Cilium ≥ 1.17, which it ships
	// from Kubernetes 1.32; validation then requires the Cilium dataplane and Kubernetes ≥ 1.32.
	// Nothing in the ARM body changes. [SpecFromManagedCluster] sets it when AKS runs them.
	CiliumEndpointSlices bool `json:"ciliumEndpointSlices,omitempty"`
}

// Pool is one agent pool.
type Pool struct {
	Name string `json:"name"`
	// Mode is "System" or "User"; the first pool defaults to System, others to User.
	Mode   string `json:"mode,omitempty"`
	Count  int32  `json:"count"`
	VMSize string `json:"vmSize"`
	// OSType is "Linux" (default) or "Windows" (rejected with Cilium); OSSKU e.g. "AzureLinux".
	OSType string `json:"osType,omitempty"`
	OSSKU  string `json:"osSku,omitempty"`
	// VNetSubnetID is the node subnet's resource ID (pod-subnet and node-subnet models; optional
	// for overlay). PodSubnetID is the pod subnet's (pod-subnet model only).
	VNetSubnetID string `json:"vnetSubnetId,omitempty"`
	PodSubnetID  string `json:"podSubnetId,omitempty"`
	// MaxPods is 10–250; 0 takes the model's default (overlay and pod subnet 250, node subnet 30,
	// kubenet 110). It cannot be changed on an existing pool.
	MaxPods int32 `json:"maxPods,omitempty"`
	// OrchestratorVersion is the pool's Kubernetes version; empty follows the cluster's
	// KubernetesVersion (AKS's default), and [Plan] upgrades such pools with the cluster.
	OrchestratorVersion string `json:"orchestratorVersion,omitempty"`
}

// ACNS is Advanced Container Networking Services (networkProfile.advancedNetworking).
type ACNS struct {
	// Observability: advanced network metrics and flow logs (Hubble).
	Observability bool `json:"observability"`
	// Security: FQDN and L7 policies; Cilium dataplane only.
	Security bool `json:"security"`
	// AdvancedNetworkPolicies is None, FQDN or L7 (security only; default FQDN when Security).
	AdvancedNetworkPolicies AdvancedNetworkPolicies `json:"advancedNetworkPolicies,omitempty"`
	// ContainerNetworkLogs stores flow logs in Log Analytics (ContainerNetworkLogs table); it
	// needs Observability, the monitoring addon (ClusterSpec.MonitoringWorkspaceID) and
	// Kubernetes ≥ 1.33. The stable API (2025-10-01) has no field for it, so nothing in the ARM
	// body changes: [Plan] adds a plan warning to create ContainerNetworkLog resources in the
	// cluster and to turn on the monitoring addon's high log scale mode.
	ContainerNetworkLogs bool `json:"containerNetworkLogs,omitempty"`
}

// VNet is a virtual network created for the cluster.
type VNet struct {
	Name         string   `json:"name"`
	AddressSpace []string `json:"addressSpace"`
	Subnets      []Subnet `json:"subnets"`
}

// Subnet is one subnet of a VNet. Its resource ID is
// /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Network/virtualNetworks/<vnet>/subnets/<name>.
type Subnet struct {
	Name   string `json:"name"`
	Prefix string `json:"prefix"`
	// Delegation, when set, delegates the subnet (e.g. "Microsoft.ContainerService/managedClusters"
	// for pod subnets with static block allocation).
	Delegation string `json:"delegation,omitempty"`
}
