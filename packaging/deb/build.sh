#!/usr/bin/env bash
# build.sh builds bucky3's Debian package with dpkg-deb: the binary (built
# with -tags sdjournal, which needs libsystemd-dev), the hardened unit and
# its optional drop-ins, the sysctl file, and dist/bucky3.toml as the
# conffile /etc/bucky3/bucky3.toml. `make deb` runs it; dist/deb_test.go
# installs the result into a scratch root.
#
#   packaging/deb/build.sh [outdir]   default outdir: bin/
#
# VERSION defaults to `git describe --tags --always --dirty`; GO and TAGS
# as in the Makefile. The package is for the build machine's architecture.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$REPO/packaging/deb
OUT=${1:-$REPO/bin}
GO=${GO:-go}
TAGS=${TAGS:-sdjournal}

for tool in dpkg-deb dpkg "$GO"; do
	if ! command -v "$tool" >/dev/null; then
		echo "build.sh: $tool not found in PATH" >&2
		exit 1
	fi
done

# Debian versions start with a digit and use '-' for the packaging
# revision: v1.2.0-3-gabcdef becomes 1.2.0+3+gabcdef; without a tag the
# commit gives 0.0.0+gabcdef.
if [ -n "${VERSION:-}" ]; then
	version=$VERSION
elif version=$(git -C "$REPO" describe --tags --dirty 2>/dev/null); then
	version=${version#v}
elif version=$(git -C "$REPO" describe --always --dirty 2>/dev/null); then
	version=0.0.0+g$version
else
	version=0.0.0
fi
version=${version//-/+}
arch=$(dpkg --print-architecture)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/usr/lib/systemd/system" \
	"$root/usr/lib/sysctl.d" "$root/usr/share/bucky3/bucky3.service.d" \
	"$root/usr/share/doc/bucky3" "$root/etc/bucky3"

# cgo for sdjournal; -trimpath so the binary does not name the build tree.
(cd "$REPO" && CGO_ENABLED=1 "$GO" build -tags "$TAGS" -trimpath -o "$root/usr/bin/bucky3" ./cmd/bucky3)
chmod 0755 "$root/usr/bin/bucky3"

install -m 0644 "$REPO/dist/systemd/bucky3.service" "$root/usr/lib/systemd/system/"
# The drop-ins are not active: an operator links the ones the
# configuration needs into /etc/systemd/system/bucky3.service.d/.
install -m 0644 "$REPO"/dist/systemd/bucky3.service.d/*.conf "$root/usr/share/bucky3/bucky3.service.d/"
install -m 0644 "$REPO/dist/sysctl.d/60-bucky3.conf" "$root/usr/lib/sysctl.d/"
# Root-only in the archive: postinst gives the bucky3 group read access
# through dpkg-statoverride, which later upgrades keep.
install -m 0640 "$REPO/dist/bucky3.toml" "$root/etc/bucky3/bucky3.toml"
install -m 0644 "$REPO/README.md" "$REPO/CHANGELOG.md" "$root/usr/share/doc/bucky3/"

echo /etc/bucky3/bucky3.toml >"$root/DEBIAN/conffiles"
install -m 0755 "$HERE/postinst" "$HERE/prerm" "$HERE/postrm" "$root/DEBIAN/"
cat >"$root/DEBIAN/control" <<CONTROL
Package: bucky3
Version: $version
Architecture: $arch
Maintainer: bucky3 maintainers <bucky3@users.noreply.github.com>
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: libc6, passwd
Recommends: libsystemd0
Section: admin
Priority: optional
Homepage: https://github.com/bucky3/bucky3
Description: monitoring agent and StatsD server
 bucky3 receives StatsD and JSON metrics, collects host, Docker and journal
 data, and ships them to Prometheus, InfluxDB, Elasticsearch or Graphite.
 It runs as the unprivileged bucky3 user under a hardened systemd unit.
CONTROL

mkdir -p "$OUT"
deb=$OUT/bucky3_${version}_$arch.deb
dpkg-deb --root-owner-group --build "$root" "$deb" >/dev/null
echo "$deb"
