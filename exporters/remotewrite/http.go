package remotewrite

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/io/push"
)

// HTTPOptions are the options of an HTTP push destination: where to POST,
// how to authenticate, how long a request may take. remote_write_client
// and otlp_client embed them.
type HTTPOptions struct {
	// URL is the endpoint, http or https, with path and query.
	URL string `toml:"url"`
	// Headers are added to every request. They cannot replace the
	// protocol's own headers (Content-Type, Content-Encoding, …).
	Headers map[string]string `toml:"headers"`
	// BasicAuthUsername and BasicAuthPassword send HTTP basic auth.
	BasicAuthUsername string `toml:"basic_auth_username"`
	BasicAuthPassword string `toml:"basic_auth_password"`
	// BearerToken sends "Authorization: Bearer <token>".
	BearerToken string `toml:"bearer_token"`
	// TLSCAFile is a PEM bundle of the CAs that may sign the server's
	// certificate; empty means the system's roots.
	TLSCAFile string `toml:"tls_ca_file"`
	// TLSCertFile and TLSKeyFile are a PEM client certificate and key.
	TLSCertFile string `toml:"tls_cert_file"`
	TLSKeyFile  string `toml:"tls_key_file"`
	// TLSInsecureSkipVerify accepts any server certificate.
	TLSInsecureSkipVerify bool `toml:"tls_insecure_skip_verify"`
	// Timeout (seconds) bounds a whole request: connect, TLS, upload and
	// response. socket_timeout bounds the connect and TLS handshake alone.
	Timeout float64 `toml:"timeout"`
}

// protocolHeaders are set by the destinations themselves.
var protocolHeaders = []string{"Content-Type", "Content-Encoding", "Content-Length", "Host", "Transfer-Encoding", "X-Prometheus-Remote-Write-Version"}

// Validate checks o without I/O; NewEndpoint reads the TLS files. Errors
// start with the option's name.
func (o *HTTPOptions) Validate() error {
	if _, _, err := parseURL(o.URL); err != nil {
		return fmt.Errorf("url: %w", err)
	}
	for k, v := range o.Headers {
		if !validHeaderName(k) {
			return fmt.Errorf("headers: %q is not a header name", k)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return fmt.Errorf("headers: value of %q contains a line break or NUL", k)
		}
		for _, p := range protocolHeaders {
			if strings.EqualFold(k, p) {
				return fmt.Errorf("headers: %q is set by the destination itself", k)
			}
		}
		if strings.EqualFold(k, "Authorization") && (o.BearerToken != "" || o.BasicAuthUsername != "") {
			return fmt.Errorf("headers: Authorization conflicts with bearer_token or basic_auth_username")
		}
	}
	switch {
	case o.BasicAuthPassword != "" && o.BasicAuthUsername == "":
		return fmt.Errorf("basic_auth_username: required with basic_auth_password")
	case o.BearerToken != "" && o.BasicAuthUsername != "":
		return fmt.Errorf("bearer_token: set either bearer_token or basic_auth_username, not both")
	case (o.TLSCertFile == "") != (o.TLSKeyFile == ""):
		return fmt.Errorf("tls_cert_file: tls_cert_file and tls_key_file go together")
	}
	return engine.CheckSeconds("timeout", o.Timeout, 0)
}

// parseURL checks an endpoint URL and returns it with its host:port.
func parseURL(s string) (*url.URL, string, error) {
	if s == "" {
		return nil, "", errors.New("required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, "", err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Hostname() == "" || u.Fragment != "" {
		return nil, "", fmt.Errorf("%q: want http(s)://host[:port]/path", s)
	}
	if u.User != nil {
		return nil, "", fmt.Errorf("%q: credentials belong in basic_auth_username and basic_auth_password", s)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, "", fmt.Errorf("%q: bad port %q", s, port)
	}
	return u, net.JoinHostPort(u.Hostname(), port), nil
}

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// maxResponse bounds how much of a response body is read: enough for an
// error message or an OTLP partial-success answer.
const maxResponse = 64 << 10

// Endpoint POSTs request bodies to one URL. Like the other HTTP push
// destinations it dials one address of the URL's host, picked at random
// among those it resolves to, and picks again every push.ReresolveInterval
// and after a failed request, so that a fleet spreads over a cluster and a
// dead node is left. TLS and the Host header still see the URL's name.
//
// An Endpoint is not safe for concurrent use: it belongs to one push loop.
type Endpoint struct {
	url      string
	resolver *push.Resolver
	header   http.Header
	http     *http.Client
	tr       *http.Transport

	mu   sync.Mutex // guards addr, read by the transport's dialer
	addr string

	picked   bool
	pickedAt time.Time
	resp     bytes.Buffer
}

// NewEndpoint returns an endpoint for o, which must have passed Validate,
// sending header with every request besides o.Headers and the
// authorization. socketTimeout (seconds) bounds connecting and the TLS
// handshake. It reads the TLS files and does no network I/O.
func NewEndpoint(o *HTTPOptions, socketTimeout float64, header http.Header) (*Endpoint, error) {
	u, hostPort, err := parseURL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	r, err := push.NewResolver([]string{hostPort}, 0)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	tlsConfig, err := o.tlsConfig()
	if err != nil {
		return nil, err
	}
	e := &Endpoint{url: u.String(), resolver: r, header: http.Header{}}
	for k, v := range o.Headers {
		e.header.Set(k, v)
	}
	for k, v := range header {
		e.header[k] = v
	}
	e.header.Set("User-Agent", "bucky3")
	switch {
	case o.BearerToken != "":
		e.header.Set("Authorization", "Bearer "+o.BearerToken)
	case o.BasicAuthUsername != "":
		req := http.Request{Header: http.Header{}}
		req.SetBasicAuth(o.BasicAuthUsername, o.BasicAuthPassword)
		e.header.Set("Authorization", req.Header.Get("Authorization"))
	}
	timeout := engine.Seconds(socketTimeout)
	dialer := &net.Dialer{Timeout: timeout}
	e.tr = &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			e.mu.Lock()
			addr := e.addr
			e.mu.Unlock()
			return dialer.DialContext(ctx, network, addr)
		},
		TLSClientConfig:     tlsConfig,
		TLSHandshakeTimeout: timeout,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     push.ReresolveInterval,
		ForceAttemptHTTP2:   true,
	}
	e.http = &http.Client{
		Transport: e.tr,
		Timeout:   engine.Seconds(o.Timeout),
		// The dialer always reaches the picked address: following a
		// redirect to another host would send the body to the wrong one.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return e, nil
}

