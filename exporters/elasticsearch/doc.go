// Package elasticsearch implements the elasticsearch_client destination
// (SPEC §9.3): metrics are uploaded as documents with POST <base>/_bulk
// (NDJSON, optionally gzip or deflate compressed) to one remote_hosts entry,
// picked at random and changed every 180 s, under the push policy of
// io/push.
//
// Each document's _id is a UUIDv5 of its canonical JSON, so a retried push
// overwrites instead of duplicating. Documents the cluster rejects one by
// one (per-item errors in a 200 response) are counted and not resent: the
// same document would be rejected again.
package elasticsearch
