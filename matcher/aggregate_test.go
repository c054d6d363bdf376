package matcher

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/shrike-cep/shrike/rules"
)

// spreeRule fires when a key uses 3 distinct cards within 10 s.
const spreeRule = `
ruleset: test
rules:
  - id: spree
    aggregate:
      where: event.type == "auth"
      window: 10s
      measures:
        cards: count_distinct(event.card)
        spent: sum(event.amount)
        n: count()
        lo: min(event.amount)
        hi: max(event.amount)
        mean: avg(event.amount)
      having: cards >= 3
    alert:
      summary: '"%d cards, %.2f spent".format([cards, spent])'
`

// aev is an event of an aggregate test: time in seconds.
type aev struct {
	key    string
	t      float64 // s
	kind   string
	card   string
	amount float64
}

func pushAgg(t *testing.T, p *Partition, events []aev) {
	t.Helper()
	for i, e := range events {
		raw := fmt.Sprintf(`{"id":%d,"type":%q,"card":%q,"amount":%g}`, i+1, e.kind, e.card, e.amount)
		event, err := rules.ParseEvent([]byte(raw))
		if err != nil {
			t.Fatalf("ParseEvent(%s): %v", raw, err)
		}
		key := e.key
		if key == "" {
			key = "k"
		}
		p.Push(&Record{Event: event, Key: key, Time: int64(e.t * float64(time.Second)), Pos: Position{Source: "test", Offset: int64(i + 1)}})
	}
}

// fired lists the alerts as "key@seconds measures".
func fired(c *collector) []string {
	var out []string
	for _, a := range c.alerts {
		var ms []string
		for _, m := range a.Measures {
			ms = append(ms, fmt.Sprintf("%s=%g", m.Name, m.Value))
		}
		out = append(out, fmt.Sprintf("%s@%g %s", a.Key, float64(a.End.UnixNano())/1e9, strings.Join(ms, " ")))
	}
	return out
}

func TestAggregateSliding(t *testing.T) {
	p, c := newPartition(t, spreeRule, Options{})
	pushAgg(t, p, []aev{
		{t: 0, kind: "auth", card: "a", amount: 1},
		{t: 1, kind: "auth", card: "a", amount: 2},
		{t: 2, kind: "other", card: "x", amount: 100}, // not counted
		{t: 3, kind: "auth", card: "b", amount: 3},
		{t: 4, kind: "auth", card: "c", amount: 4}, // 3 cards: fires
		{t: 5, kind: "auth", card: "d", amount: 5}, // still true: no new alert
		// At 15 s the window (5, 15] holds e alone (d, at 5, is out):
		// false; f, f again and g make it true again.
		{t: 15, kind: "auth", card: "e", amount: 1},
		{t: 16, kind: "auth", card: "f", amount: 1},
		{t: 16.5, kind: "auth", card: "f", amount: 1}, // same card twice
		{t: 17, kind: "auth", card: "g", amount: 1},
		{t: 30, kind: "auth", card: "h", amount: 1}, // (20, 30]: h alone
		{t: 31, kind: "auth", card: "i", amount: 1},
		{t: 40, kind: "auth", card: "j", amount: 1}, // (30, 40]: i, j — h is out
	})
	p.Advance(math.MaxInt64)
	want := []string{
		"k@4 cards=3 spent=10 n=4 lo=1 hi=4 mean=2.5",
		"k@17 cards=3 spent=4 n=4 lo=1 hi=1 mean=1",
	}
	if got := fired(c); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("alerts\n got %q\nwant %q", got, want)
	}
	if n := p.keys.len(); n != 0 {
		t.Errorf("%d keys left after every window closed, want 0", n)
	}
	a := c.alerts[0]
	if a.Summary != "3 cards, 10.00 spent" {
		t.Errorf("summary %q", a.Summary)
	}
	if got, want := a.WindowStart, time.Unix(-6, 0).UTC(); !got.Equal(want) {
		t.Errorf("window start %v, want %v", got, want)
	}
	if len(a.Steps) != 1 || a.Steps[0].Step != "event" || len(a.Steps[0].Records) != 1 || a.Steps[0].Records[0].Pos.Offset != 5 {
		t.Errorf("steps %+v, want the 5th record as event", a.Steps)
	}
	var j map[string]any
	if err := json.Unmarshal(a.AppendJSON(nil), &j); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(j["measures"], j["window"]); got != "map[cards:3 hi:4 lo:1 mean:2.5 n:4 spent:10] map[end:1970-01-01T00:00:04Z start:1969-12-31T23:59:54Z]" {
		t.Errorf("JSON measures and window: %s", got)
	}
}

