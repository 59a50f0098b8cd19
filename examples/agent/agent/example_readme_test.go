package agent_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ceskit/ceskit/datapath"
	"github.com/ceskit/ceskit/examples/agent/agent"
	"github.com/ceskit/ceskit/observe"
)

// A kubeconfig for a cluster the example never reaches: New builds clients but calls nothing,
// Run does.
const kubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
contexts: [{name: c, context: {cluster: c}}]
current-context: c
`

// New checks its arguments and settings, names what is wrong, and builds the agent; the zero
// Config is no-datapath mode.
func ExampleNew() {
	restConfig, err := clientcmd.RESTConfigFromKubeConfig([]byte(kubeconfig))
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = agent.New(restConfig, "", agent.Config{})
	fmt.Println(err, errors.Is(err, agent.ErrInvalidConfig))

	a, err := agent.New(restConfig, "node-1", agent.Config{NoDatapathReason: "not running as root"})
	if err != nil {
		fmt.Println(err)
		return
	}
	st := a.Status() // before Run: nothing synced yet
	fmt.Println(st.Node, st.Mode+":", st.ModeReason, "synced:", st.Synced)
	// Output:
	// invalid agent config: nodeName="": the node's name is required true
	// node-1 no-datapath: not running as root synced: false
}

// The agent as examples/agent runs it: the datapath where it can be loaded, else no-datapath
// mode; flows to stdout and to Hubble's flow metrics. Needs a cluster (and root for the
// datapath): compiled, not run as a test.
func ExampleAgent_Run() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	restConfig, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		fmt.Println(err)
		return
	}
	reg := prometheus.NewRegistry() // serve it on /metrics
	flowMetrics, err := observe.NewFlowMetrics(reg)
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := agent.Config{
		Sink:     observe.MultiSink(observe.NewJSONLinesSink(os.Stdout), flowMetrics),
		Registry: reg,
		Logger:   slog.Default(),
	}
	d, err := datapath.Load(datapath.Spec{PinPath: "/sys/fs/bpf/ceskit"})
	switch {
	case errors.Is(err, datapath.ErrNotSupported):
		cfg.NoDatapathReason = err.Error() // computes and reports everything, enforces nothing
	case err != nil:
		fmt.Println(err)
		return
	default:
		defer d.Close() // after Run: the agent does not close it
		cfg.Datapath = d
	}
	a, err := agent.New(restConfig, "node-1", cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := a.Run(ctx); err != nil { // until Ctrl-C
		fmt.Println(err)
	}
	st := a.Status()
	fmt.Println(st.Mode, st.Endpoints, "endpoints,", len(st.LocalEndpoints), "local,", st.Policies, "policies")
}
