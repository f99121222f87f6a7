package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bucky3/bucky3/engine"
)

// Test-only module types: a source that emits what it is told and a
// destination that records what it receives.
type srcOptions struct {
	engine.SourceOptions
	Values    []float64 `toml:"values"`
	Threshold float64   `toml:"threshold"`
}

func (o *srcOptions) Validate() error {
	if o.Threshold < 0 {
		return errors.New("threshold: must not be negative")
	}
	return nil
}

type dstOptions struct {
	engine.DestinationOptions
	Address string `toml:"address"`
}

func (o *dstOptions) Validate() error { return nil }

type nopSource struct{ o srcOptions }

func (s *nopSource) Run(ctx context.Context, out engine.Emitter) error {
	<-ctx.Done()
	return nil
}

type nopDest struct{ o dstOptions }

func (d *nopDest) Run(ctx context.Context, in <-chan *engine.Batch) error {
	for range in {
	}
	return nil
}

var testTypes = []engine.Type{
	engine.SourceType("test_source", func() srcOptions { return srcOptions{SourceOptions: engine.DefaultSourceOptions()} },
		func(m engine.Module, o srcOptions) (*nopSource, error) { return &nopSource{o}, nil }),
	engine.DestinationType("test_dest", func() dstOptions { return dstOptions{DestinationOptions: engine.DefaultDestinationOptions()} },
		func(m engine.Module, o dstOptions) (*nopDest, error) { return &nopDest{o}, nil }),
}

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func TestParse_Success(t *testing.T) {
	doc := `
log_level = "warning"
flush_interval = 7
threshold = 3
metadata = {env = "${ENV}", dc = "$DC"}

[mysrc]
module_type = "test_source"
values = [1, 2.5]
destination_modules = ["out"]

[other]
module_type = "test_source"
flush_interval = 2
log_level = "debug"
metadata = {price = "5$$"}

[out]
module_type = "test_dest"
address = "127.0.0.1:1"

[off]
module_type = "test_dest"
module_inactive = true
`
	cfg, err := engine.Parse([]byte(doc), testTypes, env(map[string]string{"ENV": "prod", "DC": "eu1"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Global.LogLevel != "warning" || cfg.Global.ShutdownTimeout != 5 {
		t.Fatalf("globals: %+v", cfg.Global)
	}
	var names []string
	for _, m := range cfg.Modules {
		names = append(names, m.Name)
	}
	if got := strings.Join(names, ","); got != "mysrc,other,out" {
		t.Fatalf("modules in file order without inactive ones: got %s", got)
	}
	src, other, out := cfg.Modules[0], cfg.Modules[1], cfg.Modules[2]
	if src.Common.FlushInterval != 7 || other.Common.FlushInterval != 2 {
		t.Fatalf("flush_interval inherited 7 / overridden 2, got %v / %v", src.Common.FlushInterval, other.Common.FlushInterval)
	}
	if src.Common.LogLevel != "warning" || other.Common.LogLevel != "debug" {
		t.Fatalf("log levels: %q %q", src.Common.LogLevel, other.Common.LogLevel)
	}
	if src.Source.Metadata["env"] != "prod" || src.Source.Metadata["dc"] != "eu1" {
		t.Fatalf("metadata interpolated and inherited: %v", src.Source.Metadata)
	}
	if other.Source.Metadata["price"] != "5$" || len(other.Source.Metadata) != 1 {
		t.Fatalf("module metadata replaces the global one, $$ is a literal $: %v", other.Source.Metadata)
	}
	if out.Source != nil || out.Common.FlushInterval != 7 {
		t.Fatalf("destination: %+v", out.Common)
	}
	if !src.Source.RandomizeStartup {
		t.Fatal("randomize_startup defaults to true")
	}
}

// A variable's value can never add keys or tables: it stays one string.
func TestParse_EnvValueCannotInject(t *testing.T) {
	injected := "x\"\n[evil]\nmodule_type = \"test_dest\"\n#"
	doc := "[a]\nmodule_type = \"test_source\"\nmetadata = {env = \"${INJECT}\"}\n# a comment's ${UNSET} is not expanded\n"
	cfg, err := engine.Parse([]byte(doc), testTypes, env(map[string]string{"INJECT": injected}))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Modules) != 1 || cfg.Modules[0].Source.Metadata["env"] != injected {
		t.Fatalf("the value was not kept as one string: %d modules, metadata %q", len(cfg.Modules), cfg.Modules[0].Source.Metadata)
	}
}

// Fractions of a second are kept as they are.
func TestParse_FractionalSeconds(t *testing.T) {
	cfg, err := engine.Parse([]byte("shutdown_timeout = 0.5\n[a]\nmodule_type = \"test_source\"\nflush_interval = 0.25\n"), testTypes, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Global.ShutdownTimeout != 0.5 || cfg.Modules[0].Common.FlushInterval != 0.25 || engine.Seconds(0.25) != 250*time.Millisecond {
		t.Fatalf("fractions lost: shutdown_timeout %v, flush_interval %v", cfg.Global.ShutdownTimeout, cfg.Modules[0].Common.FlushInterval)
	}
}

func TestParse_Failure(t *testing.T) {
	f := func(doc string, want ...string) {
		t.Helper()
		_, err := engine.Parse([]byte(doc), testTypes, env(map[string]string{"SET": "x"}))
		if err == nil {
			t.Fatalf("no error for %q", doc)
		}
		var ce *engine.ConfigError
		if !errors.As(err, &ce) {
			t.Fatalf("error %v is not a ConfigError", err)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("error %q does not mention %q", err, w)
			}
		}
		if strings.Contains(err.Error(), "\n") {
			t.Fatalf("error %q spans several lines", err)
		}
	}
	f(`[a]
module_type = "test_source"
flsh_interval = 3`, `"a"`, `"flsh_interval"`, "unknown option")
	f(`[a]
module_type = "nope"`, `"a"`, `"module_type"`, `"nope"`)
	f(`[a]
module_type = "test_source"
flush_interval = "ten"`, `"a"`, "flush_interval")
	f(`[a]
module_type = "test_source"
flush_interval = 0`, `"a"`, "flush_interval")
	f(`[a]
module_type = "test_source"
threshold = -1`, `"a"`, "threshold")
	f(`[a]
module_type = "test_source"
destination_modules = ["b"]`, `"a"`, "destination_modules", `"b"`)
	f(`[a]
module_type = "test_source"
destination_modules = ["b"]
[b]
module_type = "test_dest"
module_inactive = true`, "destination_modules", `"b"`)
	f(`unknown_global = 1
[a]
module_type = "test_source"`, `"unknown_global"`)
	f(`log_level = "loud"
[a]
module_type = "test_source"`, "log_level", "loud")
	f(`memory_limit = 1000
[a]
module_type = "test_source"`, "memory_limit", "64 MiB", "1000")
	f(`memory_limit = "1G"
[a]
module_type = "test_source"`, "memory_limit")
	f(`x = "${UNSET_VAR}"`, "UNSET_VAR")
	f(`x = "$UNSET_VAR"`, "UNSET_VAR")
	// Variables are substituted into string values only.
	f("[a]\nmodule_type = \"test_source\"\nflush_interval = ${SET}", "${SET}", "not inside a string")
	f("[a]\nmodule_type = \"test_source\"\nflush_interval = $SET # \"$X\"", "$SET", "not inside a string")
	f("[a]\nmodule_type = \"test_source\"\nmetadata = {a = \"${UNSET}\"}", `"a.metadata.a"`, "UNSET is not set")
	f("[a]\nmodule_type = \"test_source\"\nflush_interval = 0.0001", `"a"`, "flush_interval", "0.001")
	f("[a]\nmodule_type = \"test_source\"\nself_report_interval = 1e-10", `"a"`, "self_report_interval")
	f("shutdown_timeout = 0.0005\n[a]\nmodule_type = \"test_source\"", "shutdown_timeout", "0.001")
	f(`[a]
module_type = "test_source"
log_level = "chatty"`, `"a"`, "log_level")
	f(`[a]
module_type = "test_source"
[[a.metric_postprocessor]]
action = "explode"`, `"a"`, "metric_postprocessor", "explode")
	f(`[a]
module_type = "test_source"
[[a.metric_postprocessor]]
regex = "("
action = "keep"`, `"a"`, "metric_postprocessor", "regex")
	f(`[a]
module_type = "test_source"
module_inactive = true`, "no active module")
	f(`[a`, "config")
}