func TestAggregateTumbling(t *testing.T) {
	yaml := strings.Replace(spreeRule, "window: 10s", "window: 10s\n      tumbling: true", 1)
	p, c := newPartition(t, yaml, Options{})
	pushAgg(t, p, []aev{
		{t: 7, kind: "auth", card: "a", amount: 1},
		{t: 8, kind: "auth", card: "b", amount: 1},
		{t: 10, kind: "auth", card: "c", amount: 1}, // next window [10, 20)
		{t: 11, kind: "auth", card: "d", amount: 1},
		{t: 19, kind: "auth", card: "e", amount: 1}, // fires: c, d, e
		{t: 20, kind: "auth", card: "f", amount: 1},
		{t: 21, kind: "auth", card: "g", amount: 1},
		{t: 22, kind: "auth", card: "h", amount: 1}, // fires: f, g, h
	})
	p.Advance(math.MaxInt64)
	want := []string{
		"k@19 cards=3 spent=3 n=3 lo=1 hi=1 mean=1",
		"k@22 cards=3 spent=3 n=3 lo=1 hi=1 mean=1",
	}
	if got := fired(c); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("alerts\n got %q\nwant %q", got, want)
	}
	if s, e := c.alerts[0].WindowStart.Unix(), c.alerts[0].WindowEnd.Unix(); s != 10 || e != 20 {
		t.Errorf("window [%d, %d), want [10, 20)", s, e)
	}
}

// TestAggregateSnapshot checks that a key evicted and restored mid-window
// gives the alerts of an uninterrupted run, and that the encoding holds
// the window.
func TestAggregateSnapshot(t *testing.T) {
	events := []aev{
		{t: 0, kind: "auth", card: "a", amount: 1},
		{t: 1, kind: "auth", card: "b", amount: 2},
		{t: 2, kind: "auth", card: "c", amount: 3}, // fires
		{t: 3, kind: "auth", card: "d", amount: 4}, // held: no alert
		{t: 20, kind: "auth", card: "e", amount: 1},
		{t: 21, kind: "auth", card: "f", amount: 1},
		{t: 22, kind: "auth", card: "g", amount: 1}, // fires
	}
	whole, wc := newPartition(t, spreeRule, Options{})
	pushAgg(t, whole, events)
	whole.Advance(math.MaxInt64)

	for cut := 1; cut < len(events); cut++ {
		p, c := newPartition(t, spreeRule, Options{})
		pushAgg(t, p, events[:cut])
		p.Advance(int64(events[cut-1].t*1e9) + 1)
		q, qc := newPartition(t, spreeRule, Options{})
		q.Advance(p.Watermark())
		if data, ok := p.AppendKeyState(nil, "k"); ok {
			if err := q.RestoreKey("k", data); err != nil {
				t.Fatalf("cut %d: %v", cut, err)
			}
			again, _ := q.AppendKeyState(nil, "k")
			if string(again) != string(data) {
				t.Errorf("cut %d: restored state encodes differently", cut)
			}
		}
		// Renumber the rest so that positions match the whole run's.
		for i, e := range events[cut:] {
			raw := fmt.Sprintf(`{"id":%d,"type":%q,"card":%q,"amount":%g}`, cut+i+1, e.kind, e.card, e.amount)
			event, _ := rules.ParseEvent([]byte(raw))
			q.Push(&Record{Event: event, Key: "k", Time: int64(e.t * 1e9), Pos: Position{Source: "test", Offset: int64(cut + i + 1)}})
		}
		q.Advance(math.MaxInt64)
		got := append(fired(c), fired(qc)...)
		if fmt.Sprint(got) != fmt.Sprint(fired(wc)) {
			t.Errorf("cut %d: alerts\n got %q\nwant %q", cut, got, fired(wc))
		}
	}
}

func TestAggregateBound(t *testing.T) {
	p, c := newPartition(t, spreeRule, Options{MaxRunsPerKey: 2})
	pushAgg(t, p, []aev{
		{t: 0, kind: "auth", card: "a", amount: 1},
		{t: 1, kind: "auth", card: "b", amount: 1},
		{t: 2, kind: "auth", card: "c", amount: 1}, // a is summarized in a pane
	})
	p.Advance(math.MaxInt64)
	// Three cards, estimated from a sketch that holds a: a small count is
	// exact.
	if got := fired(c); fmt.Sprint(got) != "[k@2 cards=3 spent=3 n=3 lo=1 hi=1 mean=1]" {
		t.Errorf("alerts %q, want one of 3 cards and 3 events", got)
	}
	if d := p.Stats().ByRule[RuleID{Ruleset: "test", Rule: "spree"}].Dropped; d != 0 {
		t.Errorf("Dropped = %d, want 0: the bound folds events, it does not drop them", d)
	}
}

