package console

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestShadowPushCompareAndPromote pushes a lower threshold as the shadow
// of payments from the editor, sends a transfer only the shadow alerts on,
// finds the difference on the shadow page, promotes the shadow and finds
// it live.
func TestShadowPushCompareAndPromote(t *testing.T) {
	s := startServer(t)
	ctx := s.tab(t)
	s.login(ctx, t, s.analyst)
	waitText(ctx, t, `section.ruleset[data-ruleset="payments"] .state`, "no shadow")

	// No shadow yet: the page says how to push one.
	navigate(ctx, t, "#/rulesets/payments/shadow")
	waitText(ctx, t, `.no-shadow`, "Push as shadow")

	var live rulesetJSON
	s.restJSON(t, "GET", "/v1/rulesets/payments", "", http.StatusOK, &live)
	const oldCond = `event.type == "transfer" && event.amount > 10000.0`
	const newCond = `event.type == "transfer" && event.amount > 5000.0`
	candidate := strings.Replace(live.Source, oldCond, newCond, 1)
	if candidate == live.Source {
		t.Fatal("the shipped payments ruleset no longer has the threshold this test changes")
	}

	navigate(ctx, t, "#/rulesets/payments/edit")
	waitText(ctx, t, `.validation-status`, "Valid")
	setSource(ctx, t, candidate)
	waitText(ctx, t, `.dirty`, "Unsaved changes")
	do(ctx, t, "pushing the shadow", chromedp.Click(chromedp.CSS(`button.push-shadow`)))
	waitText(ctx, t, `.save-result`, "Deployed as the shadow")
	var shadow struct {
		Source      string `json:"source"`
		LiveVersion string `json:"live_version"`
	}
	s.restJSON(t, "GET", "/v1/rulesets/payments/shadow", "", http.StatusOK, &shadow)
	if shadow.Source != candidate || shadow.LiveVersion != live.Version {
		t.Fatalf("REST's shadow is beside version %s, with the candidate source: %v", shadow.LiveVersion, shadow.Source == candidate)
	}

	// The rulesets page shows the shadow, and its rules' figures beside the
	// live ones.
	navigate(ctx, t, "#/rulesets")
	waitText(ctx, t, `section.ruleset[data-ruleset="payments"] .state`, "shadow running since")
	waitText(ctx, t, `section.ruleset[data-ruleset="payments"] table thead`, "Shadow alerts (last hour)")
	if n := eval[int](ctx, t, `document.querySelectorAll('section.ruleset[data-ruleset="itops"] td.shadow-alerts').length`); n != 0 {
		t.Errorf("itops, without a shadow, shows %d shadow figures", n)
	}

	// A transfer of 7,000 to a high-risk country: only the shadow alerts.
	// A logout ten seconds later moves the watermark past it (payments
	// allows events 5 s late).
	now := time.Now().UTC()
	stamp := func(d time.Duration) string { return now.Add(d).Format("2006-01-02T15:04:05.000Z") }
	event := fmt.Sprintf(`{"topic": "payments", "events": [
		{"key": "acct-shadow", "value": {"type": "transfer", "account_id": "acct-shadow", "amount": 7000.0, "currency": "EUR", "country": "KP", "ts": %q}},
		{"key": "acct-shadow", "value": {"type": "logout", "account_id": "acct-shadow", "ts": %q}}]}`, stamp(-10*time.Second), stamp(0))
	s.restJSON(t, "POST", "/v1/events:publish", event, http.StatusOK, nil)

	do(ctx, t, "opening the shadow", chromedp.Click(chromedp.CSS(`section.ruleset[data-ruleset="payments"] a.shadow-link`)))
	waitText(ctx, t, `.shadow-state`, "deployed beside version "+live.Version)
	// The comparison reads the alerts topics: refresh until the shadow's
	// alert is in.
	onlyShadow := `.rule-diff[data-rule="big-foreign-transfer"] td.only-shadow`
	deadline := time.Now().Add(actionTimeout)
	for eval[string](ctx, t, `(document.querySelector('`+onlyShadow+`') || {}).textContent || ''`) != "1" {
		if time.Now().After(deadline) {
			t.Fatalf("the shadow page never counted the shadow's alert; it shows:\n%s", pageText(ctx))
		}
		time.Sleep(500 * time.Millisecond)
		do(ctx, t, "refreshing the comparison", chromedp.Click(chromedp.CSS(`button.refresh-diff`)))
		waitJS(ctx, t, "the comparison", `document.querySelector('.shadow-diff table, .shadow-diff .error')`)
	}
	if got := text(ctx, t, `.rule-diff[data-rule="big-foreign-transfer"] td.only-live`); got != "0" {
		t.Errorf("live-only alerts of big-foreign-transfer: %s, want 0", got)
	}
	waitText(ctx, t, `p.differ`, "differ")
	do(ctx, t, "unfolding the examples", chromedp.Click(chromedp.CSS(`details.diff-examples[data-rule="big-foreign-transfer"] summary`)))
	if ex := text(ctx, t, `details.diff-examples[data-rule="big-foreign-transfer"] tr.alert-row`); !strings.Contains(ex, "acct-shadow") {
		t.Errorf("the shadow's example alert shows %q", ex)
	}
	screenshot(ctx, t, "shadow")

	do(ctx, t, "promoting", chromedp.Click(chromedp.CSS(`button.promote`)))
	confirmDialog(ctx, t)
	waitText(ctx, t, `#notice`, "Promoted")
	waitText(ctx, t, `.no-shadow`, "has no shadow")
	var promoted rulesetJSON
	s.restJSON(t, "GET", "/v1/rulesets/payments", "", http.StatusOK, &promoted)
	if promoted.Source != candidate || promoted.Version == live.Version {
		t.Errorf("after promoting REST has version %s (was %s), the candidate: %v", promoted.Version, live.Version, promoted.Source == candidate)
	}
	waitText(ctx, t, `.live-version`, promoted.Version)
	if code, body := s.request(t, "GET", "/v1/rulesets/payments/shadow", s.analyst, ""); code != http.StatusNotFound {
		t.Errorf("the shadow after promotion: %d %s", code, body)
	}

	// Another shadow, dropped: the live version stays.
	s.restJSON(t, "PUT", "/v1/rulesets/payments/shadow", jsonBody(t, map[string]string{"source": live.Source}), http.StatusOK, nil)
	navigate(ctx, t, "#/rulesets")
	waitText(ctx, t, `section.ruleset[data-ruleset="payments"] .state`, "shadow running since")
	do(ctx, t, "opening the shadow", chromedp.Click(chromedp.CSS(`section.ruleset[data-ruleset="payments"] a.shadow-link`)))
	waitText(ctx, t, `.shadow-state`, "deployed beside version "+promoted.Version)
	do(ctx, t, "dropping", chromedp.Click(chromedp.CSS(`button.drop`)))
	confirmDialog(ctx, t)
	waitText(ctx, t, `#notice`, "Dropped the shadow")
	waitText(ctx, t, `.no-shadow`, "has no shadow")
	if code, body := s.request(t, "GET", "/v1/rulesets/payments/shadow", s.analyst, ""); code != http.StatusNotFound {
		t.Errorf("the shadow after dropping it: %d %s", code, body)
	}
	var after rulesetJSON
	s.restJSON(t, "GET", "/v1/rulesets/payments", "", http.StatusOK, &after)
	if after.Version != promoted.Version {
		t.Errorf("dropping the shadow changed the live version from %s to %s", promoted.Version, after.Version)
	}
}
