package push

import (
	"context"
	"runtime"
	"time"

	"github.com/bucky3/bucky3/engine"
)

// A Pusher sends metrics to one backend. Run calls it from a single
// goroutine, so implementations need no locking.
type Pusher interface {
	// Push sends chunk, the oldest queued metrics. chunk aliases the queue
	// and is valid only during the call. It returns how many metrics from
	// the start of chunk it is done with: sent ones, and dropped ones that
	// no retry could ever deliver (nothing to encode, rejected by the
	// backend). The Pusher counts the reason of its drops itself, in
	// metrics_dropped_<reason>; Run counts the totals. Metrics past
	// sent+dropped stay queued for the next flush.
	//
	// A non-nil err means the backend could not be reached or refused the
	// push as a whole: Run backs off and retries the rest later. An error
	// marked with Permanent (a message too large for the network, HTTP 400
	// or 413) is not retried as is: Run bisects chunk[sent+dropped:] until
	// the failing metrics are alone, drops exactly those, counted by
	// reason, and pushes the rest in the same flush.
	//
	// Push may reorder chunk in place (see Partition), so that the metrics
	// it is done with form the prefix it reports.
	Push(ctx context.Context, chunk []engine.Metric) (sent, dropped int, err error)
}

// Counters are the self-report counters of a push destination (SPEC §2.2).
type Counters struct {
	Received         *engine.Counter // metrics_received
	Sent             *engine.Counter // metrics_sent
	Dropped          *engine.Counter // metrics_dropped, every reason
	DroppedFull      *engine.Counter // metrics_dropped_buffer_full
	DroppedShutdown  *engine.Counter // metrics_dropped_shutdown
	DroppedMemory    *engine.Counter // metrics_dropped_memory_limit
	ConnectionErrors *engine.Counter // connection_errors
	Buffered         *engine.Gauge   // metrics_buffered
	FlushErrors      *engine.Counter // flush_errors
}

// NewCounters looks up the counters of s, creating them at zero so that a
// report shows them before anything happens.
func NewCounters(s *engine.Stats) Counters {
	return Counters{
		Received:         s.Counter("metrics_received"),
		Sent:             s.Counter("metrics_sent"),
		Dropped:          s.Counter("metrics_dropped"),
		DroppedFull:      s.Counter("metrics_dropped_buffer_full"),
		DroppedShutdown:  s.Counter("metrics_dropped_shutdown"),
		DroppedMemory:    s.Counter("metrics_dropped_memory_limit"),
		ConnectionErrors: s.Counter("connection_errors"),
		Buffered:         s.Gauge("metrics_buffered"),
		FlushErrors:      s.FlushErrors,
	}
}

// Run applies the push policy: it queues the batches read from in and
// pushes them through p every flush interval, backing off on failures.
// While m.Memory is tight, each batch received trims the queue to half
// (AddTight), counted as metrics_dropped_memory_limit.
// When in is closed it pushes what it holds, once, bounded by ctx, and
// returns nil; metrics it could not push then are counted as dropped
// (reason shutdown). When ctx is cancelled it returns ctx.Err() promptly,
// also counting what it held as dropped.
//
// o must have passed the registry's checks (ValidateCommon, then Validate).
func Run(ctx context.Context, in <-chan *engine.Batch, m engine.Module, o Options, p Pusher) error {
	r := runner{
		o:        o,
		p:        p,
		c:        NewCounters(m.Stats),
		stats:    m.Stats,
		q:        NewQueue(o.BufferLimit),
		log:      m,
		interval: engine.Seconds(o.FlushInterval),
		tight:    m.Memory.Tight,
	}
	defer r.abandon()

	timer := time.NewTimer(r.interval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case b, ok := <-in:
			if !ok {
				r.flush(ctx, true)
				return nil
			}
			r.add(b.Metrics)
		case <-timer.C:
			r.flush(ctx, false)
			timer.Reset(r.interval)
		}
	}
}

type runner struct {
	o        Options
	p        Pusher
	c        Counters
	stats    *engine.Stats // for metrics_dropped_<reason> of permanent failures
	q        *Queue
	log      engine.Module
	interval time.Duration
	failing  bool // the last flush failed: log only the first failure of a run
	// loggedPermanent is when a permanent failure was last logged.
	loggedPermanent time.Time
	// tight is the agent's memory budget, read once per batch received.
	tight func() bool
}

func (r *runner) add(ms []engine.Metric) {
	r.c.Received.Add(uint64(len(ms)))
	if r.tight() {
		if n := r.q.AddTight(ms); n > 0 {
			r.c.Dropped.Add(uint64(n))
			r.c.DroppedMemory.Add(uint64(n))
		}
	} else if n := r.q.Add(ms); n > 0 {
		r.c.Dropped.Add(uint64(n))
		r.c.DroppedFull.Add(uint64(n))
	}
	r.c.Buffered.Set(int64(r.q.Len()))
}

