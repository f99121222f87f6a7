package engine

import (
	"fmt"
	"regexp"
	"strings"
)

// RelabelRule is one rule of metric_postprocessor, modelled on Prometheus
// relabel_configs. __name__ in SourceLabels and TargetLabel stands for the
// bucket. Rules run at the source, in order, on each emitted metric.
type RelabelRule struct {
	SourceLabels []string `toml:"source_labels"`
	// Separator joins the source label values; default ";".
	Separator string `toml:"separator"`
	// Regex is fully anchored; default "(.*)".
	Regex string `toml:"regex"`
	// Action is keep, drop, replace (default), labeldrop or labelkeep.
	Action      string `toml:"action"`
	TargetLabel string `toml:"target_label"`
	// Replacement may refer to regex groups ($1, ${name}); default "$1".
	Replacement *string `toml:"replacement"`
}

const nameLabel = "__name__"

type relabelAction uint8

const (
	actionReplace relabelAction = iota
	actionKeep
	actionDrop
	actionLabelDrop
	actionLabelKeep
)

type rule struct {
	sourceLabels []string
	separator    string
	regex        *regexp.Regexp
	action       relabelAction
	target       string
	replacement  string
}

func compileRules(rules []RelabelRule) ([]rule, error) {
	out := make([]rule, 0, len(rules))
	for i, r := range rules {
		c := rule{sourceLabels: r.SourceLabels, separator: ";", target: r.TargetLabel, replacement: "$1"}
		if r.Separator != "" {
			c.separator = r.Separator
		}
		if r.Replacement != nil {
			c.replacement = *r.Replacement
		}
		expr := r.Regex
		if expr == "" {
			expr = "(.*)"
		}
		re, err := regexp.Compile("^(?:" + expr + ")$")
		if err != nil {
			return nil, fmt.Errorf("rule %d: regex: %w", i+1, err)
		}
		c.regex = re
		switch r.Action {
		case "", "replace":
			c.action = actionReplace
			if r.TargetLabel == "" {
				return nil, fmt.Errorf("rule %d: replace needs target_label", i+1)
			}
		case "keep":
			c.action = actionKeep
		case "drop":
			c.action = actionDrop
		case "labeldrop":
			c.action = actionLabelDrop
		case "labelkeep":
			c.action = actionLabelKeep
		default:
			return nil, fmt.Errorf("rule %d: action %q is not keep, drop, replace, labeldrop or labelkeep", i+1, r.Action)
		}
		out = append(out, c)
	}
	return out, nil
}

// relabel applies rules to m in place and reports whether m is kept.
func relabel(rules []rule, m *Metric) bool {
	for i := range rules {
		r := &rules[i]
		switch r.action {
		case actionKeep, actionDrop:
			matched := r.regex.MatchString(r.join(m))
			if matched == (r.action == actionDrop) {
				return false
			}
		case actionReplace:
			value := r.join(m)
			idx := r.regex.FindStringSubmatchIndex(value)
			if idx == nil {
				continue
			}
			result := string(r.regex.ExpandString(nil, r.replacement, value, idx))
			switch {
			case r.target == nameLabel:
				if result != "" {
					m.Bucket = result
				}
			case result == "":
				m.DeleteTag(r.target)
			default:
				m.SetTag(r.target, result)
			}
		case actionLabelDrop, actionLabelKeep:
			keep := m.Tags[:0]
			for _, t := range m.Tags {
				if r.regex.MatchString(t.Key) == (r.action == actionLabelKeep) {
					keep = append(keep, t)
				}
			}
			m.Tags = keep
		}
	}
	return true
}

func (r *rule) join(m *Metric) string {
	if len(r.sourceLabels) == 1 {
		return labelValue(m, r.sourceLabels[0])
	}
	var b strings.Builder
	for i, l := range r.sourceLabels {
		if i > 0 {
			b.WriteString(r.separator)
		}
		b.WriteString(labelValue(m, l))
	}
	return b.String()
}

func labelValue(m *Metric, label string) string {
	if label == nameLabel {
		return m.Bucket
	}
	v, _ := m.Tag(label)
	return v
}
