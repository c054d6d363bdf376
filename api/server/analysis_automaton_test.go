package server_test

import (
	"net/http"
	"strings"
	"testing"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/nfa"
	"github.com/shrike-cep/shrike/rules"
)

// sequenceSrc is paymentsSrc with a pattern rule: a login, then a transfer
// above 1,000 without a logout between, within 10m. Its conditions hold
// XML's special characters.
const sequenceSrc = paymentsSrc + `  - id: drain
    severity: critical
    within: 10m
    pattern:
      - step: login
        where: event.type == "login" && event.note != "<&>"
      - step: logout
        not: true
        where: event.type == "logout"
      - step: transfer
        where: event.type == "transfer" && event.amount > 1000.0
  - id: volume
    aggregate:
      window: 1m
      measures:
        n: count()
      having: n > 10
`

// drainAutomaton compiles rule drain of sequenceSrc as the matcher does.
func drainAutomaton(t *testing.T) *nfa.Automaton {
	t.Helper()
	rs, err := rules.Load("payments.yaml", []byte(sequenceSrc), rules.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs.Rules {
		if r.ID == "drain" {
			a, err := nfa.Compile(r)
			if err != nil {
				t.Fatal(err)
			}
			return a
		}
	}
	t.Fatal("no rule drain")
	return nil
}

func sourceRef(src string) *shrikev1.RulesetRef {
	return &shrikev1.RulesetRef{Ruleset: &shrikev1.RulesetRef_Source{Source: src}}
}

// TestGetRuleAutomaton draws rule drain from an inline source, a stored
// version and through REST: one state and one edge per automaton state and
// edge, in the picture too, with the conditions' text escaped there.
func TestGetRuleAutomaton(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := drainAutomaton(t)
	var edges int
	for _, s := range a.States {
		edges += len(s.Edges)
	}
	check := func(t *testing.T, resp *shrikev1.GetRuleAutomatonResponse) {
		t.Helper()
		g := resp.GetAutomaton()
		if resp.GetRule() != "drain" || g.GetWindow() != "10m" || int(g.GetStart()) != a.Start.ID {
			t.Errorf("rule %q window %q start %d, want drain, 10m, %d", resp.GetRule(), g.GetWindow(), g.GetStart(), a.Start.ID)
		}
		if len(g.GetStates()) != len(a.States) || len(g.GetEdges()) != edges {
			t.Fatalf("%d states and %d edges, want %d and %d", len(g.GetStates()), len(g.GetEdges()), len(a.States), edges)
		}
		kinds := map[string]int{}
		for i, s := range g.GetStates() {
			if int(s.GetId()) != a.States[i].ID || s.GetName() != a.States[i].Name {
				t.Errorf("state %d = %v, want id %d name %s", i, s, a.States[i].ID, a.States[i].Name)
			}
			kinds[s.GetKind()]++
		}
		if kinds["final"] != 1 || kinds["stop"] != 1 {
			t.Errorf("state kinds %v, want one final and one stop (the not step)", kinds)
		}
		var sawTake bool
		for _, ed := range g.GetEdges() {
			if ed.GetAction() == "take" && ed.GetCondition() == `event.type == "login" && event.note != "<&>"` {
				sawTake = true
			}
		}
		if !sawTake {
			t.Errorf("no take edge with the login step's condition: %v", g.GetEdges())
		}
		svg := resp.GetSvg()
		if !strings.HasPrefix(svg, "<svg ") || !strings.Contains(svg, `role="img"`) {
			t.Errorf("svg starts %.60q", svg)
		}
		if n := strings.Count(svg, `<g class="state" `); n != len(a.States) {
			t.Errorf("%d state groups in the svg, want %d", n, len(a.States))
		}
		if n := strings.Count(svg, `<g class="edge" `); n != edges {
			t.Errorf("%d edge groups in the svg, want %d", n, edges)
		}
		if strings.Contains(svg, `"<&>"`) || !strings.Contains(svg, `&#34;&lt;&amp;&gt;&#34;`) {
			t.Error("the condition's <&> is not escaped in the svg")
		}
	}

	t.Run("inline", func(t *testing.T) {
		resp, err := e.analysis().GetRuleAutomaton(e.ctx(t), &shrikev1.GetRuleAutomatonRequest{Ruleset: sourceRef(sequenceSrc), Rule: "drain"})
		if err != nil {
			t.Fatal(err)
		}
		check(t, resp)
	})

	e.put(t, "payments", sequenceSrc)
	e.put(t, "payments", paymentsSrc)
	t.Run("stored version", func(t *testing.T) {
		resp, err := e.analysis().GetRuleAutomaton(e.ctx(t), &shrikev1.GetRuleAutomatonRequest{
			Ruleset: &shrikev1.RulesetRef{Ruleset: &shrikev1.RulesetRef_Name{Name: "payments"}, Version: 1},
			Rule:    "drain",
		})
		if err != nil {
			t.Fatal(err)
		}
		check(t, resp)
	})

	t.Run("REST", func(t *testing.T) {
		code, body := e.rest(t, http.MethodPost, "/v1/rulesets:automaton", map[string]any{
			"ruleset": map[string]any{"name": "payments", "version": 1},
			"rule":    "drain",
		})
		if code != http.StatusOK {
			t.Fatalf("status %d: %v", code, body)
		}
		g, _ := body["automaton"].(map[string]any)
		states, _ := g["states"].([]any)
		edgeList, _ := g["edges"].([]any)
		svg, _ := body["svg"].(string)
		if body["rule"] != "drain" || g["window"] != "10m" || len(states) != len(a.States) || len(edgeList) != edges || !strings.HasPrefix(svg, "<svg ") {
			t.Fatalf("body: rule %v window %v, %d states, %d edges, svg %.20q", body["rule"], g["window"], len(states), len(edgeList), svg)
		}
		// The fields are the proto names, unpopulated ones included.
		first, _ := edgeList[0].(map[string]any)
		for _, k := range []string{"from", "to", "action", "condition"} {
			if _, ok := first[k]; !ok {
				t.Errorf("edge %v lacks %s", first, k)
			}
		}
		state, _ := states[0].(map[string]any)
		for _, k := range []string{"id", "name", "kind", "start", "group", "window"} {
			if _, ok := state[k]; !ok {
				t.Errorf("state %v lacks %s", state, k)
			}
		}
	})
}

// TestGetRuleAutomatonErrors: each bad request names its field, and a rule
// without an automaton says why.
func TestGetRuleAutomatonErrors(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.put(t, "payments", sequenceSrc)
	stored := func(name string, version int64) *shrikev1.RulesetRef {
		return &shrikev1.RulesetRef{Ruleset: &shrikev1.RulesetRef_Name{Name: name}, Version: version}
	}
	invalid := "ruleset: payments\nrules:\n  - id: r\n    when: event.amount >\n"
	tests := []struct {
		name string
		req  *shrikev1.GetRuleAutomatonRequest
		want string
	}{
		{"no rule", &shrikev1.GetRuleAutomatonRequest{Ruleset: sourceRef(sequenceSrc)}, "InvalidArgument INVALID_REQUEST [rule: required: the id of a pattern rule"},
		{"no ruleset", &shrikev1.GetRuleAutomatonRequest{Rule: "drain"}, "InvalidArgument INVALID_REQUEST [ruleset: required"},
		{"invalid source", &shrikev1.GetRuleAutomatonRequest{Ruleset: sourceRef(invalid), Rule: "r"}, "InvalidArgument RULESET_INVALID [ruleset.source: 4:"},
		{"unknown stored ruleset", &shrikev1.GetRuleAutomatonRequest{Ruleset: stored("nosuch", 0), Rule: "drain"}, "NotFound RULESET_NOT_FOUND"},
		{"unknown version", &shrikev1.GetRuleAutomatonRequest{Ruleset: stored("payments", 7), Rule: "drain"}, "NotFound VERSION_NOT_FOUND"},
		{"negative version", &shrikev1.GetRuleAutomatonRequest{Ruleset: stored("payments", -1), Rule: "drain"}, "InvalidArgument INVALID_REQUEST [ruleset.version: must not be negative"},
		{
			"unknown rule", &shrikev1.GetRuleAutomatonRequest{Ruleset: stored("payments", 0), Rule: "nosuch"},
			`InvalidArgument INVALID_REQUEST [rule: no automaton to draw: no rule "nosuch" in ruleset "payments" (pattern rules: "drain")]`,
		},
		{
			"when rule", &shrikev1.GetRuleAutomatonRequest{Ruleset: sourceRef(sequenceSrc), Rule: "big"},
			`InvalidArgument INVALID_REQUEST [rule: no automaton to draw: rule "big" of ruleset "payments" is a when rule`,
		},
		{
			"aggregate rule", &shrikev1.GetRuleAutomatonRequest{Ruleset: sourceRef(sequenceSrc), Rule: "volume"},
			`InvalidArgument INVALID_REQUEST [rule: no automaton to draw: rule "volume" of ruleset "payments" is an aggregate rule`,
		},
		{
			"disabled rule", &shrikev1.GetRuleAutomatonRequest{Ruleset: sourceRef(sequenceSrc), Rule: "off"},
			`InvalidArgument INVALID_REQUEST [rule: no automaton to draw: rule "off" of ruleset "payments" is disabled`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.analysis().GetRuleAutomaton(e.ctx(t), tt.req)
			if got := statusOf(err); err == nil || !strings.HasPrefix(got, tt.want) {
				t.Fatalf("got %s (%v), want %s…", got, err, tt.want)
			}
		})
	}

	t.Run("REST", func(t *testing.T) {
		code, body := e.rest(t, http.MethodPost, "/v1/rulesets:automaton", map[string]any{
			"ruleset": map[string]any{"source": sequenceSrc},
			"rule":    "big",
		})
		if got := restStatus(code, body); !strings.HasPrefix(got, `400 INVALID_REQUEST [rule: no automaton to draw: rule "big" of ruleset "payments" is a when rule`) {
			t.Errorf("got %s", got)
		}
	})

	t.Run("too large to draw", func(t *testing.T) {
		src := "ruleset: big\nrules:\n  - id: huge\n    pattern:\n      - step: a\n        where: event.type == \"a\"\n      - group: g\n        times: 300\n        steps:\n          - step: b\n            where: event.type == \"b\"\n          - step: c\n            where: event.type == \"c\"\n"
		_, err := e.analysis().GetRuleAutomaton(e.ctx(t), &shrikev1.GetRuleAutomatonRequest{Ruleset: sourceRef(src), Rule: "huge"})
		if got := statusOf(err); !strings.HasPrefix(got, `InvalidArgument INVALID_REQUEST [rule: automaton too large to draw: rule "huge": its automaton has`) {
			t.Errorf("got %s (%v)", got, err)
		}
	})
}

