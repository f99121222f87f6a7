package engine_test

import (
	"bytes"
	"context"
	"math"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bucky3/bucky3/engine"
)

func tags(kv ...string) []engine.Tag {
	var out []engine.Tag
	for i := 0; i < len(kv); i += 2 {
		out = append(out, engine.Tag{Key: kv[i], Value: kv[i+1]})
	}
	return out
}

// emitThrough runs one source that emits ms through the pipeline of doc
// and returns what the destination received.
func emitThrough(t *testing.T, doc string, ms ...engine.Metric) []engine.Metric {
	t.Helper()
	got, _ := emitThroughLogs(t, doc, ms...)
	return got
}

// emitThroughLogs is emitThrough that also returns the agent's logs.
func emitThroughLogs(t *testing.T, doc string, ms ...engine.Metric) ([]engine.Metric, string) {
	t.Helper()
	rec := &recorder{}
	var logs *bytes.Buffer
	synctest.Test(t, func(t *testing.T) {
		var a *engine.Agent
		a, logs = agent(t, doc, func(ctx context.Context, out engine.Emitter) error {
			out.Emit(&engine.Batch{Metrics: ms})
			<-ctx.Done()
			return nil
		}, rec)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := a.Run(ctx); err != nil {
			t.Fatal(err)
		}
	})
	return rec.metrics(), logs.String()
}

func TestEmit_MetadataAndBucketTag(t *testing.T) {
	doc := `
[src]
module_type = "fsrc"
metadata = {env = "prod", host = "meta", bucket = "from_meta"}
[out]
module_type = "rec"
`
	got := emitThrough(t, doc,
		engine.Metric{Bucket: "a", Tags: tags("host", "own", "name", "x")},
		engine.Metric{Bucket: "b", Tags: tags("bucket", "mine")},
	)
	if len(got) != 2 {
		t.Fatalf("got %d metrics", len(got))
	}
	if got[0].Bucket != "from_meta" || !slices.Equal(got[0].Tags, tags("env", "prod", "host", "own", "name", "x")) {
		t.Fatalf("metric tags win over metadata, bucket tag moves to the bucket: %+v", got[0])
	}
	if got[1].Bucket != "mine" || !slices.Equal(got[1].Tags, tags("env", "prod", "host", "meta")) {
		t.Fatalf("the metric's own bucket tag wins: %+v", got[1])
	}
}

func TestEmit_BucketTagOff(t *testing.T) {
	doc := `
[src]
module_type = "fsrc"
bucket_tag = false
[out]
module_type = "rec"
`
	got := emitThrough(t, doc, engine.Metric{Bucket: "b", Tags: tags("bucket", "chosen_by_sender")})
	if len(got) != 1 || got[0].Bucket != "b" || !slices.Equal(got[0].Tags, tags("bucket", "chosen_by_sender")) {
		t.Fatalf("with bucket_tag = false a bucket tag is an ordinary tag: %+v", got)
	}
}

func TestEmit_Relabel(t *testing.T) {
	doc := `
[src]
module_type = "fsrc"
[[src.metric_postprocessor]]
source_labels = ["__name__"]
regex = "debug_.*"
action = "drop"
[[src.metric_postprocessor]]
source_labels = ["__name__", "name"]
separator = ":"
regex = "stats_(\\w+):(.*)"
target_label = "series"
replacement = "$$1/$$2"
[[src.metric_postprocessor]]
source_labels = ["name"]
regex = "rename_me"
target_label = "__name__"
replacement = "renamed"
[[src.metric_postprocessor]]
action = "labeldrop"
regex = "secret|tmp_.*"
[[src.metric_postprocessor]]
source_labels = ["env"]
regex = "prod|"
action = "keep"
[out]
module_type = "rec"
`
	got := emitThrough(t, doc,
		engine.Metric{Bucket: "debug_x", Tags: tags("name", "a")},
		engine.Metric{Bucket: "stats_counters", Tags: tags("name", "hits", "secret", "s", "tmp_1", "t")},
		engine.Metric{Bucket: "other", Tags: tags("name", "rename_me")},
		engine.Metric{Bucket: "other", Tags: tags("env", "dev")},
	)
	if len(got) != 2 {
		t.Fatalf("want drop of debug_x and of env=dev, got %+v", got)
	}
	if !slices.Equal(got[0].Tags, tags("name", "hits", "series", "counters/hits")) {
		t.Fatalf("replace + labeldrop: %+v", got[0].Tags)
	}
	if got[1].Bucket != "renamed" {
		t.Fatalf("replace into __name__: %+v", got[1])
	}
}

