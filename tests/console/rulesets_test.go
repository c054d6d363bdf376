package console

import (
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
	do(t, ctx, "a wrong token",
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
		chromedp.SendKeys(chromedp.CSS(`#token`), "not-a-token"),
		chromedp.Click(chromedp.CSS(`form.login button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`form.login .error`)))
	if msg := text(t, ctx, `form.login .error`); !strings.Contains(msg, "refused") {
		t.Errorf("a wrong token shows %q", msg)
	}
	do(t, ctx, "clearing the token", chromedp.Clear(chromedp.CSS(`#token`)))
	s.login(t, ctx, s.analyst)
	waitText(t, ctx, "#who", "Signed in as analyst")

	for _, rs := range []string{"payments", "account_security", "itops"} {
		waitText(t, ctx, `section.ruleset[data-ruleset="`+rs+`"]`, rs)
	}
	page := text(t, ctx, "main")
	for _, rule := range []string{"big-foreign-transfer", "account-takeover", "card-spree", "error-rate"} {
		if !strings.Contains(page, rule) {
			t.Errorf("the rulesets page does not show rule %s:\n%s", rule, page)
		}
	}
	screenshot(t, ctx, "rulesets")
}
