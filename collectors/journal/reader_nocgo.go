//go:build !cgo || !linux

package journal

import "errors"

func newOpener() (opener, error) {
	return nil, errors.New("systemd_journal needs a cgo build on Linux (libsystemd is read through cgo)")
}
