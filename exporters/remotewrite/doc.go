// Package remotewrite implements the remote_write_client destination:
// metrics are sent as Prometheus remote write 1.0 requests (protobuf
// WriteRequest, snappy block compressed) to one URL, under the push policy
// of io/push.
//
// Each numeric field of a metric becomes one time series named
// <bucket>_<field>, labelled with the metric's tags, holding one sample at
// the metric's timestamp (the push time when it has none). A response
// 2xx means sent; 400, 413 and 422 mean the request's content is refused
// for good, so its metrics are dropped and counted as
// metrics_dropped_rejected; any other answer, or none, is retried after
// the policy's back-off.
//
// The package also holds the HTTP side shared with otlp_client:
// HTTPOptions (url, headers, authentication, TLS, timeout) and Endpoint.
package remotewrite
