#!/usr/bin/env bash
# dockerd.sh installs the Docker Engine that collectors/docker's tests start
# (see shared/BACKENDS.md). The tests run their own dockerd on a socket in a
# temporary directory; this script never starts the system daemon.
#
#   scripts/dockerd.sh install   install docker.io if dockerd is missing (root, Debian); a warm run is a no-op
#   scripts/dockerd.sh check     exit 0 when dockerd, containerd and runc are on PATH
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

binaries=(dockerd containerd containerd-shim-runc-v2 runc)

have_all() {
	local b
	for b in "${binaries[@]}"; do
		command -v "$b" >/dev/null || return 1
	done
}

cmd_install() {
	if have_all; then
		echo "dockerd.sh: present $(dockerd --version)"
		return 0
	fi
	if [ "$(id -u)" != 0 ]; then
		echo "dockerd.sh install: must run as root" >&2
		exit 1
	fi
	# A concurrent backends.sh install would race on the dpkg lock.
	mkdir -p /var/lock
	exec 9>/var/lock/bucky3-dockerd-install.lock
	flock 9
	# Refuse every service start, so installing never leaves a system
	# dockerd (and its default bridge and iptables rules) running.
	local made_policy=0
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		made_policy=1
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	local log t
	log=$(mktemp)
	t=$(date +%s)
	if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends docker.io; } >"$log" 2>&1; then
		cat "$log" >&2
		rm -f "$log"
		exit 1
	fi
	rm -f "$log"
	if command -v systemctl >/dev/null; then
		systemctl disable --quiet docker.service docker.socket containerd.service >/dev/null 2>&1 || true
	fi
	if [ "$made_policy" = 1 ]; then
		rm -f /usr/sbin/policy-rc.d
		trap - EXIT
	fi
	echo "dockerd.sh: installed $(dockerd --version) in $(($(date +%s) - t))s"
}

case "${1:-}" in
install) cmd_install ;;
check) have_all ;;
*)
	echo "usage: $0 install|check" >&2
	exit 2
	;;
esac
