package azure_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v8"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v8/fake"

	"github.com/ceskit/ceskit/azure"
)

// Apply a plan creating an overlay cluster with the Cilium dataplane, then apply it again:
// the second apply finds the cluster as planned and sends nothing. The SDK's fake server,
// backed by a map, stands in for AKS; against Azure, build the clients with
// azure.NewCredential and no Transport.
func ExampleApplier() {
	const sub = "00000000-0000-0000-0000-000000000001"
	id := "/subscriptions/" + sub + "/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/c1"

	var mu sync.Mutex
	clusters := map[string]armcontainerservice.ManagedCluster{}
	srv := fake.ManagedClustersServer{
		Get: func(_ context.Context, rg, name string, _ *armcontainerservice.ManagedClustersClientGetOptions) (resp azfake.Responder[armcontainerservice.ManagedClustersClientGetResponse], errResp azfake.ErrorResponder) {
			mu.Lock()
			defer mu.Unlock()
			mc, ok := clusters[rg+"/"+name]
			if !ok {
				errResp.SetResponseError(http.StatusNotFound, "ResourceNotFound")
				return
			}
			resp.SetResponse(http.StatusOK, armcontainerservice.ManagedClustersClientGetResponse{ManagedCluster: mc}, nil)
			return
		},
		BeginCreateOrUpdate: func(_ context.Context, rg, name string, mc armcontainerservice.ManagedCluster, _ *armcontainerservice.ManagedClustersClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armcontainerservice.ManagedClustersClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
			mu.Lock()
			defer mu.Unlock()
			mc.Properties.ProvisioningState = to.Ptr("Succeeded")
			clusters[rg+"/"+name] = mc
			resp.AddNonTerminalResponse(http.StatusCreated, nil) // "Creating", polled once
			resp.SetTerminalResponse(http.StatusOK, armcontainerservice.ManagedClustersClientCreateOrUpdateResponse{ManagedCluster: mc}, nil)
			return
		},
	}
	clients, err := azure.NewClients(sub, &azfake.TokenCredential{}, &arm.ClientOptions{
		ClientOptions: azcore.ClientOptions{Transport: fake.NewManagedClustersServerTransport(&srv)},
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	body, _ := json.Marshal(armcontainerservice.ManagedCluster{
		Location: to.Ptr("eastus2"),
		Properties: &armcontainerservice.ManagedClusterProperties{
			DNSPrefix: to.Ptr("c1"), KubernetesVersion: to.Ptr("1.33"),
			AgentPoolProfiles: []*armcontainerservice.ManagedClusterAgentPoolProfile{{
				Name: to.Ptr("system"), Mode: to.Ptr(armcontainerservice.AgentPoolModeSystem),
				Count: to.Ptr[int32](2), VMSize: to.Ptr("Standard_D4s_v5"),
			}},
			NetworkProfile: &armcontainerservice.NetworkProfile{
				NetworkPlugin:     to.Ptr(armcontainerservice.NetworkPluginAzure),
				NetworkPluginMode: to.Ptr(armcontainerservice.NetworkPluginModeOverlay),
				NetworkDataplane:  to.Ptr(armcontainerservice.NetworkDataplaneCilium),
				NetworkPolicy:     to.Ptr(armcontainerservice.NetworkPolicyCilium),
				PodCidr:           to.Ptr("192.168.0.0/16"),
			},
		},
	})
	plan := &azure.ClusterPlan{Cluster: id, Steps: []azure.Step{{
		Kind: azure.KindManagedCluster, ResourceID: id, Method: "PUT", APIVersion: "2025-10-01", Body: body,
		Description: "Create cluster c1 (overlay, Cilium dataplane).",
	}}}

	a := &azure.Applier{
		Clients:       clients,
		Store:         &azure.MemoryResumeStore{}, // azure.FileResumeStore(dir) survives restarts
		PollFrequency: 10 * time.Millisecond,      // default 30s; below 1s only under go test
	}
	for range 2 {
		res, err := a.Apply(context.Background(), plan)
		if err != nil {
			fmt.Println(err)
			return
		}
		for _, s := range res.Steps {
			fmt.Println(s.Kind, s.Outcome)
		}
	}
	// Output:
	// ManagedCluster created
	// ManagedCluster unchanged
}
