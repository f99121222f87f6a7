package backendtest

import (
	"bytes"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/golang/snappy"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// remoteWrite builds a remote write 1.0 request of one series with one
// sample, by hand, so that the receivers are checked independently of
// bucky3's encoder.
func remoteWrite(name, job string, v float64, ms int64) []byte {
	label := func(dst []byte, n, v string) []byte {
		var l []byte
		l = protowire.AppendTag(l, 1, protowire.BytesType)
		l = protowire.AppendString(l, n)
		l = protowire.AppendTag(l, 2, protowire.BytesType)
		l = protowire.AppendString(l, v)
		dst = protowire.AppendTag(dst, 1, protowire.BytesType)
		return protowire.AppendBytes(dst, l)
	}
	var ts []byte
	ts = label(ts, "__name__", name)
	ts = label(ts, "job", job)
	var s []byte
	s = protowire.AppendTag(s, 1, protowire.Fixed64Type)
	s = protowire.AppendFixed64(s, math.Float64bits(v))
	s = protowire.AppendTag(s, 2, protowire.VarintType)
	s = protowire.AppendVarint(s, uint64(ms))
	ts = protowire.AppendTag(ts, 2, protowire.BytesType)
	ts = protowire.AppendBytes(ts, s)
	req := protowire.AppendTag(nil, 1, protowire.BytesType)
	return snappy.Encode(nil, protowire.AppendBytes(req, ts))
}

func post(t *testing.T, url, contentEncoding string, body []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	if contentEncoding != "" {
		req.Header.Set("Content-Encoding", contentEncoding)
	}
	do(t, req)
}

// TestReceivers writes one sample through remote write, kills the
// receiver, starts it again, and writes and reads back a second one.
func TestReceivers(t *testing.T) {
	for _, start := range []func(testing.TB) *Receiver{StartPrometheusReceiver, StartVictoriaMetricsReceiver, StartVictoriaMetricsOTLP} {
		r := start(t)
		t.Run(r.Name, func(t *testing.T) {
			t.Parallel()
			post(t, r.WriteURL, "snappy", remoteWrite("backendtest_before", "rw", 1.5, time.Now().UnixMilli()))
			if got := r.WaitFor(t, "backendtest_before", 20*time.Second); len(got) != 1 || got[0].Value != 1.5 || got[0].Labels["job"] != "rw" {
				t.Fatalf("before the kill: got %+v", got)
			}
			r.Kill(t)
			if _, err := httpClient.Get(r.URL + r.ready); err == nil {
				t.Fatalf("%s still answers after Kill", r)
			}
			r.Start(t)
			post(t, r.WriteURL, "snappy", remoteWrite("backendtest_after", "rw", 2.5, time.Now().UnixMilli()))
			if got := r.WaitFor(t, "backendtest_after", 20*time.Second); len(got) != 1 || got[0].Value != 2.5 {
				t.Fatalf("after the restart: got %+v", got)
			}
		})
	}
}

func TestVictoriaMetricsOTLP(t *testing.T) {
	t.Parallel()
	r := StartVictoriaMetricsOTLP(t)
	str := func(k, v string) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
	}
	md := &metricspb.MetricsData{ResourceMetrics: []*metricspb.ResourceMetrics{{
		ScopeMetrics: []*metricspb.ScopeMetrics{{Metrics: []*metricspb.Metric{{
			Name: "backendtest_otlp",
			Data: &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{DataPoints: []*metricspb.NumberDataPoint{{
				Attributes:   []*commonpb.KeyValue{str("job", "otlp")},
				TimeUnixNano: uint64(time.Now().UnixNano()),
				Value:        &metricspb.NumberDataPoint_AsDouble{AsDouble: 4.5},
			}}}},
		}}}},
	}}}
	body, err := proto.Marshal(md)
	if err != nil {
		t.Fatal(err)
	}
	post(t, r.OTLPURL, "", body)
	if got := r.WaitFor(t, "backendtest_otlp", 20*time.Second); len(got) != 1 || got[0].Value != 4.5 || got[0].Labels["job"] != "otlp" {
		t.Fatalf("got %+v, want backendtest_otlp{job=otlp} 4.5", got)
	}
}
