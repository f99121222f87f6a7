package udp

import "bytes"

// containerIDLen is the length of the ids docker, containerd, cri-o and
// podman give containers: 32 random bytes in lowercase hex.
const containerIDLen = 64

// containerID returns the id of the container that the content of a
// /proc/<pid>/cgroup file places the process in, or nil. Each line is
// "hierarchy:controllers:path" (cgroup v1) or "0::path" (v2); the id is
// the innermost path segment that is a 64-hex id, bare or as the runtime
// names its scope:
//
//	/docker/<id>                                    docker, cgroupfs driver
//	/system.slice/docker-<id>.scope                 docker, systemd driver
//	/kubepods/burstable/pod<uid>/<id>               kubelet, cgroupfs driver
//	/kubepods.slice/.../cri-containerd-<id>.scope   containerd
//	/kubepods.slice/.../crio-<id>.scope             cri-o
//	/machine.slice/libpod-<id>.scope/container      podman
//
// The first line that names one wins: on a hybrid host the v1 lines come
// first, and every line of a containerised process names the same id.
// The result aliases cgroup.
func containerID(cgroup []byte) []byte {
	for len(cgroup) > 0 {
		line := cgroup
		if i := bytes.IndexByte(cgroup, '\n'); i >= 0 {
			line, cgroup = cgroup[:i], cgroup[i+1:]
		} else {
			cgroup = nil
		}
		// The path follows the second colon; it may hold colons itself.
		i := bytes.IndexByte(line, ':')
		if i < 0 {
			continue
		}
		j := bytes.IndexByte(line[i+1:], ':')
		if j < 0 {
			continue
		}
		if id := pathContainerID(line[i+1+j+1:]); id != nil {
			return id
		}
	}
	return nil
}

// pathContainerID returns the innermost container id of a cgroup path,
// scanning its segments from the last: nested containers (docker in
// docker) report the inner one, and trailing segments a runtime adds
// (podman's "container", a systemd "init.scope") are skipped.
func pathContainerID(path []byte) []byte {
	for len(path) > 0 {
		seg := path
		if i := bytes.LastIndexByte(path, '/'); i >= 0 {
			seg, path = path[i+1:], path[:i]
		} else {
			path = nil
		}
		seg = bytes.TrimSuffix(seg, []byte(".scope"))
		if i := bytes.LastIndexByte(seg, '-'); i >= 0 {
			seg = seg[i+1:] // docker-, cri-containerd-, crio-, libpod-
		}
		if isContainerID(seg) {
			return seg
		}
	}
	return nil
}

func isContainerID(s []byte) bool {
	if len(s) != containerIDLen {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
