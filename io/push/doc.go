// Package push holds the buffering policy shared by the push destinations
// (influxdb_client, elasticsearch_client, carbon_client), SPEC §9.
//
// Metrics arriving from the router are queued in a Queue bounded by
// buffer_limit. Every flush interval Run hands the queue, oldest first, to a
// Pusher in chunks of chunk_size, stopping after push_count_limit metrics or
// push_time_limit seconds. A failed push keeps the unsent metrics and doubles
// the interval up to max_flush_interval; a successful flush resets it. A
// failure the Pusher marks Permanent is not retried: Run bisects the chunk
// and drops only the metrics that fail alone. A
// Resolver turns remote_hosts into addresses and refreshes them every 180 s.
//
// Run counts everything it does in the module's Stats, so that at any time
// metrics_received = metrics_sent + metrics_dropped + metrics_buffered.
package push
