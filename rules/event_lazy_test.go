package rules

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestSetLazyReadsAsTheParsedEvent checks that an event made again from its
// bytes (SetLazy) reads exactly as the event first parsed from them, field
// for field and in every decoding, for events with few fields, more than a
// FieldBuffer holds, and duplicate and escaped keys; and that an Event
// reused for another event's bytes keeps nothing of the one before.
func TestSetLazyReadsAsTheParsedEvent(t *testing.T) {
	var many strings.Builder
	many.WriteString("{")
	for i := range 40 {
		fmt.Fprintf(&many, `"f%d": %d,`, i, i)
	}
	many.WriteString(`"last": "x"}`)
	var lazy Event
	var buf FieldBuffer
	for i, raw := range []string{
		`{}`,
		`{"type":"reset","account_id":"acct-0000001","ts":"2026-12-01T00:00:00.000Z"}`,
		`{"a":1,"b":2.5,"c":"x\u00e9","d":true,"e":null,"g":[1,{"x":2}],"h":{"k":1},"a":7}`,
		`{"k\"ey":"v","n":-3e2}`,
		many.String(),
	} {
		ev, err := ParseEvent([]byte(raw))
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		// Every other event without a buffer: the lookup allocates one.
		withBuf := &buf
		if i%2 == 1 {
			withBuf = nil
		}
		lazy.SetLazy(ev.Raw(), ev.Preloaded(), withBuf)
		if string(lazy.Raw()) != raw {
			t.Errorf("%s: Raw() = %s", raw, lazy.Raw())
		}
		if got, want := lazy.Fields(), ev.Fields(); !slices.Equal(got, want) {
			t.Errorf("%s: Fields() = %q, want %q", raw, got, want)
		}
		if got, want := lazy.Size(), ev.Size(); got != want {
			t.Errorf("%s: Size() = %v, want %v", raw, got, want)
		}
		for _, name := range append(ev.Fields(), "missing") {
			gv, gok := lazy.Field(name)
			wv, wok := ev.Field(name)
			if gok != wok || fmt.Sprint(gv) != fmt.Sprint(wv) {
				t.Errorf("%s: Field(%q) = %v, %v; want %v, %v", raw, name, gv, gok, wv, wok)
			}
			f, g := ev.find(name), lazy.find(name)
			if (f == nil) != (g == nil) {
				t.Fatalf("%s: find(%q) found %v in the original, %v in the lazy event", raw, name, f != nil, g != nil)
			}
			if f == nil {
				continue
			}
			for _, mode := range []kind{kindNatural, kindDouble, kindInt, kindString, kindTimestamp} {
				if want, got := ev.decode(f, mode), lazy.decode(g, mode); fmt.Sprint(want) != fmt.Sprint(got) {
					t.Errorf("%s: decode(%q, %d) = %v, want %v", raw, name, mode, got, want)
				}
			}
		}
	}
}

// TestSetLazyParsesOnlyWhenAFieldIsRead checks that a lazy event keeps the
// numbers a NumberLoader decoded ahead, serves them without parsing, and
// parses on the first field lookup.
func TestSetLazyParsesOnlyWhenAFieldIsRead(t *testing.T) {
	ev, err := ParseEvent([]byte(`{"lat":48.85,"lon":2.35}`))
	if err != nil {
		t.Fatal(err)
	}
	key := newNumberKey("lat", kindDouble)
	ev.numKey[0], ev.num[0] = uint16(key), 48.85
	var lazy Event
	var buf FieldBuffer
	lazy.SetLazy(ev.Raw(), ev.Preloaded(), &buf)
	if v, ok := lazy.preloaded(key); !ok || v != 48.85 {
		t.Errorf("preloaded lat = %v, %v; want 48.85, true", v, ok)
	}
	if !lazy.lazy || len(lazy.fields) != 0 {
		t.Fatalf("the lazy event was parsed before any field was read")
	}
	if v, ok := lazy.Field("lon"); !ok || fmt.Sprint(v) != "2.35" {
		t.Errorf("Field(lon) = %v, %v; want 2.35, true", v, ok)
	}
	if lazy.lazy || len(lazy.fields) != 2 || &lazy.fields[0] != &buf.fields[0] {
		t.Errorf("after a lookup: lazy %v, %d fields, in the buffer %v; want parsed into the buffer", lazy.lazy, len(lazy.fields), len(lazy.fields) > 0 && &lazy.fields[0] == &buf.fields[0])
	}
}
