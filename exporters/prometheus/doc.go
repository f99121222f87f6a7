// Package prometheus implements the prometheus_exporter destination: an
// HTTP endpoint that serves the latest value of every series it has
// received in the Prometheus text exposition format 0.0.4.
//
// Lines are rendered once, when a batch arrives, and kept per series in a
// per-family table; the page is concatenated from them once per change of
// the table and shared, with its gzip form, by every scrape until the next
// change, so a scrape costs a write of bytes already made. Every name and label is sanitised and every
// label value escaped on the way in, so the page always parses: a bad
// bucket or tag can change how a series is spelled, never break the
// scrape. Series not refreshed for values_timeout seconds are evicted.
//
// With layout = "typed" the page holds statsd_exporter's families instead
// (typed.go): counters and histograms accumulate the typed values of each
// batch, summaries estimate quantiles over a sliding window, and the page
// is rendered, still once per change, in the text format or, for scrapers
// that negotiate it, the delimited protobuf format with native histograms.
package prometheus
