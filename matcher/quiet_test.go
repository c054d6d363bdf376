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

// quietRules uses every step option, so that records leave partial
// matches in every kind of state: loops (relaxed, strict, any, greedy,
// until), optional steps, every contiguity, absences in the middle and at
// the end, per-step windows, timeouts, each skip strategy. Conditions on
// event.m fail to evaluate (no such key) on the events without it.
const quietRules = `
ruleset: quiet
rules:
  - id: loop-until
    within: 40ms
    pattern:
      - step: a
        where: event.type == "a"
        times: 2..
        greedy: true
        until: event.type == "e"
      - step: b
        where: event.type == "b" && event.m > 2
    skip: to_next
    alert: {on_timeout: true}
  - id: optional-any
    within: 30ms
    pattern:
      - step: a
        where: event.type == "a"
        optional: true
      - step: b
        contiguity: any
        where: event.type == "b"
        times: 1..3
        loop: any
      - step: c
        where: event.type == "c" && event.n > b[0].n
    skip: none
  - id: strict-middle
    within: 25ms
    pattern:
      - step: a
        where: event.type == "c"
      - step: gap
        not: true
        contiguity: strict
        where: event.type == "d"
      - step: b
        contiguity: strict
        where: event.type == "a" || event.type == "b"
        times: 2
        loop: strict
    skip: {to_first: b}
  - id: absent-end
    within: 20ms
    pattern:
      - step: a
        where: event.type == "d" && event.m < 5
      - step: b
        where: event.type == "e"
        within: 10ms
      - step: none
        not: true
        where: event.type == "a"
    skip: past_last_event
    alert: {on_timeout: true}
  - id: last-skip
    within: 50ms
    pattern:
      - step: a
        where: event.type == "b"
        times: 3..
      - step: b
        where: event.m >= 0 && event.type == "c"
    skip: {to_last: a}
`

// TestQuietRecordsStepAsSteppingWould replays one random stream through a
// Partition whose records were prepared (so that leavesAsIs decides most
// of them without stepping) and one whose records were not (every record
// stepped): alerts and counters, CEL errors included, must agree.
func TestQuietRecordsStepAsSteppingWould(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	types := []string{"a", "b", "c", "d", "e", "f", "f", "f"}
	opts := Options{MaxOutOfOrderness: 5 * time.Millisecond, MaxRunsPerKey: 8}
	stream := randomStream(rng, 6000, types, 8, 3, 8)
	stepped, steppedStats, none := replayQuiet(t, quietRules, opts, stream, false)
	decided, decidedStats, quiet := replayQuiet(t, quietRules, opts, stream, true)
	if none != 0 {
		t.Fatalf("%d records left partial matches as they were without prepared conditions", none)
	}
	if quiet < uint64(len(stream)/4) {
		t.Errorf("only %d (rule, record) steps were decided without stepping, want one per four records at least", quiet)
	}
	if len(stepped) < 100 || steppedStats.Timeouts == 0 || steppedStats.Dropped == 0 {
		t.Fatalf("%d alerts, %d timeouts, %d dropped: the stream does not exercise the rules", len(stepped), steppedStats.Timeouts, steppedStats.Dropped)
	}
	for id, rs := range steppedStats.ByRule {
		if rs.Alerts == 0 {
			t.Errorf("rule %s never matched: the stream does not exercise it", id)
		}
	}
	// last-skip's b fails on m before it compares the type (which Prepare
	// decides for every record): such a record must still be stepped, to
	// count the error.
	if steppedStats.ByRule[RuleID{Ruleset: "quiet", Rule: "loop-until"}].CELErrors == 0 || steppedStats.ByRule[RuleID{Ruleset: "quiet", Rule: "last-skip"}].CELErrors == 0 {
		t.Errorf("no CEL errors: the stream does not exercise conditions that fail")
	}
	if d := cmp.Diff(stepped, decided); d != "" {
		t.Errorf("alerts differ (-stepped +decided):\n%s", d)
	}
	if d := cmp.Diff(steppedStats, decidedStats, cmp.AllowUnexported(RuleStats{})); d != "" {
		t.Errorf("counters differ (-stepped +decided):\n%s", d)
	}
}

