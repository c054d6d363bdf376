package console

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestExplainKey explains account acct-0000050 over the shipped recording
// payments.jsonl, where account-takeover fires for it once (`shrike run
// --rules rulesets/payments.yaml rulesets/testdata/payments.jsonl`), with
// the form filled from the URL as the alerts page links to it; then a rule
// that does not fire for the key, and a recording the server lacks.
func TestExplainKey(t *testing.T) {
	s := startServer(t)
	ctx := s.tab(t)
	s.login(ctx, t, s.analyst)

	visit(ctx, t, "#/explain?ruleset=payments&rule=account-takeover&key=acct-0000050&recording=payments.jsonl")
	do(ctx, t, "the explain form", chromedp.WaitVisible(chromedp.CSS(`form.explain-form`)))
	for sel, want := range map[string]string{"#x-ruleset": "payments", "#x-rule": "account-takeover", "#x-key": "acct-0000050", "#x-recording": "payments.jsonl"} {
		if got := eval[string](ctx, t, `document.querySelector("`+sel+`").value`); got != want {
			t.Errorf("%s from the URL holds %q, want %q", sel, got, want)
		}
	}
	do(ctx, t, "explaining", chromedp.Click(chromedp.CSS(`form.explain-form button[type=submit]`)))
	waitText(ctx, t, `.verdict[data-rule="account-takeover"] .verdict-word`, "Fired 1 time")
	if n := eval[int](ctx, t, `document.querySelectorAll(".verdict").length`); n != 1 {
		t.Errorf("%d verdicts for one rule", n)
	}
	if got := eval[string](ctx, t, `document.querySelector("main [role=status]").textContent`); got != "account-takeover: fired 1 time" {
		t.Errorf("the verdict is announced as %q", got)
	}
	verdict := text(ctx, t, ".verdict")
	if !strings.Contains(verdict, "c0fafe290b35f71849097a1ee04fc9fa") {
		t.Errorf("the verdict does not name the alert shrike run gives:\n%s", verdict)
	}
	// The timeline: the key's 16 records, the first failed login starting
	// a run, and the alert at the draining transfer (line 847).
	if n := eval[int](ctx, t, `document.querySelectorAll("li.tl-record").length`); n != 16 {
		t.Errorf("the timeline shows %d records of the key, want 16", n)
	}
	first := text(ctx, t, `li.tl-record[data-position="payments.jsonl:517"]`)
	for _, want := range []string{"2026-11-20 10:08:19 UTC", "run 1 started: step fails took the record (step 1 of 3)", "103.254.87.174"} {
		if !strings.Contains(first, want) {
			t.Errorf("the record at payments.jsonl:517 does not show %q:\n%s", want, first)
		}
	}
	drain := text(ctx, t, `li.tl-record[data-position="payments.jsonl:847"]`)
	for _, want := range []string{"run 11 completed: the match is whole (fails@payments.jsonl:517", "Alert c0fafe290b35f71849097a1ee04fc9fa from run 11"} {
		if !strings.Contains(drain, want) {
			t.Errorf("the record at payments.jsonl:847 does not show %q:\n%s", want, drain)
		}
	}
	if page := text(ctx, t, "ol.timeline"); !strings.Contains(page, "pruned by the rule's skip strategy") {
		t.Errorf("the timeline does not tell the runs the skip strategy pruned")
	}
	if got := eval[string](ctx, t, `location.hash`); got != "#/explain?ruleset=payments&rule=account-takeover&key=acct-0000050&recording=payments.jsonl" {
		t.Errorf("the URL after explaining is %q", got)
	}
	screenshot(ctx, t, "explain")

	// impossible-travel does not fire for the key: the verdict says how far
	// it got and what it still needed.
	// Keys, not clicks, after a full-page screenshot: capturing beyond the
	// viewport resizes the page for a moment, which can move a click.
	do(ctx, t, "another rule",
		chromedp.SetValue(chromedp.CSS(`#x-rule`), "impossible-travel"),
		chromedp.Focus(chromedp.CSS(`form.explain-form button[type=submit]`)),
		chromedp.KeyEvent("\r"))
	waitText(ctx, t, `.verdict[data-rule="impossible-travel"] .verdict-word`, "Did not fire")
	notFired := text(ctx, t, ".verdict")
	for _, want := range []string{"step 1 of 2", "window expired", "Still needed step there"} {
		if !strings.Contains(notFired, want) {
			t.Errorf("the verdict of impossible-travel does not show %q:\n%s", want, notFired)
		}
	}

	// A recording the server does not have: the API's error.
	visit(ctx, t, "#/explain?ruleset=payments&key=acct-0000050&recording=nothing-here.jsonl")
	pollUntil(t, "the explain form for the missing recording", func() bool {
		return eval[string](ctx, t, `((document.querySelector("#x-recording") || {}).value || "")`) == "nothing-here.jsonl"
	})
	do(ctx, t, "a missing recording", chromedp.Click(chromedp.CSS(`form.explain-form button[type=submit]`)))
	waitText(ctx, t, ".explain-result .error", "no such recording")
}
