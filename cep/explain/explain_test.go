package explain

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shrike-cep/shrike/cep"
	"github.com/shrike-cep/shrike/rules"
)

// header is the stream every test ruleset reads: keyed by k, timed by ts.
const header = `ruleset: t
stream:
  key: event.k
  time: event.ts
%s
rules:
%s`

// ev writes one event of key k at minute m (and second s) of a fixed day.
func ev(k, typ string, m, s int, extra string) string {
	ts := time.Date(2026, 11, 20, 10, m, s, 0, time.UTC).Format(time.RFC3339)
	if extra != "" {
		extra = "," + extra
	}
	return fmt.Sprintf(`{"k":%q,"type":%q,"ts":%q%s}`, k, typ, ts, extra)
}

type traced struct {
	res   *Result
	text  string
	lines []map[string]any
}

func explainCase(t *testing.T, stream, rulesYAML string, events []string, key, rule string, mod func(*Options)) traced {
	t.Helper()
	src := fmt.Sprintf(header, stream, rulesYAML)
	c, err := rules.Load("t.yaml", []byte(src), rules.CompileOptions{})
	if err != nil {
		t.Fatalf("compile:\n%s\n%v", src, err)
	}
	opts := Options{
		Rulesets: []*rules.Compiled{c},
		Inputs:   []cep.Input{{Name: "rec.jsonl", R: strings.NewReader(strings.Join(events, "\n") + "\n")}},
		Key:      key,
		Rule:     rule,
		Clock:    func() time.Time { return time.Unix(0, 0) },
	}
	if mod != nil {
		mod(&opts)
	}
	res, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	var text, js bytes.Buffer
	if err := res.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := res.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	out := traced{res: res, text: text.String()}
	for _, l := range strings.Split(strings.TrimSpace(js.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("JSON line %q: %v", l, err)
		}
		out.lines = append(out.lines, m)
	}
	return out
}

// find returns the JSON entries whose fields equal want.
func (tr traced) find(want map[string]any) []map[string]any {
	var out []map[string]any
next:
	for _, l := range tr.lines {
		for k, v := range want {
			if fmt.Sprint(l[k]) != fmt.Sprint(v) {
				continue next
			}
		}
		out = append(out, l)
	}
	return out
}

func (tr traced) mustFind(t *testing.T, want map[string]any) map[string]any {
	t.Helper()
	got := tr.find(want)
	if len(got) == 0 {
		t.Fatalf("no JSON entry with %v in:\n%s", want, tr.text)
	}
	return got[0]
}

func (tr traced) mustSay(t *testing.T, phrases ...string) {
	t.Helper()
	for _, p := range phrases {
		if !strings.Contains(tr.text, p) {
			t.Errorf("text trace does not say %q:\n%s", p, tr.text)
		}
	}
}

const twoSteps = `  - id: r
    within: 1m
    pattern:
      - step: a
        where: event.type == "a"
      - step: b
        where: event.type == "b"
`

func TestExplainWindowExpired(t *testing.T) {
	tr := explainCase(t, "", twoSteps, []string{
		ev("k1", "a", 0, 0, ""),
		ev("k2", "a", 0, 10, ""), // another key: runs, not traced
		ev("k1", "b", 2, 0, ""),
	}, "k1", "", nil)
	e := tr.mustFind(t, map[string]any{"type": "run", "action": "ended", "reason": "window_expired"})
	if e["window"] != "1m" || e["window_of"] != "rule" || e["since"] != "2026-11-20T10:00:00Z" ||
		e["deadline"] != "2026-11-20T10:01:00Z" || e["at"] != "2026-11-20T10:02:00Z" {
		t.Errorf("window entry %v", e)
	}
	tr.mustSay(t, "run #1 ended: the rule's within 1m expired (since 2026-11-20T10:00:00Z, deadline 2026-11-20T10:01:00Z, noticed at 2026-11-20T10:02:00Z)")
	for _, l := range tr.lines {
		if p, _ := l["position"].(string); p == "rec.jsonl:2" {
			t.Errorf("an entry of the untraced key: %v", l)
		}
	}
	v := tr.mustFind(t, map[string]any{"type": "verdict", "rule": "r"})
	if v["verdict"] != VerdictDidNotFire || v["unmet_step"] != "b" {
		t.Errorf("verdict %v", v)
	}
	f, _ := v["furthest"].(map[string]any)
	if f["reason"] != "window_expired" || f["step"] != "a" || fmt.Sprint(f["step_index"]) != "1" || fmt.Sprint(f["steps"]) != "2" {
		t.Errorf("furthest %v", f)
	}
	tr.mustSay(t, "did not fire: furthest was run #1, at step a (1 of 2) holding a@rec.jsonl:1", "unmet step b")
}

