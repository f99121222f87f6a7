package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// harness holds what every run shares.
type harness struct {
	bin, statsdDir string
	rcvbuf         int
	statsdOpts     string        // extra lines for bucky3's statsd_server section
	runs           int           // runs per tested rate
	duration       time.Duration // per run
	steps          int           // bisection steps
	threshold      float64       // fraction of lines that must be accounted
	drain          time.Duration // after the generator stops, before CPU and memory are read
	settle         time.Duration // totals unchanged this long: the server is done
	log            func(format string, args ...any)
	all            []runResult // every run, for the details table
}

// spec is one generator run.
type spec struct {
	test          string
	rate          float64 // lines/s, 0 = flat out
	lpp, series   int
	duration      time.Duration
	count         uint64 // lines; when set, duration is ignored
	flushInterval time.Duration
}

// loadReport is the part of loadgen's JSON the harness uses.
type loadReport struct {
	Packets    uint64  `json:"packets"`
	Lines      uint64  `json:"lines"`
	CounterSum uint64  `json:"counter_sum"`
	TimerLines uint64  `json:"timer_lines"`
	SendErrors uint64  `json:"send_errors"`
	ElapsedS   float64 `json:"elapsed_s"`
	LinesPerS  float64 `json:"lines_per_s"`
}

// runResult is one run against one freshly started server.
type runResult struct {
	server string
	spec   spec
	sent   loadReport
	got    counts
	// accounted is (flushed counter sum + timer count) / (counter lines +
	// timer lines sent): gauges and sets cannot be counted from a flush.
	accounted   float64
	kernelDrops uint64  // machine-wide UDP RcvbufErrors during the run
	cpu         float64 // server CPU seconds from just before sending to drain after it
	mem         memory  // at drain after sending
}

// mix is the type mix of every run (SPEC'd by the issue).
const mix = "c=50,ms=30,g=15,s=5"

// tags is the number of DogStatsD tags per line.
const tags = 3

// run starts srv, sends one spec's load pinned to CPU 1, waits until the
// server's totals stop moving and stops it.
func (h *harness) run(srv *server, sp spec) (res runResult, err error) {
	res = runResult{server: srv.name, spec: sp}
	dir, err := os.MkdirTemp("", "bench-"+srv.name+"-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	e := &env{dir: dir, flushInterval: sp.flushInterval, rcvbuf: h.rcvbuf, statsdOpts: h.statsdOpts, bin: h.bin, statsdDir: h.statsdDir}
	if e.udpPort, err = freePort("udp"); err != nil {
		return res, err
	}
	if e.httpPort, err = freePort("tcp"); err != nil {
		return res, err
	}
	if srv.rules != nil {
		if e.sink, err = newSink(srv.rules); err != nil {
			return res, err
		}
		defer e.sink.Close()
	}
	argv, err := srv.command(e)
	if err != nil {
		return res, err
	}
	logFile, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return res, err
	}
	defer logFile.Close()
	cmd := pinned(0, argv)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return res, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		// The server's exit status after our signal tells nothing more than
		// its log, which err quotes.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		var waitErr error
		select {
		case waitErr = <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			waitErr = <-exited
		}
		_ = waitErr
		if err != nil {
			log, _ := os.ReadFile(logFile.Name())
			err = fmt.Errorf("%w; server log: %s", err, bytes.TrimSpace(log))
		}
	}()
	pid := cmd.Process.Pid

	if err := h.waitReady(srv, e, exited); err != nil {
		return res, err
	}
	drops0, err := rcvbufErrors()
	if err != nil {
		return res, err
	}
	cpu0, err := cpuSeconds(pid)
	if err != nil {
		return res, err
	}
	if res.sent, err = h.load(e.udpPort, sp); err != nil {
		return res, err
	}
	time.Sleep(h.drain)
	cpu1, err := cpuSeconds(pid)
	if err != nil {
		return res, fmt.Errorf("server gone after the load: %w", err)
	}
	res.cpu = cpu1 - cpu0
	if res.mem, err = readMemory(pid); err != nil {
		return res, err
	}
	if res.got, err = h.settleCounts(srv, e, res.sent); err != nil {
		return res, err
	}
	drops1, err := rcvbufErrors()
	if err != nil {
		return res, err
	}
	res.kernelDrops = drops1 - drops0
	if want := float64(res.sent.CounterSum + res.sent.TimerLines); want > 0 {
		res.accounted = (res.got.counterSum + res.got.timerCount) / want
	}
	h.all = append(h.all, res)
	serverDrops := "n/a"
	if res.got.selfDrops >= 0 {
		serverDrops = fmt.Sprintf("%.0f", res.got.selfDrops)
	}
	h.log("%-15s %-9s rate %9s  sent %9d lines at %9.0f/s  accounted %7.3f%%  self %s  kernel drops %d (server's count %s)  cpu %.3fs  rss %s  worst gap %s",
		srv.name, sp.test, rateString(sp.rate), res.sent.Lines, res.sent.LinesPerS, 100*res.accounted,
		selfString(res.got.selfLines, res.sent.Lines), res.kernelDrops, serverDrops, res.cpu, mib(res.mem.rss),
		gapString(res.got))
	return res, nil
}

