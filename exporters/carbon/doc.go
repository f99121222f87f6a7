// Package carbon implements the carbon_client destination (SPEC §9.4):
// metrics are written as Graphite plaintext lines over TCP to one address,
// picked at random among the resolved remote_hosts and changed every
// 180 s, under the push policy of io/push.
//
// Graphite has no tags, so a metric's path is built from its metadata: the
// keys listed in name_mapping first, then the other keys alphabetically.
package carbon