func TestExplainStepWindowExpired(t *testing.T) {
	rule := `  - id: r
    pattern:
      - step: a
        where: event.type == "a"
      - step: b
        where: event.type == "b"
        within: 30s
`
	tr := explainCase(t, "", rule, []string{ev("k1", "a", 0, 0, ""), ev("k1", "b", 1, 0, "")}, "k1", "r", nil)
	e := tr.mustFind(t, map[string]any{"type": "run", "reason": "window_expired"})
	if e["window"] != "30s" || e["window_of"] != "step" {
		t.Errorf("step window entry %v", e)
	}
	tr.mustSay(t, "the step's within 30s expired")
}

func TestExplainContiguityBroken(t *testing.T) {
	rule := `  - id: r
    within: 10m
    pattern:
      - step: a
        where: event.type == "a"
      - step: b
        contiguity: strict
        where: event.type == "b"
`
	tr := explainCase(t, "", rule, []string{ev("k1", "a", 0, 0, ""), ev("k1", "c", 0, 10, ""), ev("k1", "b", 0, 20, "")}, "k1", "r", nil)
	e := tr.mustFind(t, map[string]any{"type": "run", "action": "ended", "reason": "contiguity_broken"})
	if e["position"] != "rec.jsonl:2" || e["next_step"] != "b" {
		t.Errorf("contiguity entry %v", e)
	}
	tr.mustSay(t, "run #1 ended: strict contiguity broken: the record does not fit step b")
	if v := tr.mustFind(t, map[string]any{"type": "verdict"}); v["verdict"] != VerdictDidNotFire {
		t.Errorf("verdict %v", v)
	}
}

func TestExplainNegation(t *testing.T) {
	rule := `  - id: r
    within: 10m
    pattern:
      - step: a
        where: event.type == "a"
      - step: x
        not: true
        where: event.type == "x"
      - step: b
        where: event.type == "b"
`
	tr := explainCase(t, "", rule, []string{ev("k1", "a", 0, 0, ""), ev("k1", "x", 0, 10, ""), ev("k1", "b", 0, 20, "")}, "k1", "r", nil)
	e := tr.mustFind(t, map[string]any{"type": "run", "action": "ended", "reason": "negation"})
	if e["negated_step"] != "x" || e["position"] != "rec.jsonl:2" {
		t.Errorf("negation entry %v", e)
	}
	tr.mustSay(t, "run #1 ended: the not step x matched")
	v := tr.mustFind(t, map[string]any{"type": "verdict"})
	if f, _ := v["furthest"].(map[string]any); f["reason"] != "negation" || f["negated_step"] != "x" {
		t.Errorf("verdict %v", v)
	}
}

func TestExplainSkipPruned(t *testing.T) {
	rule := `  - id: r
    within: 10m
    pattern:
      - step: a
        where: event.type == "a"
      - step: b
        where: event.type == "b"
    skip: past_last_event
`
	tr := explainCase(t, "", rule, []string{ev("k1", "a", 0, 0, ""), ev("k1", "a", 0, 10, ""), ev("k1", "b", 0, 20, "")}, "k1", "r", nil)
	e := tr.mustFind(t, map[string]any{"type": "run", "action": "ended", "reason": "skip_pruned"})
	if e["run"] != float64(2) {
		t.Errorf("pruned %v, want run 2 (the later start)", e)
	}
	tr.mustSay(t, "run #2 ended: pruned by the rule's skip strategy", "run #1 completed (2 of 2): a match")
	a := tr.mustFind(t, map[string]any{"type": "alert", "run": 1})
	v := tr.mustFind(t, map[string]any{"type": "verdict"})
	if v["verdict"] != VerdictFired || fmt.Sprint(v["alert_ids"]) != fmt.Sprint([]any{a["alert_id"]}) {
		t.Errorf("verdict %v, alert %v", v, a)
	}
	tr.mustSay(t, "fired 1 time: "+a["alert_id"].(string))
}

