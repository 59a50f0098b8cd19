package azure

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	azlog "github.com/Azure/azure-sdk-for-go/sdk/azcore/log"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v8"
	csfake "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerservice/armcontainerservice/v8/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9"
	netfake "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v9/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
	resfake "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3/fake"
	"github.com/google/go-cmp/cmp"
)

const testSub = "00000000-0000-0000-0000-00000000cafe"

func rgID(rg string) string { return "/subscriptions/" + testSub + "/resourceGroups/" + rg }
func vnetID(rg, name string) string {
	return rgID(rg) + "/providers/Microsoft.Network/virtualNetworks/" + name
}
func subnetID(rg, vnet, name string) string { return vnetID(rg, vnet) + "/subnets/" + name }
func mcID(rg, name string) string {
	return rgID(rg) + "/providers/Microsoft.ContainerService/managedClusters/" + name
}
func poolID(rg, cluster, name string) string { return mcID(rg, cluster) + "/agentPools/" + name }

// fakeAzure is a stateful, in-memory Azure behind the SDK's fake servers: what is PUT is
// stored (with provisioningState Succeeded) and returned by GET.
type fakeAzure struct {
	mu        sync.Mutex
	resources map[string][]byte // lower(resource ID) → JSON of the SDK model
	writes    map[string]int    // lower(resource ID) → write calls that reached the fake
	// polls is how many non-terminal responses each long-running write returns.
	polls int
	// failWrite injects a failure into the fake's write of a resource (lower(ID)).
	failWrite map[string]func(*azfake.ErrorResponder)
	// failTerminal makes a resource's write operation end in failure (lower(ID)).
	failTerminal map[string]fakeErr
}

type fakeErr struct {
	status int
	code   string
}

func newFakeAzure(polls int) *fakeAzure {
	return &fakeAzure{
		resources:    map[string][]byte{},
		writes:       map[string]int{},
		polls:        polls,
		failWrite:    map[string]func(*azfake.ErrorResponder){},
		failTerminal: map[string]fakeErr{},
	}
}

func (f *fakeAzure) put(id string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resources[strings.ToLower(id)] = b
}

func (f *fakeAzure) get(id string, v any) bool {
	f.mu.Lock()
	b, ok := f.resources[strings.ToLower(id)]
	f.mu.Unlock()
	if !ok {
		return false
	}
	if err := json.Unmarshal(b, v); err != nil {
		panic(err)
	}
	return true
}

func (f *fakeAzure) remove(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.resources, strings.ToLower(id))
}

// write records a write and reports whether it is to fail (errResp then set).
func (f *fakeAzure) write(id string, errResp *azfake.ErrorResponder) (state string, fail bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := strings.ToLower(id)
	f.writes[key]++
	if fn, ok := f.failWrite[key]; ok {
		fn(errResp)
		return "", true
	}
	if _, ok := f.failTerminal[key]; ok {
		return "Failed", false
	}
	return "Succeeded", false
}

func (f *fakeAzure) totalWrites() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.writes {
		n += c
	}
	return n
}

func (f *fakeAzure) writesTo(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writes[strings.ToLower(id)]
}

func lroResponse[T any](f *fakeAzure, id string, resp *azfake.PollerResponder[T], nonTerminal int, result T) {
	for range f.polls {
		resp.AddNonTerminalResponse(nonTerminal, nil)
	}
	f.mu.Lock()
	te, failed := f.failTerminal[strings.ToLower(id)]
	f.mu.Unlock()
	if failed {
		resp.SetTerminalError(te.status, te.code)
		return
	}
	resp.SetTerminalResponse(http.StatusOK, result, nil)
}

