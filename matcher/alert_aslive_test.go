package matcher

import (
	"math"
	"testing"
	"time"

	"github.com/shrike-cep/shrike/rules"
)

// TestAlertAsLive: a shadow version's alert made live is the alert the
// same version gives running live, id included, and the shadow's own
// alert is left as it was.
func TestAlertAsLive(t *testing.T) {
	run := func(shadow bool) *collector {
		rs, err := rules.Load("test.yaml", []byte(abRule), rules.CompileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rs.Shadow = shadow
		prog, err := NewProgram([]*rules.Compiled{rs})
		if err != nil {
			t.Fatal(err)
		}
		c := &collector{}
		p, err := NewPartition(prog, c, Options{Clock: func() time.Time { return time.Unix(0, 0) }})
		if err != nil {
			t.Fatal(err)
		}
		push(t, p, []ev{{id: 1, t: 1, kind: "a"}, {id: 2, t: 2, kind: "b"}})
		p.Advance(math.MaxInt64)
		return c
	}
	live, shadow := run(false), run(true)
	if len(live.alerts) != 1 || len(shadow.alerts) != 1 {
		t.Fatalf("%d live and %d shadow alerts, want one each", len(live.alerts), len(shadow.alerts))
	}
	l, s := live.alerts[0], shadow.alerts[0]
	if !s.Shadow || s.ID == l.ID {
		t.Fatalf("the shadow's alert: shadow %v, id %s (live %s): want marked, with an id of its own", s.Shadow, s.ID, l.ID)
	}
	shadowID := s.ID
	got := s.AsLive()
	if got.Shadow || got.ID != l.ID || describe(got) != describe(l) {
		t.Errorf("AsLive: shadow %v, id %s, %s; want the live alert %s, %s", got.Shadow, got.ID, describe(got), l.ID, describe(l))
	}
	if !s.Shadow || s.ID != shadowID {
		t.Errorf("AsLive changed the shadow's alert: shadow %v, id %s", s.Shadow, s.ID)
	}
	if l.AsLive() != l {
		t.Error("AsLive of a live alert is not the alert itself")
	}
}
