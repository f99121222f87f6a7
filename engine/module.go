package engine

import (
	"context"
	"log/slog"
)

// A Source produces batches until ctx is cancelled. Its final flush
// happens before Run returns. A non-nil error (other than ctx's) makes the
// supervisor restart the module.
type Source interface {
	Run(ctx context.Context, out Emitter) error
}

// A Destination consumes batches until in is closed, then pushes what it
// holds and returns. ctx is cancelled only when the destination has to be
// abandoned (shutdown deadline) — a destination must return promptly then.
// The inbox survives restarts: a restarted destination keeps reading it.
type Destination interface {
	Run(ctx context.Context, in <-chan *Batch) error
}

// Emitter takes the finished batches of a source.
type Emitter interface {
	// Emit hands a batch to the router. It never blocks on a slow
	// destination: a full inbox drops the batch for that destination only,
	// counted. b must not be modified after Emit: several destinations read
	// it concurrently. Emit applies the module's metadata and relabel rules
	// to b's metrics before fanning it out.
	Emit(b *Batch)
}

// Module is what a module constructor receives besides its options: its
// identity, its logger, its self-report counters and the agent's memory
// budget (nil when there is none).
type Module struct {
	Name   string
	Type   string
	Log    *slog.Logger
	Stats  *Stats
	Memory *Memory
	// AllStats returns the counters of every module of the agent, for a
	// destination that serves the agent's own metrics. Nil outside an agent.
	AllStats func() []ModuleStats

	health *health // readiness and liveness; nil outside an agent
}
