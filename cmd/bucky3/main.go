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

	"github.com/coreos/go-systemd/v22/daemon"

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
	go notifySystemd(ctx)

	if err := agent.Run(ctx); err != nil {
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

// notifySystemd tells a Type=notify unit that the agent is up and, at
// shutdown, that it is stopping. Outside systemd it does nothing.
func notifySystemd(ctx context.Context) {
	if ok, _ := daemon.SdNotify(false, daemon.SdNotifyReady); !ok {
		return
	}
	<-ctx.Done()
	// Best effort: the agent stops either way.
	_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
}
