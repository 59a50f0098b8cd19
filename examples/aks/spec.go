package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v8"

	"github.com/ceskit/ceskit/azure"
)

// Defaults the CLI fills in for a new cluster when neither --spec nor a flag says otherwise,
// as az aks create and AKS do.
const (
	defaultPoolName  = "nodepool1"     // az aks create --nodepool-name
	defaultNodeCount = 3               // az aks create --node-count
	defaultPodCIDR   = "10.244.0.0/16" // AKS's pod CIDR for overlay and kubenet
)

// specFlags are the az aks create flags that describe the cluster, plus --spec.
type specFlags struct {
	specFile string

	resourceGroup, name, subscription, location, kubernetesVersion string

	networkPlugin, networkPluginMode, networkDataplane, networkPolicy string
	podCIDR, serviceCIDR, dnsServiceIP                                string
	vnetSubnetID, podSubnetID                                         string

	maxPods, nodeCount int
	nodeVMSize, osSKU  string

	enableACNS, disableACNSObservability, disableACNSSecurity bool
	acnsAdvancedNetworkPolicies                               string
	enableContainerNetworkLogs                                bool
	workspaceResourceID                                       string
	assignIdentity                                            string
}

// register adds the cluster flags to fs. Names and short names are az aks create's.
func (f *specFlags) register(fs *flagSet) {
	fs.String(&f.specFile, "spec", "", "FILE", "", "ClusterSpec JSON (github.com/ceskit/ceskit/azure); the flags below override it")
	fs.String(&f.resourceGroup, "resource-group", "g", "NAME", "", "resource group of the cluster")
	fs.String(&f.name, "name", "n", "NAME", "", "name of the cluster")
	fs.String(&f.subscription, "subscription", "", "ID", "", "subscription ID (default $AZURE_SUBSCRIPTION_ID)")
	fs.String(&f.location, "location", "l", "REGION", "", "region, e.g. eastus2")
	fs.String(&f.kubernetesVersion, "kubernetes-version", "k", "VERSION", "", "Kubernetes version, e.g. 1.33")
	fs.String(&f.networkPlugin, "network-plugin", "", "PLUGIN", "", "azure or kubenet (a new cluster without network flags: azure with overlay)")
	fs.String(&f.networkPluginMode, "network-plugin-mode", "", "MODE", "", "overlay (with --network-plugin azure)")
	fs.String(&f.networkDataplane, "network-dataplane", "", "DATAPLANE", "", "azure or cilium (default cilium); cilium without --network-policy also sets network policy cilium, as az does")
	fs.String(&f.networkPolicy, "network-policy", "", "POLICY", "", "none, azure, calico or cilium (default cilium with the Cilium dataplane, else none)")
	fs.String(&f.podCIDR, "pod-cidr", "", "CIDR", "", "pod address range for overlay and kubenet (a new cluster: default "+defaultPodCIDR+")")
	fs.String(&f.serviceCIDR, "service-cidr", "", "CIDR", "", "service address range (default "+azure.DefaultServiceCIDR+")")
	fs.String(&f.dnsServiceIP, "dns-service-ip", "", "IP", "", "cluster DNS service address, inside --service-cidr (default the CIDR's network address + 10)")
	fs.String(&f.vnetSubnetID, "vnet-subnet-id", "", "ID", "", "resource ID of the node subnet of the first pool")
	fs.String(&f.podSubnetID, "pod-subnet-id", "", "ID", "", "resource ID of the pod subnet of the first pool (selects the pod subnet model)")
	fs.Int(&f.maxPods, "max-pods", "m", "N", "maximum pods per node of the first pool, 10-250 (default by model: 250 overlay and pod subnet, 30 node subnet, 110 kubenet)")
	fs.Int(&f.nodeCount, "node-count", "c", "N", fmt.Sprintf("nodes of the first pool (a new cluster: default %d)", defaultNodeCount))
	fs.String(&f.nodeVMSize, "node-vm-size", "s", "SIZE", "", "VM size of the first pool, e.g. Standard_D4s_v5")
	fs.String(&f.osSKU, "os-sku", "", "SKU", "", "OS SKU of the first pool, e.g. AzureLinux or Ubuntu")
	fs.Bool(&f.enableACNS, "enable-acns", "", "enable Advanced Container Networking Services: observability and security")
	fs.Bool(&f.disableACNSObservability, "disable-acns-observability", "", "with ACNS, leave observability off")
	fs.Bool(&f.disableACNSSecurity, "disable-acns-security", "", "with ACNS, leave security (FQDN and L7 policies) off")
	fs.String(&f.acnsAdvancedNetworkPolicies, "acns-advanced-networkpolicies", "", "LEVEL", "", "with ACNS security: None, FQDN or L7 (default FQDN)")
	fs.Bool(&f.enableContainerNetworkLogs, "enable-container-network-logs", "", "with ACNS observability and --workspace-resource-id: store flow logs in Log Analytics")
	fs.String(&f.workspaceResourceID, "workspace-resource-id", "", "ID", "", "Log Analytics workspace of the monitoring addon (Container Insights)")
	fs.String(&f.assignIdentity, "assign-identity", "", "ID", "", "resource ID of a user-assigned managed identity for the control plane (default system-assigned)")
}

