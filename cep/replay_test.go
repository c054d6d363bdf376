package cep

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
)

// summarise reduces an alert line to "rule key step=ids step=ids", the ids
// being the events' "id" fields, steps sorted by name.
func summarise(t *testing.T, line string) string {
	t.Helper()
	var a struct {
		Rule    string
		Key     string
		Timeout bool
		Events  map[string][]struct{ ID int }
	}
	if err := json.Unmarshal([]byte(line), &a); err != nil {
		t.Fatalf("alert %q: %v", line, err)
	}
	s := a.Rule + " " + a.Key
	if a.Timeout {
		s += " timeout"
	}
	steps := make([]string, 0, len(a.Events))
	for step := range a.Events {
		steps = append(steps, step)
	}
	slices.Sort(steps)
	for _, step := range steps {
		var ids []string
		for _, ev := range a.Events[step] {
			ids = append(ids, itoa(ev.ID))
		}
		s += " " + step + "=" + strings.Join(ids, ",")
	}
	return s
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestReplay(t *testing.T) {
	orders := `{"id":1,"user":"u1","type":"cart","ts":1000}
{"id":2,"user":"u2","type":"cart","ts":2000}

{"id":3,"user":"u1","type":"pay","ts":3000}
{"id":4,"user":"u1","type":"order","amount":150,"ts":4000}
{"id":5,"user":"u2","type":"order","amount":50,"ts":5000}
`
	tests := []struct {
		name      string
		rulesets  []string
		inputs    []Input
		want      []string
		wantSum   Summary
		wantLate  string
		wantRepts string
	}{
		{
			name:     "json lines: single-event, sequence and absence rules",
			rulesets: []string{shopRules},
			inputs:   inputs("orders.jsonl", orders),
			want: []string{
				"cart-then-pay u1 cart=1 pay=3",
				"big u1 event=4",
				"no-pay u2 cart=2",
			},
			wantSum: Summary{Files: 1, Lines: 5, Events: 5, Alerts: 3},
		},
		{
			name:     "files continue one another, gzip by name",
			rulesets: []string{shopRules},
			inputs: []Input{
				{Name: "a.jsonl", R: strings.NewReader(`{"id":1,"user":"u1","type":"cart","ts":1000}`)},
				{Name: "b.jsonl.gz", R: bytes.NewReader(gzipped(t, `{"id":2,"user":"u1","type":"pay","ts":2000}`+"\n"))},
			},
			want:    []string{"cart-then-pay u1 cart=1 pay=2"},
			wantSum: Summary{Files: 2, Lines: 2, Events: 2, Alerts: 1},
		},
		{
			name:     "kcat envelopes: topic routing, record key and timestamp",
			rulesets: []string{recordRules},
			inputs: inputs("orders.kcat", `{"topic":"orders","partition":0,"offset":0,"ts":1000,"key":"u1","payload":"{\"id\":1,\"type\":\"cart\"}"}
{"topic":"other","partition":0,"offset":0,"ts":1500,"key":"u1","payload":"{\"id\":9,\"type\":\"pay\"}"}
{"topic":"orders","partition":1,"offset":0,"ts":2000,"key":"u2","payload":"{\"id\":2,\"type\":\"pay\"}"}
{"topic":"orders","partition":0,"offset":1,"ts":3000,"key":"u1","payload":"{\"id\":3,\"type\":\"pay\"}"}
{"topic":"orders","partition":0,"offset":2,"ts":3500,"key":"u1","payload":null}
`),
			want:      []string{"cart-then-pay u1 cart=1 pay=3"},
			wantSum:   Summary{Files: 1, Lines: 5, Events: 3, Unrouted: 1, DeadLettered: 1, Alerts: 1},
			wantRepts: "orders.kcat:5: kafka record has a null payload (tombstone)\n",
		},
		{
			name:     "plain lines without keys are one key, timed by line number",
			rulesets: []string{strings.Replace(recordRules, "  - id: cart-then-pay\n", "  - id: cart-then-pay\n    within: 2ms\n", 1)},
			inputs: inputs("plain.jsonl", `{"id":1,"type":"cart"}
{"id":2,"type":"cart"}
{"id":3,"type":"pay"}
`),
			// Line 1 to line 3 is 2ms: outside the window.
			want:    []string{"cart-then-pay  cart=2 pay=3"},
			wantSum: Summary{Files: 1, Lines: 3, Events: 3, Alerts: 1},
		},
		{
			name:     "bad lines are dead-lettered and the replay goes on",
			rulesets: []string{shopRules},
			inputs: inputs("bad.jsonl", `{"id":1,"user":"u1","type":"cart","ts":1000}
not json
{"id":3,"type":"cart","ts":2000}
{"id":4,"user":"u1","type":"cart"}

[1,2]
{"id":7,"user":"u1","type":"pay","ts":3000}
`),
			want:    []string{"cart-then-pay u1 cart=1 pay=7"},
			wantSum: Summary{Files: 1, Lines: 6, Events: 2, DeadLettered: 4, Alerts: 1},
			// Only the line numbers and the kind of failure are ours; the
			// reasons' details come from rules.
			wantRepts: "bad.jsonl:2: invalid event:\nbad.jsonl:3: no key:\nbad.jsonl:4: no event time:\nbad.jsonl:6: invalid event:\n",
		},
		{
			name:     "late lines go to the late sink as read",
			rulesets: []string{shopRules},
			inputs: inputs("late.jsonl", `{"id":1,"user":"u1","type":"cart","ts":10000}
{"id":2,"user":"u2","type":"cart","ts":20000}
{"id":3,"user":"u1",  "type":"pay","ts":5000}
{"id":4,"user":"u1","type":"pay","ts":19500}
`),
			want:     []string{"cart-then-pay u1 cart=1 pay=4", "no-pay u2 cart=2"},
			wantSum:  Summary{Files: 1, Lines: 4, Events: 4, Late: 1, Alerts: 2},
			wantLate: `{"id":3,"user":"u1",  "type":"pay","ts":5000}` + "\n",
		},
		{
			name:     "a late envelope is written whole",
			rulesets: []string{recordRules},
			inputs: inputs("late.kcat", `{"topic":"orders","ts":5000,"key":"u1","payload":"{\"id\":1,\"type\":\"cart\"}"}
{"topic":"orders","ts":1000,"key":"u1","payload":"{\"id\":2,\"type\":\"pay\"}"}
`),
			want:     nil,
			wantSum:  Summary{Files: 1, Lines: 2, Events: 2, Late: 1},
			wantLate: `{"topic":"orders","ts":1000,"key":"u1","payload":"{\"id\":2,\"type\":\"pay\"}"}` + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var compiled []*rules.Compiled
			for i, src := range tt.rulesets {
				compiled = append(compiled, load(t, "r"+itoa(i)+".yaml", src))
			}
			var first result
			for i, m := range modes {
				t.Run(m.name, func(t *testing.T) {
					opts := ReplayOptions{Rulesets: compiled, Inputs: replayInputs(t, tt.inputs)}
					m.set(&opts)
					res, err := replay(t, opts)
					if err != nil {
						t.Fatalf("Replay: %v", err)
					}
					// Within one emission point alert order is not normative.
					if diff := cmp.Diff(sorted(tt.want), sorted(res.alerts)); diff != "" {
						t.Errorf("alerts (-want +got):\n%s", diff)
					}
					gotSum := res.sum
					gotSum.Rules, gotSum.PeakRuns, gotSum.Elapsed = nil, 0, 0
					if diff := cmp.Diff(tt.wantSum, gotSum); diff != "" {
						t.Errorf("summary (-want +got):\n%s", diff)
					}
					if diff := cmp.Diff(tt.wantLate, res.late); diff != "" {
						t.Errorf("late output (-want +got):\n%s", diff)
					}
					if diff := cmp.Diff(tt.wantRepts, reportPrefixes(res.reports)); diff != "" {
						t.Errorf("reports (-want +got):\n%s", diff)
					}
					// Beyond what the case pins down, every mode writes the
					// same bytes as the first.
					if i == 0 {
						first = res
					} else if diff := diffOutput(first.output(), res.output()); diff != "" {
						t.Errorf("output differs from %s (-%s +%s):\n%s", modes[0].name, modes[0].name, m.name, diff)
					}
				})
			}
		})
	}
}

