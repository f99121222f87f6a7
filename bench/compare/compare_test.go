package main

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The sink folds what a real TCP client writes, by rule, ignoring
// Graphite tags and malformed lines.
func TestSink_Totals(t *testing.T) {
	s, err := newSink([]rule{
		{key: "counters", prefix: "stats_counts.lg_c_"},
		{key: "timers", prefix: "stats.timers.lg_ms_", suffix: ".count"},
		{key: "self", prefix: "bucky3.lines_received.statsd", max: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	input := strings.Join([]string{
		"stats_counts.lg_c_1;t0=v1;t1=v2 10 1700000000",
		"stats_counts.lg_c_2 2.5 1700000000",
		"stats.timers.lg_ms_3.count;t0=v0 7 1700000000",
		"stats.timers.lg_ms_3.count_90 6 1700000000", // not .count
		"stats.timers.lg_ms_3.upper 99 1700000000",
		"bucky3.lines_received.statsd 100 1700000000",
		"bucky3.lines_received.statsd 40 1700000001", // cumulative: the largest wins
		"stats_counts.lg_c_4 x 1700000000",           // malformed
		"stats_counts.lg_c_5 1",                      // malformed
		"",
	}, "\n") + "\n"
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.port()))
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{input[:37], input[37:]} { // a line split across writes
		if _, err := c.Write([]byte(part)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // let the first half arrive alone
	}
	c.Close()
	var totals map[string]float64
	var lines, malformed uint64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if totals, lines, malformed = s.snapshot(); lines >= 9 {
			break
		}
	}
	want := map[string]float64{"counters": 12.5, "timers": 7, "self": 100}
	if fmt.Sprint(totals) != fmt.Sprint(want) || lines != 9 || malformed != 2 {
		t.Fatalf("totals %v, %d lines, %d malformed; want %v, 9 lines, 2 malformed", totals, lines, malformed, want)
	}
}

func TestExporterCounts(t *testing.T) {
	exposition := `# TYPE lg_c_0 counter
lg_c_0{t0="v0"} 3
# TYPE lg_c_1 counter
lg_c_1{t0="v1"} 4
# TYPE lg_ms_2 summary
lg_ms_2{t0="v2",quantile="0.5"} 0.1
lg_ms_2_sum{t0="v2"} 1
lg_ms_2_count{t0="v2"} 5
# TYPE lg_ms_3 histogram
lg_ms_3_bucket{le="+Inf"} 2
lg_ms_3_sum 1
lg_ms_3_count 2
# TYPE lg_g_4 gauge
lg_g_4 100
# TYPE statsd_exporter_lines_total counter
statsd_exporter_lines_total 20
`
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	got := exporterCounts(families)
	if want := (counts{counterSum: 7, timerCount: 7, selfLines: 20, selfDrops: -1, gapMax: -1, queueMax: -1}); got != want {
		t.Fatalf("exporterCounts = %+v, want %+v", got, want)
	}
}

func TestParseStatCPU(t *testing.T) {
	f := func(stat string, want float64) {
		t.Helper()
		got, err := parseStatCPU([]byte(stat))
		if err != nil || got != want {
			t.Fatalf("parseStatCPU(%q) = %v, %v; want %v", stat, got, err, want)
		}
	}
	f("1234 (bucky3) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 8 0 100 0 0", 2.87)
	f("99 (a) b (c)) R 1 1 1 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 1 0 0", 0.03)
	for _, bad := range []string{"", "1 (x) S 1", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 u 2"} {
		if _, err := parseStatCPU([]byte(bad)); err == nil {
			t.Fatalf("parseStatCPU(%q) accepted", bad)
		}
	}
}

func TestParseStatus(t *testing.T) {
	m, err := parseStatus([]byte("Name:\tbucky3\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nThreads: 8\n"))
	if err != nil || m != (memory{rss: 1 << 20, peak: 2 << 20}) {
		t.Fatalf("parseStatus = %+v, %v", m, err)
	}
	if _, err := parseStatus([]byte("VmRSS:\t1024 kB\n")); err == nil {
		t.Fatal("parseStatus accepted a status without VmHWM")
	}
}

func TestParseSNMP(t *testing.T) {
	snmp := "Ip: Forwarding DefaultTTL\nIp: 1 64\n" +
		"Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\nUdp: 10 0 7 10 5 0\n" +
		"UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\nUdpLite: 0 0 0 0 9 0\n"
	if n, err := parseSNMP([]byte(snmp), "Udp", "RcvbufErrors"); err != nil || n != 5 {
		t.Fatalf("Udp RcvbufErrors = %d, %v; want 5", n, err)
	}
	if _, err := parseSNMP([]byte(snmp), "Tcp", "RcvbufErrors"); err == nil {
		t.Fatal("found a Tcp counter that is not there")
	}
}

// udpBound sees a real socket bound on 127.0.0.1 and not a closed one.
func TestUDPBound(t *testing.T) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	if ok, err := udpBound(port); err != nil || !ok {
		t.Fatalf("udpBound(%d) = %v, %v with the socket open", port, ok, err)
	}
	c.Close()
	if ok, _ := udpBound(port); ok {
		t.Fatalf("udpBound(%d) = true after close", port)
	}
}

