// Package mapping reads a statsd_exporter mapping file (the YAML given to
// statsd_exporter's --statsd.mapping-config) unchanged and maps a StatsD
// metric name and type to a Prometheus-style name, labels and per-series
// options (observer type, histogram buckets, summary quantiles, native
// histogram factor, TTL, help) exactly as statsd_exporter v0.31.0's
// pkg/mapper does: glob rules go through the same trie (first matching
// rule in file order wins unless defaults.glob_disable_ordering, `*`
// matches one whole dot-separated component), glob rules are tried before
// regex rules, regex rules in file order, and $n, ${n} and $0 expand the
// same way. It also accepts the keys v0.31.0 removed (timer_type,
// top-level buckets and quantiles, match_metric_type: timer) with
// v0.30.0's meaning, so older files keep loading; any other unknown key
// is an error, as in v0.31.0.
//
// Where statsd_exporter would crash later (histogram buckets not
// increasing, a quantile outside 0..1) Parse fails instead. Sets, which
// statsd_exporter rejects, match rules as gauges. AppendEscaped is
// statsd_exporter's name escaping, for destinations that follow it.
//
// A Mapper is immutable once built and safe for concurrent use. Map
// allocates (names, labels), so callers cache its result per line shape.
package mapping