func (f *fakeAzure) resourceGroups() resfake.ResourceGroupsServer {
	return resfake.ResourceGroupsServer{
		Get: func(_ context.Context, rg string, _ *armresources.ResourceGroupsClientGetOptions) (resp azfake.Responder[armresources.ResourceGroupsClientGetResponse], errResp azfake.ErrorResponder) {
			var m armresources.ResourceGroup
			if !f.get(rgID(rg), &m) {
				errResp.SetResponseError(http.StatusNotFound, "ResourceGroupNotFound")
				return
			}
			resp.SetResponse(http.StatusOK, armresources.ResourceGroupsClientGetResponse{ResourceGroup: m}, nil)
			return
		},
		CreateOrUpdate: func(_ context.Context, rg string, m armresources.ResourceGroup, _ *armresources.ResourceGroupsClientCreateOrUpdateOptions) (resp azfake.Responder[armresources.ResourceGroupsClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
			id := rgID(rg)
			state, fail := f.write(id, &errResp)
			if fail {
				return
			}
			m.ID, m.Name, m.Type = to.Ptr(id), to.Ptr(rg), to.Ptr("Microsoft.Resources/resourceGroups")
			m.Properties = &armresources.ResourceGroupProperties{ProvisioningState: to.Ptr(state)}
			f.put(id, m)
			resp.SetResponse(http.StatusCreated, armresources.ResourceGroupsClientCreateOrUpdateResponse{ResourceGroup: m}, nil)
			return
		},
	}
}

func (f *fakeAzure) virtualNetworks() netfake.VirtualNetworksServer {
	return netfake.VirtualNetworksServer{
		Get: func(_ context.Context, rg, name string, _ *armnetwork.VirtualNetworksClientGetOptions) (resp azfake.Responder[armnetwork.VirtualNetworksClientGetResponse], errResp azfake.ErrorResponder) {
			var m armnetwork.VirtualNetwork
			if !f.get(vnetID(rg, name), &m) {
				errResp.SetResponseError(http.StatusNotFound, "ResourceNotFound")
				return
			}
			resp.SetResponse(http.StatusOK, armnetwork.VirtualNetworksClientGetResponse{VirtualNetwork: m}, nil)
			return
		},
		BeginCreateOrUpdate: func(_ context.Context, rg, name string, m armnetwork.VirtualNetwork, _ *armnetwork.VirtualNetworksClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armnetwork.VirtualNetworksClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
			id := vnetID(rg, name)
			state, fail := f.write(id, &errResp)
			if fail {
				return
			}
			m.ID, m.Name, m.Type = to.Ptr(id), to.Ptr(name), to.Ptr("Microsoft.Network/virtualNetworks")
			if m.Properties == nil {
				m.Properties = &armnetwork.VirtualNetworkPropertiesFormat{}
			}
			ps := armnetwork.ProvisioningState(state)
			m.Properties.ProvisioningState = &ps
			for _, s := range m.Properties.Subnets {
				s.ID = to.Ptr(subnetID(rg, name, *s.Name))
				if s.Properties == nil {
					s.Properties = &armnetwork.SubnetPropertiesFormat{}
				}
				s.Properties.ProvisioningState = &ps
			}
			f.put(id, m)
			lroResponse(f, id, &resp, http.StatusCreated, armnetwork.VirtualNetworksClientCreateOrUpdateResponse{VirtualNetwork: m})
			return
		},
	}
}

func (f *fakeAzure) managedClusters() csfake.ManagedClustersServer {
	return csfake.ManagedClustersServer{
		Get: func(_ context.Context, rg, name string, _ *armcontainerservice.ManagedClustersClientGetOptions) (resp azfake.Responder[armcontainerservice.ManagedClustersClientGetResponse], errResp azfake.ErrorResponder) {
			var m armcontainerservice.ManagedCluster
			if !f.get(mcID(rg, name), &m) {
				errResp.SetResponseError(http.StatusNotFound, "ResourceNotFound")
				return
			}
			resp.SetResponse(http.StatusOK, armcontainerservice.ManagedClustersClientGetResponse{ManagedCluster: m}, nil)
			return
		},
		BeginCreateOrUpdate: func(_ context.Context, rg, name string, m armcontainerservice.ManagedCluster, _ *armcontainerservice.ManagedClustersClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armcontainerservice.ManagedClustersClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
			id := mcID(rg, name)
			state, fail := f.write(id, &errResp)
			if fail {
				return
			}
			m.ID, m.Name, m.Type = to.Ptr(id), to.Ptr(name), to.Ptr("Microsoft.ContainerService/ManagedClusters")
			if m.Properties == nil {
				m.Properties = &armcontainerservice.ManagedClusterProperties{}
			}
			m.Properties.ProvisioningState = to.Ptr(state)
			m.Properties.Fqdn = to.Ptr(name + "-dns.hcp.eastus2.azmk8s.io")
			// Like AKS, never return secrets.
			if m.Properties.WindowsProfile != nil {
				m.Properties.WindowsProfile.AdminPassword = nil
			}
			if m.Properties.ServicePrincipalProfile != nil {
				m.Properties.ServicePrincipalProfile.Secret = nil
			}
			f.put(id, m)
			lroResponse(f, id, &resp, http.StatusCreated, armcontainerservice.ManagedClustersClientCreateOrUpdateResponse{ManagedCluster: m})
			return
		},
	}
}

func (f *fakeAzure) agentPools() csfake.AgentPoolsServer {
	return csfake.AgentPoolsServer{
		Get: func(_ context.Context, rg, cluster, name string, _ *armcontainerservice.AgentPoolsClientGetOptions) (resp azfake.Responder[armcontainerservice.AgentPoolsClientGetResponse], errResp azfake.ErrorResponder) {
			var m armcontainerservice.AgentPool
			if !f.get(poolID(rg, cluster, name), &m) {
				errResp.SetResponseError(http.StatusNotFound, "ResourceNotFound")
				return
			}
			resp.SetResponse(http.StatusOK, armcontainerservice.AgentPoolsClientGetResponse{AgentPool: m}, nil)
			return
		},
		BeginCreateOrUpdate: func(_ context.Context, rg, cluster, name string, m armcontainerservice.AgentPool, _ *armcontainerservice.AgentPoolsClientBeginCreateOrUpdateOptions) (resp azfake.PollerResponder[armcontainerservice.AgentPoolsClientCreateOrUpdateResponse], errResp azfake.ErrorResponder) {
			id := poolID(rg, cluster, name)
			state, fail := f.write(id, &errResp)
			if fail {
				return
			}
			m.ID, m.Name, m.Type = to.Ptr(id), to.Ptr(name), to.Ptr("Microsoft.ContainerService/managedClusters/agentPools")
			if m.Properties == nil {
				m.Properties = &armcontainerservice.ManagedClusterAgentPoolProfileProperties{}
			}
			m.Properties.ProvisioningState = to.Ptr(state)
			f.put(id, m)
			lroResponse(f, id, &resp, http.StatusCreated, armcontainerservice.AgentPoolsClientCreateOrUpdateResponse{AgentPool: m})
			return
		},
		BeginDelete: func(_ context.Context, rg, cluster, name string, _ *armcontainerservice.AgentPoolsClientBeginDeleteOptions) (resp azfake.PollerResponder[armcontainerservice.AgentPoolsClientDeleteResponse], errResp azfake.ErrorResponder) {
			id := poolID(rg, cluster, name)
			if _, fail := f.write(id, &errResp); fail {
				return
			}
			f.remove(id)
			lroResponse(f, id, &resp, http.StatusAccepted, armcontainerservice.AgentPoolsClientDeleteResponse{})
			return
		},
	}
}

// router is the one transport behind all clients: it records every request, lets a test
// answer requests itself (throttling, errors, interruptions), and passes the rest to the
// fake server of the request's resource provider.
type router struct {
	cs, net, res policy.Transporter

	mu       sync.Mutex
	requests []recorded
	// hook, if set, sees each request first; a non-nil response or error answers it.
	hook func(req *http.Request) (*http.Response, error)
}

type recorded struct {
	method, path, apiVersion, auth string
}

func newRouter(f *fakeAzure) *router {
	return &router{
		cs: csfake.NewServerFactoryTransport(&csfake.ServerFactory{
			ManagedClustersServer: f.managedClusters(),
			AgentPoolsServer:      f.agentPools(),
		}),
		net: netfake.NewServerFactoryTransport(&netfake.ServerFactory{VirtualNetworksServer: f.virtualNetworks()}),
		res: resfake.NewServerFactoryTransport(&resfake.ServerFactory{ResourceGroupsServer: f.resourceGroups()}),
	}
}

func (r *router) Do(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.requests = append(r.requests, recorded{
		method:     req.Method,
		path:       req.URL.Path,
		apiVersion: req.URL.Query().Get("api-version"),
		auth:       req.Header.Get("Authorization"),
	})
	hook := r.hook
	r.mu.Unlock()
	if hook != nil {
		if resp, err := hook(req); resp != nil || err != nil {
			return resp, err
		}
	}
	// The generated fake transports (v8.2.0, v9.0.0, v3.0.1) panic with "send on closed
	// channel" when a request's context ends while they dispatch it: answer an ended context
	// here, and hand them a context that cannot end.
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	req = req.WithContext(context.WithoutCancel(req.Context()))
	p := strings.ToLower(req.URL.Path)
	switch {
	case strings.Contains(p, "/providers/microsoft.containerservice/"):
		return r.cs.Do(req)
	case strings.Contains(p, "/providers/microsoft.network/"):
		return r.net.Do(req)
	default:
		return r.res.Do(req)
	}
}

func (r *router) setHook(h func(req *http.Request) (*http.Response, error)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hook = h
}

// count returns how many requests with method were sent to path (any case); path ""
// matches all, a path ending in "*" is a prefix.
func (r *router) count(method, path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, q := range r.requests {
		if method != "" && q.method != method {
			continue
		}
		if path != "" {
			if pre, ok := strings.CutSuffix(path, "*"); ok {
				if !strings.HasPrefix(strings.ToLower(q.path), strings.ToLower(pre)) {
					continue
				}
			} else if !strings.EqualFold(q.path, path) {
				continue
			}
		}
		n++
	}
	return n
}

func (r *router) polls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, q := range r.requests {
		if strings.HasSuffix(q.path, "/get/fake/status") {
			n++
		}
	}
	return n
}

func (r *router) snapshot() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.requests)
}

