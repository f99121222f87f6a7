package aggregate

import (
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bucky3/bucky3/parse"
)

// BenchmarkFlush_Timers measures the flush of timers holding many
// samples, per set of percentile thresholds: 1000 series of 2000 samples
// (an interval of a busy agent), and one series of 1M samples.
func BenchmarkFlush_Timers(b *testing.B) {
	shapes := []struct {
		name            string
		series, samples int
	}{
		{"1000x2000", 1000, 2000},
		{"1x1M", 1, 1 << 20},
	}
	for _, th := range []struct {
		name       string
		thresholds []float64
	}{
		{"p100", []float64{100}},
		{"p50-90-99-100", []float64{50, 90, 99, 100}},
	} {
		for _, sh := range shapes {
			b.Run(th.name+"/"+sh.name, func(b *testing.B) {
				o := DefaultOptions()
				o.PercentileThresholds = th.thresholds
				o.MaxTimerSamples = sh.samples
				tbl, err := New(o)
				if err != nil {
					b.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(1, 2))
				values := make([]float64, sh.samples)
				for i := range values {
					// Log-normal latencies in whole 0.1 ms: many duplicates.
					values[i] = float64(int(rng.ExpFloat64()*200)) / 10
				}
				samples := make([]*parse.Sample, sh.series)
				for i := range samples {
					s := sampleOf(b, "latency:1|ms|#env=prod,host=web_01")
					s.Name = strconv.AppendInt(s.Name, int64(i), 10)
					s.Values = values
					samples[i] = s
				}
				w := tbl.NewWriter()
				now := time.Now()
				b.ReportAllocs()
				for b.Loop() {
					b.StopTimer()
					for _, s := range samples {
						w.Add(s)
					}
					now = now.Add(10 * time.Second)
					b.StartTimer()
					if ms := tbl.Flush(now); len(ms) != sh.series*len(th.thresholds) {
						b.Fatalf("flushed %d metrics, want %d", len(ms), sh.series*len(th.thresholds))
					}
				}
			})
		}
	}
}

// BenchmarkFlush_Stall measures, on one P, the longest a goroutine that
// only yields waits while Flush runs: what a socket reader would wait
// for the CPU (max-wait-µs), besides the flush's time.
func BenchmarkFlush_Stall(b *testing.B) {
	for _, sh := range []struct {
		name            string
		series, samples int
	}{{"1000x2000", 1000, 2000}, {"1x1M", 1, 1 << 20}} {
		b.Run(sh.name, func(b *testing.B) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
			o := DefaultOptions()
			o.PercentileThresholds = []float64{50, 90, 99, 100}
			o.MaxTimerSamples = sh.samples
			tbl, err := New(o)
			if err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			values := make([]float64, sh.samples)
			for i := range values {
				values[i] = float64(int(rng.ExpFloat64()*200)) / 10
			}
			samples := make([]*parse.Sample, sh.series)
			for i := range samples {
				s := sampleOf(b, "latency:1|ms|#env=prod,host=web_01")
				s.Name = strconv.AppendInt(s.Name, int64(i), 10)
				s.Values = values
				samples[i] = s
			}
			w := tbl.NewWriter()
			now := time.Now()
			var worst time.Duration
			for b.Loop() {
				b.StopTimer()
				for _, s := range samples {
					w.Add(s)
				}
				now = now.Add(10 * time.Second)
				// The probe counts only waits within Flush: the timer's
				// own pauses are not the flush's.
				var stop, flushing atomic.Bool
				var longest time.Duration
				probed := make(chan struct{})
				go func() {
					defer close(probed)
					last, within := time.Now(), false
					for !stop.Load() {
						runtime.Gosched()
						t, now := time.Now(), flushing.Load()
						if within && now {
							longest = max(longest, t.Sub(last))
						}
						last, within = t, now
					}
				}()
				b.StartTimer()
				flushing.Store(true)
				tbl.Flush(now)
				flushing.Store(false)
				b.StopTimer()
				stop.Store(true)
				<-probed
				worst = max(worst, longest)
				b.StartTimer()
			}
			b.ReportMetric(float64(worst.Microseconds()), "max-wait-µs")
		})
	}
}
