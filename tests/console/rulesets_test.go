package console

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestLoginShowsShippedRulesets signs in with a token and finds every
// shipped ruleset and its rule ids on the rulesets page.
func TestLoginShowsShippedRulesets(t *testing.T) {
	s := startServer(t)
	ctx := s.tab(t)

	// Without a token the console asks for one; a wrong one is refused
	// with a message.
	do(ctx, t, "a wrong token",
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
		chromedp.SendKeys(chromedp.CSS(`#token`), "not-a-token"),
		chromedp.Click(chromedp.CSS(`form.login button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`form.login .error`)))
	if msg := text(ctx, t, `form.login .error`); !strings.Contains(msg, "refused") {
		t.Errorf("a wrong token shows %q", msg)
	}
	do(ctx, t, "clearing the token", chromedp.Clear(chromedp.CSS(`#token`)))
	s.login(ctx, t, s.analyst)
	waitText(ctx, t, "#who", "Signed in as analyst")

	for _, rs := range []string{"payments", "account_security", "itops"} {
		waitText(ctx, t, `section.ruleset[data-ruleset="`+rs+`"]`, rs)
	}
	page := text(ctx, t, "main")
	for _, rule := range []string{"big-foreign-transfer", "account-takeover", "card-spree", "error-rate"} {
		if !strings.Contains(page, rule) {
			t.Errorf("the rulesets page does not show rule %s:\n%s", rule, page)
		}
	}
	screenshot(ctx, t, "rulesets")
}

// TestRulesetsPageStateLinksAndActions finds each ruleset's live and
// shadow state, its figures, its links and the pictures of its pattern
// rules, rolls a ruleset back and deletes another from the page.
func TestRulesetsPageStateLinksAndActions(t *testing.T) {
	s := startServer(t)
	var v1 rulesetJSON
	s.restJSON(t, "GET", "/v1/rulesets/payments", "", http.StatusOK, &v1)
	changed := strings.Replace(v1.Source, "event.amount > 5000.0", "event.amount > 6000.0", 1)
	s.restJSON(t, "PUT", "/v1/rulesets/payments", jsonBody(t, map[string]string{"source": changed}), http.StatusOK, nil)

	ctx := s.tab(t)
	s.login(ctx, t, s.analyst)
	pay := `section.ruleset[data-ruleset="payments"]`
	waitText(ctx, t, pay+` .state`, "live version 2")
	if st := text(ctx, t, pay+` .state`); !strings.Contains(st, "no shadow") {
		t.Errorf("payments' state: %q", st)
	}
	links := eval[map[string]string](ctx, t, `(() => { const s = document.querySelector('section.ruleset[data-ruleset="payments"]'); const r = {};
		for (const c of ['edit-link', 'versions-link', 'shadow-link']) r[c] = s.querySelector('a.' + c).getAttribute('href') + ' ' + s.querySelector('a.' + c).textContent;
		return r; })()`)
	for class, want := range map[string]string{
		"edit-link":     "#/rulesets/payments/edit Edit",
		"versions-link": "#/rulesets/payments/versions Versions",
		"shadow-link":   "#/rulesets/payments/shadow Shadow",
	} {
		if links[class] != want {
			t.Errorf("payments' %s is %q, want %q", class, links[class], want)
		}
	}
	pictures := eval[[]string](ctx, t, `[...document.querySelectorAll('section.ruleset[data-ruleset="payments"] a.picture')].map(a => a.getAttribute('href'))`)
	if len(pictures) != 6 || pictures[0] != "#/rulesets/payments/rules/account-takeover/picture" {
		t.Errorf("payments' picture links: %v, want the six pattern rules' from account-takeover on", pictures)
	}
	if n := eval[int](ctx, t, `document.querySelectorAll('a.new-ruleset').length`); n != 1 {
		t.Errorf("%d New ruleset buttons", n)
	}

	// The figures: REST's, or "—" on a server without them.
	code, _ := s.request(t, "GET", "/v1/rulesets/payments/stats", s.analyst, "")
	cell := text(ctx, t, pay+` tr[data-rule="big-foreign-transfer"] td.alerts-last-hour`)
	if code == http.StatusOK {
		var stats struct {
			Rules []struct {
				Rule           string `json:"rule"`
				Shadow         bool   `json:"shadow"`
				AlertsLastHour string `json:"alerts_last_hour"`
			} `json:"rules"`
		}
		s.restJSON(t, "GET", "/v1/rulesets/payments/stats", "", http.StatusOK, &stats)
		for _, r := range stats.Rules {
			if r.Rule == "big-foreign-transfer" && !r.Shadow && r.AlertsLastHour != cell {
				t.Errorf("big-foreign-transfer's alerts of the last hour: page %q, REST %q", cell, r.AlertsLastHour)
			}
		}
	} else if cell != "—" {
		t.Errorf("without GET …/stats (%d) the alerts cell shows %q, want —", code, cell)
	}

	// Roll back: version 3 holds version 1's source.
	do(ctx, t, "rolling back payments", chromedp.Click(chromedp.CSS(pay+` button.rollback`)))
	confirmDialog(ctx, t)
	waitText(ctx, t, `#notice`, "version 3 is live")
	waitText(ctx, t, pay+` h2 .version`, "version 3")
	var v3 rulesetJSON
	s.restJSON(t, "GET", "/v1/rulesets/payments", "", http.StatusOK, &v3)
	if v3.Version != "3" || v3.Source != v1.Source {
		t.Errorf("after the rollback REST has version %s, version 1's source: %v", v3.Version, v3.Source == v1.Source)
	}

	// Delete, cancelled, then confirmed.
	do(ctx, t, "deleting itops, cancelled", chromedp.Click(chromedp.CSS(`section.ruleset[data-ruleset="itops"] button.delete`)),
		chromedp.WaitVisible(chromedp.CSS(`dialog.confirm button.confirm-cancel`)),
		chromedp.Click(chromedp.CSS(`dialog.confirm button.confirm-cancel`)),
		chromedp.WaitNotPresent(chromedp.CSS(`dialog.confirm`)))
	if code, _ := s.request(t, "GET", "/v1/rulesets/itops", s.analyst, ""); code != http.StatusOK {
		t.Fatalf("itops after a cancelled delete: %d", code)
	}
	do(ctx, t, "deleting itops", chromedp.Click(chromedp.CSS(`section.ruleset[data-ruleset="itops"] button.delete`)))
	confirmDialog(ctx, t)
	waitText(ctx, t, `#notice`, "Deleted itops")
	if n := eval[int](ctx, t, `document.querySelectorAll('section.ruleset[data-ruleset="itops"]').length`); n != 0 {
		t.Errorf("itops still shown after its deletion")
	}
	if code, _ := s.request(t, "GET", "/v1/rulesets/itops", s.analyst, ""); code != http.StatusNotFound {
		t.Errorf("GET itops after the deletion: %d, want 404", code)
	}

	// The notice leads to the history, where a rollback brings it back.
	do(ctx, t, "opening the deleted ruleset's history", chromedp.Click(chromedp.CSS(`#notice a`)))
	waitText(ctx, t, `main .meta`, "The ruleset is deleted")
	if row := text(ctx, t, `tr.version-row[data-version="2"]`); !strings.Contains(row, "deletion") {
		t.Errorf("the deletion's row reads %q", row)
	}
	do(ctx, t, "restoring itops", chromedp.Click(chromedp.CSS(`tr.version-row[data-version="1"] button.rollback-to`)))
	confirmDialog(ctx, t)
	waitText(ctx, t, `main .meta`, "Live version 3")
	if code, _ := s.request(t, "GET", "/v1/rulesets/itops", s.analyst, ""); code != http.StatusOK {
		t.Errorf("GET itops after restoring it: %d", code)
	}
}

// TestViewerSeesNoEditButtons signs in with a read-only token: the pages
// show rulesets, sources and history, with no button that changes them.
func TestViewerSeesNoEditButtons(t *testing.T) {
	s := startServer(t)
	if code, body := s.request(t, "GET", "/v1/caller", s.viewer, ""); code == http.StatusNotFound {
		t.Skipf("this server has no GET /v1/caller (%s): the console cannot tell a viewer's scopes", body)
	}
	ctx := s.tab(t)
	s.login(ctx, t, s.viewer)
	pay := `section.ruleset[data-ruleset="payments"]`
	waitText(ctx, t, pay+` .state`, "live version 1")
	for _, sel := range []string{`a.new-ruleset`, `button.delete`, `button.rollback`} {
		if n := eval[int](ctx, t, `document.querySelectorAll('`+sel+`').length`); n != 0 {
			t.Errorf("a viewer sees %d %s", n, sel)
		}
	}
	if got := text(ctx, t, pay+` a.edit-link`); got != "View source" {
		t.Errorf("a viewer's edit link reads %q, want View source", got)
	}

	do(ctx, t, "opening the source", chromedp.Click(chromedp.CSS(pay+` a.edit-link`)))
	waitText(ctx, t, `.validation-status`, "Valid")
	if !eval[bool](ctx, t, `document.querySelector('#source').readOnly`) {
		t.Error("a viewer's editor is not read-only")
	}
	for _, sel := range []string{`button.save`, `button.push-shadow`} {
		if n := eval[int](ctx, t, `document.querySelectorAll('`+sel+`').length`); n != 0 {
			t.Errorf("a viewer sees %d %s", n, sel)
		}
	}
	if n := eval[int](ctx, t, `document.querySelectorAll('button.run-test, button.diff-live').length`); n != 2 {
		t.Errorf("a viewer sees %d of the test and diff buttons, want 2", n)
	}

	navigate(ctx, t, "#/rulesets/payments/versions")
	waitJS(ctx, t, "the history", `document.querySelector('tr.version-row')`)
	if n := eval[int](ctx, t, `document.querySelectorAll('button.rollback-to').length`); n != 0 {
		t.Errorf("a viewer sees %d rollback buttons", n)
	}

	// A shadow: the viewer sees the comparison, not Promote or Drop.
	var live rulesetJSON
	s.restJSON(t, "GET", "/v1/rulesets/payments", "", http.StatusOK, &live)
	s.restJSON(t, "PUT", "/v1/rulesets/payments/shadow", jsonBody(t, map[string]string{"source": live.Source}), http.StatusOK, nil)
	navigate(ctx, t, "#/rulesets/payments/shadow")
	waitJS(ctx, t, "the comparison", `document.querySelector('tr.rule-diff[data-rule="big-foreign-transfer"]')`)
	if n := eval[int](ctx, t, `document.querySelectorAll('button.promote, button.drop').length`); n != 0 {
		t.Errorf("a viewer sees %d of Promote and Drop", n)
	}
}
