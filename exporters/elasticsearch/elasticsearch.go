package elasticsearch

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/io/push"
	"github.com/valyala/fastjson"
)

// DefaultPort is used for remote_hosts entries without a port.
const DefaultPort = 9200

// maxResponse bounds how much of a _bulk response is read: a few hundred
// bytes per document, far above what chunk_size documents produce.
const maxResponse = 64 << 20

// Options configure an elasticsearch_client module.
type Options struct {
	push.Options
	// IndexName is a static index name or a strftime pattern applied to the
	// metric time in UTC, e.g. "metrics-%Y.%m.%d"; empty means the bucket.
	IndexName string `toml:"index_name"`
	// TimestampFieldName names the epoch-millisecond timestamp member of
	// each document; empty leaves it out.
	TimestampFieldName string `toml:"timestamp_field_name"`
	// BucketFieldName names the bucket member; empty leaves it out.
	BucketFieldName string `toml:"bucket_field_name"`
	// Compression is "", "gzip" or "deflate" (zlib-wrapped).
	Compression string `toml:"compression"`
	// MaxRequestBytes bounds a _bulk body before compression; a metric
	// whose action alone is larger is dropped (metrics_dropped_too_large).
	MaxRequestBytes int `toml:"max_request_bytes"`
	// MaxIndices bounds the distinct index names of one request; the
	// metrics of further names go to FallbackIndex, so that senders who
	// choose buckets cannot create indices without end.
	MaxIndices int `toml:"max_indices"`
	// FallbackIndex receives the metrics past MaxIndices.
	FallbackIndex string `toml:"fallback_index"`
}

// DefaultOptions returns the defaults of elasticsearch_client.
func DefaultOptions() Options {
	return Options{
		Options:            push.DefaultOptions(DefaultPort),
		TimestampFieldName: "timestamp",
		BucketFieldName:    "bucket",
		MaxRequestBytes:    5 << 20,
		MaxIndices:         100,
		FallbackIndex:      "bucky3-overflow",
	}
}

// minRequestBytes is the smallest max_request_bytes: room for an action
// line and a small document.
const minRequestBytes = 1024

// Validate checks o.
func (o *Options) Validate() error {
	targets, err := parseTargets(o.RemoteHosts)
	if err != nil {
		return fmt.Errorf("remote_hosts: %w", err)
	}
	// The shared checks see the host:port of each entry.
	po := o.Options
	po.RemoteHosts = nil
	for _, t := range targets {
		po.RemoteHosts = append(po.RemoteHosts, t.hostPort)
	}
	if err := po.Validate(); err != nil {
		return err
	}
	switch o.Compression {
	case "", "gzip", "deflate":
	default:
		return fmt.Errorf(`compression: must be "", "gzip" or "deflate", got %q`, o.Compression)
	}
	if o.TimestampFieldName != "" && o.TimestampFieldName == o.BucketFieldName {
		return fmt.Errorf("bucket_field_name: must differ from timestamp_field_name %q", o.TimestampFieldName)
	}
	switch {
	case o.MaxRequestBytes < minRequestBytes:
		return fmt.Errorf("max_request_bytes: must be at least %d, got %d", minRequestBytes, o.MaxRequestBytes)
	case o.MaxIndices < 1:
		return fmt.Errorf("max_indices: must be at least 1, got %d", o.MaxIndices)
	case !validIndexName(o.FallbackIndex):
		return fmt.Errorf(`fallback_index: want a lowercase index name without \ / * ? " < > | , # or spaces, not starting with - _ +, got %q`, o.FallbackIndex)
	}
	return nil
}

// validIndexName reports whether Elasticsearch accepts name as an index.
func validIndexName(name string) bool {
	if name == "" || name == "." || name == ".." || len(name) > 255 || strings.ContainsAny(name[:1], "-_+") {
		return false
	}
	return !strings.ContainsAny(name, "\\/*?\"<>|,# ABCDEFGHIJKLMNOPQRSTUVWXYZ")
}

// target is one remote_hosts entry: where to POST, and what to resolve.
type target struct {
	bulk     string // <base>/_bulk with the base URL's query
	hostPort string
	resolver *push.Resolver
}

// parseTargets reads remote_hosts entries: host[:port] (plain HTTP, default
// port 9200) or base URLs with scheme http or https and an optional path
// prefix and query.
func parseTargets(entries []string) ([]target, error) {
	if len(entries) == 0 {
		return nil, fmt.Errorf("at least one host is required")
	}
	var targets []target
	for _, e := range entries {
		var u *url.URL
		var hostPort string
		if strings.Contains(e, "://") {
			var err error
			if u, err = url.Parse(e); err != nil {
				return nil, fmt.Errorf("%q: %w", e, err)
			}
			if u.Scheme != "http" && u.Scheme != "https" || u.Hostname() == "" || u.User != nil || u.Fragment != "" {
				return nil, fmt.Errorf("%q: want http(s)://host[:port][/path]", e)
			}
			port := u.Port()
			if port == "" {
				port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
			}
			hostPort = net.JoinHostPort(u.Hostname(), port)
		} else {
			host, port, err := push.SplitHostPort(e, DefaultPort)
			if err != nil {
				return nil, err
			}
			hostPort = net.JoinHostPort(host, strconv.Itoa(port))
			u = &url.URL{Scheme: "http", Host: hostPort}
		}
		bulk := *u
		bulk.Path = strings.TrimSuffix(u.Path, "/") + "/_bulk"
		bulk.RawPath = ""
		targets = append(targets, target{bulk: bulk.String(), hostPort: hostPort})
	}
	return targets, nil
}

