package push

import (
	"errors"
	"syscall"

	"github.com/bucky3/bucky3/engine"
)

// Reasons under which Run counts the metrics that a permanent failure
// isolated, as metrics_dropped_<reason>.
const (
	// ReasonUnsendable: the network refused the message for good (EMSGSIZE).
	ReasonUnsendable = "unsendable"
	// ReasonRejected: the backend refused the content (HTTP 400, 413, a
	// per-item 4xx other than 429).
	ReasonRejected = "rejected"
)

// permanentError marks a push failure that no retry of the same metrics can
// fix; Run isolates the metrics that cause it instead of backing off.
type permanentError struct {
	reason string
	err    error
}

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err, returned by a Pusher, as a failure that retrying the
// same metrics would repeat: Run then bisects the chunk until the metrics
// that fail are alone, drops exactly those and delivers the rest in the same
// flush. The reason is ReasonUnsendable when err is EMSGSIZE, otherwise
// ReasonRejected. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	reason := ReasonRejected
	if errors.Is(err, syscall.EMSGSIZE) {
		reason = ReasonUnsendable
	}
	return &permanentError{reason: reason, err: err}
}

// PermanentReason is Permanent with the reason given: the dropped metrics
// are counted as metrics_dropped_<reason>, which must be a snake_case word.
func PermanentReason(reason string, err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{reason: reason, err: err}
}

// IsPermanent reports whether err (or an error it wraps) was marked by
// Permanent or PermanentReason, and with which reason.
func IsPermanent(err error) (reason string, ok bool) {
	var p *permanentError
	if errors.As(err, &p) {
		return p.reason, true
	}
	return "", false
}

// Partition reorders chunk in place so that the metrics whose done[i] is
// true come first, each group keeping its order, and returns how many are
// done. A Pusher whose backend answers per metric (Elasticsearch _bulk
// items) uses it to return the done ones as a prefix, as Push requires, so
// that only the others are retried. scratch is reused between calls and
// returned; it holds no metric on return.
func Partition(chunk []engine.Metric, done []bool, scratch []engine.Metric) (n int, _ []engine.Metric) {
	scratch = scratch[:0]
	for i := range chunk {
		if done[i] {
			chunk[n] = chunk[i]
			n++
		} else {
			scratch = append(scratch, chunk[i])
		}
	}
	copy(chunk[n:], scratch)
	clear(scratch)
	return n, scratch[:0]
}