// base returns the spec the flags start from: --spec, else the spec of current (an update
// keeps what the flags do not change, as az aks update does), else an empty one.
func (f *specFlags) base(current *armcontainerservice.ManagedCluster) (azure.ClusterSpec, error) {
	if f.specFile != "" {
		return readSpec(f.specFile)
	}
	if current != nil {
		s, err := azure.SpecFromManagedCluster(*current)
		if err != nil {
			return azure.ClusterSpec{}, fmt.Errorf("read current cluster: %w", err)
		}
		return s, nil
	}
	return azure.ClusterSpec{}, nil
}

// readSpec reads a ClusterSpec JSON file; unknown fields are an error (a typo would otherwise
// be silently ignored).
func readSpec(path string) (azure.ClusterSpec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return azure.ClusterSpec{}, fmt.Errorf("read spec: %w", err)
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	var s azure.ClusterSpec
	if err := d.Decode(&s); err != nil {
		return azure.ClusterSpec{}, fmt.Errorf("read spec %s: %w", path, err)
	}
	return s, nil
}

// locate sets the cluster's subscription, resource group and name from the flags (and
// $AZURE_SUBSCRIPTION_ID when neither --subscription nor the spec names one).
func (f *specFlags) locate(fs *flagSet, s *azure.ClusterSpec, getenv func(string) string) {
	if fs.Set("subscription") {
		s.SubscriptionID = f.subscription
	}
	if s.SubscriptionID == "" {
		s.SubscriptionID = getenv("AZURE_SUBSCRIPTION_ID")
	}
	if fs.Set("resource-group") {
		s.ResourceGroup = f.resourceGroup
	}
	if fs.Set("name") {
		s.Name = f.name
	}
}

// apply overrides s with every flag given. create says s describes a new cluster: then a
// missing pool, node count and pod CIDR get az's and AKS's defaults.
func (f *specFlags) apply(fs *flagSet, s *azure.ClusterSpec, create bool) error {
	if fs.Set("location") {
		s.Location = f.location
	}
	if fs.Set("kubernetes-version") {
		s.KubernetesVersion = f.kubernetesVersion
	}
	if fs.Set("assign-identity") {
		s.Identity = f.assignIdentity
	}
	if fs.Set("workspace-resource-id") {
		s.MonitoringWorkspaceID = f.workspaceResourceID
	}

	// The first pool carries the pool flags, as az aks create's default node pool does.
	if len(s.Pools) == 0 && create {
		s.Pools = []azure.Pool{{Name: defaultPoolName, Count: defaultNodeCount}}
	}
	for _, name := range []string{"vnet-subnet-id", "pod-subnet-id", "max-pods", "node-count", "node-vm-size", "os-sku"} {
		if fs.Set(name) && len(s.Pools) == 0 {
			return usagef("--%s: the spec has no pool", name)
		}
	}
	if len(s.Pools) > 0 {
		p := &s.Pools[0]
		if fs.Set("vnet-subnet-id") {
			p.VNetSubnetID = f.vnetSubnetID
		}
		if fs.Set("pod-subnet-id") {
			p.PodSubnetID = f.podSubnetID
		}
		if fs.Set("max-pods") {
			p.MaxPods = int32(f.maxPods)
		}
		if fs.Set("node-count") {
			p.Count = int32(f.nodeCount)
		}
		if fs.Set("node-vm-size") {
			p.VMSize = f.nodeVMSize
		}
		if fs.Set("os-sku") {
			p.OSSKU = f.osSKU
		}
	}

	if err := f.applyNetwork(fs, s, create); err != nil {
		return err
	}
	return f.applyACNS(fs, s)
}