// armError is an ARM error response, as Azure sends it.
func armError(req *http.Request, status int, code, message string, header http.Header) *http.Response {
	body := fmt.Sprintf(`{"error":{"code":%q,"message":%q}}`, code, message)
	h := http.Header{"Content-Type": {"application/json"}, "X-Ms-Error-Code": {code}}
	for k, v := range header {
		h[k] = v
	}
	return &http.Response{
		StatusCode:    status,
		Status:        fmt.Sprintf("%d %s", status, http.StatusText(status)),
		Proto:         "HTTP/1.1",
		Header:        h,
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

type testEnv struct {
	fake    *fakeAzure
	router  *router
	clients *Clients
	store   *MemoryResumeStore
}

func newTestEnv(t *testing.T, polls int) *testEnv {
	t.Helper()
	f := newFakeAzure(polls)
	rt := newRouter(f)
	return &testEnv{fake: f, router: rt, clients: newTestClients(t, rt, nil, nil), store: &MemoryResumeStore{}}
}

func newTestClients(t *testing.T, rt *router, cred azcore.TokenCredential, opts *arm.ClientOptions) *Clients {
	t.Helper()
	if cred == nil {
		cred = &azfake.TokenCredential{}
	}
	var o arm.ClientOptions
	if opts != nil {
		o = *opts
	}
	o.Transport = rt
	c, err := NewClients(testSub, cred, &o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *testEnv) applier() *Applier {
	return &Applier{Clients: e.clients, Store: e.store, PollFrequency: time.Millisecond}
}

func mustJSON(t testing.TB, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rgStep(t testing.TB, rg string) Step {
	return Step{
		Kind: KindResourceGroup, ResourceID: rgID(rg), Method: "PUT", APIVersion: "2025-04-01",
		Body: mustJSON(t, armresources.ResourceGroup{Location: to.Ptr("eastus2"), Tags: map[string]*string{"owner": to.Ptr("ceskit")}}),
	}
}

func vnetStep(t testing.TB, rg, name string, subnets map[string]string, delegate ...string) Step {
	v := armnetwork.VirtualNetwork{
		Location: to.Ptr("eastus2"),
		Properties: &armnetwork.VirtualNetworkPropertiesFormat{
			AddressSpace: &armnetwork.AddressSpace{AddressPrefixes: []*string{to.Ptr("10.0.0.0/8")}},
		},
	}
	names := make([]string, 0, len(subnets))
	for n := range subnets {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		s := &armnetwork.Subnet{Name: to.Ptr(n), Properties: &armnetwork.SubnetPropertiesFormat{AddressPrefix: to.Ptr(subnets[n])}}
		if slices.Contains(delegate, n) {
			s.Properties.Delegations = []*armnetwork.Delegation{{
				Name:       to.Ptr("aks"),
				Properties: &armnetwork.ServiceDelegationPropertiesFormat{ServiceName: to.Ptr("Microsoft.ContainerService/managedClusters")},
			}}
		}
		v.Properties.Subnets = append(v.Properties.Subnets, s)
	}
	return Step{Kind: KindVirtualNetwork, ResourceID: vnetID(rg, name), Method: "PUT", APIVersion: "2025-05-01", Body: mustJSON(t, v)}
}

func ciliumProfile(model NetworkModel) *armcontainerservice.NetworkProfile {
	np := &armcontainerservice.NetworkProfile{
		NetworkPlugin:    to.Ptr(armcontainerservice.NetworkPluginAzure),
		NetworkDataplane: to.Ptr(armcontainerservice.NetworkDataplaneCilium),
		NetworkPolicy:    to.Ptr(armcontainerservice.NetworkPolicyCilium),
		ServiceCidr:      to.Ptr("10.0.0.0/16"),
		DNSServiceIP:     to.Ptr("10.0.0.10"),
	}
	if model == ModelOverlay {
		np.NetworkPluginMode = to.Ptr(armcontainerservice.NetworkPluginModeOverlay)
		np.PodCidr = to.Ptr("192.168.0.0/16")
	}
	return np
}

func pool(name string, mode armcontainerservice.AgentPoolMode, nodeSubnet, podSubnet string) *armcontainerservice.ManagedClusterAgentPoolProfile {
	p := &armcontainerservice.ManagedClusterAgentPoolProfile{
		Name: to.Ptr(name), Mode: to.Ptr(mode), Count: to.Ptr[int32](2), VMSize: to.Ptr("Standard_D4s_v5"),
		OSType: to.Ptr(armcontainerservice.OSTypeLinux), MaxPods: to.Ptr[int32](250),
	}
	if nodeSubnet != "" {
		p.VnetSubnetID = to.Ptr(nodeSubnet)
	}
	if podSubnet != "" {
		p.PodSubnetID = to.Ptr(podSubnet)
	}
	return p
}

func mcBody(np *armcontainerservice.NetworkProfile, pools ...*armcontainerservice.ManagedClusterAgentPoolProfile) armcontainerservice.ManagedCluster {
	return armcontainerservice.ManagedCluster{
		Location: to.Ptr("eastus2"),
		Identity: &armcontainerservice.ManagedClusterIdentity{Type: to.Ptr(armcontainerservice.ResourceIdentityTypeSystemAssigned)},
		Properties: &armcontainerservice.ManagedClusterProperties{
			DNSPrefix: to.Ptr("c1"), KubernetesVersion: to.Ptr("1.33"),
			AgentPoolProfiles: pools,
			NetworkProfile:    np,
		},
	}
}

func mcStep(t testing.TB, rg, name string, mc armcontainerservice.ManagedCluster) Step {
	return Step{Kind: KindManagedCluster, ResourceID: mcID(rg, name), Method: "PUT", APIVersion: "2025-10-01", Body: mustJSON(t, mc)}
}

func poolStep(t testing.TB, rg, cluster string, p *armcontainerservice.ManagedClusterAgentPoolProfile) Step {
	ap := armcontainerservice.AgentPool{Properties: &armcontainerservice.ManagedClusterAgentPoolProfileProperties{
		Mode: p.Mode, Count: p.Count, VMSize: p.VMSize, OSType: p.OSType, MaxPods: p.MaxPods,
		VnetSubnetID: p.VnetSubnetID, PodSubnetID: p.PodSubnetID,
	}}
	return Step{Kind: KindAgentPool, ResourceID: poolID(rg, cluster, *p.Name), Method: "PUT", APIVersion: "2025-10-01", Body: mustJSON(t, ap)}
}

// createPlan is a hand-made plan creating a cluster in model.
func createPlan(t testing.TB, model NetworkModel) *ClusterPlan {
	const rg, name, vnet = "rg1", "c1", "vnet1"
	p := &ClusterPlan{Cluster: mcID(rg, name), Steps: []Step{rgStep(t, rg)}}
	switch model {
	case ModelOverlay:
		p.Steps = append(p.Steps, mcStep(t, rg, name, mcBody(ciliumProfile(model), pool("system", armcontainerservice.AgentPoolModeSystem, "", ""))))
	case ModelPodSubnet:
		p.Steps = append(p.Steps,
			vnetStep(t, rg, vnet, map[string]string{"nodes": "10.240.0.0/16", "pods": "10.241.0.0/16"}, "pods"),
			mcStep(t, rg, name, mcBody(ciliumProfile(model),
				pool("system", armcontainerservice.AgentPoolModeSystem, subnetID(rg, vnet, "nodes"), subnetID(rg, vnet, "pods")))),
			poolStep(t, rg, name, pool("user1", armcontainerservice.AgentPoolModeUser, subnetID(rg, vnet, "nodes"), subnetID(rg, vnet, "pods"))),
		)
	case ModelNodeSubnet:
		p.Steps = append(p.Steps,
			vnetStep(t, rg, vnet, map[string]string{"nodes": "10.240.0.0/16"}),
			mcStep(t, rg, name, mcBody(ciliumProfile(model), pool("system", armcontainerservice.AgentPoolModeSystem, subnetID(rg, vnet, "nodes"), ""))),
		)
	default:
		t.Fatalf("no plan for model %q", model)
	}
	return p
}

func outcomes(r *ApplyResult) []string {
	var out []string
	if r == nil {
		return out
	}
	for _, s := range r.Steps {
		out = append(out, string(s.Kind)+" "+string(s.Outcome))
	}
	return out
}

func TestApplyCreateEachModel(t *testing.T) {
	tests := []struct {
		model NetworkModel
		want  []string
	}{
		{ModelOverlay, []string{"ResourceGroup created", "ManagedCluster created"}},
		{ModelPodSubnet, []string{"ResourceGroup created", "VirtualNetwork created", "ManagedCluster created", "AgentPool created"}},
		{ModelNodeSubnet, []string{"ResourceGroup created", "VirtualNetwork created", "ManagedCluster created"}},
	}
	for _, tt := range tests {
		t.Run(string(tt.model), func(t *testing.T) {
			const polls = 2
			e := newTestEnv(t, polls)
			plan := createPlan(t, tt.model)
			var phases []string
			a := e.applier()
			a.OnProgress = func(p StepProgress) {
				if p.Kind == KindManagedCluster {
					phases = append(phases, string(p.Phase))
				}
				if p.Total != len(plan.Steps) {
					t.Errorf("progress Total = %d, want %d", p.Total, len(plan.Steps))
				}
			}
			res, err := a.Apply(t.Context(), plan)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, outcomes(res)); diff != "" {
				t.Errorf("outcomes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"started", "submitted", "done"}, phases); diff != "" {
				t.Errorf("ManagedCluster phases (-want +got):\n%s", diff)
			}
			if got := e.router.count(http.MethodPut, ""); got != len(plan.Steps) {
				t.Errorf("PUTs = %d, want %d", got, len(plan.Steps))
			}
			// Every long-running write was polled through its non-terminal responses.
			lros := len(plan.Steps) - 1 // all but the resource group
			if got := e.router.polls(); got != lros*polls {
				t.Errorf("poll requests = %d, want %d", got, lros*polls)
			}
			if e.store.Len() != 0 {
				t.Errorf("resume store holds %d tokens after a complete apply", e.store.Len())
			}
			for _, s := range res.Steps {
				if s.Duration <= 0 {
					t.Errorf("step %d: duration %v", s.Index, s.Duration)
				}
			}
			var mc armcontainerservice.ManagedCluster
			if !e.fake.get(mcID("rg1", "c1"), &mc) {
				t.Fatal("cluster not stored")
			}
			np := mc.Properties.NetworkProfile
			if *np.NetworkDataplane != armcontainerservice.NetworkDataplaneCilium || *np.NetworkPolicy != armcontainerservice.NetworkPolicyCilium {
				t.Errorf("stored dataplane %v policy %v", *np.NetworkDataplane, *np.NetworkPolicy)
			}
			if (tt.model == ModelOverlay) != (np.NetworkPluginMode != nil) {
				t.Errorf("stored networkPluginMode %v for model %s", np.NetworkPluginMode, tt.model)
			}

			// Re-applying the applied plan changes nothing: no writes at all.
			before := e.router.count(http.MethodPut, "")
			res, err = e.applier().Apply(t.Context(), plan)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range res.Steps {
				if s.Outcome != OutcomeUnchanged {
					t.Errorf("re-apply: step %d %s: %s, want unchanged", s.Index, s.Kind, s.Outcome)
				}
			}
			if res.Changed() {
				t.Error("re-apply: Changed() = true")
			}
			if got := e.router.count(http.MethodPut, "") - before; got != 0 {
				t.Errorf("re-apply sent %d PUTs, want 0", got)
			}
		})
	}
}

func TestApplyUpdateToCilium(t *testing.T) {
	e := newTestEnv(t, 1)
	// An existing overlay cluster on the Azure dataplane, without network policy.
	old := mcBody(&armcontainerservice.NetworkProfile{
		NetworkPlugin:     to.Ptr(armcontainerservice.NetworkPluginAzure),
		NetworkPluginMode: to.Ptr(armcontainerservice.NetworkPluginModeOverlay),
		NetworkDataplane:  to.Ptr(armcontainerservice.NetworkDataplaneAzure),
		NetworkPolicy:     to.Ptr(armcontainerservice.NetworkPolicyNone),
		PodCidr:           to.Ptr("192.168.0.0/16"),
		ServiceCidr:       to.Ptr("10.0.0.0/16"),
		DNSServiceIP:      to.Ptr("10.0.0.10"),
	}, pool("system", armcontainerservice.AgentPoolModeSystem, "", ""))
	old.ID, old.Name = to.Ptr(mcID("rg1", "c1")), to.Ptr("c1")
	old.Properties.ProvisioningState = to.Ptr("Succeeded")
	old.Properties.CurrentKubernetesVersion = to.Ptr("1.33.2")
	e.fake.put(mcID("rg1", "c1"), old)

	plan := &ClusterPlan{Cluster: mcID("rg1", "c1"), Steps: []Step{
		mcStep(t, "rg1", "c1", mcBody(ciliumProfile(ModelOverlay), pool("system", armcontainerservice.AgentPoolModeSystem, "", ""))),
	}}
	res, err := e.applier().Apply(t.Context(), plan)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"ManagedCluster updated"}, outcomes(res)); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	var mc armcontainerservice.ManagedCluster
	e.fake.get(mcID("rg1", "c1"), &mc)
	if got := *mc.Properties.NetworkProfile.NetworkDataplane; got != armcontainerservice.NetworkDataplaneCilium {
		t.Errorf("dataplane = %s, want cilium", got)
	}
	if e.router.polls() != 1 {
		t.Errorf("polls = %d, want 1", e.router.polls())
	}
	res, err = e.applier().Apply(t.Context(), plan)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"ManagedCluster unchanged"}, outcomes(res)); diff != "" {
		t.Errorf("re-apply outcomes (-want +got):\n%s", diff)
	}
	if got := e.fake.writesTo(mcID("rg1", "c1")); got != 1 {
		t.Errorf("cluster writes = %d, want 1", got)
	}
}

