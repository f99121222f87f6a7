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
	for _, f := range m.Fields {
		dst = append(dst, ' ')
		dst = appendName(dst, f.Name)
		dst = append(dst, '=')
		dst = append(dst, f.Value.String()...)
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
