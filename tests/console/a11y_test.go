package console

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// audit runs testdata/audit.js's page check in the tab and reports every
// problem it finds, naming the state of the console it looked at.
func audit(ctx context.Context, t *testing.T, state string) {
	t.Helper()
	installAudit(ctx, t)
	if problems := eval[[]string](ctx, t, `shrikeAudit.page()`); len(problems) > 0 {
		t.Errorf("%s: %d accessibility problems:\n  %s", state, len(problems), strings.Join(problems, "\n  "))
	}
}

func installAudit(ctx context.Context, t *testing.T) {
	t.Helper()
	src, err := os.ReadFile("testdata/audit.js")
	if err != nil {
		t.Fatal(err)
	}
	if !eval[bool](ctx, t, string(src)) {
		t.Fatal("testdata/audit.js did not install")
	}
}

// focusStop is where one press of Tab left the focus.
type focusStop struct {
	What     string  `json:"what"`
	Ring     bool    `json:"ring"`
	Contrast float64 `json:"contrast"`
}

// tabThrough presses Tab n times from the top of the page and returns
// where the focus went each time.
func tabThrough(ctx context.Context, t *testing.T, n int) []focusStop {
	t.Helper()
	installAudit(ctx, t)
	// Tab moves on from the last focused element: a focusable but
	// untabbable mark at the top of the page starts the walk there.
	eval[bool](ctx, t, `(() => { const m = document.createElement('span'); m.id = 'tab-start'; m.tabIndex = -1;
		document.body.prepend(m); m.focus(); return true; })()`)
	stops := make([]focusStop, 0, n)
	for range n {
		do(ctx, t, "pressing Tab", chromedp.KeyEvent(kb.Tab))
		stops = append(stops, eval[focusStop](ctx, t, `(() => { const f = shrikeAudit.focus(); document.getElementById('tab-start')?.remove(); return f; })()`))
	}
	return stops
}

// checkFocusRings fails the test for every stop whose focus ring does not
// show, and returns the stops' descriptions.
func checkFocusRings(t *testing.T, state string, stops []focusStop) []string {
	t.Helper()
	var seen []string
	for i, s := range stops {
		seen = append(seen, s.What)
		if !s.Ring {
			t.Errorf("%s: Tab %d focuses %s with no visible focus ring (contrast %.2f:1, want 3:1)", state, i+1, s.What, s.Contrast)
		}
	}
	return seen
}

