package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// counts are what a server's own output says it handled. A self count
// the server does not report is -1.
type counts struct {
	counterSum float64 // flushed counter values (every counter line sends 1)
	timerCount float64 // flushed timer sample counts
	selfLines  float64 // lines the server says it read
	selfDrops  float64 // datagrams the server saw the kernel drop (its socket drop count)
	// gapMax is the longest time the server's reader went without
	// reading while datagrams waited, in seconds, and queueMax the most
	// bytes its socket held when it looked: bucky3's self report only,
	// -1 otherwise.
	gapMax, queueMax float64
}

// env is one run's surroundings: ports, the sink, the configuration.
type env struct {
	dir           string // scratch directory for configuration files and logs
	udpPort       int
	httpPort      int
	sink          *sink // nil for servers that are scraped
	flushInterval time.Duration
	rcvbuf        int
	statsdOpts    string // extra lines for bucky3's statsd_server section
	bin           string // directory holding bucky3 and statsd_exporter
	statsdDir     string // Etsy statsd's package directory
}

// server is one StatsD implementation under test.
type server struct {
	name    string
	version string
	tags    string // how it treats DogStatsD tags
	// rules configure the sink; nil means the server is scraped instead.
	rules []rule
	// command returns the server's command line (without the CPU pinning).
	command func(e *env) ([]string, error)
	// ready, when set, reports whether the server answers beyond having
	// bound its UDP port.
	ready     func(e *env) bool
	accounted func(e *env) (counts, error)
}

// sinkCounts reads counts from the sink's totals.
func sinkCounts(e *env) (counts, error) {
	t, _, _ := e.sink.snapshot()
	c := counts{counterSum: t["counters"], timerCount: t["timers"], selfLines: -1, selfDrops: -1, gapMax: -1, queueMax: -1}
	for key, to := range map[string]*float64{"self_lines": &c.selfLines, "self_drops": &c.selfDrops,
		"self_gap_max": &c.gapMax, "self_queue_max": &c.queueMax} {
		if v, ok := t[key]; ok {
			*to = v
		}
	}
	return c, nil
}

var servers = []*server{
	{
		name:    "bucky3",
		version: "this tree",
		tags:    "parsed, part of the series",
		// name_mapping puts bucket, field and name first:
		// stats_counters.count.lg_c_42.<tag values>, stats_timers.count.lg_ms_7.100_0.<tag values>,
		// bucky3.lines_received.statsd.
		rules: []rule{
			{key: "counters", prefix: "stats_counters.count.lg_c_"},
			{key: "timers", prefix: "stats_timers.count.lg_ms_"},
			{key: "self_lines", prefix: "bucky3.lines_received.statsd", max: true},
			{key: "self_drops", prefix: "bucky3.packets_dropped_kernel.statsd", max: true},
			// The reader's longest gap since the server started (the
			// run), and its socket's fullest queue of each second.
			{key: "self_gap_max", prefix: "bucky3.reader_gap_seconds_max.statsd", max: true},
			{key: "self_queue_max", prefix: "bucky3.socket_queue_bytes.statsd", max: true},
		},
		command: func(e *env) ([]string, error) {
			cfg := fmt.Sprintf(bucky3Config, e.flushInterval.Seconds(), e.udpPort, e.rcvbuf, e.sink.port(), e.statsdOpts)
			path := filepath.Join(e.dir, "bucky3.toml")
			if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
				return nil, err
			}
			return []string{filepath.Join(e.bin, "bucky3"), path}, nil
		},
		accounted: sinkCounts,
	},
	{
		name:    "statsd_exporter",
		version: "v0.31.0",
		tags:    "parsed, labels",
		command: func(e *env) ([]string, error) {
			return []string{filepath.Join(e.bin, "statsd_exporter"),
				fmt.Sprintf("--statsd.listen-udp=127.0.0.1:%d", e.udpPort),
				"--statsd.listen-tcp=",
				fmt.Sprintf("--statsd.read-buffer=%d", e.rcvbuf),
				fmt.Sprintf("--web.listen-address=127.0.0.1:%d", e.httpPort),
				"--log.level=error",
			}, nil
		},
		ready: func(e *env) bool {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", e.httpPort))
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		},
		accounted: scrapeExporter,
	},
	{
		name:    "statsd",
		version: "Etsy 0.9.0 (node)",
		tags:    "parsed, appended to the path",
		// legacyNamespace: stats_counts.<key> holds the count,
		// stats.timers.<key>.count the samples; tags follow as ;k=v.
		rules: []rule{
			{key: "counters", prefix: "stats_counts.lg_c_"},
			{key: "timers", prefix: "stats.timers.lg_ms_", suffix: ".count"},
			{key: "self_lines", prefix: "stats_counts.statsd.metrics_received"},
		},
		command: func(e *env) ([]string, error) {
			cfg := fmt.Sprintf(etsyConfig, e.udpPort, e.httpPort, e.flushInterval.Milliseconds(), e.sink.port())
			path := filepath.Join(e.dir, "statsd.js")
			if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
				return nil, err
			}
			return []string{"node", filepath.Join(e.statsdDir, "stats.js"), path}, nil
		},
		accounted: sinkCounts,
	},
}

