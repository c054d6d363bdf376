package draw_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shrike-cep/shrike/nfa"
	"github.com/shrike-cep/shrike/nfa/draw"
	"github.com/shrike-cep/shrike/rules"
)

var update = flag.Bool("update", false, "rewrite golden files")

// load compiles a ruleset file and returns its pattern rules' automata by
// rule id.
func load(t *testing.T, path string) map[string]*nfa.Automaton {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Load(path, src, rules.CompileOptions{})
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	out := map[string]*nfa.Automaton{}
	for _, r := range rs.Rules {
		if len(r.Steps) == 0 {
			continue
		}
		a, err := nfa.Compile(r)
		if err != nil {
			t.Fatalf("compile %s: %v", r.ID, err)
		}
		out[r.ID] = a
	}
	return out
}

func draw1(t *testing.T, a *nfa.Automaton) (*draw.Graph, []byte) {
	t.Helper()
	g, err := draw.Describe(a)
	if err != nil {
		t.Fatal(err)
	}
	return g, draw.SVG(g)
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

// goldenCases are the rules drawn to golden files: every pattern shape of
// testdata/shapes.yaml and the shipped rulesets' pattern rules.
var goldenCases = []struct{ file, rule string }{
	{"testdata/shapes.yaml", "relaxed"},
	{"testdata/shapes.yaml", "loop-greedy-until"},
	{"testdata/shapes.yaml", "times-strict-loop"},
	{"testdata/shapes.yaml", "optional-middle"},
	{"testdata/shapes.yaml", "not-middle"},
	{"testdata/shapes.yaml", "not-end-window"},
	{"testdata/shapes.yaml", "group-times"},
	{"testdata/shapes.yaml", "escaping"},
	{"testdata/shapes.yaml", "one-step"},
	{"../../rulesets/payments.yaml", "account-takeover"},
	{"../../rulesets/payments.yaml", "card-testing"},
	{"../../rulesets/account_security.yaml", "reset-without-2fa"},
	{"../../rulesets/itops.yaml", "missing-heartbeat"},
}

func TestGolden(t *testing.T) {
	automata := map[string]map[string]*nfa.Automaton{}
	for _, tc := range goldenCases {
		name := strings.TrimSuffix(filepath.Base(tc.file), ".yaml") + "_" + tc.rule
		t.Run(name, func(t *testing.T) {
			if automata[tc.file] == nil {
				automata[tc.file] = load(t, tc.file)
			}
			a := automata[tc.file][tc.rule]
			if a == nil {
				t.Fatalf("%s has no pattern rule %q", tc.file, tc.rule)
			}
			g, svg := draw1(t, a)
			var js bytes.Buffer
			enc := json.NewEncoder(&js)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(g); err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("testdata", "golden", name+".json"), js.Bytes())
			golden(t, filepath.Join("testdata", "golden", name+".svg"), svg)
			checkStructure(t, a, g, svg)
		})
	}
}

// svgDoc is the part of the SVG the structural checks read.
type svgDoc struct {
	XMLName xml.Name `xml:"svg"`
	Role    string   `xml:"role,attr"`
	Title   string   `xml:"title"`
	Desc    string   `xml:"desc"`
	Groups  []svgG   `xml:"g"`
}

type svgG struct {
	Class     string `xml:"class,attr"`
	State     string `xml:"data-state,attr"`
	Kind      string `xml:"data-kind,attr"`
	Start     string `xml:"data-start,attr"`
	From      string `xml:"data-from,attr"`
	To        string `xml:"data-to,attr"`
	Action    string `xml:"data-action,attr"`
	Condition string `xml:"data-condition,attr"`
	Title     string `xml:"title"`
	Texts     []struct {
		Class string `xml:"class,attr"`
		Text  string `xml:",chardata"`
	} `xml:"text"`
	Groups []svgG `xml:"g"`
}

