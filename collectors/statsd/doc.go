// Package statsd is the statsd_server source module: extended StatsD over
// UDP (SPEC §3), aggregated per flush interval (SPEC §4).
//
// The hot path runs on the socket reader goroutines of io/udp: each reader
// owns a decoder (collectors/internal/udpsource), a parser and an
// aggregate.Writer, so a datagram is decompressed, parsed and folded into
// the striped table without a channel hop, a copy or an allocation. Each reader also remembers the shapes of
// the lines it accepted (a line without its values: name, type, rate, tags)
// with a Ref to their series, so a line of a known shape, nearly every line
// of a steady load, costs a hash of its shape, the parse of its values and
// one locked update. What happens to a line between the parser and the
// table once per shape (tag_allowlist/tag_denylist, the mapping_config
// rules and the series type they give) is remembered with it too. A
// separate goroutine flushes the table every flush_interval and emits the
// batch.
package statsd
