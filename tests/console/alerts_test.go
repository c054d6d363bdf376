package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/shrike-cep/shrike/internal/testkit"
)

// paymentsClock hands out event times for one key of the payments stream
// that only move forward: each event is at least a second after the last
// one and never before the wall clock, so that neither the events'
// watermark nor an idle partition's (the wall clock less
// max_out_of_orderness) makes one late.
type paymentsClock struct{ last time.Time }

func (c *paymentsClock) next(after time.Duration) time.Time {
	t := c.last.Add(after)
	if now := time.Now().UTC(); t.Before(now) {
		t = now
	}
	c.last = t.Truncate(time.Millisecond)
	return c.last
}

// publishPayment publishes one payments event and a logout of the same
// account ten seconds of event time later. The logout moves the
// partition's watermark past the first event (max_out_of_orderness is 5
// s), so the rules see the first one at once; no rule matches a logout.
func publishPayment(t *testing.T, s *server, clock *paymentsClock, event map[string]any) time.Time {
	t.Helper()
	account := event["account_id"].(string)
	at := clock.next(time.Second)
	event["ts"] = at.Format("2006-01-02T15:04:05.000Z")
	logout := map[string]any{
		"type":       "logout",
		"account_id": account,
		"ts":         clock.next(10 * time.Second).Format("2006-01-02T15:04:05.000Z"),
	}
	body, err := json.Marshal(map[string]any{"topic": "payments", "events": []map[string]any{
		{"key": account, "value": event},
		{"key": account, "value": logout},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if code, res := s.request(t, "POST", "/v1/events:publish", s.analyst, string(body)); code != http.StatusOK {
		t.Fatalf("publishing %s: %d %s", body, code, res)
	}
	return at
}

// listedAlert is what the tests read of an alert of ListAlerts.
type listedAlert struct {
	ID       string `json:"id"`
	Rule     string `json:"rule"`
	Key      string `json:"key"`
	Position string `json:"position"`
}

// listedAlerts lists the recent alerts (newest first) through REST.
func listedAlerts(t *testing.T, s *server, query string) []listedAlert {
	t.Helper()
	code, body := s.request(t, "GET", "/v1/alerts?page_size=100&"+query, s.analyst, "")
	if code != http.StatusOK {
		t.Fatalf("GET /v1/alerts?%s: %d %s", query, code, body)
	}
	var res struct {
		Alerts []listedAlert `json:"alerts"`
	}
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatalf("GET /v1/alerts: %v in %s", err, body)
	}
	return res.Alerts
}

// visit opens the console's page at hash (e.g. "#/alerts?rule=x") in a
// signed-in tab: once the sign-in has drawn the navigation, so that its
// own move to the rulesets page cannot come after this one.
func visit(ctx context.Context, t *testing.T, hash string) {
	t.Helper()
	pollUntil(t, "the console to sign in", func() bool {
		return eval[bool](ctx, t, `!!document.querySelector("#nav a[aria-current=page]") && !document.querySelector("form.login")`)
	})
	eval[string](ctx, t, fmt.Sprintf(`location.hash = %q`, hash))
	pollUntil(t, "the URL "+hash, func() bool { return eval[string](ctx, t, `location.hash`) == hash })
}

// pollUntil calls done until it holds, failing the test after a minute.
func pollUntil(t *testing.T, what string, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitAlerts waits until the server lists n alerts of rule and returns
// them, newest first.
func waitAlerts(t *testing.T, s *server, rule string, n int) []listedAlert {
	t.Helper()
	var got []listedAlert
	pollUntil(t, fmt.Sprintf("%d alerts of %s", n, rule), func() bool {
		got = listedAlerts(t, s, "rule="+rule)
		return len(got) >= n
	})
	return got
}

// rowIDs are the ids of the alert rows the page shows, top to bottom.
func rowIDs(ctx context.Context, t *testing.T) []string {
	t.Helper()
	s := eval[string](ctx, t, `[...document.querySelectorAll("tr.alert-row")].map(r => r.dataset.id).join(",")`)
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// TestAlertsLive watches alerts arrive on the live page: a minimum
// severity keeps a medium alert out, pausing holds new alerts back and
// resuming brings them without losing one, an alert's detail shows its
// matched events, and a bad CEL filter shows the API's message.
func TestAlertsLive(t *testing.T) {
	s := startServer(t)
	ctx := s.tab(t)
	s.login(ctx, t, s.analyst)
	clock := &paymentsClock{}
	const account = "acct-console-1"

	visit(ctx, t, "#/alerts?min_severity=high")
	waitText(ctx, t, "#stream-status", "Live")
	if v := eval[string](ctx, t, `document.querySelector("#f-min-severity").value`); v != "high" {
		t.Errorf("the minimum severity from the URL shows as %q", v)
	}
	waitText(ctx, t, "main", "No alert yet")

	// A medium alert (large-card-auth) reaches the server's feed but not
	// the page, which asks for high and above.
	publishPayment(t, s, clock, map[string]any{
		"type": "card_auth", "account_id": account, "amount": 7200.5, "currency": "EUR", "success": true, "card_id": "card-console", "merchant": "m-console", "country": "DE",
	})
	waitAlerts(t, s, "large-card-auth", 1)

	// A high one (big-foreign-transfer) arrives after it and shows.
	publishPayment(t, s, clock, map[string]any{
		"type": "transfer", "account_id": account, "amount": 25000.25, "currency": "USD", "country": "KP", "ip": "198.51.100.7",
	})
	first := waitAlerts(t, s, "big-foreign-transfer", 1)[0]
	waitText(ctx, t, "table.alerts", "big-foreign-transfer")
	if ids := rowIDs(ctx, t); len(ids) != 1 || ids[0] != first.ID {
		t.Fatalf("the page shows alerts %v, want only %s (the medium alert is below the filter)", ids, first.ID)
	}
	if page := text(ctx, t, "table.alerts"); strings.Contains(page, "large-card-auth") {
		t.Errorf("the page shows the medium alert despite min severity high:\n%s", page)
	}

	// Paused, the page shows no new alert; resumed, it brings the one
	// that came meanwhile, at the top.
	do(ctx, t, "pausing", chromedp.Click(chromedp.CSS(`#pause`)))
	waitText(ctx, t, "#stream-status", "Paused")
	if got := text(ctx, t, "#pause"); got != "Resume" {
		t.Errorf("the pause button reads %q while paused", got)
	}
	publishPayment(t, s, clock, map[string]any{
		"type": "transfer", "account_id": account, "amount": 31000.75, "currency": "USD", "country": "IR", "ip": "198.51.100.8",
	})
	second := waitAlerts(t, s, "big-foreign-transfer", 2)[0]
	if second.ID == first.ID {
		t.Fatalf("the newest big-foreign-transfer alert is still %s", first.ID)
	}
	if ids := rowIDs(ctx, t); len(ids) != 1 {
		t.Fatalf("while paused the page took alerts: %v", ids)
	}
	do(ctx, t, "resuming", chromedp.Click(chromedp.CSS(`#pause`)))
	pollUntil(t, "the alert published while paused on the page", func() bool { return len(rowIDs(ctx, t)) == 2 })
	if ids := rowIDs(ctx, t); ids[0] != second.ID || ids[1] != first.ID {
		t.Errorf("after resuming the page shows %v, want newest first [%s %s]", ids, second.ID, first.ID)
	}
	waitText(ctx, t, "#alert-count", "2 alerts")

	// The detail of the newest: the rule, the key, and the matched event
	// with its fields; a link explains the key.
	do(ctx, t, "opening the detail with the keyboard",
		chromedp.Focus(chromedp.CSS(`tr.alert-row[data-id="`+second.ID+`"]`)),
		chromedp.KeyEvent("\r"),
		chromedp.WaitVisible(chromedp.CSS(`dialog.alert-detail`)))
	detail := text(ctx, t, "dialog.alert-detail")
	for _, want := range []string{"big-foreign-transfer", "payments", account, "sent 31000.75 USD to IR", "Matched events"} {
		if !strings.Contains(detail, want) {
			t.Errorf("the alert's detail does not show %q:\n%s", want, detail)
		}
	}
	if n := eval[int](ctx, t, `document.querySelectorAll("dialog.alert-detail tr.matched-event").length`); n != 1 {
		t.Errorf("the detail shows %d matched events, want 1", n)
	}
	events := text(ctx, t, "dialog.alert-detail .scroll-x table")
	for _, want := range []string{"event", "amount", "31000.75", "country", "IR", "198.51.100.8", "field ts"} {
		if !strings.Contains(events, want) {
			t.Errorf("the matched events table does not show %q:\n%s", want, events)
		}
	}
	href := eval[string](ctx, t, `document.querySelector("dialog.alert-detail a.explain-link").getAttribute("href")`)
	if href != "#/explain?ruleset=payments&rule=big-foreign-transfer&key="+account {
		t.Errorf("Explain this key links to %q", href)
	}
	screenshot(ctx, t, "alerts")
	// Keys, not clicks, after a full-page screenshot: capturing beyond the
	// viewport resizes the page for a moment, which can move a click.
	do(ctx, t, "closing the detail with Escape", chromedp.KeyEvent(kb.Escape))
	pollUntil(t, "the detail to close", func() bool { return eval[bool](ctx, t, `!document.querySelector("dialog.alert-detail")`) })
	if got := eval[string](ctx, t, `document.activeElement.dataset.id || document.activeElement.tagName`); got != second.ID {
		t.Errorf("after closing the detail the focus is on %q, not on its row", got)
	}

	// A CEL filter the API cannot compile shows its message.
	do(ctx, t, "a bad CEL filter",
		chromedp.SendKeys(chromedp.CSS(`#f-filter`), `alert.severity ==`),
		chromedp.Click(chromedp.CSS(`form.alert-filters button[type=submit]`)))
	waitText(ctx, t, "main .error", "filter: 1:18: Syntax error")
	waitText(ctx, t, "#stream-status", "refused")

	// Explain this key, from a detail opened with the mouse: the explain
	// form comes filled with the alert's ruleset, rule and key.
	visit(ctx, t, "#/alerts?rule=big-foreign-transfer")
	pollUntil(t, "the recent alerts listed again", func() bool { return len(rowIDs(ctx, t)) == 2 })
	do(ctx, t, "opening the detail with its button",
		chromedp.Click(chromedp.CSS(`tr.alert-row[data-id="`+first.ID+`"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`dialog.alert-detail`)))
	waitText(ctx, t, "dialog.alert-detail", "sent 25000.25 USD to KP")
	do(ctx, t, "following Explain this key", chromedp.Click(chromedp.CSS(`dialog.alert-detail a.explain-link`)))
	pollUntil(t, "the explain form filled from the alert", func() bool {
		return eval[string](ctx, t, `((document.querySelector("#x-key") || {}).value || "")`) == account
	})
	for sel, want := range map[string]string{"#x-ruleset": "payments", "#x-rule": "big-foreign-transfer"} {
		if got := eval[string](ctx, t, `document.querySelector("`+sel+`").value`); got != want {
			t.Errorf("Explain this key fills %s with %q, want %q", sel, got, want)
		}
	}

	// Starting after the first alert's position brings the second alone.
	visit(ctx, t, "#/alerts?rule=big-foreign-transfer&after="+url.QueryEscape(first.Position))
	pollUntil(t, "the position from the URL in its field", func() bool {
		return eval[string](ctx, t, `((document.querySelector("#f-after") || {}).value || "")`) == first.Position
	})
	pollUntil(t, "the alert after the position", func() bool { return len(rowIDs(ctx, t)) > 0 })
	if ids := rowIDs(ctx, t); len(ids) != 1 || ids[0] != second.ID {
		t.Errorf("after position %s the page shows %v, want [%s]", first.Position, ids, second.ID)
	}
}

// TestAlertDetailMeasures opens an aggregate rule's alert (card-spree:
// five distinct cards on one account within ten minutes): its detail
// shows the measures the fifth card left and the window they cover.
func TestAlertDetailMeasures(t *testing.T) {
	s := startServer(t)
	ctx := s.tab(t)
	s.login(ctx, t, s.viewer)
	clock := &paymentsClock{}
	const account = "acct-console-2"

	visit(ctx, t, "#/alerts?rule=card-spree")
	waitText(ctx, t, "#stream-status", "Live")
	for i := range 5 {
		publishPayment(t, s, clock, map[string]any{
			"type": "card_auth", "account_id": account, "amount": 40.5, "currency": "EUR", "success": true,
			"card_id": fmt.Sprintf("card-spree-%d", i), "merchant": "m-console", "country": "DE",
		})
	}
	spree := waitAlerts(t, s, "card-spree", 1)[0]
	pollUntil(t, "the card-spree alert on the page", func() bool { return len(rowIDs(ctx, t)) == 1 })
	do(ctx, t, "opening the detail",
		chromedp.Click(chromedp.CSS(`tr.alert-row[data-id="`+spree.ID+`"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`dialog.alert-detail`)))
	measures := text(ctx, t, "dialog.alert-detail section")
	for _, want := range []string{"Measures", "Window", "cards", "5", "spent", "202.5"} {
		if !strings.Contains(measures, want) {
			t.Errorf("the aggregate alert's detail does not show %q:\n%s", want, measures)
		}
	}
	if n := eval[int](ctx, t, `document.querySelectorAll("dialog.alert-detail a.picture-link").length`); n != 0 {
		t.Errorf("an aggregate alert links to %d rule pictures; it has no automaton", n)
	}
	waitText(ctx, t, "dialog.alert-detail .scroll-x", "card-spree-4")
}

// TestAlertsReconnect drops the live page's connection (a TCP proxy
// between the browser and the server closes it): the page says it
// is reconnecting, and once the network is back it reconnects by itself
// after the last alert it saw, bringing the alert published meanwhile
// and none twice.
func TestAlertsReconnect(t *testing.T) {
	s := startServer(t)
	proxy := testkit.StartProxy(t, strings.TrimPrefix(s.base, "http://"))
	ctx := s.tab(t)
	do(ctx, t, "opening the console through the proxy", chromedp.Navigate("http://"+proxy.Addr()+"/ui/"))
	s.login(ctx, t, s.analyst)
	clock := &paymentsClock{}
	const account = "acct-console-reconnect"

	visit(ctx, t, "#/alerts?rule=big-foreign-transfer")
	waitText(ctx, t, "#stream-status", "Live")
	publishPayment(t, s, clock, map[string]any{
		"type": "transfer", "account_id": account, "amount": 25000.25, "currency": "USD", "country": "KP", "ip": "198.51.100.7",
	})
	first := waitAlerts(t, s, "big-foreign-transfer", 1)[0]
	pollUntil(t, "the first alert on the page", func() bool { return len(rowIDs(ctx, t)) == 1 })

	proxy.SetDown(true)
	waitText(ctx, t, "#stream-status", "Reconnecting in")
	if got := text(ctx, t, "#pause"); got != "Pause" {
		t.Errorf("while reconnecting the pause button reads %q", got)
	}
	publishPayment(t, s, clock, map[string]any{
		"type": "transfer", "account_id": account, "amount": 31000.75, "currency": "USD", "country": "IR", "ip": "198.51.100.8",
	})
	second := waitAlerts(t, s, "big-foreign-transfer", 2)[0]
	// While the network is down the retries fail, each pause longer.
	waitText(ctx, t, "#stream-status", "(attempt 2)")

	proxy.SetDown(false)
	waitText(ctx, t, "#stream-status", "Live")
	pollUntil(t, "the alert published while offline on the page", func() bool { return len(rowIDs(ctx, t)) == 2 })
	if ids := rowIDs(ctx, t); ids[0] != second.ID || ids[1] != first.ID {
		t.Errorf("after reconnecting the page shows %v, want newest first [%s %s]", ids, second.ID, first.ID)
	}
	waitText(ctx, t, "#alert-count", "2 alerts")
}
