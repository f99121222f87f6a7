package udp

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"hash/adler32"
	"hash/crc32"
	"runtime"
	"testing"
)

func zlibBytes(t testing.TB, level int, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := zlib.NewWriterLevel(&b, level)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(p); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return b.Bytes()
}

func gzipBytes(t testing.TB, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write(p); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return b.Bytes()
}

func TestInflate_Success(t *testing.T) {
	var inf Inflater
	f := func(packet []byte, want string, wantCompressed bool) {
		t.Helper()
		for range 2 { // the second call reuses the readers and the buffer
			out, compressed, err := inf.Inflate(packet)
			if err != nil {
				t.Fatalf("Inflate(%q): %v", packet, err)
			}
			if string(out) != want || compressed != wantCompressed {
				t.Fatalf("Inflate(%q) = %q, %v; want %q, %v", packet, out, compressed, want, wantCompressed)
			}
		}
	}
	lines := []byte("a:1|c\nb:2|g|#x:y\n")
	f(zlibBytes(t, zlib.DefaultCompression, lines), string(lines), true)
	f(zlibBytes(t, zlib.BestSpeed, lines), string(lines), true)
	f(zlibBytes(t, zlib.NoCompression, lines), string(lines), true)
	f(gzipBytes(t, lines), string(lines), true)
	f(gzipBytes(t, nil), "", true)
	f(zlibBytes(t, zlib.DefaultCompression, nil), "", true)
	f(append(gzipBytes(t, []byte("a:1|c\n")), gzipBytes(t, []byte("b:1|c"))...), "a:1|c\nb:1|c", true)
	f(zlibBytes(t, zlib.DefaultCompression, bytes.Repeat([]byte{'z'}, DefaultMaxInflated)), string(bytes.Repeat([]byte{'z'}, DefaultMaxInflated)), true)

	// Plain text, including text starting with 'x' (0x78, the usual zlib CMF).
	f([]byte("x:1|c"), "x:1|c", false)
	f([]byte("x.y:1|c"), "x.y:1|c", false)
	f([]byte(`{"a":1}`), `{"a":1}`, false)
	f([]byte("x"), "x", false)
	f([]byte{0x1f, 0x8b}, "\x1f\x8b", false)
	f(nil, "", false)
	// Valid zlib headers made of printable text that do not inflate.
	f([]byte("x^foo:1|c"), "x^foo:1|c", false)
	f([]byte("hCount:1|c"), "hCount:1|c", false)
	f([]byte("XGame:1|c"), "XGame:1|c", false)
}

func TestInflate_Failure(t *testing.T) {
	inf := Inflater{MaxBytes: 100}
	f := func(packet []byte, want error) {
		t.Helper()
		for range 2 {
			out, compressed, err := inf.Inflate(packet)
			if !errors.Is(err, want) || !compressed || out != nil {
				t.Fatalf("Inflate(%x) = %q, %v, %v; want nil, true, %v", packet, out, compressed, err, want)
			}
		}
	}
	z := zlibBytes(t, zlib.DefaultCompression, []byte("a:1|c\nb:2|c\n"))
	g := gzipBytes(t, []byte("a:1|c\nb:2|c\n"))
	f(z[:len(z)-1], ErrCorrupt)                                 // truncated checksum
	f(append(z[:len(z)-1:len(z)-1], z[len(z)-1]^1), ErrCorrupt) // bad checksum
	f(z[:2], ErrCorrupt)                                        // header only
	f([]byte{0x78, 0x9c, 0xff, 0xff, 0xff}, ErrCorrupt)
	f(g[:len(g)-4], ErrCorrupt)
	f(append(g[:len(g)-5:len(g)-5], g[len(g)-5]^1, 0, 0, 0, 0), ErrCorrupt)
	f([]byte{0x1f, 0x8b, 8}, ErrCorrupt)
	f(append([]byte{0x78, 0xbb}, z[2:]...), ErrCorrupt) // FDICT: wants a preset dictionary
	f(append(gzipBytes(t, []byte("a:1|c")), "junk"...), ErrCorrupt)
	// One byte over the bound, in either format.
	f(zlibBytes(t, zlib.DefaultCompression, bytes.Repeat([]byte{'a'}, 101)), ErrTooLarge)
	f(gzipBytes(t, bytes.Repeat([]byte{'a'}, 101)), ErrTooLarge)

	// Exactly at the bound is fine, and the Inflater is still usable.
	out, _, err := inf.Inflate(zlibBytes(t, zlib.DefaultCompression, bytes.Repeat([]byte{'a'}, 100)))
	if err != nil || len(out) != 100 {
		t.Fatalf("at the bound: %d bytes, %v", len(out), err)
	}
}

