package remotewrite

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bucky3/bucky3/engine"
)

func TestClassify(t *testing.T) {
	f := func(status int, want Outcome) {
		t.Helper()
		if got := Classify(status); got != want {
			t.Fatalf("Classify(%d) = %d, want %d", status, got, want)
		}
	}
	f(200, Accepted)
	f(204, Accepted)
	f(400, Rejected)
	f(413, Rejected)
	f(422, Rejected)
	f(429, Retry)
	f(408, Retry)
	f(401, Retry)
	f(404, Retry)
	f(307, Retry)
	f(500, Retry)
	f(503, Retry)
}

func TestLogLimiter(t *testing.T) {
	l := LogLimiter{Interval: time.Minute}
	t0 := time.Unix(1700000000, 0)
	f := func(at time.Duration, wantOK bool, wantHeld int) {
		t.Helper()
		if ok, held := l.Allow(t0.Add(at)); ok != wantOK || held != wantHeld {
			t.Fatalf("Allow(+%v) = %v, %d; want %v, %d", at, ok, held, wantOK, wantHeld)
		}
	}
	f(0, true, 0)
	f(time.Second, false, 0)
	f(59*time.Second, false, 0)
	f(time.Minute, true, 2)
	f(time.Minute+time.Second, false, 0)
	f(3*time.Minute, true, 1)
}

// TestConfig loads the options the way the agent does: from TOML, with
// environment variables, through the registry's checks.
func TestConfig(t *testing.T) {
	types := []engine.Type{engine.DestinationType("remote_write_client", DefaultOptions, New)}
	env := func(k string) (string, bool) { return map[string]string{"PW": "secret"}[k], k == "PW" }
	f := func(body, wantErr string) {
		t.Helper()
		_, err := engine.Parse([]byte("[rw]\nmodule_type = \"remote_write_client\"\n"+body), types, env)
		switch {
		case wantErr == "" && err != nil:
			t.Fatalf("%s: %v", body, err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Fatalf("%s: error %v, want one containing %q", body, err, wantErr)
		}
		var ce *engine.ConfigError
		if err != nil && !errors.As(err, &ce) {
			t.Fatalf("%s: %T is not a ConfigError", body, err)
		}
	}
	f(`url = "https://mimir.example/api/v1/push"
headers = { "X-Scope-OrgID" = "team-a" }
basic_auth_username = "agent"
basic_auth_password = "${PW}"
tls_insecure_skip_verify = true
max_samples_per_send = 500
timeout = 2.5
chunk_size = 100
flush_interval = 5
`, "")
	f(`url = "http://h/api/v1/write"
bearer_token = "t"
tls_ca_file = "/etc/ca.pem"
tls_cert_file = "/etc/c.pem"
tls_key_file = "/etc/k.pem"
`, "")
	f(``, "url")
	f(`url = "http://h/w"
remote_hosts = ["h"]`, "remote_hosts")
	f(`url = "http://h/w"
timeout = 0`, "timeout")
	f(`url = "http://h/w"
max_samples_per_send = -1`, "max_samples_per_send")
	f(`url = "http://h/w"
unknown_option = 1`, "unknown_option")
}