func TestAggregateOperandErrors(t *testing.T) {
	p, c := newPartition(t, spreeRule, Options{})
	for i, raw := range []string{
		`{"type":"auth","card":"a","amount":1}`,
		`{"type":"auth","card":"b","amount":"lots"}`, // sum of a string: an error
		`{"type":"auth","card":["c"],"amount":1}`,    // a list: not countable
		`{"type":"auth","card":"d","amount":2}`,
	} {
		event, err := rules.ParseEvent([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		p.Push(&Record{Event: event, Key: "k", Time: int64(i) * int64(time.Second), Pos: Position{Source: "test", Offset: int64(i)}})
	}
	p.Advance(math.MaxInt64)
	want := []string{"k@3 cards=3 spent=4 n=4 lo=1 hi=2 mean=1.3333333333333333"}
	if got := fired(c); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("alerts\n got %q\nwant %q", got, want)
	}
	if e := p.Stats().ByRule[RuleID{Ruleset: "test", Rule: "spree"}].CELErrors; e < 2 {
		t.Errorf("CELErrors = %d, want at least 2", e)
	}
}

func TestAggregateTrace(t *testing.T) {
	var events []*TraceEvent
	p, _ := newPartition(t, spreeRule, Options{Tracer: NewTracer("k", func(e *TraceEvent) { events = append(events, e) })})
	pushAgg(t, p, []aev{
		{t: 0, kind: "auth", card: "a", amount: 1},
		{t: 1, kind: "auth", card: "b", amount: 1},
		{t: 2, kind: "auth", card: "c", amount: 1},
	})
	p.Advance(math.MaxInt64)
	var got []string
	for _, e := range events {
		if e.Kind == TraceAggregate {
			got = append(got, fmt.Sprintf("n=%d %s=%g held=%v fired=%v", e.Count, e.Measures[0].Name, e.Measures[0].Value, e.Held, e.Fired))
		}
	}
	want := []string{"n=1 cards=1 held=false fired=false", "n=2 cards=2 held=false fired=false", "n=3 cards=3 held=true fired=true"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("trace\n got %q\nwant %q", got, want)
	}
}

// TestAggregateFiresAgainAfterSliding checks the edge: having that held at
// the last counted event but no longer holds over the window as it slid
// counts as not holding before the next event.
func TestAggregateFiresAgainAfterSliding(t *testing.T) {
	p, c := newPartition(t, spreeRule, Options{})
	pushAgg(t, p, []aev{
		{t: 0, kind: "auth", card: "a", amount: 1},
		{t: 1, kind: "auth", card: "b", amount: 1},
		{t: 2, kind: "auth", card: "c", amount: 1}, // fires
		// (0.5, 10.5]: b and c before d (false), b, c, d after: fires.
		{t: 10.5, kind: "auth", card: "d", amount: 1},
		// (1.5, 11.5]: c, d before e (false), c, d, e after: fires.
		{t: 11.5, kind: "auth", card: "e", amount: 1},
		{t: 11.6, kind: "auth", card: "f", amount: 1}, // held: no alert
	})
	p.Advance(math.MaxInt64)
	want := []string{"k@2", "k@10.5", "k@11.5"}
	var got []string
	for _, a := range fired(c) {
		got = append(got, strings.Fields(a)[0])
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("alerts at %q, want %q", got, want)
	}
}

// TestAggregateReload checks that an unchanged aggregate rule keeps its
// windows across SetProgram and a changed one starts over.
func TestAggregateReload(t *testing.T) {
	for _, tt := range []struct {
		name, next string
		want       int
	}{
		{"unchanged", spreeRule, 1},
		{"changed", strings.Replace(spreeRule, "window: 10s", "window: 11s", 1), 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, c := newPartition(t, spreeRule, Options{})
			pushAgg(t, p, []aev{
				{t: 0, kind: "auth", card: "a", amount: 1},
				{t: 1, kind: "auth", card: "b", amount: 1},
			})
			p.Advance(int64(1e9) + 1)
			p.SetProgram(program(t, tt.next))
			raw := `{"id":3,"type":"auth","card":"c","amount":1}`
			event, _ := rules.ParseEvent([]byte(raw))
			p.Push(&Record{Event: event, Key: "k", Time: 2e9, Pos: Position{Source: "test", Offset: 3}})
			p.Advance(math.MaxInt64)
			if len(c.alerts) != tt.want {
				t.Errorf("%d alerts after reload, want %d", len(c.alerts), tt.want)
			}
		})
	}
}