// TestRandomPatternsStepAsSteppingWould is TestQuietRecordsStepAsSteppingWould
// over random patterns: random steps (quantifiers, optional, greedy, until,
// loop and step contiguity, absences, per-step windows), windows, skip
// strategies and timeouts, over random streams. Rulesets the language
// rejects are skipped; enough must load for the test to count.
func TestRandomPatternsStepAsSteppingWould(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	conds := []string{
		`event.type == "a"`, `event.type == "b"`, `event.type != "c"`, `event.type == "d" && event.n > 3`,
		`event.n < 4`, `event.m > 2 && event.type == "a"`, `event.type == "b" && event.m > 2`,
		`!(event.type == "e")`, `event.type == "c" || event.n == 7`,
	}
	stepConds := []string{`event.n > %s[0].n`, `event.n != %s[size(%s) - 1].n`, `event.type == "a" && event.n >= %s[0].n`}
	skips := []string{"none", "to_next", "past_last_event", "{to_first: s0}", "{to_last: s0}"}
	loaded, alerts := 0, 0
	var quietSteps uint64
	for trial := range 300 {
		var b strings.Builder
		fmt.Fprintf(&b, "ruleset: r\nrules:\n  - id: p\n    within: %dms\n    pattern:\n", 10+rng.IntN(40))
		steps := 1 + rng.IntN(4)
		prevOptional, prevNot := false, false
		for i := range steps {
			fmt.Fprintf(&b, "      - step: s%d\n", i)
			cond := conds[rng.IntN(len(conds))]
			if i > 0 && rng.IntN(4) == 0 {
				cond = strings.ReplaceAll(stepConds[rng.IntN(len(stepConds))], "%s", "s0")
			}
			fmt.Fprintf(&b, "        where: '%s'\n", cond)
			if i > 0 {
				fmt.Fprintf(&b, "        contiguity: %s\n", []string{"strict", "relaxed", "any"}[rng.IntN(3)])
			}
			looping := false
			switch rng.IntN(6) {
			case 0:
				fmt.Fprintf(&b, "        times: %d..\n", 1+rng.IntN(3))
				looping = true
			case 1:
				lo := 1 + rng.IntN(2)
				fmt.Fprintf(&b, "        times: %d..%d\n", lo, lo+1+rng.IntN(2))
				looping = true
			case 2:
				if i > 0 && !prevOptional && !prevNot {
					b.WriteString("        not: true\n")
					prevNot, prevOptional = true, false
					continue
				}
			case 3:
				b.WriteString("        optional: true\n")
			}
			prevNot = false
			prevOptional = strings.HasSuffix(b.String(), "optional: true\n")
			if looping && rng.IntN(3) == 0 {
				b.WriteString("        greedy: true\n")
			}
			if looping && rng.IntN(3) == 0 {
				fmt.Fprintf(&b, "        loop: %s\n", []string{"strict", "relaxed", "any"}[rng.IntN(3)])
			}
			if looping && rng.IntN(4) == 0 {
				b.WriteString("        until: event.type == \"f\"\n")
			}
			if i > 0 && rng.IntN(4) == 0 {
				fmt.Fprintf(&b, "        within: %dms\n", 5+rng.IntN(10))
			}
		}
		fmt.Fprintf(&b, "    skip: %s\n", skips[rng.IntN(len(skips))])
		if rng.IntN(2) == 0 {
			b.WriteString("    alert: {on_timeout: true}\n")
		}
		yaml := b.String()
		if _, err := rules.Load("test.yaml", []byte(yaml), rules.CompileOptions{}); err != nil {
			continue // a combination the language rejects
		}
		loaded++
		opts := Options{MaxOutOfOrderness: 4 * time.Millisecond, MaxRunsPerKey: 30}
		stream := randomStream(rng, 400, []string{"a", "b", "c", "d", "e", "f", "g"}, 3, 4, 6)
		stepped, steppedStats, _ := replayQuiet(t, yaml, opts, stream, false)
		decided, decidedStats, quiet := replayQuiet(t, yaml, opts, stream, true)
		alerts += len(stepped)
		quietSteps += quiet
		if d := cmp.Diff(stepped, decided); d != "" {
			t.Fatalf("trial %d: alerts differ (-stepped +decided):\n%s\nruleset:\n%s", trial, d, yaml)
		}
		if d := cmp.Diff(steppedStats, decidedStats, cmp.AllowUnexported(RuleStats{})); d != "" {
			t.Fatalf("trial %d: counters differ (-stepped +decided):\n%s\nruleset:\n%s", trial, d, yaml)
		}
	}
	t.Logf("%d of 300 random rulesets loaded, %d alerts, %d steps decided without stepping", loaded, alerts, quietSteps)
	if loaded < 150 || alerts < 10*loaded || quietSteps < uint64(10*loaded) {
		t.Fatalf("%d of 300 random rulesets loaded, %d alerts, %d quiet steps: the trials do not exercise the shortcut", loaded, alerts, quietSteps)
	}
}

