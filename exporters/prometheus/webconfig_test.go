package prometheus

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/internal/backendtest"
)

// The user and password the web config of these tests accepts.
const (
	scrapeUser     = "scraper"
	scrapePassword = "s3cret pass"
)

// pki is a CA and a server certificate for 127.0.0.1 signed by it, written
// to files in dir, with the web config files of the tests.
type pki struct {
	dir    string
	caFile string
	pool   *x509.CertPool
}

// newPKI generates a CA and a server certificate for 127.0.0.1 (ECDSA
// P-256, valid for an hour either side of now) into a temporary directory.
func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir(), pool: x509.NewCertPool()}
	caKey := newKey(t)
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "bucky3 test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	if ca, err = x509.ParseCertificate(caDER); err != nil {
		t.Fatal(err)
	}
	p.pool.AddCert(ca)
	p.caFile = p.writePEM(t, "ca.crt", "CERTIFICATE", caDER)

	key := newKey(t)
	server := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, server, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	p.writePEM(t, "server.crt", "CERTIFICATE", der)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p.writePEM(t, "server.key", "PRIVATE KEY", keyDER)
	return p
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (p *pki) writePEM(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	return p.write(t, name, string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})))
}

func (p *pki) write(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// webConfig writes the web config file of the tests: TLS with the server
// certificate (paths relative to the file, as the toolkit resolves them)
// and basic auth for scrapeUser, its password hashed with bcrypt.
func (p *pki) webConfig(t *testing.T) string {
	t.Helper()
	// The lowest cost keeps the tests fast; the README's example uses 10+.
	hash, err := bcrypt.GenerateFromPassword([]byte(scrapePassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return p.write(t, "web.yml", "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"+
		"basic_auth_users:\n  "+scrapeUser+": '"+string(hash)+"'\n")
}

// startTLS starts an exporter serving with p's web config; h.url is its
// https URL and h.client trusts p's CA (and sends no credentials).
func startTLS(t *testing.T, p *pki, edit func(*Options)) *harness {
	t.Helper()
	config := p.webConfig(t)
	h := start(t, func(o *Options) {
		o.WebConfigFile = config
		if edit != nil {
			edit(o)
		}
	})
	h.url = "https://" + h.e.Addr().String()
	h.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableCompression: true,
		TLSClientConfig:    &tls.Config{RootCAs: p.pool},
	}}
	return h
}

// authGet GETs path of h with basic auth user:password ("" user: none) and
// returns the status and body.
func authGet(t *testing.T, h *harness, path, user, password string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.TLS == nil && strings.HasPrefix(h.url, "https:") {
		t.Errorf("GET %s: answered without TLS", path)
	}
	return resp.StatusCode, string(body)
}

func TestExporterWebConfigTLSAndBasicAuth(t *testing.T) {
	p := newPKI(t)
	h := startTLS(t, p, nil)
	h.send(metric("m", 0, nil, num("v", 7)))

	status, body := authGet(t, h, "/metrics", scrapeUser, scrapePassword)
	if status != http.StatusOK || !strings.Contains(body, `m{value="v"} 7`) {
		t.Fatalf("right password: status %d, page %q; want 200 with m", status, body)
	}
	checkPage(t, body)
	if status, _ := authGet(t, h, "/other", scrapeUser, scrapePassword); status != http.StatusNotFound {
		t.Errorf("other path: status %d, want 404", status)
	}
	for _, c := range []struct{ name, user, password string }{
		{"wrong password", scrapeUser, "wrong"},
		{"unknown user", "someone", scrapePassword},
		{"no credentials", "", ""},
	} {
		status, body := authGet(t, h, "/metrics", c.user, c.password)
		if status != http.StatusUnauthorized || strings.Contains(body, "m{") {
			t.Errorf("%s: status %d, body %q; want 401 without the page", c.name, status, body)
		}
	}
	// Rejected requests never reach the page's handler.
	if n := h.stats.Counter("http_requests").Load(); n != 2 {
		t.Errorf("http_requests = %d, want the 2 authenticated ones", n)
	}

	// Plain HTTP to the TLS port gets no page: Go's TLS server answers a
	// 400 in clear text, or the connection fails.
	addr := h.e.Addr().String()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/metrics", nil)
	req.SetBasicAuth(scrapeUser, scrapePassword)
	if resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || strings.Contains(string(body), "m{") {
			t.Errorf("plain HTTP to the TLS endpoint: status %d, body %q", resp.StatusCode, body)
		}
	}
	// A client that does not trust the CA fails the handshake.
	strict := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{}}}
	if resp, err := strict.Get(h.url + "/metrics"); err == nil {
		resp.Body.Close()
		t.Error("a client without the CA verified the server certificate")
	}
}

