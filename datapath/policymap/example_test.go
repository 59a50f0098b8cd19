package policymap_test

import (
	"fmt"

	"github.com/ceskit/ceskit/datapath/policymap"
	"github.com/ceskit/ceskit/policy"
)

// An endpoint's map state becomes datapath entries; the cookie in each entry (and in the
// datapath's verdict events) resolves back to the policy.
func ExampleEntries() {
	rule := policy.RuleRef{Policy: policy.PolicyRef{Kind: "NetworkPolicy", Namespace: "shop", Name: "db"}, Section: "ingress"}
	ms := policy.MapState{
		{Identity: 1001, Direction: policy.Ingress, Protocol: policy.ProtoTCP, Port: 5432, PortPrefixLen: 16}: {
			Verdict: policy.Allow, Precedence: policy.PrecedenceAllow, Rules: []policy.RuleRef{rule},
		},
	}
	cookies := &policymap.Cookies{}
	for _, e := range policymap.Entries(ms, cookies) {
		policies, name, _ := cookies.Policy(e.Cookie)
		fmt.Printf("%s id=%d proto=%d port=%d/%d %s, cookie %d: %s (%s)\n",
			e.Direction, e.Identity, e.Protocol, e.Port, e.PortPrefixLen, e.Verdict, e.Cookie, name, policies[0])
	}
	// Output:
	// ingress id=1001 proto=6 port=5432/16 allow, cookie 21059251: NetworkPolicy shop/db ingress[0] (NetworkPolicy/shop/db)
}

// A rule's cookie is the same on every node and after a restart: the hash of its name.
func ExampleCookies() {
	rule := policy.RuleRef{Policy: policy.PolicyRef{Kind: "CiliumNetworkPolicy", Namespace: "shop", Name: "no-ssh"}, Section: "ingressDeny"}
	a, b := &policymap.Cookies{}, &policymap.Cookies{}
	fmt.Println(a.Cookie(rule) == b.Cookie(rule))
	r, ok := a.Rule(a.Cookie(rule))
	fmt.Println(r, ok)
	// Output:
	// true
	// CiliumNetworkPolicy shop/no-ssh ingressDeny[0] true
}
