#!/usr/bin/env bash
# Builds the real kube-apiserver and kubectl (k8s.io/kubernetes v1.36.3) and etcd (v3.6.8) from source
# through the Go module proxy into bin/, for the integration tests, benchmarks and lab
# (internal/testenv). They live in their own modules under hack/controlplane, so the library's go.mod
# stays lean.
# A cold build takes about 6 minutes on 2 cores; later builds hit the Go build cache.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
build() { # binary, module folder, package in it
	if [ -x "bin/$1" ] && [ -z "${FORCE:-}" ]; then
		return
	fi
	echo "building bin/$1 from hack/controlplane/$2"
	(cd "hack/controlplane/$2" && go build -trimpath -o "../../../bin/$1" "$3")
}
build kube-apiserver kubernetes ./kube-apiserver
build kubectl kubernetes ./kubectl
build etcd etcd .
