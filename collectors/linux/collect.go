package linux

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/procfs"

	"github.com/bucky3/bucky3/engine"
)

// userHZ is the unit of /proc/stat. The kernel fixes it at 100 for user
// space whatever its internal tick rate, and procfs divides by it.
const userHZ = 100

// collect reads every group once. A group whose file cannot be read is
// skipped (see check); the others still report.
func (s *Stats) collect(now time.Time) []engine.Metric {
	b := builder{
		ts:      now.UnixMilli(),
		metrics: make([]engine.Metric, 0, s.lastMetrics),
		fields:  make([]engine.Field, 0, s.lastFields),
		tags:    make([]engine.Tag, 0, s.lastTags),
	}
	s.cpuAndActivity(&b)
	s.memory(&b)
	s.interfaces(&b)
	s.filesystems(&b)
	s.disks(&b)
	s.protocols(&b)
	s.lastMetrics, s.lastFields, s.lastTags = len(b.metrics), len(b.fields), len(b.tags)
	return b.metrics
}

// cpuAndActivity emits system_cpu per cpuN line (the summary "cpu" line is
// left out, as in bucky3) and system_activity.
func (s *Stats) cpuAndActivity(b *builder) {
	st, err := guard(s.proc.Stat)
	if s.check("stat", err) {
		for _, id := range slices.Sorted(maps.Keys(st.CPU)) {
			c := st.CPU[id]
			// procfs hands out seconds; rounding restores the exact counter.
			for _, f := range [...]struct {
				name string
				v    float64
			}{
				{"user", c.User}, {"nice", c.Nice}, {"system", c.System}, {"idle", c.Idle},
				{"wait", c.Iowait}, {"interrupt", c.IRQ}, {"softirq", c.SoftIRQ}, {"steal", c.Steal},
			} {
				b.field(f.name, math.Round(f.v*userHZ))
			}
			b.metric("system_cpu", tagName("cpu"+strconv.FormatInt(id, 10)))
		}
		b.field("switches", float64(st.ContextSwitches))
		b.field("forks", float64(st.ProcessCreated))
		b.field("running", float64(st.ProcessesRunning))
		b.field("interrupts", float64(st.IRQTotal))
	}
	if la, err := guard(s.proc.LoadAvg); s.check("loadavg", err) {
		b.field("load", la.Load1)
	}
	b.metric("system_activity")
}

// memoryFields maps meminfo lines (kB) to system_memory fields (bytes).
var memoryFields = [...]struct {
	name string
	kB   func(*procfs.Meminfo) *uint64
}{
	{"total_bytes", func(m *procfs.Meminfo) *uint64 { return m.MemTotal }},
	{"free_bytes", func(m *procfs.Meminfo) *uint64 { return m.MemFree }},
	{"available_bytes", func(m *procfs.Meminfo) *uint64 { return m.MemAvailable }},
	{"shared_bytes", func(m *procfs.Meminfo) *uint64 { return m.Shmem }},
	{"cached_bytes", func(m *procfs.Meminfo) *uint64 { return m.Cached }},
	{"slab_bytes", func(m *procfs.Meminfo) *uint64 { return m.Slab }},
	{"mapped_bytes", func(m *procfs.Meminfo) *uint64 { return m.Mapped }},
	{"swap_total_bytes", func(m *procfs.Meminfo) *uint64 { return m.SwapTotal }},
	{"swap_free_bytes", func(m *procfs.Meminfo) *uint64 { return m.SwapFree }},
	{"swap_cached_bytes", func(m *procfs.Meminfo) *uint64 { return m.SwapCached }},
}

func (s *Stats) memory(b *builder) {
	mi, err := guard(s.proc.Meminfo)
	if !s.check("meminfo", err) {
		return
	}
	for _, f := range memoryFields {
		// A kernel too old for a line (MemAvailable appeared in 3.14)
		// leaves the field out rather than reporting a false zero.
		if v := f.kB(&mi); v != nil {
			b.field(f.name, float64(*v)*1024)
		}
	}
	b.metric("system_memory")
}

func (s *Stats) interfaces(b *builder) {
	nd, err := guard(s.proc.NetDev)
	if !s.check("net/dev", err) {
		return
	}
	for _, name := range slices.Sorted(maps.Keys(nd)) {
		if !s.filters.iface.includes(name) {
			continue
		}
		d := nd[name]
		b.field("rx_bytes", float64(d.RxBytes))
		b.field("rx_packets", float64(d.RxPackets))
		b.field("rx_errors", float64(d.RxErrors))
		b.field("rx_dropped", float64(d.RxDropped))
		b.field("tx_bytes", float64(d.TxBytes))
		b.field("tx_packets", float64(d.TxPackets))
		b.field("tx_errors", float64(d.TxErrors))
		b.field("tx_dropped", float64(d.TxDropped))
		b.metric("system_interface", tagName(name))
	}
}

// sectorSize is the unit of the *_sectors columns of /proc/diskstats,
// 512 bytes whatever the device's real sector size.
const sectorSize = 512

// The column counts of /proc/diskstats lines (device ids included): 4.18
// added the four discard columns, 5.5 the two flush columns.
const (
	diskstatsDiscard = 18
	diskstatsFlush   = 20
)

func (s *Stats) disks(b *builder) {
	ds, err := guard(s.block.ProcDiskstats)
	if !s.check("diskstats", err) {
		return
	}
	for _, d := range ds {
		if !s.filters.disk.includes(d.DeviceName) {
			continue
		}
		b.field("read_ops", float64(d.ReadIOs))
		b.field("read_merged", float64(d.ReadMerges))
		b.field("read_sectors", float64(d.ReadSectors))
		b.field("read_time", float64(d.ReadTicks))
		b.field("write_ops", float64(d.WriteIOs))
		b.field("write_merged", float64(d.WriteMerges))
		b.field("write_sectors", float64(d.WriteSectors))
		b.field("write_time", float64(d.WriteTicks))
		b.field("in_progress", float64(d.IOsInProgress))
		b.field("io_time", float64(d.IOsTotalTicks))
		b.field("weighted_time", float64(d.WeightedIOTicks))
		b.field("read_bytes", float64(d.ReadSectors)*sectorSize)
		b.field("write_bytes", float64(d.WriteSectors)*sectorSize)
		if d.IoStatsCount >= diskstatsDiscard {
			b.field("discard_ops", float64(d.DiscardIOs))
			b.field("discard_merged", float64(d.DiscardMerges))
			b.field("discard_sectors", float64(d.DiscardSectors))
			b.field("discard_time", float64(d.DiscardTicks))
			b.field("discard_bytes", float64(d.DiscardSectors)*sectorSize)
		}
		if d.IoStatsCount >= diskstatsFlush {
			b.field("flush_ops", float64(d.FlushRequestsCompleted))
			b.field("flush_time", float64(d.TimeSpentFlushing))
		}
		b.metric("system_disk", tagName(d.DeviceName))
	}
}

func tagName(name string) engine.Tag { return engine.Tag{Key: "name", Value: name} }

// guard turns a panic of a procfs parser into an error. procfs v0.23
// indexes past the end of a short /proc/net/dev line (found by
// FuzzCollect); a damaged file must cost its group, not the module.
func guard[T any](read func() (T, error)) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("procfs parser panic: %v", r)
		}
	}()
	return read()
}