func TestApplyReappliesUnfinishedResource(t *testing.T) {
	// A resource matching the body but not Succeeded (an earlier write failed) is written
	// again rather than skipped.
	e := newTestEnv(t, 0)
	plan := createPlan(t, ModelOverlay)
	if _, err := e.applier().Apply(t.Context(), plan); err != nil {
		t.Fatal(err)
	}
	var mc armcontainerservice.ManagedCluster
	e.fake.get(mcID("rg1", "c1"), &mc)
	mc.Properties.ProvisioningState = to.Ptr("Failed")
	e.fake.put(mcID("rg1", "c1"), mc)
	res, err := e.applier().Apply(t.Context(), plan)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"ResourceGroup unchanged", "ManagedCluster updated"}, outcomes(res)); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
}

func TestApplyResumesAfterInterruption(t *testing.T) {
	e := newTestEnv(t, 3)
	plan := createPlan(t, ModelPodSubnet)
	cluster := mcID("rg1", "c1")

	// Interrupt the first apply while the cluster's operation is running: cancel the context
	// on the first poll of the cluster's operation.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	e.router.setHook(func(req *http.Request) (*http.Response, error) {
		if strings.EqualFold(req.URL.Path, cluster+"/get/fake/status") {
			cancel()
			return nil, req.Context().Err()
		}
		return nil, nil
	})
	res, err := e.applier().Apply(ctx, plan)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted apply: err = %v, want context.Canceled", err)
	}
	var se *StepError
	if !errors.As(err, &se) || se.Kind != KindManagedCluster || se.Op != "poll" {
		t.Fatalf("interrupted apply: err = %#v, want a StepError for the cluster's poll", err)
	}
	if diff := cmp.Diff([]string{"ResourceGroup created", "VirtualNetwork created", "ManagedCluster failed"}, outcomes(res)); diff != "" {
		t.Errorf("interrupted outcomes (-want +got):\n%s", diff)
	}
	if e.store.Len() != 1 {
		t.Fatalf("resume store holds %d tokens, want the cluster's 1", e.store.Len())
	}
	e.router.setHook(nil)
	clusterPUTs := e.router.count(http.MethodPut, cluster)
	pollsBefore := e.router.polls()

	// A new Applier (new clients, same store) resumes the cluster's operation.
	a := &Applier{Clients: newTestClients(t, e.router, nil, nil), Store: e.store, PollFrequency: time.Millisecond}
	res, err = a.Apply(t.Context(), plan)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ResourceGroup unchanged", "VirtualNetwork unchanged", "ManagedCluster resumed", "AgentPool created"}
	if diff := cmp.Diff(want, outcomes(res)); diff != "" {
		t.Errorf("resumed outcomes (-want +got):\n%s", diff)
	}
	if got := e.router.count(http.MethodPut, cluster); got != clusterPUTs {
		t.Errorf("cluster PUTs after resume = %d, want %d (no second PUT)", got, clusterPUTs)
	}
	if got := e.fake.writesTo(cluster); got != 1 {
		t.Errorf("cluster writes reaching the fake = %d, want 1", got)
	}
	if e.router.polls() <= pollsBefore {
		t.Error("the resumed operation was not polled")
	}
	if e.store.Len() != 0 {
		t.Errorf("resume store holds %d tokens after the resumed apply", e.store.Len())
	}
}

func TestApplyResumesFromFileStore(t *testing.T) {
	e := newTestEnv(t, 2)
	store := FileResumeStore(filepath.Join(t.TempDir(), "resume"))
	plan := createPlan(t, ModelOverlay)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	a := &Applier{Clients: e.clients, Store: store, PollFrequency: time.Millisecond,
		OnProgress: func(p StepProgress) {
			if p.Phase == PhaseSubmitted {
				cancel() // the token is saved right after this
			}
		}}
	if _, err := a.Apply(ctx, plan); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	files, _ := os.ReadDir(string(store))
	if len(files) != 1 {
		t.Fatalf("store has %d files, want 1", len(files))
	}
	a = &Applier{Clients: newTestClients(t, e.router, nil, nil), Store: store, PollFrequency: time.Millisecond}
	res, err := a.Apply(t.Context(), plan)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"ResourceGroup unchanged", "ManagedCluster resumed"}, outcomes(res)); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	if got := e.fake.writesTo(mcID("rg1", "c1")); got != 1 {
		t.Errorf("cluster writes = %d, want 1", got)
	}
	if files, _ := os.ReadDir(string(store)); len(files) != 0 {
		t.Errorf("store has %d files after the resumed apply", len(files))
	}
}