// quietRec is one event of a random stream for the quiet tests.
type quietRec struct {
	raw, key string
	time     int64
}

// randomStream returns n events {"id","type","n"[,"m"]} with types from
// types over keys keys, 1 ms apart with up to 2 ms of jitter; one in
// mEvery lacks m (conditions on it then fail to evaluate), the others have
// it below mMax.
// randomRecords is randomStream's records, parsed, positioned by index.
func randomRecords(t *testing.T, rng *rand.Rand, n int, types []string, keys, mEvery, mMax int) []*Record {
	t.Helper()
	var recs []*Record
	for i, s := range randomStream(rng, n, types, keys, mEvery, mMax) {
		ev, err := rules.ParseEvent([]byte(s.raw))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &Record{Event: ev, Key: s.key, Time: s.time, Pos: Position{Source: "test", Offset: int64(i)}})
	}
	return recs
}

func randomStream(rng *rand.Rand, n int, types []string, keys, mEvery, mMax int) []quietRec {
	var stream []quietRec
	for i := range n {
		m := ""
		if rng.IntN(mEvery) > 0 {
			m = fmt.Sprintf(`,"m":%d`, rng.IntN(mMax))
		}
		stream = append(stream, quietRec{
			raw:  fmt.Sprintf(`{"id":%d,"type":%q,"n":%d%s}`, i, types[rng.IntN(len(types))], rng.IntN(8), m),
			key:  fmt.Sprintf("k%d", rng.IntN(keys)),
			time: int64(i)*ms + int64(rng.IntN(3))*ms,
		})
	}
	return stream
}

// replayQuiet runs stream through a Partition of the rules in yaml, its
// records prepared (so that leavesAsIs may decide them) or not (every
// record stepped), and returns the alerts, the counters and how many steps
// leavesAsIs decided.
func replayQuiet(t *testing.T, yaml string, opts Options, stream []quietRec, prepare bool) ([]string, Stats, uint64) {
	t.Helper()
	p, c := newPartition(t, yaml, opts)
	for i, s := range stream {
		ev, err := rules.ParseEvent([]byte(s.raw))
		if err != nil {
			t.Fatal(err)
		}
		r := &Record{Event: ev, Key: s.key, Time: s.time, Pos: Position{Source: "test", Offset: int64(i)}}
		if prepare {
			p.prog.Prepare(r)
		}
		p.Push(r)
	}
	p.Advance(1 << 62)
	return c.matches(), p.Stats(), p.quietSteps
}
