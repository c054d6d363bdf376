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
		// The same after another shape: both are remembered, and the
		// second event may follow either.
		checkLayoutAgrees(t, []byte(`{"type":"x","z":1}`), []byte(c[0]), []byte(c[1]))
	}
	// A key that only another shape has at that place, after keys that
	// shape does not start with, is off the layout: here a repeat.
	checkLayoutAgrees(t, []byte(`{"x":1,"y":2}`), []byte(`{"y":1,"x":2}`), []byte(`{"x":1,"x":2}`))
	checkLayoutAgrees(t, []byte(`{"x":1,"y":2,"z":3}`), []byte(`{"x":1,"z":2}`), []byte(`{"x":1,"z":2,"z":3}`))
	for i := range layoutCases {
		j := (i + 1) % len(layoutCases)
		checkLayoutAgrees(t, []byte(layoutCases[i][0]), []byte(layoutCases[j][0]), []byte(layoutCases[i][1]))
	}
	// A stream of one shape parses on the layout after its first event.
	var l Layout
	for i := range 3 {
		ev := new(Event)
		if err := ev.ParseWith([]byte(fmt.Sprintf(`{"type":"t%d","ip":"x","n":%d}`, i, i)), &l); err != nil {
			t.Fatal(err)
		}
	}
	if sh := l.shapes[l.cur]; l.n != 1 || string(sh.keys) != "typeipn" || len(sh.ends) != 3 {
		t.Errorf("layout = %d shapes, current %q %v; want one, the keys type, ip, n", l.n, sh.keys, sh.ends)
	}
	// Shapes in turns: each event parses on the shape it has, found among
	// those remembered, and numbers its event the same each time.
	var mixed Layout
	docs := []string{
		`{"type":"login","ip":"x","ok":true}`,
		`{"type":"auth","amount":1.5,"card":"c"}`,
		`{"type":"login","ip":"x"}`,
		`{"type":"auth","amount":1.5}`,
	}
	ids := map[int]uint32{}
	for round := range 3 {
		for i, doc := range docs {
			ev := new(Event)
			if err := ev.ParseWith([]byte(doc), &mixed); err != nil {
				t.Fatal(err)
			}
			if ev.layout == 0 {
				t.Fatalf("round %d: %s has no layout number", round, doc)
			}
			if round == 0 {
				ids[i] = ev.layout
			} else if ev.layout != ids[i] {
				t.Errorf("round %d: %s numbered %d, first %d", round, doc, ev.layout, ids[i])
			}
		}
	}
	if mixed.n != len(docs) {
		t.Errorf("%d shapes remembered, want %d", mixed.n, len(docs))
	}
	for i := range docs {
		for j := range i {
			if ids[i] == ids[j] {
				t.Errorf("%s and %s share layout number %d", docs[i], docs[j], ids[i])
			}
		}
	}
}

func FuzzParseEventWithLayout(f *testing.F) {
	for i, c := range layoutCases {
		f.Add([]byte(layoutCases[(i+1)%len(layoutCases)][0]), []byte(c[0]), []byte(c[1]))
	}
	f.Add(paymentsEvent, paymentsEvent, paymentsEvent)
	f.Fuzz(func(t *testing.T, a, b, raw []byte) {
		checkLayoutAgrees(t, a, b, raw)
	})
}

// checkLayoutAgrees parses the last of docs on the layout the others left
// (and again on the layout it left itself) and checks that both give what
// Parse gives: the same error, or the same fields, flags and values.
func checkLayoutAgrees(t *testing.T, docs ...[]byte) {
	t.Helper()
	var l Layout
	prev, raw := docs[:len(docs)-1], docs[len(docs)-1]
	for _, d := range prev {
		_ = new(Event).ParseWith(bytes.Clone(d), &l)
	}
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