func TestApplyDiscardsBadResumeTokens(t *testing.T) {
	plan := createPlan(t, ModelOverlay)
	key := resumeKey(plan.Steps[1])

	t.Run("corrupt file", func(t *testing.T) {
		e := newTestEnv(t, 1)
		store := FileResumeStore(t.TempDir())
		if err := os.WriteFile(filepath.Join(string(store), key+".json"), []byte("{not json"), 0o600); err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		a := &Applier{Clients: e.clients, Store: store, PollFrequency: time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
		res, err := a.Apply(t.Context(), plan)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"ResourceGroup created", "ManagedCluster created"}, outcomes(res)); diff != "" {
			t.Errorf("outcomes (-want +got):\n%s", diff)
		}
		if !strings.Contains(logs.String(), "discarding corrupt resume token") {
			t.Errorf("no warning logged:\n%s", logs.String())
		}
		if _, ok, err := store.Load(key); ok || err != nil {
			t.Errorf("after apply: Load = ok %v, err %v; want the token gone", ok, err)
		}
	})
	t.Run("unusable token", func(t *testing.T) {
		e := newTestEnv(t, 1)
		if err := e.store.Save(key, `{"type":"nonsense"}`); err != nil {
			t.Fatal(err)
		}
		res, err := e.applier().Apply(t.Context(), plan)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"ResourceGroup created", "ManagedCluster created"}, outcomes(res)); diff != "" {
			t.Errorf("outcomes (-want +got):\n%s", diff)
		}
		if e.store.Len() != 0 {
			t.Errorf("store holds %d tokens", e.store.Len())
		}
	})
}

func TestApplyErrors(t *testing.T) {
	cluster, user := mcID("rg1", "c1"), poolID("rg1", "c1", "user1")
	tests := []struct {
		name string
		// setup injects the failure.
		setup       func(e *testEnv)
		wantStep    int // index of the failing step
		wantOp      string
		wantStatus  int
		wantCode    string
		wantMessage string
	}{
		{
			name: "400 from the fake server",
			setup: func(e *testEnv) {
				e.fake.failWrite[strings.ToLower(cluster)] = func(er *azfake.ErrorResponder) {
					er.SetResponseError(http.StatusBadRequest, "CiliumDataplaneRequiresNetworkPolicyCilium")
				}
			},
			wantStep: 2, wantOp: "create or update", wantStatus: 400, wantCode: "CiliumDataplaneRequiresNetworkPolicyCilium",
		},
		{
			name: "400 with AKS's message",
			setup: func(e *testEnv) {
				e.router.setHook(func(req *http.Request) (*http.Response, error) {
					if req.Method == http.MethodPut && strings.EqualFold(req.URL.Path, cluster) {
						return armError(req, http.StatusBadRequest, "CiliumDataplaneRequiresNetworkPolicyCilium",
							"Cilium dataplane requires network policy cilium.", nil), nil
					}
					return nil, nil
				})
			},
			wantStep: 2, wantOp: "create or update", wantStatus: 400, wantCode: "CiliumDataplaneRequiresNetworkPolicyCilium",
			wantMessage: "Cilium dataplane requires network policy cilium.",
		},
		{
			name: "409 OperationNotAllowed",
			setup: func(e *testEnv) {
				e.router.setHook(func(req *http.Request) (*http.Response, error) {
					if req.Method == http.MethodPut && strings.EqualFold(req.URL.Path, user) {
						return armError(req, http.StatusConflict, "OperationNotAllowed",
							"Operation is not allowed because there's an in progress update managed cluster operation.", nil), nil
					}
					return nil, nil
				})
			},
			wantStep: 3, wantOp: "create or update", wantStatus: 409, wantCode: "OperationNotAllowed",
			wantMessage: "in progress update managed cluster operation",
		},
		{
			name: "409 Conflict from the fake server",
			setup: func(e *testEnv) {
				e.fake.failWrite[strings.ToLower(user)] = func(er *azfake.ErrorResponder) {
					er.SetResponseError(http.StatusConflict, "Conflict")
				}
			},
			wantStep: 3, wantOp: "create or update", wantStatus: 409, wantCode: "Conflict",
		},
		{
			name: "operation fails after being accepted",
			setup: func(e *testEnv) {
				e.fake.failTerminal[strings.ToLower(cluster)] = fakeErr{http.StatusBadRequest, "InvalidPodSubnet"}
			},
			wantStep: 2, wantOp: "poll", wantStatus: 400, wantCode: "InvalidPodSubnet",
		},
		{
			name: "read refused",
			setup: func(e *testEnv) {
				e.router.setHook(func(req *http.Request) (*http.Response, error) {
					if req.Method == http.MethodGet && strings.EqualFold(req.URL.Path, cluster) {
						return armError(req, http.StatusForbidden, "AuthorizationFailed", "The client does not have authorization.", nil), nil
					}
					return nil, nil
				})
			},
			wantStep: 2, wantOp: "read", wantStatus: 403, wantCode: "AuthorizationFailed", wantMessage: "does not have authorization",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t, 1)
			tt.setup(e)
			plan := createPlan(t, ModelPodSubnet)
			var logs bytes.Buffer
			a := e.applier()
			a.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
			res, err := a.Apply(t.Context(), plan)
			if err == nil {
				t.Fatal("Apply succeeded")
			}
			var re *azcore.ResponseError
			if !errors.As(err, &re) {
				t.Fatalf("errors.As(*azcore.ResponseError) = false for %v", err)
			}
			if re.StatusCode != tt.wantStatus || re.ErrorCode != tt.wantCode {
				t.Errorf("ResponseError status %d code %q, want %d %q", re.StatusCode, re.ErrorCode, tt.wantStatus, tt.wantCode)
			}
			var se *StepError
			if !errors.As(err, &se) {
				t.Fatalf("errors.As(*StepError) = false for %v", err)
			}
			if se.Index != tt.wantStep || se.Op != tt.wantOp || se.ResourceID != plan.Steps[tt.wantStep].ResourceID {
				t.Errorf("StepError index %d op %q resource %s; want %d %q %s", se.Index, se.Op, se.ResourceID, tt.wantStep, tt.wantOp, plan.Steps[tt.wantStep].ResourceID)
			}
			msg := err.Error()
			for _, want := range []string{fmt.Sprintf("step %d/%d", tt.wantStep+1, len(plan.Steps)), plan.Steps[tt.wantStep].ResourceID, tt.wantCode, tt.wantMessage} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not contain %q", msg, want)
				}
			}
			if n := len(res.Steps); n != tt.wantStep+1 || res.Steps[n-1].Outcome != OutcomeFailed || !errors.Is(res.Steps[n-1].Err, err) {
				t.Errorf("result steps %v, want %d with the last failed", outcomes(res), tt.wantStep+1)
			}
			// Later steps were not attempted.
			for _, s := range plan.Steps[tt.wantStep+1:] {
				if n := e.router.count("", s.ResourceID); n != 0 {
					t.Errorf("%d requests for %s after the failed step", n, s.ResourceID)
				}
			}
			// The operation is over: no token to resume.
			if e.store.Len() != 0 {
				t.Errorf("store holds %d tokens", e.store.Len())
			}
			// The log names the code (and AKS's message).
			for _, want := range []string{`"msg":"step failed"`, `"code":"` + tt.wantCode + `"`, tt.wantMessage} {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("log lacks %q:\n%s", want, logs.String())
				}
			}
		})
	}
}

