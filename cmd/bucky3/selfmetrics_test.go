package main

import (
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bucky3/bucky3/internal/backendtest"
)

// TestSelfMetricsThroughPrometheus sends StatsD lines, some invalid, to a
// real agent and reads the agent's own metrics back from a real
// Prometheus that scrapes its exporter: exact line and drop counts, by
// reason, typed as statsd_exporter users expect.
func TestSelfMetricsThroughPrometheus(t *testing.T) {
	promAddr, statsdAddr := freeAddr(t), freeAddr(t)
	start(t, writeConfig(t, fmt.Sprintf(`
flush_interval = 1
randomize_startup = false
[statsd]
module_type = "statsd_server"
local_host = %q
name_rule = "bucky3"         # bad-name:1|c must be invalid
[prom]
module_type = "prometheus_exporter"
local_host = %q
`, statsdAddr, promAddr)))
	url := "http://" + promAddr + "/metrics"
	for deadline := time.Now().Add(10 * time.Second); scrape(url) == ""; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("exporter never answered")
		}
	}
	conn, err := net.Dial("udp", statsdAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const datagrams = 10
	for i := range datagrams {
		lines := []string{
			"hits:1|c",
			fmt.Sprintf("level:%d|g", i),
			"bad-name:1|c",
			"worse:1|zz",
			"worst:2|zz",
		}
		if _, err := conn.Write([]byte(strings.Join(lines, "\n"))); err != nil {
			t.Fatal(err)
		}
	}

	prom := backendtest.StartPrometheus(t, promAddr)
	// value waits until expr has exactly the samples want (labels of
	// interest → value), as the scrapes catch up with the agent.
	value := func(expr, label string, want map[string]float64) {
		t.Helper()
		var got map[string]float64
		for deadline := time.Now().Add(45 * time.Second); ; time.Sleep(500 * time.Millisecond) {
			got = map[string]float64{}
			for _, s := range prom.Query(t, expr) {
				got[s.Labels[label]] = s.Value
			}
			if fmt.Sprint(got) == fmt.Sprint(want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s by %s = %v, want %v", expr, label, got, want)
			}
		}
	}
	value(`bucky3_lines_received_total{module="statsd"}`, "module", map[string]float64{"statsd": datagrams * 5})
	value(`bucky3_lines_dropped_total{module="statsd"} > 0`, "reason", map[string]float64{
		"invalid_bad_name": datagrams,
		"invalid_bad_type": 2 * datagrams,
	})
	value(`bucky3_packets_dropped_kernel_total`, "module", map[string]float64{"statsd": 0})
	value(`bucky3_build_info`, "__name__", map[string]float64{"bucky3_build_info": 1})

	// The families are typed: Prometheus' metadata API says so.
	meta := metadata(t, prom.URL)
	for name, typ := range map[string]string{
		"bucky3_lines_received_total":         "counter",
		"bucky3_lines_dropped_total":          "counter",
		"bucky3_packets_dropped_kernel_total": "counter",
		"bucky3_series":                       "gauge",
		"bucky3_build_info":                   "gauge",
		"go_goroutines":                       "gauge",
		"process_cpu_seconds_total":           "counter",
	} {
		if meta[name] != typ {
			names := make([]string, 0, len(meta))
			for n := range meta {
				names = append(names, n)
			}
			sort.Strings(names)
			t.Errorf("type of %s = %q, want %q (metadata for %v)", name, meta[name], typ, names)
		}
	}
}

// metadata returns each metric family's type as Prometheus' metadata API
// at base reports it.
func metadata(t *testing.T, base string) map[string]string {
	t.Helper()
	var resp struct {
		Data map[string][]struct {
			Type string `json:"type"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(scrape(base+"/api/v1/metadata")), &resp); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for name, m := range resp.Data {
		if len(m) > 0 {
			out[name] = m[0].Type
		}
	}
	return out
}
