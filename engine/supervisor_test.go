package engine_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bucky3/bucky3/engine"
)

// recorder is a destination that keeps every batch it receives.
type recorder struct {
	mu      sync.Mutex
	batches []*engine.Batch
	delay   time.Duration // per batch, to simulate a slow backend
}

func (r *recorder) Run(ctx context.Context, in <-chan *engine.Batch) error {
	for b := range in {
		if r.delay > 0 {
			select {
			case <-time.After(r.delay):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		r.mu.Lock()
		r.batches = append(r.batches, b)
		r.mu.Unlock()
	}
	return nil
}

func (r *recorder) metrics() []engine.Metric {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []engine.Metric
	for _, b := range r.batches {
		out = append(out, b.Metrics...)
	}
	return out
}

// funcSource runs a test-supplied function as its Run.
type funcSource func(ctx context.Context, out engine.Emitter) error

func (f funcSource) Run(ctx context.Context, out engine.Emitter) error { return f(ctx, out) }

// agent builds an agent from doc with one source type running run and one
// destination type backed by rec.
func agent(t *testing.T, doc string, run funcSource, rec *recorder) (*engine.Agent, *bytes.Buffer) {
	t.Helper()
	return agentOf(t, doc,
		sourceType("fsrc", func(engine.Module) funcSource { return run }),
		destinationType("rec", func(engine.Module) *recorder { return rec }))
}

// agentOf builds an agent from doc and types; its logs go to the buffer.
func agentOf(t *testing.T, doc string, types ...engine.Type) (*engine.Agent, *bytes.Buffer) {
	t.Helper()
	cfg, err := engine.Parse([]byte(doc), types, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	a, err := engine.NewAgent(cfg, &syncWriter{w: &logs})
	if err != nil {
		t.Fatal(err)
	}
	return a, &logs
}

// sourceType and destinationType register test modules built by build.
func sourceType[S engine.Source](name string, build func(engine.Module) S) engine.Type {
	return engine.SourceType(name, func() srcOptions { return srcOptions{SourceOptions: engine.DefaultSourceOptions()} },
		func(m engine.Module, _ srcOptions) (S, error) { return build(m), nil })
}

func destinationType[D engine.Destination](name string, build func(engine.Module) D) engine.Type {
	return engine.DestinationType(name, func() dstOptions { return dstOptions{DestinationOptions: engine.DefaultDestinationOptions()} },
		func(m engine.Module, _ dstOptions) (D, error) { return build(m), nil })
}

// runAgent runs a until the returned stop is called; stop returns what
// Run returned.
func runAgent(a *engine.Agent) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	return func() error {
		cancel()
		return <-done
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

const basic = `
[src]
module_type = "fsrc"
[out]
module_type = "rec"
`

func counterMetric(v float64) engine.Metric {
	return engine.Metric{Bucket: "c", Fields: []engine.Field{{Name: "count", Value: engine.Number(v)}}}
}

func TestAgent_ShutdownRunsFinalFlush(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		a, _ := agent(t, basic, func(ctx context.Context, out engine.Emitter) error {
			<-ctx.Done()
			out.Emit(&engine.Batch{Metrics: []engine.Metric{counterMetric(42)}})
			return nil
		}, rec)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- a.Run(ctx) }()
		time.Sleep(time.Minute)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("clean shutdown returned %v", err)
		}
		got := rec.metrics()
		if len(got) != 1 || got[0].Fields[0].Value.Num != 42 {
			t.Fatalf("final flush not delivered: %+v", got)
		}
	})
}

func TestAgent_PanickingModuleIsRestarted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		var starts atomic.Int32
		a, logs := agent(t, basic, func(ctx context.Context, out engine.Emitter) error {
			if starts.Add(1) <= 2 {
				panic("boom")
			}
			out.Emit(&engine.Batch{Metrics: []engine.Metric{counterMetric(1)}})
			<-ctx.Done()
			return nil
		}, rec)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		start := time.Now()
		go func() { done <- a.Run(ctx) }()
		synctest.Wait()
		if starts.Load() != 1 {
			t.Fatalf("restart before the delay: %d starts", starts.Load())
		}
		time.Sleep(2*engine.RestartDelay + time.Millisecond)
		synctest.Wait()
		if got := starts.Load(); got != 3 {
			t.Fatalf("after two panics and %v, got %d starts, want 3", time.Since(start), got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("shutdown after recovered panics returned %v", err)
		}
		if len(rec.metrics()) != 1 {
			t.Fatal("restarted module's batch not delivered")
		}
		if !strings.Contains(logs.String(), "boom") {
			t.Fatalf("panic not logged:\n%s", logs)
		}
	})
}

