package debug

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/bucky3/bucky3/engine"
)

// Options configure a debug_output module: only the common ones.
type Options struct {
	engine.DestinationOptions
}

// DefaultOptions returns the destination defaults.
func DefaultOptions() Options {
	return Options{DestinationOptions: engine.DefaultDestinationOptions()}
}

// Validate checks the options of this module type. It has none of its own:
// the registry checks the common ones.
func (o *Options) Validate() error { return nil }

// Output is the debug_output destination.
type Output struct {
	// W receives the dump; New sets it to os.Stderr. Set it before Run.
	W io.Writer

	log      *slog.Logger
	received *engine.Counter
	errors   *engine.Counter
	buf      []byte
}

// New returns an output writing to os.Stderr. o was validated by the
// registry; m's Log and Stats must be set. It does no I/O.
func New(m engine.Module, _ Options) (*Output, error) {
	return &Output{
		W:        os.Stderr,
		log:      m.Log,
		received: m.Stats.Counter("metrics_received"),
		errors:   m.Stats.FlushErrors,
	}, nil
}

// Run writes each batch from in, one Write per batch, until in is closed
// (it returns nil) or ctx is cancelled (it returns ctx.Err()). A failed
// write is logged and counted as a flush error; the batch is lost.
func (d *Output) Run(ctx context.Context, in <-chan *engine.Batch) error {
	for {
		select {
		case b, ok := <-in:
			if !ok {
				return nil
			}
			d.received.Add(uint64(len(b.Metrics)))
			d.buf = AppendBatch(d.buf[:0], b)
			if _, err := d.W.Write(d.buf); err != nil {
				d.errors.Inc()
				d.log.Warn("write failed", "error", err)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// AppendBatch appends every metric of b in the format of AppendMetric.
func AppendBatch(dst []byte, b *engine.Batch) []byte {
	for i := range b.Metrics {
		dst = AppendMetric(dst, b.Source, &b.Metrics[i])
	}
	return dst
}

// AppendMetric appends one metric as a block of lines:
//
//	system_cpu 2023-11-14T22:13:20.123Z (from linux)
//	  fields: idle=97.5 user=1.25
//	  tags:   cpu="cpu0" host="web1"
//
// The timestamp is RFC 3339 in UTC with milliseconds; it, the fields and
// the tags are "-" when the metric has none. Tag values are always quoted; the bucket, field names
// and tag keys are quoted only when they hold spaces, '=', '"' or
// unprintable characters, so every block reads unambiguously.
func AppendMetric(dst []byte, source string, m *engine.Metric) []byte {
	dst = appendName(dst, m.Bucket)
	dst = append(dst, ' ')
	if m.Timestamp == 0 {
		dst = append(dst, '-')
	} else {
		dst = time.UnixMilli(m.Timestamp).UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z07:00")
	}
	if source != "" {
		dst = append(dst, " (from "...)
		dst = appendName(dst, source)
		dst = append(dst, ')')
	}
	dst = append(dst, "\n  fields:"...)
	if len(m.Fields) == 0 {
		dst = append(dst, " -"...)
	}
	var fl *engine.Flattener
	for _, f := range m.Fields {
		dst = append(dst, ' ')
		dst = appendName(dst, f.Name)
		dst = append(dst, '=')
		switch f.Value.Kind {
		case engine.KindCounter:
			dst = append(dst, "counter:"...)
			dst = append(dst, f.Value.String()...)
		case engine.KindGaugeDelta:
			dst = append(dst, "gauge_delta:"...)
			dst = append(dst, f.Value.String()...)
		case engine.KindHistogram, engine.KindSummary:
			if fl == nil {
				fl = new(engine.Flattener)
			}
			dst = appendFlat(dst, fl, f)
		default:
			dst = append(dst, f.Value.String()...)
		}
	}
	dst = append(dst, "\n  tags:  "...)
	if len(m.Tags) == 0 {
		dst = append(dst, " -"...)
	}
	for _, t := range m.Tags {
		dst = append(dst, ' ')
		dst = appendName(dst, t.Key)
		dst = append(dst, '=')
		dst = strconv.AppendQuote(dst, t.Value)
	}
	return append(dst, '\n')
}

// appendFlat writes a typed histogram or summary as its kind and the flat
// fields the other destinations write, e.g.
// histogram{count=4 sum=1.75 le_0_5=2 le_inf=4}; a native histogram also
// gives its schema and populated bucket counts, which no flat field shows.
func appendFlat(dst []byte, fl *engine.Flattener, f engine.Field) []byte {
	kind := "histogram"
	if f.Value.Kind == engine.KindSummary {
		kind = "summary"
	}
	dst = append(dst, kind...)
	dst = append(dst, '{')
	// The flat names are prefixed with the field's name unless it is
	// "value"; here the field's name is already written.
	for i, ff := range fl.Flatten(engine.Field{Name: "value", Value: f.Value}) {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, ff.Name...)
		dst = append(dst, '=')
		dst = strconv.AppendFloat(dst, ff.Num, 'g', -1, 64)
	}
	if d := f.Value.Dist; d != nil && d.Native != nil {
		n := d.Native
		dst = append(dst, " native_schema="...)
		dst = strconv.AppendInt(dst, int64(n.Schema), 10)
		dst = append(dst, " zero_count="...)
		dst = strconv.AppendUint(dst, n.ZeroCount, 10)
		dst = append(dst, " positive_buckets="...)
		dst = strconv.AppendInt(dst, int64(len(n.Positive)), 10)
		dst = append(dst, " negative_buckets="...)
		dst = strconv.AppendInt(dst, int64(len(n.Negative)), 10)
	}
	return append(dst, '}')
}

// appendName appends s bare when that cannot be misread, quoted otherwise.
func appendName(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, `""`...)
	}
	for _, r := range s {
		if r == utf8.RuneError || r == '=' || r == '"' || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return strconv.AppendQuote(dst, s)
		}
	}
	return append(dst, s...)
}
