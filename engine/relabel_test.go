package engine

import (
	"strings"
	"testing"
)

// relabelMetric parses "bucket k=v k=v" into a metric with sorted tags.
func relabelMetric(s string) Metric {
	fields := strings.Fields(s)
	m := Metric{Bucket: fields[0]}
	for _, kv := range fields[1:] {
		k, v, _ := strings.Cut(kv, "=")
		m.Tags = append(m.Tags, Tag{Key: k, Value: v})
	}
	m.Tags = SortTags(m.Tags)
	return m
}

// relabelString renders m the way relabelMetric reads it.
func relabelString(m *Metric) string {
	var b strings.Builder
	b.WriteString(m.Bucket)
	for _, t := range m.Tags {
		b.WriteString(" " + t.Key + "=" + t.Value)
	}
	return b.String()
}

func replacement(s string) *string { return &s }

func TestRelabel_Success(t *testing.T) {
	f := func(r RelabelRule, in, want string) {
		t.Helper()
		rules, err := compileRules([]RelabelRule{r})
		if err != nil {
			t.Fatalf("compile %+v: %v", r, err)
		}
		// Twice on fresh metrics: a compiled rule keeps no per-metric state.
		for range 2 {
			m := relabelMetric(in)
			got := "dropped"
			if relabel(rules, &m) {
				got = relabelString(&m)
			}
			if got != want {
				t.Fatalf("%+v on %q: got %q, want %q", r, in, got, want)
			}
		}
	}
	// labelkeep keeps only the tags whose key matches, the whole key.
	f(RelabelRule{Action: "labelkeep", Regex: "host|name"}, "m env=prod host=a name=x hostname=h", "m host=a name=x")
	f(RelabelRule{Action: "labelkeep", Regex: "host_.*"}, "m host_id=1 host=a", "m host_id=1")
	f(RelabelRule{Action: "labelkeep", Regex: "none"}, "m env=prod host=a", "m")
	f(RelabelRule{Action: "labelkeep", Regex: "env"}, "m", "m")

	// An empty replacement removes the target tag, only when the regex
	// matches; the bucket is never emptied.
	f(RelabelRule{SourceLabels: []string{"env"}, Regex: "dev", TargetLabel: "env", Replacement: replacement("")}, "m env=dev host=a", "m host=a")
	f(RelabelRule{SourceLabels: []string{"env"}, Regex: "dev", TargetLabel: "env", Replacement: replacement("")}, "m env=prod host=a", "m env=prod host=a")
	f(RelabelRule{SourceLabels: []string{"env"}, TargetLabel: "host", Replacement: replacement("")}, "m env=prod host=a", "m env=prod")
	f(RelabelRule{SourceLabels: []string{"env"}, TargetLabel: "absent", Replacement: replacement("")}, "m env=prod", "m env=prod")
	f(RelabelRule{SourceLabels: []string{"env"}, TargetLabel: "__name__", Replacement: replacement("")}, "m env=prod", "m env=prod")
	// $1 of an absent source label is empty: the target goes.
	f(RelabelRule{SourceLabels: []string{"absent"}, TargetLabel: "env"}, "m env=prod", "m")

	// ${name} refers to a named group; braces end the name, so "$svcx"
	// names a group svcx that does not exist and expands to "".
	named := "(?P<svc>[a-z]+)-(?P<ver>v[0-9]+)"
	f(RelabelRule{SourceLabels: []string{"image"}, Regex: named, TargetLabel: "service", Replacement: replacement("${svc}_${ver}")}, "m image=shop-v2", "m image=shop-v2 service=shop_v2")
	f(RelabelRule{SourceLabels: []string{"image"}, Regex: named, TargetLabel: "service", Replacement: replacement("${svc}x")}, "m image=shop-v2", "m image=shop-v2 service=shopx")
	f(RelabelRule{SourceLabels: []string{"image"}, Regex: named, TargetLabel: "service", Replacement: replacement("$svcx")}, "m image=shop-v2 service=old", "m image=shop-v2")
	f(RelabelRule{SourceLabels: []string{"image"}, Regex: named, TargetLabel: "__name__", Replacement: replacement("${svc}_${ver}")}, "m image=shop-v2", "shop_v2 image=shop-v2")
	// Named groups are numbered too.
	f(RelabelRule{SourceLabels: []string{"image"}, Regex: named, TargetLabel: "service", Replacement: replacement("$2.${1}")}, "m image=shop-v2", "m image=shop-v2 service=v2.shop")
	f(RelabelRule{SourceLabels: []string{"image"}, Regex: named, TargetLabel: "service", Replacement: replacement("${svc}")}, "m image=shop-v2x", "m image=shop-v2x")
}

func TestRelabel_Failure(t *testing.T) {
	f := func(r RelabelRule, want string) {
		t.Helper()
		_, err := compileRules([]RelabelRule{{Action: "keep"}, r})
		if err == nil || !strings.HasPrefix(err.Error(), "rule 2: ") || !strings.Contains(err.Error(), want) {
			t.Fatalf("compile %+v: %v, want a rule 2 error mentioning %q", r, err, want)
		}
	}
	f(RelabelRule{Action: "labelkeep", Regex: "("}, "regex")
	f(RelabelRule{Action: "labelkeep2"}, "labelkeep2")
	f(RelabelRule{Replacement: replacement("")}, "target_label")
}
