package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// health is what the notifier reads of the agent (engine.Agent).
type health interface {
	Ready() <-chan struct{}
	Stuck() []string
	Totals() (lines, series, dropped uint64)
}

// notifier speaks sd_notify for a Type=notify unit: READY=1 once every
// module can serve, STATUS= every statusEvery, WATCHDOG=1 at half the
// unit's WatchdogSec while no loop of the agent is stuck, then STOPPING=1
// with EXTEND_TIMEOUT_USEC covering the final flush and push. Outside
// systemd (no NOTIFY_SOCKET) it does nothing.
type notifier struct {
	agent       health
	stderr      io.Writer
	statusEvery time.Duration
	stopTimeout time.Duration // the shutdown deadline, plus a margin
	notify      func(state string) (bool, error)
	watchdog    func() (time.Duration, error)
}

func newNotifier(agent health, stderr io.Writer, statusEvery, shutdownTimeout time.Duration) *notifier {
	return &notifier{
		agent:       agent,
		stderr:      stderr,
		statusEvery: statusEvery,
		stopTimeout: shutdownTimeout + 5*time.Second,
		notify:      func(state string) (bool, error) { return daemon.SdNotify(false, state) },
		watchdog:    func() (time.Duration, error) { return daemon.SdWatchdogEnabled(false) },
	}
}

// run notifies until done is closed (the agent's Run returned); ctx is the
// agent's: its end starts the shutdown.
func (n *notifier) run(ctx context.Context, done <-chan struct{}) {
	if ok, err := n.notify("STATUS=starting"); !ok {
		if err != nil {
			fmt.Fprintf(n.stderr, "bucky3: sd_notify: %v\n", err)
		}
		return
	}
	var ping <-chan time.Time
	if every, err := n.watchdog(); err != nil {
		fmt.Fprintf(n.stderr, "bucky3: watchdog: %v\n", err)
	} else if every > 0 {
		t := time.NewTicker(every / 2)
		defer t.Stop()
		ping = t.C
	}
	status := time.NewTicker(n.statusEvery)
	defer status.Stop()

	ready := n.agent.Ready()
	var lastLines uint64
	lastAt := time.Now()
	wasStuck := ""
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			n.send(fmt.Sprintf("STOPPING=1\nSTATUS=stopping: final flush and push\nEXTEND_TIMEOUT_USEC=%d", n.stopTimeout.Microseconds()))
			ctx = context.Background() // once
		case <-ready:
			ready = nil
			lastLines, _, _ = n.agent.Totals()
			lastAt = time.Now()
			n.send("READY=1\nSTATUS=ready")
		case now := <-status.C:
			if ready != nil {
				continue
			}
			lines, series, dropped := n.agent.Totals()
			rate := float64(lines-lastLines) / now.Sub(lastAt).Seconds()
			lastLines, lastAt = lines, now
			n.send(fmt.Sprintf("STATUS=%.0f lines/s, %d series, %d dropped since start", rate, series, dropped))
		case <-ping:
			stuck := strings.Join(n.agent.Stuck(), ", ")
			if stuck == "" {
				n.send("WATCHDOG=1")
			} else if stuck != wasStuck {
				fmt.Fprintf(n.stderr, "bucky3: watchdog: not pinging systemd, stuck: %s\n", stuck)
			}
			wasStuck = stuck
		}
	}
}

func (n *notifier) send(state string) {
	if _, err := n.notify(state); err != nil {
		fmt.Fprintf(n.stderr, "bucky3: sd_notify: %v\n", err)
	}
}
