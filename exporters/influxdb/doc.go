// Package influxdb implements the influxdb_client destination (SPEC §9.2):
// metrics are written as InfluxDB line protocol in UDP datagrams to every
// address of every remote_hosts entry, under the push policy of io/push.
//
// UDP gives no delivery feedback: a datagram the kernel accepted counts as
// sent. InfluxDB drops a whole datagram for one bad line, so AppendLine
// leaves out what InfluxDB would reject (non-finite numbers, empty names,
// the reserved key "time") instead of writing it.
package influxdb