// applyNetwork infers the network model as az does: plugin azure with mode overlay is overlay,
// azure with a pod subnet is pod subnet, azure otherwise node subnet, kubenet is kubenet.
func (f *specFlags) applyNetwork(fs *flagSet, s *azure.ClusterSpec, create bool) error {
	n := &s.Network
	plugin, mode := "", ""
	switch n.Model {
	case azure.ModelOverlay:
		plugin, mode = "azure", "overlay"
	case azure.ModelPodSubnet, azure.ModelNodeSubnet:
		plugin = "azure"
	case azure.ModelKubenet:
		plugin = "kubenet"
	}
	podSubnet := false
	for _, p := range s.Pools {
		podSubnet = podSubnet || p.PodSubnetID != ""
	}
	switch {
	case fs.Set("network-plugin"):
		plugin, mode = strings.ToLower(f.networkPlugin), ""
	case n.Model == "" && !fs.Set("network-plugin-mode"):
		// Nothing says: ceskit's default is Azure CNI Overlay, unless a pod subnet is given.
		plugin = "azure"
		if !podSubnet {
			mode = "overlay"
		}
	}
	if fs.Set("network-plugin-mode") {
		mode = strings.ToLower(f.networkPluginMode)
		if plugin == "" {
			plugin = "azure"
		}
	}
	if mode != "" && mode != "overlay" {
		return usagef("--network-plugin-mode %q: want overlay", f.networkPluginMode)
	}
	model := n.Model
	switch plugin {
	case "azure":
		switch {
		case mode == "overlay":
			model = azure.ModelOverlay
		case podSubnet:
			model = azure.ModelPodSubnet
		default:
			model = azure.ModelNodeSubnet
		}
	case "kubenet":
		if mode != "" {
			return usagef("--network-plugin-mode %s needs --network-plugin azure, not kubenet", mode)
		}
		model = azure.ModelKubenet
	default:
		return usagef("--network-plugin %q: want azure or kubenet", f.networkPlugin)
	}
	n.Model = model

	if fs.Set("network-dataplane") {
		n.Dataplane = azure.Dataplane(strings.ToLower(f.networkDataplane))
		if !fs.Set("network-policy") {
			// az sends networkPolicy cilium with the Cilium dataplane (AKS rejects the
			// dataplane without it), and clears a cilium policy with the Azure one.
			switch {
			case n.Dataplane == azure.DataplaneCilium:
				n.Policy = azure.PolicyCilium
			case n.Policy == azure.PolicyCilium:
				n.Policy = ""
			}
		}
	}
	if fs.Set("network-policy") {
		n.Policy = azure.NetworkPolicyEngine(strings.ToLower(f.networkPolicy))
	}
	if fs.Set("pod-cidr") {
		n.PodCIDR = f.podCIDR
	}
	if fs.Set("service-cidr") {
		n.ServiceCIDR = f.serviceCIDR
	}
	if fs.Set("dns-service-ip") {
		n.DNSServiceIP = f.dnsServiceIP
	}
	if create && n.PodCIDR == "" && (model == azure.ModelOverlay || model == azure.ModelKubenet) {
		n.PodCIDR = defaultPodCIDR
	}
	return nil
}

// applyACNS maps the ACNS flags. As with az, the modifiers need ACNS: from --enable-acns or
// from the spec (or current cluster).
func (f *specFlags) applyACNS(fs *flagSet, s *azure.ClusterSpec) error {
	if f.enableACNS {
		a := azure.ACNS{Observability: true, Security: true}
		if s.ACNS != nil {
			a.AdvancedNetworkPolicies = s.ACNS.AdvancedNetworkPolicies
			a.ContainerNetworkLogs = s.ACNS.ContainerNetworkLogs
		}
		s.ACNS = &a
	}
	for _, name := range []string{"disable-acns-observability", "disable-acns-security", "acns-advanced-networkpolicies", "enable-container-network-logs"} {
		if fs.Set(name) && s.ACNS == nil {
			return usagef("--%s needs --enable-acns (or acns in --spec)", name)
		}
	}
	if f.disableACNSObservability {
		s.ACNS.Observability = false
	}
	if f.disableACNSSecurity {
		if fs.Set("acns-advanced-networkpolicies") {
			return usagef("--acns-advanced-networkpolicies cannot be used with --disable-acns-security")
		}
		s.ACNS.Security = false
		s.ACNS.AdvancedNetworkPolicies = ""
	}
	if f.disableACNSObservability && f.disableACNSSecurity {
		return usagef("--disable-acns-observability and --disable-acns-security together leave nothing of ACNS; drop --enable-acns instead")
	}
	if fs.Set("acns-advanced-networkpolicies") {
		s.ACNS.AdvancedNetworkPolicies = azure.AdvancedNetworkPolicies(f.acnsAdvancedNetworkPolicies)
	}
	if f.enableContainerNetworkLogs {
		s.ACNS.ContainerNetworkLogs = true
	}
	return nil
}
