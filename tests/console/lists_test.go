package console

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// listItems reads a managed list's items through REST.
func listItems(t *testing.T, s *server, name string) []string {
	t.Helper()
	code, body := s.request(t, "GET", "/v1/lists/"+name+"?page_size=1000", s.analyst, "")
	if code != http.StatusOK {
		t.Fatalf("GET /v1/lists/%s: %d %s", name, code, body)
	}
	var res struct {
		Items []string `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatal(err)
	}
	return res.Items
}

// shownItems are the items the list page shows, top to bottom.
func shownItems(ctx context.Context, t *testing.T) string {
	t.Helper()
	return eval[string](ctx, t, `[...document.querySelectorAll("tr.list-item")].map(r => r.dataset.item).join(",")`)
}

// TestListsEditItems finds account_security's managed list
// blocked_networks on the lists page, adds networks to it, is told which
// item a bad one is, searches the items and removes one; a token without
// lists:write sees no way to change them.
func TestListsEditItems(t *testing.T) {
	s := startServer(t)
	ctx := s.tab(t)
	s.login(ctx, t, s.analyst)

	visit(ctx, t, "#/lists")
	waitText(ctx, t, `tr[data-list="blocked_networks"]`, "cidr")
	row := text(ctx, t, `tr[data-list="blocked_networks"]`)
	if !strings.Contains(row, "account_security") {
		t.Errorf("the lists page shows blocked_networks as %q", row)
	}
	if items := text(ctx, t, `tr[data-list="blocked_networks"] td:nth-child(4)`); items != "0" {
		t.Errorf("the lists page counts %q items in blocked_networks, want 0", items)
	}
	do(ctx, t, "opening the list", chromedp.Click(chromedp.CSS(`a.list-link[href="#/lists/blocked_networks"]`)))
	waitText(ctx, t, "#list-items", "The list is empty")

	do(ctx, t, "adding networks",
		chromedp.SendKeys(chromedp.CSS(`#items-input`), "203.0.113.0/24\n10.1.0.0/16, 198.51.100.0/24"),
		chromedp.Click(chromedp.CSS(`#add-items`)))
	waitText(ctx, t, ".list-result", "Added 3 items")
	waitText(ctx, t, "#item-count", "3 items")
	if got := shownItems(ctx, t); got != "10.1.0.0/16,198.51.100.0/24,203.0.113.0/24" {
		t.Errorf("the page shows the items %q", got)
	}
	if got := strings.Join(listItems(t, s, "blocked_networks"), ","); got != "10.1.0.0/16,198.51.100.0/24,203.0.113.0/24" {
		t.Errorf("the server holds %q after adding", got)
	}

	// A bad item is named by its index and its text.
	do(ctx, t, "adding a bad item",
		chromedp.SendKeys(chromedp.CSS(`#items-input`), "192.0.2.0/24 not-a-network"),
		chromedp.Click(chromedp.CSS(`#add-items`)))
	waitText(ctx, t, ".list-result .error", `items[1] "not-a-network"`)
	if got := text(ctx, t, "#item-count"); got != "3 items" {
		t.Errorf("after a refused change the count reads %q", got)
	}

	// The search narrows the rows.
	do(ctx, t, "searching", chromedp.SendKeys(chromedp.CSS(`#item-search`), "198.51"))
	pollUntil(t, "the search to narrow the items", func() bool { return shownItems(ctx, t) == "198.51.100.0/24" })
	waitText(ctx, t, "#item-search-note", "1 item holds")
	do(ctx, t, "clearing the search", chromedp.Focus(chromedp.CSS(`#item-search`)))
	for range len("198.51") {
		do(ctx, t, "deleting a character", chromedp.KeyEvent("\b"))
	}
	pollUntil(t, "every item back", func() bool { return strings.Count(shownItems(ctx, t), ",") == 2 })

	// Removing one item by its row's button.
	do(ctx, t, "removing an item", chromedp.Click(chromedp.CSS(`tr.list-item[data-item="10.1.0.0/16"] button`)))
	waitText(ctx, t, ".list-result", "Removed 1 item")
	waitText(ctx, t, "#item-count", "2 items")
	if got := shownItems(ctx, t); got != "198.51.100.0/24,203.0.113.0/24" {
		t.Errorf("after removing 10.1.0.0/16 the page shows %q", got)
	}
	if got := strings.Join(listItems(t, s, "blocked_networks"), ","); got != "198.51.100.0/24,203.0.113.0/24" {
		t.Errorf("the server holds %q after removing", got)
	}
	screenshot(ctx, t, "lists")

	// Without GET /v1/lists the page reads the declarations from the
	// rulesets' sources: flow and block style, managed lists only.
	source, err := os.ReadFile(filepath.Join(root, "rulesets", "account_security.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for src, want := range map[string]string{
		string(source): `[{"name":"blocked_networks","type":"cidr"}]`,
		"ruleset: x\nlists:\n  # comment\n  vips:\n    managed: true\n  nets:\n    type: cidr\n    managed: true\n  fixed: [a, b]\n  also: {type: cidr}\nrules: []\n": `[{"name":"vips","type":"string"},{"name":"nets","type":"cidr"}]`,
		"ruleset: x\nrules: []\n": `[]`,
	} {
		js, _ := json.Marshal(src)
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](
			`import("./js/lists.js").then(m => JSON.stringify(m.managedLists(`+string(js)+`)))`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("managedLists(%.60q…) = %s, want %s", src, got, want)
		}
	}

	// The viewer's token reads the list but gets no buttons.
	viewer := s.tab(t)
	s.login(viewer, t, s.viewer)
	visit(viewer, t, "#/lists/blocked_networks")
	waitText(viewer, t, "#list-items", "203.0.113.0/24")
	if n := eval[int](viewer, t, `document.querySelectorAll("main button, #items-input").length`); n != 0 {
		t.Errorf("a token without lists:write sees %d controls to change the list", n)
	}
	waitText(viewer, t, "main", "needs a token with the lists:write scope")
}
