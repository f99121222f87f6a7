package prometheus

import (
	"bytes"
	"log/slog"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/encoding/protodelim"

	"github.com/bucky3/bucky3/engine"
)

// Version is the agent's version in bucky3_build_info. Release builds set
// it with -ldflags "-X github.com/bucky3/bucky3/exporters/prometheus.Version=…";
// when empty, the main module's version from the build info is used.
var Version string

// selfPrefix starts the name of every family of the agent's own metrics
// except the Go and process collectors'. Data families under it are
// dropped while self_metrics is on, so the two never share a name.
const selfPrefix = "bucky3_"

// unspecified is the reason label of a loss counter that has no reason in
// its name ("metrics_dropped" alone).
const unspecified = "unspecified"

// selfFamily is one family of the agent's own metrics with a fixed name.
type selfFamily struct {
	help   string
	gauge  bool
	reason bool // has a reason label besides module
}

// selfFamilies are the families with fixed names; every other counter or
// gauge of a module gets a family of its own, labelled by module only.
var selfFamilies = map[string]selfFamily{
	"bucky3_lines_received_total":         {help: "Lines (or datagram records) a source received."},
	"bucky3_lines_dropped_total":          {help: "Lines a source dropped, by reason; invalid_<r> for lines that did not parse.", reason: true},
	"bucky3_packets_dropped_kernel_total": {help: "Datagrams the kernel dropped before a source read them (SO_RXQ_OVFL)."},
	"bucky3_packets_dropped_total":        {help: "Datagrams a source dropped, by reason.", reason: true},
	"bucky3_series":                       {help: "Series a module holds.", gauge: true},
	"bucky3_metrics_sent_total":           {help: "Metrics a destination delivered."},
	"bucky3_metrics_dropped_total":        {help: "Metrics a destination dropped, by reason; not_finite for non-finite values of any module.", reason: true},
	"bucky3_queue_length":                 {help: "Metrics a destination holds queued for delivery.", gauge: true},
}

// selfSample is where one counter or gauge of a module goes.
type selfSample struct {
	family string
	reason string // "" for families without a reason label
}

// mapStat maps the counter or gauge v of a module of kind to its family:
// the rules of the README's "The agent's own metrics".
func mapStat(kind engine.ModuleKind, v engine.StatValue) selfSample {
	name := v.Name
	if v.Gauge {
		switch name {
		case "series":
			return selfSample{family: "bucky3_series"}
		case "metrics_buffered":
			return selfSample{family: "bucky3_queue_length"}
		}
		return selfSample{family: string(AppendMetricName(nil, selfPrefix+name))}
	}
	// reasonOf reports whether name is prefix or prefix_<reason>, and
	// the reason (unspecified for the bare prefix).
	reasonOf := func(prefix string) (string, bool) {
		if name == prefix {
			return unspecified, true
		}
		r, ok := strings.CutPrefix(name, prefix+"_")
		return r, ok && r != ""
	}
	switch name {
	case "values_not_finite":
		return selfSample{family: "bucky3_metrics_dropped_total", reason: "not_finite"}
	case "packets_dropped_kernel":
		return selfSample{family: "bucky3_packets_dropped_kernel_total"}
	}
	if r, ok := reasonOf("packets_dropped"); ok {
		return selfSample{family: "bucky3_packets_dropped_total", reason: r}
	}
	switch kind {
	case engine.ModuleSource:
		if name == "lines_received" {
			return selfSample{family: "bucky3_lines_received_total"}
		}
		if name == "lines_invalid" {
			return selfSample{family: "bucky3_lines_dropped_total", reason: "invalid"}
		}
		if r, ok := strings.CutPrefix(name, "lines_invalid_"); ok && r != "" {
			return selfSample{family: "bucky3_lines_dropped_total", reason: "invalid_" + r}
		}
		for _, prefix := range []string{"lines_dropped", "metrics_dropped"} {
			if r, ok := reasonOf(prefix); ok {
				return selfSample{family: "bucky3_lines_dropped_total", reason: r}
			}
		}
	case engine.ModuleDestination:
		if name == "metrics_sent" {
			return selfSample{family: "bucky3_metrics_sent_total"}
		}
		if r, ok := reasonOf("metrics_dropped"); ok {
			return selfSample{family: "bucky3_metrics_dropped_total", reason: r}
		}
	}
	return selfSample{family: string(AppendMetricName(nil, selfPrefix+name)) + "_total"}
}

// withoutTotals returns the values of s to export: a loss counter whose
// reasons are counted beside it ("metrics_dropped" before
// "metrics_dropped_max_series") is left out, or each loss would count
// twice. values is sorted by name, so a total comes right before its
// reasons.
func withoutTotals(values []engine.StatValue) []engine.StatValue {
	out := values[:0]
	for i, v := range values {
		if !v.Gauge && engine.IsLoss(v.Name) {
			total := false
			for _, w := range values[i+1:] {
				if !w.Gauge && strings.HasPrefix(w.Name, v.Name+"_") {
					total = true
					break
				}
				if w.Name > v.Name+"_\xff" {
					break
				}
			}
			if total {
				continue
			}
		}
		out = append(out, v)
	}
	return out
}

