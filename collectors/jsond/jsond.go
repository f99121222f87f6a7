package jsond

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/bucky3/bucky3/collectors/internal/udpsource"
	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/io/udp"
	"github.com/bucky3/bucky3/parse"
)

// Options are the jsond_server options.
type Options struct {
	engine.SourceOptions
	udp.ServerOptions

	// Bucket is the bucket of every metric.
	Bucket string `toml:"bucket"`
	// TimestampWindow is how far (seconds) an object's timestamp may be
	// from now.
	TimestampWindow float64 `toml:"timestamp_window"`
	// BufferLimit bounds the objects held between flushes; beyond it new
	// objects are dropped and counted, so a flood cannot exhaust memory.
	BufferLimit int `toml:"buffer_limit"`
}

// DefaultOptions returns the jsond_server defaults. Unlike statsd_server,
// decompression is on: JSON senders commonly compress.
func DefaultOptions() Options {
	return Options{
		SourceOptions:   engine.DefaultSourceOptions(),
		ServerOptions:   udp.DefaultServerOptions("0.0.0.0:8181", true),
		Bucket:          "metrics",
		TimestampWindow: 600,
		BufferLimit:     100_000,
	}
}

// Validate checks the options; errors name the option at fault.
func (o *Options) Validate() error {
	if err := o.ServerOptions.Validate(); err != nil {
		return err
	}
	if o.Bucket == "" {
		return errors.New("bucket: must not be empty")
	}
	if o.BufferLimit < 100 || o.BufferLimit > 100_000_000 {
		return fmt.Errorf("buffer_limit: must be in [100, 100000000], got %d", o.BufferLimit)
	}
	if o.TimestampWindow <= 0 {
		return fmt.Errorf("timestamp_window: must be above 0, got %v", o.TimestampWindow)
	}
	return nil
}

// Server is the jsond_server module.
type Server struct {
	m   engine.Module
	o   Options
	src *udpsource.Source

	lines, invalid, metricsDropped, bufferFull *engine.Counter
	invalidBy                                  [parse.NumReasons]*engine.Counter

	mu      sync.Mutex
	pending []engine.Metric
}

// New returns a jsond_server module; it does no I/O until Run.
func New(m engine.Module, o Options) (*Server, error) {
	s := &Server{
		m:              m,
		o:              o,
		src:            udpsource.New(m, o.ServerOptions),
		lines:          m.Stats.Counter("lines_received"),
		invalid:        m.Stats.Counter("lines_invalid"),
		metricsDropped: m.Stats.Counter("metrics_dropped"),
		bufferFull:     m.Stats.Counter("metrics_dropped_buffer_full"),
	}
	for _, r := range parse.JSONReasons() {
		s.invalidBy[r] = m.Stats.Counter("lines_invalid_" + r.String())
	}
	return s, nil
}

// Addr waits for Run to bind and returns the bound address (tests listen
// on port 0).
func (s *Server) Addr(ctx context.Context) (string, error) { return s.src.Addr(ctx) }

// Run listens and emits the objects received every flush_interval until
// ctx is cancelled; then it stops reading and emits what it holds.
func (s *Server) Run(ctx context.Context, out engine.Emitter) error {
	every := engine.Seconds(s.o.FlushInterval)
	return s.src.Run(ctx, udpsource.Loop{
		Handler:    s.handler,
		FirstFlush: every,
		FlushEvery: every,
		Flush:      func() { s.flush(out) },
	})
}

func (s *Server) flush(out engine.Emitter) {
	s.mu.Lock()
	metrics := s.pending
	s.pending = nil
	s.mu.Unlock()
	if len(metrics) > 0 {
		out.Emit(&engine.Batch{Source: s.m.Name, Metrics: metrics})
	}
}

// handler gives each socket reader its own parser and decoder.
func (s *Server) handler(int) func(packet []byte) {
	parser := parse.JSON{TimestampWindow: int64(s.o.TimestampWindow)}
	decoder := s.src.NewDecoder()
	var metrics []engine.Metric
	return func(packet []byte) {
		packet, ok := decoder.Decode(packet)
		if !ok {
			return
		}
		now := time.Now()
		objects := parser.Parse(packet, now.UnixMilli())
		s.lines.Add(uint64(parser.Lines))
		if invalid := parser.Lines - uint32(len(objects)); invalid > 0 {
			s.invalid.Add(uint64(invalid))
			for r, n := range parser.Rejected {
				if n > 0 && s.invalidBy[r] != nil {
					s.invalidBy[r].Add(uint64(n))
				}
			}
		}
		metrics = metrics[:0]
		for i := range objects {
			metrics = append(metrics, s.metric(&objects[i], now))
		}
		s.enqueue(metrics)
	}
}

// metric copies a parsed object out of the parser's memory.
func (s *Server) metric(obj *parse.Object, now time.Time) engine.Metric {
	m := engine.Metric{Bucket: s.o.Bucket, Timestamp: obj.Timestamp, Fields: make([]engine.Field, len(obj.Fields))}
	if m.Timestamp == 0 {
		m.Timestamp = now.UnixMilli()
	}
	for i, f := range obj.Fields {
		v := engine.Value{Kind: engine.Kind(f.Kind), Num: f.Num, Bool: f.Bool}
		if f.Kind == parse.KindString {
			v.Str = string(f.Str)
		}
		m.Fields[i] = engine.Field{Name: string(f.Key), Value: v}
	}
	return m
}

func (s *Server) enqueue(metrics []engine.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	room := s.o.BufferLimit - len(s.pending)
	if lost := len(metrics) - room; lost > 0 {
		s.bufferFull.Add(uint64(lost))
		s.metricsDropped.Add(uint64(lost))
		metrics = metrics[:max(room, 0)]
	}
	s.pending = append(s.pending, metrics...)
}
