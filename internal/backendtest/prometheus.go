package backendtest

import (
	"encoding/json"
	"net/url"
	"strconv"
	"testing"
	"time"
)

// Sample is one element of a Prometheus-API instant query result.
type Sample struct {
	Labels map[string]string // includes __name__ when the series has one
	Value  float64
}

// Promtool returns the path of promtool (for `promtool check metrics`).
func Promtool(t testing.TB) string {
	t.Helper()
	return findBinary(t, "promtool")
}

// Prometheus is a running Prometheus server that scrapes one target.
type Prometheus struct {
	URL string // base URL, http://127.0.0.1:PORT
}

// StartPrometheus starts Prometheus scraping http://target/metrics every
// second, target being host:port. Prometheus delays its first scrape by about
// 5 s whatever the interval: use WaitFor, not Query, for the first sample.
func StartPrometheus(t testing.TB, target string) *Prometheus {
	t.Helper()
	return StartPrometheusJobs(t, ScrapeJob{Target: target})
}

// Query runs an instant query at the current time.
func (p *Prometheus) Query(t testing.TB, expr string) []Sample {
	t.Helper()
	return promQuery(t, p.URL, expr)
}

// WaitFor repeats the instant query expr until it returns at least one
// sample, failing the test after timeout.
func (p *Prometheus) WaitFor(t testing.TB, expr string, timeout time.Duration) []Sample {
	t.Helper()
	return waitForSamples(t, expr, timeout, func() []Sample { return p.Query(t, expr) })
}

func waitForSamples(t testing.TB, expr string, timeout time.Duration, query func() []Sample) []Sample {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if s := query(); len(s) > 0 {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("query %q: no samples after %v", expr, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// promQuery runs an instant query against a Prometheus-compatible API
// (Prometheus or VictoriaMetrics) at base.
func promQuery(t testing.TB, base, expr string) []Sample {
	t.Helper()
	body := get(t, base+"/api/v1/query?"+url.Values{"query": {expr}}.Encode())
	var resp struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("query %q: %v: %s", expr, err, body)
	}
	if resp.Status != "success" {
		t.Fatalf("query %q: %s: %s", expr, resp.Status, resp.Error)
	}
	switch resp.Data.ResultType {
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(resp.Data.Result, &vec); err != nil {
			t.Fatalf("query %q: %v: %s", expr, err, body)
		}
		samples := make([]Sample, 0, len(vec))
		for _, v := range vec {
			samples = append(samples, Sample{Labels: v.Metric, Value: sampleValue(t, expr, v.Value[1])})
		}
		return samples
	case "scalar":
		var sc [2]any
		if err := json.Unmarshal(resp.Data.Result, &sc); err != nil {
			t.Fatalf("query %q: %v: %s", expr, err, body)
		}
		return []Sample{{Labels: map[string]string{}, Value: sampleValue(t, expr, sc[1])}}
	default:
		t.Fatalf("query %q: result type %q unsupported (use an instant vector or scalar)", expr, resp.Data.ResultType)
		return nil
	}
}

// sampleValue decodes the API's string-encoded value ("1.5", "NaN", "+Inf").
func sampleValue(t testing.TB, expr string, v any) float64 {
	t.Helper()
	s, ok := v.(string)
	if !ok {
		t.Fatalf("query %q: value %v is not a string", expr, v)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("query %q: value %q: %v", expr, s, err)
	}
	return f
}
