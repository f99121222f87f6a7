// Command bucky3 is a host monitoring agent and StatsD server: sources
// (StatsD, JSON over UDP, /proc, Docker, the journal) produce metrics with
// metadata, destinations (Prometheus, InfluxDB, Elasticsearch, Graphite,
// debug) ship them.
//
// Usage: bucky3 [config.toml]. Without an argument the built-in default
// configuration runs. Exit codes: 0 after a clean shutdown on SIGTERM or
// SIGINT, 1 when a module keeps failing or misses the shutdown deadline, 2
// for a bad command line or configuration.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/bucky3/bucky3/engine"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	if len(args) > 1 || len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprintln(stderr, "usage: bucky3 [config.toml]")
		return 2
	}
	cfg, err := loadConfig(args)
	if err != nil {
		fmt.Fprintf(stderr, "bucky3: %v\n", err)
		return 2
	}
	agent, err := engine.NewAgent(cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "bucky3: %v\n", err)
		return 2
	}
	// No live reload, by design: a configuration change is a restart.
	signal.Ignore(syscall.SIGHUP)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	done := make(chan struct{})
	notified := make(chan struct{})
	n := newNotifier(agent, stderr, statusInterval(cfg), engine.Seconds(cfg.Global.ShutdownTimeout))
	go func() {
		defer close(notified)
		n.run(ctx, done)
	}()
	err = agent.Run(ctx)
	close(done)
	<-notified
	if err != nil {
		fmt.Fprintf(stderr, "bucky3: %v\n", err)
		return 1
	}
	return 0
}

func loadConfig(args []string) (*engine.Config, error) {
	if len(args) == 0 {
		return engine.Parse([]byte(defaultConfig), moduleTypes, os.LookupEnv)
	}
	return engine.LoadFile(args[0], moduleTypes, os.LookupEnv)
}

// statusInterval is how often systemd's STATUS= is refreshed: the
// shortest flush interval of the agent's modules.
func statusInterval(cfg *engine.Config) time.Duration {
	every := 10 * time.Second
	for _, m := range cfg.Modules {
		every = min(every, engine.Seconds(m.Common.FlushInterval))
	}
	return max(every, time.Second)
}
