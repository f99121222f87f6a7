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
}

// DefaultOptions returns the defaults of elasticsearch_client.
func DefaultOptions() Options {
	return Options{Options: push.DefaultOptions(DefaultPort), TimestampFieldName: "timestamp", BucketFieldName: "bucket"}
}

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
	return nil
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

	body     []byte // the NDJSON of one chunk, reused
	zbuf     bytes.Buffer
	gz       *gzip.Writer
	zl       *zlib.Writer
	parser   fastjson.Parser
	rejected *engine.Counter
	docsRej  *engine.Counter
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

func (c *Client) push(ctx context.Context, chunk []engine.Metric) (sent, dropped int, err error) {
	t, err := c.pick(ctx)
	if err != nil {
		return 0, 0, err
	}
	now := time.Now()
	c.body = c.body[:0]
	for i := range chunk {
		c.body = c.enc.AppendAction(c.body, &chunk[i], now)
	}
	rejected, err := c.post(ctx, t.bulk, len(chunk))
	if err != nil {
		c.cur = nil
		return 0, 0, err
	}
	c.rejected.Add(uint64(rejected))
	c.docsRej.Add(uint64(rejected))
	return len(chunk) - rejected, rejected, nil
}

// post sends c.body and returns how many of its n documents were rejected
// one by one.
func (c *Client) post(ctx context.Context, url string, n int) (rejected int, err error) {
	body, encoding, err := c.compress()
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return 0, fmt.Errorf("reading _bulk response: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return 0, fmt.Errorf("_bulk: %s: %.200s", resp.Status, respBody)
	}
	return c.countRejected(respBody, n), nil
}

// countRejected reads the per-item results of a 2xx _bulk response. A body
// that is not the documented JSON (a proxy, a stand-in server) is taken as
// everything accepted: the status said so.
func (c *Client) countRejected(body []byte, n int) int {
	if len(body) == 0 {
		return 0
	}
	v, err := c.parser.ParseBytes(body)
	if err != nil || !v.GetBool("errors") {
		return 0
	}
	rejected := 0
	var reason string
	for i, item := range v.GetArray("items") {
		if i == n {
			break
		}
		if s := item.GetInt("index", "status"); s >= 300 {
			rejected++
			if reason == "" {
				reason = string(item.GetStringBytes("index", "error", "reason"))
			}
		}
	}
	if rejected > 0 && c.m.Log != nil {
		c.m.Log.Warn("documents rejected", "count", rejected, "first_reason", reason)
	}
	return rejected
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
