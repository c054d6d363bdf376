package matcher

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shrike-cep/shrike/internal/gen"
	"github.com/shrike-cep/shrike/rules"
)

// The tests here run rule groups against the same rules stepped apart (a
// Partition with noGroups) and require the same of both: the alerts, ids
// and order included, the counters, and the key states a snapshot holds.

// groupOutput keeps what a Partition emits, alert by alert, in full.
type groupOutput struct{ alerts []string }

func (o *groupOutput) Alert(a *Alert) {
	o.alerts = append(o.alerts, a.ID+" "+describeSteps(a))
}
func (o *groupOutput) Late(*Record) {}

// describeSteps renders an alert's rule, key, flags and step records.
func describeSteps(a *Alert) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s@%s %s timeout=%t %s..%s %q", a.Ruleset, a.Rule, a.RuleVersion, a.Key, a.Timeout, a.Start.Format(time.RFC3339Nano), a.End.Format(time.RFC3339Nano), a.Summary)
	for _, s := range a.Steps {
		b.WriteString(" " + s.Step + "=[")
		for _, r := range s.Records {
			fmt.Fprintf(&b, "%d,", r.Seq)
		}
		b.WriteString("]")
	}
	return b.String()
}

// dumpKeyStates renders every resident key's state rule by rule (a group's
// as its members'), as a snapshot holds it.
func dumpKeyStates(p *Partition) string {
	keys := p.ResidentKeys()
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		// Viewed, so that dumping leaves compact keys compact.
		ks, done := p.viewState(k)
		fmt.Fprintf(&b, "key %s\n", k)
		for _, rk := range ks.ruleViews() {
			fmt.Fprintf(&b, " rule %s@%s\n", rk.rule.name, rk.rule.rule.Version)
			for part, runs := range [][]*run{rk.runs, rk.heldRuns()} {
				for _, r := range runs {
					fmt.Fprintf(&b, "  %d state=%d start=%d/%d prev=%d nodes=", part, r.state.ID, r.startTime, r.startSeq, r.prevTime)
					for n := r.last; n != nil; n = n.prev {
						fmt.Fprintf(&b, "%d:%d,", n.ev.seq, n.step)
					}
					b.WriteString("\n")
				}
			}
		}
		done()
	}
	return b.String()
}

