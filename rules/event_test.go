package rules

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"github.com/google/go-cmp/cmp"
)

// native converts a decoded CEL value to plain Go values for comparison.
func native(t *testing.T, v ref.Val) any {
	t.Helper()
	switch v := v.(type) {
	case *types.Err:
		return "error: " + v.Error()
	case types.Null:
		return nil
	case types.Timestamp:
		return v.Time
	case traits.Mapper:
		out := map[string]any{}
		for it := v.Iterator(); it.HasNext() == types.True; {
			k := it.Next()
			x, _ := v.Find(k)
			out[string(k.(types.String))] = native(t, x)
		}
		return out
	case traits.Lister:
		out := []any{}
		for it := v.Iterator(); it.HasNext() == types.True; {
			out = append(out, native(t, it.Next()))
		}
		return out
	}
	return v.Value()
}

func TestParseEventFields(t *testing.T) {
	raw := []byte(` {"s": "plain", "esc": "a\"b\\c\/d\b\f\n\r\t", "u": "\u00e9\u4e2d\ud83d\ude00",
		"lone": "x\ud800y", "utf8": "héllo", "i": 42, "neg": -7, "big": 12345678901234567890,
		"f": 1.5, "e": 1e3, "z": -0, "t": true, "fa": false, "n": null,
		"obj": {"a": [1, "two", {"b": null}], "c": {}}, "arr": [], "dup": 1, "dup": 2,
		"k\u0065y": "escaped key"} `)
	ev, err := ParseEvent(raw)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		field string
		want  any
	}{
		{"s", "plain"},
		{"esc", "a\"b\\c/d\b\f\n\r\t"},
		{"u", "é中😀"},
		{"lone", "x\uFFFDy"},
		{"utf8", "héllo"},
		{"i", int64(42)},
		{"neg", int64(-7)},
		{"big", 12345678901234567890.0},
		{"f", 1.5},
		{"e", 1000.0},
		{"z", int64(0)},
		{"t", true},
		{"fa", false},
		{"n", nil},
		{"obj", map[string]any{"a": []any{int64(1), "two", map[string]any{"b": nil}}, "c": map[string]any{}}},
		{"arr", []any{}},
		{"dup", int64(2)},
		{"key", "escaped key"},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			v, ok := ev.Field(tt.field)
			if !ok {
				t.Fatalf("field %q missing", tt.field)
			}
			if diff := cmp.Diff(tt.want, native(t, v)); diff != "" {
				t.Errorf("field %q (-want +got):\n%s", tt.field, diff)
			}
			// A second read hits the cache and must agree.
			if v2, _ := ev.Field(tt.field); v2.Equal(v) != types.True && tt.want != nil {
				t.Errorf("cached value %v differs from %v", v2, v)
			}
		})
	}
	if _, ok := ev.Field("missing"); ok {
		t.Error("Field(missing) ok = true")
	}
	if !ev.Has("dup") || ev.Has("nope") {
		t.Error("Has is wrong")
	}
	if got, want := len(ev.Fields()), 19; got != want {
		t.Errorf("len(Fields()) = %d, want %d", got, want)
	}
	if !bytes.Equal(ev.Raw(), raw) {
		t.Error("Raw() differs from the input")
	}
}

