package mapping

import "testing"

func TestAppendEscaped(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		buf := []byte("x")
		for range 2 {
			if got := AppendEscaped(buf[:1], in); string(got[1:]) != want || got[0] != 'x' {
				t.Errorf("AppendEscaped(%q) = %q, want %q", in, got[1:], want)
			}
		}
	}
	// statsd_exporter's own cases.
	f("clean", "clean")
	f("0starts_with_digit", "_0starts_with_digit")
	f("with_underscore", "with_underscore")
	f("with--doubledash", "with_doubledash")
	f("with---multiple-dashes", "with_multiple_dashes")
	f("with.dot", "with_dot")
	f("with😱emoji", "with_emoji")
	f("with.*.multiple", "with___multiple")
	f("test.web-server.foo.bar", "test_web_server_foo_bar")
	f("", "")
	// And the edges around them.
	f("9", "_9")
	f("-", "_")
	f("--", "_")
	f(".-", "__")
	f("-.-", "___")
	f("a-😱-b", "a___b")
	f("é", "_")
	f("\xff\xfe", "__")
	f("a:b", "a_b")
}
