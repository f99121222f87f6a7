package prometheus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/bucky3/bucky3/engine"
)

// contentType is the text exposition format 0.0.4.
const contentType = "text/plain; version=0.0.4; charset=utf-8"

// protoContentType is the delimited protobuf exposition format, which the
// typed layout serves to scrapers that ask for it (native histograms have
// no text form).
const protoContentType = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"

// The layouts of the page.
const (
	layoutBucky3 = "bucky3"
	layoutTyped  = "typed"
)

// Options configure a prometheus_exporter module.
type Options struct {
	engine.DestinationOptions
	// LocalHost is the host:port the HTTP server listens on.
	LocalHost string `toml:"local_host"`
	// HTTPPath is the path of the page, without its leading '/'; "" serves
	// the page at "/".
	HTTPPath string `toml:"http_path"`
	// Compression is "" (none) or "gzip", used when the client accepts it.
	Compression string `toml:"compression"`
	// ValuesTimeout is how long, in seconds, a series stays on the page
	// without being refreshed. Eviction runs every FlushInterval.
	ValuesTimeout float64 `toml:"values_timeout"`
	// AddTimestamps writes each metric's own timestamp (if it has one)
	// after the sample value; off, Prometheus stamps samples at scrape time.
	AddTimestamps bool `toml:"add_timestamps"`
	// MaxSeries caps the series held; new series beyond it are dropped
	// (metrics_dropped_max_series) until eviction makes room.
	MaxSeries int `toml:"max_series"`
	// MaxConnections caps the connections open at once; one beyond it is
	// closed as soon as it is accepted (connections_refused).
	MaxConnections int `toml:"max_connections"`
	// ReadTimeout bounds, in seconds, the reading of a request.
	ReadTimeout float64 `toml:"read_timeout"`
	// WriteTimeout bounds, in seconds, the writing of a response.
	WriteTimeout float64 `toml:"write_timeout"`
	// IdleTimeout is how long, in seconds, a kept-alive connection may
	// wait for its next request.
	IdleTimeout float64 `toml:"idle_timeout"`
	// DrainTimeout is how long, in seconds, scrapes in flight at shutdown
	// may take before their connections are closed. Keep it below the
	// global shutdown_timeout.
	DrainTimeout float64 `toml:"drain_timeout"`
	// SelfMetrics appends the agent's own metrics (every module's
	// counters, build info, Go runtime and process) to the page.
	SelfMetrics bool `toml:"self_metrics"`
	// WebConfigFile is the path of a Prometheus web configuration file
	// (exporter-toolkit's, as node_exporter's --web.config.file): TLS,
	// basic auth, headers. "" serves plain HTTP to anyone.
	WebConfigFile string `toml:"web_config_file"`
	// Layout is "bucky3" (one untyped family per bucket, a value label
	// per field) or "typed" (statsd_exporter's families: cumulative
	// counters, gauges, histograms, summaries).
	Layout string `toml:"layout"`
	// TTL is how long, in seconds, a series of the typed layout may go
	// without an update before it is removed, when its source does not
	// say; 0 keeps it for ever.
	TTL float64 `toml:"ttl"`
}

// maxHeaderBytes bounds a request's header: a scrape sends a few hundred
// bytes, so 64 KiB leaves room for proxies and still keeps a hostile
// client from making the server buffer a megabyte (Go's default).
const maxHeaderBytes = 64 << 10

// DefaultOptions returns the documented defaults: 0.0.0.0:9103/metrics,
// uncompressed, eviction checked every 5 s after 60 s of silence, with
// timestamps, at most a million series and 64 connections, with the
// agent's own metrics.
func DefaultOptions() Options {
	o := Options{
		DestinationOptions: engine.DefaultDestinationOptions(),
		LocalHost:          "0.0.0.0:9103",
		HTTPPath:           "metrics",
		ValuesTimeout:      60,
		AddTimestamps:      true,
		MaxSeries:          1_000_000,
		MaxConnections:     64,
		ReadTimeout:        10,
		WriteTimeout:       30,
		IdleTimeout:        60,
		DrainTimeout:       1,
		SelfMetrics:        true,
		Layout:             layoutBucky3,
	}
	o.FlushInterval = 5
	return o
}

