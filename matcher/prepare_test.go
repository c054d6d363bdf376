package matcher

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shrike-cep/shrike/rules"
)

const prepareRules = `
ruleset: test
rules:
  - id: single
    when: event.type == "c" && event.n > 5
  - id: seq
    within: 50ms
    pattern:
      - step: a
        where: event.type == "a"
        times: 2..
      - step: b
        where: event.type == "b" && event.n != a[0].n
      - step: c
        not: true
        where: '!(event.type != "c")'
    skip: past_last_event
  - id: strict
    within: 20ms
    pattern:
      - step: a
        where: event.type == "a" && event.n < 3
      - step: b
        contiguity: strict
        where: event.n >= 3
  - id: travel
    within: 30ms
    pattern:
      - step: here
        where: event.type == "a" && event.n > 2
      - step: there
        where: event.type == "a" && distance_km(here.n, 0.0, event.n, 0.0) > 250.0
    skip: past_last_event
`

// otherRules numbers its conditions differently: records it prepared must
// not be read by a Partition of prepareRules.
const otherRules = `
ruleset: other
rules:
  - id: x
    when: event.type == "b"
  - id: y
    when: event.type == "a"
`

// TestPrepareAgreesWithLazyEvaluation runs one random stream through
// Partitions whose records were prepared by their Program, by another
// Program, and not at all: all three must produce the same alerts.
func TestPrepareAgreesWithLazyEvaluation(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// Types as JSON: plain strings, an escaped "a" and a number (which the
	// discriminating switch leaves to evaluation one by one), or none.
	kinds := []string{`,"type":"a"`, `,"type":"b"`, `,"type":"c"`, `,"type":"d"`, `,"type":"\u0061"`, `,"type":7`, ``}
	var raws []string
	var keys []string
	var times []int64
	for i := range 3000 {
		raws = append(raws, fmt.Sprintf(`{"id":%d,"n":%d%s}`, i, rng.IntN(8), kinds[rng.IntN(len(kinds))]))
		keys = append(keys, fmt.Sprintf("k%d", rng.IntN(20)))
		times = append(times, int64(i)*ms+int64(rng.IntN(3))*ms)
	}
	other := program(t, otherRules)
	if sw := program(t, prepareRules).switches; len(sw) != 1 || len(sw[0].cases) != 3 {
		t.Fatalf("switches = %v, want one on event.type with three cases", sw)
	}
	run := func(prepare func(p *Program, r *Record)) ([]string, int) {
		p, c := newPartition(t, prepareRules, Options{MaxOutOfOrderness: 5 * time.Millisecond})
		known := 0
		for i, raw := range raws {
			ev, err := rules.ParseEvent([]byte(raw))
			if err != nil {
				t.Fatal(err)
			}
			r := &Record{Event: ev, Key: keys[i], Time: times[i], Pos: Position{Source: "test", Offset: int64(i)}}
			prepare(p.prog, r)
			if r.pre.known != 0 {
				known++
			}
			p.Push(r)
		}
		p.Advance(1 << 62)
		return c.matches(), known
	}
	lazy, _ := run(func(*Program, *Record) {})
	own, known := run(func(p *Program, r *Record) { p.Prepare(r) })
	foreign, _ := run(func(_ *Program, r *Record) { other.Prepare(r) })
	// Key hashes that collide: the twenty keys share two hashes, so key
	// states must be told apart by their keys.
	colliding, _ := run(func(p *Program, r *Record) {
		p.Prepare(r)
		r.pre.keyHash = uint64(len(r.Key))
	})
	travel := 0
	for _, m := range lazy {
		if strings.HasPrefix(m, "travel ") {
			travel++
		}
	}
	if travel < 10 {
		t.Fatalf("only %d travel alerts: the stream does not exercise distance_km", travel)
	}
	if len(lazy) < 50 {
		t.Fatalf("only %d alerts: the stream does not exercise the rules", len(lazy))
	}
	if known < len(raws)/2 {
		t.Errorf("Prepare evaluated conditions for only %d of %d records", known, len(raws))
	}
	if d := cmp.Diff(lazy, own); d != "" {
		t.Errorf("prepared records match differently (-lazy +prepared):\n%s", d)
	}
	if d := cmp.Diff(lazy, foreign); d != "" {
		t.Errorf("records prepared by another program match differently (-lazy +foreign):\n%s", d)
	}
	if d := cmp.Diff(lazy, colliding); d != "" {
		t.Errorf("records whose key hashes collide match differently (-lazy +colliding):\n%s", d)
	}
}

func TestPrepareSkipsConditionsThatFail(t *testing.T) {
	prog := program(t, prepareRules)
	ev, err := rules.ParseEvent([]byte(`{"id":1}`)) // no type, no n: every condition is an error
	if err != nil {
		t.Fatal(err)
	}
	r := &Record{Event: ev}
	prog.Prepare(r)
	if r.pre.known != 0 {
		t.Errorf("known = %b: a condition that failed to evaluate was kept", r.pre.known)
	}
}

// TestPrepareLoadsNumbersForEventsATravelRuleMayTake checks the plan that
// decides which events get their distance_km operands preloaded: those a
// take condition of the rule reading them may hold for.
func TestPrepareLoadsNumbersForEventsATravelRuleMayTake(t *testing.T) {
	prog := program(t, prepareRules)
	if prog.numbers == nil || prog.numbersAlways || len(prog.numberChains) == 0 {
		t.Fatalf("numbers %v, always %v, chains %v: want a loader gated by chains", prog.numbers != nil, prog.numbersAlways, prog.numberChains)
	}
	for raw, want := range map[string]bool{
		`{"type":"a","n":5}`: true,  // here (and there) may take it
		`{"type":"a","n":1}`: true,  // there may take it
		`{"type":"b","n":5}`: false, // no take condition of travel holds
		`{"type":7,"n":5}`:   false, // a number is not "a"
		`{"n":5}`:            true,  // event.type fails: left to the Partition
	} {
		ev, err := rules.ParseEvent([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		r := &Record{Event: ev}
		prog.Prepare(r)
		if got := prog.mayTakeNumbers(r); got != want {
			t.Errorf("%s: mayTakeNumbers = %v, want %v", raw, got, want)
		}
	}
}
