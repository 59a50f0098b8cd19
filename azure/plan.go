package azure

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v8"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
)

// Warnings the plan attaches to its steps.
const (
	warnReimageAll = "all node pools are reimaged at the same time, not one by one: every pod restarts"
	warnCiliumLate = "Cilium enforces network policy only after every node has been reimaged; until then policies may not be enforced on every node"
	warnKubeProxy  = "kube-proxy is removed: Cilium replaces it (service load balancing moves to eBPF)"
	warnNAP        = "keep node auto-provisioning disabled until the migration finishes: the migration does not support it"
	warnSinglePDB  = "the cluster has a single System pool: reimaging may stall on PodDisruptionBudgets of system pods such as coredns and konnectivity-agent (Azure/azure-container-networking#4417); add a second System pool or relax those budgets first"
	warnOneWay     = "the migration to overlay is one-way"
	warnNoPolicy   = "network policy is not enforced from this step until the Cilium step has reimaged every node"
	warnMaxPods    = "maxPods is fixed when a pool is created; changing it later needs a new pool"
)

// Plan computes the ordered ARM requests that bring the cluster to desired, without calling
// Azure (a dry run). current is the cluster as a GET returns it, nil when it does not exist.
//
// Plan validates first: [Validate] for a create, [ValidateUpdate] for an update, returning
// their [*ValidationError].
//
// A create is: the resource group (if desired.CreateResourceGroup), the VNet with its subnets in
// the body (if desired.VNet), then the managed cluster with every pool in agentPoolProfiles.
//
// An update starts each body from current — everything ceskit does not model is preserved —
// and changes only what the spec changes. The read-only fields a GET returns, which the SDK
// would serialize back, are removed: id, name, type, systemData, eTag; identity.principalId,
// identity.tenantId and each user-assigned identity's clientId and principalId;
// properties.provisioningState, powerState, fqdn, privateFQDN, azurePortalFQDN,
// currentKubernetesVersion, maxAgentPools, resourceUID, status, oidcIssuerProfile.issuerURL,
// privateLinkResources[].privateLinkServiceID, addonProfiles[].identity,
// ingressProfile.webAppRouting.identity, the effectiveOutboundIPs of loadBalancerProfile and
// natGatewayProfile; and in each agent pool provisioningState, currentOrchestratorVersion,
// nodeImageVersion, eTag, status and localDNSProfile.state. The steps, in this order, are
// separate operations:
//
//  1. Kubernetes upgrade (kubernetesVersion and the orchestratorVersion of pools that follow it).
//  2. Removal of Azure NPM or Calico (networkPolicy none), when the cluster moves to overlay:
//     AKS refuses the IPAM migration while they run.
//  3. IPAM → overlay (networkPlugin azure, networkPluginMode overlay, podCidr; the dataplane
//     unchanged): kubenet and node subnet clusters. All pools are reimaged.
//  4. Dataplane and network policy → cilium together (AKS requires both in one request); Azure
//     NPM or Calico are uninstalled, kube-proxy goes away. All pools are reimaged.
//  5. Settings: ACNS, the monitoring addon, tags.
//  6. Agent pools: changes of count (unless the cluster autoscaler owns it), mode or pinned
//     orchestratorVersion of existing pools, then new pools, each an agent pool PUT.
//
// When nothing differs the plan has no steps, so planning again after applying yields nothing.
// Resource-group steps use api-version [ResourcesAPIVersion], VNet steps [NetworkAPIVersion],
// AKS steps desired.APIVersion. desired.VNet and CreateResourceGroup only matter for a create.
func Plan(ctx context.Context, desired ClusterSpec, current *armcontainerservice.ManagedCluster) (*ClusterPlan, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	if current == nil {
		d := desired.WithDefaults()
		if err := Validate(d); err != nil {
			return nil, err
		}
		return planCreate(d)
	}
	if err := ValidateUpdate(desired, *current); err != nil {
		return nil, err
	}
	cur, err := SpecFromManagedCluster(*current)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	d := mergeCurrent(desired, cur).WithDefaults()
	return planUpdate(d, cur, *current)
}