func TestExplainCapDropped(t *testing.T) {
	tr := explainCase(t, "", twoSteps, []string{ev("k1", "a", 0, 0, ""), ev("k1", "a", 0, 10, "")}, "k1", "r",
		func(o *Options) { o.MaxRunsPerKey = 1 })
	e := tr.mustFind(t, map[string]any{"type": "run", "action": "ended", "reason": "cap_dropped"})
	if e["run"] != float64(1) || e["position"] != "rec.jsonl:2" {
		t.Errorf("cap entry %v, want the oldest run dropped at the second record", e)
	}
	tr.mustSay(t, "run #1 ended: dropped by the cap on partial matches per key")
}

func TestExplainTimedOut(t *testing.T) {
	rule := `  - id: r
    within: 1m
    pattern:
      - step: a
        where: event.type == "a"
      - step: b
        where: event.type == "b"
    alert:
      on_timeout: true
`
	tr := explainCase(t, "", rule, []string{ev("k1", "a", 0, 0, ""), ev("k2", "a", 5, 0, "")}, "k1", "r", nil)
	e := tr.mustFind(t, map[string]any{"type": "run", "action": "ended", "reason": "timed_out"})
	if e["window"] != "1m" || e["deadline"] != "2026-11-20T10:01:00Z" {
		t.Errorf("timeout entry %v", e)
	}
	a := tr.mustFind(t, map[string]any{"type": "alert", "timeout": true})
	tr.mustSay(t, "a timeout alert follows", "timeout alert "+a["alert_id"].(string))
	if v := tr.mustFind(t, map[string]any{"type": "verdict"}); v["verdict"] != VerdictFired {
		t.Errorf("verdict %v", v)
	}

	// Without on_timeout the same window just expires.
	tr = explainCase(t, "", twoSteps, []string{ev("k1", "a", 0, 0, "")}, "k1", "r", nil)
	e = tr.mustFind(t, map[string]any{"type": "run", "reason": "window_expired"})
	if eoi, _ := e["end_of_input"].(bool); !eoi || e["at"] != nil {
		t.Errorf("window closed by the end of the input: %v", e)
	}
	tr.mustSay(t, "noticed at the end of the input")
}

func TestExplainLate(t *testing.T) {
	tr := explainCase(t, "  max_out_of_orderness: 0s", twoSteps, []string{
		ev("k1", "a", 0, 30, ""), ev("k1", "b", 0, 10, ""),
	}, "k1", "", nil)
	e := tr.mustFind(t, map[string]any{"type": "late"})
	if e["position"] != "rec.jsonl:2" || e["watermark"] != "2026-11-20T10:00:30Z" {
		t.Errorf("late entry %v", e)
	}
	tr.mustSay(t, "late: behind the watermark 2026-11-20T10:00:30Z, not matched")
	if n := len(tr.find(map[string]any{"type": "event"})); n != 1 {
		t.Errorf("%d event entries, want 1 (the late record is not matched)", n)
	}
}

func TestExplainCELError(t *testing.T) {
	rule := `  - id: r
    when: event.type == "a" && event.amount > 10.0
`
	tr := explainCase(t, "", rule, []string{ev("k1", "a", 0, 0, ""), ev("k1", "a", 0, 5, `"amount":20`)}, "k1", "", nil)
	e := tr.mustFind(t, map[string]any{"type": "condition", "result": "error"})
	msg, _ := e["error"].(string)
	if e["condition"] != "event.amount > 10.0" || e["role"] != "when" || !strings.Contains(msg, "amount") {
		t.Errorf("error entry %v", e)
	}
	tr.mustSay(t, "when: event.amount > 10.0 → error: "+msg)
	tr.mustFind(t, map[string]any{"type": "condition", "result": "held", "position": "rec.jsonl:2", "condition": "event.amount > 10.0"})
	if v := tr.mustFind(t, map[string]any{"type": "verdict"}); v["fired"] != float64(1) {
		t.Errorf("verdict %v", v)
	}
	if s := tr.res.Summary.Rules[0]; s.CELErrors != 1 {
		t.Errorf("CEL errors counted %d, want 1", s.CELErrors)
	}
}

