package push

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"
)

func TestResolver_ReresolvesAndKeepsGoingOnFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, err := NewResolver([]string{"db", "gone:9", "[::1]"}, 8086)
		if err != nil {
			t.Fatal(err)
		}
		dns := map[string][]netip.Addr{
			"db":  {netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("::ffff:10.0.0.2")},
			"::1": {netip.MustParseAddr("::1")},
		}
		lookups := 0
		r.Lookup = func(_ context.Context, host string) ([]netip.Addr, error) {
			lookups++
			if a, ok := dns[host]; ok {
				return a, nil
			}
			return nil, errors.New("no such host")
		}
		f := func(want ...string) {
			t.Helper()
			got, err := r.Addrs(t.Context())
			if len(want) == 0 {
				if err == nil {
					t.Fatalf("Addrs = %v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, a := range got {
				s = append(s, a.String())
			}
			if !equal(s, want) {
				t.Fatalf("Addrs = %v, want %v", s, want)
			}
		}
		f("10.0.0.1:8086", "10.0.0.2:8086", "[::1]:8086")
		// "gone" does not resolve: retried at every call, others still used.
		f("10.0.0.1:8086", "10.0.0.2:8086", "[::1]:8086")
		if lookups != 6 {
			t.Fatalf("%d lookups, want 6 (retrying while a name fails)", lookups)
		}
		dns["gone"] = []netip.Addr{netip.MustParseAddr("10.0.0.9")}
		f("10.0.0.1:8086", "10.0.0.2:8086", "10.0.0.9:9", "[::1]:8086")
		f("10.0.0.1:8086", "10.0.0.2:8086", "10.0.0.9:9", "[::1]:8086")
		if lookups != 9 {
			t.Fatalf("%d lookups, want 9 (cached once all names resolve)", lookups)
		}
		dns["db"] = []netip.Addr{netip.MustParseAddr("10.0.0.3")}
		time.Sleep(ReresolveInterval - time.Second)
		f("10.0.0.1:8086", "10.0.0.2:8086", "10.0.0.9:9", "[::1]:8086")
		time.Sleep(time.Second)
		f("10.0.0.3:8086", "10.0.0.9:9", "[::1]:8086")
		// Everything gone: the last known addresses stay in use.
		clear(dns)
		time.Sleep(ReresolveInterval)
		f("10.0.0.3:8086", "10.0.0.9:9", "[::1]:8086")
	})
}

func TestResolver_NothingResolves(t *testing.T) {
	r, err := NewResolver([]string{"nonexistent.invalid"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Pick(t.Context()); err == nil {
		t.Fatal("Pick succeeded for a name that does not resolve")
	}
	if _, err := NewResolver(nil, 1); err == nil {
		t.Fatal("NewResolver accepted no hosts")
	}
}