func planCreate(d ClusterSpec) (*ClusterPlan, error) {
	plan := &ClusterPlan{Cluster: d.ResourceID(), Steps: []Step{}}
	if d.CreateResourceGroup {
		rg := armresources.ResourceGroup{Location: to.Ptr(d.Location)}
		st, err := newStep(KindResourceGroup, d.resourceGroupID(), ResourcesAPIVersion, rg)
		if err != nil {
			return nil, err
		}
		st.Description = fmt.Sprintf("Create resource group %s in %s.", d.ResourceGroup, d.Location)
		plan.Steps = append(plan.Steps, st)
	}
	if d.VNet != nil {
		st, err := newStep(KindVirtualNetwork, d.vnetID(), NetworkAPIVersion, vnetModel(d))
		if err != nil {
			return nil, err
		}
		names := make([]string, len(d.VNet.Subnets))
		for i, sn := range d.VNet.Subnets {
			names[i] = sn.Name + " " + sn.Prefix
		}
		st.Description = fmt.Sprintf("Create virtual network %s (%s) with subnets %s.", d.VNet.Name, strings.Join(d.VNet.AddressSpace, ", "), strings.Join(names, ", "))
		plan.Steps = append(plan.Steps, st)
	}
	st, err := newStep(KindManagedCluster, d.ResourceID(), d.APIVersion, d.managedCluster())
	if err != nil {
		return nil, err
	}
	st.Description = fmt.Sprintf("Create AKS cluster %s (Kubernetes %s, %s, dataplane %s, network policy %s) with pools %s.",
		d.Name, d.KubernetesVersion, modelText(d.Network.Model), d.Network.Dataplane, d.Network.Policy, strings.Join(poolNames(d.Pools), ", "))
	st.Warnings = []string{warnMaxPods + ": " + maxPodsText(d.Pools)}
	plan.Steps = append(plan.Steps, st)
	plan.Warnings = planWarnings(d)
	return plan, nil
}

func vnetModel(d ClusterSpec) armnetwork.VirtualNetwork {
	vn := armnetwork.VirtualNetwork{
		Location: to.Ptr(d.Location),
		Properties: &armnetwork.VirtualNetworkPropertiesFormat{
			AddressSpace: &armnetwork.AddressSpace{AddressPrefixes: to.SliceOfPtrs(d.VNet.AddressSpace...)},
		},
	}
	for _, sn := range d.VNet.Subnets {
		s := &armnetwork.Subnet{
			Name:       to.Ptr(sn.Name),
			Properties: &armnetwork.SubnetPropertiesFormat{AddressPrefix: to.Ptr(sn.Prefix)},
		}
		if sn.Delegation != "" {
			s.Properties.Delegations = []*armnetwork.Delegation{{
				Name:       to.Ptr(strings.ReplaceAll(sn.Delegation, "/", ".")),
				Properties: &armnetwork.ServiceDelegationPropertiesFormat{ServiceName: to.Ptr(sn.Delegation)},
			}}
		}
		vn.Properties.Subnets = append(vn.Properties.Subnets, s)
	}
	return vn
}

