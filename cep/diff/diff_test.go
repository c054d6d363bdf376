package diff

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shrike-cep/shrike/cep"
	"github.com/shrike-cep/shrike/internal/alertdiff"
	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
)

const (
	paymentsYAML   = "../../rulesets/payments.yaml"
	paymentsEvents = "../../rulesets/testdata/payments.jsonl"
	// The threshold of large-card-auth, and a higher one that drops some of
	// its alerts on the recording (one of 6,409.06).
	cardAuthThreshold       = "event.amount > 5000.0"
	higherCardAuthThreshold = "event.amount > 10000.0"
)

func testClock() time.Time { return time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC) }

func loadSource(t *testing.T, name, src string) *rules.Compiled {
	t.Helper()
	c, err := rules.Load(name, []byte(src), rules.CompileOptions{})
	if err != nil {
		t.Fatalf("compile %s: %v", name, err)
	}
	return c
}

func payments(t *testing.T, edit func(string) string) *rules.Compiled {
	t.Helper()
	src, err := os.ReadFile(paymentsYAML)
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	if edit != nil {
		s = edit(s)
		if s == string(src) {
			t.Fatal("the edit changed nothing")
		}
	}
	return loadSource(t, "payments.yaml", s)
}

func higherThreshold(s string) string {
	return strings.Replace(s, cardAuthThreshold, higherCardAuthThreshold, 1)
}

