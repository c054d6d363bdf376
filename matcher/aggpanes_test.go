package matcher

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"cel.dev/cel-go/common/types"

	"github.com/shrike-cep/shrike/rules"
)

// wideRule measures a 100 s sliding window; it fires on every 50th event
// in it, so that alerts show the measures.
const wideRule = `
ruleset: test
rules:
  - id: wide
    aggregate:
      window: 100s
      measures:
        cards: count_distinct(event.card)
        spent: sum(event.amount)
        n: count()
        lo: min(event.amount)
        hi: max(event.amount)
        mean: avg(event.amount)
      having: n % 50 == 0 && cards > 0
    alert:
      summary: '"%d events".format([n])'
`

// paneEvent is an event of a pane test: time in nanoseconds.
type paneEvent struct {
	t      int64
	card   string
	amount float64
}

func (e paneEvent) record(t testing.TB, i int) *Record {
	t.Helper()
	raw := fmt.Sprintf(`{"id":%d,"card":%q,"amount":%g}`, i+1, e.card, e.amount)
	if e.card == "" {
		raw = fmt.Sprintf(`{"id":%d,"amount":%g}`, i+1, e.amount)
	}
	event, err := rules.ParseEvent([]byte(raw))
	if err != nil {
		t.Fatalf("ParseEvent(%s): %v", raw, err)
	}
	return &Record{Event: event, Key: "k", Time: e.t, Pos: Position{Source: "test", Offset: int64(i + 1)}}
}

// paneStream is n events 50 ms apart from time from, over 300 cards, one
// in nine without a card.
func paneStream(from int64, n int) []paneEvent {
	var evs []paneEvent
	for i := range n {
		e := paneEvent{t: from + int64(i)*50*ms, card: fmt.Sprintf("card-%d", i%300), amount: float64(i%17) + 0.25}
		if i%9 == 4 {
			e.card = ""
		}
		evs = append(evs, e)
	}
	return evs
}

// feed pushes evs, numbered from first, to p, and matches each by
// raising the watermark past it.
func feed(t testing.TB, p *Partition, evs []paneEvent, first int) {
	t.Helper()
	for i, e := range evs {
		p.Push(e.record(t, first+i))
		p.Advance(e.t + 1)
	}
}

// measuresNow returns the measures of key k's aggregate window as they
// stand, by name.
func measuresNow(t *testing.T, p *Partition) map[string]measureValue {
	t.Helper()
	ks := p.residentState("k")
	if ks == nil {
		t.Fatal("key k holds no state")
	}
	for _, rk := range ks.rules {
		if rk.rule.agg == nil || rk.x == nil || rk.x.agg == nil {
			continue
		}
		p.measures(rk.rule.agg, rk.x.agg)
		out := map[string]measureValue{}
		for i, name := range rk.rule.agg.names {
			out[name] = p.aggVars.vals[i]
		}
		return out
	}
	t.Fatal("key k holds no aggregate window")
	return nil
}

// paneState returns key k's aggregate window.
func paneState(t *testing.T, p *Partition) *aggState {
	t.Helper()
	for _, rk := range p.residentState("k").rules {
		if rk.x != nil && rk.x.agg != nil {
			return rk.x.agg
		}
	}
	t.Fatal("key k holds no aggregate window")
	return nil
}

// reference is the brute-force measures of the events with times in
// (from, to].
type reference struct {
	n, cards    int
	sum, lo, hi float64
}

func referenceOf(evs []paneEvent, from, to int64) reference {
	var r reference
	cards := map[string]bool{}
	for _, e := range evs {
		if e.t <= from || e.t > to {
			continue
		}
		if r.n == 0 || e.amount < r.lo {
			r.lo = e.amount
		}
		if r.n == 0 || e.amount > r.hi {
			r.hi = e.amount
		}
		r.n++
		r.sum += e.amount
		if e.card != "" {
			cards[e.card] = true
		}
	}
	r.cards = len(cards)
	return r
}