// TestExporterWebConfigBasicAuthOnly: a file with users and no TLS
// section serves plain HTTP that asks for the password.
func TestExporterWebConfigBasicAuthOnly(t *testing.T) {
	p := newPKI(t)
	hash, err := bcrypt.GenerateFromPassword([]byte(scrapePassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	config := p.write(t, "auth.yml", "basic_auth_users:\n  "+scrapeUser+": '"+string(hash)+"'\n")
	h := start(t, func(o *Options) { o.WebConfigFile = config })
	h.send(metric("m", 0, nil, num("v", 7)))
	if status, body := authGet(t, h, "/metrics", scrapeUser, scrapePassword); status != http.StatusOK || !strings.Contains(body, "m{") {
		t.Errorf("right password: status %d, page %q", status, body)
	}
	if status, _ := authGet(t, h, "/metrics", scrapeUser, "wrong"); status != http.StatusUnauthorized {
		t.Errorf("wrong password: status %d, want 401", status)
	}
}

func TestOptionsWebConfigFile(t *testing.T) {
	p := newPKI(t)
	good := p.webConfig(t)
	f := func(content, wantErr string) {
		t.Helper()
		o := DefaultOptions()
		o.WebConfigFile = good
		if content != "" {
			o.WebConfigFile = p.write(t, "bad.yml", content)
		}
		err := o.Validate()
		if wantErr == "" {
			if err != nil {
				t.Errorf("%q: %v, want valid", content, err)
			}
			return
		}
		if err == nil || !strings.HasPrefix(err.Error(), "web_config_file ") || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%q: error %v, want one naming web_config_file with %q", content, err, wantErr)
		}
	}
	f("", "")
	f("tls_server_config:\n  cert_file: server.crt\n", "key")
	f("tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n", "missing.crt")
	f("tls_server_config:\n  cert_file: server.key\n  key_file: server.crt\n", "certificate")
	f("basic_auth_users:\n  u: plaintext\n", "hash")
	f("no_such_key: 1\n", "no_such_key")
	f("tls_server_config: [\n", "yaml")

	o := DefaultOptions()
	o.WebConfigFile = filepath.Join(p.dir, "absent.yml")
	if err := o.Validate(); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("absent file: %v, want a not-exist error", err)
	}
}

// tlsConn dials h over TCP with a small receive buffer and completes a TLS
// handshake trusting p's CA.
func tlsConn(t *testing.T, h *harness, p *pki) *tls.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}
	raw, err := d.Dial("tcp", h.e.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Client(raw, &tls.Config{RootCAs: p.pool, ServerName: "127.0.0.1"})
	t.Cleanup(func() { raw.Close() })
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	return c
}