// flush pushes queued metrics in chunks. A regular flush stops at
// push_count_limit metrics or push_time_limit; the final one (in closed)
// tries everything, bounded only by ctx.
func (r *runner) flush(ctx context.Context, final bool) {
	deadline := time.Now().Add(engine.Seconds(r.o.PushTimeLimit))
	budget := r.o.PushCountLimit
	for r.q.Len() > 0 && ctx.Err() == nil {
		if !final && (budget <= 0 || !time.Now().Before(deadline)) {
			break
		}
		n := r.o.ChunkSize
		if !final {
			n = min(n, budget)
		}
		// On one CPU, encoding a large flush would hold the socket readers
		// off: let one with datagrams waiting go first (bench/RESULTS.md,
		// Round 5 and "Design notes").
		runtime.Gosched()
		chunk := r.q.Peek(n)
		sent, dropped, err := r.push(ctx, chunk)
		r.q.Remove(sent + dropped)
		budget -= sent + dropped
		r.c.Sent.Add(uint64(sent))
		r.c.Dropped.Add(uint64(dropped))
		r.c.Buffered.Set(int64(r.q.Len()))
		if err != nil {
			r.fail(err)
			return
		}
		if sent+dropped == 0 {
			break // a Pusher that makes no progress must not spin the flush
		}
	}
	if r.failing && r.log.Log != nil {
		r.log.Log.Info("push recovered", "buffered", r.q.Len())
	}
	r.failing = false
	r.interval = engine.Seconds(r.o.FlushInterval)
}

// push hands chunk to the Pusher. On a permanent failure it bisects what
// the Pusher was not done with: a half that fails again is split again, and
// a metric failing alone is dropped under the error's reason. Halves that
// succeed are delivered in the same call, so one bad metric costs about
// 2·log2(chunk_size) extra pushes, not the chunk. It returns the prefix of
// chunk that is done and the first transient error.
func (r *runner) push(ctx context.Context, chunk []engine.Metric) (sent, dropped int, err error) {
	sent, dropped, err = r.p.Push(ctx, chunk)
	sent, dropped = clampDone(sent, dropped, len(chunk))
	reason, permanent := IsPermanent(err)
	if !permanent {
		return sent, dropped, err
	}
	rest := chunk[sent+dropped:]
	switch {
	case len(rest) == 0:
		return sent, dropped, nil
	case len(rest) == 1:
		r.dropPermanent(reason, err)
		return sent, dropped + 1, nil
	}
	half := len(rest) / 2
	for _, part := range [][]engine.Metric{rest[:half], rest[half:]} {
		if ctx.Err() != nil {
			return sent, dropped, ctx.Err()
		}
		s, d, err := r.push(ctx, part)
		sent, dropped = sent+s, dropped+d
		if err != nil || s+d < len(part) {
			return sent, dropped, err
		}
	}
	return sent, dropped, nil
}

// dropPermanent counts one metric that failed alone with a permanent error.
// Run counts the total; the reason goes to metrics_dropped_<reason>.
func (r *runner) dropPermanent(reason string, err error) {
	if r.stats != nil {
		r.stats.Counter("metrics_dropped_" + reason).Inc()
	}
	// The engine logs the counts once a minute; this adds the backend's
	// words, as often.
	if r.log.Log != nil && time.Since(r.loggedPermanent) >= engine.LossWarnInterval {
		r.loggedPermanent = time.Now()
		r.log.Log.Warn("metric dropped: the backend refuses it for good", "reason", reason, "err", err)
	}
}

func (r *runner) fail(err error) {
	r.c.ConnectionErrors.Inc()
	r.c.FlushErrors.Inc()
	r.interval = min(2*r.interval, engine.Seconds(r.o.MaxFlushInterval))
	if !r.failing && r.log.Log != nil {
		r.log.Log.Warn("push failed, backing off", "err", err, "buffered", r.q.Len(), "next_in", r.interval)
	}
	r.failing = true
}

// abandon counts what is still queued when Run returns as dropped: the
// queue does not survive a restart, and the counts must still add up.
func (r *runner) abandon() {
	if n := r.q.Len(); n > 0 {
		r.c.Dropped.Add(uint64(n))
		r.c.DroppedShutdown.Add(uint64(n))
		r.q.Remove(n)
	}
	r.c.Buffered.Set(0)
}

// clampDone guards the queue against a Pusher reporting more than it was given.
func clampDone(sent, dropped, n int) (int, int) {
	sent = max(0, min(sent, n))
	dropped = max(0, min(dropped, n-sent))
	return sent, dropped
}

// PushFunc adapts a function to the Pusher interface, so that a client can
// keep its push method unexported.
type PushFunc func(ctx context.Context, chunk []engine.Metric) (sent, dropped int, err error)

// Push calls f.
func (f PushFunc) Push(ctx context.Context, chunk []engine.Metric) (int, int, error) {
	return f(ctx, chunk)
}