// throttle answers the first n requests matching method and path with 429 and
// retry-after-ms, and counts all matching requests; n < 0 throttles forever.
func throttle(method, path string, n int, retryAfterMS string) (hook func(*http.Request) (*http.Response, error), attempts func() int) {
	var mu sync.Mutex
	seen := 0
	hook = func(req *http.Request) (*http.Response, error) {
		if req.Method != method || !strings.EqualFold(req.URL.Path, path) {
			return nil, nil
		}
		mu.Lock()
		seen++
		s := seen
		mu.Unlock()
		if n >= 0 && s > n {
			return nil, nil
		}
		return armError(req, http.StatusTooManyRequests, "TooManyRequests", "Too many requests, retry later.",
			http.Header{"Retry-After-Ms": {retryAfterMS}}), nil
	}
	attempts = func() int {
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
	return hook, attempts
}

func TestApplyRetriesThrottling(t *testing.T) {
	cluster := mcID("rg1", "c1")

	t.Run("429 then success", func(t *testing.T) {
		e := newTestEnv(t, 1)
		hook, attempts := throttle(http.MethodPut, cluster, 2, "1")
		e.router.setHook(hook)
		res, err := e.applier().Apply(t.Context(), createPlan(t, ModelOverlay))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"ResourceGroup created", "ManagedCluster created"}, outcomes(res)); diff != "" {
			t.Errorf("outcomes (-want +got):\n%s", diff)
		}
		if attempts() != 3 {
			t.Errorf("cluster PUT attempts = %d, want 3", attempts())
		}
		if got := e.fake.writesTo(cluster); got != 1 {
			t.Errorf("cluster writes reaching the fake = %d, want 1", got)
		}
	})

	t.Run("always 429", func(t *testing.T) {
		e := newTestEnv(t, 1)
		hook, attempts := throttle(http.MethodGet, cluster, -1, "1")
		e.router.setHook(hook)
		_, err := e.applier().Apply(t.Context(), createPlan(t, ModelOverlay))
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusTooManyRequests || re.ErrorCode != "TooManyRequests" {
			t.Fatalf("err = %v, want an *azcore.ResponseError 429 TooManyRequests", err)
		}
		// NewClients' default: 5 retries.
		if want := int(DefaultRetryOptions().MaxRetries) + 1; attempts() != want {
			t.Errorf("cluster GET attempts = %d, want %d", attempts(), want)
		}
		if e.fake.writesTo(cluster) != 0 {
			t.Error("the cluster was written after a failed read")
		}
	})
}

func TestClientsRetryThrottling(t *testing.T) {
	cluster := mcID("rg1", "c1")
	f := newFakeAzure(0)
	f.put(cluster, mcBody(ciliumProfile(ModelOverlay)))

	t.Run("429 then success honours Retry-After", func(t *testing.T) {
		rt := newRouter(f)
		hook, attempts := throttle(http.MethodGet, cluster, 1, "50")
		rt.setHook(hook)
		c := newTestClients(t, rt, nil, nil)
		start := time.Now()
		resp, err := c.ManagedClusters.Get(t.Context(), "rg1", "c1", nil)
		if err != nil {
			t.Fatal(err)
		}
		// Retry-After-Ms 50 was honoured instead of the 2 s default backoff.
		if d := time.Since(start); d < 50*time.Millisecond || d > 1500*time.Millisecond {
			t.Errorf("call took %v; want the 50ms Retry-After", d)
		}
		if attempts() != 2 || *resp.Properties.DNSPrefix != "c1" {
			t.Errorf("attempts = %d, dnsPrefix %q", attempts(), *resp.Properties.DNSPrefix)
		}
	})
	t.Run("always 429", func(t *testing.T) {
		rt := newRouter(f)
		hook, attempts := throttle(http.MethodGet, cluster, -1, "1")
		rt.setHook(hook)
		c := newTestClients(t, rt, nil, &arm.ClientOptions{ClientOptions: policy.ClientOptions{Retry: policy.RetryOptions{MaxRetries: 2}}})
		_, err := c.ManagedClusters.Get(t.Context(), "rg1", "c1", nil)
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("err = %v, want an *azcore.ResponseError with status 429", err)
		}
		if attempts() != 3 {
			t.Errorf("attempts = %d, want 3 (MaxRetries 2)", attempts())
		}
	})
	t.Run("400 is not retried", func(t *testing.T) {
		rt := newRouter(f)
		var n int
		rt.setHook(func(req *http.Request) (*http.Response, error) {
			n++
			return armError(req, http.StatusBadRequest, "BadRequest", "no", nil), nil
		})
		c := newTestClients(t, rt, nil, nil)
		if _, err := c.ManagedClusters.Get(t.Context(), "rg1", "c1", nil); err == nil || n != 1 {
			t.Errorf("err = %v after %d attempts, want an error after 1", err, n)
		}
	})
}

func TestNewClientsOptions(t *testing.T) {
	if _, err := NewClients("", &azfake.TokenCredential{}, nil); err == nil {
		t.Error("empty subscription accepted")
	}
	if _, err := NewClients(testSub, nil, nil); err == nil {
		t.Error("nil credential accepted")
	}
	opts := &arm.ClientOptions{ClientOptions: policy.ClientOptions{
		Logging:         policy.LogOptions{IncludeBody: true},
		PerCallPolicies: []policy.Policy{},
	}}
	if _, err := NewClients(testSub, &azfake.TokenCredential{}, opts); err != nil {
		t.Fatal(err)
	}
	if !opts.Logging.IncludeBody || len(opts.PerCallPolicies) != 0 || opts.Retry.MaxRetries != 0 {
		t.Error("NewClients modified the caller's options")
	}
}

func TestApplyAPIVersion(t *testing.T) {
	e := newTestEnv(t, 1)
	plan := createPlan(t, ModelOverlay)
	plan.Steps[1].APIVersion = "2024-05-01"
	plan.Steps[0].APIVersion = ""
	if _, err := e.applier().Apply(t.Context(), plan); err != nil {
		t.Fatal(err)
	}
	for _, q := range e.router.snapshot() {
		var want string
		switch {
		case strings.HasSuffix(q.path, "/get/fake/status"):
			continue
		case strings.EqualFold(q.path, mcID("rg1", "c1")):
			want = "2024-05-01" // the step's
		case strings.EqualFold(q.path, rgID("rg1")):
			want = "2025-04-01" // the SDK's
		}
		if q.apiVersion != want {
			t.Errorf("%s %s: api-version %q, want %q", q.method, q.path, q.apiVersion, want)
		}
	}
}

func TestApplyDelete(t *testing.T) {
	e := newTestEnv(t, 2)
	id := poolID("rg1", "c1", "old")
	e.fake.put(id, armcontainerservice.AgentPool{Name: to.Ptr("old"), Properties: &armcontainerservice.ManagedClusterAgentPoolProfileProperties{Count: to.Ptr[int32](1)}})
	plan := &ClusterPlan{Cluster: mcID("rg1", "c1"), Steps: []Step{{Kind: KindAgentPool, ResourceID: id, Method: "DELETE", APIVersion: "2025-10-01"}}}
	res, err := e.applier().Apply(t.Context(), plan)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"AgentPool deleted"}, outcomes(res)); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	var ap armcontainerservice.AgentPool
	if e.fake.get(id, &ap) {
		t.Error("pool still stored")
	}
	res, err = e.applier().Apply(t.Context(), plan)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"AgentPool unchanged"}, outcomes(res)); diff != "" {
		t.Errorf("re-apply outcomes (-want +got):\n%s", diff)
	}
	if n := e.router.count(http.MethodDelete, ""); n != 1 {
		t.Errorf("DELETEs = %d, want 1", n)
	}
}

