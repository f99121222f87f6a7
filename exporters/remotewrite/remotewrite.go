package remotewrite

import (
	"context"
	"fmt"
	"math"
	"net/http"
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
}

// DefaultOptions returns the defaults of remote_write_client.
func DefaultOptions() Options {
	o := Options{
		Options:           push.DefaultOptions(0),
		HTTPOptions:       HTTPOptions{Timeout: 30},
		MaxSamplesPerSend: 2000,
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
	rejectLog                   LogLimiter
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
		m:         m,
		o:         o,
		ep:        ep,
		noFields:  m.Stats.Counter("metrics_dropped_no_fields"),
		rejected:  m.Stats.Counter("metrics_dropped_rejected"),
		skipped:   m.Stats.Counter("fields_skipped"),
		rejectLog: LogLimiter{Interval: time.Minute},
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
	i, first := 0, 0       // the next request starts at chunk[i].Fields[first]
	carryRejected := false // a request holding earlier series of chunk[i] was rejected
	for i < len(chunk) {
		c.enc.Reset()
		end, next := i, first
		for end < len(chunk) {
			n, _ := c.enc.Add(&chunk[end], now, next, c.o.MaxSamplesPerSend)
			if n < len(chunk[end].Fields) {
				next = n // the request is full inside chunk[end]
				break
			}
			end, next = end+1, 0
		}
		rejected := false
		if c.enc.Samples() > 0 {
			if rejected, err = c.send(ctx); err != nil {
				return sent, dropped, err
			}
		}
		for j := i; j < end; j++ {
			numeric, other := CountFields(&chunk[j])
			c.skipped.Add(uint64(other))
			switch {
			case numeric == 0:
				dropped++
				c.noFields.Inc()
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

// CountFields returns how many fields of m are finite numbers, which
// become samples, and how many are not (strings, booleans, null, NaN, ±Inf).
func CountFields(m *engine.Metric) (numeric, other int) {
	for i := range m.Fields {
		if IsSample(m.Fields[i].Value) {
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
