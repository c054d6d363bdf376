package alertdiff

import (
	"fmt"
	"testing"

	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
)

func alert(t *testing.T, rule, key, id string, events ...string) *matcher.Alert {
	t.Helper()
	a := &matcher.Alert{ID: id, Ruleset: "rs", Rule: rule, Key: key}
	sr := matcher.StepRecords{Step: "s"}
	for _, e := range events {
		ev, err := rules.ParseEvent([]byte(e))
		if err != nil {
			t.Fatal(err)
		}
		sr.Records = append(sr.Records, &matcher.Record{Event: ev, Key: key})
	}
	a.Steps = []matcher.StepRecords{sr}
	return a
}

func TestDiffCountsBySignature(t *testing.T) {
	d := NewDiff(Options{Examples: 2})
	d.Declare(Old, "rs", "quiet")
	d.Declare(New, "rs", "quiet")
	// Same match, different ids (the rule's version changed), whitespace
	// apart: one alert in both.
	d.Add(Old, alert(t, "big", "k1", "old-1", `{"n": 1}`))
	d.Add(New, alert(t, "big", "k1", "new-1", `{"n":1}`))
	// Only in the old version: another key, and a second equal alert.
	d.Add(Old, alert(t, "big", "k2", "old-2", `{"n":2}`))
	d.Add(Old, alert(t, "big", "k1", "old-3", `{"n":1}`))
	// Only in the new version: other events.
	d.Add(New, alert(t, "big", "k3", "new-2", `{"n":3}`, `{"n":4}`))
	d.Add(New, alert(t, "big", "k3", "new-3", `{"n":3}`))

	got := d.Rules()
	if len(got) != 2 || got[0].Rule != "quiet" || got[1].Rule != "big" {
		t.Fatalf("rules = %+v", got)
	}
	if q := got[0]; q.Differs() || q.Both+q.OnlyOld+q.OnlyNew != 0 || !q.InOld || !q.InNew {
		t.Errorf("quiet = %+v", q)
	}
	b := got[1]
	if b.Both != 1 || b.OnlyOld != 2 || b.OnlyNew != 2 || !b.Differs() {
		t.Fatalf("big: both %d only_old %d only_new %d", b.Both, b.OnlyOld, b.OnlyNew)
	}
	ids := func(as []*matcher.Alert) string {
		s := ""
		for _, a := range as {
			s += a.ID + " "
		}
		return s
	}
	if g := ids(b.BothExamples); g != "new-1 " {
		t.Errorf("both examples %q", g)
	}
	if g := ids(b.OnlyOldExamples); g != "old-2 old-3 " {
		t.Errorf("only old examples %q", g)
	}
	if g := ids(b.OnlyNewExamples); g != "new-2 new-3 " {
		t.Errorf("only new examples %q", g)
	}
	if !d.Differs() {
		t.Error("Differs = false")
	}
}

func TestDiffSameAndTimeout(t *testing.T) {
	d := NewDiff(Options{})
	for i := range 10 {
		ev := fmt.Sprintf(`{"n":%d}`, i)
		d.Add(New, alert(t, "r", "k", "b", ev))
		d.Add(Old, alert(t, "r", "k", "a", ev))
	}
	if d.Differs() {
		t.Fatalf("equal alerts differ: %+v", d.Rules())
	}
	a := alert(t, "r", "k", "a", `{"n":1}`)
	b := alert(t, "r", "k", "a", `{"n":1}`)
	b.Timeout = true
	if Signature(a) == Signature(b) {
		t.Error("a timeout alert has the signature of a match")
	}
	if r := d.Rules()[0]; r.Both != 10 || len(r.BothExamples) != DefaultExamples {
		t.Errorf("both %d, %d examples", r.Both, len(r.BothExamples))
	}
}

func TestDiffHoldsBoundedAlerts(t *testing.T) {
	d := NewDiff(Options{Examples: 1})
	for i := range 1000 {
		d.Add(Old, alert(t, "r", "k", fmt.Sprint(i), fmt.Sprintf(`{"n":%d}`, i)))
	}
	rs := d.rules[ruleName{"rs", "r"}]
	if rs.held[Old] != retainFactor {
		t.Errorf("holds %d alerts, want %d", rs.held[Old], retainFactor)
	}
	r := d.Rules()[0]
	if r.OnlyOld != 1000 || len(r.OnlyOldExamples) != 1 || r.OnlyOldExamples[0].ID != "0" {
		t.Errorf("only_old %d, examples %v", r.OnlyOld, r.OnlyOldExamples)
	}
}