func TestAgent_ModuleThatKeepsFailingStopsTheAgent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var starts atomic.Int32
		a, logs := agent(t, basic, func(ctx context.Context, out engine.Emitter) error {
			starts.Add(1)
			return errors.New("cannot bind")
		}, &recorder{})
		err := a.Run(context.Background())
		if !errors.Is(err, engine.ErrKeepsFailing) {
			t.Fatalf("got %v, want ErrKeepsFailing", err)
		}
		if got := starts.Load(); got != 6 {
			t.Fatalf("stopped after %d starts, want 6 (more than 5)", got)
		}
		if !strings.Contains(logs.String(), "keeps failing") || !strings.Contains(logs.String(), "module=src") {
			t.Fatalf("critical log line missing:\n%s", logs)
		}
	})
}

func TestAgent_SlowFailuresDoNotStopTheAgent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var starts atomic.Int32
		a, _ := agent(t, basic, func(ctx context.Context, out engine.Emitter) error {
			starts.Add(1)
			select {
			case <-time.After(2 * time.Minute):
				return errors.New("lost connection")
			case <-ctx.Done():
				return nil
			}
		}, &recorder{})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		if err := a.Run(ctx); err != nil {
			t.Fatalf("a module failing every 2 minutes must keep running, got %v", err)
		}
		if starts.Load() < 9 {
			t.Fatalf("only %d starts in 20 minutes", starts.Load())
		}
	})
}

func TestAgent_StuckDestinationIsAbandoned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{delay: time.Hour}
		a, logs := agent(t, basic, func(ctx context.Context, out engine.Emitter) error {
			<-ctx.Done()
			out.Emit(&engine.Batch{Metrics: []engine.Metric{counterMetric(1)}})
			return nil
		}, rec)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		start := time.Now()
		err := a.Run(ctx)
		if !errors.Is(err, engine.ErrAbandoned) {
			t.Fatalf("got %v, want ErrAbandoned", err)
		}
		if took := time.Since(start); took < 5*time.Second || took > 7*time.Second {
			t.Fatalf("shutdown took %v, want the 5 s deadline plus a short grace", took)
		}
		if !strings.Contains(logs.String(), "abandoned_module=out") {
			t.Fatalf("abandoned module not named:\n%s", logs)
		}
	})
}

func TestAgent_SelfReport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		doc := `
self_report = true
self_report_interval = 10
[src]
module_type = "fsrc"
metadata = {host = "h1"}
[out]
module_type = "rec"
`
		a, _ := agent(t, doc, func(ctx context.Context, out engine.Emitter) error {
			<-ctx.Done()
			return nil
		}, rec)
		ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
		defer cancel()
		if err := a.Run(ctx); err != nil {
			t.Fatal(err)
		}
		reports := map[string]int{}
		for _, m := range rec.metrics() {
			if m.Bucket != engine.SelfReportBucket {
				t.Fatalf("unexpected metric %+v", m)
			}
			name, _ := m.Tag("name")
			reports[name]++
			for _, f := range []string{"uptime", "flush_errors", "cpu", "memory"} {
				if _, ok := m.Field(f); !ok {
					t.Fatalf("report of %s lacks %s: %+v", name, f, m.Fields)
				}
			}
			if name == "src" {
				if h, _ := m.Tag("host"); h != "h1" {
					t.Fatalf("source report goes down the pipeline with metadata: %+v", m.Tags)
				}
			}
		}
		if reports["src"] != 3 || reports["out"] != 3 {
			t.Fatalf("want 2 reports each in 25 s at 10 s and a last one at shutdown, got %v", reports)
		}
	})
}

// The last self report follows the sources' final flush, and the
// destinations' final push carries it.
func TestAgent_LastSelfReportCountsTheFinalFlush(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		a, _ := agent(t, "self_report = true\nself_report_interval = 3600\n"+basic, func(ctx context.Context, out engine.Emitter) error {
			<-ctx.Done()
			out.Emit(&engine.Batch{Metrics: []engine.Metric{counterMetric(1), counterMetric(2), counterMetric(3)}})
			return nil
		}, rec)
		stop := runAgent(a)
		time.Sleep(time.Minute)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		var reports []float64
		for _, m := range rec.metrics() {
			if name, _ := m.Tag("name"); m.Bucket == engine.SelfReportBucket && name == "src" {
				v, _ := m.Field("metrics_produced")
				reports = append(reports, v.Num)
			}
		}
		if len(reports) != 1 || reports[0] != 3 {
			t.Fatalf("want one report of the 3 metrics of the final flush, got %v", reports)
		}
	})
}
