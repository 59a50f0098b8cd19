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
#
# Go 1.26's fuzz coordinator has a race at the end of a duration -fuzztime (golang/go#75804,
# fixed in Go 1.27): a worker still busy when the deadline fires makes the target fail with a
# bare "context deadline exceeded" although no input failed. Such a run is recognised by three
# things together: that line is the target's only failure message, no "Failing input" was
# reported and no new file appeared in pkg/testdata/fuzz/FuzzX/. Only then is the target run
# once more with an execution-count budget (-fuzztime Nx, N = the executions the first run
# reached, at least 1000), which has no deadline to race, under a hard wall-clock limit of
# 3 × seconds + 60 s. Any other failure, and a second failure, fails the script.
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
logs="$(mktemp -d)"
trap 'rm -rf "$nocp" "$logs"' EXIT

# deadline_race LOG NAME: true when the run in LOG failed only with the coordinator's bare
# deadline error (see above): a "--- FAIL: NAME" line followed by exactly one message line,
# "context deadline exceeded", and no "Failing input" anywhere.
deadline_race() {
	local log="$1" name="$2"
	grep -q 'Failing input' "$log" && return 1
	[ "$(grep -c -- '^--- FAIL: ' "$log")" -eq 1 ] || return 1
	awk -v name="$name" '
		$0 ~ "^--- FAIL: " name " " { f = 1; next }
		f && /^[ \t]/ { n++; msg = $0; next }
		f { f = 0 }
		END { sub(/^[ \t]+/, "", msg); exit !(n == 1 && msg == "context deadline exceeded") }
	' "$log"
}

mapfile -t dirs < <(find . -path ./bin -prune -o -name '*_test.go' -print | xargs grep -l '^func Fuzz' | xargs -n1 dirname | sort -u)
if [ "${#dirs[@]}" -eq 0 ]; then
	echo "no fuzz targets found" >&2
	exit 1
fi

failed=()
retried=()
n=0
for dir in "${dirs[@]}"; do
	envs=()
	if grep -q '"github.com/ceskit/ceskit/internal/testenv"' "$dir"/*_test.go; then
		envs=(CI= "CESKIT_CONTROLPLANE_BIN=$nocp")
	fi
	for name in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go | sed 's/^func //' | sort -u); do
		n=$((n + 1))
		echo "== $dir $name (${secs}s)"
		corpus="$dir/testdata/fuzz/$name"
		before="$(ls "$corpus" 2>/dev/null | sort || true)"
		out="$logs/$name.log"
		if env "${envs[@]}" "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "${secs}s" "$dir/" 2>&1 | tee "$out"; then
			continue
		fi
		after="$(ls "$corpus" 2>/dev/null | sort || true)"
		if ! deadline_race "$out" "$name" || [ "$before" != "$after" ]; then
			failed+=("$dir $name")
			continue
		fi
		execs="$(grep -o 'execs: [0-9]*' "$out" | tail -1 | grep -o '[0-9]*' || true)"
		execs="${execs:-0}"
		if [ "$execs" -lt 1000 ]; then execs=1000; fi
		echo "== $dir $name: the bare \"context deadline exceeded\" of golang/go#75804 and no failing input; again with -fuzztime ${execs}x"
		retried+=("$dir $name")
		if ! env "${envs[@]}" timeout --kill-after=10 "$((3 * secs + 60))" \
			"$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "${execs}x" "$dir/"; then
			failed+=("$dir $name")
		fi
	done
done

if [ "${#failed[@]}" -gt 0 ]; then
	echo "== ${#failed[@]} of $n fuzz targets failed:" >&2
	printf '   %s\n' "${failed[@]}" >&2
	exit 1
fi
if [ "${#retried[@]}" -gt 0 ]; then
	echo "== retried with a count budget after golang/go#75804:"
	printf '   %s\n' "${retried[@]}"
fi
echo "== all $n fuzz targets passed (${secs}s each)"
