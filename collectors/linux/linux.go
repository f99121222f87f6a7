package linux

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/procfs"
	"github.com/prometheus/procfs/blockdevice"
	"golang.org/x/sys/unix"

	"github.com/bucky3/bucky3/engine"
)

// Stats is the linux_stats source: it polls /proc and statvfs every flush
// interval and emits one batch per collection. Run must not be called
// concurrently with itself; the supervisor may call it again after it
// returned.
type Stats struct {
	name    string
	log     *slog.Logger
	opts    Options
	filters filters

	produced    *engine.Counter
	readErrors  *engine.Counter
	flushErrors *engine.Counter

	// statfs is unix.Statfs; tests replace it so that golden output does
	// not depend on the disks of the machine running them.
	statfs func(path string, st *unix.Statfs_t) error
	// pending holds, by mount point, the statfs calls that missed their
	// deadline and have not returned yet. Only the goroutine running Run
	// touches the map; it outlives Run so that a restart does not query a
	// hung mount a second time.
	pending map[string]*statfsCall

	// beat is Begin/End around each collection: a collection that hangs
	// shows as stuck, the wait between two does not.
	beat *engine.Beat

	// proc and block are opened by Run: opening stats the proc root, and
	// New does no I/O.
	proc  procfs.FS
	block blockdevice.FS

	// failing holds the files whose last read failed, so that a missing
	// file is logged when it goes missing, not every interval. Only the
	// goroutine running Run touches it.
	failing map[string]bool

	// sizes of the previous collection, to allocate the next one in one go.
	lastMetrics, lastFields, lastTags int
}

// New returns a linux_stats source configured by o, which must have
// passed Validate (the registry sees to it). It compiles the lists and
// does no I/O: files are first opened by Run.
func New(m engine.Module, o Options) (*Stats, error) {
	f, err := o.filters()
	if err != nil {
		return nil, err // only options that skipped Validate get here
	}
	// A poller has nothing to drop; the counter exists because SPEC §2.2
	// lists metrics_dropped in every source's report.
	m.Stats.Counter("metrics_dropped")
	return &Stats{
		name:        m.Name,
		log:         m.Log,
		opts:        o,
		filters:     f,
		produced:    m.Stats.Counter("metrics_produced"),
		readErrors:  m.Stats.Counter("read_errors"),
		flushErrors: m.Stats.FlushErrors,
		statfs:      unix.Statfs,
		pending:     map[string]*statfsCall{},
		beat:        m.Beat("collect"),
		failing:     map[string]bool{},
	}, nil
}

// Run collects right away (or after the random startup delay of SPEC §2.1
// when randomize_startup is set), then every flush_interval, until ctx is
// cancelled. It returns nil on cancellation without a final collection:
// a poller holds no pending data, and a reading taken during shutdown
// would only duplicate the last one. It returns an error only when
// proc_path cannot be opened at all.
func (s *Stats) Run(ctx context.Context, out engine.Emitter) error {
	if err := s.open(); err != nil {
		return err
	}
	if !s.opts.WaitStartup(ctx) {
		return nil
	}
	tick := time.NewTicker(engine.Seconds(s.opts.FlushInterval))
	defer tick.Stop()
	for {
		s.flush(out, time.Now())
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (s *Stats) open() error {
	proc, err := procfs.NewFS(s.opts.ProcPath)
	if err != nil {
		return fmt.Errorf("proc_path: %w", err)
	}
	// blockdevice also wants a sysfs root, which it only uses for files
	// this module never reads; proc_path is a directory known to exist.
	block, err := blockdevice.NewFS(s.opts.ProcPath, s.opts.ProcPath)
	if err != nil {
		return fmt.Errorf("proc_path: %w", err)
	}
	s.proc, s.block = proc, block
	return nil
}

// flush emits one collection. A collection that read nothing at all is a
// flush error; one that lost some files is not (read_errors counts those).
func (s *Stats) flush(out engine.Emitter, now time.Time) {
	s.beat.Begin()
	metrics := s.collect(now)
	s.beat.End()
	if len(metrics) == 0 {
		s.flushErrors.Inc()
		return
	}
	s.produced.Add(uint64(len(metrics)))
	out.Emit(&engine.Batch{Source: s.name, Metrics: metrics})
}

// check reports whether reading file succeeded, logging a failure once
// until the file can be read again.
func (s *Stats) check(file string, err error) bool {
	if err == nil {
		if s.failing[file] {
			delete(s.failing, file)
			s.log.Info("reading again", "file", file)
		}
		return true
	}
	s.readErrors.Inc()
	if !s.failing[file] {
		s.failing[file] = true
		s.log.Warn("skipping metrics from unreadable file", "file", file, "err", err)
	}
	return false
}

// builder accumulates the metrics of one collection. The fields and tags
// of all metrics share two backing arrays, so a collection costs a few
// allocations rather than two per metric. Each metric's slices are capped
// (s[i:j:j]) so that a consumer appending to one cannot overwrite the
// next.
type builder struct {
	ts      int64
	metrics []engine.Metric
	fields  []engine.Field
	tags    []engine.Tag
	start   int // first field of the metric being built
}

func (b *builder) field(name string, v float64) {
	b.fields = append(b.fields, engine.Field{Name: name, Value: engine.Number(v)})
}

// metric closes the metric being built under bucket with tags, which the
// caller passes sorted by key. A metric without fields is dropped: its
// source lacked every field it asks for.
func (b *builder) metric(bucket string, tags ...engine.Tag) {
	if len(b.fields) == b.start {
		return
	}
	m := engine.Metric{Bucket: bucket, Timestamp: b.ts, Fields: b.fields[b.start:len(b.fields):len(b.fields)]}
	if len(tags) > 0 {
		t := len(b.tags)
		b.tags = append(b.tags, tags...)
		m.Tags = b.tags[t:len(b.tags):len(b.tags)]
	}
	b.metrics = append(b.metrics, m)
	b.start = len(b.fields)
}