// writableCopy deep-copies mc through the SDK's JSON forms and removes the read-only fields.
func writableCopy(mc armcontainerservice.ManagedCluster) (armcontainerservice.ManagedCluster, error) {
	data, err := json.Marshal(mc)
	if err != nil {
		return mc, fmt.Errorf("copy managed cluster: %w", err)
	}
	var out armcontainerservice.ManagedCluster
	if err := json.Unmarshal(data, &out); err != nil {
		return mc, fmt.Errorf("copy managed cluster: %w", err)
	}
	out.ID, out.Name, out.Type, out.SystemData, out.ETag = nil, nil, nil, nil, nil
	if id := out.Identity; id != nil {
		id.PrincipalID, id.TenantID = nil, nil
		for k := range id.UserAssignedIdentities {
			id.UserAssignedIdentities[k] = &armcontainerservice.ManagedServiceIdentityUserAssignedIdentitiesValue{}
		}
	}
	p := out.Properties
	if p == nil {
		return out, nil
	}
	p.ProvisioningState, p.PowerState, p.Fqdn, p.PrivateFQDN, p.AzurePortalFQDN = nil, nil, nil, nil, nil
	p.CurrentKubernetesVersion, p.MaxAgentPools, p.ResourceUID, p.Status = nil, nil, nil, nil
	if p.OidcIssuerProfile != nil {
		p.OidcIssuerProfile.IssuerURL = nil
	}
	for _, r := range p.PrivateLinkResources {
		if r != nil {
			r.PrivateLinkServiceID = nil
		}
	}
	for _, a := range p.AddonProfiles {
		if a != nil {
			a.Identity = nil
		}
	}
	if p.IngressProfile != nil && p.IngressProfile.WebAppRouting != nil {
		p.IngressProfile.WebAppRouting.Identity = nil
	}
	if np := p.NetworkProfile; np != nil {
		if np.LoadBalancerProfile != nil {
			np.LoadBalancerProfile.EffectiveOutboundIPs = nil
		}
		if np.NatGatewayProfile != nil {
			np.NatGatewayProfile.EffectiveOutboundIPs = nil
		}
	}
	for _, ap := range p.AgentPoolProfiles {
		if ap == nil {
			continue
		}
		ap.ProvisioningState, ap.CurrentOrchestratorVersion, ap.NodeImageVersion, ap.ETag, ap.Status = nil, nil, nil, nil, nil
		if ap.LocalDNSProfile != nil {
			ap.LocalDNSProfile.State = nil
		}
	}
	return out, nil
}

