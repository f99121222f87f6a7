// Package debug implements the debug_output destination: every metric it
// receives is written in a human-readable block, for looking at what a
// pipeline produces. It is meant for people, not parsers: the layout may
// change.
package debug