// Validate checks the options of this module type; errors name the
// offending option. The registry checks the common ones before.
func (o *Options) Validate() error {
	if _, _, err := net.SplitHostPort(o.LocalHost); err != nil {
		return fmt.Errorf("local_host: %w", err)
	}
	switch o.Compression {
	case "", "gzip":
	default:
		return fmt.Errorf(`compression: must be "" or "gzip", got %q`, o.Compression)
	}
	if o.ValuesTimeout <= 0 {
		return fmt.Errorf("values_timeout: must be above 0, got %v", o.ValuesTimeout)
	}
	switch o.Layout {
	case layoutBucky3, layoutTyped:
	default:
		return fmt.Errorf(`layout: must be "bucky3" or "typed", got %q`, o.Layout)
	}
	if o.TTL != 0 {
		if err := engine.CheckSeconds("ttl", o.TTL, 0); err != nil {
			return fmt.Errorf("%w (or 0: never)", err)
		}
	}
	if o.MaxSeries < 1 {
		return fmt.Errorf("max_series: must be at least 1, got %d", o.MaxSeries)
	}
	if o.MaxConnections < 1 {
		return fmt.Errorf("max_connections: must be at least 1, got %d", o.MaxConnections)
	}
	for _, t := range []struct {
		name string
		v    float64
	}{{"read_timeout", o.ReadTimeout}, {"write_timeout", o.WriteTimeout}, {"idle_timeout", o.IdleTimeout}, {"drain_timeout", o.DrainTimeout}} {
		if err := engine.CheckSeconds(t.name, t.v, 0); err != nil {
			return err
		}
	}
	return validateWebConfig(o.WebConfigFile)
}

// validateWebConfig loads the web configuration file at path, its
// certificates and password hashes, so a mistake is a config error at
// startup rather than a module failing to serve.
func validateWebConfig(path string) error {
	if path == "" {
		return nil
	}
	if err := web.Validate(path); err != nil {
		return fmt.Errorf("web_config_file %q: %w", path, err)
	}
	return nil
}

// Exporter is the prometheus_exporter destination. Run may be called
// again after it returns (the supervisor's restart): the stored series
// survive, the listener does not.
type Exporter struct {
	log   *slog.Logger
	opts  Options
	path  string
	start time.Time
	// store holds the bucky3 layout, typed the typed one: exactly one is
	// set.
	store *store
	typed *typedStore

	requests   *engine.Counter
	rendered   *engine.Counter
	compressed *engine.Counter
	conns      *engine.Gauge
	refused    *engine.Counter
	beat       *engine.Beat
	// agentReady tells the agent the exporter serves; only the first call
	// counts.
	agentReady func()

	// pages are the latest rendering in each format; renderMu makes
	// concurrent scrapes of a changed store wait for one render instead
	// of each doing their own.
	pages    [2]atomic.Pointer[page]
	renderMu sync.Mutex
	// self renders the agent's own metrics after the data; nil when
	// self_metrics is off.
	self         *selfMetrics
	reservedOnce sync.Once
	// texts recycle the buffers of the own metrics, rendered per scrape.
	texts sync.Pool

	mu        sync.Mutex
	addr      net.Addr
	ready     chan struct{}
	readyOnce sync.Once
}

// New returns an exporter for options o, which the registry validated; m's
// Log and Stats must be set. It does no I/O.
func New(m engine.Module, o Options) (*Exporter, error) {
	e := &Exporter{
		log:        m.Log,
		opts:       o,
		path:       "/" + strings.TrimPrefix(o.HTTPPath, "/"),
		start:      time.Now(),
		requests:   m.Stats.Counter("http_requests"),
		rendered:   m.Stats.Counter("pages_rendered"),
		compressed: m.Stats.Counter("pages_compressed"),
		conns:      m.Stats.Gauge("connections"),
		refused:    m.Stats.Counter("connections_refused"),
		beat:       m.Beat("store"),
		agentReady: m.AwaitReady(),
		ready:      make(chan struct{}),
	}
	limits := storeLimits{maxSeries: o.MaxSeries, memory: m.Memory}
	if o.Layout == layoutTyped {
		e.typed = newTypedStore(m.Log, m.Stats, limits, engine.Seconds(o.TTL), engine.Seconds(o.ValuesTimeout))
	} else {
		e.store = newStore(m.Stats, limits)
	}
	if o.SelfMetrics {
		all := m.AllStats
		if all == nil { // outside an agent: this module's counters only
			own := []engine.ModuleStats{{Name: m.Name, Kind: engine.ModuleDestination, Stats: m.Stats}}
			all = func() []engine.ModuleStats { return own }
		}
		var extra []prometheus.Collector
		if e.typed != nil {
			extra = append(extra, &conflictCollector{module: m.Name, counts: e.typed.conflictCounts})
		}
		e.self = newSelfMetrics(m.Log, all, extra...)
	}
	return e, nil
}

