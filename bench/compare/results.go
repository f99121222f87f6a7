package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
)

// The harness owns the part of RESULTS.md between these markers; the rest
// of the file is left as it is.
const (
	beginMarker = "<!-- compare:begin (written by bench/compare.sh, do not edit) -->"
	endMarker   = "<!-- compare:end -->"
	heading     = "## Head-to-head (bench/compare.sh)"
)

// serverResult is one server's row.
type serverResult struct {
	srv     *server
	max20   *lossless
	max1    *lossless
	cpu     []runResult
	rss100k *runResult
	rss1M   *runResult
	errors  []string
}

// replaceSection puts body between the markers of doc, adding the heading
// and the markers at the end when doc has none.
func replaceSection(doc, body string) string {
	block := beginMarker + "\n" + body + endMarker
	i, j := strings.Index(doc, beginMarker), strings.Index(doc, endMarker)
	if i >= 0 && j > i {
		return doc[:i] + block + doc[j+len(endMarker):]
	}
	if doc != "" && !strings.HasSuffix(doc, "\n") {
		doc += "\n"
	}
	if doc != "" {
		doc += "\n"
	}
	return doc + heading + "\n\n" + block + "\n"
}

// writeResults rewrites the harness's section of the file at path.
func writeResults(path, body string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	return os.WriteFile(path, []byte(replaceSection(string(old), body)), 0o644)
}

// table renders the summary table and the per-run details.
func table(results []serverResult, threshold float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| server | tags | 20 lines/pkt max lossless | 1 line/pkt max lossless | CPU s per 1M lines | RSS at 100k series | RSS at 1M series |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s %s | %s | %s | %s | %s | %s | %s |\n", r.srv.name, r.srv.version, r.srv.tags,
			losslessCell(r.max20, threshold), losslessCell(r.max1, threshold), cpuCell(r.cpu),
			rssCell(r.rss100k), rssCell(r.rss1M))
	}
	for _, r := range results {
		for _, e := range r.errors {
			fmt.Fprintf(&b, "\n- %s: error: %s", r.srv.name, e)
		}
	}
	b.WriteString("\n")
	return b.String()
}

func losslessCell(l *lossless, threshold float64) string {
	switch {
	case l == nil:
		return "—"
	case len(l.best.runs) == 0:
		return fmt.Sprintf("< %s (nothing passed)", rateString(l.floor))
	}
	acc := accountedOf(l.best.runs)
	ge := ""
	if l.generatorBound {
		ge = "≥ "
	}
	s := fmt.Sprintf("%s%s lines/s (achieved %s; accounted %s", ge, rateString(l.best.rate),
		spread(achieved(l.best.runs), rateString), spread(acc, pct))
	if gaps := gapsOf(l.best.runs); len(gaps) > 0 {
		s += "; worst reader gap " + spread(gaps, ms)
	}
	s += ")"
	if l.generatorBound {
		s += " generator-bound"
	}
	return s
}

func cpuCell(runs []runResult) string {
	if len(runs) == 0 {
		return "—"
	}
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = r.cpu / (float64(r.sent.Lines) / 1e6)
	}
	return fmt.Sprintf("%s (accounted %s)", spread(v, func(x float64) string { return fmt.Sprintf("%.2f", x) }),
		spread(accountedOf(runs), pct))
}

func rssCell(r *runResult) string {
	if r == nil {
		return "—"
	}
	return fmt.Sprintf("%s (peak %s; accounted %s)", mib(r.mem.rss), mib(r.mem.peak), pct(r.accounted))
}

// details lists every run.
func details(runs []runResult) string {
	var b strings.Builder
	b.WriteString("| server | test | target lines/s | sent lines | achieved lines/s | accounted | self-reported lines | kernel RcvbufErrors | server CPU s | VmRSS | worst reader gap (fullest queue) |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range runs {
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %.0f | %s | %s | %d | %.2f | %s | %s |\n",
			r.server, r.spec.test, rateString(r.spec.rate), r.sent.Lines, r.sent.LinesPerS, pct(r.accounted),
			selfString(r.got.selfLines, r.sent.Lines), r.kernelDrops, r.cpu, mib(r.mem.rss), gapString(r.got))
	}
	return b.String()
}

func accountedOf(runs []runResult) []float64 {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = r.accounted
	}
	return v
}

// spread renders the median and, for several values, the range:
// "1.2 [1.1–1.4]".
func spread(v []float64, format func(float64) string) string {
	if len(v) == 0 {
		return "—"
	}
	if len(v) == 1 {
		return format(v[0])
	}
	return fmt.Sprintf("%s [%s–%s]", format(median(v)), format(slices.Min(v)), format(slices.Max(v)))
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// gapsOf returns the worst reader gap of each run that reported one.
func gapsOf(runs []runResult) []float64 {
	var v []float64
	for _, r := range runs {
		if r.got.gapMax >= 0 {
			v = append(v, r.got.gapMax)
		}
	}
	return v
}

// gapString renders a run's worst reader gap and fullest socket queue.
func gapString(c counts) string {
	if c.gapMax < 0 {
		return "n/a"
	}
	s := ms(c.gapMax)
	if c.queueMax >= 0 {
		s += fmt.Sprintf(" (%.0f KiB)", c.queueMax/1024)
	}
	return s
}

func ms(seconds float64) string { return fmt.Sprintf("%.1f ms", 1000*seconds) }

func pct(x float64) string { return fmt.Sprintf("%.2f%%", 100*x) }

func rateString(r float64) string {
	switch {
	case r == 0:
		return "flat out"
	case r >= 1e6:
		return fmt.Sprintf("%.2fM", r/1e6)
	case r >= 1e3:
		return fmt.Sprintf("%.0fk", r/1e3)
	}
	return fmt.Sprintf("%.0f", r)
}

func selfString(self float64, sent uint64) string {
	if self < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f (%.2f%%)", self, 100*self/float64(sent))
}

func mib(b uint64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