func TestAggregatePanesKeepMeasures(t *testing.T) {
	const window = 100 * int64(time.Second)
	evs := paneStream(0, 1000) // 50 s: all in one window
	for _, bound := range []int{8, 10000} {
		t.Run(fmt.Sprint("bound ", bound), func(t *testing.T) {
			p, _ := newPartition(t, wideRule, Options{MaxRunsPerKey: bound})
			feed(t, p, evs, 0)
			s := paneState(t, p)
			if s.len() > bound || len(s.panes) > maxPanes {
				t.Fatalf("%d entries and %d panes, want at most %d and %d", s.len(), len(s.panes), bound, maxPanes)
			}
			if bound == 8 && len(s.panes) == 0 {
				t.Fatal("no pane: the stream does not exercise them")
			}
			m := measuresNow(t, p)
			ref := referenceOf(evs, -window, evs[len(evs)-1].t)
			if m["n"].v != 1000 || m["lo"].v != ref.lo || m["hi"].v != ref.hi {
				t.Errorf("n, lo, hi = %g, %g, %g, want 1000, %g, %g", m["n"].v, m["lo"].v, m["hi"].v, ref.lo, ref.hi)
			}
			if math.Abs(m["spent"].v-ref.sum) > 1e-9*ref.sum || math.Abs(m["mean"].v-ref.sum/1000) > 1e-9 {
				t.Errorf("sum, avg = %g, %g, want %g, %g", m["spent"].v, m["mean"].v, ref.sum, ref.sum/1000)
			}
			if ref.cards != 300 {
				t.Fatalf("the stream has %d cards, want 300", ref.cards)
			}
			cards := m["cards"].v
			if bound == 10000 && cards != 300 {
				t.Errorf("count_distinct = %g under the bound, want exactly 300", cards)
			}
			if se := 1.04 / 16 * 300; math.Abs(cards-300) > 3*se {
				t.Errorf("count_distinct = %g, want 300 ± %.0f", cards, 3*se)
			}
			if st := p.Stats(); st.Dropped != 0 {
				t.Errorf("Dropped = %d, want 0: folded events are not dropped", st.Dropped)
			}
		})
	}
}

// TestAggregatePanesSlide slides the window over a long stream and
// compares the measures with brute force at many points: a pane leaves
// when its end does, so the measures lie between those of the exact window
// and of the window one pane length longer.
func TestAggregatePanesSlide(t *testing.T) {
	const window = 100 * int64(time.Second)
	paneLen := (window + aggPanes - 1) / aggPanes
	evs := paneStream(0, 6000)                                           // 300 s
	evs = append(evs, paneEvent{t: 500 * int64(time.Second), amount: 1}) // every pane left
	p, _ := newPartition(t, wideRule, Options{MaxRunsPerKey: 8})
	mostPanes := 0
	for i, e := range evs {
		feed(t, p, evs[i:i+1], i)
		if i%97 != 0 && i != len(evs)-1 {
			continue
		}
		m := measuresNow(t, p)
		exact := referenceOf(evs[:i+1], e.t-window, e.t)
		wide := referenceOf(evs[:i+1], e.t-window-paneLen, e.t)
		if n := int(m["n"].v); n < exact.n || n > wide.n {
			t.Errorf("event %d: count %d, want %d to %d", i, n, exact.n, wide.n)
		}
		if x := m["spent"].v; x < exact.sum-1e-6 || x > wide.sum+1e-6 {
			t.Errorf("event %d: sum %g, want %g to %g", i, x, exact.sum, wide.sum)
		}
		if x := m["lo"].v; x < wide.lo || x > exact.lo {
			t.Errorf("event %d: min %g, want %g to %g", i, x, wide.lo, exact.lo)
		}
		if x := m["hi"].v; x > wide.hi || x < exact.hi {
			t.Errorf("event %d: max %g, want %g to %g", i, x, exact.hi, wide.hi)
		}
		se := 1.04 / 16 * float64(wide.cards)
		if x := m["cards"].v; x < float64(exact.cards)-3*se || x > float64(wide.cards)+3*se {
			t.Errorf("event %d: count_distinct %g, want %d to %d ± %.0f", i, x, exact.cards, wide.cards, 3*se)
		}
		s := paneState(t, p)
		if len(s.panes) > maxPanes || s.len() > 8 {
			t.Fatalf("event %d: %d panes and %d entries", i, len(s.panes), s.len())
		}
		mostPanes = max(mostPanes, len(s.panes))
	}
	if mostPanes < aggPanes {
		t.Errorf("at most %d panes: the stream does not fill the window's", mostPanes)
	}
	// The last event came after every pane left: exact again.
	m := measuresNow(t, p)
	if s := paneState(t, p); len(s.panes) != 0 || m["n"].v != 1 || m["cards"].v != 0 || m["spent"].v != 1 {
		t.Errorf("after a gap: %d panes, n=%g cards=%g sum=%g, want 0, 1, 0, 1", len(s.panes), m["n"].v, m["cards"].v, m["spent"].v)
	}
}