// Client is an elasticsearch_client module.
type Client struct {
	m       engine.Module
	o       Options
	targets []target
	enc     *Encoder
	http    *http.Client
	tr      *http.Transport

	mu   sync.Mutex // guards addr, read by the transport's dialer
	addr string

	cur      *target // target of the current connection; nil: pick one
	pickedAt time.Time

	body     []byte // the NDJSON of one request, reused
	zbuf     bytes.Buffer
	gz       *gzip.Writer
	zl       *zlib.Writer
	parser   fastjson.Parser
	rejected *engine.Counter
	docsRej  *engine.Counter
	tooLarge *engine.Counter
	rerouted *engine.Counter

	// Index names of the current request, when they vary per metric.
	dynamicIndex bool
	indices      map[string]struct{}
	index        []byte // scratch: one metric's index name
	fallback     []byte // fallback_index, JSON-escaped

	done    []bool          // per document of a request: accepted or rejected for good
	scratch []engine.Metric // for push.Partition
}

// New returns a client for o, which must have passed Validate. It does no
// I/O: names are resolved and connections made by Run.
func New(m engine.Module, o Options) (*Client, error) {
	targets, err := parseTargets(o.RemoteHosts)
	if err != nil {
		return nil, err
	}
	for i := range targets {
		if targets[i].resolver, err = push.NewResolver([]string{targets[i].hostPort}, DefaultPort); err != nil {
			return nil, err
		}
	}
	c := &Client{
		m:        m,
		o:        o,
		targets:  targets,
		enc:      NewEncoder(o.IndexName, o.TimestampFieldName, o.BucketFieldName),
		rejected: m.Stats.Counter("metrics_dropped_rejected"),
		docsRej:  m.Stats.Counter("docs_rejected"),
		tooLarge: m.Stats.Counter("metrics_dropped_too_large"),
		rerouted: m.Stats.Counter("metrics_rerouted_fallback_index"),
		// A static name is one index whatever the metrics.
		dynamicIndex: o.IndexName == "" || strings.Contains(o.IndexName, "%"),
		indices:      map[string]struct{}{},
		fallback:     appendJSONChars(nil, o.FallbackIndex),
	}
	timeout := engine.Seconds(o.SocketTimeout)
	dialer := &net.Dialer{Timeout: timeout}
	// The transport dials the address chosen by the client's resolver, not
	// the URL's host: that is how a random resolved address is used while
	// TLS and the Host header still see the configured name.
	c.tr = &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			c.mu.Lock()
			addr := c.addr
			c.mu.Unlock()
			return dialer.DialContext(ctx, network, addr)
		},
		TLSHandshakeTimeout: timeout,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     push.ReresolveInterval,
	}
	c.http = &http.Client{Transport: c.tr, Timeout: timeout}
	return c, nil
}

// Run pushes the batches read from in until in is closed (after a final
// push) or ctx is cancelled. It implements engine.Destination.
func (c *Client) Run(ctx context.Context, in <-chan *engine.Batch) error {
	defer c.tr.CloseIdleConnections()
	return push.Run(ctx, in, c.m, c.o.Options, push.PushFunc(c.push))
}

// pick chooses the target and address for the next request: a new one
// every ReresolveInterval, and after a failure so that a dead node of a
// cluster is not retried forever.
func (c *Client) pick(ctx context.Context) (*target, error) {
	if c.cur != nil && time.Since(c.pickedAt) < push.ReresolveInterval {
		return c.cur, nil
	}
	t := &c.targets[rand.IntN(len(c.targets))]
	addr, err := t.resolver.Pick(ctx)
	if err != nil {
		return nil, err
	}
	c.tr.CloseIdleConnections()
	c.mu.Lock()
	c.addr = addr.String()
	c.mu.Unlock()
	c.cur, c.pickedAt = t, time.Now()
	return t, nil
}

