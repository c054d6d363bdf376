package matcher

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shrike-cep/shrike/rules"
)

// TestAlertJSONWithin shrinks alerts to a limit: one that fits is encoded
// as AppendJSON encodes it; one that does not has its events replaced by
// their positions first, then its key and summary cut at a rune boundary,
// with the shrunk fields listed; the same alert always shrinks to the same
// bytes.
func TestAlertJSONWithin(t *testing.T) {
	record := func(source string, offset int64, body string) *Record {
		e, err := rules.ParseEvent([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return &Record{Event: e, Pos: Position{Source: source, Offset: offset}}
	}
	bigBody := `{"type":"t","pad":"` + strings.Repeat("p", 5000) + `"}`
	alert := func(key, source string) *Alert {
		return &Alert{
			ID: "0123456789abcdef0123456789abcdef", Ruleset: "rs", Rule: "r", RuleVersion: "v1", Severity: "high",
			Key: key, Summary: "summary of " + key, Start: time.Unix(0, 0), End: time.Unix(1, 0), DetectedAt: time.Unix(2, 0),
			Steps: []StepRecords{
				{Step: "a", Records: []*Record{record(source, 7, bigBody), record(source, 9, `{"type":"u"}`)}},
				{Step: "b", Records: []*Record{record(source, 12, bigBody)}},
			},
		}
	}
	head := func(key string) string {
		return `{"id":"0123456789abcdef0123456789abcdef","ruleset":"rs","rule":"r","rule_version":"v1","severity":"high",` +
			`"key":"` + key + `","summary":"summary of ` + key + `","labels":{},` +
			`"start":"1970-01-01T00:00:00Z","end":"1970-01-01T00:00:01Z","detected_at":"1970-01-01T00:00:02Z","timeout":false,`
	}
	kafkaEvents := `"events":{"a":[{"truncated":true,"topic":"pay/ments","partition":3,"offset":7,"bytes":5021},` +
		`{"truncated":true,"topic":"pay/ments","partition":3,"offset":9,"bytes":12}],` +
		`"b":[{"truncated":true,"topic":"pay/ments","partition":3,"offset":12,"bytes":5021}]}`
	// 1023 ASCII bytes then a 3-byte rune across the MaxShrunkText boundary.
	longKey := strings.Repeat("k", MaxShrunkText-1) + "€" + strings.Repeat("k", 20000)
	cutKey := strings.Repeat("k", MaxShrunkText-1)

	tests := []struct {
		name       string
		alert      *Alert
		limit      int
		want       string // "": AppendJSON's encoding
		wantShrunk bool
	}{
		{name: "fits", alert: alert("acct-1", "pay/ments/3"), limit: 20000},
		{name: "no limit", alert: alert("acct-1", "pay/ments/3"), limit: 0},
		{
			name: "events replaced", alert: alert("acct-1", "pay/ments/3"), limit: 2000, wantShrunk: true,
			want: head("acct-1") + kafkaEvents + `,"truncated":["events"]}`,
		},
		{
			name: "offline positions", alert: alert("acct-1", "events.jsonl"), limit: 2000, wantShrunk: true,
			want: head("acct-1") + `"events":{"a":[{"truncated":true,"source":"events.jsonl","line":7,"bytes":5021},` +
				`{"truncated":true,"source":"events.jsonl","line":9,"bytes":12}],` +
				`"b":[{"truncated":true,"source":"events.jsonl","line":12,"bytes":5021}]},"truncated":["events"]}`,
		},
		{
			name: "key and summary cut", alert: alert(longKey, "pay/ments/3"), limit: 5000, wantShrunk: true,
			want: strings.Replace(head(cutKey), `"summary of `+cutKey+`"`, `"summary of `+longKey[:MaxShrunkText-len("summary of ")]+`"`, 1) +
				kafkaEvents + `,"truncated":["events","key","summary"]}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			if want == "" {
				want = string(tc.alert.AppendJSON(nil))
			}
			got, shrunk := tc.alert.AppendJSONWithin([]byte("prefix"), tc.limit)
			if shrunk != tc.wantShrunk {
				t.Errorf("shrunk = %v, want %v", shrunk, tc.wantShrunk)
			}
			if diff := cmp.Diff("prefix"+want, string(got)); diff != "" {
				t.Errorf("JSON (-want +got):\n%s", diff)
			}
			if tc.limit > 0 && len(got)-len("prefix") > tc.limit {
				t.Errorf("%d bytes, more than the limit %d", len(got)-len("prefix"), tc.limit)
			}
			again, _ := tc.alert.AppendJSONWithin(nil, tc.limit)
			if string(again) != string(got[len("prefix"):]) {
				t.Errorf("a second encoding differs")
			}
		})
	}
}

// TestAppendStringEncodesAsEncodingJSON checks appendString against
// json.Marshal on strings with and without something to escape.
func TestAppendStringEncodesAsEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "acct-0000001", "payments/impossible-travel", `a"b`, `a\b`, "<script>&", "tab\there", "new\nline", "é", "\u2028", "\xff", "~ !#$%'()*+,-./:;=?@[]^_`{|}", "\x7f"} {
		want, _ := json.Marshal(s)
		if got := appendString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Errorf("appendString(%q) = %s, want %s", s, got[1:], want)
		}
	}
}

// TestAlertTimesAndLabels checks the written-out encodings of times and
// labels against the encodings they stand for: time.RFC3339Nano in UTC
// and encoding/json's map, keys sorted and HTML characters escaped.
func TestAlertTimesAndLabels(t *testing.T) {
	times := []time.Time{
		time.Unix(0, 0), time.Unix(1, 1), time.Unix(1764547200, 120000000), time.Unix(1764547200, 999999999),
		time.Unix(1764547200, 100), time.Date(9999, 12, 31, 23, 59, 59, 5e8, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 3, 4, 5, 6, 7, 80, time.FixedZone("x", 3600)),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		// Any instant of years 0 to 9999, and some outside.
		times = append(times, time.Unix(rng.Int64N(320000000000)-62200000000, rng.Int64N(1e9)), time.Unix(rng.Int64N(4e9), 0))
	}
	for _, tm := range times {
		want := `"` + tm.UTC().Format(time.RFC3339Nano) + `"`
		if got := string(appendTime(nil, tm)); got != want {
			t.Errorf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
	for _, labels := range []map[string]string{
		nil, {"a": "b"}, {"zone": "z<1>", "team": "t", "a&b": "\"q\"", "é": "\x01"},
	} {
		want, _ := json.Marshal(labels)
		if len(labels) == 0 {
			want = []byte(`{}`)
		}
		if got := appendLabels(nil, labels); string(got) != string(want) {
			t.Errorf("appendLabels(%v) = %s, want %s", labels, got, want)
		}
	}
}