// waitReady waits up to 30 s for the server's UDP port (and its own
// readiness check).
func (h *harness) waitReady(srv *server, e *env, exited <-chan error) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("%s exited at start: %v", srv.name, err)
		case <-time.After(50 * time.Millisecond):
		}
		if ok, err := udpBound(e.udpPort); err != nil || !ok {
			continue
		}
		if srv.ready == nil || srv.ready(e) {
			return nil
		}
	}
	return fmt.Errorf("%s not ready after 30 s", srv.name)
}

// load runs loadgen on CPU 1 and decodes its report.
func (h *harness) load(port int, sp spec) (loadReport, error) {
	args := []string{filepath.Join(h.bin, "loadgen"),
		"-target", fmt.Sprintf("127.0.0.1:%d", port),
		"-rate", strconv.FormatFloat(sp.rate, 'f', 0, 64),
		"-lpp", strconv.Itoa(sp.lpp), "-series", strconv.Itoa(sp.series),
		"-tags", strconv.Itoa(tags), "-mix", mix}
	if sp.count > 0 {
		args = append(args, "-count", strconv.FormatUint(sp.count, 10))
	} else {
		args = append(args, "-duration", sp.duration.String())
	}
	var stdout, stderr bytes.Buffer
	cmd := pinned(1, args)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return loadReport{}, fmt.Errorf("loadgen: %w: %s", err, stderr.String())
	}
	var rep loadReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		return rep, fmt.Errorf("loadgen report %q: %w", stdout.String(), err)
	}
	return rep, nil
}

