package engine_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bucky3/bucky3/engine"
)

func TestStats_Losses(t *testing.T) {
	s := engine.NewStats()
	s.Counter("metrics_received").Add(100)
	s.Counter("lines_invalid").Add(5)
	s.Counter("lines_invalid_bad_value").Add(3)
	s.Counter("lines_invalid_bad_type").Add(2)
	s.Counter("metrics_dropped").Add(7) // a total with no reason beside it
	s.Counter("packets_dropped_kernel") // zero: not listed
	want := []engine.Loss{
		{Reason: "lines_invalid_bad_type", Count: 2},
		{Reason: "lines_invalid_bad_value", Count: 3},
		{Reason: "metrics_dropped", Count: 7},
	}
	if got := s.Losses(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Losses() = %v, want %v", got, want)
	}
}

// lossSource counts one loss per second, at 0.5 s, 1.5 s…, under reason
// "lines_invalid_test" until stopped.
type lossSource struct{ stats *engine.Stats }

func (s lossSource) Run(ctx context.Context, out engine.Emitter) error {
	c := s.stats.Counter("lines_invalid_test")
	time.Sleep(500 * time.Millisecond)
	c.Inc()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if ctx.Err() == nil {
				c.Inc()
			}
		}
	}
}

func TestAgent_WarnsOfLossesOncePerInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, logs := agentOf(t, "[src]\nmodule_type = \"lsrc\"\nrandomize_startup = false\n[out]\nmodule_type = \"rec\"\n",
			sourceType("lsrc", func(m engine.Module) lossSource { return lossSource{m.Stats} }),
			destinationType("rec", func(engine.Module) *recorder { return &recorder{} }))
		stop := runAgent(a)
		// 150.25 s: losses at 0.5…149.5 s, warnings at 60 and 120 s.
		time.Sleep(150*time.Second + 250*time.Millisecond)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		var warnings, totals []string
		for _, line := range strings.Split(logs.String(), "\n") {
			switch {
			case strings.Contains(line, "data dropped in the last"):
				warnings = append(warnings, line)
			case strings.Contains(line, "dropped since start"):
				totals = append(totals, line)
			}
		}
		if len(warnings) != 2 {
			t.Fatalf("want 2 warnings in 150 s, got %d:\n%s", len(warnings), logs.String())
		}
		for i, w := range warnings {
			if !strings.Contains(w, "module=src") || !strings.Contains(w, " lines_invalid_test=60") || !strings.Contains(w, "level=WARN") {
				t.Errorf("warning %d is not 60 losses of src: %s", i, w)
			}
		}
		if len(totals) != 1 || !strings.Contains(totals[0], " src.lines_invalid_test=150") {
			t.Fatalf("want one shutdown line with src's 150 losses, got %q", totals)
		}
	})
}

func TestAgent_NoLossNoWarning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, logs := agent(t, basic, func(ctx context.Context, out engine.Emitter) error {
			<-ctx.Done()
			return nil
		}, &recorder{})
		stop := runAgent(a)
		time.Sleep(3 * time.Minute)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "nothing dropped since start") {
			t.Fatalf("a run without losses logged:\n%s", logs.String())
		}
	})
}

// dropDest counts a drop when told to, and at its final push when
// dropAtEnd is set, under reason "metrics_dropped_test".
type dropDest struct {
	stats     *engine.Stats
	now       chan struct{}
	dropAtEnd bool
}

func (d *dropDest) Run(ctx context.Context, in <-chan *engine.Batch) error {
	c := d.stats.Counter("metrics_dropped_test")
	for {
		select {
		case <-d.now:
			c.Inc()
		case _, ok := <-in:
			if !ok {
				if d.dropAtEnd {
					c.Add(2)
				}
				return nil
			}
		}
	}
}

func TestAgent_LossDuringShutdownFailsTheExit(t *testing.T) {
	f := func(dropAtEnd bool, want error) {
		t.Helper()
		synctest.Test(t, func(t *testing.T) {
			d := &dropDest{now: make(chan struct{}), dropAtEnd: dropAtEnd}
			idle := funcSource(func(ctx context.Context, out engine.Emitter) error { <-ctx.Done(); return nil })
			a, logs := agentOf(t, "[src]\nmodule_type = \"fsrc\"\n[out]\nmodule_type = \"ddst\"\n",
				sourceType("fsrc", func(engine.Module) funcSource { return idle }),
				destinationType("ddst", func(m engine.Module) *dropDest { d.stats = m.Stats; return d }))
			stop := runAgent(a)
			d.now <- struct{}{} // a drop before the signal is counted, not an exit failure
			time.Sleep(time.Second)
			if err := stop(); err != want {
				t.Fatalf("dropAtEnd=%v: Run() = %v, want %v\n%s", dropAtEnd, err, want, logs.String())
			}
			if dropAtEnd && !strings.Contains(logs.String(), `msg="data dropped during shutdown" module=agent out.metrics_dropped_test=2`) {
				t.Fatalf("the shutdown loss is not logged with its count:\n%s", logs.String())
			}
		})
	}
	f(false, nil)
	f(true, engine.ErrLostAtShutdown)
}
