package prometheus

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bucky3/bucky3/engine"
)

// contentType is the text exposition format 0.0.4.
const contentType = "text/plain; version=0.0.4; charset=utf-8"

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
}

// DefaultOptions returns the documented defaults: 0.0.0.0:9103/metrics,
// uncompressed, eviction checked every 5 s after 60 s of silence, with
// timestamps.
func DefaultOptions() Options {
	o := Options{
		DestinationOptions: engine.DefaultDestinationOptions(),
		LocalHost:          "0.0.0.0:9103",
		HTTPPath:           "metrics",
		ValuesTimeout:      60,
		AddTimestamps:      true,
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
	store *store

	requests *engine.Counter
	// pages and gzips recycle the scrape buffers: a page of a million
	// samples is tens of megabytes, not worth reallocating per scrape.
	pages sync.Pool
	gzips sync.Pool

	mu        sync.Mutex
	addr      net.Addr
	ready     chan struct{}
	readyOnce sync.Once
}

// New returns an exporter for options o, which the registry validated; m's
// Log and Stats must be set. It does no I/O.
func New(m engine.Module, o Options) (*Exporter, error) {
	return &Exporter{
		log:      m.Log,
		opts:     o,
		path:     "/" + strings.TrimPrefix(o.HTTPPath, "/"),
		start:    time.Now(),
		store:    newStore(m.Stats),
		requests: m.Stats.Counter("http_requests"),
		ready:    make(chan struct{}),
	}, nil
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
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", e.opts.LocalHost)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	e.mu.Lock()
	e.addr = ln.Addr()
	e.mu.Unlock()
	e.readyOnce.Do(func() { close(e.ready) })
	e.log.Info("serving", "address", ln.Addr().String(), "path", e.path)

	srv := &http.Server{
		Handler:           http.HandlerFunc(e.serveHTTP),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(e.log.Handler(), slog.LevelDebug),
	}
	// served is closed when Serve returns; serveErr is then its error.
	var serveErr error
	served := make(chan struct{})
	go func() {
		serveErr = srv.Serve(ln)
		close(served)
	}()

	tick := time.NewTicker(engine.Seconds(e.opts.FlushInterval))
	defer tick.Stop()
	timeout := engine.Seconds(e.opts.ValuesTimeout)
	for {
		select {
		case b, ok := <-in:
			if !ok {
				if err := srv.Shutdown(ctx); err != nil {
					srv.Close()
				}
				<-served
				return nil
			}
			e.store.ingest(b, e.now(), e.opts.AddTimestamps)
		case <-tick.C:
			e.store.evict(e.now() - int64(timeout))
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
	h := w.Header()
	h.Set("Content-Type", contentType)

	bp, _ := e.pages.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	page := e.store.appendPage((*bp)[:0])
	// Write errors mean the client went away; there is nobody to tell.
	if e.opts.Compression == "gzip" {
		h.Add("Vary", "Accept-Encoding")
	}
	if e.opts.Compression == "gzip" && acceptsGzip(r.Header.Values("Accept-Encoding")) {
		h.Set("Content-Encoding", "gzip")
		zw, _ := e.gzips.Get().(*gzip.Writer)
		if zw == nil {
			zw, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
		} else {
			zw.Reset(w)
		}
		_, _ = zw.Write(page)
		zw.Close()
		e.gzips.Put(zw)
	} else {
		h.Set("Content-Length", strconv.Itoa(len(page)))
		_, _ = w.Write(page)
	}
	*bp = page
	e.pages.Put(bp)
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
