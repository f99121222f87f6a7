package engine_test

import (
	"reflect"
	"testing"

	"github.com/bucky3/bucky3/engine"
)

func TestStats_Values(t *testing.T) {
	s := engine.NewStats()
	s.Counter("lines_received").Add(3)
	s.Gauge("series").Set(-2)
	want := []engine.StatValue{
		{Name: "flush_errors", Value: 0},
		{Name: "lines_received", Value: 3},
		{Name: "series", Gauge: true, Value: -2},
	}
	if got := s.Values(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Values() = %+v, want %+v", got, want)
	}
}

func TestModule_AllStats(t *testing.T) {
	var all func() []engine.ModuleStats
	var own *engine.Stats
	agentOf(t, "[out]\nmodule_type = \"rec\"\n[src]\nmodule_type = \"fsrc\"\n",
		sourceType("fsrc", func(m engine.Module) funcSource { own = m.Stats; return nil }),
		destinationType("rec", func(m engine.Module) *recorder { all = m.AllStats; return &recorder{} }))
	got := all()
	if len(got) != 2 || got[0].Name != "src" || got[0].Kind != engine.ModuleSource || got[0].Stats != own ||
		got[1].Name != "out" || got[1].Kind != engine.ModuleDestination {
		t.Fatalf("AllStats() = %+v", got)
	}
}
