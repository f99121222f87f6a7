package docker

import (
	"slices"
	"strings"
	"testing"

	"github.com/bucky3/bucky3/engine"
)

func TestLabelTagKey(t *testing.T) {
	f := func(label, want string) {
		t.Helper()
		got, ok := labelTagKey(label)
		if !ok || got != want {
			t.Fatalf("labelTagKey(%q) = %q, %v, want %q", label, got, ok, want)
		}
	}
	f("team", "team")
	f("com.example.team", "com_example_team")
	f("org.opencontainers.image.version", "org_opencontainers_image_version")
	f("a-b/c d", "a_b_c_d")
	f("zé", "z__") // each byte of a multi-byte rune
}

func TestLabelTagKey_Failure(t *testing.T) {
	f := func(label string) {
		t.Helper()
		if got, ok := labelTagKey(label); ok {
			t.Fatalf("labelTagKey(%q) = %q, want no tag", label, got)
		}
	}
	f("")
	f("9lives")
	f("_private")
	f(".hidden")
	f("éa")
	f("name")
	f("bucket")
	f("docker_id")
	f("docker.name") // sanitises to a reserved name
}

func TestValidTagValue(t *testing.T) {
	f := func(v string, want bool) {
		t.Helper()
		if got := validTagValue(v); got != want {
			t.Fatalf("validTagValue(%q) = %v, want %v", v, got, want)
		}
	}
	f("web", true)
	f("a b,c=d", true)
	f("日本", true)
	f("", false)
	f("a\nb", false)
	f("tab\t", false)
	f("del\x7f", false)
	f("\xff", false)
}

func TestContainerTags(t *testing.T) {
	got := containerTags("/web-1", idA,
		map[string]string{"tier": "front", "service": "from-label", "x.y": "1", "x_y": "2", "name": "no"},
		[]string{"SERVICE=first", "PATH=/bin", "SERVICE=last", "LANG", "EMPTY="},
		map[string]string{"SERVICE": "service", "EMPTY": "empty", "LANG": "lang"})
	want := []engine.Tag{
		{Key: "docker_id", Value: "a1b2c3d4e5f6"},
		{Key: "docker_name", Value: "web-1"},
		{Key: "service", Value: "last"}, // env_mapping beats labels; Docker's last duplicate wins
		{Key: "tier", Value: "front"},
		{Key: "x_y", Value: "2"}, // "x_y" sorts after "x.y"
	}
	if !slices.Equal(got, want) {
		t.Fatalf("containerTags =\n%v\nwant\n%v", got, want)
	}
	named := withName(got, "cpu0")
	if !slices.IsSortedFunc(named, func(a, b engine.Tag) int { return strings.Compare(a.Key, b.Key) }) || len(named) != len(got)+1 {
		t.Fatalf("withName = %v", named)
	}
	if len(got) != 5 || got[2].Key != "service" {
		t.Fatalf("withName modified its base: %v", got)
	}
}

func FuzzLabelTagKey(f *testing.F) {
	for _, s := range []string{"team", "com.example.team", "9lives", "docker.name", "zé", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, label string) {
		k, ok := labelTagKey(label)
		if ok && (!validTagKey(k) || isReserved(k) || len(k) != len(label)) {
			t.Fatalf("labelTagKey(%q) = %q", label, k)
		}
	})
}
