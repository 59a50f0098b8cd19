// Command kubectl is the real kubectl, built from the same Kubernetes release as the test
// kube-apiserver, so tests can check what a user's `kubectl get ces` shows.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
)

func main() {
	os.Exit(cli.Run(cmd.NewDefaultKubectlCommand()))
}
