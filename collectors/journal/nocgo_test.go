//go:build !cgo || !linux || !sdjournal

package journal

import (
	"strings"
	"testing"

	"github.com/bucky3/bucky3/engine"
)

func TestNew_NoCgo(t *testing.T) {
	_, err := New(engine.Module{Name: "journal", Stats: engine.NewStats()}, DefaultOptions())
	if err == nil || !strings.Contains(err.Error(), "systemd_journal needs a build with -tags sdjournal") {
		t.Fatalf("got %v, want the cgo error", err)
	}
}