// stuckTLSScrape sends an authenticated GET over TLS and never reads the
// answer, so the server's write blocks once the buffers are full.
func stuckTLSScrape(t *testing.T, h *harness, p *pki) {
	t.Helper()
	c := tlsConn(t, h, p)
	req, _ := http.NewRequest(http.MethodGet, "https://127.0.0.1/metrics", nil)
	req.SetBasicAuth(scrapeUser, scrapePassword)
	if err := req.Write(c); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for h.stats.Counter("http_requests").Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("request not received in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestExporterWebConfigKeepsLimits checks the connection cap, the
// timeouts (the handshake's included), the header limit and the drain at
// shutdown with TLS and basic auth on.
func TestExporterWebConfigKeepsLimits(t *testing.T) {
	p := newPKI(t)
	t.Run("max_connections", func(t *testing.T) {
		h := startTLS(t, p, func(o *Options) { o.MaxConnections = 2 })
		addr := h.e.Addr().String()
		var held []net.Conn
		for range 2 {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			held = append(held, c)
		}
		waitGauge(t, h, "connections", 2)
		extra, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer extra.Close()
		expectClosed(t, extra, 5*time.Second)
		if n := h.stats.Counter("connections_refused").Load(); n != 1 {
			t.Errorf("connections_refused = %d, want 1", n)
		}
		held[0].Close()
		waitGauge(t, h, "connections", 1)
		if status, _ := authGet(t, h, "/metrics", scrapeUser, scrapePassword); status != http.StatusOK {
			t.Errorf("scrape in a freed slot: status %d", status)
		}
	})
	t.Run("handshake read_timeout", func(t *testing.T) {
		h := startTLS(t, p, func(o *Options) { o.ReadTimeout = 0.2 })
		c, err := net.Dial("tcp", h.e.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		began := time.Now() // a client that never starts its handshake
		expectClosed(t, c, 5*time.Second)
		if d := time.Since(began); d < 150*time.Millisecond {
			t.Errorf("closed after %v, before the 0.2 s read_timeout", d)
		}
		waitGauge(t, h, "connections", 0)
	})
	t.Run("header limit", func(t *testing.T) {
		h := startTLS(t, p, nil)
		req, _ := http.NewRequest(http.MethodGet, h.url+"/metrics", nil)
		req.SetBasicAuth(scrapeUser, scrapePassword)
		req.Header.Set("X-Big", strings.Repeat("a", 2*maxHeaderBytes))
		resp, err := h.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("%d KiB header: status %d, want 431", 2*maxHeaderBytes>>10, resp.StatusCode)
		}
	})
	t.Run("write_timeout", func(t *testing.T) {
		h := startTLS(t, p, func(o *Options) { o.WriteTimeout = 0.3 })
		bigPage(h, stuckSeries)
		stuckTLSScrape(t, h, p)
		began := time.Now()
		waitGauge(t, h, "connections", 0)
		t.Logf("closed %v after the request", time.Since(began))
		if d := time.Since(began); d > 5*time.Second {
			t.Errorf("stuck TLS scrape closed after %v with write_timeout 0.3 s", d)
		}
	})
	// At shutdown a client sitting on a large page is cut off after
	// drain_timeout, over HTTP/1.1 and over HTTP/2 (where the server waits
	// on flow control rather than on the socket).
	for _, proto := range []string{"http/1.1", "h2"} {
		t.Run("drain "+proto, func(t *testing.T) {
			o := DefaultOptions()
			o.LocalHost = "127.0.0.1:0"
			o.DrainTimeout = 0.3
			o.WebConfigFile = p.webConfig(t)
			stats := engine.NewStats()
			e, err := New(module(stats), o)
			if err != nil {
				t.Fatal(err)
			}
			h := &harness{e: e, stats: stats, in: make(chan *engine.Batch)}
			done := make(chan error, 1)
			go func() { done <- e.Run(context.Background(), h.in) }()
			<-e.Ready()
			bigPage(h, stuckSeries)
			if proto == "h2" {
				stuckH2Scrape(t, h, p)
			} else {
				stuckTLSScrape(t, h, p)
			}
			began := time.Now()
			close(h.in)
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v, want nil", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run still waiting for a stuck TLS scrape 10 s after its inbox closed (drain_timeout 0.3 s)")
			}
			if d := time.Since(began); d < 250*time.Millisecond {
				t.Errorf("Run returned after %v: the scrape in flight got less than drain_timeout", d)
			}
			waitGauge(t, h, "connections", 0)
		})
	}
}

// stuckH2Scrape GETs the page over HTTP/2 and never reads the body, so
// the server's handler waits once the stream's flow-control window is
// spent.
func stuckH2Scrape(t *testing.T, h *harness, p *pki) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.pool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	req, _ := http.NewRequest(http.MethodGet, "https://"+h.e.Addr().String()+"/metrics", nil)
	req.SetBasicAuth(scrapeUser, scrapePassword)
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.ProtoMajor != 2 {
		t.Fatalf("protocol %s, want HTTP/2", resp.Proto)
	}
}