// Ready is closed once Run first listens; Addr is then set.
func (e *Exporter) Ready() <-chan struct{} { return e.ready }

// Addr returns the address of the current listener, nil before Run
// listens. It resolves local_host port 0 for tests.
func (e *Exporter) Addr() net.Addr {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.addr
}

// Run listens on local_host and serves the page while ingesting batches
// from in and evicting stale series every flush_interval. When in is
// closed it shuts the server down gracefully (bounded by ctx) and returns
// nil; when ctx is cancelled it closes the server and returns ctx.Err().
// A listen or serve failure is returned for the supervisor to restart.
func (e *Exporter) Run(ctx context.Context, in <-chan *engine.Batch) error {
	if e.self != nil {
		e.reservedOnce.Do(func() {
			if e.typed != nil {
				e.typed.setReserved(e.self.reserved())
			} else {
				e.store.setReserved(e.self.reserved())
			}
		})
	}
	// Certificates may have changed since the config was validated.
	if err := validateWebConfig(e.opts.WebConfigFile); err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", e.opts.LocalHost)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	e.mu.Lock()
	e.addr = ln.Addr()
	e.mu.Unlock()
	e.readyOnce.Do(func() { close(e.ready) })
	e.agentReady()
	e.log.Info("serving", "address", ln.Addr().String(), "path", e.path)

	srv := &http.Server{
		Handler:           http.HandlerFunc(e.serveHTTP),
		ReadHeaderTimeout: engine.Seconds(e.opts.ReadTimeout),
		ReadTimeout:       engine.Seconds(e.opts.ReadTimeout),
		WriteTimeout:      engine.Seconds(e.opts.WriteTimeout),
		IdleTimeout:       engine.Seconds(e.opts.IdleTimeout),
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(e.log.Handler(), slog.LevelDebug),
	}
	ln = &limitListener{Listener: ln, max: int64(e.opts.MaxConnections), open: e.conns, refused: e.refused}
	// served is closed when Serve returns; serveErr is then its error.
	var serveErr error
	served := make(chan struct{})
	go func() {
		serveErr = e.serve(srv, ln)
		close(served)
	}()

	tick := time.NewTicker(engine.Seconds(e.opts.FlushInterval))
	defer tick.Stop()
	timeout := engine.Seconds(e.opts.ValuesTimeout)
	for {
		select {
		case b, ok := <-in:
			if !ok {
				e.drain(ctx, srv)
				<-served
				return nil
			}
			e.beat.Begin()
			if e.typed != nil {
				e.typed.ingest(b, e.now())
			} else {
				e.store.ingest(b, e.now(), e.opts.AddTimestamps)
			}
			e.beat.End()
		case <-tick.C:
			if e.typed != nil {
				e.typed.expire(e.now())
			} else {
				e.store.evict(e.now() - int64(timeout))
			}
		case <-served:
			if errors.Is(serveErr, http.ErrServerClosed) {
				return nil
			}
			return fmt.Errorf("serve: %w", serveErr)
		case <-ctx.Done():
			srv.Close()
			<-served
			return ctx.Err()
		}
	}
}

// serve serves srv on ln, through exporter-toolkit when web_config_file is
// set: it wraps the handler with basic auth and serves TLS on ln, keeping
// srv's timeouts and header limit and ln's connection cap (the TLS
// handshake is bounded by the read and write timeouts). srv.Shutdown and
// srv.Close work the same either way.
func (e *Exporter) serve(srv *http.Server, ln net.Listener) error {
	if e.opts.WebConfigFile == "" {
		return srv.Serve(ln)
	}
	// web.Serve leaves ln open when it fails before serving.
	defer ln.Close()
	return web.Serve(ln, srv, &web.FlagConfig{WebConfigFile: &e.opts.WebConfigFile}, e.log)
}

