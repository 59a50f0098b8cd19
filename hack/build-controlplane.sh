#!/usr/bin/env bash
# Builds the real kube-apiserver (k8s.io/kubernetes v1.36.3) and etcd (v3.6.8) from source through the
# Go module proxy into bin/, for the integration tests, benchmarks and lab (internal/testenv).
# Each binary has its own module under hack/controlplane so the library's go.mod stays lean.
# A cold build takes about 6 minutes on 2 cores; later builds hit the Go build cache.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
for b in kube-apiserver etcd; do
	if [ -x "bin/$b" ] && [ -z "${FORCE:-}" ]; then
		continue
	fi
	echo "building bin/$b from hack/controlplane/$b"
	(cd "hack/controlplane/$b" && go build -trimpath -o "../../../bin/$b" .)
done
