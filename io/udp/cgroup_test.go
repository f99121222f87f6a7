package udp

import (
	"bytes"
	"strings"
	"testing"
)

// Ids as the runtimes make them: 64 lowercase hex digits.
const (
	id1 = "3f0b1e7c2d9a4b8e6f5a1c0d2e3f4a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5"
	id2 = "aa5f8e1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7"
)

func TestContainerID_Success(t *testing.T) {
	f := func(cgroup, want string) {
		t.Helper()
		for range 2 { // no state: the same answer twice
			if got := containerID([]byte(cgroup)); string(got) != want {
				t.Fatalf("containerID(%q) = %q, want %q", cgroup, got, want)
			}
		}
	}
	// cgroup v1, docker with the cgroupfs driver: every hierarchy names it.
	f("12:memory:/docker/"+id1+"\n11:cpu,cpuacct:/docker/"+id1+"\n1:name=systemd:/docker/"+id1+"\n", id1)
	// cgroup v1, the systemd driver.
	f("5:devices:/system.slice/docker-"+id1+".scope\n", id1)
	// cgroup v2, docker with the systemd driver; and the cgroupfs driver.
	f("0::/system.slice/docker-"+id1+".scope\n", id1)
	f("0::/docker/"+id1+"\n", id1)
	// Kubernetes, cgroup v1 with the cgroupfs driver (docker or containerd).
	f("4:memory:/kubepods/burstable/pod0b6c4d1e-8f2a-4c3b-9d5e-6f7a8b9c0d1e/"+id1+"\n", id1)
	// Kubernetes, containerd with the systemd driver, v1 and v2.
	f("3:cpuset:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0b6c4d1e_8f2a_4c3b_9d5e_6f7a8b9c0d1e.slice/cri-containerd-"+id1+".scope\n", id1)
	f("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0b6c4d1e_8f2a.slice/cri-containerd-"+id1+".scope", id1)
	// cri-o, v1 and v2.
	f("9:pids:/kubepods.slice/kubepods-pod0b6c.slice/crio-"+id1+".scope\n", id1)
	f("0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0b6c.slice/crio-"+id1+".scope\n", id1)
	// podman: rootful and rootless (the container's payload in a "container" child).
	f("0::/machine.slice/libpod-"+id1+".scope/container\n", id1)
	f("0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-"+id1+".scope/container\n", id1)
	f("1:name=systemd:/libpod_parent/libpod-"+id1+"\n", id1)
	// systemd inside the container: a trailing init.scope.
	f("0::/system.slice/docker-"+id1+".scope/init.scope\n", id1)
	// Docker in docker: the inner container.
	f("0::/docker/"+id1+"/docker/"+id2+"\n", id2)
	// A hybrid host: the first line naming an id wins.
	f("1:name=systemd:/\n2:memory:/docker/"+id2+"\n0::/system.slice/docker-"+id1+".scope\n", id2)
	// The path may hold colons; no trailing newline.
	f("0::/weird:name/docker-"+id1+".scope", id1)
}

func TestContainerID_Failure(t *testing.T) {
	f := func(cgroup string) {
		t.Helper()
		if got := containerID([]byte(cgroup)); got != nil {
			t.Fatalf("containerID(%q) = %q, want none", cgroup, got)
		}
	}
	f("")
	f("\n\n")
	f("0::/\n")                                                            // a private cgroup namespace, or the root
	f("0::/user.slice/user-1000.slice/session-2.scope\n")                  // a login session
	f("0::/system.slice/docker.service\n")                                 // the docker daemon itself
	f("4:memory:/process_api/d0cc2bd921cc4b3363e2918d95df81ab\n")          // 32 hex: not a container id
	f("0::/docker/" + strings.ToUpper(id1) + "\n")                         // upper case
	f("0::/docker/" + id1 + "0\n")                                         // 65 digits
	f("0::/docker/" + id1[:63] + "g\n")                                    // not hex
	f("/docker/" + id1 + "\n")                                             // no colons: not a cgroup line
	f("0:/docker/" + id1 + "\n")                                           // one colon
	f("0::/kubepods/besteffort/pod0b6c4d1e-8f2a-4c3b-9d5e-6f7a8b9c0d1e\n") // a pod, no container
}

// FuzzContainerID: no panic, and an id found is 64 lowercase hex digits
// that the input holds.
func FuzzContainerID(f *testing.F) {
	for _, s := range []string{
		"12:memory:/docker/" + id1 + "\n0::/\n",
		"0::/system.slice/docker-" + id1 + ".scope",
		"0::/machine.slice/libpod-" + id1 + ".scope/container\n",
		"0::/kubepods.slice/crio-" + id1 + ".scope",
		"0::/docker/" + id1 + "/docker/" + id2,
		"0:::::/-.scope/-/",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, cgroup []byte) {
		id := containerID(cgroup)
		if id == nil {
			return
		}
		if !isContainerID(id) || !bytes.Contains(cgroup, id) {
			t.Fatalf("containerID(%q) = %q", cgroup, id)
		}
	})
}
