package engine

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SelfReportBucket is the bucket of self-report metrics.
const SelfReportBucket = "bucky3"

// selfReport builds the report metric of one module: its counters, its
// uptime, and the process-wide cpu (seconds) and memory (RSS bytes).
func selfReport(name string, stats *Stats, now time.Time) Metric {
	fields := stats.Snapshot()
	if cpu, ok := processCPU(); ok {
		fields = append(fields, Field{Name: "cpu", Value: Number(cpu)})
	}
	if rss, ok := processRSS(); ok {
		fields = append(fields, Field{Name: "memory", Value: Number(float64(rss))})
	}
	return Metric{
		Bucket:    SelfReportBucket,
		Fields:    fields,
		Timestamp: now.UnixMilli(),
		Tags:      []Tag{{Key: "name", Value: name}},
	}
}

func processCPU() (float64, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime), true
}

// processRSS reads the resident set size from /proc/self/statm, whose
// second column counts resident pages.
func processRSS() (uint64, bool) {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	fields := strings.Fields(string(data))
	if len(fields) < 2 {
		return 0, false
	}
	pages, err := strconv.ParseUint(fields[1], 10, 64)
	if err != nil {
		return 0, false
	}
	return pages * uint64(os.Getpagesize()), true
}
