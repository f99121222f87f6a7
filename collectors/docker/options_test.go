package docker

import (
	"context"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bucky3/bucky3/engine"
	"github.com/bucky3/bucky3/engine/enginetest"
)

func TestOptions_Validate(t *testing.T) {
	o := DefaultOptions()
	if err := o.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	o.EnvMapping = map[string]string{"SERVICE_NAME": "service"}
	if err := o.Validate(); err != nil {
		t.Fatalf("env_mapping: %v", err)
	}
}

func TestOptions_Validate_Failure(t *testing.T) {
	f := func(option string, edit func(o *Options)) {
		t.Helper()
		o := DefaultOptions()
		edit(&o)
		err := o.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), option+":") {
			t.Fatalf("Validate() = %v, want an error naming %s", err, option)
		}
	}
	f("docker_socket", func(o *Options) { o.DockerSocket = "" })
	f("cgroup_path", func(o *Options) { o.CgroupPath = "" })
	f("proc_path", func(o *Options) { o.ProcPath = "" })
	f("socket_timeout", func(o *Options) { o.SocketTimeout = 0 })
	f("socket_timeout", func(o *Options) { o.SocketTimeout = math.Inf(1) })
	f("env_mapping", func(o *Options) { o.EnvMapping = map[string]string{"A": "9tag"} })
	f("env_mapping", func(o *Options) { o.EnvMapping = map[string]string{"A": "a.b"} })
	f("env_mapping", func(o *Options) { o.EnvMapping = map[string]string{"A": "docker_name"} })
	f("env_mapping", func(o *Options) { o.EnvMapping = map[string]string{"": "a"} })
}

// TestOptions_Config parses configurations the way the agent does: bad
// options are refused, naming the option, before New is ever called.
func TestOptions_Config(t *testing.T) {
	types := []engine.Type{engine.SourceType("docker_stats", DefaultOptions, New)}
	f := func(options, wantErr string) {
		t.Helper()
		doc := "[d]\nmodule_type = \"docker_stats\"\n" + options
		_, err := engine.Parse([]byte(doc), types, func(string) (string, bool) { return "", false })
		switch {
		case wantErr == "" && err != nil:
			t.Errorf("%s: unexpected error %v", options, err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr+":")):
			t.Errorf("%s: error %v, want one naming %s", options, err, wantErr)
		}
	}
	f("", "")
	f("env_mapping = {SERVICE_NAME = \"service\"}\n", "")
	f("flush_interval = 0\n", "flush_interval")
	f("docker_socket = \"\"\n", "docker_socket")
	f("cgroup_path = \"\"\n", "cgroup_path")
	f("proc_path = \"\"\n", "proc_path")
	f("socket_timeout = 0\n", "socket_timeout")
	f("socket_timeout = -1\n", "socket_timeout")
	f("env_mapping = {A = \"9tag\"}\n", "env_mapping")
	f("env_mapping = {A = \"docker_name\"}\n", "env_mapping")
	f("env_mapping = {\"\" = \"a\"}\n", "env_mapping")
}

// TestStartupDelay: the engine's SPEC §2.1 delay, as docker_stats options
// configure it.
func TestStartupDelay(t *testing.T) {
	f := func(randomize bool, interval float64, max time.Duration) {
		t.Helper()
		o := DefaultOptions()
		o.RandomizeStartup, o.FlushInterval = randomize, interval
		for range 100 {
			if d := o.StartupDelay(); d < 0 || d > max {
				t.Fatalf("StartupDelay(%v, %v) = %v, want 0…%v", randomize, interval, d, max)
			}
		}
	}
	f(false, 60, 0)
	f(true, 3, 0)
	f(true, 10, 9*time.Second)
	f(true, 60, 15*time.Second)
}

func TestDeadline(t *testing.T) {
	o := DefaultOptions()
	s := &Stats{opts: o}
	if d := s.deadline(); d != 5*time.Second {
		t.Fatalf("deadline = %v, want socket_timeout 5s", d)
	}
	s.opts.FlushInterval = 2
	if d := s.deadline(); d != 2*time.Second {
		t.Fatalf("deadline = %v, want flush_interval 2s", d)
	}
}

// TestRun_StartupDelay checks that with randomize_startup the first
// collection waits for the delay of SPEC §2.1 and the next ones follow
// every flush_interval. The daemon is absent, so each collection shows up
// as a flush error.
func TestRun_StartupDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := DefaultOptions()
		o.ProcPath = "testdata/proc"
		o.DockerSocket = filepath.Join(t.TempDir(), "absent.sock")
		o.FlushInterval = 10
		core := engine.NewStats()
		s, err := New(engine.Module{Name: "d", Stats: core, Log: slog.New(slog.DiscardHandler)}, o)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- s.Run(ctx, &enginetest.Recorder{}) }()
		start := time.Now()
		synctest.Wait()
		if n := core.FlushErrors.Load(); n != 0 {
			t.Fatalf("collected %d times before the startup delay", n)
		}
		// The delay is at most min(10-1, 15) s.
		time.Sleep(9*time.Second + time.Nanosecond)
		synctest.Wait()
		if n := core.FlushErrors.Load(); n != 1 {
			t.Fatalf("%d collections within 9 s, want 1", n)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if n := core.FlushErrors.Load(); n != 2 {
			t.Fatalf("%d collections %v after the start, want 2", n, time.Since(start))
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v, want nil on cancellation", err)
		}
	})
}
