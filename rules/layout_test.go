package rules

import (
	"bytes"
	"fmt"
	"testing"
)

// layoutCases are pairs of events parsed one after the other with one
// Layout: the second on the first's layout, matching it, or not at some key
// (renamed, reordered, a prefix, escaped, repeated, missing, extra), or not
// an object at all.
var layoutCases = [][2]string{
	{`{"type":"login","ip":"1.2.3.4","n":1}`, `{"type":"transfer","ip":"5.6.7.8","n":2}`},
	{`{"type":"login","ip":"1.2.3.4"}`, `{"ip":"1.2.3.4","type":"login"}`},
	{`{"type":"login","ip":"1"}`, `{"type":"login","ipv6":"1"}`},
	{`{"type":"login","ipv6":"1"}`, `{"type":"login","ip":"1"}`},
	{`{"type":"a","ip":"1"}`, `{"type":"a","type":"b"}`},
	{`{"type":"a","ip":"1"}`, `{"type":"a","ip":"1","type":"b"}`},
	{`{"type":"a","ip":"1"}`, `{"ip":"1","type":"a","ip":"2"}`},
	{`{"type":"a","ip":"1"}`, `{"type":"a"}`},
	{`{"type":"a"}`, `{"type":"a","ip":"1"}`},
	{`{"type":"a","ip":"1"}`, `{"typ\u0065":"a","ip":"1"}`},
	{`{"type":"a","ip":"1"}`, `{"type":"a","ip":"1","typ\u0065":"b"}`},
	{`{"type":"a","ip":"1"}`, `{ "type" : "a" , "ip" : "1" }`},
	{`{"type":"a","ip":"1"}`, `{"type":"a","ip"`},
	{`{"type":"a","ip":"1"}`, `{"type":"a","ip":1`},
	{`{"type":"a","ip":"1"}`, `{"type":"a","ip":}`},
	{`{"type":"a","ip":"1"}`, `{"type":"a","ip":"1"}x`},
	{`{"type":"a","ip":"1"}`, `{"type`},
	{`{"type":"a","ip":"1"}`, `[1,2]`},
	{`{"type":"a","ip":"1"}`, `{}`},
	{`{}`, `{"type":"a"}`},
	{`{"a":1,"a":2}`, `{"a":1,"a":2}`},
	{`{"k\u00e9y":1}`, `{"k\u00e9y":2}`},
	{"{\"k\xc3\xa9y\":1}", "{\"k\xc3\xa9y\":2}"},
	{"{\"k\xffy\":1}", "{\"k\xffy\":2}"},
	{`not json`, `{"type":"a"}`},
}

func TestParseWithLayoutAgreesWithParse(t *testing.T) {
	for _, c := range layoutCases {
		checkLayoutAgrees(t, []byte(c[0]), []byte(c[1]))
	}
	// A stream of one shape parses on the layout after its first event.
	var l Layout
	for i := range 3 {
		ev := new(Event)
		if err := ev.ParseWith([]byte(fmt.Sprintf(`{"type":"t%d","ip":"x","n":%d}`, i, i)), &l); err != nil {
			t.Fatal(err)
		}
	}
	if got := string(l.keys); got != "typeipn" || len(l.ends) != 3 {
		t.Errorf("layout = %q %v, want the keys type, ip, n", got, l.ends)
	}
}

func FuzzParseEventWithLayout(f *testing.F) {
	for _, c := range layoutCases {
		f.Add([]byte(c[0]), []byte(c[1]))
	}
	f.Add(paymentsEvent, paymentsEvent)
	f.Fuzz(func(t *testing.T, prev, raw []byte) {
		checkLayoutAgrees(t, prev, raw)
	})
}

// checkLayoutAgrees parses raw on the layout prev left (and again on the
// layout raw left) and checks that both give what Parse gives: the same
// error, or the same fields, flags and values.
func checkLayoutAgrees(t *testing.T, prev, raw []byte) {
	t.Helper()
	var l Layout
	_ = new(Event).ParseWith(bytes.Clone(prev), &l)
	for pass := range 2 {
		// A fresh Parse each pass: reading fields caches values in them.
		want := new(Event)
		wantErr := want.Parse(bytes.Clone(raw))
		got := new(Event)
		gotErr := got.ParseWith(bytes.Clone(raw), &l)
		if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
			t.Fatalf("after %q, pass %d: ParseWith(%q) error %v, Parse error %v", prev, pass, raw, gotErr, wantErr)
		}
		if wantErr != nil {
			continue
		}
		if got.slow != want.slow || fmt.Sprint(got.fields) != fmt.Sprint(want.fields) {
			t.Fatalf("after %q, pass %d: ParseWith(%q) = slow %v fields %v, Parse = slow %v fields %v", prev, pass, raw, got.slow, got.fields, want.slow, want.fields)
		}
		for _, name := range want.Fields() {
			gv, gok := got.Field(name)
			wv, wok := want.Field(name)
			if gok != wok || fmt.Sprint(gv) != fmt.Sprint(wv) {
				t.Fatalf("after %q, pass %d: field %q of %q = %v, %v; Parse: %v, %v", prev, pass, name, raw, gv, gok, wv, wok)
			}
		}
	}
}
