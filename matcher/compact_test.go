package matcher

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shrike-cep/shrike/internal/gen"
	"github.com/shrike-cep/shrike/rules"
)

// The tests here run Partitions that keep keys compact (compact.go)
// against Partitions that never do, and require the same of both: the
// alerts, ids and order included, the counters, the changed keys and the
// key states a snapshot holds.

// compactDifferential is differential between a Partition that never
// keeps a key compact and one that does; it returns how many times the
// second folded a key.
func compactDifferential(t *testing.T, name string, prog *Program, opts Options, recs []*Record, reload *Program) uint64 {
	t.Helper()
	var compact *Partition
	differentialOf(t, name, prog, opts, recs, reload,
		func(p *Partition) { p.noCompact = true },
		func(p *Partition) { compact = p })
	return compact.folds
}

// TestCompactKeysMatchExpandedOnShippedRulesets runs the shipped rulesets
// over their streams with many keys, most holding one partial match.
func TestCompactKeysMatchExpandedOnShippedRulesets(t *testing.T) {
	for _, stream := range []string{"payments", "account_security", "itops"} {
		rs, prog := shippedProgram(t, stream)
		for _, keys := range []int{40, 2000} {
			recs := generatedRecords(t, rs, gen.Options{Stream: stream, Seed: 9, Events: 5000, Keys: keys, Rate: 200, OutOfOrder: 0.05, MaxLateness: time.Second}, stream)
			name := fmt.Sprintf("%s, %d keys", stream, keys)
			for _, opts := range []Options{
				{MaxOutOfOrderness: time.Second},
				{MaxOutOfOrderness: time.Second, NoCheckpoints: true},
			} {
				folds := compactDifferential(t, name, prog, opts, recs, nil)
				if folds == 0 && keys > 40 {
					t.Errorf("%s: no key was folded compact: the test does not exercise compact keys", name)
				}
			}
		}
	}
}

// TestCompactKeysMatchExpandedOnRandomPatterns runs the random patterns of
// TestGroupsMatchRulesApartOnRandomPatterns, with a reload halfway (the
// rules' indexes move) and keys evicted and restored.
func TestCompactKeysMatchExpandedOnRandomPatterns(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	var folds uint64
	for trial := range 120 {
		yaml := randomPatternRuleset(rng)
		rs, err := rules.Load("test.yaml", []byte(yaml), rules.CompileOptions{})
		if err != nil {
			continue // a combination the language rejects
		}
		prog, err := NewProgram([]*rules.Compiled{rs})
		if err != nil {
			t.Fatal(err)
		}
		var reload *Program
		if trial%3 == 0 {
			// The same rules behind a new one: every index moves by one.
			ahead, err := rules.Load("test.yaml", []byte(strings.Replace(yaml, "rules:\n", "rules:\n  - id: first\n    when: event.n == 99\n", 1)), rules.CompileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if reload, err = NewProgram([]*rules.Compiled{ahead}); err != nil {
				t.Fatal(err)
			}
		}
		recs := randomRecords(t, rng, 400, []string{"a", "b", "c", "d", "e", "f", "g"}, 30, 4, 6)
		opts := Options{MaxOutOfOrderness: 4 * time.Millisecond, MaxRunsPerKey: []int{30, 1}[trial%2], NoCheckpoints: trial%4 == 1}
		name := fmt.Sprintf("trial %d\n%s", trial, yaml)
		folds += compactDifferential(t, name, prog, opts, recs, reload)
		var alerts [2][]string
		var stats [2]Stats
		for i, compact := range []bool{false, true} {
			run := newGroupRun(t, prog, opts, true)
			run.p.noCompact = !compact
			evictAndRestore(t, run.p, recs, int64(opts.MaxOutOfOrderness), 7+trial%20)
			alerts[i], stats[i] = run.out.alerts, run.p.Stats()
		}
		if d := cmp.Diff(alerts[0], alerts[1]); d != "" {
			t.Fatalf("%s: evicted and restored: alerts (-expanded +compact):\n%s", name, d)
		}
		if d := cmp.Diff(stats[0], stats[1], cmp.AllowUnexported(RuleStats{})); d != "" {
			t.Fatalf("%s: evicted and restored: counters (-expanded +compact):\n%s", name, d)
		}
	}
	// Most keys hold partial matches of several copies of the pattern,
	// which no compact key holds: a few hundred folds.
	if folds < 100 {
		t.Fatalf("keys folded compact %d times: the trials do not exercise compact keys", folds)
	}
}