// drain shuts srv down, letting scrapes in flight finish for up to
// drain_timeout, then closes the connections still open: a client that
// stops reading a large page cannot hold the agent's shutdown.
func (e *Exporter) drain(ctx context.Context, srv *http.Server) {
	ctx, cancel := context.WithTimeout(ctx, engine.Seconds(e.opts.DrainTimeout))
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		e.log.Debug("closing connections still busy at shutdown", "err", err)
		_ = srv.Close() // its error is the listener's, already closed
	}
}

// now is the monotonic time since New, so a wall clock step neither
// evicts everything nor keeps stale series.
func (e *Exporter) now() int64 { return int64(time.Since(e.start)) }

func (e *Exporter) serveHTTP(w http.ResponseWriter, r *http.Request) {
	e.requests.Inc()
	if r.URL.Path != e.path {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	format := formatText
	if e.typed != nil && expfmt.NegotiateAccept(r.Header, expfmt.FmtProtoDelim, expfmt.FmtText).FormatType() == expfmt.TypeProtoDelim {
		format = formatProto
	}
	h := w.Header()
	h.Set("Content-Type", contentTypes[format])
	if e.opts.Compression == "gzip" {
		h.Add("Vary", "Accept-Encoding")
	}
	if e.typed != nil {
		h.Add("Vary", "Accept")
	}
	p := e.currentPage(format)
	// The own metrics change on every scrape: they follow the shared page.
	bp, _ := e.texts.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	defer e.texts.Put(bp)
	own := (*bp)[:0]
	if e.self != nil {
		if format == formatProto {
			own = e.self.appendProto(own)
		} else {
			own = e.self.appendText(own)
		}
	}
	// Write errors mean the client went away; there is nobody to tell.
	if e.opts.Compression == "gzip" && acceptsGzip(r.Header.Values("Accept-Encoding")) {
		p.gzOnce.Do(func() {
			p.gz = compress(p.text)
			e.compressed.Inc()
		})
		tail := p.gz.appendFinish(nil, own)
		h.Set("Content-Encoding", "gzip")
		h.Set("Content-Length", strconv.Itoa(len(p.gz.bytes)+len(tail)))
		_, _ = w.Write(p.gz.bytes)
		_, _ = w.Write(tail)
		*bp = own[:0]
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(p.text)+len(own)))
	_, _ = w.Write(p.text)
	_, _ = w.Write(own)
	*bp = own[:0]
}

// The formats of a page: the text format, and the delimited protobuf
// format the typed layout also serves.
const (
	formatText = iota
	formatProto
)

var contentTypes = [...]string{formatText: contentType, formatProto: protoContentType}

// version returns the version of the store as it is now.
func (e *Exporter) version() uint64 {
	if e.typed != nil {
		return e.typed.version.Load()
	}
	return e.store.version.Load()
}

// render appends the store in format to dst, and returns the version it
// shows.
func (e *Exporter) render(dst []byte, format int) ([]byte, uint64) {
	switch {
	case e.typed == nil:
		return e.store.appendPage(dst)
	case format == formatProto:
		return e.typed.appendProto(dst)
	}
	return e.typed.appendText(dst)
}

// currentPage returns the rendering of the store in format as it is now,
// rendering it only when the store changed since the last one. Scrapes
// that find it stale together wait for one render.
func (e *Exporter) currentPage(format int) *page {
	if p := e.pages[format].Load(); p != nil && p.version == e.version() {
		return p
	}
	e.renderMu.Lock()
	defer e.renderMu.Unlock()
	old := e.pages[format].Load()
	if old != nil && old.version == e.version() {
		return old
	}
	// Scrapes may still be writing the old page: render into new memory,
	// sized like the old page to skip the regrowth.
	var size int
	if old != nil {
		size = len(old.text)
	}
	text, version := e.render(make([]byte, 0, size), format)
	p := &page{version: version, text: text}
	e.pages[format].Store(p)
	e.rendered.Inc()
	return p
}

// acceptsGzip reports whether Accept-Encoding values list gzip (or *)
// with a non-zero quality.
func acceptsGzip(values []string) bool {
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(part, ";")
			coding = strings.TrimSpace(coding)
			if !strings.EqualFold(coding, "gzip") && coding != "*" {
				continue
			}
			q, ok := strings.CutPrefix(strings.TrimSpace(params), "q=")
			if !ok {
				return true
			}
			if f, err := strconv.ParseFloat(q, 64); err == nil && f > 0 {
				return true
			}
		}
	}
	return false
}
