package mapping

import (
	"testing"

	"github.com/bucky3/bucky3/parse"
)

// BenchmarkMap maps names through testdata's 53-rule file: glob hits with
// labels, a regex hit, a drop and a miss that tries every rule.
func BenchmarkMap(b *testing.B) {
	m, err := Load("testdata/statsd_mapping.yml")
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		bench, name string
		typ         parse.Type
		want        string
	}{
		{"glob", "checkout.http.GET.users.200.duration", parse.Timer, "checkout_http_request_duration_seconds"},
		{"glob_no_labels", "debug.x", parse.Counter, ""},
		{"regex", "envoy.cluster.backend.upstream_cx_total", parse.Counter, "envoy_cluster_upstream_cx_total"},
		{"miss", "unknown.metric.name.here.and.more", parse.Gauge, ""},
	} {
		b.Run(c.bench, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r, _ := m.Map(c.name, c.typ)
				if r.Name != c.want {
					b.Fatalf("Map(%q) = %q, want %q", c.name, r.Name, c.want)
				}
			}
		})
	}
}