func TestApplyRejectsInvalidSteps(t *testing.T) {
	good := createPlan(t, ModelOverlay)
	tests := []struct {
		name string
		step func(s *Step)
		want string
	}{
		{"unknown kind", func(s *Step) { s.Kind = "Subnet" }, `unknown kind "Subnet"`},
		{"PATCH", func(s *Step) { s.Method = "PATCH" }, `method "PATCH"`},
		{"wrong resource type", func(s *Step) { s.ResourceID = vnetID("rg1", "c1") }, "want Microsoft.ContainerService/managedClusters"},
		{"bad resource ID", func(s *Step) { s.ResourceID = "c1" }, "resourceId"},
		{"other subscription", func(s *Step) { s.ResourceID = strings.Replace(s.ResourceID, testSub, "other", 1) }, "subscription other"},
		{"empty body", func(s *Step) { s.Body = nil }, "body is empty"},
		{"body not JSON", func(s *Step) { s.Body = json.RawMessage(`{"location":`) }, "body"},
		{"field the SDK drops", func(s *Step) {
			s.Body = json.RawMessage(`{"location":"eastus2","properties":{"networkProfile":{"networkDataplane":"cilium","futureField":true}}}`)
		}, "properties.networkProfile.futureField"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t, 0)
			plan := &ClusterPlan{Cluster: good.Cluster, Steps: slices.Clone(good.Steps)}
			tt.step(&plan.Steps[1])
			res, err := e.applier().Apply(t.Context(), plan)
			if !errors.Is(err, ErrInvalidStep) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "step 2/2") {
				t.Errorf("err = %v, want ErrInvalidStep naming step 2/2 and %q", err, tt.want)
			}
			if res != nil {
				t.Errorf("result %v, want nil", outcomes(res))
			}
			if n := len(e.router.snapshot()); n != 0 {
				t.Errorf("%d requests sent for an invalid plan", n)
			}
		})
	}
	t.Run("nil plan", func(t *testing.T) {
		if _, err := (&Applier{Clients: &Clients{}}).Apply(t.Context(), nil); err == nil {
			t.Error("nil plan accepted")
		}
	})
	t.Run("nil clients", func(t *testing.T) {
		if _, err := (&Applier{}).Apply(t.Context(), good); err == nil {
			t.Error("nil Clients accepted")
		}
	})
	t.Run("missing client", func(t *testing.T) {
		_, err := (&Applier{Clients: &Clients{}}).Apply(t.Context(), good)
		if !errors.Is(err, ErrInvalidStep) || !strings.Contains(err.Error(), "Clients.ResourceGroups is nil") {
			t.Errorf("err = %v", err)
		}
	})
}

// sentinelCredential returns a token no log may contain.
type sentinelCredential struct{ token string }

func (c sentinelCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: c.token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestApplyLogsNoSecrets(t *testing.T) {
	const (
		password = "SENTINEL-windows-admin-password-7f3a"
		spSecret = "SENTINEL-sp-secret-91c2"
		sshKey   = "ssh-rsa AAAASENTINELKEYDATA0042 user@host"
	)
	creds := map[string]struct {
		cred  azcore.TokenCredential
		token string
	}{
		"azfake": {&azfake.TokenCredential{}, "fake_token"},
		"custom": {sentinelCredential{"SENTINEL-bearer-token-5d1e"}, "SENTINEL-bearer-token-5d1e"},
	}
	for name, c := range creds {
		t.Run(name, func(t *testing.T) {
			var mu sync.Mutex
			var sdkLog bytes.Buffer
			azlog.SetEvents() // all events
			azlog.SetListener(func(ev azlog.Event, msg string) {
				mu.Lock()
				defer mu.Unlock()
				fmt.Fprintf(&sdkLog, "[%s] %s\n", ev, msg)
			})
			t.Cleanup(func() { azlog.SetListener(nil) })

			f := newFakeAzure(2)
			rt := newRouter(f)
			// The caller asks for body logging; NewClients turns it off.
			clients := newTestClients(t, rt, c.cred, &arm.ClientOptions{ClientOptions: policy.ClientOptions{Logging: policy.LogOptions{IncludeBody: true}}})
			var appLog bytes.Buffer
			a := &Applier{
				Clients: clients, Store: &MemoryResumeStore{}, PollFrequency: time.Millisecond,
				Logger: slog.New(slog.NewTextHandler(&appLog, &slog.HandlerOptions{Level: slog.LevelDebug})),
			}
			mc := mcBody(ciliumProfile(ModelOverlay), pool("system", armcontainerservice.AgentPoolModeSystem, "", ""))
			mc.Properties.WindowsProfile = &armcontainerservice.ManagedClusterWindowsProfile{AdminUsername: to.Ptr("azureuser"), AdminPassword: to.Ptr(password)}
			mc.Properties.ServicePrincipalProfile = &armcontainerservice.ManagedClusterServicePrincipalProfile{ClientID: to.Ptr("msi"), Secret: to.Ptr(spSecret)}
			mc.Properties.LinuxProfile = &armcontainerservice.LinuxProfile{AdminUsername: to.Ptr("azureuser"),
				SSH: &armcontainerservice.SSHConfiguration{PublicKeys: []*armcontainerservice.SSHPublicKey{{KeyData: to.Ptr(sshKey)}}}}
			plan := &ClusterPlan{Cluster: mcID("rg1", "c1"), Steps: []Step{rgStep(t, "rg1"), mcStep(t, "rg1", "c1", mc)}}

			if _, err := a.Apply(t.Context(), plan); err != nil {
				t.Fatal(err)
			}
			// Apply again: unchanged, since the secrets AKS never returns are not compared.
			res, err := a.Apply(t.Context(), plan)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{"ResourceGroup unchanged", "ManagedCluster unchanged"}, outcomes(res)); diff != "" {
				t.Errorf("re-apply outcomes (-want +got):\n%s", diff)
			}
			// And a failing apply, whose error is logged.
			rt.setHook(func(req *http.Request) (*http.Response, error) {
				if req.Method == http.MethodPut {
					return armError(req, http.StatusBadRequest, "InvalidParameter", "bad windowsProfile", nil), nil
				}
				return nil, nil
			})
			f.remove(mcID("rg1", "c1"))
			_, err = a.Apply(t.Context(), plan)
			if err == nil {
				t.Fatal("failing apply succeeded")
			}

			// The token was really sent, so its absence from the logs means something.
			sent := false
			for _, q := range rt.snapshot() {
				sent = sent || q.auth == "Bearer "+c.token
			}
			if !sent {
				t.Fatal("the fake never saw the bearer token")
			}
			mu.Lock()
			captured := sdkLog.String() + appLog.String() + err.Error()
			mu.Unlock()
			if !strings.Contains(sdkLog.String(), "OUTGOING REQUEST") || !strings.Contains(appLog.String(), "step applied") {
				t.Fatalf("logs not captured:\n%s", captured)
			}
			for _, secret := range []string{c.token, password, spSecret, "SENTINELKEYDATA"} {
				if strings.Contains(captured, secret) {
					t.Errorf("logs contain secret %q:\n%s", secret, captured)
				}
			}
		})
	}
}

