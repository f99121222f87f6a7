package engine

import (
	"log/slog"
	"math"
	"sync"
	"time"
)

// DefaultInboxSize is the number of batches a destination's inbox holds
// before the router drops batches for it.
const DefaultInboxSize = 1024

// inbox is a destination's bounded queue of batches.
type inbox struct {
	name    string
	ch      chan *Batch
	log     *slog.Logger
	dropped *Counter // metrics dropped because the inbox was full
	total   *Counter // metrics_dropped, shared with the destination's own drops
	warned  time.Time
	mu      sync.Mutex // guards warned
}

func newInbox(name string, size int, stats *Stats, log *slog.Logger) *inbox {
	return &inbox{
		name:    name,
		ch:      make(chan *Batch, size),
		log:     log,
		dropped: stats.Counter("metrics_dropped_inbox_full"),
		total:   stats.Counter("metrics_dropped"),
	}
}

// offer enqueues b without blocking; a full inbox drops it, counted and
// logged at most once a minute.
func (in *inbox) offer(b *Batch) {
	select {
	case in.ch <- b:
		return
	default:
	}
	n := uint64(len(b.Metrics))
	in.dropped.Add(n)
	in.total.Add(n)
	in.mu.Lock()
	defer in.mu.Unlock()
	if time.Since(in.warned) >= time.Minute {
		in.warned = time.Now()
		in.log.Warn("destination inbox full, dropping batches", "from", b.Source, "dropped_total", in.dropped.Load())
	}
}

// router fans batches out to the inboxes of destinations. Once closed it
// drops what sources still emit (a source abandoned at the shutdown
// deadline must not write to a closed channel).
type router struct {
	mu     sync.RWMutex
	closed bool
}

// emitter is the Emitter a source receives: it applies the source's
// metadata and relabel rules, then offers the batch to every destination
// the source feeds.
type emitter struct {
	router    *router
	source    string
	metadata  []Tag
	rules     []rule
	inboxes   []*inbox
	produced  *Counter
	filtered  *Counter
	notFinite *Counter
	bucketTag bool
}

func newEmitter(r *router, name string, o *SourceOptions, inboxes []*inbox, stats *Stats) *emitter {
	e := &emitter{
		router:   r,
		source:   name,
		inboxes:  inboxes,
		produced: stats.Counter("metrics_produced"),
		filtered: stats.Counter("metrics_filtered"),
		// Counted and logged as a loss: see IsLoss.
		notFinite: stats.Counter("values_not_finite"),
		bucketTag: o.BucketTag,
	}
	for k, v := range o.Metadata {
		e.metadata = append(e.metadata, Tag{Key: k, Value: v})
	}
	e.metadata = SortTags(e.metadata)
	// Validated at config load, so this cannot fail here.
	e.rules, _ = compileRules(o.MetricPostprocessor)
	return e
}

func (e *emitter) Emit(b *Batch) {
	kept := b.Metrics[:0]
	for i := range b.Metrics {
		m := &b.Metrics[i]
		e.decorate(m)
		if !e.finite(m) {
			continue
		}
		if !relabel(e.rules, m) {
			e.filtered.Inc()
			continue
		}
		kept = append(kept, *m)
	}
	b.Metrics = kept
	if len(b.Metrics) == 0 {
		return
	}
	if b.Source == "" {
		b.Source = e.source
	}
	e.produced.Add(uint64(len(b.Metrics)))
	e.router.mu.RLock()
	defer e.router.mu.RUnlock()
	if e.router.closed {
		return
	}
	for _, in := range e.inboxes {
		in.offer(b)
	}
}

// finite drops m's ±Inf and NaN fields, which no destination can write
// (valid input can overflow: "c:1e300|c|@1e-10"), counting each. It
// reports whether m has a field left.
func (e *emitter) finite(m *Metric) bool {
	bad := 0
	for _, f := range m.Fields {
		if f.Value.Kind == KindNumber && (math.IsInf(f.Value.Num, 0) || math.IsNaN(f.Value.Num)) {
			bad++
		}
	}
	if bad == 0 {
		return true
	}
	e.notFinite.Add(uint64(bad))
	// A new slice: m.Fields may be shared with other metrics.
	fields := make([]Field, 0, len(m.Fields)-bad)
	for _, f := range m.Fields {
		if f.Value.Kind != KindNumber || !math.IsInf(f.Value.Num, 0) && !math.IsNaN(f.Value.Num) {
			fields = append(fields, f)
		}
	}
	m.Fields = fields
	return len(fields) > 0
}

// decorate merges the source's metadata into m's tags (tags m already has
// win), then moves a bucket tag into the bucket unless bucket_tag is off.
func (e *emitter) decorate(m *Metric) {
	if len(e.metadata) > 0 {
		m.Tags = mergeTags(m.Tags, e.metadata)
	}
	if !e.bucketTag {
		return
	}
	if b, ok := m.Tag("bucket"); ok {
		m.DeleteTag("bucket")
		if b != "" {
			m.Bucket = b
		}
	}
}

// mergeTags merges two sorted tag lists into a new one; own wins on equal
// keys. It always allocates a new slice, because own may be shared with
// other metrics of the batch.
func mergeTags(own, extra []Tag) []Tag {
	out := make([]Tag, 0, len(own)+len(extra))
	i, j := 0, 0
	for i < len(own) || j < len(extra) {
		switch {
		case j == len(extra) || i < len(own) && own[i].Key < extra[j].Key:
			out = append(out, own[i])
			i++
		case i == len(own) || extra[j].Key < own[i].Key:
			out = append(out, extra[j])
			j++
		default:
			out = append(out, own[i])
			i++
			j++
		}
	}
	return out
}

func (r *router) close(inboxes []*inbox) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.closed = true
	for _, in := range inboxes {
		close(in.ch)
	}
}
