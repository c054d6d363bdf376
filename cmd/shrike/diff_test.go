package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shrike-cep/shrike/cep"
	"github.com/shrike-cep/shrike/internal/alertdiff"
	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
)

var paymentsEvents = filepath.Join("..", "..", "rulesets", "testdata", "payments.jsonl")

// higherThresholdRules writes a copy of rulesets/payments.yaml whose rule
// large-card-auth wants an amount above 20,000 instead of 5,000.
func higherThresholdRules(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile(paymentsRules)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(src), "event.amount > 5000.0", "event.amount > 20000.0", 1)
	if edited == string(src) {
		t.Fatal("payments.yaml has no threshold of 5000.0 to raise")
	}
	p := filepath.Join(t.TempDir(), "payments-new.yaml")
	writeFile(t, p, edited)
	return p
}

// runAlone replays the events through one ruleset file, as shrike run does.
func runAlone(t *testing.T, rulesFile string) []*matcher.Alert {
	t.Helper()
	src, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Load(rulesFile, src, rules.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []*matcher.Alert
	if _, err := cep.Replay(context.Background(), cep.ReplayOptions{
		Rulesets: []*rules.Compiled{rs}, Inputs: []cep.Input{{Name: paymentsEvents}},
		OnAlert: func(a *matcher.Alert) { out = append(out, a) },
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// diffJSON is what the tests read of `shrike diff --json`.
type diffJSON struct {
	Differ bool   `json:"differ"`
	Lines  string `json:"lines"`
	Events string `json:"events"`
	Rules  []struct {
		Ruleset         string `json:"ruleset"`
		Rule            string `json:"rule"`
		Both            string `json:"both"`
		OnlyOld         string `json:"only_old"`
		OnlyNew         string `json:"only_new"`
		InOld           bool   `json:"in_old"`
		InNew           bool   `json:"in_new"`
		OnlyOldExamples []struct {
			ID     string `json:"id"`
			Rule   string `json:"rule"`
			Shadow *bool  `json:"shadow"`
		} `json:"only_old_examples"`
		OnlyNewExamples []json.RawMessage `json:"only_new_examples"`
	} `json:"rules"`
}

// TestDiffRaisedThreshold: raising a threshold removes alerts, and diff
// reports exactly those as only old, and nothing only new, against two
// separate replays.
func TestDiffRaisedThreshold(t *testing.T) {
	newRules := higherThresholdRules(t)
	status, stdout, stderr := shrikeCmd(t, "diff", "--rules", paymentsRules, "--against", newRules, "--json", "--examples", "100", paymentsEvents)
	if status != 1 {
		t.Fatalf("status %d, want 1 (differ)\n%s", status, stderr)
	}
	if strings.Count(stdout, "\n") != 1 {
		t.Fatalf("--json wrote %d lines, want one object:\n%s", strings.Count(stdout, "\n"), stdout)
	}
	var got diffJSON
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("--json: %v\n%s", err, stdout)
	}

	// What two separate replays say was removed: the old alerts without
	// an alert of the same match in the new run.
	newSigs := map[uint64]int{}
	for _, a := range runAlone(t, newRules) {
		newSigs[alertdiff.Signature(a)]++
	}
	removed := map[string][]string{} // rule → ids
	oldCount := map[string]int{}
	for _, a := range runAlone(t, paymentsRules) {
		oldCount[a.Rule]++
		if sig := alertdiff.Signature(a); newSigs[sig] > 0 {
			newSigs[sig]--
		} else {
			removed[a.Rule] = append(removed[a.Rule], a.ID)
		}
	}
	for sig, n := range newSigs {
		if n > 0 {
			t.Fatalf("the new run has an alert (signature %x) the old one lacks: the edit should only remove", sig)
		}
	}
	if len(removed["large-card-auth"]) == 0 {
		t.Fatal("raising the threshold removed no alert of large-card-auth on the recording")
	}

	if !got.Differ || got.Lines != "2000" || got.Events != "2000" {
		t.Errorf("differ %v, lines %s, events %s; want true, 2000, 2000", got.Differ, got.Lines, got.Events)
	}
	gotRemoved := map[string][]string{}
	for _, r := range got.Rules {
		if r.Ruleset != "payments" || !r.InOld || !r.InNew {
			t.Errorf("rule %s/%s: in_old %v, in_new %v", r.Ruleset, r.Rule, r.InOld, r.InNew)
		}
		if r.OnlyNew != "0" || len(r.OnlyNewExamples) != 0 {
			t.Errorf("rule %s: %s only new, want 0", r.Rule, r.OnlyNew)
		}
		if want := strconv.Itoa(oldCount[r.Rule] - len(removed[r.Rule])); r.Both != want {
			t.Errorf("rule %s: both %s, want %s", r.Rule, r.Both, want)
		}
		if want := strconv.Itoa(len(removed[r.Rule])); r.OnlyOld != want {
			t.Errorf("rule %s: only_old %s, want %s", r.Rule, r.OnlyOld, want)
		}
		for _, ex := range r.OnlyOldExamples {
			if ex.Shadow != nil && *ex.Shadow {
				t.Errorf("example %s is marked shadow", ex.ID)
			}
			gotRemoved[r.Rule] = append(gotRemoved[r.Rule], ex.ID)
		}
	}
	if diff := cmp.Diff(removed, gotRemoved); diff != "" {
		t.Errorf("only-old alerts (-removed by the edit +diff):\n%s", diff)
	}

	// The text says the same.
	status, text, _ := shrikeCmd(t, "diff", "--rules", paymentsRules, "--against", newRules, paymentsEvents)
	if status != 1 {
		t.Fatalf("text: status %d, want 1", status)
	}
	onlyOld := "payments/large-card-auth: " + plural(uint64(len(removed["large-card-auth"])), "alert", "alerts") + " only in old:"
	for _, want := range append([]string{"1 of 9 rules differ", onlyOld}, removed["large-card-auth"]...) {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
}

// TestDiffAgainstItself: a ruleset against itself differs nowhere.
func TestDiffAgainstItself(t *testing.T) {
	status, stdout, stderr := shrikeCmd(t, "diff", "-r", paymentsRules, "--against", paymentsRules, paymentsEvents)
	if status != 0 {
		t.Fatalf("status %d, want 0\n%s", status, stderr)
	}
	if !strings.Contains(stdout, "2000 lines, 2000 events: no rule differs") || strings.Contains(stdout, "only in") {
		t.Errorf("output:\n%s", stdout)
	}
	status, stdout, _ = shrikeCmd(t, "diff", "-r", paymentsRules, "--against", paymentsRules, "--json", "--examples", "0", paymentsEvents)
	var got diffJSON
	if status != 0 || json.Unmarshal([]byte(stdout), &got) != nil || got.Differ || len(got.Rules) != 9 {
		t.Fatalf("--json: status %d, %+v\n%s", status, got, stdout)
	}
	if !strings.Contains(stdout, `"both_examples":[]`) || strings.Contains(stdout, `"both_examples":[{`) {
		t.Errorf("--examples 0 should give no examples:\n%s", stdout)
	}
}

// TestDiffExitCodes pins the statuses: 2 for a bad command line, 3 for
// an invalid ruleset or a file that cannot be read (1 means "differ").
func TestDiffExitCodes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "ruleset: payments\nrules:\n  - id: r\n    when: event.type ==\n")
	tests := []struct {
		name   string
		args   []string
		want   int
		stderr string
	}{
		{"no --against", []string{"diff", "-r", paymentsRules, paymentsEvents}, 2, `required flag(s) "against"`},
		{"no --rules", []string{"diff", "--against", paymentsRules, paymentsEvents}, 2, `required flag(s) "rules"`},
		{"no events", []string{"diff", "-r", paymentsRules, "--against", paymentsRules}, 2, "missing events file"},
		{"negative --examples", []string{"diff", "-r", paymentsRules, "--against", paymentsRules, "--examples", "-1", paymentsEvents}, 2, "--examples must not be negative"},
		{"unknown flag", []string{"diff", "-r", paymentsRules, "--against", paymentsRules, "--nope", paymentsEvents}, 2, "unknown flag"},
		{"invalid new ruleset", []string{"diff", "-r", paymentsRules, "--against", bad, paymentsEvents}, 3, "bad.yaml:4"},
		{"invalid old ruleset", []string{"diff", "-r", bad, "--against", paymentsRules, paymentsEvents}, 3, "bad.yaml:4"},
		{"missing ruleset", []string{"diff", "-r", paymentsRules, "--against", filepath.Join(dir, "nope.yaml"), paymentsEvents}, 3, "--against: ruleset:"},
		{"missing events file", []string{"diff", "-r", paymentsRules, "--against", paymentsRules, filepath.Join(dir, "nope.jsonl")}, 3, "nope.jsonl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, stdout, stderr := shrikeCmd(t, tt.args...)
			if status != tt.want || !strings.Contains(stderr, tt.stderr) {
				t.Fatalf("status %d, want %d; stderr %q, want it to say %q", status, tt.want, stderr, tt.stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
		})
	}
}
