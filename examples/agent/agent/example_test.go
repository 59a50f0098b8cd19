package agent_test

import (
	"fmt"

	"github.com/ceskit/ceskit/examples/agent/agent"
	"github.com/ceskit/ceskit/policy"
)

// An endpoint's map state becomes datapath entries; the cookie in each entry (and in the
// datapath's verdict events) resolves back to the policy.
func ExampleEntriesFromMapState() {
	rule := policy.RuleRef{Policy: policy.PolicyRef{Kind: "NetworkPolicy", Namespace: "shop", Name: "db"}, Section: "ingress"}
	ms := policy.MapState{
		{Identity: 1001, Direction: policy.Ingress, Protocol: policy.ProtoTCP, Port: 5432, PortPrefixLen: 16}: {
			Verdict: policy.Allow, Precedence: policy.PrecedenceAllow, Rules: []policy.RuleRef{rule},
		},
	}
	cookies := &agent.Cookies{}
	for _, e := range agent.EntriesFromMapState(ms, cookies) {
		policies, name, _ := cookies.Policy(e.Cookie)
		fmt.Printf("%s id=%d proto=%d port=%d/%d %s, cookie %d: %s (%s)\n",
			e.Direction, e.Identity, e.Protocol, e.Port, e.PortPrefixLen, e.Verdict, e.Cookie, name, policies[0])
	}
	// Output:
	// ingress id=1001 proto=6 port=5432/16 allow, cookie 21059251: NetworkPolicy shop/db ingress[0] (NetworkPolicy/shop/db)
}

// Datapath endpoint IDs are stable: the hash of namespace/name.
func ExampleDatapathID() {
	fmt.Println(agent.DatapathID("shop/web-1"), agent.DatapathID("shop/web-1") == agent.DatapathID("shop/web-1"))
	// Output:
	// 589442062 true
}