// planUpdate plans the steps from cur (current's spec) to d (merged, defaulted, validated).
func planUpdate(d, cur ClusterSpec, current armcontainerservice.ManagedCluster) (*ClusterPlan, error) {
	plan := &ClusterPlan{Cluster: d.ResourceID(), Steps: []Step{}}
	state, err := writableCopy(current)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	if state.Properties == nil || state.Properties.NetworkProfile == nil {
		return nil, fmt.Errorf("plan: current cluster %s has no network profile", d.Name)
	}
	props := state.Properties
	np := props.NetworkProfile
	allPools := poolNames(cur.Pools)
	systemPools := 0
	for _, p := range cur.Pools {
		if p.Mode == ModeSystem {
			systemPools++
		}
	}
	reimageWarnings := func(extra ...string) []string {
		w := append([]string{warnReimageAll}, extra...)
		if systemPools == 1 {
			w = append(w, warnSinglePDB)
		}
		return w
	}
	addCluster := func(desc string, disruption Disruption, affects, warnings []string) error {
		st, err := newStep(KindManagedCluster, d.ResourceID(), d.APIVersion, state)
		if err != nil {
			return err
		}
		st.Description, st.Disruption, st.Affects, st.Warnings = desc, disruption, affects, warnings
		plan.Steps = append(plan.Steps, st)
		return nil
	}

	// 1. Kubernetes upgrade.
	dk, _ := parseKubeVersion(d.KubernetesVersion)
	ck, _ := parseKubeVersion(cur.KubernetesVersion)
	if dk.compare(ck) > 0 {
		props.KubernetesVersion = to.Ptr(d.KubernetesVersion)
		for _, ap := range props.AgentPoolProfiles {
			if p, ok := findPool(d.Pools, sval(ap.Name)); ok && p.OrchestratorVersion != "" {
				ap.OrchestratorVersion = to.Ptr(p.OrchestratorVersion)
			} else {
				ap.OrchestratorVersion = to.Ptr(d.KubernetesVersion)
			}
		}
		w := []string{"nodes are upgraded by surge: each node is cordoned, drained and replaced"}
		if systemPools == 1 {
			w = append(w, warnSinglePDB)
		}
		if err := addCluster(fmt.Sprintf("Upgrade Kubernetes from %s to %s (control plane and pools).", cur.KubernetesVersion, d.KubernetesVersion),
			DisruptReimage, allPools, w); err != nil {
			return nil, err
		}
	}

	toOverlay := d.Network.Model == ModelOverlay && cur.Network.Model != ModelOverlay
	toCilium := d.Network.Dataplane == DataplaneCilium && cur.Network.Dataplane != DataplaneCilium
	policy := cur.Network.Policy

	// 2. Remove NPM/Calico before the IPAM migration.
	if toOverlay && (policy == PolicyAzure || policy == PolicyCalico) {
		np.NetworkPolicy = to.Ptr(armcontainerservice.NetworkPolicyNone)
		w := []string{warnNoPolicy}
		if d.Network.Policy == PolicyNone {
			w = []string{"network policy is no longer enforced"}
		}
		if err := addCluster(fmt.Sprintf("Uninstall network policy engine %s (networkPolicy none): AKS does not migrate to overlay while it runs.", policyName(policy)),
			DisruptNone, nil, w); err != nil {
			return nil, err
		}
		policy = PolicyNone
	}

	// 3. IPAM → overlay.
	if toOverlay {
		np.NetworkPlugin = to.Ptr(armcontainerservice.NetworkPluginAzure)
		np.NetworkPluginMode = to.Ptr(armcontainerservice.NetworkPluginModeOverlay)
		np.PodCidr = to.Ptr(d.Network.PodCIDR)
		if len(np.PodCidrs) > 0 {
			np.PodCidrs = []*string{to.Ptr(d.Network.PodCIDR)} // single stack: keep the two fields in step
		}
		extra := []string{warnOneWay}
		if cur.Network.Model == ModelKubenet {
			extra = append(extra, "the kubenet route table is detached from the node subnet (the user-assigned identity does it)")
		}
		extra = append(extra, fmt.Sprintf("pods get new addresses from %s", d.Network.PodCIDR))
		if toCilium {
			extra = append(extra, "the dataplane moves to Cilium in the next step, a separate operation: AKS does not change IPAM mode and dataplane together")
		}
		if err := addCluster(fmt.Sprintf("Migrate IPAM from %s to Azure CNI overlay (pod CIDR %s); the dataplane stays %s.", modelText(cur.Network.Model), d.Network.PodCIDR, cur.Network.Dataplane),
			DisruptReimage, allPools, reimageWarnings(extra...)); err != nil {
			return nil, err
		}
	}

	// 4. Dataplane and policy.
	switch {
	case toCilium:
		np.NetworkDataplane = to.Ptr(armcontainerservice.NetworkDataplaneCilium)
		np.NetworkPolicy = to.Ptr(armcontainerservice.NetworkPolicy(d.Network.Policy))
		w := reimageWarnings(warnCiliumLate)
		switch policy {
		case PolicyAzure:
			w = append(w, "Azure NPM is uninstalled and Cilium takes over: the Kubernetes NetworkPolicy objects are kept as they are and enforced by Cilium")
		case PolicyCalico:
			w = append(w, "Calico is uninstalled and Cilium takes over: the Kubernetes NetworkPolicy objects are kept and enforced by Cilium; Calico's own policy resources (projectcalico.org GlobalNetworkPolicy, NetworkPolicy) are not translated and stop being enforced")
		}
		w = append(w, warnKubeProxy, warnNAP)
		desc := fmt.Sprintf("Switch the dataplane to Cilium with network policy cilium (from dataplane %s, policy %s).", cur.Network.Dataplane, policy)
		if err := addCluster(desc, DisruptReimage, allPools, w); err != nil {
			return nil, err
		}
	case d.Network.Policy != policy:
		np.NetworkPolicy = to.Ptr(armcontainerservice.NetworkPolicy(d.Network.Policy))
		var w []string
		if d.Network.Policy == PolicyNone {
			w = []string{"network policy is no longer enforced"}
		}
		if err := addCluster(fmt.Sprintf("Change network policy from %s to %s.", policy, d.Network.Policy), DisruptNone, nil, w); err != nil {
			return nil, err
		}
	}

	// 5. Settings: ACNS, monitoring, tags.
	var changes, warnings []string
	if !acnsEqual(d.ACNS, cur.ACNS) {
		if d.ACNS == nil {
			np.AdvancedNetworking = acnsOff()
			changes = append(changes, "disable ACNS")
			warnings = append(warnings, "Hubble flow metrics and logs stop")
			if cur.ACNS != nil && cur.ACNS.Security {
				warnings = append(warnings, "FQDN and L7 policies are no longer enforced")
			}
		} else {
			np.AdvancedNetworking = acnsModel(d.ACNS)
			changes = append(changes, "set ACNS "+acnsText(d.ACNS))
			if cur.ACNS != nil && cur.ACNS.Security && !d.ACNS.Security {
				warnings = append(warnings, "FQDN and L7 policies are no longer enforced")
			}
		}
	}
	if !strings.EqualFold(d.MonitoringWorkspaceID, cur.MonitoringWorkspaceID) {
		if props.AddonProfiles == nil {
			props.AddonProfiles = map[string]*armcontainerservice.ManagedClusterAddonProfile{}
		}
		key := monitoringAddon
		for k := range props.AddonProfiles {
			if strings.EqualFold(k, monitoringAddon) {
				key = k
			}
		}
		if d.MonitoringWorkspaceID == "" {
			props.AddonProfiles[key] = &armcontainerservice.ManagedClusterAddonProfile{Enabled: to.Ptr(false)}
			changes = append(changes, "disable the monitoring addon")
		} else {
			props.AddonProfiles[key] = monitoringAddonModel(d.MonitoringWorkspaceID)
			changes = append(changes, "enable the monitoring addon")
		}
	}
	if d.Tags != nil && !maps.Equal(d.Tags, cur.Tags) {
		state.Tags = tagsModel(d.Tags)
		changes = append(changes, "set tags")
	}
	if len(changes) > 0 {
		if err := addCluster(upperFirst(strings.Join(changes, ", "))+".", DisruptNone, nil, warnings); err != nil {
			return nil, err
		}
	}

	// 6. Agent pools: changes of existing pools, then new pools.
	for _, p := range d.Pools {
		cp, ok := findPool(cur.Pools, p.Name)
		if !ok {
			continue
		}
		var prof *armcontainerservice.ManagedClusterAgentPoolProfile
		for _, ap := range props.AgentPoolProfiles {
			if sval(ap.Name) == p.Name {
				prof = ap
			}
		}
		if prof == nil {
			continue
		}
		var what, w []string
		disruption := DisruptNone
		autoscaled := prof.EnableAutoScaling != nil && *prof.EnableAutoScaling
		if p.Count != cp.Count && !autoscaled { // the cluster autoscaler owns the count
			prof.Count = to.Ptr(p.Count)
			what = append(what, fmt.Sprintf("count %d → %d", cp.Count, p.Count))
			if p.Count < cp.Count {
				w = append(w, fmt.Sprintf("%d nodes are drained and deleted", cp.Count-p.Count))
			}
		}
		if p.Mode != cp.Mode {
			prof.Mode = to.Ptr(armcontainerservice.AgentPoolMode(p.Mode))
			what = append(what, fmt.Sprintf("mode %s → %s", cp.Mode, p.Mode))
		}
		if p.OrchestratorVersion != "" && p.OrchestratorVersion != sval(prof.OrchestratorVersion) {
			what = append(what, fmt.Sprintf("Kubernetes %s → %s", sval(prof.OrchestratorVersion), p.OrchestratorVersion))
			prof.OrchestratorVersion = to.Ptr(p.OrchestratorVersion)
			disruption = DisruptReimage
			w = append(w, "the pool's nodes are upgraded by surge: each is cordoned, drained and replaced")
		}
		if len(what) == 0 {
			continue
		}
		st, err := agentPoolStep(d, prof)
		if err != nil {
			return nil, err
		}
		st.Description = fmt.Sprintf("Update agent pool %s: %s.", p.Name, strings.Join(what, ", "))
		st.Disruption = disruption
		if disruption != DisruptNone {
			st.Affects = []string{p.Name}
		}
		st.Warnings = w
		plan.Steps = append(plan.Steps, st)
	}
	for _, p := range d.Pools {
		if _, ok := findPool(cur.Pools, p.Name); ok {
			continue
		}
		st, err := agentPoolStep(d, poolProfile(p))
		if err != nil {
			return nil, err
		}
		st.Description = fmt.Sprintf("Add %s agent pool %s: %d × %s, maxPods %d.", p.Mode, p.Name, p.Count, p.VMSize, p.MaxPods)
		st.Warnings = []string{warnMaxPods}
		plan.Steps = append(plan.Steps, st)
	}
	if len(plan.Steps) > 0 {
		plan.Warnings = planWarnings(d)
	}
	return plan, nil
}

