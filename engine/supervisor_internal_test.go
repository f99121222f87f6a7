package engine

import (
	"testing"
	"time"
)

func TestRunner_KeepsOnlyTheStartsItsRuleReads(t *testing.T) {
	var r runner
	at := time.Unix(0, 0)
	for i := range 1000 {
		r.started(at.Add(time.Duration(i) * time.Hour))
		if len(r.starts) > maxStarts+1 {
			t.Fatalf("after %d starts %d are kept", i+1, len(r.starts))
		}
	}
	if r.keepsFailing() {
		t.Fatal("starts an hour apart do not keep failing")
	}
	for i := range maxStarts + 1 {
		r.started(at.Add(2000*time.Hour + time.Duration(i)*time.Second))
	}
	if !r.keepsFailing() {
		t.Fatalf("%d starts a second apart keep failing", maxStarts+1)
	}
}