func TestExplainBadOptions(t *testing.T) {
	c, err := rules.Load("t.yaml", []byte(fmt.Sprintf(header, "", twoSteps)), rules.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in := []cep.Input{{Name: "x", R: strings.NewReader("")}}
	if _, err := Run(context.Background(), Options{Rulesets: []*rules.Compiled{c}, Inputs: in}); !errors.Is(err, ErrNoKey) {
		t.Errorf("no key: %v", err)
	}
	_, err = Run(context.Background(), Options{Rulesets: []*rules.Compiled{c}, Inputs: in, Key: "k", Rule: "nope"})
	if !errors.Is(err, ErrRule) || !strings.Contains(err.Error(), "t/r") {
		t.Errorf("unknown rule: %v", err)
	}
}

func TestExplainMaxEntries(t *testing.T) {
	var events []string
	for i := range 50 {
		events = append(events, ev("k1", "a", 0, i, ""))
	}
	tr := explainCase(t, "", twoSteps, events, "k1", "r", func(o *Options) { o.MaxEntries = 10 })
	if !tr.res.Truncated || len(tr.res.Entries) != 11 || tr.res.Omitted == 0 {
		t.Fatalf("truncated %v, %d entries, %d omitted", tr.res.Truncated, len(tr.res.Entries), tr.res.Omitted)
	}
	v := tr.mustFind(t, map[string]any{"type": "verdict"})
	if v["records"] != float64(50) {
		t.Errorf("verdict counts %v records, want all 50", v["records"])
	}
	tr.mustSay(t, "more entries left out")
}

func TestExplainGroup(t *testing.T) {
	rule := `  - id: r
    within: 10m
    pattern:
      - step: start
        where: event.type == "c"
      - group: round
        times: 2
        steps:
          - step: small
            where: event.type == "a"
          - step: decline
            contiguity: strict
            where: event.type == "b"
      - step: done
        where: event.type == "d"
`
	tr := explainCase(t, "", rule, []string{
		ev("k1", "c", 0, 0, ""),
		ev("k1", "a", 0, 10, ""),
		ev("k1", "b", 0, 20, ""),
		ev("k1", "a", 0, 30, ""),
		ev("k1", "x", 0, 40, ""),
	}, "k1", "r", nil)
	v := tr.mustFind(t, map[string]any{"type": "verdict", "rule": "r"})
	if v["verdict"] != VerdictDidNotFire || fmt.Sprint(v["steps"]) != "4" {
		t.Errorf("verdict %v: want did not fire, over the 4 steps that take events", v)
	}
	f, _ := v["furthest"].(map[string]any)
	// The furthest step reached is the first round's decline; the second
	// round's small took the fourth record, and its decline needed the
	// next one strictly.
	if f["step"] != "decline" || fmt.Sprint(f["step_index"]) != "3" || f["next_step"] != "decline" || f["reason"] != "contiguity_broken" {
		t.Errorf("furthest %v", f)
	}
	tr.mustSay(t, "small@rec.jsonl:2", "decline@rec.jsonl:3", "small@rec.jsonl:4")

	tr = explainCase(t, "", rule, []string{
		ev("k1", "c", 0, 0, ""),
		ev("k1", "a", 0, 10, ""),
		ev("k1", "b", 0, 20, ""),
		ev("k1", "a", 0, 30, ""),
		ev("k1", "b", 0, 40, ""),
		ev("k1", "d", 0, 50, ""),
	}, "k1", "r", nil)
	v = tr.mustFind(t, map[string]any{"type": "verdict", "rule": "r"})
	if v["verdict"] != VerdictFired {
		t.Errorf("verdict %v, want fired", v)
	}
}

func TestExplainSuppressed(t *testing.T) {
	rule := `  - id: r
    within: 1m
    pattern:
      - step: a
        where: event.type == "a"
      - step: b
        where: event.type == "b"
    alert:
      suppress: {for: 1h}
`
	events := []string{ev("k1", "a", 0, 0, ""), ev("k1", "b", 0, 30, ""), ev("k1", "a", 2, 0, ""), ev("k1", "b", 2, 30, "")}
	tr := explainCase(t, "", rule, events, "k1", "r", nil)
	a := tr.mustFind(t, map[string]any{"type": "alert"})
	s := tr.mustFind(t, map[string]any{"type": "suppressed"})
	if s["until"] != "2026-11-20T11:00:30Z" || s["suppressed_by"] != a["alert_id"] || s["run"] == nil {
		t.Errorf("suppressed entry %v, want until 11:00:30 by %v", s, a["alert_id"])
	}
	tr.mustSay(t, "suppressed until 2026-11-20T11:00:30Z (after alert "+a["alert_id"].(string)+")", "1 more suppressed")
	if v := tr.mustFind(t, map[string]any{"type": "verdict"}); v["fired"] != float64(1) || v["suppressed"] != float64(1) {
		t.Errorf("verdict %v, want fired 1 and suppressed 1", v)
	}
}

const cardsAggregate = `  - id: cards
    aggregate:
      where: event.type == "auth"
      window: 5m
      measures:
        cards: count_distinct(event.card)
        top: max(event.amount)
      having: cards >= 2
`

func TestExplainAggregate(t *testing.T) {
	tr := explainCase(t, "", cardsAggregate, []string{
		ev("k1", "auth", 0, 0, `"card":"a","amount":5`),
		ev("k1", "login", 1, 0, ""),
		ev("k1", "auth", 2, 0, `"card":"b","amount":7`),
		ev("k1", "auth", 3, 0, `"card":"c","amount":1`),
	}, "k1", "", nil)
	e := tr.mustFind(t, map[string]any{"type": "aggregate", "position": "rec.jsonl:3"})
	if e["result"] != "fired" || e["condition"] != "cards >= 2" || fmt.Sprint(e["counted"]) != "2" ||
		fmt.Sprint(e["measures"]) != "map[cards:2 top:7]" || e["window_start"] != "2026-11-20T09:57:00Z" || e["window_end"] != "2026-11-20T10:02:00Z" {
		t.Errorf("aggregate entry %v", e)
	}
	tr.mustFind(t, map[string]any{"type": "aggregate", "position": "rec.jsonl:1", "result": "failed"})
	tr.mustFind(t, map[string]any{"type": "aggregate", "position": "rec.jsonl:4", "result": "held"})
	tr.mustFind(t, map[string]any{"type": "condition", "position": "rec.jsonl:2", "role": "where", "result": "failed"})
	if got := tr.find(map[string]any{"type": "aggregate", "position": "rec.jsonl:2"}); len(got) != 0 {
		t.Errorf("an event where rejected was counted: %v", got)
	}
	tr.mustSay(t, "where: event.type == \"auth\" → failed\n",
		"counted: 2 in window 2026-11-20T09:57:00Z..2026-11-20T10:02:00Z, cards=2 top=7; having cards >= 2 → fired")
	v := tr.mustFind(t, map[string]any{"type": "verdict", "rule": "cards"})
	if v["verdict"] != VerdictFired || fmt.Sprint(v["fired"]) != "1" {
		t.Errorf("verdict %v", v)
	}

	quiet := explainCase(t, "", cardsAggregate, []string{
		ev("k1", "auth", 0, 0, `"card":"a","amount":5`),
		ev("k1", "auth", 9, 0, `"card":"b","amount":7`), // the first has left
	}, "k1", "", nil)
	v = quiet.mustFind(t, map[string]any{"type": "verdict", "rule": "cards"})
	if v["verdict"] != VerdictDidNotFire || fmt.Sprint(v["counted"]) != "2" || fmt.Sprint(v["measures"]) != "map[cards:1 top:7]" {
		t.Errorf("verdict %v", v)
	}
	quiet.mustSay(t, "did not fire: having held at none of 2 counted records; last cards=1 top=7")
}