func agentPoolStep(d ClusterSpec, prof *armcontainerservice.ManagedClusterAgentPoolProfile) (Step, error) {
	body, err := agentPoolModel(prof)
	if err != nil {
		return Step{}, fmt.Errorf("plan agent pool %s: %w", sval(prof.Name), err)
	}
	return newStep(KindAgentPool, d.agentPoolID(sval(prof.Name)), d.APIVersion, body)
}

// newStep returns a PUT step whose body is the SDK's serialization of model.
func newStep(kind StepKind, id, apiVersion string, model any) (Step, error) {
	body, err := json.Marshal(model)
	if err != nil {
		return Step{}, fmt.Errorf("plan %s %s: marshal body: %w", kind, id, err)
	}
	return Step{Kind: kind, ResourceID: id, Method: "PUT", APIVersion: apiVersion, Body: body, Disruption: DisruptNone}, nil
}

// planWarnings are the warnings of a whole plan.
func planWarnings(d ClusterSpec) []string {
	var w []string
	if d.ACNS != nil && d.ACNS.ContainerNetworkLogs {
		w = append(w, "container network logs: api-version "+d.APIVersion+" has no field for them; after applying, turn on the monitoring addon's high log scale mode and create ContainerNetworkLog resources in the cluster (kubectl apply) to choose the flows to store")
	}
	return w
}

