package remotewrite

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"time"

	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/io/push"
	"github.com/golang/snappy"
)

// Options configure a remote_write_client module.
type Options struct {
	push.Options
	HTTPOptions
	// MaxSamplesPerSend caps the samples of one request; a chunk whose
	// metrics hold more is sent in several requests.
	MaxSamplesPerSend int `toml:"max_samples_per_send"`
	// Layout is "bucky3" (every field <bucket>_<field>) or "typed" (a
	// metric whose only field is "value" is named after its bucket and a
	// number there is a gauge, as statsd_server's typed layout means it).
	// Typed values are cumulative series in both.
	Layout string `toml:"layout"`
}

// The layouts of remote_write_client.
const (
	LayoutBucky3 = "bucky3"
	LayoutTyped  = "typed"
)

// DefaultOptions returns the defaults of remote_write_client.
func DefaultOptions() Options {
	o := Options{
		Options:           push.DefaultOptions(0),
		HTTPOptions:       HTTPOptions{Timeout: 30},
		MaxSamplesPerSend: 2000,
		Layout:            LayoutBucky3,
	}
	o.RemoteHosts = nil // the url says where
	return o
}

// Validate checks o. Error messages start with the option's name.
func (o *Options) Validate() error {
	if err := ValidatePush(o.Options, o.URL); err != nil {
		return err
	}
	if err := o.HTTPOptions.Validate(); err != nil {
		return err
	}
	if o.MaxSamplesPerSend < 1 {
		return fmt.Errorf("max_samples_per_send: must be at least 1, got %d", o.MaxSamplesPerSend)
	}
	if o.Layout != LayoutBucky3 && o.Layout != LayoutTyped {
		return fmt.Errorf("layout: must be %q or %q, got %q", LayoutBucky3, LayoutTyped, o.Layout)
	}
	return nil
}

// ValidatePush checks the shared push options of a destination configured
// by url instead of remote_hosts.
func ValidatePush(o push.Options, url string) error {
	if len(o.RemoteHosts) > 0 {
		return fmt.Errorf("remote_hosts: not an option of this destination: set url")
	}
	_, hostPort, err := parseURL(url)
	if err != nil {
		return fmt.Errorf("url: %w", err)
	}
	o.RemoteHosts = []string{hostPort}
	if err := o.Validate(); err != nil {
		return err
	}
	for _, t := range []struct {
		name string
		v    float64
	}{{"max_flush_interval", o.MaxFlushInterval}, {"push_time_limit", o.PushTimeLimit}, {"socket_timeout", o.SocketTimeout}} {
		if err := engine.CheckSeconds(t.name, t.v, 0); err != nil {
			return err
		}
	}
	return nil
}

// Client is a remote_write_client module.
type Client struct {
	m   engine.Module
	o   Options
	ep  *Endpoint
	enc Encoder

	raw, body []byte // one request, before and after snappy; reused

	noFields, rejected, skipped *engine.Counter
	droppedMemory               *engine.Counter
	rejectLog                   LogLimiter
	typedSeries                 *engine.Gauge

	refusedAt []int // scratch: the chunk indexes of metrics the memory budget refused
}

// New returns a client for o, which must have passed Validate. It reads
// the TLS files, if any, and does no network I/O.
func New(m engine.Module, o Options) (*Client, error) {
	ep, err := NewEndpoint(&o.HTTPOptions, o.SocketTimeout, http.Header{
		"Content-Type":                      {"application/x-protobuf"},
		"Content-Encoding":                  {"snappy"},
		"X-Prometheus-Remote-Write-Version": {"0.1.0"},
	})
	if err != nil {
		return nil, err
	}
	return &Client{
		m:        m,
		o:        o,
		ep:       ep,
		noFields: m.Stats.Counter("metrics_dropped_no_fields"),
		rejected: m.Stats.Counter("metrics_dropped_rejected"),
		skipped:  m.Stats.Counter("fields_skipped"),
		// push.Run counts the queue's trims here too: both are metrics
		// dropped for the memory budget.
		droppedMemory: m.Stats.Counter("metrics_dropped_memory_limit"),
		typedSeries:   m.Stats.Gauge("typed_series"),
		rejectLog:     LogLimiter{Interval: time.Minute},
		enc:           Encoder{TypedLayout: o.Layout == LayoutTyped, Memory: m.Memory},
	}, nil
}