// tlsConfig returns the TLS settings of o, nil when o has none.
func (o *HTTPOptions) tlsConfig() (*tls.Config, error) {
	if o.TLSCAFile == "" && o.TLSCertFile == "" && !o.TLSInsecureSkipVerify {
		return nil, nil
	}
	c := &tls.Config{InsecureSkipVerify: o.TLSInsecureSkipVerify} //nolint:gosec // an explicit option
	if o.TLSCAFile != "" {
		pem, err := os.ReadFile(o.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls_ca_file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls_ca_file: %s: no PEM certificate", o.TLSCAFile)
		}
	}
	if o.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCertFile, o.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls_cert_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// Post sends body and returns the response status and at most 64 KiB of
// the response body, valid until the next Post. err is a transport error
// (no response); a response of any status is not an error, but a status
// outside 2xx makes the next Post pick an address again.
func (e *Endpoint) Post(ctx context.Context, body []byte) (status int, resp []byte, err error) {
	if err := e.pick(ctx); err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header = e.header.Clone()
	r, err := e.http.Do(req)
	if err != nil {
		e.picked = false
		return 0, nil, err
	}
	defer r.Body.Close()
	e.resp.Reset()
	_, err = e.resp.ReadFrom(io.LimitReader(r.Body, maxResponse))
	// Drain what is left so that the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
	if r.StatusCode/100 != 2 {
		e.picked = false
	}
	if err != nil && r.StatusCode/100 == 2 {
		// The server took the body; a truncated answer does not change that.
		err = nil
	}
	return r.StatusCode, e.resp.Bytes(), err
}

// pick chooses the address for the next request.
func (e *Endpoint) pick(ctx context.Context) error {
	if e.picked && time.Since(e.pickedAt) < push.ReresolveInterval {
		return nil
	}
	addr, err := e.resolver.Pick(ctx)
	if err != nil {
		return err
	}
	e.tr.CloseIdleConnections()
	e.mu.Lock()
	e.addr = addr.String()
	e.mu.Unlock()
	e.picked, e.pickedAt = true, time.Now()
	return nil
}

// Close closes idle connections.
func (e *Endpoint) Close() { e.tr.CloseIdleConnections() }

// Outcome is what a push destination does with a request after the
// server answered.
type Outcome int

// The outcomes of a response status.
const (
	// Accepted: the data is stored.
	Accepted Outcome = iota
	// Retry: the server is overloaded, unavailable, or the endpoint is
	// misconfigured (auth, path); the data is fine and is sent again
	// after a back-off.
	Retry
	// Rejected: the data itself was refused (400, 413, 422); sending it
	// again would be refused again, so it is dropped.
	Rejected
)

// Classify maps an HTTP status to an Outcome: 2xx accepted; 400, 413 and
// 422 rejected; anything else (5xx, 429, 408, 401, 403, 404, 3xx…) retried.
func Classify(status int) Outcome {
	switch {
	case status/100 == 2:
		return Accepted
	case status == http.StatusBadRequest, status == http.StatusRequestEntityTooLarge, status == http.StatusUnprocessableEntity:
		return Rejected
	}
	return Retry
}

// StatusError is the error of a push whose request got a status to retry.
type StatusError struct {
	Status int
	Body   string // the start of the response body
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("status %d %s: %s", e.Status, http.StatusText(e.Status), e.Body)
}

// NewStatusError returns a StatusError keeping at most 200 bytes of body.
func NewStatusError(status int, body []byte) *StatusError {
	return &StatusError{Status: status, Body: string(body[:min(len(body), 200)])}
}

// LogLimiter lets one log line through per interval and counts the events
// it held back, so that a backend rejecting every request does not flood
// the log.
type LogLimiter struct {
	Interval time.Duration
	last     time.Time
	held     int
}

// Allow reports whether an event may be logged now and, if so, how many
// events were held back since the last one logged.
func (l *LogLimiter) Allow(now time.Time) (ok bool, held int) {
	if !l.last.IsZero() && now.Sub(l.last) < l.Interval {
		l.held++
		return false, 0
	}
	held, l.held, l.last = l.held, 0, now
	return true, held
}
