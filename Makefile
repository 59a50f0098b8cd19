# ceskit: `make lab` runs the lab on an embedded control plane, `make test` runs every test.
GO ?= go
BIN := $(CURDIR)/bin
CONTROLPLANE := $(BIN)/kube-apiserver $(BIN)/etcd $(BIN)/kubectl
LAB_FLAGS ?=

.PHONY: lab test bench scale fuzz controlplane generate verify-generate fmt vet clean

## lab: examples/lab on an embedded kube-apiserver + etcd: 200 nodes and 2,000 pods churning for a
## minute, slices, identities, policies, node watchers and an agent (eBPF datapath when root);
## status page on http://127.0.0.1:9970/. Flags: LAB_FLAGS="--pods 5000 --nodes 500", see
## examples/lab/README.md. The control plane is built from source first when bin/ lacks it.
lab: $(CONTROLPLANE)
	@echo "lab: building examples/lab into bin/lab"
	$(GO) build -o $(BIN)/lab ./examples/lab
	$(BIN)/lab $(LAB_FLAGS)

## test: every test with the race detector; builds the control plane first when missing.
test: $(CONTROLPLANE)
	$(GO) test -race -count=1 ./...

## bench: the slicer, identity, policy, datapath, monitor, azure, exporter and agent benchmarks (about 11 minutes; datapath needs root).
bench: $(CONTROLPLANE)
	$(GO) test -run '^$$' -bench . -benchtime 1x -benchmem -timeout 30m ./slicer/ ./identity/ ./policy/ ./datapath/ ./datapath/monitor/ ./azure/ ./observe/azmonitor/ ./examples/agent/agent/

## scale: the 100,000-endpoint / 5,000-node scale benchmark (slicer/README.md, "Scale"; ~15 min).
scale: $(CONTROLPLANE)
	CESKIT_SCALE=1 $(GO) test -run '^$$' -bench BenchmarkScale -benchtime 1x -timeout 60m ./slicer/

## fuzz: every fuzz target for FUZZTIME seconds each (default 20; FuzzPacket needs root).
FUZZTIME ?= 20
fuzz:
	./hack/fuzz.sh $(FUZZTIME)

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