// Run pushes the batches read from in until in is closed (after a final
// push) or ctx is cancelled. It implements engine.Destination.
func (c *Client) Run(ctx context.Context, in <-chan *engine.Batch) error {
	defer c.ep.Close()
	return push.Run(ctx, in, c.m, c.o.Options, push.PushFunc(c.push))
}

// push sends chunk in requests of at most max_samples_per_send samples. A
// metric is done once the request holding its last series is answered:
// sent if every request holding its series was accepted, dropped as
// rejected if one was refused for its content, dropped as no_fields if it
// has no numeric field. A request to retry ends the push; what is not done
// stays queued and is sent again whole, so a metric split over two
// requests may send its first series twice, which receivers take as a
// duplicate of the same sample.
func (c *Client) push(ctx context.Context, chunk []engine.Metric) (sent, dropped int, err error) {
	now := time.Now().UnixMilli()
	c.enc.Expire(now)
	defer func() { c.typedSeries.Set(int64(c.enc.TypedSeries())) }()
	i, first := 0, 0       // the next request starts at chunk[i].Fields[first]
	carryRejected := false // a request holding earlier series of chunk[i] was rejected
	for i < len(chunk) {
		c.enc.Reset()
		c.refusedAt = c.refusedAt[:0]
		end, next := i, first
		for end < len(chunk) {
			refused := c.enc.Refused()
			n, added := c.enc.Add(&chunk[end], now, next, c.o.MaxSamplesPerSend)
			if added == 0 && c.enc.Refused() > refused && next == 0 {
				c.refusedAt = append(c.refusedAt, end)
			}
			if n < len(chunk[end].Fields) {
				next = n // the request is full inside chunk[end]
				break
			}
			end, next = end+1, 0
		}
		rejected := false
		if c.enc.Samples() > 0 {
			if rejected, err = c.send(ctx); err != nil {
				c.enc.Discard()
				return sent, dropped, err
			}
		}
		c.enc.Commit()
		for j := i; j < end; j++ {
			numeric, other := CountFields(&chunk[j])
			c.skipped.Add(uint64(other))
			switch {
			case numeric == 0:
				dropped++
				c.noFields.Inc()
			case slices.Contains(c.refusedAt, j):
				dropped++
				c.droppedMemory.Inc()
			case rejected || j == i && carryRejected:
				dropped++
				c.rejected.Inc()
			default:
				sent++
			}
		}
		if next > 0 { // chunk[end] goes on in the next request
			carryRejected = rejected || end == i && carryRejected
		} else {
			carryRejected = false
		}
		i, first = end, next
	}
	return sent, dropped, nil
}

// send compresses and posts the request built in c.enc. rejected means
// the server refused its content for good; err, that it should be retried.
func (c *Client) send(ctx context.Context) (rejected bool, err error) {
	c.raw = c.enc.AppendRequest(c.raw[:0])
	if n := snappy.MaxEncodedLen(len(c.raw)); len(c.body) < n {
		c.body = make([]byte, n)
	}
	body := snappy.Encode(c.body, c.raw)
	status, resp, err := c.ep.Post(ctx, body)
	if err != nil {
		return false, err
	}
	switch Classify(status) {
	case Accepted:
		return false, nil
	case Rejected:
		if ok, held := c.rejectLog.Allow(time.Now()); ok && c.m.Log != nil {
			c.m.Log.Warn("request rejected, its metrics dropped", "status", status, "samples", c.enc.Samples(),
				"response", NewStatusError(status, resp).Body, "rejections_not_logged", held)
		}
		return true, nil
	}
	return false, NewStatusError(status, resp)
}

// CountFields returns how many fields of m become series (finite
// numbers, and typed values with something to send) and how many do not
// (strings, booleans, null, NaN, ±Inf, negative counter increases).
func CountFields(m *engine.Metric) (numeric, other int) {
	for i := range m.Fields {
		if v := &m.Fields[i].Value; IsSample(*v) || familyOf(v, false) != 0 {
			numeric++
		} else {
			other++
		}
	}
	return numeric, other
}

// IsSample reports whether v becomes a sample: a finite number.
func IsSample(v engine.Value) bool {
	return v.Kind == engine.KindNumber && !math.IsNaN(v.Num) && !math.IsInf(v.Num, 0)
}
