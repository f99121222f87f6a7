package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ErrKeepsFailing is returned by Agent.Run when a module kept failing and
// the agent stopped everything.
var ErrKeepsFailing = errors.New("a module keeps failing")

// ErrAbandoned is returned by Agent.Run when a module had not finished its
// final flush or push by the shutdown deadline.
var ErrAbandoned = errors.New("shutdown deadline passed before every module finished")

// ErrLostAtShutdown is returned by Agent.Run when data was dropped during
// the shutdown (a final push that failed, say): a clean exit means that
// everything received was delivered or counted as dropped before the signal.
var ErrLostAtShutdown = errors.New("data dropped during shutdown")

// Restart policy of SPEC §2.1: a failed module restarts after RestartDelay;
// one started more than maxStarts times with an average of under
// failingPeriod between its recent starts keeps failing.
const (
	RestartDelay  = time.Second
	maxStarts     = 5
	failingPeriod = 60 * time.Second
)

// Agent runs the configured modules under supervision.
type Agent struct {
	log             *slog.Logger
	shutdownTimeout time.Duration
	router          router
	sources         []*runner
	destinations    []*runner
	inboxes         []*inbox
	memory          *Memory
	health          *health
}

// runner is one module instance and its restart bookkeeping.
type runner struct {
	name     string
	log      *slog.Logger
	stats    *Stats
	report   time.Duration // self-report interval, 0 when off
	source   Source
	emitter  *emitter
	dest     Destination
	inbox    *inbox
	starts   []time.Time
	running  func()      // tells readiness that Run has started
	finished atomic.Bool // returned for good at shutdown, not abandoned
}

// NewAgent builds every module of cfg. Logs go to w in the configured
// format; each module's logger carries its name and its own level.
func NewAgent(cfg *Config, w io.Writer) (*Agent, error) {
	a := &Agent{
		log:             NewLogger(w, cfg.Global.LogFormat, ParseLevel(cfg.Global.LogLevel)).With("module", "agent"),
		shutdownTimeout: Seconds(cfg.Global.ShutdownTimeout),
		memory:          NewMemory(uint64(cfg.Global.MemoryLimit)),
		health:          newHealth(),
	}
	byName := map[string]*inbox{}
	var allInboxes []*inbox
	for _, mc := range cfg.Modules {
		r := &runner{
			name:  mc.Name,
			log:   NewLogger(w, cfg.Global.LogFormat, ParseLevel(mc.Common.LogLevel)).With("module", mc.Name),
			stats: NewStats(),
		}
		r.running = a.health.wait()
		if mc.Common.SelfReport {
			r.report = Seconds(mc.Common.SelfReportInterval)
		}
		built, err := mc.build(Module{Name: mc.Name, Type: mc.Type.Name, Log: r.log, Stats: r.stats, Memory: a.memory, AllStats: a.allStats, health: a.health})
		if err != nil {
			return nil, &ConfigError{Module: mc.Name, Err: err}
		}
		switch m := built.(type) {
		case Source:
			r.source = m
			a.sources = append(a.sources, r)
		case Destination:
			r.dest = m
			r.inbox = newInbox(mc.Name, DefaultInboxSize, r.stats, r.log)
			byName[mc.Name] = r.inbox
			allInboxes = append(allInboxes, r.inbox)
			a.destinations = append(a.destinations, r)
		}
	}
	a.inboxes = allInboxes
	for i, r := range a.sources {
		o := cfg.sourceOptions(r.name)
		targets := allInboxes
		if len(o.DestinationModules) > 0 {
			targets = nil
			for _, d := range o.DestinationModules {
				targets = append(targets, byName[d])
			}
		}
		a.sources[i].emitter = newEmitter(&a.router, r.name, o, targets, r.stats)
	}
	return a, nil
}

// Run runs every module until ctx is cancelled, then shuts down: sources
// do their final flush, destinations push what they hold, all within the
// shutdown timeout. It returns nil after a clean shutdown, ErrKeepsFailing
// when a module kept failing, and ErrAbandoned when a module missed the
// shutdown deadline.
func (a *Agent) Run(ctx context.Context) error {
	destCtx, abandon := context.WithCancel(context.Background())
	defer abandon()
	srcCtx, stopSources := context.WithCancel(ctx)
	defer stopSources()
	failing := make(chan string, len(a.sources)+len(a.destinations))

	var destWG, srcWG, reportWG sync.WaitGroup
	for _, r := range a.destinations {
		destWG.Go(func() {
			a.supervise(destCtx, r, failing, func(ctx context.Context) error { return r.dest.Run(ctx, r.inbox.ch) })
		})
	}
	for _, r := range a.sources {
		srcWG.Go(func() {
			a.supervise(srcCtx, r, failing, func(ctx context.Context) error { return r.source.Run(ctx, r.emitter) })
		})
	}
	for _, r := range append(a.sources[:len(a.sources):len(a.sources)], a.destinations...) {
		if r.report > 0 {
			reportWG.Go(func() { a.selfReport(srcCtx, r) })
		}
	}
	memCtx, stopMemory := context.WithCancel(context.Background())
	var memWG sync.WaitGroup
	memWG.Go(func() { a.memory.run(memCtx) })
	defer func() {
		stopMemory()
		memWG.Wait()
	}()
	a.log.Info("started", "sources", len(a.sources), "destinations", len(a.destinations))
	stopWarnings := make(chan struct{})
	warned := make(chan struct{})
	go func() {
		defer close(warned)
		a.warnLosses(stopWarnings, LossWarnInterval)
	}()
	defer func() {
		close(stopWarnings)
		<-warned
		a.logTotals()
	}()

	var result error
	select {
	case <-ctx.Done():
		a.log.Info("shutting down", "deadline", a.shutdownTimeout)
	case name := <-failing:
		a.log.Error("module keeps failing, stopping the agent", "failing_module", name)
		result = ErrKeepsFailing
	}
	deadline := time.Now().Add(a.shutdownTimeout)
	lostBefore := a.lossTotals()
	stopSources()
	reportWG.Wait()
	if !waitUntil(&srcWG, deadline) {
		result = firstErr(result, ErrAbandoned)
	}
	// A last self report, after the sources' final flush, so that the
	// destinations' final push carries the counts up to the end.
	for _, r := range append(a.sources[:len(a.sources):len(a.sources)], a.destinations...) {
		if r.report > 0 {
			a.emitReport(r, time.Now())
		}
	}
	a.router.close(a.inboxes)
	if !waitUntil(&destWG, deadline) {
		result = firstErr(result, ErrAbandoned)
		abandon()
		// Abandoned destinations get a moment to notice ctx and return,
		// so their goroutines do not outlive Run in the common case.
		waitUntil(&destWG, time.Now().Add(time.Second))
	}
	for _, r := range append(a.sources, a.destinations...) {
		if !r.finished.Load() {
			attrs := []any{"abandoned_module", r.name}
			if r.inbox != nil {
				attrs = append(attrs, "batches_in_inbox", len(r.inbox.ch))
			}
			for _, v := range r.stats.Values() {
				if v.Gauge && v.Value != 0 {
					attrs = append(attrs, v.Name, v.Value)
				}
			}
			a.log.Error("module abandoned at the shutdown deadline, with what it held", attrs...)
		}
	}
	if lost := a.lostSince(lostBefore); len(lost) > 0 {
		a.log.Error("data dropped during shutdown", lost...)
		result = firstErr(result, ErrLostAtShutdown)
	}
	return result
}

