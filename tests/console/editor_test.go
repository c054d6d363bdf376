package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// rulesetJSON is the REST form of a ruleset version, the fields the tests read.
type rulesetJSON struct {
	Name    string `json:"name"`
	Source  string `json:"source"`
	Version string `json:"version"`
}

// restJSON calls the REST API with the analyst's token, requires the
// status want and decodes the answer into out.
func (s *server) restJSON(t *testing.T, method, path, body string, want int, out any) {
	t.Helper()
	code, text := s.request(t, method, path, s.analyst, body)
	if code != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, code, want, text)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(text), out); err != nil {
			t.Fatalf("%s %s: decoding %s: %v", method, path, text, err)
		}
	}
}

// jsonBody encodes v as a request body.
func jsonBody(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// navigate shows the console page at the URL fragment hash.
func navigate(ctx context.Context, t *testing.T, hash string) {
	t.Helper()
	eval[bool](ctx, t, fmt.Sprintf(`(location.hash = %q, true)`, hash))
}

// waitJS waits until the JavaScript expression is true, failing with what
// names it and the page's text if it never is.
func waitJS(ctx context.Context, t *testing.T, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(actionTimeout)
	for time.Now().Before(deadline) {
		if eval[bool](ctx, t, `!!(`+expr+`)`) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("waiting for %s: %s never held; the page shows:\n%s", what, expr, pageText(ctx))
}

// confirmDialog presses the confirming button of the console's dialog.
func confirmDialog(ctx context.Context, t *testing.T) {
	t.Helper()
	do(ctx, t, "confirming", chromedp.WaitVisible(chromedp.CSS(`dialog.confirm button.confirm-ok`)),
		chromedp.Click(chromedp.CSS(`dialog.confirm button.confirm-ok`)),
		chromedp.WaitNotPresent(chromedp.CSS(`dialog.confirm`)))
}

// lineOf is the 1-based number of the first line of src containing want.
func lineOf(t *testing.T, src, want string) int {
	t.Helper()
	for i, l := range strings.Split(src, "\n") {
		if strings.Contains(l, want) {
			return i + 1
		}
	}
	t.Fatalf("no line contains %q", want)
	return 0
}

// caretToEndOfLine puts the editor's caret at the end of line n.
func caretToEndOfLine(ctx context.Context, t *testing.T, n int) {
	t.Helper()
	eval[bool](ctx, t, fmt.Sprintf(`(() => {
		const ta = document.querySelector('#source');
		const lines = ta.value.split('\n');
		let off = 0;
		for (let i = 0; i < %d; i++) off += lines[i].length + 1;
		off -= 1;
		ta.focus();
		ta.setSelectionRange(off, off);
		return true;
	})()`, n))
}

// editorCaretLine is the line of the editor's caret.
func editorCaretLine(ctx context.Context, t *testing.T) int {
	t.Helper()
	return eval[int](ctx, t, `(() => { const ta = document.querySelector('#source'); return ta.value.slice(0, ta.selectionStart).split('\n').length; })()`)
}

// TestEditorMarksErrorsSavesAndTests types an error into the payments
// ruleset and finds it marked at its line, fixes it, saves, finds the new
// version live on the rulesets page and through REST, and runs the edited
// source over the shipped recording.
func TestEditorMarksErrorsSavesAndTests(t *testing.T) {
	s := startServer(t)
	ctx := s.tab(t)
	s.login(ctx, t, s.analyst)

	var before rulesetJSON
	s.restJSON(t, "GET", "/v1/rulesets/payments", "", http.StatusOK, &before)
	whenLine := lineOf(t, before.Source, `when: event.type == "transfer" && event.amount > 10000.0`)

	navigate(ctx, t, "#/rulesets/payments/edit")
	waitText(ctx, t, `.validation-status`, "Valid")
	if got := eval[string](ctx, t, `document.querySelector('#source').value`); got != before.Source {
		t.Fatalf("the editor does not hold the live source")
	}
	// Highlighting: the rule's CEL is tokenized, its keys are keys.
	if n := eval[int](ctx, t, `document.querySelectorAll('.ce-highlight .c-kw').length`); n == 0 {
		t.Errorf("the editor highlights no CEL keyword")
	}
	if got := eval[string](ctx, t, fmt.Sprintf(`document.querySelector('.ce-line[data-line="%d"] .y-key').textContent`, whenLine)); got != "when" {
		t.Errorf("line %d's key is highlighted as %q, want when", whenLine, got)
	}

	// An unknown field typed at the end of the rule's condition.
	const typo = ` && event.amuont > 1.0`
	caretToEndOfLine(ctx, t, whenLine)
	do(ctx, t, "typing an error", chromedp.KeyEvent(typo))
	// Validation runs as the user types: wait for the answer of the whole typo.
	waitText(ctx, t, `.problem-list.errors`, "amuont")
	waitText(ctx, t, `.validation-status`, "1 error")
	marked := eval[[]string](ctx, t, `[...document.querySelectorAll('.ce-gutter .ce-num.ce-err')].map(e => e.dataset.line)`)
	if len(marked) != 1 || marked[0] != strconv.Itoa(whenLine) {
		t.Errorf("the gutter marks lines %v, want [%d] where the error was typed", marked, whenLine)
	}
	if !eval[bool](ctx, t, fmt.Sprintf(`document.querySelector('.ce-line[data-line="%d"]').classList.contains('ce-line-err') && !!document.querySelector('.ce-line[data-line="%d"] .ce-at-err')`, whenLine, whenLine)) {
		t.Errorf("line %d is not highlighted with the error's column underlined", whenLine)
	}
	problem := text(ctx, t, `.problem-list.errors li button`)
	if !strings.HasPrefix(strings.TrimPrefix(problem, "Error "), strconv.Itoa(whenLine)+":") ||
		!strings.Contains(problem, `rule "big-foreign-transfer"`) || !strings.Contains(problem, "amuont") {
		t.Errorf("the error list shows %q, want line %d, the rule and the field", problem, whenLine)
	}
	// The picture shows the marked line with the rule around it.
	eval[bool](ctx, t, fmt.Sprintf(`(() => { const ta = document.querySelector('#source'); ta.scrollTop = %d * 20; ta.dispatchEvent(new Event('scroll')); return true; })()`, max(whenLine-8, 0)))
	screenshot(ctx, t, "editor")

	// Clicking the error moves the caret to it.
	caretToEndOfLine(ctx, t, 1)
	do(ctx, t, "clicking the error", chromedp.Click(chromedp.CSS(`.problem-list.errors li button`)))
	if got := editorCaretLine(ctx, t); got != whenLine {
		t.Errorf("after clicking the error the caret is on line %d, want %d", got, whenLine)
	}

	// Fixed: the misspelt field becomes a real one.
	caretToEndOfLine(ctx, t, whenLine)
	do(ctx, t, "fixing the error", chromedp.KeyEvent(strings.Repeat(kb.Backspace, len(typo))+` && event.amount > 1.0`))
	waitText(ctx, t, `.validation-status`, "Valid")
	if n := eval[int](ctx, t, `document.querySelectorAll('.ce-num.ce-err').length`); n != 0 {
		t.Errorf("%d lines still marked after the fix", n)
	}

	// Diff against live shows the one changed line.
	do(ctx, t, "diff against live", chromedp.Click(chromedp.CSS(`button.diff-live`)))
	waitText(ctx, t, `.diff-panel .diff-counts`, "+1")
	if added := text(ctx, t, `.diff-panel tr.diff-add td.code`); !strings.Contains(added, "event.amount > 1.0") {
		t.Errorf("the diff adds %q", added)
	}

	do(ctx, t, "saving", chromedp.Click(chromedp.CSS(`button.save`)))
	waitText(ctx, t, `.save-result`, "Saved payments")
	saved := text(ctx, t, `.saved-version`)
	oldVersion, _ := strconv.Atoi(before.Version)
	if saved != strconv.Itoa(oldVersion+1) {
		t.Errorf("the editor shows saved version %s, want %d", saved, oldVersion+1)
	}
	var after rulesetJSON
	s.restJSON(t, "GET", "/v1/rulesets/payments", "", http.StatusOK, &after)
	if after.Version != saved || !strings.Contains(after.Source, `event.amount > 10000.0 && event.country in lists.high_risk_countries && event.amount > 1.0`) {
		t.Errorf("REST has version %s, the edited line missing or elsewhere:\n%s", after.Version, after.Source)
	}

	// The test runs the editor's source over the shipped recording, as
	// TestRuleset through REST does.
	waitJS(ctx, t, "the recording field", `document.querySelector('#test-recording')`)
	eval[bool](ctx, t, `(() => { const r = document.querySelector('#test-recording'); r.value = 'payments.jsonl'; return r.value === 'payments.jsonl'; })()`)
	do(ctx, t, "running the test", chromedp.Click(chromedp.CSS(`button.run-test`)))
	waitJS(ctx, t, "the test result", `document.querySelector('.test-result .alert-count')`)
	var want struct {
		AlertCount string `json:"alert_count"`
		Alerts     []struct {
			Rule string `json:"rule"`
		} `json:"alerts"`
	}
	s.restJSON(t, "POST", "/v1/rulesets:test", jsonBody(t, map[string]string{"source": after.Source, "recording": "payments.jsonl"}), http.StatusOK, &want)
	if got := text(ctx, t, `.test-result .alert-count`); got != want.AlertCount || got == "0" {
		t.Errorf("the page counts %s alerts, REST %s", got, want.AlertCount)
	}
	rules := eval[[]string](ctx, t, `[...new Set([...document.querySelectorAll('.test-result tr.alert-row')].map(r => r.dataset.rule))]`)
	for _, rule := range []string{"account-takeover", "big-foreign-transfer"} {
		inREST := false
		for _, a := range want.Alerts {
			inREST = inREST || a.Rule == rule
		}
		shown := false
		for _, r := range rules {
			shown = shown || r == rule
		}
		if inREST != shown || !shown {
			t.Errorf("rule %s: in REST's alerts %v, shown %v (shown rules %v)", rule, inREST, shown, rules)
		}
	}
	// Matched events unfold, by step in pattern order.
	do(ctx, t, "unfolding the matched events", chromedp.Click(chromedp.CSS(`.test-result tr.alert-row[data-rule="account-takeover"] details.matched summary`)))
	steps := eval[[]string](ctx, t, `[...document.querySelectorAll('.test-result tr.alert-row[data-rule="account-takeover"] details[open] .step-name code')].map(e => e.textContent)`)
	if strings.Join(steps, ",") != "fails,login,drain" {
		t.Errorf("the account takeover's steps shown: %v", steps)
	}

	// The rulesets page shows the new version.
	navigate(ctx, t, "#/rulesets")
	waitText(ctx, t, `section.ruleset[data-ruleset="payments"] h2 .version`, "version "+saved)
}

// warnedRuleset is valid with one warning: its on_timeout alert's summary
// reads a step a timeout alert may lack.
const warnedRuleset = `ruleset: warned
stream:
  topic: payments
  key: event.account_id
  time: event.ts
schema:
  type: string
  account_id: string
  ts: timestamp
rules:
  - id: reset-then-verify
    severity: low
    within: 15m
    pattern:
      - step: reset
        where: event.type == "password_reset"
      - step: verify
        where: event.type == "2fa_verified"
    alert:
      on_timeout: true
      summary: '"verified " + verify.account_id'
`

// setSource replaces the editor's text as a paste would.
func setSource(ctx context.Context, t *testing.T, src string) {
	t.Helper()
	eval[bool](ctx, t, fmt.Sprintf(`(() => { const ta = document.querySelector('#source'); ta.value = %q; ta.dispatchEvent(new Event('input')); return true; })()`, src))
}

// TestEditorCreatesARuleset writes a new ruleset from #/new and finds it
// stored.
func TestEditorCreatesARuleset(t *testing.T) {
	s := startServer(t)
	ctx := s.tab(t)
	s.login(ctx, t, s.analyst)
	do(ctx, t, "new ruleset", chromedp.Click(chromedp.CSS(`a.new-ruleset`)))
	waitText(ctx, t, `.validation-status`, "Valid")
	// A warning is marked apart from errors, and does not refuse the source.
	template := eval[string](ctx, t, `document.querySelector('#source').value`)
	setSource(ctx, t, warnedRuleset)
	waitText(ctx, t, `.validation-status`, "Valid, 1 warning")
	warnLine := lineOf(t, warnedRuleset, `summary: '"verified "`)
	if got := eval[[]string](ctx, t, `[...document.querySelectorAll('.ce-num.ce-warn')].map(e => e.dataset.line)`); len(got) != 1 || got[0] != strconv.Itoa(warnLine) {
		t.Errorf("warnings marked at lines %v, want [%d]", got, warnLine)
	}
	if n := eval[int](ctx, t, `document.querySelectorAll('.ce-num.ce-err, .problem-list.errors li').length`); n != 0 {
		t.Errorf("a warning shows %d error marks", n)
	}
	if w := text(ctx, t, `.problem-list.warnings li button`); !strings.Contains(w, strconv.Itoa(warnLine)+":") || !strings.Contains(w, `rule "reset-then-verify"`) {
		t.Errorf("the warning reads %q", w)
	}
	setSource(ctx, t, template)
	waitText(ctx, t, `.validation-status`, "Valid")

	rename := func(from, to string) {
		eval[bool](ctx, t, fmt.Sprintf(`(() => { const ta = document.querySelector('#source'); ta.value = ta.value.replace(%q, %q); ta.dispatchEvent(new Event('input')); return true; })()`, from, to))
		waitText(ctx, t, `.validation-status`, "Valid")
	}

	// Pasted events: one transfer over the template's threshold alerts.
	do(ctx, t, "choosing pasted events", chromedp.Click(chromedp.CSS(`#test-from-events`)),
		chromedp.WaitVisible(chromedp.CSS(`#test-events`)),
		chromedp.SendKeys(chromedp.CSS(`#test-events`), `{"type": "transfer", "account_id": "acct-7", "amount": 20000.0, "ts": "2026-11-20T10:00:00Z"}`),
		chromedp.Click(chromedp.CSS(`button.run-test`)))
	waitText(ctx, t, `.test-result .alert-count`, "1")
	if got := text(ctx, t, `.test-result tr.alert-row`); !strings.Contains(got, "acct-7") || !strings.Contains(got, "big-transfer") {
		t.Errorf("the pasted event's alert shows %q", got)
	}

	// A new ruleset named as a stored one asks before replacing it.
	rename("ruleset: my-rules", "ruleset: payments")
	do(ctx, t, "saving over payments", chromedp.Click(chromedp.CSS(`button.save`)),
		chromedp.WaitVisible(chromedp.CSS(`dialog.confirm button.confirm-cancel`)))
	if msg := text(ctx, t, `dialog.confirm`); !strings.Contains(msg, "payments is live (version 1)") {
		t.Errorf("the dialog says %q", msg)
	}
	do(ctx, t, "cancelling", chromedp.Click(chromedp.CSS(`dialog.confirm button.confirm-cancel`)),
		chromedp.WaitNotPresent(chromedp.CSS(`dialog.confirm`)))
	var payments rulesetJSON
	s.restJSON(t, "GET", "/v1/rulesets/payments", "", http.StatusOK, &payments)
	if payments.Version != "1" {
		t.Errorf("a cancelled save over payments stored version %s", payments.Version)
	}

	// Ctrl+S in the editor saves.
	rename("ruleset: payments", "ruleset: fresh")
	do(ctx, t, "creating with Ctrl+S", chromedp.Focus(chromedp.CSS(`#source`)),
		chromedp.KeyEvent("s", chromedp.KeyModifiers(chromedp.ModifierCtrl)))
	waitJS(ctx, t, "the editor of the new ruleset", `location.hash === '#/rulesets/fresh/edit'`)
	waitText(ctx, t, `.ruleset-version .live-version`, "1")
	var got rulesetJSON
	s.restJSON(t, "GET", "/v1/rulesets/fresh", "", http.StatusOK, &got)
	if got.Version != "1" || !strings.Contains(got.Source, "big-transfer") {
		t.Errorf("GET /v1/rulesets/fresh: version %s\n%s", got.Version, got.Source)
	}
}

// TestEditorModules checks the editor's modules in the browser: the line
// diff against a longest common subsequence on random texts, and the YAML
// tokenizer, whose tokens must give back every shipped ruleset's text.
func TestEditorModules(t *testing.T) {
	s := startServer(t)
	ctx := s.tab(t)
	var sources []string
	for _, name := range []string{"payments", "account_security", "itops"} {
		var rs rulesetJSON
		s.restJSON(t, "GET", "/v1/rulesets/"+name, "", http.StatusOK, &rs)
		sources = append(sources, rs.Source)
	}
	srcJSON, _ := json.Marshal(sources)
	stepCtx, cancel := context.WithTimeout(ctx, actionTimeout)
	defer cancel()
	problems, err := chromedp.Run(stepCtx, chromedp.Evaluate[[]string](`(async () => {
		const {diffLines} = await import('/ui/js/linediff.js');
		const {tokenize} = await import('/ui/js/yaml.js');
		const out = [];
		// A fixed generator, so that a failure repeats.
		let seed = 7;
		const rand = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
		for (let run = 0; run < 500 && out.length < 5; run++) {
			const a = Array.from({length: rand(12)}, () => 'abcd'[rand(4)]);
			const b = Array.from({length: rand(12)}, () => 'abcd'[rand(4)]);
			const ops = diffLines(a.join('\n'), b.join('\n'));
			const oldSide = ops.filter(o => o.op !== 'add').map(o => o.text).join();
			const newSide = ops.filter(o => o.op !== 'del').map(o => o.text).join();
			const lcs = Array.from({length: a.length + 1}, () => new Array(b.length + 1).fill(0));
			for (let i = a.length - 1; i >= 0; i--) for (let j = b.length - 1; j >= 0; j--)
				lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
			const same = ops.filter(o => o.op === 'same').length;
			const numbered = ops.every(o => (!o.a || a[o.a - 1] === o.text) && (!o.b || b[o.b - 1] === o.text));
			if (oldSide !== a.join() || newSide !== b.join() || same !== lcs[0][0] || !numbered)
				out.push('diff of ' + JSON.stringify(a) + ' and ' + JSON.stringify(b) + ': ' + JSON.stringify(ops));
		}
		for (const src of `+string(srcJSON)+`) {
			const lines = tokenize(src);
			const back = lines.map(l => l.map(t => t[1]).join('')).join('\n');
			if (back !== src) out.push('the tokens of a shipped ruleset do not give back its text');
			const keys = lines.flat().filter(t => t[0] === 'y-key').map(t => t[1]);
			for (const k of ['ruleset', 'stream', 'rules', 'id', 'severity']) if (!keys.includes(k)) out.push('no key ' + k + ' found');
		}
		return out;
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}