func TestParseEventManyFields(t *testing.T) {
	// More fields than the inline array, and a key over 64 KiB.
	var b strings.Builder
	b.WriteString("{")
	for i := 0; i < 40; i++ {
		b.WriteString(`"f` + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `": ` + string(rune('0'+i%10)) + ",")
	}
	long := strings.Repeat("k", 70000)
	b.WriteString(`"` + long + `": "long"}`)
	ev, err := ParseEvent([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := ev.Field("fna"); !ok || v != types.Int(3) {
		t.Errorf("Field(fna) = %v, %v; want 3", v, ok)
	}
	if v, ok := ev.Field(long); !ok || v != types.String("long") {
		t.Errorf("Field(long key) = %v, %v", v, ok)
	}
	if got := ev.Fields()[40]; got != long {
		t.Errorf("Fields()[40] has length %d, want %d", len(got), len(long))
	}
}

func TestParseEventErrors(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr error
	}{
		{``, "empty line: line is not a JSON object", ErrNotObject},
		{`   `, "empty line: line is not a JSON object", ErrNotObject},
		{`[1, 2]`, "line is not a JSON object", ErrNotObject},
		{`"str"`, "line is not a JSON object", ErrNotObject},
		{`42`, "line is not a JSON object", ErrNotObject},
		{`null`, "line is not a JSON object", ErrNotObject},
		{`{"a": 1`, "unexpected end of JSON input at byte 7: invalid JSON", ErrBadJSON},
		{`{"a": 1}}`, "invalid character '}' after top-level value at byte 8: invalid JSON", ErrBadJSON},
		{`{"a": 1} {"b": 2}`, "invalid character '{' after top-level value at byte 9: invalid JSON", ErrBadJSON},
		{`{a: 1}`, "invalid character 'a' looking for beginning of object key string at byte 1: invalid JSON", ErrBadJSON},
		{`{"a" 1}`, "invalid character '1' after object key at byte 5: invalid JSON", ErrBadJSON},
		{`{"a": tru}`, "invalid character '}' in literal true at byte 9: invalid JSON", ErrBadJSON},
		{`{"a": 01}`, "invalid character '1' after object key:value pair at byte 7: invalid JSON", ErrBadJSON},
		{`{"a": 1.}`, "invalid character '}' after decimal point in numeric literal at byte 8: invalid JSON", ErrBadJSON},
		{`{"a": 1e}`, "invalid character '}' in exponent of numeric literal at byte 8: invalid JSON", ErrBadJSON},
		{`{"a": -}`, "invalid character '}' in numeric literal at byte 7: invalid JSON", ErrBadJSON},
		{`{"a": +1}`, "invalid character '+' looking for beginning of value at byte 6: invalid JSON", ErrBadJSON},
		{`{"a": "\x"}`, "invalid character 'x' in string escape code at byte 8: invalid JSON", ErrBadJSON},
		{`{"a": "\u12g4"}`, "invalid character 'g' in \\u hexadecimal character escape at byte 11: invalid JSON", ErrBadJSON},
		{"{\"a\": \"x\ny\"}", "invalid character 0x0a in string literal at byte 8: invalid JSON", ErrBadJSON},
		{`{"a": [1, 2,]}`, "invalid character ']' looking for beginning of value at byte 12: invalid JSON", ErrBadJSON},
		{`{"a": 1,}`, "invalid character '}' looking for beginning of object key string at byte 8: invalid JSON", ErrBadJSON},
		{`{"a": 'x'}`, `invalid character '\'' looking for beginning of value at byte 6: invalid JSON`, ErrBadJSON},
		{`{"a": NaN}`, "invalid character 'N' looking for beginning of value at byte 6: invalid JSON", ErrBadJSON},
		{`{"a": ` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`, "exceeded max depth at byte 10005: invalid JSON", ErrBadJSON},
		{"\xef\xbb\xbf{}", "invalid character 0xef looking for beginning of value at byte 0: invalid JSON", ErrBadJSON},
		{`{"amount": 1e999}`, `field "amount": number 1e999 out of range at byte 11: value cannot be represented`, ErrBadValue},
		{`{"a": 1, "b": [2, {"c": -1.5E+400}]}`, `field "b": number -1.5E+400 out of range at byte 24: value cannot be represented`, ErrBadValue},
		{`{"a": ` + strings.Repeat("9", 400) + `}`, `field "a": number 999999999999999999999999… (400 digits) out of range at byte 6: value cannot be represented`, ErrBadValue},
		{"{\"a\": \"ok\", \"b\": \"x\xffy\"}", "invalid UTF-8 at byte 19: value cannot be represented", ErrBadValue},
		{"{\"k\xc3\": 1}", "invalid UTF-8 at byte 3: value cannot be represented", ErrBadValue},
		// Invalid JSON is that first, whatever numbers come before.
		{`{"a": 1e999`, "unexpected end of JSON input at byte 11: invalid JSON", ErrBadJSON},
		{`[1e999]`, "line is not a JSON object", ErrNotObject},
	}
	for _, tt := range tests {
		name := tt.in
		if len(name) > 30 {
			name = name[:30]
		}
		t.Run(name, func(t *testing.T) {
			ev, err := ParseEvent([]byte(tt.in))
			if err == nil {
				t.Fatalf("ParseEvent accepted %q: %v", tt.in, ev)
			}
			if err.Error() != tt.want {
				t.Errorf("error %q, want %q", err, tt.want)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.wantErr)
			}
			if json.Valid([]byte(tt.in)) && errors.Is(tt.wantErr, ErrBadJSON) {
				t.Errorf("encoding/json accepts %q", tt.in)
			}
		})
	}
}

func TestDecodeSchemaTypes(t *testing.T) {
	ts := time.Date(2026, 11, 20, 10, 0, 0, 123e6, time.UTC)
	tests := []struct {
		json string
		k    kind
		want any
	}{
		{`5`, kindDouble, 5.0},
		{`5.25`, kindDouble, 5.25},
		{`"x"`, kindDouble, "error: a JSON string is not a double"},
		{`5`, kindInt, int64(5)},
		{`5.0`, kindInt, int64(5)},
		{`5.5`, kindInt, "error: 5.5 is not an int"},
		{`7`, kindUint, uint64(7)},
		{`-7`, kindUint, "error: -7 is not a uint"},
		{`"a\nb"`, kindString, "a\nb"},
		{`12`, kindString, "error: a JSON number is not a string"},
		{`true`, kindBool, true},
		{`"2026-11-20T10:00:00.123Z"`, kindTimestamp, ts},
		{strconv.FormatInt(ts.UnixMilli(), 10), kindTimestamp, ts},
		{strconv.FormatInt(ts.UnixMilli(), 10) + ".5", kindTimestamp, ts.Add(500 * time.Microsecond)},
		{`"yesterday"`, kindTimestamp, `error: "yesterday" is not an RFC 3339 timestamp`},
		{`"1m30s"`, kindDuration, 90 * time.Second},
		{`1500`, kindDuration, 1500 * time.Millisecond},
		{`"aGk="`, kindBytes, []byte("hi")},
		{`[1]`, kindList, []any{int64(1)}},
		{`{"a": 1}`, kindMap, map[string]any{"a": int64(1)}},
		{`[1]`, kindMap, "error: a JSON array is not a map"},
		{`null`, kindDouble, nil},
	}
	for _, tt := range tests {
		t.Run(tt.json+"/"+kindNames[tt.k], func(t *testing.T) {
			got := native(t, decodeAs([]byte(tt.json), tt.k))
			if d, ok := got.(types.Duration); ok {
				got = d.Duration
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decodeAs(%s, %s) (-want +got):\n%s", tt.json, kindNames[tt.k], diff)
			}
		})
	}
}

func TestParseEventDepth(t *testing.T) {
	// encoding/json allows 10000 nested containers, the object included.
	for _, depth := range []int{9999, 10000} {
		in := []byte(`{"a": ` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + `}`)
		_, err := ParseEvent(in)
		if got, want := err == nil, json.Valid(in); got != want {
			t.Errorf("depth %d: ParseEvent accepts %v, encoding/json %v (%v)", depth, got, want, err)
		}
	}
}

func TestEventNumbersOutOfRange(t *testing.T) {
	// ParseEvent rejects such an event; a field decoded apart from it is
	// an error value.
	if v := decodeNatural([]byte(`1e400`)); !types.IsError(v) {
		t.Errorf("1e400 decodes as %v; want an error value", v)
	}
	// Within range: tiny numbers round to zero, long ones below 1e308 pass.
	for _, in := range []string{`{"x": 1e-999}`, `{"x": 1.7e308}`, `{"x": ` + strings.Repeat("9", 308) + `}`, `{"x": 0.` + strings.Repeat("1", 500) + `}`} {
		if _, err := ParseEvent([]byte(in)); err != nil {
			t.Errorf("ParseEvent(%.40s…): %v", in, err)
		}
	}
	if got := decodeNatural([]byte(`-9223372036854775808`)); got != types.Int(math.MinInt64) {
		t.Errorf("min int64 decodes as %v", got)
	}
}

func TestSpecial(t *testing.T) {
	for c := 0; c < 256; c++ {
		want := !plainByte[c]
		for pos := 0; pos < 8; pos++ {
			b := []byte("abcdefgh")
			b[pos] = byte(c)
			got := special(binary.LittleEndian.Uint64(b)) != 0
			if got != want {
				t.Fatalf("special with byte %#x at %d = %v, want %v", c, pos, got, want)
			}
		}
	}
}

// TestDecodeCacheEvicts reads more fields, in more modes, than the cache
// has slots, in a random order: every read must give the field's value.
func TestDecodeCacheEvicts(t *testing.T) {
	raw := `{"a":1,"b":2.5,"c":"x","d":true,"e":-3,"f":"2026-11-20T10:00:00Z","g":[1],"h":{"k":1}}`
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	modes := []kind{kindNatural, kindDouble, kindInt, kindString, kindTimestamp}
	ev, err := ParseEvent([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 2000 {
		name, mode := names[rng.IntN(len(names))], modes[rng.IntN(len(modes))]
		f := ev.find(name)
		got := ev.decode(f, mode)
		want := decodeAs(ev.raw[f.v0:f.v1], mode)
		if types.IsError(want) != types.IsError(got) || (!types.IsError(want) && got.Equal(want) != types.True) {
			t.Fatalf("decode(%s, %d) = %v, want %v", name, mode, got, want)
		}
	}
	for i, v := range ev.cache {
		if owner := ev.cacheOwner[i]; v != nil && ev.fields[owner].cached != uint8(i+1) {
			t.Errorf("cache slot %d belongs to field %d, which points at slot %d", i, owner, ev.fields[owner].cached)
		}
	}
}