// TestAggregatePanesTumbling checks that a tumbling window's panes leave
// with it, and that its counts stay exact.
func TestAggregatePanesTumbling(t *testing.T) {
	const yaml = `
ruleset: test
rules:
  - id: per-window
    aggregate:
      window: 10s
      tumbling: true
      measures:
        n: count()
        spent: sum(event.amount)
        cards: count_distinct(event.card)
      having: n > 100000
    alert:
      summary: '"busy"'
`
	evs := paneStream(0, 700) // 35 s: four windows
	p, _ := newPartition(t, yaml, Options{MaxRunsPerKey: 8})
	for i, e := range evs {
		feed(t, p, evs[i:i+1], i)
		start := windowStart(e.t, 10*int64(time.Second))
		ref := referenceOf(evs[:i+1], start-1, e.t)
		m := measuresNow(t, p)
		if int(m["n"].v) != ref.n || math.Abs(m["spent"].v-ref.sum) > 1e-9*ref.sum {
			t.Fatalf("event %d: n=%g sum=%g, want %d, %g", i, m["n"].v, m["spent"].v, ref.n, ref.sum)
		}
		if se := 1.04 / 16 * float64(ref.cards); math.Abs(m["cards"].v-float64(ref.cards)) > 3*se+0.5 {
			t.Fatalf("event %d: cards=%g, want %d ± %.0f", i, m["cards"].v, ref.cards, 3*se)
		}
		if s := paneState(t, p); len(s.panes) > aggPanes {
			t.Fatalf("event %d: %d panes in a tumbling window", i, len(s.panes))
		}
	}
}

// TestAggregatePanesRoundTrip checkpoints a key holding panes mid-window:
// the restored state encodes to the same bytes and fires the same alerts
// with the same measures.
func TestAggregatePanesRoundTrip(t *testing.T) {
	evs := paneStream(0, 3000)
	opts := Options{MaxRunsPerKey: 8}
	prog := program(t, wideRule)
	pc, qc := &collector{}, &collector{}
	p, _ := NewPartition(prog, pc, opts)
	q, _ := NewPartition(prog, qc, opts)
	feed(t, p, evs[:1500], 0)
	good, ok := p.AppendKeyState(nil, "k")
	if !ok {
		t.Fatal("key k holds no state")
	}
	if len(paneState(t, p).panes) == 0 {
		t.Fatal("no pane at the checkpoint")
	}
	q.Advance(evs[1499].t + 1)
	if err := q.RestoreKey("k", good); err != nil {
		t.Fatalf("RestoreKey: %v", err)
	}
	again, _ := q.AppendKeyState(nil, "k")
	if !bytes.Equal(good, again) {
		t.Fatal("state re-encoded after restore differs from the original")
	}
	pc.alerts = nil
	feed(t, p, evs[1500:], 1500)
	feed(t, q, evs[1500:], 1500)
	p.Advance(math.MaxInt64)
	q.Advance(math.MaxInt64)
	if len(pc.alerts) == 0 {
		t.Fatal("no alert after the checkpoint: the test shows nothing")
	}
	if got, want := fired(qc), fired(pc); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("alerts after restore\n got %q\nwant %q", got, want)
	}

	// Every truncation and a change of every byte of the panes either
	// fails with ErrSnapshot or restores something that encodes again.
	restore := func(what string, b []byte) error {
		defer func() {
			if v := recover(); v != nil {
				t.Errorf("%s: RestoreKey panicked: %v", what, v)
			}
		}()
		r, _ := NewPartition(prog, &collector{}, opts)
		err := r.RestoreKey("k", b)
		if err != nil && !errors.Is(err, ErrSnapshot) {
			t.Errorf("%s: error %v does not wrap ErrSnapshot", what, err)
		}
		return err
	}
	refused := 0
	for cut := range len(good) {
		if restore(fmt.Sprintf("cut at %d", cut), good[:cut]) != nil {
			refused++
		}
	}
	if refused < len(good)*9/10 {
		t.Errorf("%d of %d truncations refused, want nine tenths", refused, len(good))
	}
	for i := len(good) - 1; i >= 0 && i >= len(good)-2000; i-- {
		for _, x := range []byte{0, 0x7f, 0xff} {
			bad := bytes.Clone(good)
			bad[i] = x
			_ = restore(fmt.Sprintf("byte %d set to %#x", i, x), bad)
		}
	}
}

