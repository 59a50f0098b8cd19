// Package azure describes, checks, plans and exports AKS clusters that run "Azure CNI powered
// by Cilium", the managed Cilium dataplane that CiliumEndpointSlices, ceskit's other packages
// and ACNS build on.
//
// A [ClusterSpec] is the cluster as ceskit's users describe it: one of three network models
// (overlay, pod subnet, node subnet), the Cilium dataplane and network policy, pod and service
// CIDRs, the DNS service IP, Linux agent pools with their subnets and maxPods, Advanced
// Container Networking Services ([ACNS]) and an optional VNet to create. It maps onto
// armcontainerservice/v8's ManagedCluster (api-version 2025-10-01) with
// [ClusterSpec.ManagedCluster], and back with [SpecFromManagedCluster].
//
// [Validate] reproduces AKS's rules before anything is sent, with AKS's error codes where they
// are known (for example CiliumDataplaneRequiresNetworkPolicyCilium or
// ServiceCidrOverlapExistingSubnetsCidr) and ceskit codes in the same style otherwise, and
// reports every problem at once in a [*ValidationError], each naming the field and the value.
// [ValidateUpdate] adds the rules of changing an existing cluster: Cilium cannot be disabled,
// kubenet reaches Cilium only through overlay, pools keep their maxPods and subnets.
//
// # Versions
//
// The version matrix the package enforces:
//
//	networkDataplane              api-version ≥ 2023-02-02-preview (stable ≥ 2023-03-01)
//	networkPluginMode overlay     api-version ≥ 2022-04-02-preview (stable ≥ 2023-03-01)
//	advancedNetworking (ACNS)     api-version ≥ 2024-04-02-preview (stable ≥ 2024-09-01)
//	advancedNetworkPolicies       api-version ≥ 2025-02-02-preview (stable ≥ 2025-08-01)
//	overlay migration             Kubernetes ≥ 1.27
//	ACNS on Cilium                Kubernetes ≥ 1.29
//	CiliumEndpointSlices          Kubernetes ≥ 1.32 (AKS runs Cilium ≥ 1.17 there)
//	container network logs        Kubernetes ≥ 1.33
//
// and [MinCiliumVersion] gives the Cilium AKS runs per Kubernetes minor: 1.14.20 for 1.29 and
// 1.30, 1.16.16 for 1.31, 1.17.9 for 1.32 and 1.33, 1.18.6 for 1.34 and 1.35.
//
// # Planning and applying
//
// [Plan] turns a desired spec and the current cluster (nil when it does not exist) into a
// [ClusterPlan]: the ordered ARM requests, each a [Step] with its resource ID, api-version,
// exact JSON body (the SDK's serialization), what it disrupts and the warnings a user must read.
// Plan never calls Azure; the plan is plain data to print, review, store and hand to an
// [Applier], which sends the steps in order and waits for each long-running operation. A
// create is resource group → VNet → cluster; an update to Cilium follows AKS's path (kubenet →
// overlay → Cilium, each its own operation, all pools reimaged) and preserves everything in the
// current cluster the spec does not model. Planning again after applying yields no steps.
//
//	s := azure.ClusterSpec{
//		SubscriptionID: sub, ResourceGroup: "rg", Name: "ces1", Location: "eastus2",
//		KubernetesVersion: "1.33",
//		Network: azure.Network{Model: azure.ModelOverlay, PodCIDR: "192.168.0.0/16"},
//		Pools:   []azure.Pool{{Name: "system", Count: 3, VMSize: "Standard_D4s_v5"}},
//	}
//	plan, err := azure.Plan(ctx, s, current) // current from ManagedClustersClient.Get, or nil
//
// [ExportTemplate] writes the same cluster, its VNet and, on request, observe's Azure Monitor
// resources as an ARM deployment template for `az deployment group create`.
//
// [Validate], [ValidateUpdate], [Plan], [ExportTemplate] and the mappings are pure functions of
// their arguments, safe for concurrent use.
package azure