func TestSatisfies(t *testing.T) {
	mc := `{"location":"eastus2","tags":{"a":"1"},"properties":{"provisioningState":"Succeeded","fqdn":"x",
		"kubernetesVersion":"1.33","enableRBAC":true,
		"agentPoolProfiles":[{"name":"system","count":2,"vnetSubnetID":"/subscriptions/S/resourceGroups/RG/providers/Microsoft.Network/virtualNetworks/v/subnets/nodes"},{"name":"user","count":3}],
		"networkProfile":{"networkPlugin":"azure","podCidrs":["192.168.0.0/16"]}},
		"identity":{"type":"UserAssigned","principalId":"p","tenantId":"t",
		"userAssignedIdentities":{"/subscriptions/S/resourcegroups/RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1":{"principalId":"p1","clientId":"c1"}}}}`
	tests := []struct {
		name, want string
		ok         bool
		where      string
	}{
		{"empty body", `{}`, true, ""},
		{"subset", `{"location":"eastus2","properties":{"kubernetesVersion":"1.33"}}`, true, ""},
		{"location spelled out", `{"location":"East US 2"}`, true, ""},
		{"different value", `{"properties":{"kubernetesVersion":"1.34"}}`, false, "properties.kubernetesVersion"},
		{"missing field", `{"properties":{"dnsPrefix":"c1"}}`, false, "properties.dnsPrefix"},
		{"bool", `{"properties":{"enableRBAC":false}}`, false, "properties.enableRBAC"},
		{"tag differs", `{"tags":{"a":"2"}}`, false, "tags.a"},
		{"named array in another order, subset of elements", `{"properties":{"agentPoolProfiles":[{"name":"user","count":3},{"name":"system","count":2}]}}`, true, ""},
		{"named element differs", `{"properties":{"agentPoolProfiles":[{"name":"user","count":4}]}}`, false, "properties.agentPoolProfiles[user].count"},
		{"named element missing", `{"properties":{"agentPoolProfiles":[{"name":"gpu","count":1}]}}`, false, "properties.agentPoolProfiles[gpu]"},
		{"resource ID case", `{"properties":{"agentPoolProfiles":[{"name":"SYSTEM","vnetSubnetID":"/subscriptions/s/resourcegroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/nodes"}]}}`, true, ""},
		{"unnamed array equal", `{"properties":{"networkProfile":{"podCidrs":["192.168.0.0/16"]}}}`, true, ""},
		{"unnamed array longer", `{"properties":{"networkProfile":{"podCidrs":["192.168.0.0/16","10.1.0.0/16"]}}}`, false, "properties.networkProfile.podCidrs"},
		{"read-only ignored", `{"id":"other","name":"x","type":"y","properties":{"provisioningState":"Creating","fqdn":"z"}}`, true, ""},
		{"identity read-only ignored", `{"identity":{"type":"UserAssigned","principalId":"q","tenantId":"u","userAssignedIdentities":{"/subscriptions/S/resourceGroups/RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1":{"principalId":"x","clientId":"y"}}}}`, true, ""},
		{"write-only secrets ignored", `{"properties":{"windowsProfile":{"adminPassword":"pw"},"servicePrincipalProfile":{"secret":"s"}}}`, true, ""},
		{"addon identity and status ignored", `{"properties":{"status":{"provisioningError":null},"addonProfiles":{"omsagent":{"identity":{"clientId":"x"}}}}}`, true, ""},
		{"null matches absent", `{"properties":{"nodeResourceGroup":null}}`, true, ""},
		{"object vs scalar", `{"properties":{"kubernetesVersion":{"a":1}}}`, false, "properties.kubernetesVersion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, where := satisfies([]byte(tt.want), []byte(mc))
			if ok != tt.ok || (!ok && where != tt.where) {
				t.Errorf("satisfies = %v, %q; want %v, %q", ok, where, tt.ok, tt.where)
			}
		})
	}
	// Secrets alone, under profiles that exist, are ignored.
	have := `{"properties":{"windowsProfile":{"adminUsername":"u"},"servicePrincipalProfile":{"clientId":"msi"}}}`
	want := `{"properties":{"windowsProfile":{"adminUsername":"u","adminPassword":"pw"},"servicePrincipalProfile":{"clientId":"msi","secret":"s"}}}`
	if ok, where := satisfies([]byte(want), []byte(have)); !ok {
		t.Errorf("secrets compared: differs at %s", where)
	}
}

func TestResumeKey(t *testing.T) {
	s := createPlan(t, ModelOverlay).Steps[1]
	k := resumeKey(s)
	if !resumeKeyPattern.MatchString(k) {
		t.Errorf("key %q is not a valid FileResumeStore key", k)
	}
	s2 := s
	s2.ResourceID = strings.ToUpper(s.ResourceID)
	if resumeKey(s2) != k {
		t.Error("key depends on the resource ID's case")
	}
	s2 = s
	s2.Body = append(slices.Clone(s.Body[:len(s.Body)-1]), []byte(`,"tags":{"x":"y"}}`)...)
	if resumeKey(s2) == k {
		t.Error("a changed body has the same key")
	}
}

func TestRedactBody(t *testing.T) {
	mc := mcBody(ciliumProfile(ModelOverlay), pool("system", armcontainerservice.AgentPoolModeSystem, "", ""))
	mc.Properties.WindowsProfile = &armcontainerservice.ManagedClusterWindowsProfile{AdminUsername: to.Ptr("azureuser"), AdminPassword: to.Ptr("SENTINEL-pw")}
	mc.Properties.ServicePrincipalProfile = &armcontainerservice.ManagedClusterServicePrincipalProfile{ClientID: to.Ptr("cid"), Secret: to.Ptr("SENTINEL-secret")}
	mc.Properties.LinuxProfile = &armcontainerservice.LinuxProfile{AdminUsername: to.Ptr("azureuser"),
		SSH: &armcontainerservice.SSHConfiguration{PublicKeys: []*armcontainerservice.SSHPublicKey{{KeyData: to.Ptr("ssh-rsa SENTINEL-key")}}}}
	mc.Properties.AADProfile = &armcontainerservice.ManagedClusterAADProfile{ServerAppSecret: to.Ptr("SENTINEL-aad")}
	mc.Properties.HTTPProxyConfig = &armcontainerservice.ManagedClusterHTTPProxyConfig{
		HTTPProxy:  to.Ptr("http://proxyuser:SENTINEL-proxy@proxy:3128"),
		HTTPSProxy: to.Ptr("https://proxy:3129"),
	}
	body := mustJSON(t, mc)
	orig := slices.Clone(body)
	out := RedactBody(KindManagedCluster, body)
	if !bytes.Equal(body, orig) {
		t.Error("RedactBody modified its input")
	}
	if bytes.Contains(out, []byte("SENTINEL")) {
		t.Errorf("secret left in %s", out)
	}
	var got armcontainerservice.ManagedCluster
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("output is not a ManagedCluster: %v\n%s", err, out)
	}
	p := got.Properties
	for name, v := range map[string]*string{
		"adminPassword": p.WindowsProfile.AdminPassword, "secret": p.ServicePrincipalProfile.Secret,
		"keyData": p.LinuxProfile.SSH.PublicKeys[0].KeyData, "serverAppSecret": p.AADProfile.ServerAppSecret,
		"httpProxy": p.HTTPProxyConfig.HTTPProxy,
	} {
		if v == nil || *v != Redacted {
			t.Errorf("%s = %v, want %s", name, v, Redacted)
		}
	}
	// Everything else is kept.
	if *p.HTTPProxyConfig.HTTPSProxy != "https://proxy:3129" || *p.WindowsProfile.AdminUsername != "azureuser" ||
		*p.ServicePrincipalProfile.ClientID != "cid" || *p.NetworkProfile.PodCidr != "192.168.0.0/16" || *p.AgentPoolProfiles[0].Count != 2 {
		t.Errorf("non-secret fields changed: %s", out)
	}

	for _, tt := range []struct {
		name string
		kind StepKind
		in   string
		want string
	}{
		{"empty", KindManagedCluster, "", ""},
		{"not JSON", KindManagedCluster, `{"password":"SENTINEL`, `"REDACTED"`},
		{"trailing data", KindManagedCluster, `{} {"password":"x"}`, `"REDACTED"`},
		{"no secrets", KindResourceGroup, `{"location":"eastus2","tags":{"b":"2","a":"1"}}`, `{"location":"eastus2","tags":{"a":"1","b":"2"}}`},
		{"null secret stays null", KindManagedCluster, `{"properties":{"windowsProfile":{"adminPassword":null}}}`, `{"properties":{"windowsProfile":{"adminPassword":null}}}`},
		{"big numbers kept", KindAgentPool, `{"properties":{"count":12345678901234567890}}`, `{"properties":{"count":12345678901234567890}}`},
		{"proxy credentials redacted only for clusters", KindVirtualNetwork, `{"httpProxyConfig":{"httpProxy":"http://u:p@h"}}`, `{"httpProxyConfig":{"httpProxy":"http://u:p@h"}}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(RedactBody(tt.kind, []byte(tt.in))); got != tt.want {
				t.Errorf("RedactBody(%s) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}