// settleCounts polls the server's totals until it accounted for every
// line (and says it read them all) or the totals stop changing for
// h.settle after a flush interval has passed; 2 minutes at most, after
// which the totals are taken as they are.
func (h *harness) settleCounts(srv *server, e *env, sent loadReport) (counts, error) {
	want := float64(sent.CounterSum + sent.TimerLines)
	start := time.Now()
	var last counts
	lastChange := start
	for {
		c, err := srv.accounted(e)
		if err != nil {
			return c, err
		}
		if c.counterSum+c.timerCount >= want && (c.selfLines < 0 || c.selfLines >= float64(sent.Lines)) {
			return c, nil
		}
		now := time.Now()
		if c != last {
			last, lastChange = c, now
		}
		if now.Sub(lastChange) >= h.settle && now.Sub(start) >= e.flushInterval+h.settle {
			return c, nil
		}
		if now.Sub(start) > 2*time.Minute {
			// Report what arrived: the accounted share shows the shortfall.
			h.log("%s: totals still changing after 2 minutes, taking them as they are", srv.name)
			return c, nil
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// freePort returns a port the kernel just handed out on 127.0.0.1.
func freePort(network string) (int, error) {
	if network == "udp" {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// trial is a tested rate and its runs.
type trial struct {
	rate float64
	runs []runResult
}

// passed reports whether every run accounted for at least the threshold.
func (t trial) passed(threshold float64) bool {
	for _, r := range t.runs {
		if r.accounted < threshold {
			return false
		}
	}
	return len(t.runs) > 0
}

// try runs sp at rate up to h.runs times, stopping at the first run that
// misses the threshold.
func (h *harness) try(srv *server, sp spec, rate float64) (trial, error) {
	sp.rate = rate
	t := trial{rate: rate}
	for range h.runs {
		r, err := h.run(srv, sp)
		if err != nil {
			return t, err
		}
		t.runs = append(t.runs, r)
		if r.accounted < h.threshold {
			break
		}
	}
	return t, nil
}

// lossless is the outcome of a rate search.
type lossless struct {
	best           trial // the highest rate that passed; no runs if none did
	generatorBound bool  // flat out passed: the server is faster than the generator
	floor          float64
}

// maxLossless searches the highest rate at which srv accounts for the
// threshold in every run: flat out first (if that passes the generator is
// the limit), then a bisection in log space between 1/64 of the flat-out
// rate and the flat-out rate.
func (h *harness) maxLossless(srv *server, lpp int) (lossless, error) {
	sp := spec{test: fmt.Sprintf("max/%dlpp", lpp), lpp: lpp, series: 10000, duration: h.duration, flushInterval: time.Second}
	flat, err := h.try(srv, sp, 0)
	if err != nil {
		return lossless{}, err
	}
	if flat.passed(h.threshold) {
		flat.rate = median(achieved(flat.runs))
		return lossless{best: flat, generatorBound: true}, nil
	}
	hi := median(achieved(flat.runs))
	lo := hi / 64
	best := trial{rate: lo}
	for range h.steps {
		mid := math.Sqrt(lo * hi)
		t, err := h.try(srv, sp, roundRate(mid))
		if err != nil {
			return lossless{}, err
		}
		if t.passed(h.threshold) {
			lo, best = mid, t
		} else {
			hi = mid
		}
	}
	if best.runs == nil {
		// No step passed: check the floor itself.
		t, err := h.try(srv, sp, roundRate(lo))
		if err != nil {
			return lossless{}, err
		}
		if !t.passed(h.threshold) {
			return lossless{floor: roundRate(lo)}, nil
		}
		best = t
	}
	return lossless{best: best}, nil
}

// roundRate keeps two significant digits, so tested rates read well.
func roundRate(r float64) float64 {
	if r <= 0 {
		return 0
	}
	p := math.Pow(10, math.Floor(math.Log10(r))-1)
	return math.Round(r/p) * p
}

// cpuPerMillion measures server CPU seconds per million lines at 100k
// lines/s, 20 lines per packet. The flush interval is a production-like
// 10 s, so that flush work weighs per line as it would in service (the
// rate searches flush every second, to keep runs short).
func (h *harness) cpuPerMillion(srv *server, d time.Duration) ([]runResult, error) {
	sp := spec{test: "cpu", rate: 100_000, lpp: 20, series: 10000, duration: d, flushInterval: 10 * time.Second}
	var runs []runResult
	for range h.runs {
		r, err := h.run(srv, sp)
		if err != nil {
			return runs, err
		}
		runs = append(runs, r)
	}
	return runs, nil
}

// rss sends each of series distinct series once within one flush interval
// and reads the server's memory right after. The rate is low because
// creating series costs more than updating them: at 150k lines/s bucky3
// already lost 9% of 1M new series to a full socket buffer.
func (h *harness) rss(srv *server, series int) (runResult, error) {
	const rate = 50_000
	interval := time.Duration(float64(series)/rate*float64(time.Second)) + 8*time.Second
	sp := spec{test: fmt.Sprintf("rss/%dk", series/1000), rate: rate, lpp: 20, series: series,
		count: uint64(series), flushInterval: interval.Round(time.Second)}
	return h.run(srv, sp)
}

func achieved(runs []runResult) []float64 {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = r.sent.LinesPerS
	}
	return v
}
