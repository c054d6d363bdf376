package console

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestVersionsPageDiffsAndRollsBack stores two more versions of payments
// through REST, finds the history on the versions page, compares two
// versions side by side, and rolls back to the first.
func TestVersionsPageDiffsAndRollsBack(t *testing.T) {
	s := startServer(t)
	var v1 rulesetJSON
	s.restJSON(t, "GET", "/v1/rulesets/payments", "", http.StatusOK, &v1)
	v2src := strings.Replace(v1.Source, "event.amount > 5000.0", "event.amount > 7500.0", 1)
	v3src := strings.Replace(v2src, "severity: medium\n    when: event.type == \"card_auth\"", "severity: high\n    when: event.type == \"card_auth\"", 1)
	if v2src == v1.Source || v3src == v2src {
		t.Fatal("the shipped payments ruleset no longer has the lines this test edits")
	}
	for _, src := range []string{v2src, v3src} {
		s.restJSON(t, "PUT", "/v1/rulesets/payments", jsonBody(t, map[string]string{"source": src}), http.StatusOK, nil)
	}
	var history struct {
		Versions []struct {
			Version string `json:"version"`
		} `json:"versions"`
	}
	s.restJSON(t, "GET", "/v1/rulesets/payments/versions", "", http.StatusOK, &history)

	ctx := s.tab(t)
	s.login(ctx, t, s.analyst)
	waitText(ctx, t, `section.ruleset[data-ruleset="payments"]`, "version 3")
	do(ctx, t, "opening the versions", chromedp.Click(chromedp.CSS(`section.ruleset[data-ruleset="payments"] a.versions-link`)))
	waitJS(ctx, t, "the history", `document.querySelectorAll('tr.version-row').length > 0`)
	shown := eval[[]string](ctx, t, `[...document.querySelectorAll('tr.version-row')].map(r => r.dataset.version)`)
	var want []string
	for _, v := range history.Versions {
		want = append(want, v.Version)
	}
	if strings.Join(shown, ",") != strings.Join(want, ",") || strings.Join(shown, ",") != "3,2,1" {
		t.Errorf("the page lists versions %v, REST %v, want 3,2,1", shown, want)
	}
	if live := text(ctx, t, `tr.version-row[data-version="3"]`); !strings.Contains(live, "live") {
		t.Errorf("version 3's row does not say it is live: %q", live)
	}

	// By default the newest two: one line changed.
	waitText(ctx, t, `.versions-diff h2`, "Version 2 against version 3")
	if got := text(ctx, t, `.versions-diff .diff-counts`); !strings.HasPrefix(got, "+1 −1") {
		t.Errorf("versions 2 and 3 differ by %q, want +1 −1", got)
	}

	// Versions 1 and 3: two changed lines, side by side.
	do(ctx, t, "choosing version 1 as the old side", chromedp.Click(chromedp.CSS(`#old-1`)))
	waitText(ctx, t, `.versions-diff h2`, "Version 1 against version 3")
	if got := text(ctx, t, `.versions-diff .diff-counts`); !strings.HasPrefix(got, "+2 −2") {
		t.Errorf("versions 1 and 3 differ by %q, want +2 −2", got)
	}
	removed := eval[[]string](ctx, t, `[...document.querySelectorAll('.versions-diff tr.diff-change td.code.diff-del code')].map(e => e.textContent.trim())`)
	added := eval[[]string](ctx, t, `[...document.querySelectorAll('.versions-diff tr.diff-change td.code.diff-add code')].map(e => e.textContent.trim())`)
	if len(removed) != 2 || len(added) != 2 || removed[0] != "severity: medium" || added[0] != "severity: high" ||
		!strings.Contains(removed[1], "> 5000.0") || !strings.Contains(added[1], "> 7500.0") {
		t.Errorf("the side-by-side diff pairs %q with %q", removed, added)
	}
	screenshot(ctx, t, "versions")

	// Roll back to version 1: version 4 holds its source.
	do(ctx, t, "rolling back to 1", chromedp.Click(chromedp.CSS(`tr.version-row[data-version="1"] button.rollback-to`)))
	confirmDialog(ctx, t)
	waitJS(ctx, t, "version 4 in the history", `document.querySelector('tr.version-row[data-version="4"]')`)
	if note := text(ctx, t, `tr.version-row[data-version="4"]`); !strings.Contains(note, "rollback to version 1") || !strings.Contains(note, "live") {
		t.Errorf("version 4's row says %q", note)
	}
	var v4 rulesetJSON
	s.restJSON(t, "GET", "/v1/rulesets/payments", "", http.StatusOK, &v4)
	if v4.Version != strconv.Itoa(4) || v4.Source != v1.Source {
		t.Errorf("after the rollback REST has version %s, source of version 1: %v", v4.Version, v4.Source == v1.Source)
	}
}
