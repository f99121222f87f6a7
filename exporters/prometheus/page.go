package prometheus

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash/crc32"
	"sync"
)

// page is one rendering of the store, shared by every scrape until the
// store changes: a scrape of an unchanged store costs a write of these
// bytes, not a render, however many clients scrape at once.
type page struct {
	version uint64
	text    []byte

	gzOnce sync.Once
	gz     gzipHead
}

// gzipHead is the start of a gzip member holding a page: the header and
// the page's deflate blocks, ending on a byte boundary (a sync flush) so
// that more blocks can follow. finish appends the rest of the response
// (the agent's own metrics, which change on every scrape) and the trailer,
// making one ordinary gzip member without compressing the page again.
type gzipHead struct {
	bytes []byte
	crc   uint32 // CRC-32 of the uncompressed bytes so far
	size  uint32 // their length, modulo 2^32 as gzip's ISIZE is
}

// gzipHeader is a gzip member header: deflate, no flags, no mtime, OS
// unknown (RFC 1952, section 2.3).
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255}

// flaters recycles deflate compressors, which hold about a megabyte of
// state each.
var flaters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.BestSpeed) // BestSpeed is a valid level
	return w
}}

// compress returns the gzip head of text.
func compress(text []byte) gzipHead {
	var buf bytes.Buffer
	buf.Grow(len(gzipHeader) + len(text)/4)
	buf.Write(gzipHeader)
	fw := flaters.Get().(*flate.Writer)
	fw.Reset(&buf)
	_, _ = fw.Write(text) // a bytes.Buffer does not fail
	_ = fw.Flush()
	flaters.Put(fw)
	return gzipHead{bytes: buf.Bytes(), crc: crc32.ChecksumIEEE(text), size: uint32(len(text))}
}

// appendFinish appends to dst what follows h to end the member with rest
// after the page: rest's deflate blocks, the last one final, then the
// CRC-32 and size of the whole text.
func (h *gzipHead) appendFinish(dst, rest []byte) []byte {
	buf := bytes.NewBuffer(dst)
	fw := flaters.Get().(*flate.Writer)
	fw.Reset(buf)
	_, _ = fw.Write(rest)
	_ = fw.Close()
	flaters.Put(fw)
	dst = buf.Bytes()
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Update(h.crc, crc32.IEEETable, rest))
	return binary.LittleEndian.AppendUint32(dst, h.size+uint32(len(rest)))
}
