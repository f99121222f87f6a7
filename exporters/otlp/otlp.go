package otlp

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/exporters/remotewrite"
	"github.com/bucky3/bucky3/io/push"
)

// Options configure an otlp_client module.
type Options struct {
	push.Options
	remotewrite.HTTPOptions
	// Compression is "gzip" or "" (none).
	Compression string `toml:"compression"`
	// ResourceAttributes are the tag keys lifted into the OTLP resource
	// (typically those the sources' metadata sets, such as host or env);
	// the other tags become data point attributes.
	ResourceAttributes []string `toml:"resource_attributes"`
	// CounterBuckets are the buckets whose count field is sent as a delta
	// sum: statsd counters.
	CounterBuckets []string `toml:"counter_buckets"`
	// Layout is "bucky3" (every field <bucket>_<field>) or "typed" (a
	// metric whose only field is "value" is named after its bucket, as
	// statsd_server's typed layout means it). Typed values keep their
	// types in both.
	Layout string `toml:"layout"`
}

// DefaultOptions returns the defaults of otlp_client.
func DefaultOptions() Options {
	o := Options{
		Options:        push.DefaultOptions(0),
		HTTPOptions:    remotewrite.HTTPOptions{Timeout: 10},
		Compression:    "gzip",
		CounterBuckets: []string{"stats_counters"},
		Layout:         remotewrite.LayoutBucky3,
	}
	o.RemoteHosts = nil // the url says where
	return o
}

// Validate checks o. Error messages start with the option's name.
func (o *Options) Validate() error {
	if err := remotewrite.ValidatePush(o.Options, o.URL); err != nil {
		return err
	}
	if err := o.HTTPOptions.Validate(); err != nil {
		return err
	}
	switch o.Compression {
	case "", "gzip":
	default:
		return fmt.Errorf(`compression: must be "gzip" or "", got %q`, o.Compression)
	}
	for _, k := range o.ResourceAttributes {
		if k == "" {
			return fmt.Errorf("resource_attributes: empty tag key")
		}
	}
	if o.Layout != remotewrite.LayoutBucky3 && o.Layout != remotewrite.LayoutTyped {
		return fmt.Errorf("layout: must be %q or %q, got %q", remotewrite.LayoutBucky3, remotewrite.LayoutTyped, o.Layout)
	}
	return nil
}

// Client is an otlp_client module.
type Client struct {
	m   engine.Module
	o   Options
	ep  *remotewrite.Endpoint
	enc *Encoder

	raw  []byte // one request before compression, reused
	zbuf bytes.Buffer
	gz   *gzip.Writer

	noFields, rejected, skipped, pointsRejected *engine.Counter
	rejectLog, partialLog                       remotewrite.LogLimiter
}

// New returns a client for o, which must have passed Validate. It reads
// the TLS files, if any, and does no network I/O.
func New(m engine.Module, o Options) (*Client, error) {
	header := http.Header{"Content-Type": {"application/x-protobuf"}}
	if o.Compression != "" {
		header.Set("Content-Encoding", o.Compression)
	}
	ep, err := remotewrite.NewEndpoint(&o.HTTPOptions, o.SocketTimeout, header)
	if err != nil {
		return nil, err
	}
	return &Client{
		m:              m,
		o:              o,
		ep:             ep,
		enc:            newClientEncoder(o),
		noFields:       m.Stats.Counter("metrics_dropped_no_fields"),
		rejected:       m.Stats.Counter("metrics_dropped_rejected"),
		skipped:        m.Stats.Counter("fields_skipped"),
		pointsRejected: m.Stats.Counter("data_points_rejected"),
		rejectLog:      remotewrite.LogLimiter{Interval: time.Minute},
		partialLog:     remotewrite.LogLimiter{Interval: time.Minute},
	}, nil
}

// Run pushes the batches read from in until in is closed (after a final
// push) or ctx is cancelled. It implements engine.Destination.
func (c *Client) Run(ctx context.Context, in <-chan *engine.Batch) error {
	defer c.ep.Close()
	return push.Run(ctx, in, c.m, c.o.Options, push.PushFunc(c.push))
}

// push sends chunk in one request. Metrics without a numeric field are
// dropped (no_fields); the others are sent, or dropped (rejected) when the
// receiver refuses the request's content (400, 413, 422). Any other answer
// is retried. Data points a partial success refused are counted in
// data_points_rejected; their metrics count as sent, since the response
// does not say which they were.
func (c *Client) push(ctx context.Context, chunk []engine.Metric) (sent, dropped int, err error) {
	now := uint64(time.Now().UnixNano())
	c.enc.Reset()
	withPoints, skipped := 0, 0
	for i := range chunk {
		numeric, other := countFields(&chunk[i])
		skipped += other
		if numeric > 0 {
			c.enc.Add(&chunk[i], now)
			withPoints++
		}
	}
	if withPoints > 0 {
		rejected, err := c.send(ctx)
		if err != nil {
			return 0, 0, err
		}
		if rejected {
			dropped += withPoints
			c.rejected.Add(uint64(withPoints))
		} else {
			sent = withPoints
		}
	}
	c.skipped.Add(uint64(skipped))
	c.noFields.Add(uint64(len(chunk) - withPoints))
	return sent, dropped + len(chunk) - withPoints, nil
}

func newClientEncoder(o Options) *Encoder {
	e := NewEncoder(o.ResourceAttributes, o.CounterBuckets)
	e.TypedLayout = o.Layout == remotewrite.LayoutTyped
	return e
}

// countFields returns how many fields of m become data points and how
// many do not (strings, booleans, null, NaN, ±Inf).
func countFields(m *engine.Metric) (points, other int) {
	for i := range m.Fields {
		if IsPoint(m.Fields[i].Value) {
			points++
		} else {
			other++
		}
	}
	return points, other
}

// send compresses and posts the request built in c.enc. rejected means
// the receiver refused its content for good; err, that it should be
// retried.
func (c *Client) send(ctx context.Context) (rejected bool, err error) {
	c.raw = c.enc.AppendRequest(c.raw[:0])
	body := c.raw
	if c.o.Compression == "gzip" {
		c.zbuf.Reset()
		if c.gz == nil {
			c.gz = gzip.NewWriter(&c.zbuf)
		} else {
			c.gz.Reset(&c.zbuf)
		}
		if _, err := c.gz.Write(c.raw); err != nil {
			return false, err
		}
		if err := c.gz.Close(); err != nil {
			return false, err
		}
		body = c.zbuf.Bytes()
	}
	status, resp, err := c.ep.Post(ctx, body)
	if err != nil {
		return false, err
	}
	switch remotewrite.Classify(status) {
	case remotewrite.Accepted:
		if n, msg := parseResponse(resp); n > 0 {
			c.pointsRejected.Add(uint64(n))
			if ok, held := c.partialLog.Allow(time.Now()); ok && c.m.Log != nil {
				c.m.Log.Warn("data points rejected", "count", n, "message", msg, "partial_successes_not_logged", held)
			}
		}
		return false, nil
	case remotewrite.Rejected:
		if ok, held := c.rejectLog.Allow(time.Now()); ok && c.m.Log != nil {
			c.m.Log.Warn("request rejected, its metrics dropped", "status", status, "data_points", c.enc.Points(),
				"response", remotewrite.NewStatusError(status, resp).Body, "rejections_not_logged", held)
		}
		return true, nil
	}
	return false, remotewrite.NewStatusError(status, resp)
}
