package statsd

import "testing"

// TestTableOptions checks that only a table with one reader gets a single
// stripe: with more, the stripes keep readers from waiting on each other.
func TestTableOptions(t *testing.T) {
	for _, c := range []struct{ readers, stripes int }{{1, 1}, {2, DefaultOptions().Stripes}, {8, DefaultOptions().Stripes}} {
		o := DefaultOptions()
		o.Readers = c.readers
		if got := tableOptions(o).Stripes; got != c.stripes {
			t.Errorf("%d readers: %d stripes, want %d", c.readers, got, c.stripes)
		}
	}
}