func acnsEqual(a, b *ACNS) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Observability == b.Observability && a.Security == b.Security &&
		(!a.Security || a.AdvancedNetworkPolicies == b.AdvancedNetworkPolicies)
}

func acnsText(a *ACNS) string {
	var parts []string
	if a.Observability {
		parts = append(parts, "observability")
	}
	if a.Security {
		parts = append(parts, "security ("+string(a.AdvancedNetworkPolicies)+")")
	}
	if len(parts) == 0 {
		return "(no feature)"
	}
	return strings.Join(parts, " + ")
}

func modelText(m NetworkModel) string {
	switch m {
	case ModelOverlay:
		return "Azure CNI overlay"
	case ModelPodSubnet:
		return "Azure CNI pod subnet"
	case ModelNodeSubnet:
		return "Azure CNI node subnet"
	case ModelKubenet:
		return "kubenet"
	}
	return string(m)
}

func policyName(p NetworkPolicyEngine) string {
	switch p {
	case PolicyAzure:
		return "Azure NPM"
	case PolicyCalico:
		return "Calico"
	}
	return string(p)
}

func poolNames(pools []Pool) []string {
	names := make([]string, len(pools))
	for i, p := range pools {
		names[i] = p.Name
	}
	return names
}

func maxPodsText(pools []Pool) string {
	parts := make([]string, len(pools))
	for i, p := range pools {
		parts[i] = fmt.Sprintf("%s=%d", p.Name, p.MaxPods)
	}
	return strings.Join(parts, ", ")
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
