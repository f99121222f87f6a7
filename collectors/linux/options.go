package linux

import (
	"fmt"
	"regexp"

	"github.com/bucky3/bucky3/engine"
)

// Options configures a linux_stats module. The zero value is not useful:
// start from DefaultOptions.
type Options struct {
	engine.SourceOptions
	// ProcPath is the root of the proc filesystem; tests point it at a
	// fixture tree.
	ProcPath string `toml:"proc_path"`
	// The lists hold regular expressions, each matched against the whole
	// name (they are anchored as ^(?:re)$). Disks match on the device name
	// of /proc/diskstats, interfaces on the name in /proc/net/dev, and
	// filesystems on any of type, mount point or device. A whitelist match
	// includes and skips the blacklist; otherwise a blacklist match
	// excludes; otherwise the item is included.
	DiskWhitelist       []string `toml:"disk_whitelist"`
	DiskBlacklist       []string `toml:"disk_blacklist"`
	FilesystemWhitelist []string `toml:"filesystem_whitelist"`
	FilesystemBlacklist []string `toml:"filesystem_blacklist"`
	InterfaceWhitelist  []string `toml:"interface_whitelist"`
	InterfaceBlacklist  []string `toml:"interface_blacklist"`
	// StatfsTimeout (seconds) is how long a collection waits for the
	// statfs calls of the mounts; a mount that misses it is skipped until
	// its call returns.
	StatfsTimeout float64 `toml:"statfs_timeout"`
}

// DefaultOptions returns the defaults of SPEC §6: /proc, no whitelists,
// loop/ram/sr disks and in-memory or image filesystems blacklisted, and a
// 5 s statfs deadline.
func DefaultOptions() Options {
	return Options{
		SourceOptions:       engine.DefaultSourceOptions(),
		ProcPath:            "/proc",
		DiskBlacklist:       []string{`loop\d+`, `ram\d+`, `sr\d+`},
		FilesystemBlacklist: []string{"tmpfs", "devtmpfs", "rootfs", "squashfs"},
		StatfsTimeout:       5,
	}
}

// Validate checks the options of this module type, naming the first bad
// one. The engine's registry calls it after checking the common options;
// New trusts options that passed it.
func (o *Options) Validate() error {
	if o.ProcPath == "" {
		return fmt.Errorf("proc_path: must not be empty")
	}
	if err := engine.CheckSeconds("statfs_timeout", o.StatfsTimeout, 0); err != nil {
		return err
	}
	_, err := o.filters()
	return err
}

// filters is what Validate checks and New keeps: the compiled lists.
type filters struct {
	disk, filesystem, iface filter
}

// filters compiles the lists, naming the option of the first bad
// expression.
func (o *Options) filters() (filters, error) {
	var f filters
	lists := []struct {
		option string
		res    []string
		dst    *[]*regexp.Regexp
	}{
		{"disk_whitelist", o.DiskWhitelist, &f.disk.white},
		{"disk_blacklist", o.DiskBlacklist, &f.disk.black},
		{"filesystem_whitelist", o.FilesystemWhitelist, &f.filesystem.white},
		{"filesystem_blacklist", o.FilesystemBlacklist, &f.filesystem.black},
		{"interface_whitelist", o.InterfaceWhitelist, &f.iface.white},
		{"interface_blacklist", o.InterfaceBlacklist, &f.iface.black},
	}
	for _, l := range lists {
		for _, re := range l.res {
			c, err := regexp.Compile(`^(?:` + re + `)$`)
			if err != nil {
				return f, fmt.Errorf("%s: bad regular expression %q: %w", l.option, re, err)
			}
			*l.dst = append(*l.dst, c)
		}
	}
	return f, nil
}

// filter is one kind's whitelist and blacklist. It is read-only after
// construction, so collections never contend on it.
type filter struct {
	white, black []*regexp.Regexp
}

// includes applies SPEC §6: an item is described by one or more names
// (a filesystem by type, mount point and device) and a list matches the
// item when one of its expressions matches one of the names.
func (f *filter) includes(names ...string) bool {
	if anyMatch(f.white, names) {
		return true
	}
	return !anyMatch(f.black, names)
}

func anyMatch(res []*regexp.Regexp, names []string) bool {
	for _, re := range res {
		for _, n := range names {
			if re.MatchString(n) {
				return true
			}
		}
	}
	return false
}
