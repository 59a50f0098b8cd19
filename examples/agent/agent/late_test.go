package agent

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ceskit/ceskit/internal/crdinstall"
	"github.com/ceskit/ceskit/internal/testenv"
	"github.com/ceskit/ceskit/policy"
	policyv2 "github.com/ceskit/ceskit/policy/ciliumv2"
	"github.com/ceskit/ceskit/slicer"
)

// TestLatePolicyResources starts the agent on an API server that serves no Cilium policy
// resources (Cilium not installed yet), then installs their CRDs and creates a
// CiliumNetworkPolicy: the agent must find the resources on its next discovery round, watch them,
// and apply the policy without a restart.
func TestLatePolicyResources(t *testing.T) {
	base, err := baseCRDs()
	if err != nil {
		t.Fatal(err)
	}
	cp := testenv.New(t, testenv.Options{CRDs: base})
	a := startAgent(t, cp.Config, "nd-late", Config{
		DiscoveryInterval: time.Second,
		Watcher:           slicer.WatcherConfig{HeartbeatLease: "-"},
		Logger:            testLogger(t),
	})
	eventually(t, "agent ready without the policy resources", func() string {
		st := a.Status()
		if !st.Ready || !strings.HasPrefix(st.PolicySources[resCNP], "not served") || !strings.HasPrefix(st.PolicySources[resCCNP], "not served") {
			return fmt.Sprintf("ready=%t sources=%v", st.Ready, st.PolicySources)
		}
		return ""
	})

	pols, err := policyCRDs()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := crdinstall.Install(ctx, cp.Config, pols); err != nil {
		t.Fatal(err)
	}
	objs, err := policy.DecodeObjects([]byte(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: late, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: db}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: web}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := newPolicyClient(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.cnps("default").Create(ctx, objs[0].(*policyv2.CiliumNetworkPolicy), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the late CiliumNetworkPolicy applied", func() string {
		st := a.Status()
		if st.PolicySources[resCNP] != "watching" || st.PolicySources[resCCNP] != "watching" || st.Policies != 1 {
			return fmt.Sprintf("sources=%v policies=%d", st.PolicySources, st.Policies)
		}
		return ""
	})
}
