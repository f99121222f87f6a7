package udp

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"hash/adler32"
	"io"
	"slices"
)

// DefaultMaxInflated is the default bound of Inflater.MaxBytes
// (max_decompressed_bytes).
const DefaultMaxInflated = 1 << 20

// Inflate errors; the caller drops the datagram and counts it.
var (
	ErrTooLarge = errors.New("udp: decompressed datagram too large")
	ErrCorrupt  = errors.New("udp: corrupt compressed datagram")
)

// Inflater decompresses zlib and gzip datagrams into a reused buffer, never
// past MaxBytes. The zero value is ready to use. It must not be shared
// between goroutines: give each reader its own.
type Inflater struct {
	// MaxBytes bounds the decompressed size; 0 means DefaultMaxInflated.
	MaxBytes int

	src bytes.Reader
	fr  io.ReadCloser // deflate reader for zlib streams, once one was seen
	gr  *gzip.Reader
	buf []byte
}

// Inflate returns the decompressed content of packet, with compressed true,
// when packet starts with a zlib header (RFC 1950: CM 8, check bits valid)
// or the gzip magic 1f 8b 08. Any other packet is returned unchanged, with
// compressed false and no error. out aliases the Inflater's buffer: it is
// valid until the next call to Inflate.
//
// A stream that would inflate past MaxBytes returns ErrTooLarge after
// decompressing no more than that. A stream that fails to decompress returns
// ErrCorrupt — unless its two header bytes are printable ASCII: a StatsD
// line may well start with "x^", "hC" or "XG", which are also valid zlib
// headers, so such a packet is plain text when it does not inflate.
func (f *Inflater) Inflate(packet []byte) (out []byte, compressed bool, err error) {
	var r io.Reader
	switch {
	case len(packet) >= 3 && packet[0] == 0x1f && packet[1] == 0x8b && packet[2] == 8:
		f.src.Reset(packet)
		if f.gr == nil {
			f.gr, err = gzip.NewReader(&f.src)
		} else {
			err = f.gr.Reset(&f.src)
		}
		r = f.gr
	case isZlib(packet):
		// compress/zlib allocates a hash per stream; its framing is just
		// this header and an Adler-32 trailer, checked below.
		f.src.Reset(packet[2:])
		if f.fr == nil {
			f.fr = flate.NewReader(&f.src)
		} else {
			err = f.fr.(flate.Resetter).Reset(&f.src, nil)
		}
		if packet[1]&0x20 != 0 {
			err = ErrCorrupt // needs a preset dictionary, which no sender shares with us
		}
		r = f.fr
	default:
		return packet, false, nil
	}
	if err == nil {
		limit := f.MaxBytes
		if limit <= 0 {
			limit = DefaultMaxInflated
		}
		f.buf, err = readMax(r, f.buf[:0], limit)
	}
	if err == nil && packet[0] != 0x1f {
		// The deflate reader reads no further than its stream's end.
		trailer := packet[len(packet)-f.src.Len():]
		if len(trailer) < 4 || binary.BigEndian.Uint32(trailer) != adler32.Checksum(f.buf) {
			err = ErrCorrupt
		}
	}
	switch {
	case err == nil:
		return f.buf, true, nil
	case errors.Is(err, ErrTooLarge):
		return nil, true, ErrTooLarge
	case isPrintable(packet[0]) && isPrintable(packet[1]):
		return packet, false, nil
	default:
		return nil, true, ErrCorrupt
	}
}

// isZlib reports whether p starts with a zlib header: compression method 8
// (deflate), a window of at most 32 KiB, and CMF*256+FLG a multiple of 31.
func isZlib(p []byte) bool {
	return len(p) >= 2 && p[0]&0x0f == 8 && p[0]>>4 <= 7 && (uint(p[0])<<8|uint(p[1]))%31 == 0
}

func isPrintable(c byte) bool { return c >= 0x20 && c < 0x7f }

// readMax reads r to EOF into buf, growing it up to limit+1 bytes, and fails
// with ErrTooLarge as soon as more than limit bytes come out: a compression
// bomb costs no more than the bound.
func readMax(r io.Reader, buf []byte, limit int) ([]byte, error) {
	for {
		if len(buf) > limit {
			return buf[:0], ErrTooLarge
		}
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(max(len(buf), 4096), limit+1-len(buf)))
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), limit+1)])
		buf = buf[:len(buf)+n]
		switch {
		case err == io.EOF && len(buf) > limit:
			return buf[:0], ErrTooLarge
		case err == io.EOF:
			return buf, nil
		case err != nil:
			return buf[:0], err
		}
	}
}
