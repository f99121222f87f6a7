// Command compare runs StatsD servers head to head on one Linux machine:
// each server pinned to CPU 0, the load generator (bench/loadgen) to CPU
// 1, and measures what each server accounts for in its own output. It
// writes a table into bench/RESULTS.md between markers, so that reruns
// replace it. bench/compare.sh builds and installs everything it needs
// and is the way to run it; see bench/README.md.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

func main() {
	os.Exit(run())
}

func run() int {
	var (
		serverList = flag.String("servers", "bucky3,statsd_exporter,statsd", "servers to measure, comma-separated: "+serverNames())
		tests      = flag.String("tests", "max20,max1,cpu,rss", "measurements: max20, max1 (max lossless rate at 20 and 1 lines/packet), cpu, rss")
		bin        = flag.String("bin", ".cache/bench/bin", "directory holding bucky3, loadgen and statsd_exporter")
		statsdDir  = flag.String("statsd", ".cache/bench/node_modules/statsd", "Etsy statsd's package directory")
		results    = flag.String("results", "bench/RESULTS.md", "file whose harness section is rewritten")
		quick      = flag.Bool("quick", false, "3 s runs and 4 bisection steps instead of 10 s and 7")
		rcvbuf     = flag.Int("rcvbuf", 8<<20, "receive buffer requested by every server, bytes")
		runs       = flag.Int("runs", 3, "runs per tested rate")
		rss1M      = flag.Bool("rss-1m", true, "also measure RSS at 1M series")
		command    = flag.String("command", "bench/compare.sh", "how this run was started, for the results")
		cpuFor     = flag.Duration("cpu-duration", 0, "length of each cpu run (0: 10 s, 5 s with -quick); a run holds duration/flush_interval flushes ±1, so longer runs vary less")
		statsdOpts = flag.String("bucky3-statsd", "", "extra TOML lines for bucky3's statsd_server section, e.g. 'mapping_config = \"bench/mapping-50.yml\"'")
	)
	flag.Parse()
	h := &harness{
		bin: *bin, statsdDir: *statsdDir, rcvbuf: *rcvbuf, runs: *runs, statsdOpts: *statsdOpts,
		duration: 10 * time.Second, steps: 7, threshold: 0.99,
		drain: 1500 * time.Millisecond, settle: 3 * time.Second,
		log: func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) },
	}
	cpuDuration := 10 * time.Second
	if *quick {
		h.duration, h.steps, cpuDuration = 3*time.Second, 4, 5*time.Second
	}
	if *cpuFor > 0 {
		cpuDuration = *cpuFor
	}
	want := map[string]bool{}
	for t := range strings.SplitSeq(*tests, ",") {
		want[strings.TrimSpace(t)] = true
	}

	started := time.Now()
	load0 := loadAverage()
	var all []serverResult
	for name := range strings.SplitSeq(*serverList, ",") {
		srv, err := serverByName(strings.TrimSpace(name))
		if err != nil {
			fmt.Fprintf(os.Stderr, "compare: %v\n", err)
			return 2
		}
		r := serverResult{srv: srv}
		note := func(what string, err error) {
			msg := fmt.Sprintf("%s: %v", what, err)
			r.errors = append(r.errors, msg)
			fmt.Fprintf(os.Stderr, "compare: %s: %s\n", srv.name, msg)
		}
		for _, lpp := range []int{20, 1} {
			if !want[fmt.Sprintf("max%d", lpp)] {
				continue
			}
			l, err := h.maxLossless(srv, lpp)
			if err != nil {
				note(fmt.Sprintf("max lossless at %d lines/packet", lpp), err)
				continue
			}
			if lpp == 20 {
				r.max20 = &l
			} else {
				r.max1 = &l
			}
		}
		if want["cpu"] {
			runs, err := h.cpuPerMillion(srv, cpuDuration)
			if err != nil {
				note("cpu", err)
			}
			r.cpu = runs
		}
		if want["rss"] {
			sizes := []int{100_000}
			if *rss1M {
				sizes = append(sizes, 1_000_000)
			}
			for _, n := range sizes {
				res, err := h.rss(srv, n)
				if err != nil {
					note(fmt.Sprintf("rss at %d series", n), err)
					continue
				}
				if n == 100_000 {
					r.rss100k = &res
				} else {
					r.rss1M = &res
				}
			}
		}
		all = append(all, r)
	}

	body := report(h, all, *command, *quick, started, load0, loadAverage(), cpuDuration)
	fmt.Print(body)
	if err := writeResults(*results, body); err != nil {
		fmt.Fprintf(os.Stderr, "compare: %v\n", err)
		return 1
	}
	return 0
}

// report renders the harness's section of RESULTS.md.
func report(h *harness, all []serverResult, command string, quick bool, started time.Time, load0, load1 string, cpuDuration time.Duration) string {
	var b strings.Builder
	mode := "full"
	if quick {
		mode = "QUICK"
	}
	fmt.Fprintf(&b, "Run %s, %s mode (%s runs, %d per rate, %d bisection steps; CPU runs %s), took %s.\n\n",
		started.UTC().Format("2006-01-02 15:04 MST"), mode, h.duration, h.runs, h.steps, cpuDuration,
		time.Since(started).Round(time.Second))
	fmt.Fprintf(&b, "- Machine: %d CPUs, %s, Linux %s; load average %s at the start, %s at the end.\n",
		runtime.NumCPU(), cpuModel(), kernel(), load0, load1)
	fmt.Fprintf(&b, "- Command: `%s`; each server pinned to CPU 0 (`taskset -c 0`), the generator to CPU 1; receive buffer %d bytes for every server (net.core.rmem_default = 2×, bucky3 receive_buffer and statsd_exporter --statsd.read-buffer = 1×, which the kernel doubles).\n",
		command, h.rcvbuf)
	fmt.Fprintf(&b, "- Load: `loadgen -lpp {20,1} -series 10000 -tags %d -mix %s` (sendmmsg, one sender); \"accounted\" = flushed counter sums + timer sample counts ÷ counter + timer lines sent; a rate passes when every run accounts for ≥ %.0f%%. Cells: median [min–max].\n\n",
		tags, mix, 100*h.threshold)
	b.WriteString(table(all, h.threshold))
	b.WriteString("\n<details><summary>Every run</summary>\n\n")
	b.WriteString(details(h.all))
	b.WriteString("\n</details>\n")
	return b.String()
}

func serverNames() string {
	var names []string
	for _, s := range servers {
		names = append(names, s.name)
	}
	return strings.Join(names, ", ")
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func kernel() string {
	out, err := exec.Command("uname", "-r").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
