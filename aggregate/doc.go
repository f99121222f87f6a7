// Package aggregate holds the StatsD aggregation tables: samples from the
// parsers are folded into per-series state between flushes, and a flush turns
// that state into engine metrics as SPEC §4 defines them, then forgets it.
//
// A Table is split into 2^k stripes, each a mutex over a map from the series
// key's 64-bit xxhash to the series state, kept in creation order. Stripes let
// several writers update at once; a table with one writer does best with one
// stripe, whose series then sit in the order lines arrive, which clients
// repeat from one datagram to the next. Each reader goroutine holds its own
// Writer: updating an existing series costs one lock, one map lookup and an
// in-place update, with no allocation, and a Ref (Writer.AddRef, AddTo) skips
// the key and the lookup too. A flush swaps every stripe's state with a spare
// under the stripe's lock and computes outside it, so writers wait only for
// the swap; recycled series keep their buffers.
//
// Every series is bounded in memory: a timer past MaxTimerSamples keeps a
// uniform reservoir beside exact running statistics, a set past MaxSetSize
// becomes a HyperLogLog++ sketch, and no new series starts beyond
// MaxSeries or while the agent's memory budget is tight (README.md).
//
// A series is identified by its name, its tags (which include bucket and
// exclude timestamp, as the parser delivers them) and its kind: counter,
// gauge, timer or set. ms, h and d samples of one name and tags are the
// same timer series; a counter and a gauge of one name and tags are two
// series.
//
// A typed table (Options.Typed) emits one typed metric per series instead
// (typed.go): counter increases, gauges or gauge changes, set counts, and
// timers as histograms of classic and native buckets, which keep counts
// rather than samples, or as summaries. Each series keeps the SeriesType
// it was started with (AddTyped).
package aggregate
