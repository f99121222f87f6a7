package statsd

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/bucky3/bucky3/aggregate"
	"github.com/bucky3/bucky3/collectors/internal/udpsource"
	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/parse"
	"github.com/bucky3/bucky3/parse/mapping"
)

// Server is the statsd_server module.
type Server struct {
	m        engine.Module
	o        Options
	src      *udpsource.Source
	counters counters
	mapper   *lineMapper // nil without mapping_config
}

// counters are the module's self-report counters, looked up once.
type counters struct {
	packets                           *udpsource.Counters
	lines, invalid, skipped, bareTags *engine.Counter
	invalidBy                         [parse.NumReasons]*engine.Counter
	metricsDropped, seriesDropped     *engine.Counter
	memoryDropped                     *engine.Counter
	mapped                            [numMapOutcomes]*engine.Counter
	timersSampled, setsEstimated      *engine.Counter
	series                            *engine.Gauge
}

func newCounters(s *engine.Stats, packets *udpsource.Counters) counters {
	c := counters{
		packets:        packets,
		lines:          s.Counter("lines_received"),
		invalid:        s.Counter("lines_invalid"),
		skipped:        s.Counter("lines_skipped"),
		bareTags:       s.Counter("tags_ignored_bare"),
		metricsDropped: s.Counter("metrics_dropped"),
		seriesDropped:  s.Counter("metrics_dropped_max_series"),
		memoryDropped:  s.Counter("metrics_dropped_memory_limit"),
		timersSampled:  s.Counter("timer_samples_sampled"),
		setsEstimated:  s.Counter("set_members_estimated"),
		series:         s.Gauge("series"),
	}
	// A rule's drop is the configuration's choice, like a relabel drop,
	// so it is no loss (engine.IsLoss); an empty mapped name is.
	c.mapped[mapDrop] = s.Counter("lines_filtered_mapping")
	c.mapped[mapEmptyName] = s.Counter("lines_dropped_mapping_empty_name")
	for _, r := range parse.StatsDReasons() {
		c.invalidBy[r] = s.Counter("lines_invalid_" + r.String())
	}
	return c
}

