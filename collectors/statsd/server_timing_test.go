package statsd

import (
	"log/slog"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bucky3/bucky3/aggregate"
	"github.com/bucky3/bucky3/engine"
)

// taggedDatagram returns a datagram of n DogStatsD lines with three tags
// each, cycling through counters, gauges, timers and sets, for the series
// first to first+n-1 (the same shape as the parser's benchmark datagram).
func taggedDatagram(first, n int) []byte {
	var b strings.Builder
	for i := first; i < first+n; i++ {
		id := strconv.Itoa(i)
		switch i % 4 {
		case 0:
			b.WriteString("api_requests_" + id + ":1|c|@0.5")
		case 1:
			b.WriteString("queue_depth_" + id + ":-" + id + ".5|g")
		case 2:
			b.WriteString("request_latency_" + id + ":12.25:13|ms")
		case 3:
			b.WriteString("unique_users_" + id + ":user" + id + "|s")
		}
		b.WriteString("|#env:production,host:web-0" + id + ",region=eu-west-1\n")
	}
	return []byte(b.String())
}

// mappedDatagram is taggedDatagram with names that testdata/mapping_50.yml
// maps (svc<k>.<endpoint>.<instance>.<kind>, two labels from the name),
// cycling through the file's 12 services, and one line in 20 that a rule
// drops.
func mappedDatagram(first, n int) []byte {
	var b strings.Builder
	for i := first; i < first+n; i++ {
		id := strconv.Itoa(i)
		svc := "svc" + strconv.Itoa(i%12) + ".ep" + strconv.Itoa(i%7) + ".web-0" + id
		switch {
		case i%20 == 19:
			b.WriteString("debug." + id + ".x:1|c")
		case i%4 == 0:
			b.WriteString(svc + ".requests:1|c|@0.5")
		case i%4 == 1:
			b.WriteString(svc + ".depth:-" + id + ".5|g")
		case i%4 == 2:
			b.WriteString(svc + ".latency:12.25:13|ms")
		case i%4 == 3:
			b.WriteString(svc + ".users:user" + id + "|s")
		}
		b.WriteString("|#env:production,region=eu-west-1\n")
	}
	return []byte(b.String())
}

