package prometheus

import (
	"math"
	"testing"
	"time"

	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/internal/backendtest"
)

// TestTypedPrometheusNativeHistograms has a real Prometheus 2.42 with
// native histograms on scrape the typed layout while it is fed at a known
// rate, and reads back rate() of a counter and histogram_quantile() of a
// classic and a native histogram through its query API.
func TestTypedPrometheusNativeHistograms(t *testing.T) {
	const (
		tick      = 100 * time.Millisecond
		perTick   = 10.0 // counter increase per tick: 100/s
		observed  = 100  // observations per tick, uniform over (0, 1]
		wantRate  = perTick * float64(time.Second/tick)
		nativeSch = 3
	)
	h := startTyped(t, nil)
	prom := backendtest.StartPrometheusFlags(t, []string{"--enable-feature=native-histograms"},
		backendtest.ScrapeJob{Target: h.e.Addr().String()})

	bounds := []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1}
	values := make([]float64, observed)
	for j := range values {
		values[j] = (float64(j) + 0.5) / observed
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tk := time.NewTicker(tick)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				h.send(
					typedMetric("hits_total", nil, engine.CounterIncrease(perTick)),
					typedMetric("lat_classic", nil, histogram(bounds, nil, values...)),
					typedMetric("lat_native", nil, histogram(nil, schemaOf(nativeSch), values...)),
				)
			}
		}
	}()
	// Registered after start's cleanup, so it runs before the inbox closes.
	t.Cleanup(func() { close(stop); <-stopped })

	// Wait for enough scrapes to fill the rate window.
	prom.WaitFor(t, `count_over_time(hits_total[15s]) >= 12`, 90*time.Second)

	one := func(expr string) float64 {
		t.Helper()
		got := prom.Query(t, expr)
		if len(got) != 1 {
			t.Fatalf("%s: %+v, want one sample", expr, got)
		}
		t.Logf("%s = %v", expr, got[0].Value)
		return got[0].Value
	}
	if got := one(`rate(hits_total[10s])`); math.Abs(got-wantRate) > 0.05*wantRate {
		t.Errorf("rate(hits_total[10s]) = %v, want %v ± 5%%", got, wantRate)
	}
	// The true 0.9 quantile of the observations is 0.9.
	if got := one(`histogram_quantile(0.9, rate(lat_classic_bucket[10s]))`); math.Abs(got-0.9) > 0.1 {
		t.Errorf("classic histogram_quantile(0.9) = %v, want 0.9 within a bucket (0.1)", got)
	}
	// Schema 3: the bucket holding 0.9 is (2^-2/8, 2^-1/8], 0.076 wide.
	width := math.Exp2(-1.0/8) - math.Exp2(-2.0/8)
	if got := one(`histogram_quantile(0.9, rate(lat_native[10s]))`); math.Abs(got-0.9) > width {
		t.Errorf("native histogram_quantile(0.9) = %v, want 0.9 within a bucket (%v)", got, width)
	}
	// histogram_count only answers for a native histogram.
	wantObs := observed * float64(time.Second/tick)
	if got := one(`histogram_count(rate(lat_native[10s]))`); math.Abs(got-wantObs) > 0.05*wantObs {
		t.Errorf("histogram_count(rate(lat_native[10s])) = %v, want %v ± 5%%", got, wantObs)
	}
	if got := one(`up`); got != 1 {
		t.Errorf("up = %v, want 1", got)
	}
}
