// Package aggregate holds the StatsD aggregation tables: samples from the
// parsers are folded into per-series state between flushes, and a flush turns
// that state into engine metrics as SPEC §4 defines them, then forgets it.
//
// A Table is split into 2^k stripes, each a mutex over a map from the series
// key's 64-bit xxhash to the series state, which the stripe keeps in the
// order series were created, in chunks that never move. Stripes let
// several writers update at once; a table with one writer does best with
// one stripe, whose series then sit in the order its lines arrive, which
// clients repeat from one datagram to the next. Reader goroutines each hold
// their own Writer (it owns the scratch space the key is built in), so
// updating a series that already exists costs one lock, one map lookup and
// an in-place update, with no allocation. A Ref, set by Writer.AddRef,
// remembers where a series is: Writer.AddTo then skips the key and the
// lookup, until a flush moves the series (its first AddTo after a flush
// finds it again by key).
// A flush swaps every stripe's live state with a spare under the stripe's
// lock and computes outside it, so readers are blocked only for the swap;
// the spare's entries are then recycled with their sample slices and set
// maps keeping their capacity.
//
// A series is identified by its name, its tags (which include bucket and
// exclude timestamp, as the parser delivers them) and its kind: counter,
// gauge, timer or set. ms, h and d samples of one name and tags are the
// same timer series; a counter and a gauge of one name and tags are two
// series.
package aggregate
