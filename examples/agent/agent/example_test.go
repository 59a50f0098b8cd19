package agent_test

import (
	"fmt"

	"github.com/ceskit/ceskit/examples/agent/agent"
)

// Datapath endpoint IDs are stable: the hash of namespace/name.
func ExampleDatapathID() {
	fmt.Println(agent.DatapathID("shop/web-1"), agent.DatapathID("shop/web-1") == agent.DatapathID("shop/web-1"))
	// Output:
	// 589442062 true
}
