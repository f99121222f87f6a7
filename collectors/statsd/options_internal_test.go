package statsd

import (
	"log/slog"
	"testing"

	"github.com/bucky3/bucky3/aggregate"
	"github.com/bucky3/bucky3/engine"
)

// TestTableOptions checks that only a table with one reader gets a single
// stripe: with more, the stripes keep readers from waiting on each other.
func TestTableOptions(t *testing.T) {
	for _, c := range []struct{ readers, stripes int }{{1, 1}, {2, DefaultOptions().Stripes}, {8, DefaultOptions().Stripes}} {
		o := DefaultOptions()
		o.Readers = c.readers
		if got := tableOptions(o).Stripes; got != c.stripes {
			t.Errorf("%d readers: %d stripes, want %d", c.readers, got, c.stripes)
		}
	}
}

// tight is a memory budget that is always tight.
type tight struct{ on bool }

func (t *tight) Tight() bool { return t.on }

// The table's own counts reach the self report, as deltas: series refused
// for max_series or memory, timers past max_timer_samples and sets past
// max_set_size.
func TestPublishTableCounts(t *testing.T) {
	o := DefaultOptions()
	o.Readers, o.MaxSeries, o.MaxTimerSamples, o.MaxSetSize = 1, 4, 2, 2
	stats := engine.NewStats()
	srv, err := New(engine.Module{Name: "t", Log: slog.New(slog.DiscardHandler), Stats: stats}, o)
	if err != nil {
		t.Fatal(err)
	}
	budget := &tight{}
	to := tableOptions(srv.o)
	to.Memory = budget
	table, err := aggregate.New(to)
	if err != nil {
		t.Fatal(err)
	}
	handle := (&readerSet{server: srv, table: table}).handler(0)
	handle([]byte("t:1:2:3|ms\nu:1|s\nu:2|s\nu:3|s"))
	budget.on = true
	handle([]byte("t:4|ms\nnew_a:1|c\nnew_b:1|c"))
	budget.on = false
	handle([]byte("c:1|c\nd:1|c\ne:1|c"))
	var last tableCounts
	last.publish(table, &srv.counters)
	last.publish(table, &srv.counters) // nothing new: no double count
	for name, want := range map[string]uint64{
		"metrics_dropped_memory_limit": 2, "metrics_dropped_max_series": 1, "metrics_dropped": 3,
		"timer_samples_sampled": 1, "set_members_estimated": 1,
	} {
		if got := stats.Counter(name).Load(); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
}