// reportPrefixes keeps each report line up to its first colon after the
// position ("file:line: kind:").
func reportPrefixes(s string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		parts := strings.SplitN(line, ": ", 3)
		if len(parts) == 3 {
			line = parts[0] + ": " + strings.SplitN(parts[1]+":", ":", 2)[0] + ":\n"
		}
		b.WriteString(line)
	}
	return b.String()
}

func TestReplayAlertFormat(t *testing.T) {
	c := load(t, "shop.yaml", shopRules)
	in := `{"id":1,"user":"u1","type":"cart","ts":1000}
{"id":3,"user":"u1","type":"pay","ts":3000}
`
	run := func() result {
		res, err := replay(t, ReplayOptions{Rulesets: []*rules.Compiled{c}, Inputs: inputs("o.jsonl", in)})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	first, second := run(), run()
	if first.raw != second.raw {
		t.Errorf("two replays of the same input differ:\n%s\n%s", first.raw, second.raw)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(first.raw), &got); err != nil {
		t.Fatalf("alert is not one JSON object: %v\n%s", err, first.raw)
	}
	id, _ := got["id"].(string)
	if len(id) != 32 {
		t.Errorf("id = %q, want 32 hex digits", id)
	}
	delete(got, "id")
	delete(got, "rule_version")
	want := map[string]any{
		"ruleset": "shop", "rule": "cart-then-pay", "severity": "medium", "key": "u1",
		"summary": got["summary"], "labels": map[string]any{},
		"start": "1970-01-01T00:00:01Z", "end": "1970-01-01T00:00:03Z",
		"detected_at": "2026-11-20T12:00:00Z", "timeout": false,
		"events": map[string]any{
			"cart": []any{map[string]any{"id": 1.0, "user": "u1", "type": "cart", "ts": 1000.0}},
			"pay":  []any{map[string]any{"id": 3.0, "user": "u1", "type": "pay", "ts": 3000.0}},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("alert (-want +got):\n%s", diff)
	}
}

func TestReplayRuleSummary(t *testing.T) {
	c := load(t, "shop.yaml", shopRules)
	in := `{"id":1,"user":"u1","type":"cart","ts":1000}
{"id":2,"user":"u1","type":"order","amount":500,"ts":2000}
{"id":3,"user":"u1","type":"order","amount":700,"ts":3000}
`
	res, err := replay(t, ReplayOptions{Rulesets: []*rules.Compiled{c}, Inputs: inputs("o.jsonl", in)})
	if err != nil {
		t.Fatal(err)
	}
	got := res.sum.Rules
	for i := range got {
		got[i].Timeouts = 0 // when a closed window counts as a timeout is the matcher's business
	}
	want := []RuleSummary{
		{Ruleset: "shop", Rule: "big", Alerts: 2},
		{Ruleset: "shop", Rule: "cart-then-pay", PeakRuns: 1},
		{Ruleset: "shop", Rule: "no-pay", Alerts: 1, PeakRuns: 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
	if res.sum.PeakRuns < 1 {
		t.Errorf("PeakRuns = %d, want at least the open cart", res.sum.PeakRuns)
	}
}

func TestReplayDeadLetterReportLimit(t *testing.T) {
	c := load(t, "shop.yaml", shopRules)
	in := strings.Repeat("oops\n", 5)
	res, err := replay(t, ReplayOptions{Rulesets: []*rules.Compiled{c}, Inputs: inputs("x.jsonl", in), MaxDeadLetterReports: 2})
	if err != nil {
		t.Fatal(err)
	}
	want := "x.jsonl:1: invalid event:\nx.jsonl:2: invalid event:\n3 more dead-lettered lines not shown\n"
	if diff := cmp.Diff(want, reportPrefixes(res.reports)); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
	if res.sum.DeadLettered != 5 {
		t.Errorf("DeadLettered = %d, want 5", res.sum.DeadLettered)
	}
}

func TestReplayLongLine(t *testing.T) {
	c := load(t, "shop.yaml", shopRules)
	in := `{"id":1,"user":"u1","type":"cart","ts":1000}
{"id":2,"user":"u1","type":"cart","pad":"` + strings.Repeat("x", 200) + `","ts":1500}
{"id":3,"user":"u1","type":"pay","ts":2000}
`
	res, err := replay(t, ReplayOptions{Rulesets: []*rules.Compiled{c}, Inputs: inputs("x.jsonl", in), MaxLineBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("x.jsonl:2: line too long:\n", reportPrefixes(res.reports)); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"cart-then-pay u1 cart=1 pay=3"}, res.alerts); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
}

func TestReplayStreams(t *testing.T) {
	variant := func(name, extra string) string {
		return "ruleset: " + name + "\n" + extra + "rules:\n  - id: r\n    when: event.type == \"x\"\n"
	}
	tests := []struct {
		name     string
		rulesets []string
		want     int
	}{
		{"same stream", []string{
			variant("a", "stream: {topic: t, key: event.k, time: event.ts}\n"),
			variant("b", "stream: {topic: t, key: event.k, time: event.ts}\n"),
		}, 1},
		{"other topic", []string{
			variant("a", "stream: {topic: t, key: event.k}\n"),
			variant("b", "stream: {topic: u, key: event.k}\n"),
		}, 2},
		{"other key", []string{
			variant("a", "stream: {topic: t, key: event.k}\n"),
			variant("b", "stream: {topic: t, key: event.j}\n"),
		}, 2},
		{"other watermark delay", []string{
			variant("a", "stream: {topic: t, max_out_of_orderness: 1s}\n"),
			variant("b", "stream: {topic: t, max_out_of_orderness: 2s}\n"),
		}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var compiled []*rules.Compiled
			for i, src := range tt.rulesets {
				compiled = append(compiled, load(t, "r"+itoa(i)+".yaml", src))
			}
			r, err := newReplayer(ReplayOptions{Rulesets: compiled})
			if err != nil {
				t.Fatal(err)
			}
			if len(r.streams) != tt.want {
				t.Errorf("streams = %d, want %d", len(r.streams), tt.want)
			}
		})
	}
}

// TestReplayTwoStreams checks that a plain line reaches every stream and
// that each stream keys it its own way.
func TestReplayTwoStreams(t *testing.T) {
	byUser := load(t, "a.yaml", `
ruleset: by-user
stream: {topic: t, key: event.user, time: event.ts}
rules:
  - id: pair
    pattern:
      - step: a
        where: event.type == "a"
      - step: b
        where: event.type == "b"
`)
	byShop := load(t, "b.yaml", `
ruleset: by-shop
stream: {topic: t, key: event.shop, time: event.ts}
rules:
  - id: pair
    pattern:
      - step: a
        where: event.type == "a"
      - step: b
        where: event.type == "b"
`)
	in := `{"id":1,"user":"u1","shop":"s1","type":"a","ts":1}
{"id":2,"user":"u2","shop":"s1","type":"b","ts":2}
{"id":3,"user":"u1","shop":"s2","type":"b","ts":3}
`
	res, err := replay(t, ReplayOptions{Rulesets: []*rules.Compiled{byUser, byShop}, Inputs: inputs("x.jsonl", in)})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"pair s1 a=1 b=2", "pair u1 a=1 b=3"}
	if diff := cmp.Diff(want, sorted(res.alerts)); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
	if res.sum.Events != 3 {
		t.Errorf("Events = %d, want 3 (each line once)", res.sum.Events)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestReplayErrors(t *testing.T) {
	c := load(t, "shop.yaml", shopRules)
	line := `{"id":1,"user":"u1","type":"order","amount":500,"ts":1000}` + "\n"
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name   string
		ctx    context.Context
		opts   ReplayOptions
		wantIs error
		want   string
	}{
		{
			name: "missing file stops before any output",
			opts: ReplayOptions{Rulesets: []*rules.Compiled{c}, Inputs: []Input{
				{Name: "ok.jsonl", R: strings.NewReader(line)},
				{Name: t.TempDir() + "/missing.jsonl"},
			}},
			wantIs: os.ErrNotExist,
		},
		{
			name:   "no rulesets",
			opts:   ReplayOptions{Inputs: inputs("x.jsonl", line)},
			want:   "replay: no rulesets",
			wantIs: nil,
		},
		{
			name: "same ruleset twice",
			opts: ReplayOptions{Rulesets: []*rules.Compiled{c, c}, Inputs: inputs("x.jsonl", line)},
			want: `replay: ruleset "shop" given twice`,
		},
		{
			name:   "canceled",
			ctx:    canceled,
			opts:   ReplayOptions{Rulesets: []*rules.Compiled{c}, Inputs: inputs("x.jsonl", line)},
			wantIs: context.Canceled,
		},
		{
			name: "failing alert writer",
			opts: ReplayOptions{Rulesets: []*rules.Compiled{c}, Inputs: inputs("x.jsonl", line), Alerts: failWriter{}},
			want: "replay: write: disk full",
		},
	}
	for _, tt := range tests {
		for _, m := range modes {
			t.Run(tt.name+"/"+m.name, func(t *testing.T) {
				ctx := tt.ctx
				if ctx == nil {
					ctx = context.Background()
				}
				opts := tt.opts
				opts.Inputs = replayInputs(t, opts.Inputs)
				m.set(&opts)
				var out bytes.Buffer
				if opts.Alerts == nil {
					opts.Alerts = &out
				}
				_, err := Replay(ctx, opts)
				if err == nil {
					t.Fatal("Replay succeeded, want an error")
				}
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Errorf("err = %v, want errors.Is %v", err, tt.wantIs)
				}
				if tt.want != "" && err.Error() != tt.want {
					t.Errorf("err = %q, want %q", err, tt.want)
				}
				if out.Len() != 0 {
					t.Errorf("output written before the error: %q", out.String())
				}
			})
		}
	}
}

// BenchmarkReplay measures Replay over a small in-memory file on which the
// sequence rules match often (relaxed contiguity, no skip), so alert output
// weighs in; tests/bench has the realistic full-size benchmark.
func BenchmarkReplay(b *testing.B) {
	c, err := rules.Load("shop.yaml", []byte(shopRules), rules.CompileOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	const n = 10000
	for i := range n {
		typ := [...]string{"cart", "pay", "order", "view"}[i%4]
		buf.WriteString(`{"id":` + itoa(i) + `,"user":"u` + itoa(i%500) + `","type":"` + typ + `","amount":` + itoa(i%300) + `,"ts":` + itoa(i*10) + "}\n")
	}
	data := buf.Bytes()
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		_, err := Replay(context.Background(), ReplayOptions{
			Rulesets: []*rules.Compiled{c},
			Inputs:   []Input{{Name: "bench.jsonl", R: bytes.NewReader(data)}},
			Alerts:   io.Discard,
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
}

// TestReplayRuleSummarySeparators: a ruleset built in code is not held to
// the YAML's name pattern; a ruleset name with '/' and a rule id with '@'
// still get their own counters in the summary.
func TestReplayRuleSummarySeparators(t *testing.T) {
	rs, err := rules.Parse("shop.yaml", []byte(shopRules))
	if err != nil {
		t.Fatal(err)
	}
	rs.Name = "team/shop"
	for _, r := range rs.Rules {
		r.ID += "@2"
	}
	c, err := rules.Compile(rs, rules.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in := `{"id":1,"user":"u1","type":"cart","ts":1000}
{"id":2,"user":"u1","type":"order","amount":500,"ts":2000}
{"id":3,"user":"u1","type":"order","amount":700,"ts":3000}
`
	res, err := replay(t, ReplayOptions{Rulesets: []*rules.Compiled{c}, Inputs: inputs("o.jsonl", in)})
	if err != nil {
		t.Fatal(err)
	}
	want := []RuleSummary{
		{Ruleset: "team/shop", Rule: "big@2", Alerts: 2},
		{Ruleset: "team/shop", Rule: "cart-then-pay@2", Timeouts: 1, PeakRuns: 1},
		{Ruleset: "team/shop", Rule: "no-pay@2", Alerts: 1, PeakRuns: 1},
	}
	if diff := cmp.Diff(want, res.sum.Rules); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
}

// TestReplayDeadLettersUnrepresentableEvents feeds events an alert could
// not carry to the API (a number beyond float64, invalid UTF-8, also inside
// a Kafka record's payload): each is dead-lettered with what is wrong and
// where, and the good events around them still alert.
func TestReplayDeadLettersUnrepresentableEvents(t *testing.T) {
	shop := load(t, "shop.yaml", shopRules)
	records := load(t, "records.yaml", recordRules)
	tests := []struct {
		name      string
		rs        *rules.Compiled
		in        string
		want      []string
		wantRepts string
		wantDead  uint64
	}{
		{
			name: "json lines",
			rs:   shop,
			in: `{"id":1,"user":"u1","type":"order","amount":150,"ts":1000}
{"id":2,"user":"u1","type":"order","amount":1e999,"ts":2000}
{"id":3,"user":"u1","type":"order","note":"caf` + "\xe9" + `","amount":200,"ts":3000}
{"id":4,"user":"u1","type":"order","amount":300,"ts":4000}
`,
			want: []string{"big u1 event=1", "big u1 event=4"},
			wantRepts: `in.jsonl:2: invalid event: field "amount": number 1e999 out of range at byte 44: value cannot be represented
in.jsonl:3: invalid event: invalid UTF-8 at byte 46: value cannot be represented
`,
			wantDead: 2,
		},
		{
			name: "kcat envelopes",
			rs:   records,
			in: `{"topic":"orders","partition":0,"offset":0,"ts":1000,"key":"u1","payload":"{\"id\":1,\"type\":\"cart\"}"}
{"topic":"orders","partition":0,"offset":1,"ts":1500,"key":"u1","payload":"{\"id\":2,\"type\":\"pay\",\"n\":-1E400}"}
{"topic":"orders","partition":0,"offset":3,"ts":2000,"key":"u1","payload":"{\"id\":4,\"type\":\"pay\"}"}
`,
			want: []string{"cart-then-pay u1 cart=1 pay=4"},
			// A payload is a JSON string, whose invalid UTF-8 the envelope
			// decodes to U+FFFD: only a record's raw value can carry it.
			wantRepts: `in.jsonl:2: invalid event: field "n": number -1E400 out of range at byte 25: value cannot be represented
`,
			wantDead: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := replay(t, ReplayOptions{Rulesets: []*rules.Compiled{tt.rs}, Inputs: inputs("in.jsonl", tt.in)})
			if err != nil {
				t.Fatalf("Replay: %v", err)
			}
			if diff := cmp.Diff(sorted(tt.want), sorted(res.alerts)); diff != "" {
				t.Errorf("alerts (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantRepts, res.reports); diff != "" {
				t.Errorf("reports (-want +got):\n%s", diff)
			}
			if res.sum.DeadLettered != tt.wantDead {
				t.Errorf("%d dead-lettered, want %d", res.sum.DeadLettered, tt.wantDead)
			}
		})
	}
}

// A shadow version beside the live ruleset of the same name runs as a
// stream of its own: the same alerts, marked shadow, with other ids, and
// its rules counted apart.
func TestReplayShadowBesideLive(t *testing.T) {
	live := load(t, "shop.yaml", shopRules)
	shadow := load(t, "shop.yaml", shopRules)
	shadow.Shadow = true
	in := `{"id":1,"user":"u1","type":"cart","ts":1000}
{"id":2,"user":"u1","type":"order","amount":500,"ts":2000}
{"id":3,"user":"u1","type":"pay","ts":3000}
`
	var alerts []*matcher.Alert
	res, err := replay(t, ReplayOptions{
		Rulesets: []*rules.Compiled{live, shadow}, Inputs: inputs("o.jsonl", in),
		OnAlert: func(a *matcher.Alert) { alerts = append(alerts, a) },
	})
	if err != nil {
		t.Fatal(err)
	}
	byShadow := map[bool][]string{}
	ids := map[string]bool{}
	for _, a := range alerts {
		byShadow[a.Shadow] = append(byShadow[a.Shadow], a.Rule+" "+a.Key)
		if ids[a.ID] {
			t.Errorf("alert id %s given twice", a.ID)
		}
		ids[a.ID] = true
	}
	if len(byShadow[false]) == 0 || !slices.Equal(byShadow[false], byShadow[true]) {
		t.Errorf("live alerts %v, shadow alerts %v: want the same, and some", byShadow[false], byShadow[true])
	}
	if n := strings.Count(res.raw, `"shadow":true`); n != len(byShadow[true]) {
		t.Errorf(`%d alert lines carry "shadow":true, want %d:\n%s`, n, len(byShadow[true]), res.raw)
	}
	var shadowRules int
	for _, r := range res.sum.Rules {
		if r.Shadow {
			shadowRules++
		}
	}
	if shadowRules != len(shadow.Rules) || len(res.sum.Rules) != 2*len(live.Rules) {
		t.Errorf("summary rules %+v: want each rule live and shadow", res.sum.Rules)
	}
	twice := load(t, "shop.yaml", shopRules)
	twice.Shadow = true
	if _, err := replay(t, ReplayOptions{Rulesets: []*rules.Compiled{live, shadow, twice}, Inputs: inputs("o.jsonl", in)}); err == nil || !strings.Contains(err.Error(), `shadow version of ruleset "shop" given twice`) {
		t.Errorf("two shadow versions of one ruleset: err = %v", err)
	}
}