// bomb returns a zlib or gzip stream of mib MiB of zeros. It repeats one
// flushed deflate segment (back-references into a window of zeros, so
// position independent) instead of compressing mib MiB: cheap to build.
func bomb(t *testing.T, gz bool, mib int) []byte {
	t.Helper()
	var seg bytes.Buffer
	w, err := flate.NewWriter(&seg, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	if _, err := w.Write(zeros); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	first := bytes.Clone(seg.Bytes())
	seg.Reset()
	if _, err := w.Write(zeros); err != nil {
		t.Fatal(err)
	}
	w.Flush()

	var out []byte
	if gz {
		out = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}
	} else {
		out = []byte{0x78, 0xda}
	}
	out = append(out, first...)
	for range mib - 1 {
		out = append(out, seg.Bytes()...)
	}
	out = append(out, 0x03, 0x00) // final fixed-Huffman block holding only end-of-block
	if gz {
		c := crc32.NewIEEE()
		for range mib {
			c.Write(zeros)
		}
		out = binary.LittleEndian.AppendUint32(out, c.Sum32())
		return binary.LittleEndian.AppendUint32(out, uint32(mib<<20))
	}
	a := adler32.New()
	for range mib {
		a.Write(zeros)
	}
	return binary.BigEndian.AppendUint32(out, a.Sum32())
}

func TestInflate_Bomb(t *testing.T) {
	// The construction is sound: small bombs inflate, checksums included.
	for _, gz := range []bool{false, true} {
		inf := Inflater{MaxBytes: 3 << 20}
		out, _, err := inf.Inflate(bomb(t, gz, 3))
		if err != nil || len(out) != 3<<20 || bytes.IndexByte(out, 0) != 0 || bytes.Count(out, []byte{0}) != len(out) {
			t.Fatalf("gzip %v: 3 MiB bomb inflated to %d bytes, %v", gz, len(out), err)
		}
	}
	var inf Inflater
	for _, gz := range []bool{false, true} {
		p := bomb(t, gz, 64)
		if len(p) > 80<<10 {
			t.Fatalf("gzip %v: bomb of %d bytes; the test wants about 64 KiB", gz, len(p))
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, compressed, err := inf.Inflate(p)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrTooLarge) || !compressed {
			t.Fatalf("gzip %v: compressed %v, err %v; want ErrTooLarge", gz, compressed, err)
		}
		// Output growth (at most about twice the bound) plus the
		// decompressor's state: far below the 64 MiB of a naive reader.
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
			t.Fatalf("gzip %v: bomb allocated %d bytes", gz, alloc)
		}
	}
}

func FuzzInflate(f *testing.F) {
	// Seeds: testdata/fuzz/FuzzInflate, the unit-test inputs.
	inf := Inflater{MaxBytes: 4096}
	var zbuf, gbuf bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&zbuf, zlib.BestSpeed)
	gw, _ := gzip.NewWriterLevel(&gbuf, gzip.BestSpeed)
	f.Fuzz(func(t *testing.T, p []byte) {
		out, compressed, err := inf.Inflate(p)
		switch {
		case err != nil && (out != nil || !compressed):
			t.Fatalf("error %v with out %q, compressed %v", err, out, compressed)
		case err == nil && !compressed && !bytes.Equal(out, p):
			t.Fatalf("plain packet changed: %q -> %q", p, out)
		case len(out) > 4096 && compressed:
			t.Fatalf("inflated %d bytes past the bound", len(out))
		}
		// Round trips: p compressed either way comes back unchanged.
		if len(p) > 4096 {
			return
		}
		zbuf.Reset()
		zw.Reset(&zbuf)
		if _, err := zw.Write(p); err != nil {
			t.Fatal(err)
		}
		zw.Close()
		gbuf.Reset()
		gw.Reset(&gbuf)
		if _, err := gw.Write(p); err != nil {
			t.Fatal(err)
		}
		gw.Close()
		for _, c := range [][]byte{zbuf.Bytes(), gbuf.Bytes()} {
			out, compressed, err := inf.Inflate(c)
			if err != nil || !compressed || !bytes.Equal(out, p) {
				t.Fatalf("round trip of %q: %q, %v, %v", p, out, compressed, err)
			}
		}
	})
}
