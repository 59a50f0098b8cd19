#!/usr/bin/env bash
# Regenerates ceskit's generated code: deepcopy functions and CRD manifests (controller-gen, pinned in
# hack/tools/go.mod). CI runs this and fails when the result differs from what is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/bin
if [ ! -x "$bin/controller-gen" ]; then
	(cd hack/tools && go build -o "$bin/controller-gen" sigs.k8s.io/controller-tools/cmd/controller-gen)
fi
header=hack/boilerplate.go.txt
# API type packages and the directory their CRD manifests go to.
for api in slicer/ciliumv2:slicer/crds slicer/ciliumv2alpha1:slicer/crds identity/ciliumv2:identity/crds policy/ciliumv2:policy/crds; do
	pkg=${api%%:*} out=${api##*:}
	"$bin/controller-gen" object:headerFile="$header" paths=./$pkg
	"$bin/controller-gen" crd:crdVersions=v1 paths=./$pkg output:crd:artifacts:config=$out
done