// push sends one _bulk request: the actions of chunk that fit in
// max_request_bytes; the rest stays queued for the next request of the
// flush. An action larger than max_request_bytes alone is dropped. A 400 or
// 413 for the request is a permanent failure (push.Run bisects the chunk);
// other non-2xx statuses and transport errors are transient. Of a 2xx
// response, items with status 429 or 5xx are retried, alone; other failed
// items are dropped as rejected.
func (c *Client) push(ctx context.Context, chunk []engine.Metric) (sent, dropped int, err error) {
	t, err := c.pick(ctx)
	if err != nil {
		return 0, 0, err
	}
	now := time.Now()
	c.body = c.body[:0]
	clear(c.indices)
	// The request carries chunk[first:end]; chunk[:first] are too large.
	first, end, rerouted := 0, len(chunk), 0
	for i := range chunk {
		start := len(c.body)
		var r bool
		c.body, r = c.appendAction(c.body, &chunk[i], now)
		if len(c.body) <= c.o.MaxRequestBytes {
			if r {
				rerouted++
			}
			continue
		}
		c.body = c.body[:start]
		if start == 0 { // too large alone: it would never fit
			first++
			continue
		}
		end = i
		break
	}
	c.tooLarge.Add(uint64(first))
	if first == end {
		return 0, first, nil
	}
	docs := chunk[first:end]
	status, respBody, err := c.post(ctx, t.bulk)
	switch {
	case err != nil:
		c.cur = nil
		return 0, first, err
	case status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge:
		// The content, not the cluster: a retry would fail the same way.
		return 0, first, push.Permanent(fmt.Errorf("_bulk: %d %s: %.200s", status, http.StatusText(status), respBody))
	case status < 200 || status > 299:
		c.cur = nil
		return 0, first, fmt.Errorf("_bulk: %d %s: %.200s", status, http.StatusText(status), respBody)
	}
	c.rerouted.Add(uint64(rerouted))
	rejected, retry, retryStatus := c.results(respBody, len(docs))
	c.rejected.Add(uint64(rejected))
	c.docsRej.Add(uint64(rejected))
	if retry == 0 {
		return len(docs) - rejected, first + rejected, nil
	}
	// Only the items that failed for now go back to the queue.
	n, scratch := push.Partition(docs, c.done, c.scratch)
	c.scratch = scratch
	return n - rejected, first + rejected, fmt.Errorf("_bulk: %d of %d items failed with status %d, retrying them", retry, len(docs), retryStatus)
}

// appendAction appends m's action. While the request has fewer than
// max_indices index names, m keeps its own; past that, a metric with a new
// name goes to fallback_index, and appendAction reports it rerouted.
func (c *Client) appendAction(dst []byte, m *engine.Metric, now time.Time) (_ []byte, rerouted bool) {
	if !c.dynamicIndex {
		return c.enc.AppendAction(dst, m, now), false
	}
	c.index = c.enc.AppendIndex(c.index[:0], m, now)
	if _, ok := c.indices[string(c.index)]; !ok {
		if len(c.indices) >= c.o.MaxIndices {
			return c.enc.AppendActionIndex(dst, m, now, c.fallback), true
		}
		c.indices[string(c.index)] = struct{}{}
	}
	return c.enc.AppendActionIndex(dst, m, now, c.index), false
}

// post sends c.body and returns the response status and body.
func (c *Client) post(ctx context.Context, url string) (status int, respBody []byte, err error) {
	body, encoding, err := c.compress()
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	respBody, err = io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return 0, nil, fmt.Errorf("reading _bulk response: %w", err)
	}
	return resp.StatusCode, respBody, nil
}

// results reads the per-item results of a 2xx _bulk response for n
// documents into c.done: an item with status 429 or 5xx is to be retried,
// another failed one is rejected for good. A body that is not the
// documented JSON (a proxy, a stand-in server) is taken as everything
// accepted: the status said so.
func (c *Client) results(body []byte, n int) (rejected, retry, retryStatus int) {
	c.done = c.done[:0]
	for range n {
		c.done = append(c.done, true)
	}
	if len(body) == 0 {
		return 0, 0, 0
	}
	v, err := c.parser.ParseBytes(body)
	if err != nil || !v.GetBool("errors") {
		return 0, 0, 0
	}
	var reason string
	for i, item := range v.GetArray("items") {
		if i == n {
			break
		}
		s := item.GetInt("index", "status")
		switch {
		case s < 300:
		case s == http.StatusTooManyRequests || s >= 500:
			c.done[i] = false
			retry++
			retryStatus = s
		default:
			rejected++
			if reason == "" {
				reason = string(item.GetStringBytes("index", "error", "reason"))
			}
		}
	}
	if rejected > 0 && c.m.Log != nil {
		c.m.Log.Warn("documents rejected", "count", rejected, "first_reason", reason)
	}
	return rejected, retry, retryStatus
}

// compress returns the request body, compressed as configured.
func (c *Client) compress() ([]byte, string, error) {
	var w io.WriteCloser
	switch c.o.Compression {
	case "gzip":
		if c.gz == nil {
			c.gz = gzip.NewWriter(&c.zbuf)
		}
		w = c.gz
	case "deflate":
		if c.zl == nil {
			c.zl = zlib.NewWriter(&c.zbuf)
		}
		w = c.zl
	default:
		return c.body, "", nil
	}
	c.zbuf.Reset()
	switch z := w.(type) {
	case *gzip.Writer:
		z.Reset(&c.zbuf)
	case *zlib.Writer:
		z.Reset(&c.zbuf)
	}
	if _, err := w.Write(c.body); err != nil {
		return nil, "", err
	}
	if err := w.Close(); err != nil {
		return nil, "", err
	}
	return c.zbuf.Bytes(), c.o.Compression, nil
}
