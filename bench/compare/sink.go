package main

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
)

// rule selects Graphite paths and folds their values into one total.
// Tags in the Graphite tagged form (path;k=v;...) are ignored for
// matching: Etsy statsd appends a line's DogStatsD tags that way.
type rule struct {
	key    string
	prefix string
	suffix string // "" matches any
	max    bool   // keep the largest value (cumulative counters) instead of the sum
}

// sink is a Graphite plaintext (carbon) TCP server that keeps, per rule,
// the sum or the largest of the values of matching paths. It stands in
// for carbon so that the harness can check a server's flushed totals.
type sink struct {
	ln    net.Listener
	rules []rule

	mu        sync.Mutex
	conns     map[net.Conn]struct{}
	totals    map[string]float64
	lines     uint64
	malformed uint64

	wg sync.WaitGroup
}

// newSink listens on 127.0.0.1, port chosen by the kernel.
func newSink(rules []rule) (*sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{ln: ln, rules: rules, conns: map[net.Conn]struct{}{}, totals: map[string]float64{}}
	s.wg.Go(s.accept)
	return s, nil
}

// port is the TCP port the sink listens on.
func (s *sink) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *sink) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return // closed by Close
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() { s.read(c) })
	}
}

func (s *sink) read(c net.Conn) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		s.add(sc.Bytes())
	}
}

// add folds one "<path> <value> <timestamp>" line into the totals.
func (s *sink) add(line []byte) {
	f := bytes.Fields(line)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(f) == 0 {
		return
	}
	s.lines++
	if len(f) != 3 {
		s.malformed++
		return
	}
	v, err := strconv.ParseFloat(string(f[1]), 64)
	if err != nil {
		s.malformed++
		return
	}
	path, _, _ := strings.Cut(string(f[0]), ";")
	for _, r := range s.rules {
		if !strings.HasPrefix(path, r.prefix) || !strings.HasSuffix(path, r.suffix) {
			continue
		}
		if r.max {
			s.totals[r.key] = max(s.totals[r.key], v)
		} else {
			s.totals[r.key] += v
		}
	}
}

// snapshot returns a copy of the totals and the line counts so far.
func (s *sink) snapshot() (totals map[string]float64, lines, malformed uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	totals = make(map[string]float64, len(s.totals))
	for k, v := range s.totals {
		totals[k] = v
	}
	return totals, s.lines, s.malformed
}

// Close stops listening, closes the open connections and waits for their
// readers.
func (s *sink) Close() error {
	err := s.ln.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}
