// Package jsond is the jsond_server source module (SPEC §5): datagrams of
// newline-delimited flat JSON objects over UDP, each object one metric, no
// aggregation. Objects are batched and emitted every flush_interval.
package jsond
