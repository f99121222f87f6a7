package parse

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

// FuzzScanTag checks the one-pass tag scanner against the straightforward
// scans it replaced: the tag ends at the first unescaped comma, the key's
// name bytes come first, the separator is the first unescaped '=' or ':',
// and a value said to be ASCII or unescaped is so.
func FuzzScanTag(f *testing.F) {
	for _, s := range []string{"env:prod,host=a", "a=x\\,y,b", "bare,c:d", "k=\\", "k=é\\\xff", "k=12345678,9", "k.x\\=y=v", "=v", ",", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, section []byte) {
		checkScan(t, section, &nameByte)
		checkScan(t, section, &statsdKeyByte)
	})
}

// checkScan is FuzzScanTag's check of section with the key table keys.
func checkScan(t *testing.T, section []byte, keys *[256]bool) {
	t.Helper()
	// The tag ends at the first comma not escaped by a backslash.
	end := 0
	for ; end < len(section) && section[end] != ','; end++ {
		if section[end] == '\\' {
			end++
		}
	}
	end = min(end, len(section))
	tag := section[:end]
	valid := 0
	for valid < len(tag) && keys[tag[valid]] {
		valid++
	}
	sep := valid
	for ; sep < len(tag) && tag[sep] != '=' && tag[sep] != ':'; sep++ {
		if tag[sep] == '\\' {
			sep++
		}
	}
	sep = min(sep, end)

	var got tagSpan
	got.scan(section, keys)
	if got.valid != valid || got.sep != sep || got.end != end {
		t.Fatalf("scan(%q) = valid %d, sep %d, end %d; want %d, %d, %d", section, got.valid, got.sep, got.end, valid, sep, end)
	}
	if sep == end {
		return
	}
	value := tag[sep+1:]
	unescaped := appendUnescaped(nil, value)
	if !got.escaped && !bytes.Equal(unescaped, value) {
		t.Fatalf("scan(%q): value %q not marked escaped", section, value)
	}
	if ascii := !bytes.ContainsFunc(value, func(r rune) bool { return r >= utf8.RuneSelf }); got.ascii != ascii {
		t.Fatalf("scan(%q): ascii %v, want %v", section, got.ascii, ascii)
	}
	if got.ascii && !utf8.Valid(unescaped) {
		t.Fatalf("scan(%q): ASCII value %q unescapes to invalid UTF-8", section, value)
	}
}

func TestPlainLen(t *testing.T) {
	f := func(b string, want int) {
		t.Helper()
		if got := plainLen([]byte(b)); got != want {
			t.Errorf("plainLen(%q) = %d, want %d", b, got, want)
		}
	}
	f("", 0)
	f("production", 10)
	f("eu-west-1,host", 9)
	f("abcdefgh,", 8)
	f("abcdefg,h", 7)
	f("abcdefghijklmno\\p", 15)
	f("abcdefghijklmnop\x80", 16)
	f("a\xc3\xa9", 1)
	f(",abcdefgh", 0)
	// Every byte value at every position of a two-word buffer.
	for c := range 256 {
		for i := range 16 {
			b := bytes.Repeat([]byte{'x'}, 16)
			b[i] = byte(c)
			want := 16
			if c == ',' || c == '\\' || c >= utf8.RuneSelf {
				want = i
			}
			f(string(b), want)
		}
	}
}
