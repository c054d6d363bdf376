package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/shrike-cep/shrike/cep"
	"github.com/shrike-cep/shrike/rules"
)

// TestWarnLate pins the threshold of the late-events warning: from 1% of
// the events on, not below, and never for a replay without events.
func TestWarnLate(t *testing.T) {
	rs := []*rules.Compiled{
		{Ruleset: &rules.Ruleset{Name: "payments", Stream: rules.Stream{MaxOutOfOrderness: 5 * time.Second}}},
		{Ruleset: &rules.Ruleset{Name: "itops"}},
	}
	tests := []struct {
		late, events uint64
		want         string
	}{
		{0, 0, ""},
		{0, 100, ""},
		{1, 101, ""},
		{1, 100, "shrike: warning: 1 of 100 events (1.0%) were late"},
		{13174, 20000, "shrike: warning: 13174 of 20000 events (65.9%) were late"},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		warnLate(newOutput(&buf), &cep.Summary{Late: tt.late, Events: tt.events}, rs)
		got := buf.String()
		if tt.want == "" {
			if got != "" {
				t.Errorf("%d of %d late: warned %q, want nothing", tt.late, tt.events, got)
			}
			continue
		}
		if !strings.HasPrefix(got, tt.want) || !strings.Contains(got, "stream.max_out_of_orderness (5s in payments, 0s in itops)") {
			t.Errorf("%d of %d late: warned %q, want it to start %q and name each ruleset's delay", tt.late, tt.events, got, tt.want)
		}
	}
}