// TestGetRuleAutomatonScope: the call needs rules:read.
func TestGetRuleAutomatonScope(t *testing.T) {
	if got := shrikev1.RequiredScope(shrikev1.AnalysisService_GetRuleAutomaton_FullMethodName); got != "rules:read" {
		t.Fatalf("the proto says scope %q, want rules:read", got)
	}
	e := newEnv(t, envOptions{tokens: tokens})
	req := &shrikev1.GetRuleAutomatonRequest{Ruleset: sourceRef(sequenceSrc), Rule: "drain"}
	for _, tt := range []struct{ token, grpc, rest string }{
		{"", "Unauthenticated TOKEN_MISSING", "401 TOKEN_MISSING"},
		{tokenFor("rules:read", false), "PermissionDenied SCOPE_MISSING", "403 SCOPE_MISSING"},
		{tokenFor("rules:read", true), "OK", "200 "},
	} {
		e.token = tt.token
		got := "OK"
		if _, err := e.analysis().GetRuleAutomaton(e.ctx(t), req); err != nil {
			got = statusOf(err)
		}
		if got != tt.grpc {
			t.Errorf("gRPC with token %.8q: got %s, want %s", tt.token, got, tt.grpc)
		}
		code, body := e.rest(t, http.MethodPost, "/v1/rulesets:automaton", map[string]any{"ruleset": map[string]any{"source": sequenceSrc}, "rule": "drain"})
		if got := restStatus(code, body); got != tt.rest {
			t.Errorf("REST with token %.8q: got %s, want %s", tt.token, got, tt.rest)
		}
	}
}
