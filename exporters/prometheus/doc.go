// Package prometheus implements the prometheus_exporter destination: an
// HTTP endpoint that serves the latest value of every series it has
// received in the Prometheus text exposition format 0.0.4.
//
// Lines are rendered once, when a batch arrives, and kept per series in a
// per-family table; a scrape only concatenates the stored bytes, so its
// cost is a copy of the page. Every name and label is sanitised and every
// label value escaped on the way in, so the page always parses: a bad
// bucket or tag can change how a series is spelled, never break the
// scrape. Series not refreshed for values_timeout seconds are evicted.
package prometheus
