package prometheus

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/bucky3/bucky3/engine"
)

// TestExporterConcurrentGzipAndPlainScrapes has several clients scrape
// with and without gzip while batches arrive. The pages and gzip writers
// are pooled and shared by the handlers: each response must be a whole,
// parseable page equal to the store after some prefix of the batches, and
// a client never sees the store go back.
func TestExporterConcurrentGzipAndPlainScrapes(t *testing.T) {
	const batches, scrapers = 300, 8
	h := start(t, func(o *Options) { o.Compression = "gzip" })
	done := make(chan struct{})
	var wg sync.WaitGroup
	for c := range scrapers {
		gz := c%2 == 0
		wg.Go(func() {
			last := -1
			for n := 0; ; n++ {
				select {
				case <-done:
					if n >= 3 {
						return
					}
				default:
				}
				k, err := scrapeSnapshot(h, gz)
				if err != nil {
					t.Errorf("scraper %d (gzip %v), scrape %d: %v", c, gz, n, err)
					return
				}
				if k < last {
					t.Errorf("scraper %d (gzip %v): page of %d batches after one of %d", c, gz, k, last)
					return
				}
				last = k
			}
		})
	}
	for j := range batches {
		h.send(
			metric("grow", 0, []engine.Tag{{Key: "n", Value: strconv.Itoa(j)}}, num("v", float64(j))),
			metric("m", 0, []engine.Tag{{Key: "i", Value: strconv.Itoa(j % 7)}}, num("v", float64(j))),
		)
	}
	close(done)
	wg.Wait()
	for _, gz := range []bool{false, true} {
		if k, err := scrapeSnapshot(h, gz); err != nil || k != batches {
			t.Errorf("final scrape (gzip %v): %d batches, %v; want all %d", gz, k, err, batches)
		}
	}
	// Each batch changes the store once; a render serves every scrape
	// until the next change (plus the empty store's first page).
	rendered, compressed, scrapes := h.stats.Counter("pages_rendered").Load(), h.stats.Counter("pages_compressed").Load(), h.stats.Counter("http_requests").Load()
	t.Logf("%d scrapes by %d clients during %d changes: %d renders, %d compressions", scrapes, scrapers, batches, rendered, compressed)
	if rendered > batches+1 || compressed > rendered {
		t.Errorf("%d renders and %d compressions for %d changes, want at most one each per change", rendered, compressed, batches)
	}
}

// scrapeSnapshot scrapes h, asking for gzip or not, and returns how many
// batches of the test above the page shows: batch j adds grow{n="j"} = j
// and sets m{i="j%7"} = j.
func scrapeSnapshot(h *harness, gz bool) (int, error) {
	req, err := http.NewRequest(http.MethodGet, h.url+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	if got := resp.Header.Get("Content-Encoding") == "gzip"; got != gz {
		return 0, fmt.Errorf("gzip response %v, asked for %v", got, gz)
	}
	if gz {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		if body, err = io.ReadAll(zr); err != nil {
			return 0, fmt.Errorf("gunzip: %w", err)
		}
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("page does not parse: %w\n%s", err, body)
	}
	if problems := pageProblems(string(body)); len(problems) > 0 {
		return 0, fmt.Errorf("%v\n%s", problems, body)
	}
	// Each series as "label=value" of its identifying tag, to its value.
	values := func(name, key string) map[string]float64 {
		out := map[string]float64{}
		if f := fams[name]; f != nil {
			for _, m := range f.Metric {
				id := ""
				for _, l := range m.Label {
					if l.GetName() == key {
						id = l.GetValue()
					}
				}
				out[id] = m.GetUntyped().GetValue()
			}
		}
		return out
	}
	grow, m := values("grow", "n"), values("m", "i")
	k := len(grow)
	// Each batch has a grow and an m metric: no family, or both.
	if len(fams) != 2*min(k, 1) {
		return 0, fmt.Errorf("%d families after %d batches\n%s", len(fams), k, body)
	}
	for j := range k {
		if v, ok := grow[strconv.Itoa(j)]; !ok || v != float64(j) {
			return 0, fmt.Errorf("after %d batches grow{n=%d} = %v, %v; want %d\n%s", k, j, v, ok, j, body)
		}
	}
	if len(m) != min(k, 7) {
		return 0, fmt.Errorf("after %d batches %d m series, want %d\n%s", k, len(m), min(k, 7), body)
	}
	for j := max(k-7, 0); j < k; j++ {
		if v := m[strconv.Itoa(j%7)]; v != float64(j) {
			return 0, fmt.Errorf("after %d batches m{i=%d} = %v, want %d\n%s", k, j%7, v, j, body)
		}
	}
	return k, nil
}
