// Package statsd is the statsd_server source module: extended StatsD over
// UDP (SPEC §3), aggregated per flush interval (SPEC §4).
//
// The hot path runs on the socket reader goroutines of io/udp: each reader
// owns a parser, an inflater and an aggregate.Writer, so a datagram is
// decompressed, parsed and folded into the striped table without a channel
// hop, a copy or an allocation. A separate goroutine flushes the table
// every flush_interval and emits the batch.
package statsd