func parseSVG(t *testing.T, svg []byte) *svgDoc {
	t.Helper()
	var doc svgDoc
	if err := xml.Unmarshal(svg, &doc); err != nil {
		t.Fatalf("the SVG is not well-formed XML: %v", err)
	}
	return &doc
}

func (d *svgDoc) group(class string) []svgG {
	for _, g := range d.Groups {
		if g.Class == class {
			return g.Groups
		}
	}
	return nil
}

// checkStructure asserts that the picture has one state group per
// automaton state and one edge group per edge, each with its action and
// condition, and the accessibility attributes.
func checkStructure(t *testing.T, a *nfa.Automaton, g *draw.Graph, svg []byte) {
	t.Helper()
	doc := parseSVG(t, svg)
	if doc.Role != "img" || doc.Title == "" || doc.Desc == "" {
		t.Errorf("svg role=%q title=%q desc=%q, want role img and a title and desc", doc.Role, doc.Title, doc.Desc)
	}
	states := doc.group("states")
	if len(states) != len(a.States) {
		t.Errorf(`%d class="state" groups, want %d (the automaton's states)`, len(states), len(a.States))
	}
	if n := bytes.Count(svg, []byte(`<g class="state" `)); n != len(a.States) {
		t.Errorf(`%d "<g class=\"state\" " in the text, want %d`, n, len(a.States))
	}
	for i, s := range a.States {
		if i >= len(states) {
			break
		}
		if states[i].State != fmt.Sprint(s.ID) {
			t.Errorf("state group %d has data-state %q, want %d", i, states[i].State, s.ID)
		}
		if states[i].Class != "state" {
			t.Errorf("state group %d class %q, want state", i, states[i].Class)
		}
		if s.Start != (states[i].Start == "true") {
			t.Errorf("state %d start=%v but data-start %q", s.ID, s.Start, states[i].Start)
		}
		if kind := [...]string{"normal", "final", "stop", "pending"}[s.Kind]; states[i].Kind != kind {
			t.Errorf("state %d data-kind %q, want %s", s.ID, states[i].Kind, kind)
		}
		if len(states[i].Texts) == 0 || states[i].Texts[0].Class != "state-name" || states[i].Texts[0].Text == "" {
			t.Errorf("state %d has no state-name text: %+v", s.ID, states[i].Texts)
		}
	}
	type edgeAttrs struct{ From, To, Action, Condition string }
	var want []edgeAttrs
	for _, s := range a.States {
		for _, e := range s.Edges {
			want = append(want, edgeAttrs{
				From:      fmt.Sprint(s.ID),
				To:        fmt.Sprint(e.Target.ID),
				Action:    [...]string{"take", "ignore", "proceed"}[e.Action],
				Condition: draw.Condition(e.Cond),
			})
		}
	}
	edges := doc.group("edges")
	if len(edges) != len(want) {
		t.Fatalf("%d edge groups, want %d", len(edges), len(want))
	}
	for i, e := range edges {
		got := edgeAttrs{From: e.From, To: e.To, Action: e.Action, Condition: e.Condition}
		if got != want[i] {
			t.Errorf("edge %d = %+v, want %+v", i, got, want[i])
		}
		if e.Class != "edge" {
			t.Errorf("edge %d class %q, want edge", i, e.Class)
		}
		if len(e.Texts) != 1 || !strings.HasPrefix(e.Texts[0].Text, e.Action) {
			t.Errorf("edge %d label %+v, want one text starting with %s", i, e.Texts, e.Action)
		}
		if !strings.HasPrefix(e.Title, e.Action) {
			t.Errorf("edge %d title %q, want it to start with %s", i, e.Title, e.Action)
		}
	}
	if len(g.States) != len(a.States) || len(g.Edges) != len(want) {
		t.Errorf("graph has %d states and %d edges, want %d and %d", len(g.States), len(g.Edges), len(a.States), len(want))
	}
}