func TestEmit_DestinationModulesAndFullInbox(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fast, slow := &recorder{}, &recorder{delay: time.Hour}
		types := []engine.Type{
			engine.SourceType("fsrc", func() srcOptions { return srcOptions{SourceOptions: engine.DefaultSourceOptions()} },
				func(m engine.Module, o srcOptions) (funcSource, error) {
					return func(ctx context.Context, out engine.Emitter) error {
						for range engine.DefaultInboxSize + 10 {
							out.Emit(&engine.Batch{Metrics: []engine.Metric{counterMetric(1)}})
							// Let the fast destination drain: only the
							// slow one may fall behind.
							time.Sleep(time.Millisecond)
						}
						<-ctx.Done()
						return nil
					}, nil
				}),
			engine.DestinationType("rec", func() dstOptions { return dstOptions{DestinationOptions: engine.DefaultDestinationOptions()} },
				func(m engine.Module, o dstOptions) (*recorder, error) {
					if m.Name == "slow" {
						return slow, nil
					}
					return fast, nil
				}),
		}
		doc := `
self_report = true
self_report_interval = 100
[src]
module_type = "fsrc"
destination_modules = ["fast", "slow"]
[fast]
module_type = "rec"
[slow]
module_type = "rec"
[unused]
module_type = "rec"
`
		cfg, err := engine.Parse([]byte(doc), types, env(nil))
		if err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		a, err := engine.NewAgent(cfg, &syncWriter{w: &logs})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
		defer cancel()
		if err := a.Run(ctx); err == nil {
			t.Fatal("the slow destination must be abandoned at shutdown")
		}
		n := 0
		for _, m := range fast.metrics() {
			if m.Bucket == "c" {
				n++
			}
		}
		if n != engine.DefaultInboxSize+10 {
			t.Fatalf("a slow destination must not slow the fast one: got %d", n)
		}
		var produced float64
		for _, m := range fast.metrics() {
			if name, _ := m.Tag("name"); m.Bucket == engine.SelfReportBucket && name == "src" {
				v, _ := m.Field("metrics_produced")
				produced = v.Num
			}
		}
		// The last report, at shutdown, counts the metrics and the report
		// sent at 100 s.
		if produced != float64(engine.DefaultInboxSize+10+1) {
			t.Fatalf("source report: metrics_produced = %v", produced)
		}
		if !strings.Contains(logs.String(), "destination inbox full") || !strings.Contains(logs.String(), "module=slow") {
			t.Fatalf("the full inbox of the slow destination is not logged:\n%s", logs.String())
		}
	})
}

// Sources may carve the tags of several metrics out of one array; a
// relabel rule adding a tag to one must not touch the next.
func TestEmit_RelabelDoesNotClobberSharedTagArrays(t *testing.T) {
	doc := `
[src]
module_type = "fsrc"
[[src.metric_postprocessor]]
target_label = "added"
replacement = "x"
[out]
module_type = "rec"
`
	backing := tags("a", "1", "b", "2")
	got := emitThrough(t, doc,
		engine.Metric{Bucket: "first", Tags: backing[0:1]},
		engine.Metric{Bucket: "second", Tags: backing[1:2]},
	)
	if !slices.Equal(got[0].Tags, tags("a", "1", "added", "x")) || !slices.Equal(got[1].Tags, tags("added", "x", "b", "2")) {
		t.Fatalf("tags: %+v / %+v", got[0].Tags, got[1].Tags)
	}
}

func TestEmit_NonFiniteFieldsDroppedAndCounted(t *testing.T) {
	num := func(name string, v float64) engine.Field { return engine.Field{Name: name, Value: engine.Number(v)} }
	shared := []engine.Field{num("count", math.Inf(1)), num("lower", 1), num("mean", math.NaN())}
	ms := []engine.Metric{
		{Bucket: "t", Fields: shared},
		{Bucket: "u", Fields: shared[:1]}, // nothing left: not sent
		{Bucket: "v", Fields: []engine.Field{num("x", math.Inf(-1)), {Name: "s", Value: engine.String("ok")}}},
		{Bucket: "w", Fields: []engine.Field{num("x", math.MaxFloat64)}},
	}
	delivered, logs := emitThroughLogs(t, basic, ms...)
	var got []string
	for _, m := range delivered {
		for _, f := range m.Fields {
			got = append(got, m.Bucket+"."+f.Name)
		}
	}
	if want := []string{"t.lower", "v.s", "w.x"}; !slices.Equal(got, want) {
		t.Fatalf("delivered fields %v, want %v", got, want)
	}
	if !math.IsInf(shared[0].Value.Num, 1) || shared[1].Name != "lower" {
		t.Fatal("the source's field slice was modified")
	}
	if !strings.Contains(logs, "src.values_not_finite=4") {
		t.Fatalf("4 non-finite values not counted as a loss:\n%s", logs)
	}
}
