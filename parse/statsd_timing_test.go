package parse

import (
	"strings"
	"syscall"
	"testing"
)

// cpuNanos returns the CPU time the process has used. The benchmarks
// report it per line next to wall time because the build machines are
// shared: under contention wall time measures the neighbours, CPU time
// still measures the parser (the parser does not allocate, so there is no
// GC work in it).
func cpuNanos(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// reportPerLine adds ns/line (wall) and cpu-ns/line metrics.
func reportPerLine(b *testing.B, lines int, cpuStart int64) {
	n := float64(b.N * lines)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/line")
	b.ReportMetric(float64(cpuNanos(b)-cpuStart)/n, "cpu-ns/line")
}

func BenchmarkStatsD_Parse(b *testing.B) {
	f := func(name string, packet []byte, lines int) {
		b.Run(name, func(b *testing.B) {
			var p StatsD
			b.ReportAllocs()
			b.SetBytes(int64(len(packet)))
			cpu := cpuNanos(b)
			for b.Loop() {
				if n := len(p.Parse(packet, now)); n != lines {
					b.Fatalf("parsed %d samples, want %d", n, lines)
				}
			}
			reportPerLine(b, lines, cpu)
		})
	}
	f("line", []byte("gorm:1.5|c"), 1)
	f("tagged_line", []byte("page_views:1|c|#env:prod,host:web-01,region=eu-west-1"), 1)
	// Classic dotted names and keys, which only RuleStatsD (the default)
	// accepts: the same scan with another byte table.
	f("dotted_line", []byte("api.page-views.count:1|c|#env:prod,host.name:web-01,region=eu-west-1"), 1)
	f("datagram_20_tagged", taggedDatagram(20), 20)
	// A tiny rate must cost what any rate costs: samples are never replicated.
	f("datagram_75_tiny_rate", []byte(strings.Repeat("foo:1|ms|@0.000001\n", 75)), 75)
	f("datagram_75_rate", []byte(strings.Repeat("foo:1|ms|@0.5\n", 75)), 75)
}

func BenchmarkJSON_Parse(b *testing.B) {
	packet := jsonDatagram(20)
	var j JSON
	b.ReportAllocs()
	b.SetBytes(int64(len(packet)))
	cpu := cpuNanos(b)
	for b.Loop() {
		if n := len(j.Parse(packet, now)); n != 20 {
			b.Fatalf("parsed %d objects, want 20", n)
		}
	}
	reportPerLine(b, 20, cpu)
}
