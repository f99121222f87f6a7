package engine_test

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bucky3/bucky3/engine"
)

// healthSource binds (waits for bind) before it is ready, then runs its
// reader loop: each value on work is one piece of work, which blocks
// until release is closed when the value is true.
type healthSource struct {
	ready   func()
	beat    *engine.Beat
	bind    chan struct{}
	work    chan bool
	release chan struct{}
}

func (s *healthSource) Run(ctx context.Context, out engine.Emitter) error {
	select {
	case <-s.bind:
	case <-ctx.Done():
		return nil
	}
	s.ready()
	for {
		select {
		case <-ctx.Done():
			return nil
		case wedge := <-s.work:
			s.beat.Begin()
			if wedge {
				<-s.release
			}
			s.beat.End()
		}
	}
}

func TestAgent_ReadyAndStuck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &healthSource{bind: make(chan struct{}), work: make(chan bool), release: make(chan struct{})}
		a, _ := agentOf(t, "[src]\nmodule_type = \"hsrc\"\n[out]\nmodule_type = \"rec\"\n",
			sourceType("hsrc", func(m engine.Module) *healthSource {
				s.ready = m.AwaitReady()
				s.beat = m.Beat("reader 0")
				return s
			}),
			destinationType("rec", func(engine.Module) *recorder { return &recorder{} }))
		stop := runAgent(a)
		isReady := func() bool {
			synctest.Wait()
			select {
			case <-a.Ready():
				return true
			default:
				return false
			}
		}
		if isReady() {
			t.Fatal("ready before the source bound its socket")
		}
		close(s.bind)
		if !isReady() {
			t.Fatal("not ready after every module started and the source bound")
		}

		// Idle, then busy with progress: never stuck.
		f := func(want ...string) {
			t.Helper()
			synctest.Wait()
			if got := a.Stuck(); !slices.Equal(got, want) {
				t.Fatalf("Stuck() = %q, want %q", got, want)
			}
		}
		f()
		f()
		s.work <- false
		f()
		// Wedged in a piece of work: the first check sees it busy, the
		// second sees no progress.
		s.work <- true
		f()
		time.Sleep(time.Second)
		f("src/reader 0")
		f("src/reader 0")
		close(s.release)
		f()
		f()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestBeat_NilOutsideAnAgent(t *testing.T) {
	var m engine.Module
	b := m.Beat("x")
	b.Begin()
	b.End()
	m.AwaitReady()()
}
