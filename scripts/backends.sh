#!/usr/bin/env bash
# backends.sh installs the real servers that bucky3's tests talk to
# (see shared/BACKENDS.md) and prints where they are.
#
#   scripts/backends.sh install   install what is missing (root, Debian); a warm run is a no-op
#   scripts/backends.sh env       print export lines that put the cached binaries on PATH
#
# Self-contained binaries are extracted from their Debian packages into
# .cache/backends (no services, no users, no postinst); packages with many
# dependencies (graphite-carbon, systemd-journal-remote) go through apt with
# service starts refused by policy-rc.d. internal/backendtest finds the
# binaries in .cache/backends first, then on PATH.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=$REPO/.cache/backends
VLOGS_VERSION=v1.52.1
# The Debian victoria-metrics predates OTLP ingestion: otlp_client's tests
# run this release, built into its own directory so that the Debian binary
# stays the default one on PATH.
VMOTLP_VERSION=v1.136.23
# The typed layout's compatibility test runs the exporter bucky3 replaces.
STATSD_EXPORTER_VERSION=v0.31.0

export DEBIAN_FRONTEND=noninteractive

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }
summary() { printf '%-18s %-10s %-8s %s\n' "$1" "$2" "$3" "$4"; }

apt_updated=0
apt_update() {
	if [ "$apt_updated" = 0 ]; then
		apt-get update -qq >/dev/null
		apt_updated=1
	fi
}

