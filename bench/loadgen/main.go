// Command loadgen sends StatsD lines over UDP as fast as asked and reports,
// as JSON on stdout, exactly what the kernel accepted: packets, lines by
// type, the sum of counter values and the number of timer lines, so that a
// server's flushed counter sums and timer counts can be checked to the line.
//
// Datagrams are rendered once into a ring before the clock starts (see
// render); each sender goroutine has its own connected socket and its own
// starting point in the ring, and sends batches with one sendmmsg call
// (-mmsg, the default) or one write per packet. A rate is paced per batch.
//
//	loadgen -target 127.0.0.1:8125 -rate 100000 -lpp 20 -series 10000 \
//	        -tags 3 -mix c=50,ms=30,g=15,s=5 -duration 10s
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// config holds the command line.
type config struct {
	target   string
	rate     float64
	lpp      int
	series   int
	tags     int
	mix      string
	duration time.Duration
	count    uint64
	senders  int
	batch    int
	mmsg     bool
}

// report is the JSON printed at the end. Counts are what the kernel
// accepted for sending; a refused send is in send_errors only.
type report struct {
	Target         string            `json:"target"`
	Senders        int               `json:"senders"`
	LinesPerPacket int               `json:"lines_per_packet"`
	Series         int               `json:"series"`
	Tags           int               `json:"tags"`
	Mix            string            `json:"mix"`
	Sendmmsg       bool              `json:"sendmmsg"`
	Batch          int               `json:"batch"`
	RateTarget     float64           `json:"rate_target"`
	Packets        uint64            `json:"packets"`
	Lines          uint64            `json:"lines"`
	Bytes          uint64            `json:"bytes"`
	LinesByType    map[string]uint64 `json:"lines_by_type"`
	CounterSum     uint64            `json:"counter_sum"`
	TimerLines     uint64            `json:"timer_lines"`
	SendErrors     uint64            `json:"send_errors"`
	ElapsedS       float64           `json:"elapsed_s"`
	LinesPerS      float64           `json:"lines_per_s"`
	PacketsPerS    float64           `json:"packets_per_s"`
}

func run(args []string, stdout, stderr io.Writer) int {
	var c config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.target, "target", "127.0.0.1:8125", "UDP `host:port` to send to")
	fs.Float64Var(&c.rate, "rate", 0, "lines per second over all senders, 0 = flat out")
	fs.IntVar(&c.lpp, "lpp", 20, "lines per packet")
	fs.IntVar(&c.series, "series", 10000, "distinct series (a multiple of the mix cycle keeps the mix exact)")
	fs.IntVar(&c.tags, "tags", 3, "DogStatsD tags per line (|#k:v,...)")
	fs.StringVar(&c.mix, "mix", "c=50,ms=30,g=15,s=5", "type mix as type=weight,... (types c, ms, g, s, h, d)")
	fs.DurationVar(&c.duration, "duration", 0, "how long to send (0 = until -count)")
	fs.Uint64Var(&c.count, "count", 0, "lines to send, rounded up to whole packets (0 = until -duration)")
	fs.IntVar(&c.senders, "senders", 1, "sender goroutines, one socket each")
	fs.IntVar(&c.batch, "batch", 64, "packets per sendmmsg call and per pacing step")
	fs.BoolVar(&c.mmsg, "mmsg", true, "send with sendmmsg (false: one write per packet)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rep, err := generate(c)
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 1
	}
	return 0
}

// generate renders the ring, runs the senders and adds up what they sent.
func generate(c config) (*report, error) {
	switch {
	case c.duration <= 0 && c.count == 0:
		return nil, errors.New("one of -duration and -count is required")
	case c.senders < 1 || c.batch < 1 || c.rate < 0:
		return nil, errors.New("-senders and -batch must be at least 1, -rate at least 0")
	}
	weights, err := parseMix(c.mix)
	if err != nil {
		return nil, err
	}
	r, err := render(shape{series: c.series, linesPerPacket: c.lpp, tags: c.tags, cycle: schedule(weights)})
	if err != nil {
		return nil, err
	}
	addr, err := net.ResolveUDPAddr("udp", c.target)
	if err != nil {
		return nil, err
	}
	totalPackets := (c.count + uint64(c.lpp) - 1) / uint64(c.lpp)
	senders := make([]*sender, c.senders)
	for i := range senders {
		conn, err := net.DialUDP("udp", nil, addr)
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		s := &sender{
			conn:  conn,
			ring:  r,
			start: i * r.packets() / c.senders,
			rate:  c.rate / float64(c.lpp) / float64(c.senders),
			batch: c.batch,
		}
		if c.count > 0 {
			// Spread the packets so the shares add up exactly.
			s.limit = totalPackets/uint64(c.senders) + boolToUint(uint64(i) < totalPackets%uint64(c.senders))
			if s.limit == 0 {
				continue
			}
		}
		if c.mmsg {
			if s.mmsg, err = newMmsgWriter(conn, c.batch); err != nil {
				return nil, err
			}
		}
		senders[i] = s
	}

	begin := time.Now()
	var deadline time.Time
	if c.duration > 0 {
		deadline = begin.Add(c.duration)
	}
	var wg sync.WaitGroup
	for _, s := range senders {
		if s != nil {
			wg.Go(func() { s.run(begin, deadline) })
		}
	}
	wg.Wait()
	elapsed := time.Since(begin).Seconds()

	var total tally
	var sendErrors uint64
	for _, s := range senders {
		if s != nil {
			total.add(s.sent)
			sendErrors += s.errors
		}
	}
	rep := &report{
		Target: c.target, Senders: c.senders, LinesPerPacket: c.lpp, Series: c.series,
		Tags: c.tags, Mix: c.mix, Sendmmsg: c.mmsg, Batch: c.batch, RateTarget: c.rate,
		Packets: total.packets, Lines: total.lines, Bytes: total.bytes,
		LinesByType: map[string]uint64{},
		CounterSum:  total.counterSum,
		SendErrors:  sendErrors,
		ElapsedS:    elapsed,
	}
	for t, n := range total.byType {
		if weights[t] > 0 {
			rep.LinesByType[types[t]] = n
		}
		if types[t] == "ms" || types[t] == "h" || types[t] == "d" {
			rep.TimerLines += n
		}
	}
	if elapsed > 0 {
		rep.LinesPerS = float64(total.lines) / elapsed
		rep.PacketsPerS = float64(total.packets) / elapsed
	}
	return rep, nil
}

func boolToUint(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