func TestReplaceSection(t *testing.T) {
	f := func(doc, body, want string) {
		t.Helper()
		if got := replaceSection(doc, body); got != want {
			t.Fatalf("replaceSection(%q, %q) =\n%q\nwant\n%q", doc, body, got, want)
		}
	}
	block := func(body string) string { return beginMarker + "\n" + body + endMarker }
	f("", "x\n", heading+"\n\n"+block("x\n")+"\n")
	f("# R\n\n## Other\ntext", "x\n", "# R\n\n## Other\ntext\n\n"+heading+"\n\n"+block("x\n")+"\n")
	f("a\n"+block("old\n")+"\nb\n", "new\n", "a\n"+block("new\n")+"\nb\n")
	// A rerun of its own output replaces the section only.
	once := replaceSection("# R\n", "one\n")
	f(once, "two\n", "# R\n\n"+heading+"\n\n"+block("two\n")+"\n")
}

func TestRoundRateAndSpread(t *testing.T) {
	for in, want := range map[float64]float64{0: 0, 123456: 120000, 987: 990, 3.7e6: 3.7e6} {
		if got := roundRate(in); got != want {
			t.Fatalf("roundRate(%v) = %v, want %v", in, got, want)
		}
	}
	if got := spread([]float64{3, 1, 2}, pct); got != "200.00% [100.00%–300.00%]" {
		t.Fatalf("spread = %q", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Fatalf("median = %v", got)
	}
}

// bucky3's self report gives each run's worst reader gap and fullest
// socket queue: the largest of the reports.
func TestSinkCounts_ReaderGap(t *testing.T) {
	srv, err := serverByName("bucky3")
	if err != nil {
		t.Fatal(err)
	}
	s, err := newSink(srv.rules)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.port()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("bucky3.reader_gap_seconds_max.statsd 0.0123 1700000000\n" +
		"bucky3.reader_gap_seconds_max.statsd 0.004 1700000001\n" +
		"bucky3.socket_queue_bytes.statsd 2048 1700000000\n" +
		"bucky3.socket_queue_bytes.statsd 0 1700000001\n")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	var got counts
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, lines, _ := s.snapshot(); lines >= 4 {
			break
		}
	}
	if got, err = sinkCounts(&env{sink: s}); err != nil {
		t.Fatal(err)
	}
	if got.gapMax != 0.0123 || got.queueMax != 2048 || gapString(got) != "12.3 ms (2 KiB)" {
		t.Fatalf("gap %v, queue %v, %q; want 0.0123, 2048, \"12.3 ms (2 KiB)\"", got.gapMax, got.queueMax, gapString(got))
	}
	if none := gapString(counts{gapMax: -1, queueMax: -1}); none != "n/a" {
		t.Fatalf("gapString without a report = %q, want n/a", none)
	}
}
