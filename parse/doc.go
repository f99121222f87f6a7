// Package parse turns StatsD/DogStatsD datagrams (SPEC §3) and
// newline-delimited flat JSON objects (SPEC §5) into views over the input
// bytes, without allocating in steady state. It imports no other package
// of the project and never logs.
//
// A parser (StatsD, JSON) is owned by one goroutine, typically a socket
// reader, and reused for every datagram: the views it returns stay valid
// until its next Parse or Reset, so a consumer that keeps anything past
// that must copy it. Per-sample slices are capped, so an append by a
// consumer copies instead of overwriting the next sample.
//
// Rejected lines are not errors of Parse: each parser counts them by
// Reason in its Rejected array, which the caller adds to its
// lines_invalid_<reason> counters (StatsDReasons and JSONReasons list the
// reasons each parser uses). Every Reason has a package-level sentinel
// error (ErrBadRate, …), which StatsD.ParseLine returns.
//
// A reader that sees the same lines again and again need not parse them in
// full: AppendShape cuts a line's values out, and the rest (its shape)
// decides everything else the parser would find, so a reader can remember
// what a shape gave and parse only the values (StatsD.ParseValues) of the
// lines that repeat it (collectors/statsd does, calling NextLine,
// ParseLine and ParseValues itself; StatsD.Parse is the same loop without
// the memo).
//
// The current time is an argument of Parse, in milliseconds, so that the
// timestamp window check costs no clock read per line and tests control it.
package parse
