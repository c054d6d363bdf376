package console

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// automaton asks the API for a rule's automaton.
func automaton(t *testing.T, s *server, ruleset, rule string) (code int, states, edges int, message string) {
	t.Helper()
	req, _ := json.Marshal(map[string]any{"ruleset": map[string]string{"name": ruleset}, "rule": rule})
	code, body := s.request(t, "POST", "/v1/rulesets:automaton", s.viewer, string(req))
	var res struct {
		Automaton struct {
			States []json.RawMessage `json:"states"`
			Edges  []json.RawMessage `json:"edges"`
		} `json:"automaton"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatalf("POST /v1/rulesets:automaton for %s: %v in %s", rule, err, body)
	}
	return code, len(res.Automaton.States), len(res.Automaton.Edges), res.Message
}

// TestRulePicture shows account-takeover's automaton: one drawn state per
// state of the API's automaton, one drawn edge per edge, the tables
// beside them, and for a when rule, which has none, the API's message.
func TestRulePicture(t *testing.T) {
	s := startServer(t)
	ctx := s.tab(t)
	s.login(ctx, t, s.viewer)

	code, states, edges, _ := automaton(t, s, "payments", "account-takeover")
	if code != http.StatusOK || states < 3 || edges < states-1 {
		t.Fatalf("the API's automaton of account-takeover: %d, %d states, %d edges", code, states, edges)
	}
	visit(ctx, t, "#/rulesets/payments/rules/account-takeover/picture")
	waitText(ctx, t, "figure.automaton-picture figcaption", "states")
	if n := eval[int](ctx, t, `document.querySelectorAll("figure.automaton-picture svg g.state").length`); n != states {
		t.Errorf("the picture draws %d states, the API has %d", n, states)
	}
	if n := eval[int](ctx, t, `document.querySelectorAll("figure.automaton-picture svg g.edge").length`); n != edges {
		t.Errorf("the picture draws %d edges, the API has %d", n, edges)
	}
	if n := eval[int](ctx, t, `document.querySelectorAll("tr.automaton-state").length`); n != states {
		t.Errorf("the states table has %d rows, the API %d states", n, states)
	}
	if n := eval[int](ctx, t, `document.querySelectorAll("tr.automaton-edge").length`); n != edges {
		t.Errorf("the edges table has %d rows, the API %d edges", n, edges)
	}
	edgeTable := text(ctx, t, "table.grid:last-of-type")
	for _, want := range []string{"take", `event.type == "login"`, "drain"} {
		if !strings.Contains(edgeTable, want) {
			t.Errorf("the edges table does not show %q:\n%s", want, edgeTable)
		}
	}
	legend := text(ctx, t, ".picture-legend")
	for _, want := range []string{"take", "ignore", "proceed", "final", "stop", "within: 10m"} {
		if !strings.Contains(legend, want) {
			t.Errorf("the legend does not show %q:\n%s", want, legend)
		}
	}
	screenshot(ctx, t, "picture")

	// A when rule has no automaton: the page shows the API's message.
	code, _, _, message := automaton(t, s, "payments", "big-foreign-transfer")
	if code != http.StatusBadRequest || message == "" {
		t.Fatalf("the API's answer for a when rule: %d %q", code, message)
	}
	visit(ctx, t, "#/rulesets/payments/rules/big-foreign-transfer/picture")
	waitText(ctx, t, "main .error", message)
}