// TestLimitedConnWriteAfterTimeout: once a write timed out, writes fail at
// once, so a TLS close_notify cannot hold a stuck connection 5 s longer.
func TestLimitedConnWriteAfterTimeout(t *testing.T) {
	a, b := net.Pipe() // nobody reads b: writes block until the deadline
	defer b.Close()
	c := &limitedConn{Conn: a, open: engine.NewStats().Gauge("connections")}
	c.open.Add(1)
	defer c.Close()
	if err := c.SetWriteDeadline(time.Now().Add(10 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("first write: %v, want a timeout", err)
	}
	if err := c.SetWriteDeadline(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if _, err := c.Write([]byte("alert")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("write after a timeout: %v, want the timeout again", err)
	}
	if d := time.Since(began); d > time.Second {
		t.Errorf("write after a timeout took %v", d)
	}
}

// TestExporterWebConfigBrokenAtRun: a file broken after validation fails
// Run before it listens, naming the option; the port stays free.
func TestExporterWebConfigBrokenAtRun(t *testing.T) {
	p := newPKI(t)
	o := DefaultOptions()
	o.LocalHost = "127.0.0.1:" + strconv.Itoa(backendtest.FreePort(t))
	o.WebConfigFile = p.webConfig(t)
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	e, err := New(module(engine.NewStats()), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(p.dir, "server.key")); err != nil {
		t.Fatal(err)
	}
	err = e.Run(context.Background(), make(chan *engine.Batch))
	if err == nil || !strings.HasPrefix(err.Error(), "web_config_file ") {
		t.Fatalf("Run = %v, want a web_config_file error", err)
	}
	ln, err := net.Listen("tcp", o.LocalHost)
	if err != nil {
		t.Fatalf("port still held after the failed Run: %v", err)
	}
	ln.Close()
}

// TestPrometheusScrapesOverTLS has a real Prometheus scrape the exporter
// over HTTPS with basic auth and reads the sample back through its query
// API; jobs with a wrong password or plain HTTP must fail (up 0).
func TestPrometheusScrapesOverTLS(t *testing.T) {
	p := newPKI(t)
	addr := "127.0.0.1:" + strconv.Itoa(backendtest.FreePort(t))
	config := p.webConfig(t)
	h := start(t, func(o *Options) { o.LocalHost, o.WebConfigFile = addr, config })
	h.send(metric("tls_probe", 0, []engine.Tag{{Key: "host", Value: "web1"}}, num("v", 42.5)))

	target := h.e.Addr().String()
	prom := backendtest.StartPrometheusJobs(t,
		backendtest.ScrapeJob{Name: "tls", Target: target, Scheme: "https", CAFile: p.caFile, Username: scrapeUser, Password: scrapePassword},
		backendtest.ScrapeJob{Name: "wrong_password", Target: target, Scheme: "https", CAFile: p.caFile, Username: scrapeUser, Password: "wrong"},
		backendtest.ScrapeJob{Name: "plain", Target: target, Username: scrapeUser, Password: scrapePassword},
	)
	got := prom.WaitFor(t, `tls_probe{job="tls"}`, 30*time.Second)
	if len(got) != 1 || got[0].Value != 42.5 || got[0].Labels["host"] != "web1" || got[0].Labels["value"] != "v" {
		t.Fatalf("got %+v, want tls_probe{host=web1,value=v} 42.5", got)
	}
	for job, want := range map[string]float64{"tls": 1, "wrong_password": 0, "plain": 0} {
		got := prom.WaitFor(t, `up{job="`+job+`"}`, 30*time.Second)
		if len(got) != 1 || got[0].Value != want {
			t.Errorf("up{job=%q} = %+v, want %v", job, got, want)
		}
	}
	if got := prom.Query(t, `tls_probe{job!="tls"}`); len(got) != 0 {
		t.Errorf("jobs that should fail stored %+v", got)
	}
}
