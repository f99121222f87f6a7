// Package linux is the linux_stats source module (SPEC §6): every flush
// interval it reads CPU, activity, memory, interface, disk and protocol
// counters from the proc filesystem and filesystem usage from statfs, and
// emits them as one batch.
//
// Parsing is left to github.com/prometheus/procfs except for net/snmp and
// net/netstat, where procfs misses a counter; this package maps the
// results onto bucky3's buckets and field names, which dashboards depend
// on. A file that cannot be read or parsed costs only the metrics it
// feeds: the module logs it once and keeps polling.
package linux