// New returns a statsd_server module; it does no I/O until Run, but
// reads mapping_config unless Validate has.
func New(m engine.Module, o Options) (*Server, error) {
	src := udpsource.New(m, o.ServerOptions).WithTCP(o.TCPOptions)
	s := &Server{m: m, o: o, src: src, counters: newCounters(m.Stats, src.Counters())}
	if o.MappingConfig != "" && o.mapper == nil {
		mp, err := mapping.Load(o.MappingConfig)
		if err != nil {
			return nil, fmt.Errorf("mapping_config: %w", err)
		}
		s.o.mapper = mp
	}
	if s.o.mapper != nil {
		var err error
		if s.mapper, err = newLineMapper(s.o.mapper); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Addr waits for Run to bind and returns the bound address (tests listen
// on port 0): UDP's, or the unix socket's without UDP.
func (s *Server) Addr(ctx context.Context) (string, error) { return s.src.Addr(ctx) }

// Addrs waits for Run to bind and returns every bound address.
func (s *Server) Addrs(ctx context.Context) (udpsource.Addrs, error) { return s.src.Addrs(ctx) }

// Run listens, aggregates and flushes every flush_interval until ctx is
// cancelled; then it stops reading and flushes once more.
func (s *Server) Run(ctx context.Context, out engine.Emitter) error {
	to := tableOptions(s.o)
	if s.m.Memory != nil { // a nil *Memory in the interface would still be non-nil
		to.Memory = s.m.Memory
	}
	table, err := aggregate.New(to)
	if err != nil {
		return err
	}
	readers := &readerSet{server: s, table: table}
	var last tableCounts
	flushEvery := engine.Seconds(s.o.FlushInterval)
	return s.src.Run(ctx, udpsource.Loop{
		Handler:       readers.handler,
		OriginHandler: readers.originHandler,
		TCPHandler:    readers.lineHandler,
		FirstFlush:    flushEvery + s.o.StartupDelay(),
		FlushEvery:    flushEvery,
		Flush:         func() { s.flush(table, out) },
		Publish:       func() { last.publish(table, &s.counters) },
	})
}

// tableCounts are the table's counts already published: they are added as
// deltas, so the report stays cumulative across restarts of the module
// (each Run has a new table).
type tableCounts struct {
	series, memory, sampled, estimated uint64
}

func (p *tableCounts) publish(t *aggregate.Table, c *counters) {
	add := func(last *uint64, now uint64, to ...*engine.Counter) {
		if d := now - *last; d > 0 {
			for _, c := range to {
				c.Add(d)
			}
		}
		*last = now
	}
	add(&p.series, t.SeriesDropped(), c.seriesDropped, c.metricsDropped)
	add(&p.memory, t.MemoryDropped(), c.memoryDropped, c.metricsDropped)
	add(&p.sampled, t.TimersSampled(), c.timersSampled)
	add(&p.estimated, t.SetsEstimated(), c.setsEstimated)
	c.series.Set(t.Series())
}

func (s *Server) flush(table *aggregate.Table, out engine.Emitter) {
	metrics := table.Flush(time.Now())
	if len(metrics) == 0 {
		return
	}
	out.Emit(&engine.Batch{Source: s.m.Name, Metrics: metrics})
}

// tableOptions returns the table's options for o. A table written by one
// reader gets a single stripe: stripes keep readers from waiting on each
// other, and one stripe keeps a datagram's series side by side in arrival
// order (bench/RESULTS.md, Round 7).
func tableOptions(o Options) aggregate.Options {
	t := o.Options
	t.Typed = o.Layout == layoutTyped
	if writers(o) == 1 {
		t.Stripes = 1
	}
	return t
}

// writers returns how many goroutines may write the table at once: the
// UDP readers, the unix socket's reader and a TCP connection per slot.
func writers(o Options) int {
	n := 0
	if o.LocalHost != "" {
		n += udpsource.Readers(o.Readers)
	}
	if o.LocalSocket != "" {
		n++ // io/udp's one reader of the socket (Config.SocketReaders)
	}
	if o.LocalTCP != "" {
		n += o.MaxConnections
	}
	return n
}

// readerSet builds the per-reader state: a decoder, a parser, a table
// writer and a memo that only that reader's goroutine touches.
type readerSet struct {
	server *Server
	table  *aggregate.Table
	// nowMs reads the clock for the timestamp window; nil is the real
	// clock (tests set it to compare readers at one instant).
	nowMs func() int64
}

func (rs *readerSet) handler(int) func(packet []byte) { return rs.newReader().handle }

// originHandler is handler when origin_detection is on: io/udp passes
// the UDP readers "" as the container id, and handleOrigin then does what
// handle does.
func (rs *readerSet) originHandler(int) func(packet []byte, containerID string) {
	return rs.newReader().handleOrigin
}

// lineHandler gives a TCP connection slot its reader: each read of whole
// lines is handled as a datagram, never inflated.
func (rs *readerSet) lineHandler(int) func(lines []byte) {
	r := rs.newReader()
	r.decoder = rs.server.src.NewLineDecoder()
	return r.handle
}

func (rs *readerSet) newReader() *reader {
	s := rs.server
	r := &reader{
		c:       &s.counters,
		decoder: s.src.NewDecoder(),
		parser:  parserOf(&s.o),
		prep:    newPrepare(s),
		writer:  rs.table.NewWriter(),
		known:   newKnownLines(),
		clock:   rs.nowMs,
	}
	if r.clock == nil {
		r.clock = func() int64 { return time.Now().UnixMilli() }
	}
	return r
}

// parserOf returns a parser configured by o's parser options.
func parserOf(o *Options) parse.StatsD {
	rule, _ := o.nameRule() // Validate has checked it
	return parse.StatsD{
		NameRule:         rule,
		MaxTags:          o.MaxTags,
		MaxNameLength:    o.MaxNameLength,
		MaxTagLength:     o.MaxTagLength,
		MaxValuesPerLine: o.MaxValuesPerLine,
		TimestampWindow:  o.TimestampWindow,
	}
}

// reader is the state of one socket reader goroutine.
type reader struct {
	c       *counters
	decoder udpsource.Decoder
	parser  parse.StatsD
	prep    prepare
	writer  *aggregate.Writer
	known   *knownLines
	clock   func() int64

	// Per datagram: the clock, read only when a line needs it, and the
	// counts added to the shared counters once at the end.
	nowMs           int64
	lines, bareTags uint64
	mapped          [numMapOutcomes]uint64 // lines not kept, by outcome
	sample          parse.Sample
	// withOrigin is handleOrigin's copy of a datagram with the container
	// field added, reused.
	withOrigin []byte
}

// handle is the reader's function for each datagram: it looks the lines
// up in the memo batchLines at a time and parses in full only the misses.
func (r *reader) handle(packet []byte) {
	packet, ok := r.decoder.Decode(packet)
	if !ok {
		return
	}
	r.add(packet)
}

// handleOrigin is handle for a datagram from the container containerID
// ("" for none): each line without a container field of its own gets
// "|c:<containerID>", which the parser turns into the tag container_id by
// the rules of a field the sender wrote. The memo then keeps the
// container in the line's shape, so the same line from two containers
// feeds two series.
func (r *reader) handleOrigin(packet []byte, containerID string) {
	packet, ok := r.decoder.Decode(packet)
	if !ok {
		return
	}
	if containerID != "" {
		r.withOrigin = appendOrigin(r.withOrigin[:0], packet, containerID)
		packet = r.withOrigin
	}
	r.add(packet)
}

// appendOrigin appends the lines of packet to dst, each followed by a
// newline and with "|c:<containerID>" inserted right after its type. A
// container field of the line comes later and wins (the parser keeps the
// last one), so does a container_id tag. Lines that are no metric
// (events, service checks, no ':' before a '|') are copied unchanged.
func appendOrigin(dst, packet []byte, containerID string) []byte {
	for {
		line, rest := parse.NextLine(packet)
		if len(line) == 0 {
			return dst
		}
		packet = rest
		at := typeEnd(line)
		if at < 0 {
			dst = append(dst, line...)
		} else {
			dst = append(dst, line[:at]...)
			dst = append(dst, "|c:"...)
			dst = append(dst, containerID...)
			dst = append(dst, line[at:]...)
		}
		dst = append(dst, '\n')
	}
}

// typeEnd returns the end of a metric line's type field ("name:values|type"),
// or -1 when line is no metric.
func typeEnd(line []byte) int {
	if bytes.HasPrefix(line, []byte("_e{")) || bytes.HasPrefix(line, []byte("_sc|")) || bytes.HasPrefix(line, []byte("sc|")) {
		return -1
	}
	colon := bytes.IndexByte(line, ':')
	if colon < 0 {
		return -1
	}
	bar := bytes.IndexByte(line[colon:], '|')
	if bar < 0 {
		return -1
	}
	typ := colon + bar + 1
	if end := bytes.IndexByte(line[typ:], '|'); end >= 0 {
		return typ + end
	}
	return len(line)
}

// add aggregates the lines of a decoded datagram.
func (r *reader) add(packet []byte) {
	r.parser.Reset()
	r.nowMs, r.lines, r.bareTags = 0, 0, 0
	for len(packet) > 0 {
		packet = r.known.load(packet)
		for i := range r.known.batch {
			p := &r.known.batch[i]
			if !r.addKnown(p) {
				r.addParsed(p)
			}
		}
		r.lines += uint64(len(r.known.batch))
	}
	r.c.lines.Add(r.lines)
	if r.bareTags > 0 {
		r.c.bareTags.Add(r.bareTags)
	}
	for o, n := range r.mapped {
		if n > 0 {
			r.c.mapped[o].Add(n)
			r.mapped[o] = 0
		}
	}
}

// addKnown adds a line of a known shape, parsing only its values. It
// returns false when the line must go through the full parser: its shape
// is new, or its values are invalid (the parser then says why).
func (r *reader) addKnown(p *pending) bool {
	kl := r.known.find(p)
	if kl == nil {
		return false
	}
	s := &r.sample
	if r.parser.ParseValues(kl.typ, p.values, s) != nil {
		return false
	}
	r.bareTags += uint64(kl.bareTags)
	if kl.dropped != mapKeep {
		r.mapped[kl.dropped]++
		return true
	}
	if kl.scale != 1 {
		for i := range s.Values {
			s.Values[i] *= kl.scale
		}
	}
	s.Rate, s.Timestamp = kl.rate, 0
	r.writer.AddTo(&kl.ref, s)
	return true
}

// addParsed parses line in full, counts it if it is invalid and otherwise
// adds it, remembering its shape for the next lines like it.
func (r *reader) addParsed(p *pending) {
	if r.nowMs == 0 {
		r.nowMs = r.clock()
	}
	s := &r.sample
	r.parser.Reset() // the sample is added before the next line
	err := r.parser.ParseLine(p.line, r.nowMs, s)
	r.bareTags += uint64(r.parser.BareTags)
	if err != nil {
		if reason, ok := parse.ReasonOf(err); ok {
			r.c.invalid.Inc()
			r.c.invalidBy[reason].Inc()
		} else {
			r.c.skipped.Inc()
		}
		return
	}
	st, scale, outcome := r.prep.apply(s)
	kl := r.known.remember(p, s, r.parser.BareTags)
	if outcome != mapKeep {
		r.mapped[outcome]++
		if kl != nil {
			kl.dropped = outcome
		}
		return
	}
	if kl != nil {
		kl.scale = scale
		if !r.writer.AddTyped(s, st, &kl.ref) {
			kl.shape = kl.shape[:0] // no series to remember
		}
		return
	}
	var ref aggregate.Ref
	r.writer.AddTyped(s, st, &ref)
}