// snapshotDump encodes every resident key of p, restores the encodings
// into a fresh Partition of prog that steps rules apart, and dumps that.
func snapshotDump(t *testing.T, p *Partition) string {
	t.Helper()
	q, err := NewPartition(p.prog, &groupOutput{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	q.noGroups = true
	for _, k := range p.ResidentKeys() {
		b, ok := p.AppendKeyState(nil, k)
		if !ok {
			t.Fatalf("resident key %q has no state", k)
		}
		if err := q.RestoreKey(k, b); err != nil {
			t.Fatal(err)
		}
	}
	return dumpKeyStates(q)
}

// groupRun is one Partition of a differential run.
type groupRun struct {
	p   *Partition
	out *groupOutput
}

func newGroupRun(t *testing.T, prog *Program, opts Options, grouped bool) *groupRun {
	t.Helper()
	out := &groupOutput{}
	opts.Clock = func() time.Time { return time.Unix(0, 0) }
	p, err := NewPartition(prog, out, opts)
	if err != nil {
		t.Fatal(err)
	}
	p.noGroups = !grouped
	return &groupRun{p: p, out: out}
}

// differential replays recs through prog grouped and apart, comparing key
// states, snapshots and the keys that changed every few records, and the
// alerts and counters at the end. reload, when set, is applied to both
// halfway. It returns how many group states the grouped Partition held at
// the checks.
func differential(t *testing.T, name string, prog *Program, opts Options, recs []*Record, reload *Program) int {
	t.Helper()
	return differentialOf(t, name, prog, opts, recs, reload, func(p *Partition) { p.noGroups = true }, func(*Partition) {})
}

// differentialOf is differential between two Partitions that setApart and
// setGrouped configure (the diffs label them apart and grouped).
func differentialOf(t *testing.T, name string, prog *Program, opts Options, recs []*Record, reload *Program, setApart, setGrouped func(*Partition)) int {
	t.Helper()
	apart := newGroupRun(t, prog, opts, true)
	grouped := newGroupRun(t, prog, opts, true)
	setApart(apart.p)
	setGrouped(grouped.p)
	var gauges [2]*RunGauge
	for i, run := range []*groupRun{apart, grouped} {
		gauges[i] = NewRunGauge(prog)
		if err := run.p.ShareRuns(gauges[i]); err != nil {
			t.Fatal(err)
		}
	}
	groupStates := 0
	for i, r := range recs {
		if reload != nil && i == len(recs)/2 {
			apart.p.SetProgram(reload)
			grouped.p.SetProgram(reload)
		}
		for _, run := range []*groupRun{apart, grouped} {
			c := clone(r)
			run.p.prog.Prepare(c)
			run.p.Push(c)
		}
		if i%97 != 0 {
			continue
		}
		for e := range grouped.p.keys.all() {
			ks := e.full() // a compact key holds no group state
			if ks == nil {
				continue
			}
			for _, rk := range ks.rules {
				if rk.grouped {
					groupStates++
				}
			}
		}
		want, got := dumpKeyStates(apart.p), dumpKeyStates(grouped.p)
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("%s: record %d: key states (-apart +grouped):\n%s", name, i, d)
		}
		if i%(97*5) == 0 {
			if d := cmp.Diff(snapshotDump(t, apart.p), snapshotDump(t, grouped.p)); d != "" {
				t.Fatalf("%s: record %d: restored snapshots (-apart +grouped):\n%s", name, i, d)
			}
		}
		wc, we := apart.p.Changes()
		gc, ge := grouped.p.Changes()
		slices.Sort(wc)
		slices.Sort(gc)
		slices.Sort(we)
		slices.Sort(ge)
		if d := cmp.Diff([][]string{wc, we}, [][]string{gc, ge}); d != "" {
			t.Fatalf("%s: record %d: changed and emptied keys (-apart +grouped):\n%s", name, i, d)
		}
	}
	apart.p.Advance(math.MaxInt64)
	grouped.p.Advance(math.MaxInt64)
	if d := cmp.Diff(apart.out.alerts, grouped.out.alerts); d != "" {
		t.Fatalf("%s: alerts (-apart +grouped):\n%s", name, d)
	}
	if d := cmp.Diff(apart.p.Stats(), grouped.p.Stats(), cmp.AllowUnexported(RuleStats{})); d != "" {
		t.Fatalf("%s: counters (-apart +grouped):\n%s", name, d)
	}
	if reload == nil {
		want := []any{gauges[0].Peak(), gauges[0].RulePeaks()}
		if d := cmp.Diff(want, []any{gauges[1].Peak(), gauges[1].RulePeaks()}); d != "" {
			t.Fatalf("%s: shared run gauge peaks (-apart +grouped):\n%s", name, d)
		}
	}
	return groupStates
}

// thresholdRules writes rules of the benchmark's template (a large
// transfer, then one to a high-risk country) with the given thresholds,
// each with the given skip strategy and extra lines.
func thresholdRules(b *strings.Builder, prefix string, thresholds []int, skip, first, extra string) {
	for i, th := range thresholds {
		fmt.Fprintf(b, `  - id: %s-%d
    within: 10m
    pattern:
      - step: big
        where: %s
      - step: risky
        where: event.type == "transfer" && event.country in lists.high_risk_countries
    skip: %s
%s`, prefix, i, fmt.Sprintf(first, th), skip, extra)
	}
}

// paymentsRecords generates a payments stream over few keys, so that keys
// hold many partial matches.
func paymentsRecords(t *testing.T, rs *rules.Compiled, seed uint64, events, keys int) []*Record {
	t.Helper()
	return generatedRecords(t, rs, gen.Options{Seed: seed, Events: events, Keys: keys, Rate: 20, OutOfOrder: 0.05, MaxLateness: 1500 * time.Millisecond, FraudRate: 0.02}, "payments/0")
}

const thresholdHeader = `ruleset: thresholds
stream:
  topic: payments
  key: event.account_id
  time: event.ts
  max_out_of_orderness: 5s
lists:
  high_risk_countries: [KP, IR, SY, CU]
rules:
`

// TestGroupsMatchRulesApartOnPayments runs rulesets of the benchmark's
// template (with thresholds in random order, repeated ones, a comparison
// that fails on events without an amount, each skip strategy, timeouts,
// other rules among them and a per-key cap the groups pass) over the
// payments stream.
func TestGroupsMatchRulesApartOnPayments(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	firsts := []string{
		`event.type == "transfer" && event.amount > %d.0`,
		`event.amount > %d.0 && event.type == "transfer"`, // fails on events without an amount
		`event.type == "transfer" && event.amount <= %d.0`,
	}
	groups := 0
	for trial, skip := range []string{"past_last_event", "none", "to_next", "{to_first: big}", "{to_last: risky}", "past_last_event", "past_last_event"} {
		var b strings.Builder
		b.WriteString(thresholdHeader)
		b.WriteString(`  - id: single
    when: event.type == "transfer" && event.amount > 5000.0
`)
		n := 2 + rng.IntN(10)
		thresholds := make([]int, n)
		for i := range thresholds {
			thresholds[i] = 200 * rng.IntN(20)
		}
		first := firsts[trial%len(firsts)]
		extra := ""
		if trial%2 == 1 {
			extra = "    alert: {on_timeout: true}\n"
		}
		thresholdRules(&b, "a", thresholds, skip, first, extra)
		// Another shape (a window of its own) between two groups.
		b.WriteString(`  - id: other
    within: 3m
    pattern:
      - step: big
        where: event.type == "transfer" && event.amount > 2000.0
      - step: risky
        where: event.type == "transfer" && event.country in lists.high_risk_countries
    skip: past_last_event
`)
		thresholdRules(&b, "b", thresholds[:n/2+1], skip, firsts[0], "")
		yaml := b.String()
		rs, err := rules.Load("thresholds.yaml", []byte(yaml), rules.CompileOptions{})
		if err != nil {
			t.Fatalf("trial %d: %v\n%s", trial, err, yaml)
		}
		prog, err := NewProgram([]*rules.Compiled{rs})
		if err != nil {
			t.Fatal(err)
		}
		recs := paymentsRecords(t, rs, uint64(trial), 4000, 15)
		opts := Options{MaxOutOfOrderness: 5 * time.Second, MaxRunsPerKey: []int{10000, 40, 8}[trial%3]}
		groups += differential(t, fmt.Sprintf("trial %d (%s)", trial, skip), prog, opts, recs, nil)
	}
	if groups == 0 {
		t.Fatal("no key ever held a group state: the trials do not exercise groups")
	}
}

// TestGroupsAcrossRulesets groups rules of two rulesets of one stream (the
// second a shadow version with other thresholds and its own list): their
// leaves that read a list are the rulesets' own, so they vary too.
func TestGroupsAcrossRulesets(t *testing.T) {
	var rulesets []*rules.Compiled
	for i, thresholds := range [][]int{{500, 1000, 1500}, {700, 1200}} {
		var b strings.Builder
		b.WriteString(strings.Replace(thresholdHeader, "ruleset: thresholds", fmt.Sprintf("ruleset: thresholds%d", i), 1))
		if i == 1 {
			b.Reset()
			b.WriteString(strings.NewReplacer("ruleset: thresholds", "ruleset: thresholds1", "[KP, IR, SY, CU]", "[KP, IR, SY, CU, US]").Replace(thresholdHeader))
		}
		thresholdRules(&b, "a", thresholds, "past_last_event", `event.type == "transfer" && event.amount > %d.0`, "")
		rs, err := rules.Load(fmt.Sprintf("thresholds%d.yaml", i), []byte(b.String()), rules.CompileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rs.Shadow = i == 1
		rulesets = append(rulesets, rs)
	}
	prog, err := NewProgram(rulesets)
	if err != nil {
		t.Fatal(err)
	}
	if len(prog.groups) != 1 || len(prog.groups[0].members) != 5 {
		t.Fatalf("%d groups, want one of the five rules", len(prog.groups))
	}
	recs := paymentsRecords(t, rulesets[0], 4, 4000, 12)
	if differential(t, "two rulesets", prog, Options{MaxOutOfOrderness: 5 * time.Second}, recs, nil) == 0 {
		t.Fatal("no key ever held a group state")
	}
}

// TestGroupsMatchRulesApartAcrossReload reloads a grouped ruleset halfway
// with one member's threshold changed (a new version: it leaves the group,
// its old version drains), a member removed and one added.
func TestGroupsMatchRulesApartAcrossReload(t *testing.T) {
	load := func(thresholds []int) (*rules.Compiled, *Program) {
		var b strings.Builder
		b.WriteString(thresholdHeader)
		thresholdRules(&b, "a", thresholds, "past_last_event", `event.type == "transfer" && event.amount > %d.0`, "")
		return compileProgram(t, "thresholds.yaml", []byte(b.String()))
	}
	rs, before := load([]int{100, 300, 500, 700, 900})
	_, after := load([]int{100, 350, 500, 700, 900, 1100})
	recs := paymentsRecords(t, rs, 3, 4000, 12)
	if differential(t, "reload", before, Options{MaxOutOfOrderness: 5 * time.Second}, recs, after) == 0 {
		t.Fatal("no key ever held a group state")
	}
}

// shippedProgram loads the shipped ruleset of stream (rulesets/) and
// compiles it alone.
func shippedProgram(t *testing.T, stream string) (*rules.Compiled, *Program) {
	t.Helper()
	src, err := os.ReadFile("../rulesets/" + stream + ".yaml")
	if err != nil {
		t.Fatal(err)
	}
	return compileProgram(t, stream+".yaml", src)
}

// compileProgram loads the ruleset src and compiles it alone.
func compileProgram(t *testing.T, name string, src []byte) (*rules.Compiled, *Program) {
	t.Helper()
	rs, err := rules.Load(name, src, rules.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	prog, err := NewProgram([]*rules.Compiled{rs})
	if err != nil {
		t.Fatal(err)
	}
	return rs, prog
}

// TestGroupsMatchRulesApartOnShippedRulesets runs the shipped rulesets over
// their streams grouped and apart.
func TestGroupsMatchRulesApartOnShippedRulesets(t *testing.T) {
	for _, stream := range []string{"payments", "account_security", "itops"} {
		rs, prog := shippedProgram(t, stream)
		recs := generatedRecords(t, rs, gen.Options{Stream: stream, Seed: 5, Events: 5000, Keys: 40, OutOfOrder: 0.05, MaxLateness: time.Second}, stream)
		differential(t, stream, prog, Options{MaxOutOfOrderness: rs.Stream.MaxOutOfOrderness}, recs, nil)
	}
}

// TestGroupsMatchRulesApartOnRandomPatterns copies random patterns (the
// ones of TestRandomPatternsStepAsSteppingWould) several times with
// different constants, among other rules, over random streams whose
// events lack a field now and then (conditions on it fail).
func TestGroupsMatchRulesApartOnRandomPatterns(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	loaded, groups := 0, 0
	for trial := range 200 {
		yaml := randomPatternRuleset(rng)
		rs, err := rules.Load("test.yaml", []byte(yaml), rules.CompileOptions{})
		if err != nil {
			continue // a combination the language rejects
		}
		loaded++
		prog, err := NewProgram([]*rules.Compiled{rs})
		if err != nil {
			t.Fatal(err)
		}
		recs := randomRecords(t, rng, 400, []string{"a", "b", "c", "d", "e", "f", "g"}, 3, 4, 6)
		opts := Options{MaxOutOfOrderness: 4 * time.Millisecond, MaxRunsPerKey: []int{30, 6}[trial%2]}
		name := fmt.Sprintf("trial %d\n%s", trial, yaml)
		groups += differential(t, name, prog, opts, recs, nil)
		// Restored keys hold their members' states apart until the next
		// record merges them.
		var alerts [2][]string
		for i, grouped := range []bool{false, true} {
			run := newGroupRun(t, prog, opts, grouped)
			evictAndRestore(t, run.p, recs, int64(opts.MaxOutOfOrderness), 7+trial%20)
			alerts[i] = run.out.alerts
		}
		if d := cmp.Diff(alerts[0], alerts[1]); d != "" {
			t.Fatalf("%s: evicted and restored: alerts (-apart +grouped):\n%s", name, d)
		}
	}
	t.Logf("%d of 200 random rulesets loaded, %d group states seen", loaded, groups)
	if loaded < 100 || groups < 100 {
		t.Fatalf("%d rulesets loaded, %d group states seen: the trials do not exercise groups", loaded, groups)
	}
}

// TestGroupsEvictAndRestore evicts and restores the keys of a Partition
// as the engine does, grouped and apart (a restored key holds its members'
// states apart until its next record merges them): the alerts must be
// those of a Partition that keeps every key in memory, and in the same
// order grouped and apart.
func TestGroupsEvictAndRestore(t *testing.T) {
	var b strings.Builder
	b.WriteString(thresholdHeader)
	thresholdRules(&b, "a", []int{0, 500, 1000, 1500, 2000, 4000}, "past_last_event", `event.type == "transfer" && event.amount > %d.0`, "")
	thresholdRules(&b, "b", []int{300, 3000}, "none", `event.type == "transfer" && event.amount > %d.0`, "    alert: {on_timeout: true}\n")
	rs, err := rules.Load("thresholds.yaml", []byte(b.String()), rules.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	prog, err := NewProgram([]*rules.Compiled{rs})
	if err != nil {
		t.Fatal(err)
	}
	recs := paymentsRecords(t, rs, 9, 6000, 20)
	opts := Options{MaxOutOfOrderness: 5 * time.Second}
	inMemory := newGroupRun(t, prog, opts, false)
	for _, r := range recs {
		inMemory.p.Push(clone(r))
	}
	inMemory.p.Advance(math.MaxInt64)
	if len(inMemory.out.alerts) == 0 {
		t.Fatal("no alert")
	}
	// Keys restored when their windows close time out in another order
	// than in memory: the same alerts, in the same order grouped or not.
	want := slices.Sorted(slices.Values(inMemory.out.alerts))
	var evicted [2][]string
	for i, grouped := range []bool{false, true} {
		run := newGroupRun(t, prog, opts, grouped)
		evictAndRestore(t, run.p, recs, int64(opts.MaxOutOfOrderness), 337)
		evicted[i] = run.out.alerts
		if d := cmp.Diff(want, slices.Sorted(slices.Values(run.out.alerts))); d != "" {
			t.Errorf("grouped %t: alerts, sorted (-in memory, apart +evicted and restored):\n%s", grouped, d)
		}
	}
	if d := cmp.Diff(evicted[0], evicted[1]); d != "" {
		t.Errorf("evicted and restored: alerts (-apart +grouped):\n%s", d)
	}
}

// evictAndRestore pushes recs to p, checkpointing and evicting every key it
// can every so many records and restoring an evicted key when a record or
// a closing window needs it, as the engine's key cache does (a key whose
// state emptied since its last checkpoint is not restored).
func evictAndRestore(t *testing.T, p *Partition, recs []*Record, ooo int64, every int) {
	t.Helper()
	s := &store{keys: map[string][]byte{}, deadlines: map[string]int64{}, evicted: map[string]bool{}}
	load := func(k string) { s.load(t, p, k) }
	maxTime := int64(math.MinInt64)
	for i, r := range recs {
		maxTime = max(maxTime, r.Time)
		// In the keys' order: restoring schedules their timers, and keys
		// whose windows close at one instant fire in the order scheduled.
		for _, k := range slices.Sorted(maps.Keys(s.deadlines)) {
			if s.deadlines[k] <= maxTime-ooo-1 {
				load(k)
			}
		}
		load(r.Key)
		c := clone(r)
		p.prog.Prepare(c)
		p.Push(c)
		if i%every == 0 {
			s.checkpoint(t, p)
			buffered := p.BufferedSet()
			for _, k := range p.ResidentKeys() {
				if buffered.MayHold(k) {
					continue
				}
				if d, ok := p.KeyDeadline(k); ok {
					s.deadlines[k] = d
				}
				p.Evict(k)
				s.evicted[k] = true
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(s.deadlines)) {
		load(k)
	}
	p.Advance(math.MaxInt64)
}

// TestPlanGroups checks which rules the planner groups: consecutive rules
// of one shape, at most 64 to a group; a different window, skip strategy
// or pattern, a condition that reads the partial match, or a rule of
// another shape between them breaks a group.
func TestPlanGroups(t *testing.T) {
	rule := func(id, within, skip, first, second string) string {
		return fmt.Sprintf("  - id: %s\n    within: %s\n    pattern:\n      - step: big\n        where: %s\n      - step: risky\n        where: %s\n    skip: %s\n", id, within, first, second, skip)
	}
	big := func(n int) string { return fmt.Sprintf(`event.type == "transfer" && event.amount > %d.0`, n) }
	risky := `event.type == "transfer" && event.country in lists.high_risk_countries`
	tests := []struct {
		name  string
		rules []string
		want  []int // group sizes
	}{
		{"one shape", []string{rule("a", "10m", "past_last_event", big(1), risky), rule("b", "10m", "past_last_event", big(2), risky), rule("c", "10m", "past_last_event", big(3), risky)}, []int{3}},
		{"window", []string{rule("a", "10m", "past_last_event", big(1), risky), rule("b", "5m", "past_last_event", big(2), risky)}, nil},
		{"skip", []string{rule("a", "10m", "past_last_event", big(1), risky), rule("b", "10m", "to_next", big(2), risky)}, nil},
		{"reads the match", []string{rule("a", "10m", "none", big(1), `event.amount > big.amount`), rule("b", "10m", "none", big(2), `event.amount > big.amount`)}, nil},
		{"another rule between", []string{rule("a", "10m", "none", big(1), risky), "  - id: s\n    when: event.amount > 3.0\n", rule("b", "10m", "none", big(2), risky), rule("c", "10m", "none", big(3), risky)}, []int{2}},
		{"other conditions", []string{rule("a", "10m", "none", big(1), risky), rule("b", "10m", "none", `event.type == "login" && event.amount > 5.0`, `event.type == "transfer" && event.country == "FR"`)}, []int{2}},
	}
	var many []string
	for i := range 100 {
		many = append(many, rule(fmt.Sprintf("r%d", i), "10m", "past_last_event", big(1000+10*i), risky))
	}
	tests = append(tests, struct {
		name  string
		rules []string
		want  []int
	}{"a hundred", many, []int{64, 36}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prog := program(t, thresholdHeader+strings.Join(tt.rules, ""))
			var got []int
			for _, g := range prog.groups {
				got = append(got, len(g.members))
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("group sizes (-want +got):\n%s", d)
			}
		})
	}
}

// TestGroupsTraced traces a key of a grouped ruleset: the Partition with
// the Tracer steps the rules apart, so that the trace reports each rule's
// own partial matches, and gives the alerts of a grouped one.
func TestGroupsTraced(t *testing.T) {
	var b strings.Builder
	b.WriteString(thresholdHeader)
	thresholdRules(&b, "a", []int{0, 500, 1000, 1500}, "past_last_event", `event.type == "transfer" && event.amount > %d.0`, "")
	rs, err := rules.Load("thresholds.yaml", []byte(b.String()), rules.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	prog, err := NewProgram([]*rules.Compiled{rs})
	if err != nil {
		t.Fatal(err)
	}
	recs := paymentsRecords(t, rs, 2, 3000, 10)
	grouped := newGroupRun(t, prog, Options{MaxOutOfOrderness: 5 * time.Second}, true)
	for _, r := range recs {
		grouped.p.Push(clone(r))
	}
	grouped.p.Advance(math.MaxInt64)
	key := ""
	for _, a := range grouped.out.alerts {
		if strings.Contains(a, "thresholds/a-3@") {
			key = strings.Fields(a)[2]
			break
		}
	}
	if key == "" {
		t.Fatal("no alert of the last rule")
	}
	alerted := map[string]int{}
	tracer := NewTracer(key, func(e *TraceEvent) {
		if e.Kind == TraceAlert {
			alerted[e.Rule.Rule]++
		}
	})
	traced := newGroupRun(t, prog, Options{MaxOutOfOrderness: 5 * time.Second, Tracer: tracer}, true)
	for _, r := range recs {
		traced.p.Push(clone(r))
	}
	traced.p.Advance(math.MaxInt64)
	if d := cmp.Diff(grouped.out.alerts, traced.out.alerts); d != "" {
		t.Errorf("alerts (-grouped +traced):\n%s", d)
	}
	want := map[string]int{}
	for _, a := range grouped.out.alerts {
		if f := strings.Fields(a); f[2] == key {
			want[strings.TrimPrefix(strings.Split(f[1], "@")[0], "thresholds/")]++
		}
	}
	if d := cmp.Diff(want, alerted); d != "" {
		t.Errorf("traced alerts by rule (-want +got):\n%s", d)
	}
}

// randomPatternRuleset writes a ruleset of a random pattern copied several
// times with different constants, among single-event rules.
func randomPatternRuleset(rng *rand.Rand) string {
	conds := []string{
		`event.type == "a"`, `event.type == "b"`, `event.type != "c"`, `event.type == "d" && event.n > %d`,
		`event.n < %d`, `event.m > %d && event.type == "a"`, `event.type == "b" && event.m > %d`,
		`!(event.type == "e")`, `event.type == "c" || event.n == %d`, `event.n >= %d`,
	}
	stepConds := []string{`event.n > s0[0].n`, `event.type == "a" && event.n >= s0[0].n`}
	skips := []string{"none", "to_next", "past_last_event", "{to_first: s0}", "{to_last: s0}"}

	var pattern strings.Builder
	steps := 1 + rng.IntN(4)
	prevOptional, prevNot := false, false
	for i := range steps {
		fmt.Fprintf(&pattern, "      - step: s%d\n", i)
		cond := conds[rng.IntN(len(conds))]
		if i > 0 && rng.IntN(8) == 0 {
			cond = stepConds[rng.IntN(len(stepConds))]
		}
		fmt.Fprintf(&pattern, "        where: '%s'\n", cond)
		if i > 0 {
			fmt.Fprintf(&pattern, "        contiguity: %s\n", []string{"strict", "relaxed", "any"}[rng.IntN(3)])
		}
		looping := false
		switch rng.IntN(6) {
		case 0:
			fmt.Fprintf(&pattern, "        times: %d..\n", 1+rng.IntN(3))
			looping = true
		case 1:
			lo := 1 + rng.IntN(2)
			fmt.Fprintf(&pattern, "        times: %d..%d\n", lo, lo+1+rng.IntN(2))
			looping = true
		case 2:
			if i > 0 && !prevOptional && !prevNot {
				pattern.WriteString("        not: true\n")
				prevNot, prevOptional = true, false
				continue
			}
		case 3:
			pattern.WriteString("        optional: true\n")
		}
		prevNot = false
		prevOptional = strings.HasSuffix(pattern.String(), "optional: true\n")
		if looping && rng.IntN(3) == 0 {
			pattern.WriteString("        greedy: true\n")
		}
		if looping && rng.IntN(3) == 0 {
			fmt.Fprintf(&pattern, "        loop: %s\n", []string{"strict", "relaxed", "any"}[rng.IntN(3)])
		}
		if looping && rng.IntN(4) == 0 {
			pattern.WriteString("        until: event.type == \"f\"\n")
		}
		if i > 0 && rng.IntN(4) == 0 {
			fmt.Fprintf(&pattern, "        within: %dms\n", 5+rng.IntN(10))
		}
	}
	within := 10 + rng.IntN(40)
	skip := skips[rng.IntN(len(skips))]
	template := pattern.String()
	var b strings.Builder
	b.WriteString("ruleset: r\nrules:\n")
	copies := 2 + rng.IntN(5)
	for c := range copies {
		if rng.IntN(4) == 0 {
			fmt.Fprintf(&b, "  - id: single-%d\n    when: event.n == %d\n", c, rng.IntN(8))
		}
		body := template
		for strings.Contains(body, "%d") {
			body = strings.Replace(body, "%d", fmt.Sprint(rng.IntN(8)), 1)
		}
		fmt.Fprintf(&b, "  - id: p%d\n    within: %dms\n    pattern:\n%s    skip: %s\n", c, within, body, skip)
		if c%2 == 1 {
			b.WriteString("    alert: {on_timeout: true}\n")
		}
	}
	return b.String()
}
