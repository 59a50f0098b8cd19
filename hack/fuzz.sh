#!/usr/bin/env bash
# Runs every fuzz target of the repository for a bounded time each and fails when any fails.
#
#   hack/fuzz.sh [seconds]     # seconds per target, default 20
#
# A fuzz target is a `func FuzzX(f *testing.F)` in a _test.go file; each runs as
#   go test -run '^$' -fuzz '^FuzzX$' -fuzztime ${seconds}s ./pkg/
# Its committed seed corpus (pkg/testdata/fuzz/FuzzX/) also runs with every plain `go test`.
# A failing input is written to pkg/testdata/fuzz/FuzzX/ by go test: fix the bug, keep the file
# (give it a descriptive name) so that it stays a regression test. Inputs the fuzzer found
# interesting are cached under $(go env GOCACHE)/fuzz and reused by later runs.
#
# Packages whose TestMain starts a kube-apiserver + etcd (they import internal/testenv) run
# without one here: every fuzzing worker process runs TestMain, the fuzz targets do not need the
# API server, and a control plane per worker is slow and outlives a worker the fuzzer stops. The
# script points CESKIT_CONTROLPLANE_BIN at an empty directory and unsets CI for them, so their
# TestMain skips the control plane instead of failing. FuzzPacket (datapath) needs root for
# BPF_PROG_TEST_RUN: it skips without root, and fails instead when CI is set.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-20}"
case "$secs" in
'' | *[!0-9]* | 0)
	echo "usage: hack/fuzz.sh [seconds per target, default 20]" >&2
	exit 2
	;;
esac
GO="${GO:-go}"

nocp="$(mktemp -d)"
trap 'rm -rf "$nocp"' EXIT

mapfile -t dirs < <(find . -path ./bin -prune -o -name '*_test.go' -print | xargs grep -l '^func Fuzz' | xargs -n1 dirname | sort -u)
if [ "${#dirs[@]}" -eq 0 ]; then
	echo "no fuzz targets found" >&2
	exit 1
fi

failed=()
n=0
for dir in "${dirs[@]}"; do
	envs=()
	if grep -q '"github.com/ceskit/ceskit/internal/testenv"' "$dir"/*_test.go; then
		envs=(CI= "CESKIT_CONTROLPLANE_BIN=$nocp")
	fi
	for name in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go | sed 's/^func //' | sort -u); do
		n=$((n + 1))
		echo "== $dir $name (${secs}s)"
		if ! env "${envs[@]}" "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "${secs}s" "$dir/"; then
			failed+=("$dir $name")
		fi
	done
done

if [ "${#failed[@]}" -gt 0 ]; then
	echo "== ${#failed[@]} of $n fuzz targets failed:" >&2
	printf '   %s\n' "${failed[@]}" >&2
	exit 1
fi
echo "== all $n fuzz targets passed (${secs}s each)"