// replayAlerts runs a ruleset alone, as `shrike run` does, and returns its
// alerts.
func replayAlerts(t *testing.T, rs []*rules.Compiled, in cep.Input) []*matcher.Alert {
	t.Helper()
	var out []*matcher.Alert
	_, err := cep.Replay(context.Background(), cep.ReplayOptions{
		Rulesets: rs, Inputs: []cep.Input{in}, Clock: testClock,
		OnAlert: func(a *matcher.Alert) { out = append(out, a) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// counts are a rule's counts of alerts in both, only old and only new.
type counts struct{ Both, OnlyOld, OnlyNew int }

// expectedCounts compares two separate runs' alerts as multisets by
// signature, per rule: what a one-pass diff must find.
func expectedCounts(old, candidate []*matcher.Alert) map[string]counts {
	type k struct {
		rule string
		sig  uint64
	}
	bag := map[k]int{}
	for _, a := range old {
		bag[k{a.Ruleset + "/" + a.Rule, alertdiff.Signature(a)}]++
	}
	for _, a := range candidate {
		bag[k{a.Ruleset + "/" + a.Rule, alertdiff.Signature(a)}]--
	}
	out := map[string]counts{}
	for _, a := range old {
		key := k{a.Ruleset + "/" + a.Rule, alertdiff.Signature(a)}
		c := out[key.rule]
		if bag[key] > 0 {
			c.OnlyOld++
			bag[key]--
		} else {
			c.Both++
		}
		out[key.rule] = c
	}
	for key, n := range bag {
		if n < 0 {
			c := out[key.rule]
			c.OnlyNew += -n
			out[key.rule] = c
		}
	}
	return out
}

func gotCounts(res *Result) map[string]counts {
	out := map[string]counts{}
	for _, r := range res.Rules {
		if r.Both+r.OnlyOld+r.OnlyNew > 0 {
			out[r.Ruleset+"/"+r.Rule] = counts{r.Both, r.OnlyOld, r.OnlyNew}
		}
	}
	return out
}

func ids(alerts []*matcher.Alert) []string {
	out := make([]string, len(alerts))
	for i, a := range alerts {
		out[i] = a.ID
	}
	return out
}

// TestRunMatchesTwoReplays compares a raised threshold's one-pass diff with
// two separate replays: exactly the alerts the old threshold alone gave
// are only old, nothing is only new, and the examples are the alerts as
// each version's own run gives them (ids, no shadow mark).
func TestRunMatchesTwoReplays(t *testing.T) {
	old, candidate := payments(t, nil), payments(t, higherThreshold)
	res, err := Run(context.Background(), Options{
		Old: []*rules.Compiled{old}, New: []*rules.Compiled{candidate},
		Inputs: []cep.Input{{Name: paymentsEvents}}, Clock: testClock, Examples: 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	oldAlerts := replayAlerts(t, []*rules.Compiled{old}, cep.Input{Name: paymentsEvents})
	newAlerts := replayAlerts(t, []*rules.Compiled{candidate}, cep.Input{Name: paymentsEvents})
	want := expectedCounts(oldAlerts, newAlerts)
	if diff := cmp.Diff(want, gotCounts(res)); diff != "" {
		t.Errorf("counts (-two replays +diff):\n%s", diff)
	}
	if c := want["payments/large-card-auth"]; c.OnlyOld == 0 || c.OnlyNew != 0 {
		t.Fatalf("the raised threshold should only remove alerts of large-card-auth: %+v", c)
	}
	if !res.Differs {
		t.Error("Differs = false, want true")
	}
	if res.Summary.Lines != 2000 || res.Summary.Events != 2000 {
		t.Errorf("summary: %d lines, %d events, want 2000 and 2000", res.Summary.Lines, res.Summary.Events)
	}

	// The only-old examples are exactly the old run's alerts the new run
	// lacks, with the old run's ids. (The changed rule has another
	// version, and so other ids, in the new run: alerts compare by their
	// matches.)
	var newSigs []uint64
	for _, a := range newAlerts {
		newSigs = append(newSigs, alertdiff.Signature(a))
	}
	var removed []string
	for _, a := range oldAlerts {
		if a.Rule == "large-card-auth" && !slices.Contains(newSigs, alertdiff.Signature(a)) {
			removed = append(removed, a.ID)
		}
	}
	for _, r := range res.Rules {
		if r.Rule != "large-card-auth" {
			if r.Differs() {
				t.Errorf("rule %s differs: %+v", r.Rule, r)
			}
			continue
		}
		if diff := cmp.Diff(removed, ids(r.OnlyOldExamples)); diff != "" {
			t.Errorf("only-old examples (-removed alerts +got):\n%s", diff)
		}
	}
	// Examples of alerts in both are as a run of one version prints them;
	// the unchanged rules' ids are the same in both runs.
	oldIDs, newIDs := ids(oldAlerts), ids(newAlerts)
	for _, r := range res.Rules {
		for _, a := range r.BothExamples {
			inBoth := slices.Contains(oldIDs, a.ID) && slices.Contains(newIDs, a.ID)
			inOne := slices.Contains(oldIDs, a.ID) || slices.Contains(newIDs, a.ID)
			if a.Shadow || !inOne || (r.Rule != "large-card-auth" && !inBoth) {
				t.Errorf("rule %s: example %s (shadow %v) is not an alert of both runs", r.Rule, a.ID, a.Shadow)
			}
		}
	}
}

// TestRunNewRulesAndRulesets: a rule only in the new version is all only
// new, with the new run's ids; a rule the new version dropped is all only
// old; a ruleset only in the new version runs too.
func TestRunNewRulesAndRulesets(t *testing.T) {
	const stream = "ruleset: %s\nstream:\n  key: event.k\n  time: event.ts\nrules:\n"
	oldSrc := strings.Replace(stream, "%s", "t", 1) +
		"  - id: a\n    when: event.type == \"a\"\n" +
		"  - id: gone\n    when: event.type == \"b\"\n"
	newSrc := strings.Replace(stream, "%s", "t", 1) +
		"  - id: a\n    when: event.type == \"a\"\n" +
		"  - id: added\n    when: event.type == \"b\" || event.type == \"c\"\n"
	otherSrc := strings.Replace(stream, "%s", "u", 1) + "  - id: any\n    when: true\n"
	events := strings.Join([]string{
		`{"k":"k1","type":"a","ts":"2026-11-20T10:00:00Z"}`,
		`{"k":"k1","type":"b","ts":"2026-11-20T10:00:01Z"}`,
		`{"k":"k2","type":"c","ts":"2026-11-20T10:00:02Z"}`,
	}, "\n") + "\n"
	oldRS, newRS, other := loadSource(t, "old.yaml", oldSrc), loadSource(t, "new.yaml", newSrc), loadSource(t, "u.yaml", otherSrc)
	res, err := Run(context.Background(), Options{
		Old: []*rules.Compiled{oldRS}, New: []*rules.Compiled{newRS, other},
		Inputs: []cep.Input{{Name: "ev.jsonl", R: strings.NewReader(events)}}, Clock: testClock,
	})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Name                   string
		InOld, InNew           bool
		Both, OnlyOld, OnlyNew int
	}
	var got []row
	for _, r := range res.Rules {
		got = append(got, row{r.Ruleset + "/" + r.Rule, r.InOld, r.InNew, r.Both, r.OnlyOld, r.OnlyNew})
	}
	want := []row{
		{"t/a", true, true, 1, 0, 0},
		{"t/gone", true, false, 0, 1, 0},
		{"t/added", false, true, 0, 0, 2},
		{"u/any", false, true, 0, 0, 3},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("rules (-want +got):\n%s", diff)
	}
	// The new version's examples are its alerts as its own run gives them.
	var newIDs []string
	for _, a := range replayAlerts(t, []*rules.Compiled{newRS, other}, cep.Input{Name: "ev.jsonl", R: strings.NewReader(events)}) {
		if a.Rule == "added" {
			newIDs = append(newIDs, a.ID)
		}
	}
	added := res.Rules[2]
	if diff := cmp.Diff(newIDs, ids(added.OnlyNewExamples)); diff != "" {
		t.Errorf("only-new examples of t/added (-the new run's ids +got):\n%s", diff)
	}
	for _, a := range added.OnlyNewExamples {
		if a.Shadow {
			t.Errorf("example %s is marked shadow", a.ID)
		}
	}
	if !res.Differs {
		t.Error("Differs = false, want true")
	}
}

// TestRunAgainstItself: the same rulesets on both sides differ nowhere,
// and every alert is in both.
func TestRunAgainstItself(t *testing.T) {
	rs := payments(t, nil)
	res, err := Run(context.Background(), Options{
		Old: []*rules.Compiled{rs}, New: []*rules.Compiled{rs},
		Inputs: []cep.Input{{Name: paymentsEvents}}, Clock: testClock,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Differs {
		t.Error("Differs = true, want false")
	}
	if rs.Shadow {
		t.Error("Run marked the caller's ruleset shadow")
	}
	total := 0
	for _, r := range res.Rules {
		if r.Differs() || !r.InOld || !r.InNew {
			t.Errorf("rule %s: %+v", r.Rule, r)
		}
		total += r.Both
		if len(r.BothExamples) > DefaultExamples {
			t.Errorf("rule %s: %d examples, want at most %d", r.Rule, len(r.BothExamples), DefaultExamples)
		}
	}
	if want := len(replayAlerts(t, []*rules.Compiled{rs}, cep.Input{Name: paymentsEvents})); total != want || total == 0 {
		t.Errorf("%d alerts in both, want %d (all)", total, want)
	}
	if len(res.Rules) != len(rs.Rules) {
		t.Errorf("%d rules, want %d", len(res.Rules), len(rs.Rules))
	}
}

func TestRunBadOptions(t *testing.T) {
	rs := payments(t, nil)
	in := []cep.Input{{Name: paymentsEvents}}
	one := []*rules.Compiled{rs}
	tests := []struct {
		name string
		opts Options
		want error
		msg  string
	}{
		{"no old", Options{New: one, Inputs: in}, ErrNoOld, "no old rulesets"},
		{"no new", Options{Old: one, Inputs: in}, ErrNoNew, "no new rulesets"},
		{"no inputs", Options{Old: one, New: one}, ErrNoInputs, "no events"},
		{"nil old", Options{Old: []*rules.Compiled{nil}, New: one, Inputs: in}, ErrRulesets, "old ruleset 1 is nil"},
		{"old twice", Options{Old: []*rules.Compiled{rs, rs}, New: one, Inputs: in}, ErrRulesets, `old ruleset "payments" given twice`},
		{"new twice", Options{Old: one, New: []*rules.Compiled{rs, rs}, Inputs: in}, ErrRulesets, `new ruleset "payments" given twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Run(context.Background(), tt.opts)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want %v saying %q", err, tt.want, tt.msg)
			}
		})
	}
	_, err := Run(context.Background(), Options{Old: one, New: one, Inputs: []cep.Input{{Name: "nope.jsonl"}}})
	if err == nil || !strings.Contains(err.Error(), "nope.jsonl") {
		t.Fatalf("missing file: err = %v, want one naming it", err)
	}
}

// TestRender checks the text table and the JSON object of a diff.
func TestRender(t *testing.T) {
	res, err := Run(context.Background(), Options{
		Old: []*rules.Compiled{payments(t, nil)}, New: []*rules.Compiled{payments(t, higherThreshold)},
		Inputs: []cep.Input{{Name: paymentsEvents}}, Clock: testClock,
	})
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if err := res.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	removed := res.Rules[slices.IndexFunc(res.Rules, func(r alertdiff.Rule) bool { return r.Rule == "large-card-auth" })].OnlyOldExamples[0]
	for _, want := range []string{
		"2000 lines, 2000 events: 1 of 9 rules differ\n",
		"RULE ", "BOTH", "ONLY-OLD", "ONLY-NEW",
		"payments/large-card-auth: 1 alert only in old:\n",
		removed.ID + "  " + removed.Key + "  " + removed.Start.Format(time.RFC3339Nano) + "  event@payments.jsonl:",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	if !regexpMatch(`(?m)^payments/large-card-auth +2 +1 +0 +differs$`, text.String()) {
		t.Errorf("text lacks the row of large-card-auth:\n%s", text.String())
	}

	var js bytes.Buffer
	if err := res.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(js.String(), "\n"); n != 1 {
		t.Fatalf("JSON is %d lines, want one object on one line", n)
	}
	var obj struct {
		Differ bool   `json:"differ"`
		Lines  string `json:"lines"`
		Events string `json:"events"`
		Rules  []struct {
			Ruleset, Rule   string
			Both            string           `json:"both"`
			OnlyOld         string           `json:"only_old"`
			OnlyNew         string           `json:"only_new"`
			InOld           bool             `json:"in_old"`
			InNew           bool             `json:"in_new"`
			OnlyOldExamples []map[string]any `json:"only_old_examples"`
		} `json:"rules"`
	}
	if err := json.Unmarshal(js.Bytes(), &obj); err != nil {
		t.Fatalf("JSON: %v\n%s", err, js.String())
	}
	if !obj.Differ || obj.Lines != "2000" || obj.Events != "2000" || len(obj.Rules) != 9 {
		t.Fatalf("JSON top level: differ %v, lines %s, events %s, %d rules", obj.Differ, obj.Lines, obj.Events, len(obj.Rules))
	}
	for _, r := range obj.Rules {
		if r.Rule != "large-card-auth" {
			continue
		}
		if r.Both != "2" || r.OnlyOld != "1" || r.OnlyNew != "0" || !r.InOld || !r.InNew {
			t.Errorf("JSON of large-card-auth: %+v", r)
		}
		if len(r.OnlyOldExamples) != 1 || r.OnlyOldExamples[0]["id"] != removed.ID {
			t.Errorf("JSON only-old examples: %v, want the alert %s", r.OnlyOldExamples, removed.ID)
		}
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

// TestWriteResponseText: the text of an API response has the table of
// the result's own text, and examples with the matched events in place of
// positions, cut to a line.
func TestWriteResponseText(t *testing.T) {
	res, err := Run(context.Background(), Options{
		Old: []*rules.Compiled{payments(t, nil)}, New: []*rules.Compiled{payments(t, higherThreshold)},
		Inputs: []cep.Input{{Name: paymentsEvents}}, Clock: testClock,
	})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := res.Response()
	if err != nil {
		t.Fatal(err)
	}
	var local, remote bytes.Buffer
	if err := res.WriteText(&local); err != nil {
		t.Fatal(err)
	}
	if err := WriteResponseText(&remote, resp); err != nil {
		t.Fatal(err)
	}
	table := func(s string) string { return s[:strings.Index(s, "\n\npayments/large-card-auth:")] }
	if diff := cmp.Diff(table(local.String()), table(remote.String())); diff != "" {
		t.Errorf("table (-local +response):\n%s", diff)
	}
	if !regexpMatch(`(?m)^  [0-9a-f]{32}  acct-0000166  2026-11-20T10:24:38Z  event@\{"account_id":"acct-0000166",.*…$`, remote.String()) {
		t.Errorf("response text lacks the example with its event:\n%s", remote.String())
	}
}