// cpuNanos returns the CPU time the process has used. The machine the
// benchmarks run on is shared: under contention wall time measures the
// neighbours, CPU time still measures the reader path.
func cpuNanos(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkDatagram measures what a reader goroutine spends on one
// 20-line datagram with 3 tags per line: self-report counters, parse and
// aggregation into a table, through the handler Run installs. Series are
// known (the table is warmed), as they are for nearly every datagram of a
// steady load.
func BenchmarkDatagram(b *testing.B) {
	const lines = 20
	// evict, when burst > 0, overwrites more memory than the caches hold
	// after every burst datagrams, untimed: the datagrams of a paced
	// sender arrive in bursts (bench/loadgen sends 64 per pacing step),
	// between which the machine runs other work that evicts the reader's
	// working set.
	var evictBuf []byte
	f := func(name string, datagrams [][]byte, burst int, configure ...func(*Options)) {
		b.Run(name, func(b *testing.B) {
			// One reader, as bench/compare runs the agent: its table has
			// a single stripe.
			o := DefaultOptions()
			o.Readers = 1
			for _, c := range configure {
				c(&o)
			}
			if err := o.Validate(); err != nil {
				b.Fatal(err)
			}
			srv, err := New(engine.Module{Name: "b", Log: slog.New(slog.DiscardHandler), Stats: engine.NewStats()}, o)
			if err != nil {
				b.Fatal(err)
			}
			table, err := aggregate.New(tableOptions(srv.o))
			if err != nil {
				b.Fatal(err)
			}
			handle := (&readerSet{server: srv, table: table}).handler(0)
			// Datagrams between flushes: a multiple of len(datagrams), so
			// that every interval creates the series in the same order and
			// each reuses the slot, and the capacity, it had before.
			// With more than 4096 datagrams each interval sees every series
			// once, so every line starts a series.
			interval := len(datagrams) * max(1, 4096/len(datagrams))
			for i := range interval {
				handle(datagrams[i%len(datagrams)])
			}
			// Timer series grow their sample slices until a flush, as they
			// would in a real interval; flushing every interval datagrams,
			// untimed, keeps memory bounded and, as flushed slots keep
			// their capacity, the timed part free of allocations once both
			// the live and the spare state have seen a full interval.
			flushCPU := int64(0)
			flush := func() {
				b.StopTimer()
				cpu := cpuNanos(b)
				table.Flush(time.Now())
				flushCPU += cpuNanos(b) - cpu
				b.StartTimer()
			}
			flush()
			for i := range interval {
				handle(datagrams[i%len(datagrams)])
			}
			flush()

			b.ReportAllocs()
			b.SetBytes(int64(len(datagrams[0])))
			cpu := cpuNanos(b)
			flushCPU = 0
			evict := func() {
				b.StopTimer()
				cpu := cpuNanos(b)
				if len(evictBuf) == 0 {
					evictBuf = make([]byte, 128<<20)
				}
				for j := 0; j < len(evictBuf); j += 64 {
					evictBuf[j]++
				}
				flushCPU += cpuNanos(b) - cpu
				b.StartTimer()
			}
			i := 0
			for b.Loop() {
				handle(datagrams[i%len(datagrams)])
				if i++; i%interval == 0 {
					flush()
				}
				if burst > 0 && i%burst == 0 {
					evict()
				}
			}
			n := float64(b.N * lines)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/line")
			b.ReportMetric(float64(cpuNanos(b)-cpu-flushCPU)/n, "cpu-ns/line")
			if got := srv.counters.lines.Load(); got == 0 || srv.counters.invalid.Load() != 0 {
				b.Fatalf("lines %d, invalid %d", got, srv.counters.invalid.Load())
			}
		})
	}
	f("known_20_tagged", [][]byte{taggedDatagram(0, lines)}, 0)
	// 1000 series rotate across 50 datagrams: the table no longer sits in
	// the cache as a single datagram's 20 series do.
	rotating := func(series int) [][]byte {
		var ds [][]byte
		for first := 0; first < series; first += lines {
			ds = append(ds, taggedDatagram(first, lines))
		}
		return ds
	}
	f("rotating_1000_series", rotating(1000), 0)
	// 10k and 100k series, as a busy agent sees: the table's working set
	// exceeds L2 (and, at 100k, the last-level cache), so lookups miss.
	f("rotating_10000_series", rotating(10_000), 0)
	// The same in bursts of 64 datagrams from a cold cache, as the agent
	// sees them from bench/loadgen at 100k lines/s.
	f("rotating_10000_series_cold", rotating(10_000), 64)
	f("rotating_100000_series", rotating(100_000), 0)

	// The same lines named for testdata/mapping_50.yml, mapped: a known
	// mapped line must cost what an unmapped one does, in either layout.
	mapping := func(layout string) func(*Options) {
		return func(o *Options) { o.MappingConfig, o.Layout = "testdata/mapping_50.yml", layout }
	}
	f("known_20_mapped", [][]byte{mappedDatagram(0, lines)}, 0, mapping(layoutBucky3))
	f("known_20_mapped_typed", [][]byte{mappedDatagram(0, lines)}, 0, mapping(layoutTyped))
	f("known_20_tagged_typed", [][]byte{taggedDatagram(0, lines)}, 0, func(o *Options) { o.Layout = layoutTyped })
	var mappedRotating [][]byte
	for first := 0; first < 10_000; first += lines {
		mappedRotating = append(mappedRotating, mappedDatagram(first, lines))
	}
	f("rotating_10000_series_mapped", mappedRotating, 0, mapping(layoutBucky3))
}
