package gen_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shrike-cep/shrike/cep"
	"github.com/shrike-cep/shrike/internal/gen"
	"github.com/shrike-cep/shrike/rules"
)

// ruleFor names the rule that must catch a scenario: by the generator's
// convention, its id is the scenario name with dashes for underscores.
func ruleFor(scenario string) string { return gen.Rule(scenario) }

// keyField is the field each stream's ruleset keys on.
var keyField = map[string]string{
	gen.StreamPayments:        "account_id",
	gen.StreamAccountSecurity: "user_id",
	gen.StreamITOps:           "service",
}

func fixedClock() time.Time { return time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC) }

// TestRulesFire runs generated streams through their example rulesets with
// cep.Replay, as `shrike gen | shrike run` does, and checks that the alerts
// are exactly the injected patterns: every instance fires its rule for its
// key, every alert takes at least one event of its own pattern and none of
// another, nothing fires on ordinary traffic, and every rule of the
// ruleset fires.
func TestRulesFire(t *testing.T) {
	tests := []struct {
		name string
		opts gen.Options
	}{
		{"payments/ten minutes", gen.Options{Stream: gen.StreamPayments, Seed: 1, Duration: 10 * time.Minute}},
		{"payments/recording", gen.Recordings[gen.StreamPayments]},
		{"account_security/ten minutes", gen.Options{Stream: gen.StreamAccountSecurity, Seed: 1, Duration: 10 * time.Minute}},
		{"account_security/recording", gen.Recordings[gen.StreamAccountSecurity]},
		{"itops/ten minutes", gen.Options{Stream: gen.StreamITOps, Seed: 1, Duration: 10 * time.Minute}},
		{"itops/ten minutes, another seed", gen.Options{Stream: gen.StreamITOps, Seed: 99, Duration: 10 * time.Minute}},
		{"itops/recording", gen.Recordings[gen.StreamITOps]},
		{"itops/half an hour, many services, out of order", gen.Options{
			Stream: gen.StreamITOps, Seed: 5, Duration: 30 * time.Minute, Keys: 40, Rate: 30,
			OutOfOrder: 0.05, MaxLateness: 5 * time.Second, IncidentEvery: time.Minute,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream := tt.opts.Stream
			g, err := gen.New(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			var events bytes.Buffer
			if _, err := g.WriteTo(&events); err != nil {
				t.Fatal(err)
			}
			rs := loadRuleset(t, stream)
			var out bytes.Buffer
			sum, err := cep.Replay(context.Background(), cep.ReplayOptions{
				Rulesets: []*rules.Compiled{rs},
				Inputs:   []cep.Input{{Name: stream + ".jsonl", R: bytes.NewReader(events.Bytes())}},
				Alerts:   &out,
				Clock:    fixedClock,
			})
			if err != nil {
				t.Fatalf("replay: %v", err)
			}
			if sum.DeadLettered != 0 || sum.Late != 0 {
				t.Errorf("%d dead-lettered and %d late lines, want none", sum.DeadLettered, sum.Late)
			}
			for _, r := range sum.Rules {
				if r.CELErrors != 0 {
					t.Errorf("rule %s: %d CEL errors, want none", r.Rule, r.CELErrors)
				}
			}
			checkAlerts(t, stream, events.Bytes(), out.Bytes(), rs)
		})
	}
}

func loadRuleset(t *testing.T, stream string) *rules.Compiled {
	t.Helper()
	path := filepath.Join("..", "..", "rulesets", stream+".yaml")
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Load(path, src, rules.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

type firing struct{ Rule, Key string }

func checkAlerts(t *testing.T, stream string, events, alerts []byte, rs *rules.Compiled) {
	t.Helper()
	labelOf := func(raw []byte) (key, scenario string) {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		key, _ = m[keyField[stream]].(string)
		scenario, _ = m["scenario"].(string)
		return key, scenario
	}
	want := map[firing]bool{}
	sc := bufio.NewScanner(bytes.NewReader(events))
	for sc.Scan() {
		if key, scenario := labelOf(sc.Bytes()); scenario != "" {
			want[firing{ruleFor(scenario), key}] = true
		}
	}

	got := map[firing]bool{}
	sc = bufio.NewScanner(bytes.NewReader(alerts))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var a struct {
			Rule   string                       `json:"rule"`
			Key    string                       `json:"key"`
			Events map[string][]json.RawMessage `json:"events"`
		}
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			t.Fatalf("alert %s: %v", sc.Bytes(), err)
		}
		got[firing{a.Rule, a.Key}] = true
		// An alert may take ordinary events too (a background error joins
		// a burst, a baseline is ordinary samples), but at least one of
		// its own pattern and none of another.
		own := 0
		for step, evs := range a.Events {
			for _, raw := range evs {
				key, scenario := labelOf(raw)
				if key != a.Key {
					t.Errorf("rule %s key %s step %s took an event of key %s", a.Rule, a.Key, step, key)
				}
				switch {
				case scenario == "":
				case ruleFor(scenario) == a.Rule:
					own++
				default:
					t.Errorf("rule %s key %s step %s took an event of scenario %s", a.Rule, a.Key, step, scenario)
				}
			}
		}
		if own == 0 {
			t.Errorf("rule %s key %s fired on ordinary events only: %s", a.Rule, a.Key, sc.Bytes())
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("alerts by (rule, key) (-injected +fired):\n%s", diff)
	}
	fired := map[string]bool{}
	for f := range got {
		fired[f.Rule] = true
	}
	// A rule that reads a managed list fires on the list's items, which
	// the generator knows nothing of and this replay leaves empty (so it
	// must fire on nothing, which the comparison above holds it to); the
	// ruleset's own tests give it items and make it fire.
	onManaged := readsManagedList(rs)
	for _, r := range rs.Rules {
		if !fired[r.ID] && !onManaged[r.ID] {
			t.Errorf("rule %s never fires", r.ID)
		}
	}
}

// readsManagedList returns the ids of the rules of rs whose conditions
// read one of its managed lists.
func readsManagedList(rs *rules.Compiled) map[string]bool {
	var names []string
	for _, d := range rs.ManagedLists() {
		names = append(names, "lists."+d.Name)
	}
	reads := func(src string) bool {
		for _, n := range names {
			if strings.Contains(src, n) {
				return true
			}
		}
		return false
	}
	var inSteps func([]*rules.Step) bool
	inSteps = func(steps []*rules.Step) bool {
		for _, st := range steps {
			if reads(st.Where) || reads(st.Until) || inSteps(st.Steps) {
				return true
			}
		}
		return false
	}
	out := map[string]bool{}
	for _, r := range rs.Rules {
		if reads(r.Rule.When) || inSteps(r.Rule.Pattern) {
			out[r.ID] = true
		}
	}
	return out
}

// TestScenariosMatchRulesets holds the generator's account of its
// patterns, which `shrike gen` reports, to the example rulesets: the
// ruleset of each stream is named after it and reads the topic gen
// produces to by default, each pattern's rule (Rule) is a rule of that
// very ruleset, and a rule that alerts on an absence is the one
// AbsenceWindow says, with that window.
func TestScenariosMatchRulesets(t *testing.T) {
	for _, stream := range gen.Streams() {
		t.Run(stream, func(t *testing.T) {
			rs := loadRuleset(t, stream)
			if rs.Name != stream || rs.Stream.Topic != stream {
				t.Errorf("rulesets/%s.yaml is ruleset %q on topic %q, want both %q", stream, rs.Name, rs.Stream.Topic, stream)
			}
			byID := map[string]*rules.CompiledRule{}
			for _, r := range rs.Rules {
				byID[r.ID] = r
			}
			for _, sc := range gen.Scenarios(stream) {
				r := byID[gen.Rule(sc)]
				if r == nil {
					t.Errorf("pattern %s: ruleset %s has no rule %s", sc, stream, gen.Rule(sc))
					continue
				}
				absence := len(r.Pattern) > 0 && r.Pattern[len(r.Pattern)-1].Not
				if w := gen.AbsenceWindow(sc); absence != (w > 0) || absence && r.Within != w {
					t.Errorf("pattern %s: AbsenceWindow %v, rule %s ends in a not step: %v, within %v", sc, w, r.ID, absence, r.Within)
				}
			}
		})
	}
}
