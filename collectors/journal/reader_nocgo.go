//go:build !cgo || !linux || !sdjournal

package journal

import "errors"

func newOpener() (opener, error) {
	return nil, errors.New("systemd_journal needs a build with -tags sdjournal (cgo and the libsystemd-dev headers)")
}