// allStats lists every module's counters, sources first.
func (a *Agent) allStats() []ModuleStats {
	out := make([]ModuleStats, 0, len(a.sources)+len(a.destinations))
	for _, r := range a.sources {
		out = append(out, ModuleStats{Name: r.name, Kind: ModuleSource, Stats: r.stats})
	}
	for _, r := range a.destinations {
		out = append(out, ModuleStats{Name: r.name, Kind: ModuleDestination, Stats: r.stats})
	}
	return out
}

// firstErr keeps the first error: a keeps-failing stop stays the reason
// even when the shutdown that follows also misses its deadline.
func firstErr(current, next error) error {
	if current != nil {
		return current
	}
	return next
}

// waitUntil waits for wg until deadline and reports whether wg finished.
func waitUntil(wg *sync.WaitGroup, deadline time.Time) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-done:
		return true
	case <-timer.C:
		return false
	}
}

// supervise runs a module until it is done, restarting it when it fails.
func (a *Agent) supervise(ctx context.Context, r *runner, failing chan<- string, run func(context.Context) error) {
	for {
		r.started(time.Now())
		r.running()
		err := runSafely(ctx, run)
		if r.done(ctx, &a.router) {
			if err != nil && !errors.Is(err, context.Canceled) {
				r.log.Error("module failed during shutdown", "err", err)
			}
			// A source is done once told to stop; a destination that
			// returns only because ctx was cancelled was abandoned.
			r.finished.Store(r.source != nil || ctx.Err() == nil)
			return
		}
		r.stats.Counter("restarts").Inc()
		if err == nil {
			err = errors.New("returned before shutdown")
		}
		r.log.Error("module failed, restarting", "err", err, "restart_in", RestartDelay)
		if r.keepsFailing() {
			r.log.Error("module keeps failing", "starts", len(r.starts))
			failing <- r.name
			r.finished.Store(true)
			return
		}
		select {
		case <-time.After(RestartDelay):
		case <-ctx.Done():
			r.finished.Store(r.source != nil)
			return
		}
	}
}

// done reports whether a module that returned has finished for good: a
// source once it is told to stop, a destination once its inbox is closed.
func (r *runner) done(ctx context.Context, rt *router) bool {
	if r.source != nil {
		return ctx.Err() != nil
	}
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	return rt.closed || ctx.Err() != nil
}

// started records a start, keeping only the starts keepsFailing reads.
func (r *runner) started(at time.Time) {
	if len(r.starts) > maxStarts {
		r.starts = slices.Delete(r.starts, 0, len(r.starts)-maxStarts)
	}
	r.starts = append(r.starts, at)
}

func (r *runner) keepsFailing() bool {
	if len(r.starts) <= maxStarts {
		return false
	}
	recent := r.starts[len(r.starts)-maxStarts-1:]
	average := recent[len(recent)-1].Sub(recent[0]) / maxStarts
	return average < failingPeriod
}

// runSafely turns a panic of the module into an error, so one module's bug
// costs a restart, not the process.
func runSafely(ctx context.Context, run func(context.Context) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return run(ctx)
}

// selfReport emits r's report every interval until ctx is done: sources
// send it down their pipeline, destinations receive it in their own inbox.
func (a *Agent) selfReport(ctx context.Context, r *runner) {
	t := time.NewTicker(r.report)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			a.emitReport(r, now)
		}
	}
}

// emitReport sends r's self report: a source's down its pipeline, a
// destination's into its own inbox.
func (a *Agent) emitReport(r *runner, now time.Time) {
	b := &Batch{Source: r.name, Metrics: []Metric{selfReport(r.name, r.stats, now)}}
	if r.source != nil {
		r.emitter.Emit(b)
		return
	}
	a.router.mu.RLock()
	if !a.router.closed {
		r.inbox.offer(b)
	}
	a.router.mu.RUnlock()
}