func TestEscaping(t *testing.T) {
	a := load(t, "testdata/shapes.yaml")["escaping"]
	g, svg := draw1(t, a)
	// The raw condition never appears unescaped: no stray tag or entity.
	for _, raw := range []string{`"<b>`, `& "`, `</b>"`, `"a&b"`} {
		if bytes.Contains(svg, []byte(raw)) {
			t.Errorf("the SVG holds %q unescaped", raw)
		}
	}
	doc := parseSVG(t, svg)
	var conds []string
	for _, e := range doc.group("edges") {
		conds = append(conds, e.Condition)
	}
	wantTake := `event.note == "<b> & \"quoted\" </b>" || event.x < 3`
	if !containsString(conds, wantTake) {
		t.Errorf("edge conditions %q lack %q after unescaping", conds, wantTake)
	}
	// Negated and inside &&, the disjunction keeps its parentheses.
	if !containsString(conds, "!("+wantTake+")") {
		t.Errorf("edge conditions %q lack the negated disjunction", conds)
	}
	if g.Edges[0].Condition == "" {
		t.Error("graph condition empty")
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestLongLabelsTruncatedWithFullTitle(t *testing.T) {
	long := "event.type == \"" + strings.Repeat("x", 300) + "\""
	src := fmt.Sprintf("ruleset: long\nrules:\n  - id: r\n    pattern:\n      - step: %s\n        where: '%s'\n      - step: b\n        where: event.type == \"b\"\n",
		strings.Repeat("n", 60), long)
	rs, err := rules.Load("long.yaml", []byte(src), rules.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := nfa.Compile(rs.Rules[0])
	if err != nil {
		t.Fatal(err)
	}
	_, svg := draw1(t, a)
	doc := parseSVG(t, svg)
	found := false
	for _, e := range doc.group("edges") {
		label := []rune(e.Texts[0].Text)
		if len(label) > 32 {
			t.Errorf("label of %d runes: %q", len(label), e.Texts[0].Text)
		}
		if e.Condition != long {
			continue
		}
		found = true
		if !strings.Contains(e.Title, long) {
			t.Errorf("title %q lacks the full condition", e.Title)
		}
		if !strings.HasSuffix(string(label), "…") {
			t.Errorf("truncated label %q does not end with an ellipsis", string(label))
		}
	}
	if !found {
		t.Error("no edge has the long condition")
	}
	for _, s := range doc.group("states") {
		if name := []rune(s.Texts[0].Text); len(name) > 19 {
			t.Errorf("state name of %d runes: %q", len(name), string(name))
		}
	}
}

func TestDeterministic(t *testing.T) {
	for _, tc := range goldenCases[:8] {
		var first []byte
		for range 5 {
			// A fresh compile each time: nothing may depend on pointers
			// or map order.
			a := load(t, tc.file)[tc.rule]
			_, svg := draw1(t, a)
			if first == nil {
				first = svg
			} else if !bytes.Equal(first, svg) {
				t.Fatalf("%s: two drawings of the same rule differ", tc.rule)
			}
		}
	}
}

func TestTooManyStates(t *testing.T) {
	// A group of two steps repeated 300 times: some 600 states.
	src := `ruleset: big
rules:
  - id: huge
    pattern:
      - step: a
        where: event.type == "a"
      - group: g
        times: 300
        steps:
          - step: b
            where: event.type == "b"
          - step: c
            where: event.type == "c"
`
	rs, err := rules.Load("big.yaml", []byte(src), rules.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := nfa.Compile(rs.Rules[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(a.States) <= draw.MaxStates {
		t.Fatalf("the automaton has %d states, not over the limit %d: the test needs a bigger rule", len(a.States), draw.MaxStates)
	}
	_, err = draw.Describe(a)
	if !errors.Is(err, draw.ErrTooLarge) || !regexp.MustCompile(`rule "huge": its automaton has \d+ states, over the limit of \d+`).MatchString(err.Error()) {
		t.Errorf("Describe error = %v, want the rule named and the limit", err)
	}
}

func TestCondition(t *testing.T) {
	leaf := func(s string) *nfa.Cond { return nfa.Leaf(&rules.Expr{Source: s}) }
	tests := []struct {
		c    *nfa.Cond
		want string
	}{
		{nfa.True(), "true"},
		{leaf("event.x > 1"), "event.x > 1"},
		{nfa.Not(leaf("event.ok")), "!event.ok"},
		{nfa.Not(leaf("event.x > 1")), "!(event.x > 1)"},
		{nfa.Not(leaf("(a || b)")), "!(a || b)"},
		{nfa.Not(leaf("(a) || (b)")), "!((a) || (b))"},
		{nfa.And(leaf("a"), leaf("b || c")), "a && (b || c)"},
		{nfa.And(leaf("x ? y : z"), nfa.Not(leaf("u"))), "(x ? y : z) && !u"},
		{nfa.And(nfa.Not(leaf("u == 1")), nfa.And(leaf("a"), leaf("b"))), "!(u == 1) && a && b"},
		{nfa.Not(nfa.And(leaf("a"), leaf("b"))), "!(a && b)"},
		{nfa.And(nfa.True(), leaf("a || b")), "a || b"},
		{nfa.Not(nfa.And(leaf("a || b"), nfa.True())), "!(a || b)"},
		{nfa.And(leaf("c"), nfa.And(nfa.True(), leaf("a || b"))), "c && (a || b)"},
	}
	for _, tc := range tests {
		if got := draw.Condition(tc.c); got != tc.want {
			t.Errorf("Condition(%s) = %q, want %q", tc.c, got, tc.want)
		}
	}
}

func TestRule(t *testing.T) {
	src, err := os.ReadFile("../../rulesets/payments.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src = append(src, []byte(`
  - id: switched-off
    enabled: false
    pattern:
      - step: a
        where: event.type == "a"
`)...)
	rs, err := rules.Load("payments.yaml", src, rules.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g, svg, err := draw.Rule(rs, "account-takeover")
	if err != nil {
		t.Fatal(err)
	}
	if g.Rule != "account-takeover" || g.Window != "10m" || !bytes.Contains(svg, []byte(`data-rule="account-takeover"`)) {
		t.Errorf("graph rule %q window %q, svg without the rule", g.Rule, g.Window)
	}
	for _, tc := range []struct{ id, want string }{
		{"big-foreign-transfer", `rule "big-foreign-transfer" of ruleset "payments" is a when rule`},
		{"card-spree", `rule "card-spree" of ruleset "payments" is an aggregate rule`},
		{"switched-off", `rule "switched-off" of ruleset "payments" is disabled`},
		{"nope", `no rule "nope" in ruleset "payments" (pattern rules: "account-takeover", "card-testing",`},
	} {
		_, _, err := draw.Rule(rs, tc.id)
		if !errors.Is(err, draw.ErrNoAutomaton) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Rule(%q) error = %v, want ErrNoAutomaton saying %s", tc.id, err, tc.want)
		}
	}
}

// TestPendingLink: a pattern ending in a not step with a window matches
// when the window closes, which no edge shows: the picture links the
// pending state to the final one, apart from the edges.
func TestPendingLink(t *testing.T) {
	automata := load(t, "testdata/shapes.yaml")
	_, svg := draw1(t, automata["not-end-window"])
	doc := parseSVG(t, svg)
	links := doc.group("pending-matches")
	if len(links) != 1 || links[0].From != "1" || links[0].To != "0" || links[0].Texts[0].Text != "window closes" {
		t.Errorf("pending links %+v, want one from state 1 to the final state 0 labelled window closes", links)
	}
	_, svg = draw1(t, automata["not-middle"])
	if bytes.Contains(svg, []byte("pending-match")) {
		t.Error("a pattern without a pending state has a pending link")
	}
}
