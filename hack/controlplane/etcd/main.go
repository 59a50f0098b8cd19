// Command etcd is the real etcd server, built from go.etcd.io/etcd through the Go module proxy so
// that ceskit's integration tests and lab store their objects in the genuine article. It is only
// used by internal/testenv; see hack/build-controlplane.sh.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
