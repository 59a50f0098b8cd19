// Command kube-apiserver is the real Kubernetes API server, built from k8s.io/kubernetes through
// the Go module proxy so that ceskit's integration tests and lab run against the genuine article.
// It is only used by internal/testenv; see hack/build-controlplane.sh.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