// agentCollector builds the agent's own metrics from every module's
// counters at scrape time. It is an unchecked collector: the families it
// yields depend on the counters the modules have.
type agentCollector struct {
	all func() []engine.ModuleStats
}

func (c *agentCollector) Describe(chan<- *prometheus.Desc) {}

func (c *agentCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct{ family, module, reason string }
	sums := map[key]float64{}
	var order []key
	for _, ms := range c.all() {
		for _, v := range withoutTotals(ms.Stats.Values()) {
			s := mapStat(ms.Kind, v)
			fixed, isFixed := selfFamilies[s.family]
			// A generic name that lands on a fixed family of another
			// type or label set would make the family inconsistent.
			if isFixed && (fixed.gauge != v.Gauge || fixed.reason != (s.reason != "")) {
				continue
			}
			k := key{s.family, ms.Name, s.reason}
			if _, ok := sums[k]; !ok {
				order = append(order, k)
			}
			sums[k] += v.Value
		}
	}
	for _, k := range order {
		fam, ok := selfFamilies[k.family]
		if !ok {
			fam.gauge = !strings.HasSuffix(k.family, "_total")
			fam.help = "The module's " + strings.TrimSuffix(strings.TrimPrefix(k.family, selfPrefix), "_total") + " counter."
			if fam.gauge {
				fam.help = "The module's " + strings.TrimPrefix(k.family, selfPrefix) + " gauge."
			}
		}
		labels, values := []string{"module"}, []string{k.module}
		if fam.reason {
			labels, values = append(labels, "reason"), append(values, k.reason)
		}
		typ := prometheus.CounterValue
		if fam.gauge {
			typ = prometheus.GaugeValue
		}
		m, err := prometheus.NewConstMetric(prometheus.NewDesc(k.family, fam.help, labels, nil), typ, sums[k], values...)
		if err != nil {
			continue // a module name that is not valid UTF-8
		}
		ch <- m
	}
	ch <- prometheus.MustNewConstMetric(
		prometheus.NewDesc("bucky3_build_info", "The agent's version and the Go version that built it; always 1.", []string{"version", "goversion"}, nil),
		prometheus.GaugeValue, 1, version(), runtime.Version())
}

// version returns Version, or the main module's version.
func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// selfMetrics renders the agent's own metrics: the families of
// agentCollector and the Go and process collectors of client_golang.
type selfMetrics struct {
	log *slog.Logger
	reg *prometheus.Registry
}

func newSelfMetrics(log *slog.Logger, all func() []engine.ModuleStats, extra ...prometheus.Collector) *selfMetrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		&agentCollector{all: all},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	reg.MustRegister(extra...)
	return &selfMetrics{log: log, reg: reg}
}

// appendProto appends the families in the delimited protobuf format.
func (s *selfMetrics) appendProto(dst []byte) []byte {
	fams, err := s.reg.Gather()
	if err != nil {
		s.log.Debug("gathering the agent's own metrics", "err", err)
	}
	buf := bytes.NewBuffer(dst)
	for _, mf := range fams {
		_, _ = protodelim.MarshalTo(buf, mf) // a bytes.Buffer does not fail
	}
	return buf.Bytes()
}

// conflictCollector yields bucky3_typed_conflicts_total{module,name}: the
// samples the typed layout dropped because their family holds another
// type or classic buckets, or its name is taken, by family name. It is
// unchecked: the names come and go.
type conflictCollector struct {
	module string
	counts func() map[string]uint64
}

var conflictsDesc = prometheus.NewDesc("bucky3_typed_conflicts_total",
	"Samples the typed layout dropped because their family holds another type or classic buckets, or its name is taken, by family name (at most 100 names, then _other).",
	[]string{"module", "name"}, nil)

func (c *conflictCollector) Describe(chan<- *prometheus.Desc) {}

func (c *conflictCollector) Collect(ch chan<- prometheus.Metric) {
	for name, n := range c.counts() {
		m, err := prometheus.NewConstMetric(conflictsDesc, prometheus.CounterValue, float64(n), c.module, name)
		if err != nil {
			continue // a name that is not valid UTF-8
		}
		ch <- m
	}
}

// appendText appends the families in the text format 0.0.4. A collector
// that fails leaves out what it could not gather, never the whole page.
func (s *selfMetrics) appendText(dst []byte) []byte {
	fams, err := s.reg.Gather()
	if err != nil {
		s.log.Debug("gathering the agent's own metrics", "err", err)
	}
	buf := bytes.NewBuffer(dst)
	for _, mf := range fams {
		_, _ = expfmt.MetricFamilyToText(buf, mf) // a bytes.Buffer does not fail
	}
	return buf.Bytes()
}

// reserved returns the test for data family names that would collide with
// the agent's own metrics: anything under bucky3_, and the names the Go and
// process collectors use (gathered once here; they do not change).
func (s *selfMetrics) reserved() func(name string) bool {
	names := map[string]bool{}
	fams, _ := s.reg.Gather() // what it gathered is what it uses
	for _, mf := range fams {
		names[mf.GetName()] = true
	}
	return func(name string) bool { return strings.HasPrefix(name, selfPrefix) || names[name] }
}
