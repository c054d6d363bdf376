package ruletest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// outcome is what a test's verdict says, in the report's words.
type outcome struct {
	Failed      bool
	Missing     []string // expectation, then "closest: alert" and the diffs
	Unexpected  []string
	DeadLetters []string
	Late        uint64
	Alerts      int
}

func outcomeOf(tr *TestResult) outcome {
	o := outcome{Failed: tr.Failed(), Late: tr.Late, Alerts: tr.Alerts}
	for _, m := range tr.Missing {
		o.Missing = append(o.Missing, formatExpected(m.Expected))
		if m.Closest != nil {
			o.Missing = append(o.Missing, "closest: "+formatAlert(m.Closest))
			o.Missing = append(o.Missing, m.Diffs...)
		}
	}
	for _, a := range tr.Unexpected {
		o.Unexpected = append(o.Unexpected, formatAlert(a))
	}
	for _, d := range tr.DeadLetters {
		o.DeadLetters = append(o.DeadLetters, fmt.Sprintf("%s:%d event %d: %s", d.Pos.File, d.Pos.Line, d.Event, d.Reason))
	}
	return o
}

// runOne loads a test file holding one test (body, indented under
// "tests:") against testdata/shop.yaml and testdata/records.yaml, and runs
// it.
func runOne(t *testing.T, body string, opts Options) *TestResult {
	t.Helper()
	src := "rulesets: [shop.yaml, records.yaml]\ntests:\n" + body
	f, err := LoadSource("testdata/run_test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("load:\n%v", err)
	}
	res, err := f.Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Tests) != 1 {
		t.Fatalf("%d results, want 1", len(res.Tests))
	}
	return res.Tests[0]
}

