package enginetest

import (
	"testing"
	"time"

	"github.com/bucky3/bucky3/engine"
)

// RunDestination runs d until the test ends. It returns d's inbox and a
// stop function that closes the inbox and returns what Run returned,
// failing the test if Run takes longer than timeout to finish its final
// push.
func RunDestination(t testing.TB, d engine.Destination, timeout time.Duration) (chan<- *engine.Batch, func() error) {
	t.Helper()
	in := make(chan *engine.Batch, 16)
	done := make(chan error, 1)
	go func() { done <- d.Run(t.Context(), in) }()
	return in, func() error {
		close(in)
		select {
		case err := <-done:
			return err
		case <-time.After(timeout):
			t.Fatal("Run did not return after its inbox was closed")
			return nil
		}
	}
}
