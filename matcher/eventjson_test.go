package matcher

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"cel.dev/cel-go/common/types"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/shrike-cep/shrike/rules"
)

// TestAppendEventJSON: the events an alert embeds are compact, hold each
// key once with the value the rules read, have no lone surrogate, and are
// accepted by protojson (the API's reader) as they are by the rules.
func TestAppendEventJSON(t *testing.T) {
	for _, tt := range []struct{ name, in, want string }{
		{"compact already", `{"type":"payment","amount":12.5,"tags":["a","b"],"m":{"x":null,"y":true}}`, ""},
		{"escapes kept", `{"s":"a\"b\\c\n\u00e9<>&","n":-0.5e-3}`, ""},
		{"a surrogate pair", `{"s":"\ud83d\ude00"}`, `{"s":"😀"}`},
		{"spaces and newlines", "{ \"type\" : \"payment\",\n  \"amount\": 12.5 ,\t\"tags\": [ \"a\" , \"b\" ] }\r\n", `{"type":"payment","amount":12.5,"tags":["a","b"]}`},
		{"a newline inside an event", "{\"type\":\"login\",\n\"ip\":\"10.0.0.1\"}", `{"type":"login","ip":"10.0.0.1"}`},
		{"spaces inside strings kept", `{ "s" : " a \" b ", "t":"\\" }`, `{"s":" a \" b ","t":"\\"}`},
		{"a spaced duplicate", "{\"a\" : 1,\n\"a\"\t: 2}", `{"a":2}`},
		{"a duplicate key: first place, last value", `{"a":1,"b":2,"a":3}`, `{"a":3,"b":2}`},
		{"a nested duplicate", `{"x":{"k":"first","k":"last"},"y":[{"k":1,"k":2}]}`, `{"x":{"k":"last"},"y":[{"k":2}]}`},
		{"a duplicate spelt with an escape", `{"a":1,"\u0061":2}`, `{"a":2}`},
		{"a lone high surrogate", `{"s":"x\ud800y"}`, `{"s":"x` + "\uFFFD" + `y"}`},
		{"a lone low surrogate", `{"s":"\udc00"}`, `{"s":"` + "\uFFFD" + `"}`},
		{"a lone surrogate in a key", `{"\ud800":1}`, `{"` + "\uFFFD" + `":1}`},
		{"numbers as written", `{ "i": 10, "f": 1E2, "z": -0 }`, `{"i":10,"f":1E2,"z":-0}`},
		{"empty composites", `{ "o": { }, "a": [ ] }`, `{"o":{},"a":[]}`},
		{"a key with a quote", `{"a\"b":1, "c":2}`, `{"a\"b":1,"c":2}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in, err := rules.ParseEvent([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if want == "" {
				want = tt.in
			}
			got := AppendEventJSON([]byte("prefix:"), in.Raw())
			if !bytes.HasPrefix(got, []byte("prefix:")) {
				t.Fatalf("dst not appended to: %q", got)
			}
			got = got[len("prefix:"):]
			if string(got) != want {
				t.Errorf("AppendEventJSON(%q) =\n%s\nwant\n%s", tt.in, got, want)
			}
			if again := AppendEventJSON(nil, got); !bytes.Equal(again, got) {
				t.Errorf("not idempotent: %s -> %s", got, again)
			}
			if err := protojson.Unmarshal(got, &structpb.Value{}); err != nil {
				t.Errorf("protojson refuses %s: %v", got, err)
			}
			out, err := rules.ParseEvent(got)
			if err != nil {
				t.Fatalf("rules refuse %s: %v", got, err)
			}
			for _, name := range in.Fields() {
				a, _ := in.Field(name)
				b, _ := out.Field(name)
				if a.Equal(b) != types.True && !strings.Contains(tt.name, "surrogate") {
					t.Errorf("field %q: the rules read %v, the alert holds %v", name, a, b)
				}
			}
		})
	}
}

// TestAppendEventJSONCopiesNormal: an event already in normal form costs
// one scan and no allocation.
func TestAppendEventJSONCopiesNormal(t *testing.T) {
	raw := []byte(`{"type":"payment","account":"acct-1","amount":12.5,"country":"DE","tags":["a","b"],"m":{"x":1,"y":2}}`)
	dst := make([]byte, 0, 2*len(raw))
	if n := testing.AllocsPerRun(100, func() { dst = AppendEventJSON(dst[:0], raw) }); n != 0 {
		t.Errorf("%v allocations per event in normal form, want 0", n)
	}
}

// TestAlertEmbedsNormalEvents: an event with white space and a newline
// lands in its alert compact, the alert is one line, and its id is the
// one of the same event written compact.
func TestAlertEmbedsNormalEvents(t *testing.T) {
	alertOf := func(body string) *Alert {
		e, err := rules.ParseEvent([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		steps := []StepRecords{{Step: "s", Records: []*Record{{Event: e, Pos: Position{Source: "payments/0", Offset: 7}}}}}
		return &Alert{
			ID: alertID("rs", "r", "v1", "k", false, false, steps), Ruleset: "rs", Rule: "r", RuleVersion: "v1", Severity: "high",
			Key: "k", Start: time.Unix(0, 0), End: time.Unix(1, 0), DetectedAt: time.Unix(2, 0), Steps: steps,
		}
	}
	spaced := alertOf("{\n  \"type\": \"payment\",\n  \"amount\": 12.5,\n  \"amount\": 13\n}\n")
	compact := alertOf(`{"type":"payment","amount":13}`)
	got, want := spaced.AppendJSON(nil), compact.AppendJSON(nil)
	if !bytes.Equal(got, want) {
		t.Errorf("alert of the spaced event:\n%s\nwant\n%s", got, want)
	}
	if bytes.ContainsAny(got, "\n\r\t") {
		t.Errorf("the alert is not one line: %q", got)
	}
}

// BenchmarkAppendEventJSON: an event in normal form (copied), one with
// white space (compacted) and one with a repeated key (re-encoded).
func BenchmarkAppendEventJSON(b *testing.B) {
	for _, bc := range []struct{ name, raw string }{
		{"normal", `{"type":"payment","account":"acct-1","amount":12.5,"country":"DE","ip":"10.1.2.3","tags":["a","b"],"m":{"x":1,"y":2}}`},
		{"spaced", `{ "type": "payment", "account": "acct-1", "amount": 12.5, "country": "DE", "ip": "10.1.2.3", "tags": ["a","b"], "m": {"x":1,"y":2} }`},
		{"repeated", `{"type":"payment","account":"acct-1","amount":12.5,"country":"DE","ip":"10.1.2.3","tags":["a","b"],"m":{"x":1,"y":2},"amount":13}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			raw := []byte(bc.raw)
			dst := make([]byte, 0, 2*len(raw))
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				dst = AppendEventJSON(dst[:0], raw)
			}
		})
	}
}
