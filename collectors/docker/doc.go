// Package docker is the docker_stats source module (SPEC §7): every flush
// interval it lists the running containers through the Docker Engine API,
// inspects each, and emits its CPU, memory, network and filesystem usage
// tagged with the container's name, short ID, labels and mapped environment
// variables.
//
// The Engine API supplies identity, labels, limits, the container's PID and
// the filesystem sizes; usage comes from the container's cgroup (v1 or v2,
// detected at every collection under cgroup_path) and its network namespace
// (/proc/<pid>/net/dev under proc_path). The API is slow to reach compared to
// the cgroup files, so each collection has a deadline; an unreachable,
// failing or hanging daemon costs that collection only, and the module
// recovers by itself when the daemon answers again.
package docker
