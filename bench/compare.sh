#!/usr/bin/env bash
# Head-to-head StatsD benchmark: builds bucky3 and the harness, installs the
# peer servers (idempotent), sets the same receive buffer for all, runs
# bench/compare and rewrites its section of bench/RESULTS.md.
#
#   bench/compare.sh                      # full run, all servers (~1 h)
#   QUICK=1 bench/compare.sh              # 3 s runs, 4 bisection steps
#   SERVERS=bucky3,statsd_exporter QUICK=1 bench/compare.sh -tests cpu,rss
#
# Extra arguments go to bench/compare (see `go run ./bench/compare -h`).
# Needs Linux, 2+ CPUs, taskset, Go and (for Etsy statsd) node and npm;
# root to set net.core.rmem_max/rmem_default (restored on exit).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=$repo/.cache/bench
bin=$cache/bin
servers=${SERVERS:-bucky3,statsd_exporter,statsd}
rcvbuf=${RCVBUF:-8388608}
cd "$repo"
mkdir -p "$bin"

echo "== build" >&2
go build -o "$bin/bucky3" ./cmd/bucky3
go build -o "$bin/loadgen" ./bench/loadgen
go build -o "$bin/compare" ./bench/compare

if [[ $servers == *statsd_exporter* && ! -e $bin/.statsd_exporter-v0.31.0 ]]; then
	echo "== install statsd_exporter v0.31.0" >&2
	GOBIN=$bin go install github.com/prometheus/statsd_exporter@v0.31.0
	touch "$bin/.statsd_exporter-v0.31.0"
fi
if [[ ,$servers, == *,statsd,* ]] && ! grep -qs '"version": "0.9.0"' "$cache/node_modules/statsd/package.json"; then
	echo "== install Etsy statsd 0.9.0" >&2
	npm install --no-audit --no-fund --omit=optional --prefix "$cache" statsd@0.9.0 >&2
fi

# The same socket buffer for every server: statsd_exporter and bucky3 ask
# for rcvbuf (the kernel doubles it, bucky3 forces it as root); node's
# dgram takes the default, so rmem_default is the doubled value.
if [[ $(id -u) == 0 ]]; then
	old_max=$(cat /proc/sys/net/core/rmem_max)
	old_default=$(cat /proc/sys/net/core/rmem_default)
	restore() {
		echo "$old_max" >/proc/sys/net/core/rmem_max
		echo "$old_default" >/proc/sys/net/core/rmem_default
	}
	trap restore EXIT
	echo "$rcvbuf" >/proc/sys/net/core/rmem_max
	echo $((2 * rcvbuf)) >/proc/sys/net/core/rmem_default
else
	echo "compare.sh: not root: net.core.rmem_* unchanged, receive buffers may differ between servers" >&2
fi

quick=()
[[ -n ${QUICK:-} && ${QUICK:-} != 0 ]] && quick=(-quick)
command="${QUICK:+QUICK=$QUICK }SERVERS=$servers bench/compare.sh${*:+ $*}"
"$bin/compare" -bin "$bin" -statsd "$cache/node_modules/statsd" -results "$repo/bench/RESULTS.md" \
	-servers "$servers" -rcvbuf "$rcvbuf" -command "$command" "${quick[@]}" "$@"
