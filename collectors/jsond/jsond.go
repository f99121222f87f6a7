package jsond

import (
	"context"
	"errors"
	"fmt"
	"reflect"
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
	// BufferLimit and BufferBytes bound the objects held between flushes,
	// in objects and in bytes (an estimate of what the metrics take in
	// memory); beyond either new objects are dropped and counted, so a
	// flood cannot exhaust memory.
	BufferLimit int `toml:"buffer_limit"`
	BufferBytes int `toml:"buffer_bytes"`
	// MaxFields bounds the fields of one object (the timestamp key aside)
	// and MaxKeyLength the bytes of one key: a line over either is
	// dropped and counted.
	MaxFields    int `toml:"max_fields"`
	MaxKeyLength int `toml:"max_key_length"`
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
		BufferBytes:     64 << 20,
		MaxFields:       256,
		MaxKeyLength:    256,
	}
}

// Validate checks the options; errors name the option at fault.
func (o *Options) Validate() error {
	if err := udpsource.ValidateOptions(&o.ServerOptions); err != nil {
		return err
	}
	if o.OriginDetection {
		// Only statsd_server tags metrics with the sender's container.
		return errors.New("origin_detection: not supported by jsond_server, only by statsd_server")
	}
	if o.Bucket == "" {
		return errors.New("bucket: must not be empty")
	}
	limits := []struct {
		name     string
		value    int
		min, max int
	}{
		{"buffer_limit", o.BufferLimit, 100, 100_000_000},
		{"buffer_bytes", o.BufferBytes, 1 << 20, 1 << 40},
		// A line fits in a datagram, so larger limits would mean nothing.
		{"max_fields", o.MaxFields, 1, 65535},
		{"max_key_length", o.MaxKeyLength, 1, 65535},
	}
	for _, l := range limits {
		if l.value < l.min || l.value > l.max {
			return fmt.Errorf("%s: must be in [%d, %d], got %d", l.name, l.min, l.max, l.value)
		}
	}
	return engine.CheckSeconds("timestamp_window", o.TimestampWindow, 0)
}

// Server is the jsond_server module.
type Server struct {
	m   engine.Module
	o   Options
	src *udpsource.Source

	lines, invalid, metricsDropped       *engine.Counter
	bufferFull, bufferBytes, memoryLimit *engine.Counter
	invalidBy                            [parse.NumReasons]*engine.Counter

	// memory is m.Memory; tests put their own budget here.
	memory interface{ Tight() bool }

	mu           sync.Mutex
	pending      []engine.Metric
	pendingBytes int // metricBytes of pending
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
		bufferBytes:    m.Stats.Counter("metrics_dropped_buffer_bytes"),
		memoryLimit:    m.Stats.Counter("metrics_dropped_memory_limit"),
		memory:         m.Memory,
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
	s.pending, s.pendingBytes = nil, 0
	s.mu.Unlock()
	if len(metrics) > 0 {
		out.Emit(&engine.Batch{Source: s.m.Name, Metrics: metrics})
	}
}

// handler gives each socket reader its own parser and decoder.
func (s *Server) handler(int) func(packet []byte) {
	parser := parse.JSON{TimestampWindow: s.o.TimestampWindow, MaxFields: s.o.MaxFields, MaxKeyLength: s.o.MaxKeyLength}
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
		if len(objects) == 0 {
			return
		}
		// While the agent is short of memory, nothing new is kept: not
		// even copied out of the parser.
		if s.memory.Tight() {
			s.memoryLimit.Add(uint64(len(objects)))
			s.metricsDropped.Add(uint64(len(objects)))
			return
		}
		metrics = metrics[:0]
		for i := range objects {
			metrics = append(metrics, s.metric(&objects[i], now))
		}
		s.enqueue(metrics)
		clear(metrics) // the buffer keeps the copies; drop ours
	}
}

// The sizes metricBytes counts besides the strings' bytes.
var (
	metricSize = int(reflect.TypeFor[engine.Metric]().Size())
	fieldSize  = int(reflect.TypeFor[engine.Field]().Size())
)

// metricBytes estimates the memory a metric built by metric holds: its
// struct, its fields and their strings (the bucket is shared).
func metricBytes(m *engine.Metric) int {
	n := metricSize + len(m.Fields)*fieldSize
	for i := range m.Fields {
		n += len(m.Fields[i].Name) + len(m.Fields[i].Value.Str)
	}
	return n
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

// enqueue appends metrics to the buffer, in order, as long as both bounds
// allow; the rest are dropped, counted by the bound they hit.
func (s *Server) enqueue(metrics []engine.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	room := s.o.BufferLimit - len(s.pending)
	kept, full, bytes := 0, 0, 0
	for i := range metrics {
		if kept >= room {
			full = len(metrics) - i
			break
		}
		n := metricBytes(&metrics[i])
		if s.pendingBytes+n > s.o.BufferBytes {
			bytes++
			continue // a smaller object may still fit
		}
		s.pendingBytes += n
		s.pending = append(s.pending, metrics[i])
		kept++
	}
	if full > 0 {
		s.bufferFull.Add(uint64(full))
	}
	if bytes > 0 {
		s.bufferBytes.Add(uint64(bytes))
	}
	if lost := full + bytes; lost > 0 {
		s.metricsDropped.Add(uint64(lost))
	}
}