// TestAggregatePanesHostile reads hand-made pane sections of wideRule (5
// values per event: cards, spent, lo, hi, mean) that are corrupt or claim
// more than their bytes hold.
func TestAggregatePanesHostile(t *testing.T) {
	prog := program(t, wideRule)
	var a *aggPlan
	for _, pr := range prog.rules {
		if pr.agg != nil {
			a = pr.agg
		}
	}
	if a == nil || a.cols != 5 {
		t.Fatalf("wideRule's plan: %+v", a)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	zeros := func(n int) []byte { return make([]byte, n) }
	for name, b := range map[string][]byte{
		"a million panes":              {0x80, 0x80, 0x40},
		"panes past the bound":         cat([]byte{maxPanes + 1}, zeros(4000)),
		"a pane of no events":          {1, 0, 0, 0, 0, 0, 0, 0},
		"an unknown value kind":        {1, 0, 1, 9, 0, 0, 0, 0},
		"a short sketch":               cat([]byte{1, 0, 1, 2}, zeros(10)),
		"a sketch in a number column":  cat([]byte{1, 0, 1, 0, 2}, zeros(256), zeros(3)),
		"numbers in a sketch column":   cat([]byte{1, 0, 1, 1, 1}, zeros(24), zeros(4)),
		"panes going back":             {2, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0},
		"more values than events":      cat([]byte{1, 0, 1, 0, 1, 2}, zeros(24), zeros(3)),
		"a pane past the end of time":  {2, 2, 1, 0, 0, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1, 0, 0, 0, 0, 0},
		"a pane off the pane length":   {1, 2, 1, 0, 0, 0, 0, 0},
		"a register past the top rank": cat([]byte{1, 0, 1, 2}, zeros(255), []byte{maxRank + 1}, zeros(4)),
		"no value kinds":               {1, 0, 1, 0, 0},
		"a count of values cut short":  {1, 0, 1, 0, 1, 0x80},
	} {
		d := &snapDecoder{b: b, size: len(b), item: -1}
		if panes := readPanes(d, a.cols, a); d.err == nil {
			t.Errorf("%s: read %d panes without error", name, len(panes))
		}
	}
	ok := cat([]byte{1, 0, 1, 0, 1, 1}, zeros(24), []byte{0, 0, 0})
	d := &snapDecoder{b: ok, size: len(ok), item: -1}
	if panes := readPanes(d, a.cols, a); d.err != nil || len(panes) != 1 || len(d.b) != 0 {
		t.Errorf("a good pane: %d panes, %d bytes left, error %v", len(panes), len(d.b), d.err)
	}
}

// TestHyperLogLogEstimate checks the sketch's estimate within three
// standard errors from a few values to many, over hashValue's hashes
// (whose small values differ in their low bits only), and that merging
// two sketches estimates their union.
func TestHyperLogLogEstimate(t *testing.T) {
	for _, n := range []int{1, 2, 5, 20, 100, 300, 1000, 10000, 100000} {
		var h hllSketch
		for i := range n {
			v, ok := hashValue(types.Int(i))
			if !ok {
				t.Fatal("no hash of an int")
			}
			h.add(v)
			h.add(v) // twice: counted once
		}
		if got, se := h.estimate(), 1.04/16*float64(n); math.Abs(got-float64(n)) > 3*se+0.5 {
			t.Errorf("%d values: estimate %.1f, want ± %.1f", n, got, 3*se)
		}
	}
	var yes, no hllSketch
	for _, b := range []bool{true, false} {
		v, _ := hashValue(types.Bool(b))
		if b {
			yes.add(v)
		} else {
			no.add(v)
		}
	}
	yes.merge(&no)
	if got := math.Round(yes.estimate()); got != 2 {
		t.Errorf("true and false: estimate %g, want 2", got)
	}
}

// TestAggregatePanesSmallerBound restores a window under a smaller
// MaxRunsPerKey: the next event folds it down to the bound, and the count
// stays exact.
func TestAggregatePanesSmallerBound(t *testing.T) {
	evs := paneStream(0, 200)
	prog := program(t, wideRule)
	p, _ := NewPartition(prog, &collector{}, Options{MaxRunsPerKey: 50})
	feed(t, p, evs[:199], 0)
	st, ok := p.AppendKeyState(nil, "k")
	if !ok {
		t.Fatal("key k holds no state")
	}
	q, _ := NewPartition(prog, &collector{}, Options{MaxRunsPerKey: 3})
	q.Advance(evs[198].t + 1)
	if err := q.RestoreKey("k", st); err != nil {
		t.Fatalf("RestoreKey: %v", err)
	}
	feed(t, q, evs[199:], 199)
	if s := paneState(t, q); s.len() != 3 || len(s.panes) == 0 {
		t.Errorf("%d entries and %d panes, want 3 and some", s.len(), len(s.panes))
	}
	if n := measuresNow(t, q)["n"].v; n != 200 {
		t.Errorf("count %g, want 200", n)
	}
}
