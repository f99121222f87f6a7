package statsd

import (
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/bucky3/bucky3/aggregate"
	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/parse"
)

// TestTableOptions checks that only a table with one reader gets a single
// stripe: with more, the stripes keep readers from waiting on each other.
func TestTableOptions(t *testing.T) {
	for _, c := range []struct{ readers, stripes int }{{1, 1}, {2, DefaultOptions().Stripes}, {8, DefaultOptions().Stripes}} {
		o := DefaultOptions()
		o.Readers = c.readers
		if got := tableOptions(o).Stripes; got != c.stripes {
			t.Errorf("%d readers: %d stripes, want %d", c.readers, got, c.stripes)
		}
	}
}

// tight is a memory budget that is always tight.
type tight struct{ on bool }

func (t *tight) Tight() bool { return t.on }

// The table's own counts reach the self report, as deltas: series refused
// for max_series or memory, timers past max_timer_samples and sets past
// max_set_size.
func TestPublishTableCounts(t *testing.T) {
	o := DefaultOptions()
	o.Readers, o.MaxSeries, o.MaxTimerSamples, o.MaxSetSize = 1, 4, 2, 2
	stats := engine.NewStats()
	srv, err := New(engine.Module{Name: "t", Log: slog.New(slog.DiscardHandler), Stats: stats}, o)
	if err != nil {
		t.Fatal(err)
	}
	budget := &tight{}
	to := tableOptions(srv.o)
	to.Memory = budget
	table, err := aggregate.New(to)
	if err != nil {
		t.Fatal(err)
	}
	handle := (&readerSet{server: srv, table: table}).handler(0)
	handle([]byte("t:1:2:3|ms\nu:1|s\nu:2|s\nu:3|s"))
	budget.on = true
	handle([]byte("t:4|ms\nnew_a:1|c\nnew_b:1|c"))
	budget.on = false
	handle([]byte("c:1|c\nd:1|c\ne:1|c"))
	var last tableCounts
	last.publish(table, &srv.counters)
	last.publish(table, &srv.counters) // nothing new: no double count
	for name, want := range map[string]uint64{
		"metrics_dropped_memory_limit": 2, "metrics_dropped_max_series": 1, "metrics_dropped": 3,
		"timer_samples_sampled": 1, "set_members_estimated": 1,
	} {
		if got := stats.Counter(name).Load(); got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
}

// The options of issue #19 through the real configuration path (TOML
// decoding, registry, Validate): valid combinations resolve, bad ones fail
// naming the module and the option.
func TestOptions_NameRuleTagsLayoutMapping(t *testing.T) {
	types := []engine.Type{engine.SourceType("statsd_server", DefaultOptions, New)}
	load := func(options string) (*Options, error) {
		t.Helper()
		if _, err := engine.Parse([]byte("[s]\nmodule_type = \"statsd_server\"\n"+options+"\n"), types, func(string) (string, bool) { return "", false }); err != nil {
			return nil, err
		}
		// What the registry decoded, for the checks of the values.
		o := DefaultOptions()
		if _, err := toml.Decode(options, &o); err != nil {
			t.Fatal(err)
		}
		if err := o.Validate(); err != nil {
			t.Fatalf("%q: the registry accepted what Validate rejects: %v", options, err)
		}
		return &o, nil
	}
	ok := func(options string, rule parse.NameRule) *Options {
		t.Helper()
		o, err := load(options)
		if err != nil {
			t.Fatalf("%q: %v", options, err)
		}
		if got, _ := o.nameRule(); got != rule {
			t.Fatalf("%q: rule %s, want %s", options, got, rule)
		}
		return o
	}
	bad := func(options, option string) {
		t.Helper()
		_, err := load(options)
		if err == nil || !strings.Contains(err.Error(), `"s"`) || !strings.Contains(err.Error(), option) {
			t.Fatalf("%q: error %v, want one naming the module and %s", options, err, option)
		}
	}
	ok("", parse.RuleStatsD)
	ok(`name_rule = "statsd"`, parse.RuleStatsD)
	ok(`name_rule = "bucky3"`, parse.RuleBucky3)
	ok(`name_rule = "sanitize"`, parse.RuleSanitize)
	ok(`sanitize_names = true`, parse.RuleSanitize)
	ok(`sanitize_names = false`, parse.RuleStatsD)
	ok("sanitize_names = true\nname_rule = \"sanitize\"", parse.RuleSanitize)
	ok("sanitize_names = false\nname_rule = \"bucky3\"", parse.RuleBucky3)
	bad(`name_rule = "strict"`, "name_rule")
	bad("sanitize_names = true\nname_rule = \"statsd\"", "sanitize_names")
	bad("sanitize_names = true\nname_rule = \"bucky3\"", "sanitize_names")
	bad("sanitize_names = false\nname_rule = \"sanitize\"", "sanitize_names")

	ok(`tag_allowlist = ["env", "k.x-y"]`, parse.RuleStatsD)
	ok(`tag_denylist = ["host", "container_id", "bucket"]`, parse.RuleStatsD)
	bad(`tag_allowlist = ["env", ""]`, "tag_allowlist")
	bad(`tag_denylist = ["a=b"]`, "tag_denylist")
	bad(`tag_denylist = ["timestamp"]`, "tag_denylist")
	bad("name_rule = \"bucky3\"\ntag_denylist = [\"k.x\"]", "tag_denylist")
	bad("tag_allowlist = [\"a\"]\ntag_denylist = [\"b\"]", "tag_allowlist")

	if o := ok(`layout = "typed"`, parse.RuleStatsD); !tableOptions(*o).Typed {
		t.Fatal("layout = typed: the table is not typed")
	}
	if o := ok("", parse.RuleStatsD); tableOptions(*o).Typed || o.Layout != "bucky3" {
		t.Fatal("default layout: typed")
	}
	bad(`layout = "prometheus"`, "layout")

	if o := ok(`mapping_config = "testdata/mapping_50.yml"`, parse.RuleStatsD); o.mapper == nil || len(o.mapper.Rules()) != 50 {
		t.Fatal("mapping_config: not loaded")
	}
	bad(`mapping_config = "testdata/missing.yml"`, "mapping_config")
	dir := t.TempDir()
	yml := dir + "/bad.yml"
	if err := os.WriteFile(yml, []byte("mappings:\n- match: \"a.*\"\n  name: \"1bad name\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad(`mapping_config = "`+yml+`"`, "mapping_config")
}
