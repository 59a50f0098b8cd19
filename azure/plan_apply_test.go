package azure

import (
	"context"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v8"
)

// TestPlanApplyPlan runs the whole cycle against the stateful fake ARM: plan a create (resource
// group, VNet, cluster), apply it, read the cluster back, plan again (nothing to do), apply the
// empty plan (nothing written), then plan and apply an update (ACNS on) and plan once more.
func TestPlanApplyPlan(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t, 2)
	desired := fxPodSubnet()
	desired.SubscriptionID = testSub // the fake's subscription
	for i := range desired.Pools {
		desired.Pools[i].VNetSubnetID = desired.SubnetID("nodes")
		desired.Pools[i].PodSubnetID = desired.SubnetID("pods")
	}

	current := func() *armcontainerservice.ManagedCluster {
		var mc armcontainerservice.ManagedCluster
		if !env.fake.get(desired.ResourceID(), &mc) {
			return nil
		}
		return &mc
	}
	apply := func(p *ClusterPlan) *ApplyResult {
		t.Helper()
		res, err := env.applier().Apply(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	p, err := Plan(ctx, desired, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Steps) != 3 {
		t.Fatalf("create plan has %d steps, want 3 (resource group, VNet, cluster)", len(p.Steps))
	}
	if res := apply(p); !res.Changed() {
		t.Fatal("applying the create plan changed nothing")
	}
	if current() == nil {
		t.Fatal("the cluster does not exist after apply")
	}
	writes := env.fake.totalWrites()

	again, err := Plan(ctx, desired, current())
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Steps) != 0 {
		t.Fatalf("planning the applied spec again gives %d steps: %+v", len(again.Steps), again.Steps)
	}
	if res := apply(p); res.Changed() || env.fake.totalWrites() != writes {
		t.Fatalf("re-applying the applied plan wrote %d times", env.fake.totalWrites()-writes)
	}

	desired.ACNS = &ACNS{Observability: true, Security: true, AdvancedNetworkPolicies: AdvancedPoliciesFQDN}
	up, err := Plan(ctx, desired, current())
	if err != nil {
		t.Fatal(err)
	}
	if len(up.Steps) != 1 || up.Steps[0].Kind != KindManagedCluster {
		t.Fatalf("ACNS update plan: %+v", up.Steps)
	}
	apply(up)
	mc := current()
	an := mc.Properties.NetworkProfile.AdvancedNetworking
	if an == nil || an.Security == nil || !*an.Security.Enabled || *an.Security.AdvancedNetworkPolicies != armcontainerservice.AdvancedNetworkPoliciesFQDN {
		t.Fatalf("ACNS not applied: %+v", an)
	}
	if final, err := Plan(ctx, desired, mc); err != nil || len(final.Steps) != 0 {
		t.Fatalf("plan after the update: %v, %+v", err, final)
	}
}