func TestRun(t *testing.T) {
	tests := []struct {
		name string
		body string
		want outcome
	}{
		{
			name: "every field of an expectation matches",
			body: `
  - name: t
    events:
      - {type: cart, user: u1, ts: "2026-11-20T10:00:00Z"}
      - {type: pay, user: u1, ts: "2026-11-20T10:00:20Z"}
      - {type: order, user: u1, amount: 150, ts: "2026-11-20T10:00:21Z"}
    expect:
      - {rule: cart-then-pay, key: u1, severity: medium, timeout: false, summary: rule cart-then-pay matched key u1,
         events: {cart: [{line: 1, type: cart}], pay: [{line: 2}]}}
      - {rule: big-order, key: u1, labels: {team: shop}, events: {event: [{amount: 150.00, line: 3}]}}
`,
			want: outcome{Alerts: 2},
		},
		{
			name: "expect: [] passes without alerts",
			body: `
  - name: t
    events: [{type: view, user: u1, ts: "2026-11-20T10:00:00Z"}]
    expect: []
`,
			want: outcome{},
		},
		{
			name: "an unexpected alert fails expect: []",
			body: `
  - name: t
    events: [{type: order, user: u1, amount: 500, ts: "2026-11-20T10:00:00Z"}]
    expect: []
`,
			want: outcome{Failed: true, Alerts: 1, Unexpected: []string{"shop/big-order key=u1 event=[#1]"}},
		},
		{
			name: "only ignores other rules' alerts",
			body: `
  - name: t
    events:
      - {type: cart, user: u1, ts: "2026-11-20T10:00:00Z"}
      - {type: order, user: u1, amount: 500, ts: "2026-11-20T10:00:01Z"}
    only: [big-order]
    expect: [{rule: big-order, key: u1}]
`,
			want: outcome{Alerts: 1},
		},
		{
			name: "a missing alert, with the closest alert of its rule and key and what differs",
			body: `
  - name: t
    events:
      - {type: cart, user: u1, ts: "2026-11-20T10:00:00Z"}
      - {type: cart, user: u1, ts: "2026-11-20T10:00:05Z"}
      - {type: pay, user: u1, ts: "2026-11-20T10:00:20Z", method: cash}
    only: [cart-then-pay]
    expect:
      - rule: cart-then-pay
        key: u1
        severity: high
        labels: {team: shop}
        timeout: true
        summary: paid
        events: {cart: [{line: 2}], pay: [{method: card, amount: 3}]}
`,
			want: outcome{Failed: true, Alerts: 1, Missing: []string{
				`shop/cart-then-pay key=u1 severity=high labels={team: shop} timeout=true summary="paid" cart=[#2] pay=[{"method":"card","amount":3}]`,
				"closest: shop/cart-then-pay key=u1 cart=[#1 #2] pay=[#3]",
				"severity: want high, got medium",
				`label team: want "shop", the alert has no such label`,
				"timeout: want true, got false",
				`summary: want "paid", got "rule cart-then-pay matched key u1"`,
				"cart: want 1 event, got 2 events [#1 #2]",
				"pay[0] (#3): amount: want 3, the event has no such field",
				`pay[0] (#3): method: want "card", got "cash"`,
			}},
		},
		{
			name: "a wrong event number is a difference",
			body: `
  - name: t
    events:
      - {type: order, user: u1, amount: 500, ts: "2026-11-20T10:00:00Z"}
      - {type: order, user: u1, amount: 600, ts: "2026-11-20T10:00:01Z"}
    expect:
      - {rule: big-order, key: u1, events: {event: [{line: 2}]}}
      - {rule: big-order, key: u1, events: {event: [{line: 2}]}}
`,
			want: outcome{Failed: true, Alerts: 2, Missing: []string{
				"shop/big-order key=u1 event=[#2]",
				"closest: shop/big-order key=u1 event=[#1]",
				"event[0]: want event #2, got #1",
			}},
		},
		{
			name: "a loose expectation written first does not take the alert a strict one needs",
			body: `
  - name: t
    events:
      - {type: order, user: u1, amount: 500, ts: "2026-11-20T10:00:00Z"}
      - {type: order, user: u1, amount: 600, ts: "2026-11-20T10:00:01Z"}
    expect:
      - {rule: big-order}
      - {rule: big-order, key: u1, events: {event: [{amount: 500}]}}
`,
			want: outcome{Alerts: 2},
		},
		{
			name: "a key that differs is no near miss",
			body: `
  - name: t
    events: [{type: order, user: u2, amount: 500, ts: "2026-11-20T10:00:00Z"}]
    expect: [{rule: big-order, key: u1}]
`,
			want: outcome{
				Failed: true, Alerts: 1,
				Missing:    []string{"shop/big-order key=u1"},
				Unexpected: []string{"shop/big-order key=u2 event=[#1]"},
			},
		},
		{
			name: "nested fields match as subsets, arrays element by element",
			body: `
  - name: t
    events:
      - {type: order, user: u1, amount: 500, ts: "2026-11-20T10:00:00Z", geo: {lat: 1.5, lon: 2, city: x}, tags: [a, b]}
    expect:
      - {rule: big-order, events: {event: [{geo: {lat: 1.50, lon: 2.0}, tags: [a, b]}]}}
      - {rule: big-order, events: {event: [{geo: {lat: 1}, tags: [a]}]}}
`,
			want: outcome{Failed: true, Alerts: 1, Missing: []string{
				`shop/big-order event=[{"geo":{"lat":1},"tags":["a"]}]`,
			}},
		},
		{
			name: "records without key or time expressions use the record's key and timestamp",
			body: `
  - name: t
    records:
      - {key: a1, ts: 1763632800000, value: {type: login}, topic: payments}
      - {key: a2, ts: 1763632801000, value: {type: transfer}, topic: payments}
      - {key: a1, ts: "2025-11-20T10:00:05Z", value: {type: transfer}, topic: payments}
    expect:
      - {rule: login-then-transfer, key: a1, events: {login: [{line: 1}], transfer: [{line: 3}]}}
`,
			want: outcome{Alerts: 1},
		},
		{
			name: "inline events are numbered from 1 and dead letters point into the test file",
			body: `
  - name: t
    events:
      - {type: order, user: u1, amount: 500, ts: "2026-11-20T10:00:00Z"}
      - {type: order, amount: 500, ts: "2026-11-20T10:00:01Z"}
      - {type: order, user: u1, amount: 500}
    expect: [{rule: big-order, key: u1, events: {event: [{line: 1}]}}]
`,
			want: outcome{Failed: true, Alerts: 1, DeadLetters: []string{
				"testdata/run_test.yaml:7 event 2: no key: eval event.user: no such key: user",
				"testdata/run_test.yaml:8 event 3: no event time: eval event.ts: no such key: ts",
			}},
		},
		{
			name: "a record without timestamp is dead-lettered when the ruleset has no time expression",
			body: `
  - name: t
    records: [{key: a1, value: {type: login}, topic: payments}]
    expect: []
`,
			want: outcome{Failed: true, DeadLetters: []string{
				"testdata/run_test.yaml:5 event 1: no event time: the kafka record has no timestamp",
			}},
		},
		{
			name: "events file: numbered by line, dead letters at the file's line",
			body: `
  - name: t
    events_file: bad.jsonl
    expect: [{rule: big-order, key: u1, events: {event: [{line: 1}]}}]
`,
			want: outcome{Failed: true, Alerts: 1, DeadLetters: []string{
				"testdata/bad.jsonl:2 event 0: invalid event: unexpected end of JSON input at byte 37: invalid JSON",
			}},
		},
		{
			name: "late events are counted, not failed",
			body: `
  - name: t
    events:
      - {type: cart, user: u1, ts: "2026-11-20T10:00:10Z"}
      - {type: order, user: u1, amount: 500, ts: "2026-11-20T10:00:00Z"}
    only: [big-order]
    expect: []
`,
			want: outcome{Late: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := outcomeOf(runOne(t, tt.body, Options{}))
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("outcome (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRunSelectsByName checks Options.Run: unselected tests do not run
// and are not reported.
func TestRunSelectsByName(t *testing.T) {
	f, err := Load("testdata/fail_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		re   string
		want []string
	}{
		{"", []string{
			"passes", "wrong step events and severity", "missing and unexpected alerts",
			"expects silence but a cart is abandoned", "bad input is dead-lettered", "a recorded file with a bad line",
		}},
		{"^passes$", []string{"passes"}},
		{"dead|silence", []string{"expects silence but a cart is abandoned", "bad input is dead-lettered"}},
		{"nothing like this", nil},
	}
	for _, tt := range tests {
		t.Run(tt.re, func(t *testing.T) {
			var opts Options
			if tt.re != "" {
				opts.Run = regexp.MustCompile(tt.re)
			}
			res, err := f.Run(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range res.Tests {
				got = append(got, r.Name)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("tests run (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTestdataPasses runs the passing test files of testdata: every test
// must pass, or the report says why.
func TestTestdataPasses(t *testing.T) {
	for _, path := range []string{"testdata/pass_test.yaml", "testdata/records_test.yaml", "testdata/lists_test.yaml"} {
		t.Run(path, func(t *testing.T) {
			f, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			res, err := f.Run(context.Background(), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Tests) != len(f.Tests) || !res.OK() {
				var buf bytes.Buffer
				_ = WriteReport(&buf, []*FileResult{res}, ReportOptions{})
				t.Errorf("%d of %d tests ran, want all passing:\n%s", len(res.Tests), len(f.Tests), buf.String())
			}
		})
	}
}

// TestRunClockAndWrap checks the fixed clock stamps alerts (no wall time
// leaks into a test) and that events files go through WrapEvents with
// their size.
func TestRunClockAndWrap(t *testing.T) {
	f, err := Load("testdata/pass_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type wrapped struct {
		name string
		size int64
		read int
	}
	var calls []*wrapped
	opts := Options{
		Run: regexp.MustCompile("^recorded events$"),
		WrapEvents: func(name string, size int64, r io.Reader) io.Reader {
			w := &wrapped{name: name, size: size}
			calls = append(calls, w)
			return readerFunc(func(b []byte) (int, error) {
				n, err := r.Read(b)
				w.read += n
				return n, err
			})
		},
	}
	res, err := f.Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Errorf("recorded events test failed")
	}
	want := []*wrapped{{name: "testdata/events.jsonl", size: 240, read: 240}}
	if diff := cmp.Diff(want, calls, cmp.AllowUnexported(wrapped{})); diff != "" {
		t.Errorf("WrapEvents calls (-want +got):\n%s", diff)
	}
	if !DefaultClock.Equal(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("DefaultClock = %v", DefaultClock)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }

func TestRunStopsOnCancel(t *testing.T) {
	f, err := Load("testdata/pass_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := f.Run(ctx, Options{})
	if err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("Run with a cancelled context: %v, want context canceled", err)
	}
	if len(res.Tests) != 0 {
		t.Errorf("%d tests ran after cancel", len(res.Tests))
	}
}

// TestRunCaps checks that a test over a large, broken recording stays
// readable: dead letters and alerts are listed up to a bound, then
// counted.
func TestRunCaps(t *testing.T) {
	shop, err := filepath.Abs("testdata/shop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var events strings.Builder
	for i := range 60 {
		fmt.Fprintf(&events, `{"type":"order","user":"u%d","amount":500,"ts":"2026-11-20T10:00:00Z"}`+"\n", i)
	}
	for range 25 {
		events.WriteString("not json\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "big.jsonl"), []byte(events.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf("rulesets: [%q]\ntests:\n  - name: t\n    events_file: big.jsonl\n    only: [big-order]\n    expect: []\n", shop)
	f, err := LoadSource(filepath.Join(dir, "caps_test.yaml"), []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.Run(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	tr := res.Tests[0]
	if tr.DeadLettered != 25 || len(tr.DeadLetters) != MaxDeadLetters || len(tr.Unexpected) != 60 {
		t.Errorf("dead-lettered %d (%d listed), unexpected %d; want 25 (%d), 60", tr.DeadLettered, len(tr.DeadLetters), len(tr.Unexpected), MaxDeadLetters)
	}
	lines := failureLines(tr)
	var got []string
	for _, l := range lines {
		if strings.Contains(l, "more") {
			got = append(got, l)
		}
	}
	if diff := cmp.Diff([]string{"  ... and 10 more", "  ... and 5 more"}, got); diff != "" {
		t.Errorf("counted lines (-want +got):\n%s", diff)
	}
	if len(lines) != 1+maxListed+1+1+MaxDeadLetters+1 {
		t.Errorf("%d report lines, want %d:\n%s", len(lines), 1+maxListed+1+1+MaxDeadLetters+1, strings.Join(lines, "\n"))
	}
	if msg := failureMessage(tr); msg != "60 unexpected alerts, 25 dead-lettered events" {
		t.Errorf("failure message %q", msg)
	}
}

// TestRunMaxClockSkew: a test's max_clock_skew refuses an event dated
// 2100 among good ones; the test passes with the alerts of the stream
// without it, and the refused event is reported in a note. Without the
// field the same events lose the abandoned-cart alert of u2 (late behind
// the poisoned watermark) and fire a false one for u1.
func TestRunMaxClockSkew(t *testing.T) {
	events := `
    events:
      - {type: cart, user: u1, ts: "2026-11-20T10:00:00Z"}
      - {type: cart, user: mallory, ts: "2100-01-01T00:00:00Z"}
      - {type: pay, user: u1, ts: "2026-11-20T10:01:00Z"}
      - {type: cart, user: u2, ts: "2026-11-20T10:02:00Z"}
    only: [abandoned-cart]
    expect:
      - {rule: abandoned-cart, key: u2}
`
	tr := runOne(t, "  - name: guarded\n    max_clock_skew: 1h"+events, Options{})
	if tr.Failed() || tr.TooFarAheadCount != 1 || tr.Late != 0 {
		t.Errorf("guarded: %+v, %d refused, %d late; want a pass with 1 refused, 0 late", outcomeOf(tr), tr.TooFarAheadCount, tr.Late)
	}
	lines := failureLines(tr)
	want := []string{
		"note: max_clock_skew refused these events:",
		`  testdata/run_test.yaml:7:9: event 2: clock skew: event time 2100-01-01T00:00:00Z is ahead of the watermark 2026-11-20T09:59:59Z by more than max_clock_skew 1h0m0s (ruleset "shop", topic "orders")`,
	}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}

	if tr := runOne(t, "  - name: unguarded"+events, Options{}); !tr.Failed() || tr.Late == 0 {
		t.Errorf("unguarded: %+v; want the attack to fail the test with late events", outcomeOf(tr))
	}
}

// TestRunListsOption: Options.Lists gives the managed lists of tests that
// give them none, and only those.
func TestRunListsOption(t *testing.T) {
	f, err := Load("testdata/lists_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.Run(context.Background(), Options{Lists: map[string][]string{"blocked_users": {"carol"}, "blocked_nets": {"192.0.2.0/24"}}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tr := range res.Tests {
		got = append(got, fmt.Sprintf("%s: failed=%v unexpected=%d", tr.Name, tr.Failed(), len(tr.Unexpected)))
	}
	want := []string{
		// The file's blocked_users wins over the option; blocked_nets, given
		// by no test, comes from it.
		"the file's list: failed=true unexpected=2",
		"a test's own lists replace the file's: failed=false unexpected=0",
		"a list given nowhere is empty: failed=false unexpected=0",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
}

func TestListsErrors(t *testing.T) {
	src := `rulesets: [blocklist.yaml]
lists:
  blocked_users: [ok]
  nope: [a]
tests:
  - name: t
    lists:
      blocked_nets: [10.0.0.0/8, 10.1.0.0/8, [x]]
      blocked_users: oops
    events: [{user: a, ts: 1}]
    expect: []
`
	_, err := LoadSource("testdata/x_test.yaml", []byte(src))
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		`testdata/x_test.yaml:4:3: list "nope": no ruleset of this file declares it managed (managed: blocked_nets, blocked_users)`,
		`testdata/x_test.yaml:8:46: list "blocked_nets" item 2 must be a string, not a list`,
		`testdata/x_test.yaml:8:34: test "t": list "blocked_nets" (cidr) item 1 "10.1.0.0/8": host bits set (the network is 10.0.0.0/8)`,
		`testdata/x_test.yaml:9:22: list "blocked_users" must be a list of items, not a string`,
	}
	got := strings.Split(err.Error(), "\n")
	if diff := cmp.Diff(want, got, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}