// TestConsoleAccessible audits every page of the console, in the states
// an analyst sees them (empty, filled, with an error, with results):
// every control named, text at WCAG AA contrast, pictures with a text
// alternative, one h1, unique ids. On the login and rulesets pages it
// walks the keyboard's Tab order: every stop shows its focus ring, the
// skip link moves the focus to the page's content without leaving the
// page, and the navigation is reachable without a mouse.
func TestConsoleAccessible(t *testing.T) {
	s := startServer(t)
	ctx := s.tab(t)

	do(ctx, t, "the login page", chromedp.WaitVisible(chromedp.CSS(`#token`)))
	// The audit reports what it looks for: problems planted in the page.
	installAudit(ctx, t)
	planted := eval[[]string](ctx, t, `(() => { const d = document.createElement('div');
		d.innerHTML = '<input id="planted-input"><p id="planted-text">faint</p><button id="planted-button"></button>';
		d.querySelector('p').style.color = '#bbb'; document.body.append(d); const p = shrikeAudit.page(); d.remove(); return p; })()`)
	for _, want := range []string{"no accessible name: input#planted-input", "no accessible name: button#planted-button", `p#planted-text "faint"`} {
		if !strings.Contains(strings.Join(planted, "\n"), want) {
			t.Errorf("the audit misses a planted problem (%s); it reports:\n%s", want, strings.Join(planted, "\n"))
		}
	}
	audit(ctx, t, "the login page")
	stops := checkFocusRings(t, "the login page", tabThrough(ctx, t, 3))
	if !strings.Contains(stops[0], "Skip to content") {
		t.Errorf("the first Tab stop is %s, want the skip link", stops[0])
	}
	do(ctx, t, "a wrong token",
		chromedp.SendKeys(chromedp.CSS(`#token`), "not-a-token"),
		chromedp.Click(chromedp.CSS(`form.login button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`form.login .error`)))
	audit(ctx, t, "the login page with its error")
	do(ctx, t, "clearing the token", chromedp.Clear(chromedp.CSS(`#token`)))
	s.login(ctx, t, s.analyst)

	waitText(ctx, t, `section.ruleset[data-ruleset="payments"] .state`, "live version")
	audit(ctx, t, "the rulesets page")
	stops = checkFocusRings(t, "the rulesets page", tabThrough(ctx, t, 12))
	joined := strings.Join(stops, "\n")
	for _, want := range []string{"Skip to content", `"Rulesets"`, `"Alerts"`, `"Explain"`, `"Lists"`} {
		if !strings.Contains(joined, want) {
			t.Errorf("Tab never reaches %s on the rulesets page; it stops at:\n%s", want, joined)
		}
	}
	// The skip link moves the focus to the content and stays on the page.
	tabThrough(ctx, t, 1)
	do(ctx, t, "following the skip link", chromedp.KeyEvent(kb.Enter))
	pollUntil(t, "the focus on the page's content", func() bool {
		return eval[string](ctx, t, `document.activeElement.id`) == "main"
	})
	if hash := eval[string](ctx, t, `location.hash`); hash != "#/rulesets" {
		t.Errorf("the skip link changed the page to %s", hash)
	}
	waitText(ctx, t, "main h1", "Rulesets")

	visit(ctx, t, "#/rulesets/payments/edit")
	waitText(ctx, t, `.validation-status`, "Valid")
	audit(ctx, t, "the editor")
	do(ctx, t, "typing an error",
		chromedp.Focus(chromedp.CSS(`#source`)),
		chromedp.KeyEvent(kb.End+" amuont"))
	waitText(ctx, t, `.validation-status`, "1 error")
	do(ctx, t, "the error's list", chromedp.WaitVisible(chromedp.CSS(`.problem-list.errors li`)))
	audit(ctx, t, "the editor with an error marked")
	do(ctx, t, "diff against live", chromedp.Click(chromedp.CSS(`button.diff-live`)))
	waitText(ctx, t, `.diff-panel .diff-counts`, "+")
	audit(ctx, t, "the editor with its diff")

	visit(ctx, t, "#/rulesets/payments/versions")
	waitText(ctx, t, "main h1", "Versions of payments")
	waitText(ctx, t, "main table", "1")
	audit(ctx, t, "the versions page")

	visit(ctx, t, "#/rulesets/payments/shadow")
	waitText(ctx, t, `.no-shadow`, "Push as shadow")
	audit(ctx, t, "the shadow page without a shadow")

	visit(ctx, t, "#/alerts")
	waitText(ctx, t, "#stream-status", "Live")
	audit(ctx, t, "the alerts page")

	visit(ctx, t, "#/explain?ruleset=payments&rule=account-takeover&key=acct-0000050&recording=payments.jsonl")
	do(ctx, t, "explaining",
		chromedp.WaitVisible(chromedp.CSS(`form.explain-form`)),
		chromedp.Click(chromedp.CSS(`form.explain-form button[type=submit]`)))
	waitText(ctx, t, `.verdict[data-rule="account-takeover"] .verdict-word`, "Fired")
	audit(ctx, t, "the explain page with a trace")

	visit(ctx, t, "#/rulesets/payments/rules/account-takeover/picture")
	waitText(ctx, t, "figure.automaton-picture figcaption", "states")
	audit(ctx, t, "the rule picture")

	visit(ctx, t, "#/lists")
	waitText(ctx, t, `tr[data-list="blocked_networks"]`, "cidr")
	audit(ctx, t, "the lists page")
	visit(ctx, t, "#/lists/blocked_networks")
	waitText(ctx, t, "#list-items", "The list is empty")
	audit(ctx, t, "an empty list")

	visit(ctx, t, "#/no-such-page")
	waitText(ctx, t, "main h1", "Not found")
	audit(ctx, t, "the page for an unknown address")
}