# extract_debs downloads the named packages (candidate versions) and unpacks
# them into $CACHE without running any maintainer script.
extract_debs() {
	apt_update
	mkdir -p "$CACHE/debs"
	rm -f "$CACHE"/debs/*.deb
	# As root apt warns that the download is unsandboxed: keep the log for failures only.
	if ! (cd "$CACHE/debs" && apt-get download -qq "$@" >download.log 2>&1); then
		cat "$CACHE/debs/download.log" >&2
		return 1
	fi
	local deb
	for deb in "$CACHE"/debs/*.deb; do
		dpkg-deb -x "$deb" "$CACHE"
		dpkg-deb -f "$deb" Version >"$CACHE/debs/$(dpkg-deb -f "$deb" Package).version"
	done
	rm -f "$CACHE"/debs/*.deb
}

installed_version() {
	dpkg-query -W -f='${Status} ${Version}' "$1" 2>/dev/null |
		awk '$1 == "install" && $3 == "installed" { print $4 }'
}

# apt_install installs packages while refusing every service start, so no
# daemon is left running; callers disable the units the postinst enabled.
apt_install() {
	apt_update
	local made_policy=0
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		made_policy=1
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	# debconf chatters on stderr even with -qq: show the log only on failure.
	if ! apt-get install -y -qq --no-install-recommends "$@" >"$CACHE/apt.log" 2>&1; then
		cat "$CACHE/apt.log" >&2
		return 1
	fi
	if [ "$made_policy" = 1 ]; then
		rm -f /usr/sbin/policy-rc.d
		trap - EXIT
	fi
}

disable_units() {
	command -v systemctl >/dev/null || return 0
	local unit
	for unit in "$@"; do
		systemctl disable --quiet "$unit" >/dev/null 2>&1 || true
	done
}

install_prometheus() {
	local t state=present
	t=$(now)
	if [ ! -x "$CACHE/usr/bin/prometheus" ] || [ ! -x "$CACHE/usr/bin/promtool" ]; then
		extract_debs prometheus
		state=installed
	fi
	summary prometheus "$state" "$(elapsed "$t")" \
		"$("$CACHE/usr/bin/prometheus" --version 2>&1 | awk 'NR == 1 { print $3 }') $CACHE/usr/bin/{prometheus,promtool}"
}

install_influxdb() {
	local t state=present
	t=$(now)
	if [ ! -x "$CACHE/usr/bin/influxd" ] || [ ! -x "$CACHE/usr/bin/influx" ]; then
		extract_debs influxdb influxdb-client
		state=installed
	fi
	summary influxdb "$state" "$(elapsed "$t")" \
		"$("$CACHE/usr/bin/influxd" version 2>&1 | awk '{ print $2 }') $CACHE/usr/bin/{influxd,influx}"
}

install_victoriametrics() {
	local t state=present
	t=$(now)
	if [ ! -x "$CACHE/usr/bin/victoria-metrics" ]; then
		extract_debs victoria-metrics
		state=installed
	fi
	summary victoria-metrics "$state" "$(elapsed "$t")" \
		"$(cat "$CACHE/debs/victoria-metrics.version" 2>/dev/null) $CACHE/usr/bin/victoria-metrics"
}

install_carbon() {
	local t state=present
	t=$(now)
	if [ -z "$(installed_version graphite-carbon)" ] || [ -z "$(installed_version python3-whisper)" ]; then
		apt_install graphite-carbon python3-whisper
		disable_units carbon-cache.service
		state=installed
	fi
	summary carbon "$state" "$(elapsed "$t")" \
		"$(installed_version graphite-carbon) /usr/bin/carbon-cache /usr/bin/whisper-fetch"
}

install_journal() {
	local t state=present v
	t=$(now)
	v=$(installed_version libsystemd0)
	if [ -z "$v" ]; then
		echo "backends.sh: libsystemd0 is not installed; cannot pin systemd-journal-remote" >&2
		return 1
	fi
	if [ "$(installed_version systemd-journal-remote)" != "$v" ] || [ "$(installed_version libsystemd-dev)" != "$v" ]; then
		apt_install "systemd-journal-remote=$v" "libsystemd-dev=$v"
		disable_units systemd-journal-remote.socket systemd-journal-remote.service \
			systemd-journal-upload.service
		state=installed
	fi
	summary journal-remote "$state" "$(elapsed "$t")" "$v /lib/systemd/systemd-journal-remote"
}

install_victorialogs() {
	local t state=present bin=$CACHE/bin/victoria-logs
	t=$(now)
	# -version is empty without release ldflags: read the module version instead.
	if [ ! -x "$bin" ] || ! go version -m "$bin" 2>/dev/null | grep -q "VictoriaLogs[[:space:]]*$VLOGS_VERSION"; then
		mkdir -p "$CACHE/bin"
		CGO_ENABLED=0 GOBIN=$CACHE/bin GOFLAGS=-buildvcs=false \
			go install "github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@$VLOGS_VERSION"
		state=installed
	fi
	summary victoria-logs "$state" "$(elapsed "$t")" "$VLOGS_VERSION $bin"
}

install_victoriametrics_otlp() {
	local t state=present bin=$CACHE/otlp/bin/victoria-metrics
	t=$(now)
	if [ ! -x "$bin" ] || ! go version -m "$bin" 2>/dev/null | grep -q "VictoriaMetrics[[:space:]]*$VMOTLP_VERSION"; then
		mkdir -p "$CACHE/otlp/bin"
		CGO_ENABLED=0 GOBIN=$CACHE/otlp/bin GOFLAGS=-buildvcs=false \
			go install "github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics@$VMOTLP_VERSION"
		state=installed
	fi
	summary vm-otlp "$state" "$(elapsed "$t")" "$VMOTLP_VERSION $bin"
}

install_statsd_exporter() {
	local t state=present bin=$CACHE/bin/statsd_exporter
	t=$(now)
	if [ ! -x "$bin" ] || ! go version -m "$bin" 2>/dev/null | grep -q "statsd_exporter[[:space:]]*$STATSD_EXPORTER_VERSION"; then
		mkdir -p "$CACHE/bin"
		CGO_ENABLED=0 GOBIN=$CACHE/bin GOFLAGS=-buildvcs=false \
			go install "github.com/prometheus/statsd_exporter@$STATSD_EXPORTER_VERSION"
		state=installed
	fi
	summary statsd_exporter "$state" "$(elapsed "$t")" "$STATSD_EXPORTER_VERSION $bin"
}

cmd_install() {
	if [ "$(id -u)" != 0 ]; then
		echo "backends.sh install: must run as root" >&2
		exit 1
	fi
	mkdir -p "$CACHE"
	# Two concurrent installs (a developer and CI, two helpers) would race on
	# apt and on the extraction tree.
	exec 9>"$CACHE/.lock"
	flock 9
	local t
	t=$(now)
	install_prometheus
	install_influxdb
	install_victoriametrics
	install_carbon
	install_journal
	install_victorialogs
	install_victoriametrics_otlp
	install_statsd_exporter
	summary total "" "$(elapsed "$t")" ""
}

cmd_env() {
	printf 'export PATH=%q:%q:"$PATH"\n' "$CACHE/usr/bin" "$CACHE/bin"
}

case "${1:-}" in
install) cmd_install ;;
env) cmd_env ;;
*)
	echo "usage: $0 install|env" >&2
	exit 2
	;;
esac
