package azure_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v8"

	"github.com/ceskit/ceskit/azure"
)

func exampleSpec() azure.ClusterSpec {
	return azure.ClusterSpec{
		SubscriptionID:    "11111111-2222-3333-4444-555555555555",
		ResourceGroup:     "rg-ces",
		Name:              "ces1",
		Location:          "eastus2",
		KubernetesVersion: "1.33",
		Network:           azure.Network{Model: azure.ModelOverlay, PodCIDR: "192.168.0.0/16"},
		Pools:             []azure.Pool{{Name: "system", Count: 3, VMSize: "Standard_D4s_v5"}},
		ACNS:              &azure.ACNS{Observability: true, Security: true},
	}
}

func ExampleValidate() {
	s := exampleSpec()
	s.Network.PodCIDR = ""               // overlay needs a pod CIDR
	s.Network.Policy = azure.PolicyAzure // the Cilium dataplane needs network policy cilium
	s.Pools[0].MaxPods = 300             // 10–250
	err := azure.Validate(s)

	var ve *azure.ValidationError
	if errors.As(err, &ve) {
		for _, p := range ve.Problems {
			fmt.Printf("%s %q: %s\n", p.Field, p.Value, p.Code)
		}
	}
	// Output:
	// network.policy "azure": CiliumDataplaneRequiresNetworkPolicyCilium
	// network.podCidr "": PodCidrRequired
	// pools[0].maxPods "300": InvalidMaxPods
}

func ExamplePlan() {
	s := exampleSpec()
	s.CreateResourceGroup = true
	plan, err := azure.Plan(context.Background(), s, nil) // nil: the cluster does not exist
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, st := range plan.Steps {
		fmt.Println(st.Method, st.Kind, st.APIVersion)
	}
	var body struct {
		Properties struct {
			NetworkProfile map[string]any `json:"networkProfile"`
		} `json:"properties"`
	}
	_ = json.Unmarshal(plan.Steps[1].Body, &body)
	np := body.Properties.NetworkProfile
	fmt.Println(np["networkPlugin"], np["networkPluginMode"], np["networkDataplane"], np["networkPolicy"], np["podCidr"])
	// Output:
	// PUT ResourceGroup 2025-04-01
	// PUT ManagedCluster 2025-10-01
	// azure overlay cilium cilium 192.168.0.0/16
}

// Updating an Azure CNI (node subnet) cluster with Azure NPM to Cilium is one PUT that changes
// dataplane and network policy together and reimages every pool.
func ExamplePlan_update() {
	subnet := "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-ces/providers/Microsoft.Network/virtualNetworks/vnet/subnets/aks"
	current := armcontainerservice.ManagedCluster{ // as ManagedClustersClient.Get returns it
		ID:       to.Ptr("/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-ces/providers/Microsoft.ContainerService/managedClusters/ces1"),
		Location: to.Ptr("eastus2"),
		Identity: &armcontainerservice.ManagedClusterIdentity{Type: to.Ptr(armcontainerservice.ResourceIdentityTypeSystemAssigned)},
		Properties: &armcontainerservice.ManagedClusterProperties{
			DNSPrefix:         to.Ptr("ces1"),
			KubernetesVersion: to.Ptr("1.33"),
			ProvisioningState: to.Ptr("Succeeded"),
			NetworkProfile: &armcontainerservice.NetworkProfile{
				NetworkPlugin:    to.Ptr(armcontainerservice.NetworkPluginAzure),
				NetworkDataplane: to.Ptr(armcontainerservice.NetworkDataplaneAzure),
				NetworkPolicy:    to.Ptr(armcontainerservice.NetworkPolicyAzure),
				ServiceCidr:      to.Ptr("10.0.0.0/16"),
				DNSServiceIP:     to.Ptr("10.0.0.10"),
				OutboundType:     to.Ptr(armcontainerservice.OutboundTypeLoadBalancer),
			},
			AgentPoolProfiles: []*armcontainerservice.ManagedClusterAgentPoolProfile{{
				Name: to.Ptr("system"), Mode: to.Ptr(armcontainerservice.AgentPoolModeSystem), Count: to.Ptr[int32](3),
				VMSize: to.Ptr("Standard_D4s_v5"), OSType: to.Ptr(armcontainerservice.OSTypeLinux),
				MaxPods: to.Ptr[int32](30), VnetSubnetID: to.Ptr(subnet),
			}},
		},
	}
	desired, _ := azure.SpecFromManagedCluster(current)
	desired.Network.Dataplane, desired.Network.Policy = azure.DataplaneCilium, azure.PolicyCilium

	plan, err := azure.Plan(context.Background(), desired, &current)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, st := range plan.Steps {
		fmt.Println(st.Description)
		fmt.Println("disrupts:", st.Disruption, st.Affects)
	}
	// Output:
	// Switch the dataplane to Cilium with network policy cilium (from dataplane azure, policy azure).
	// disrupts: reimage [system]
}

func ExampleExportTemplate() {
	s := exampleSpec()
	tmpl, err := azure.ExportTemplate(s, azure.ExportOptions{Monitoring: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	var t struct {
		Resources []struct {
			Type       string `json:"type"`
			APIVersion string `json:"apiVersion"`
		} `json:"resources"`
	}
	if err := json.Unmarshal(tmpl, &t); err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range t.Resources {
		fmt.Printf("%s@%s\n", r.Type, r.APIVersion)
	}
	// Output:
	// Microsoft.ContainerService/managedClusters@2025-10-01
	// Microsoft.AlertsManagement/prometheusRuleGroups@2023-03-01
	// Microsoft.Insights/scheduledQueryRules@2023-12-01
	// Microsoft.Insights/workbooks@2023-06-01
}
