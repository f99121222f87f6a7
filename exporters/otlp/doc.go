// Package otlp implements the otlp_client destination: metrics are sent
// as OTLP/HTTP ExportMetricsServiceRequest messages (protobuf, gzip by
// default) to one URL, under the push policy of io/push.
//
// Each numeric field of a metric becomes one OTLP metric named
// <bucket>_<field> with one data point: the count field of a counter
// bucket (statsd's stats_counters) a delta monotonic sum, every other
// field a gauge — timers too, one gauge per statistic. The tags named in
// resource_attributes describe the resource; the others are the data
// point's attributes. Responses are handled as in remote_write_client
// (remotewrite.Classify); a partial success is counted in
// data_points_rejected.
package otlp
