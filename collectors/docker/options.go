package docker

import (
	"fmt"
	"strings"

	"github.com/bucky3/bucky3/engine"
)

// Options configures a docker_stats module. The zero value is not useful:
// start from DefaultOptions.
type Options struct {
	engine.SourceOptions
	// DockerSocket is the path of the Docker Engine API's unix socket.
	DockerSocket string `toml:"docker_socket"`
	// CgroupPath is where the cgroup hierarchies are mounted: the unified
	// hierarchy itself under cgroup v2, the directory holding one
	// directory per controller under v1.
	CgroupPath string `toml:"cgroup_path"`
	// ProcPath is the root of the proc filesystem, read for the containers'
	// network counters and the host's memory size and CPU count.
	ProcPath string `toml:"proc_path"`
	// EnvMapping maps the name of a container environment variable to the
	// tag that carries its value, e.g. {SERVICE_NAME = "service"}.
	EnvMapping map[string]string `toml:"env_mapping"`
	// SocketTimeout (seconds) bounds each call to the daemon, together
	// with flush_interval (the smaller one applies).
	SocketTimeout float64 `toml:"socket_timeout"`
	// FilesystemInterval (seconds) is how often the containers' sizes are
	// asked for: the daemon walks every writable layer to answer.
	FilesystemInterval float64 `toml:"filesystem_interval"`
}

// DefaultOptions returns the defaults: the system socket and mount points,
// no environment mapping, a 5 s socket timeout and sizes every 5 minutes.
func DefaultOptions() Options {
	return Options{
		SourceOptions:      engine.DefaultSourceOptions(),
		DockerSocket:       "/var/run/docker.sock",
		CgroupPath:         "/sys/fs/cgroup",
		ProcPath:           "/proc",
		SocketTimeout:      5,
		FilesystemInterval: 300,
	}
}

// reservedTags are set by the module itself; neither labels nor
// env_mapping may produce them. bucket is reserved because SPEC §1 makes a
// tag named bucket replace the metric's bucket.
var reservedTags = []string{"bucket", "docker_id", "docker_name", "name"}

// Validate checks the options of this module type, naming the first bad
// one. The engine's registry calls it after checking the common options;
// New trusts options that passed it.
func (o *Options) Validate() error {
	for _, p := range []struct{ option, value string }{
		{"docker_socket", o.DockerSocket},
		{"cgroup_path", o.CgroupPath},
		{"proc_path", o.ProcPath},
	} {
		if p.value == "" {
			return fmt.Errorf("%s: must not be empty", p.option)
		}
	}
	if err := engine.CheckSeconds("socket_timeout", o.SocketTimeout, 0); err != nil {
		return err
	}
	if err := engine.CheckSeconds("filesystem_interval", o.FilesystemInterval, 0); err != nil {
		return err
	}
	for env, tag := range o.EnvMapping {
		switch {
		case env == "" || strings.ContainsAny(env, "="):
			return fmt.Errorf("env_mapping: bad environment variable name %q", env)
		case !validTagKey(tag):
			return fmt.Errorf("env_mapping: tag name %q for %s must match [A-Za-z][A-Za-z0-9_]*", tag, env)
		case isReserved(tag):
			return fmt.Errorf("env_mapping: tag name %q for %s is set by the module itself", tag, env)
		}
	}
	return nil
}
