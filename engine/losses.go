package engine

import (
	"log/slog"
	"slices"
	"strings"
	"time"
)

// LossWarnInterval is the shortest time between two loss warnings of one
// module: every drop is logged, at most this often, as counts per reason.
const LossWarnInterval = time.Minute

// IsLoss reports whether a counter named name counts lost data: by
// convention its name holds "dropped", "invalid" or "not_finite"
// ("lines_invalid_bad_value", "packets_dropped_kernel",
// "metrics_dropped_max_series", "values_not_finite").
func IsLoss(name string) bool {
	return strings.Contains(name, "dropped") || strings.Contains(name, "invalid") || strings.Contains(name, "not_finite")
}

// Loss is the count of one loss counter.
type Loss struct {
	Reason string // the counter's name
	Count  uint64
}

// Losses returns the loss counters of s that are above zero, sorted by
// name. A total whose reasons are counted too ("lines_invalid" beside
// "lines_invalid_bad_value") is left out, so that each loss is listed once.
func (s *Stats) Losses() []Loss {
	s.mu.Lock()
	var out []Loss
	for name, c := range s.counters {
		if n := c.Load(); n > 0 && IsLoss(name) {
			out = append(out, Loss{Reason: name, Count: n})
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Loss) int { return strings.Compare(a.Reason, b.Reason) })
	return withoutTotals(out)
}

// withoutTotals drops from sorted each entry whose reasons follow it:
// "x" before "x_reason".
func withoutTotals(sorted []Loss) []Loss {
	out := sorted[:0]
	for i, l := range sorted {
		if i+1 < len(sorted) && strings.HasPrefix(sorted[i+1].Reason, l.Reason+"_") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// lossLog remembers what a module had lost at its last warning.
type lossLog struct {
	last map[string]uint64
}

// warn logs, as one warning, what stats lost since the previous call.
// It logs nothing when nothing was lost.
func (l *lossLog) warn(log *slog.Logger, stats *Stats, since time.Duration) {
	if l.last == nil {
		l.last = map[string]uint64{}
	}
	var attrs []any
	for _, loss := range stats.Losses() {
		if d := loss.Count - l.last[loss.Reason]; d > 0 {
			attrs = append(attrs, slog.Uint64(loss.Reason, d))
		}
		l.last[loss.Reason] = loss.Count
	}
	if len(attrs) > 0 {
		log.Warn("data dropped in the last "+since.String(), attrs...)
	}
}

// warnLosses logs each module's losses every LossWarnInterval until done
// is closed.
func (a *Agent) warnLosses(done <-chan struct{}, every time.Duration) {
	runners := append(a.sources[:len(a.sources):len(a.sources)], a.destinations...)
	logs := make([]lossLog, len(runners))
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			for i, r := range runners {
				logs[i].warn(r.log, r.stats, every)
			}
		}
	}
}

// logTotals logs, in one line, every module's loss totals since start.
func (a *Agent) logTotals() {
	var attrs []any
	for _, r := range append(a.sources[:len(a.sources):len(a.sources)], a.destinations...) {
		losses := r.stats.Losses()
		if len(losses) == 0 {
			continue
		}
		group := make([]any, len(losses))
		for i, l := range losses {
			group[i] = slog.Uint64(l.Reason, l.Count)
		}
		attrs = append(attrs, slog.Group(r.name, group...))
	}
	if len(attrs) == 0 {
		a.log.Info("nothing dropped since start")
		return
	}
	a.log.Warn("dropped since start", attrs...)
}

// lossTotals returns every module's loss counts, by module and reason.
func (a *Agent) lossTotals() map[string]map[string]uint64 {
	out := map[string]map[string]uint64{}
	for _, r := range append(a.sources[:len(a.sources):len(a.sources)], a.destinations...) {
		byReason := map[string]uint64{}
		for _, l := range r.stats.Losses() {
			byReason[l.Reason] = l.Count
		}
		out[r.name] = byReason
	}
	return out
}

// lostSince returns, as log attributes grouped by module, what was lost
// since the totals before were taken.
func (a *Agent) lostSince(before map[string]map[string]uint64) []any {
	var attrs []any
	for _, r := range append(a.sources[:len(a.sources):len(a.sources)], a.destinations...) {
		var group []any
		for _, l := range r.stats.Losses() {
			if d := l.Count - before[r.name][l.Reason]; d > 0 {
				group = append(group, slog.Uint64(l.Reason, d))
			}
		}
		if len(group) > 0 {
			attrs = append(attrs, slog.Group(r.name, group...))
		}
	}
	return attrs
}
