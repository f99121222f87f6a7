// Package parse turns StatsD/DogStatsD datagrams and flat JSON objects into
// views over the input bytes, without allocating. It imports no other
// package of the project and never logs: rejected lines are reported to the
// caller as package-level sentinel errors so that it can count them by
// reason.
package parse