// bucky3Config: one reader (the server has one CPU), the 100th percentile
// only (its count is every sample), and a push queue large enough for
// 1M series so that the carbon side never trims. The carbon client
// pushes every second whatever the statsd flush interval, so that the
// totals arrive soon after a flush.
const bucky3Config = `
flush_interval = %[1]g
log_level = "warning"
self_report = true
self_report_interval = 1

[statsd]
module_type = "statsd_server"
local_host = "127.0.0.1:%[2]d"
readers = 1
receive_buffer = %[3]d
percentile_thresholds = [100]
randomize_startup = false
%[5]s

[carbon]
module_type = "carbon_client"
flush_interval = 1
remote_hosts = ["127.0.0.1:%[4]d"]
name_mapping = ["bucket", "value", "name", "percentile"]
buffer_limit = 10000000
push_count_limit = 10000000
chunk_size = 1000
`

// etsyConfig: the graphite backend to the sink, idle stats deleted so that
// a flush holds only the series of its interval, the management port
// moved off the default 8126.
const etsyConfig = `{
  address: "127.0.0.1", port: %d, mgmt_address: "127.0.0.1", mgmt_port: %d,
  flushInterval: %d, deleteIdleStats: true,
  backends: ["./backends/graphite"],
  graphiteHost: "127.0.0.1", graphitePort: %d,
  graphite: { legacyNamespace: true },
  log: { backend: "stdout", level: "LOG_ERR" }
}
`

// scrapeExporter reads statsd_exporter's /metrics: counters lg_c_*
// summed, timers lg_ms_* by their summary or histogram sample counts, and
// its own statsd_exporter_lines_total.
func scrapeExporter(e *env) (counts, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", e.httpPort))
	if err != nil {
		return counts{}, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return counts{}, fmt.Errorf("statsd_exporter /metrics: %w", err)
	}
	return exporterCounts(families), nil
}

func exporterCounts(families map[string]*dto.MetricFamily) counts {
	c := counts{selfLines: -1, selfDrops: -1, gapMax: -1, queueMax: -1}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			switch {
			case strings.HasPrefix(name, "lg_c_"):
				c.counterSum += m.GetCounter().GetValue()
			case strings.HasPrefix(name, "lg_ms_"):
				c.timerCount += float64(m.GetSummary().GetSampleCount() + m.GetHistogram().GetSampleCount())
			case name == "statsd_exporter_lines_total":
				c.selfLines = max(c.selfLines, 0) + m.GetCounter().GetValue()
			}
		}
	}
	return c
}

// serverByName returns the server called name.
func serverByName(name string) (*server, error) {
	for _, s := range servers {
		if s.name == name {
			return s, nil
		}
	}
	return nil, fmt.Errorf("unknown server %q", name)
}

// pinned prefixes a command line with taskset, so the process and its
// threads run on cpu only.
func pinned(cpu int, argv []string) *exec.Cmd {
	return exec.Command("taskset", append([]string{"-c", fmt.Sprint(cpu)}, argv...)...)
}
