package journal

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/bucky3/bucky3/engine"
)

const (
	// maxBatch bounds a batch: a burst is emitted in batches of this many
	// metrics, without waiting for the flush interval.
	maxBatch = 1000
	// waitStep bounds one wait for new entries, so that ctx cancellation,
	// idle traces and the flush interval are noticed within it.
	waitStep = 250 * time.Millisecond
)

// rawEntry is a journal entry as the reader returns it. The map is the
// caller's.
type rawEntry struct {
	fields       map[string]string
	realtimeUsec uint64
	cursor       string
}

// reader is an open journal positioned for reading. Only the goroutine
// running Run uses it.
type reader interface {
	// next moves to the next entry and returns it; ok is false when
	// there is no entry yet.
	next() (e rawEntry, ok bool, err error)
	// wait blocks until the journal changes or d has passed.
	wait(d time.Duration)
	close()
}

// opener opens the journal Run reads — it does the I/O New must not do —
// positioned after cursor, or timestamp_window seconds back when cursor
// is empty or no longer in the journal.
type opener func(o *Options, log *slog.Logger, cursor string) (reader, error)

// Source is the systemd_journal source. Run must not be called
// concurrently with itself; the supervisor may call it again after it
// returned, and it then resumes after the last entry the previous Run
// read.
type Source struct {
	name string
	log  *slog.Logger
	opts Options
	open opener

	// cursor is the position of the last entry read, kept across Runs so
	// that a restarted module neither repeats nor skips entries.
	cursor string

	threshold level

	read        *engine.Counter
	skipped     *engine.Counter
	skipLevel   *engine.Counter
	skipEmpty   *engine.Counter
	stitched    *engine.Counter
	flushErrors *engine.Counter
}

// New returns a systemd_journal source configured by o, which must have
// passed Validate (the registry sees to it). It does no I/O: the journal
// is opened by Run. In a build without cgo it fails, since the journal
// reader needs libsystemd.
func New(m engine.Module, o Options) (*Source, error) {
	open, err := newOpener()
	if err != nil {
		return nil, err
	}
	threshold, _ := levelByName(o.JournalLogLevel)
	// A follower drops nothing itself; the counter exists because SPEC
	// §2.2 lists metrics_dropped in every source's report.
	m.Stats.Counter("metrics_dropped")
	return &Source{
		name:        m.Name,
		log:         m.Log,
		opts:        o,
		open:        open,
		threshold:   threshold,
		read:        m.Stats.Counter("entries_read"),
		skipped:     m.Stats.Counter("entries_skipped"),
		skipLevel:   m.Stats.Counter("entries_skipped_level"),
		skipEmpty:   m.Stats.Counter("entries_skipped_empty"),
		stitched:    m.Stats.Counter("traces_stitched"),
		flushErrors: m.Stats.FlushErrors,
	}, nil
}

// Run follows the journal from timestamp_window seconds back until ctx is
// cancelled, emitting a batch every flush_interval (sooner when maxBatch
// metrics are waiting). On cancellation it flushes everything it holds,
// traces in progress included, and returns nil. A journal that cannot be
// opened or read is a flush error and ends Run with an error, after the
// events read so far are emitted.
func (s *Source) Run(ctx context.Context, out engine.Emitter) error {
	if !s.opts.WaitStartup(ctx) {
		return nil
	}
	r, err := s.open(&s.opts, s.log, s.cursor)
	if err != nil {
		s.flushErrors.Inc()
		return err
	}
	defer r.close()

	p := s.newPipeline()
	interval := engine.Seconds(s.opts.FlushInterval)
	nextFlush := time.Now().Add(interval)
	for {
		caughtUp, err := p.drain(r)
		if err != nil {
			s.flushErrors.Inc()
			p.flushAll()
			p.emit(out)
			return fmt.Errorf("reading the journal: %w", err)
		}
		now := time.Now()
		if ctx.Err() != nil {
			p.flushAll()
			p.emit(out)
			return nil
		}
		// Idle traces only end once the backlog is read: before that,
		// a trace's next line may simply not have been read yet.
		if caughtUp {
			p.flushIdle(now)
		}
		if !now.Before(nextFlush) || len(p.metrics) >= maxBatch {
			p.emit(out)
			nextFlush = now.Add(interval)
		}
		if caughtUp {
			r.wait(min(waitStep, time.Until(nextFlush)))
		}
	}
}

// pipeline is the state of one Run: entries go through the level filter
// and the stitcher into metrics waiting for the next batch.
type pipeline struct {
	s       *Source
	stitch  *stitcher
	mapper  mapper
	done    []entry // scratch for the stitcher's output
	metrics []engine.Metric
}

func (s *Source) newPipeline() *pipeline {
	st := newStitcher()
	if s.opts.TraceLogLevel != "" {
		st.traceLevel, _ = levelByName(s.opts.TraceLogLevel)
		st.hasTraceLevel = true
	}
	return &pipeline{
		s:      s,
		stitch: st,
		mapper: mapper{
			bucket:        s.opts.JournalBucket,
			levelField:    s.opts.LevelFieldName,
			facilityField: s.opts.FacilityFieldName,
			decodeJSON:    s.opts.DecodeJSON,
			jsonLevel:     s.opts.JSONLevel,
		},
	}
}

// drain reads entries until the journal has no more (caughtUp), a batch
// is full or maxBatch entries were read, so that a long backlog still
// gets flushed and ctx checked along the way.
func (p *pipeline) drain(r reader) (caughtUp bool, err error) {
	for n := 0; n < maxBatch && len(p.metrics) < maxBatch; n++ {
		raw, ok, err := r.next()
		if err != nil || !ok {
			return true, err
		}
		p.s.cursor = raw.cursor
		p.s.read.Inc()
		e := entryFromFields(raw.fields, raw.realtimeUsec)
		if e.level > p.s.threshold {
			p.s.skipped.Inc()
			p.s.skipLevel.Inc()
			continue
		}
		p.done = p.stitch.add(p.done[:0], e, time.Now().UnixMilli())
		p.collect()
	}
	return false, nil
}

func (p *pipeline) flushIdle(now time.Time) {
	p.done = p.stitch.flushIdle(p.done[:0], now.UnixMilli())
	p.collect()
}

func (p *pipeline) flushAll() {
	p.done = p.stitch.flushAll(p.done[:0])
	p.collect()
}

// collect maps the stitcher's finished entries to metrics.
func (p *pipeline) collect() {
	for i := range p.done {
		e := &p.done[i]
		var ok bool
		p.metrics, ok = p.mapper.appendMetric(p.metrics, e)
		if !ok {
			p.s.skipped.Inc()
			p.s.skipEmpty.Inc()
			continue
		}
		if e.lines > 1 {
			p.s.stitched.Inc()
		}
	}
}

// emit hands the waiting metrics to out as one batch. The batch owns its
// metrics from then on, so the next one starts a new slice.
func (p *pipeline) emit(out engine.Emitter) {
	if len(p.metrics) == 0 {
		return
	}
	out.Emit(&engine.Batch{Source: p.s.name, Metrics: p.metrics})
	p.metrics = nil
}
