// Package dist holds what installs bucky3 as a service: the example
// configuration (bucky3.toml), the hardened systemd unit with its optional
// drop-ins (systemd/), and the sysctl file for the StatsD receive buffer
// (sysctl.d/). packaging/deb/build.sh packs them into the .deb.
//
// The package has no Go code: its tests check those files with
// systemd-analyze (sandbox score, verify) and install the .deb into a
// scratch root with dpkg, running its maintainer scripts.
package dist
