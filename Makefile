# ceskit: `make lab` runs the lab on an embedded control plane, `make test` runs every test.
GO ?= go
BIN := $(CURDIR)/bin
CONTROLPLANE := $(BIN)/kube-apiserver $(BIN)/etcd $(BIN)/kubectl
LAB_FLAGS ?= --embedded --simulate-pods 5000 --simulate-nodes 500 --simulate-namespaces 50 --churn 50 --duration 60s

.PHONY: lab test bench controlplane generate verify-generate fmt vet clean

## lab: the slicer operator on an embedded kube-apiserver + etcd, with simulated pods and churn.
lab: $(CONTROLPLANE)
	$(GO) run ./examples/operator $(LAB_FLAGS)

## test: every test with the race detector; builds the control plane first when missing.
test: $(CONTROLPLANE)
	$(GO) test -race -count=1 ./...

## bench: the slicer, identity, policy and datapath benchmarks (about 11 minutes; datapath needs root).
bench: $(CONTROLPLANE)
	$(GO) test -run '^$$' -bench . -benchtime 1x -benchmem -timeout 30m ./slicer/ ./identity/ ./policy/ ./datapath/ ./datapath/monitor/ ./azure/

controlplane: $(CONTROLPLANE)

$(CONTROLPLANE):
	./hack/build-controlplane.sh

## generate: deepcopy functions and CRD manifests (controller-gen), BPF objects (bpf2go, clang).
generate:
	./hack/codegen.sh
	$(GO) generate ./datapath/...

## verify-generate: fail when generated code differs from what is committed.
verify-generate: generate
	@git diff --exit-code -- '*zz_generated*' slicer/crds identity/crds policy/crds 'datapath/*_bpfe[lb].*' || (echo "generated code is stale: run make generate" >&2; exit 1)
	@test -z "$$(git status --porcelain -- slicer/crds identity/crds policy/crds '*zz_generated*' 'datapath/*_bpfe[lb].*')" || (echo "untracked generated files: run make generate and commit" >&2; exit 1)

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

clean:
	rm -rf bin
