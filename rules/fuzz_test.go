package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"unicode/utf8"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
)

// FuzzParse loads arbitrary ruleset sources: Load never panics, and every
// expression of a ruleset that loads evaluates without panicking.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	more, _ := filepath.Glob("testdata/errors/*.yaml")
	for _, file := range append(files, more...) {
		src, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	f.Add([]byte(groupRules))
	f.Add([]byte(cardSpree))
	ev, err := ParseEvent([]byte(`{"type": "login", "amount": 12.5, "success": false, "ip": "1.2.3.4", "ts": "2026-11-20T10:00:00Z", "n": 3}`))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := Load("fuzz.yaml", src, CompileOptions{})
		if err != nil {
			if err.Error() == "" {
				t.Error("empty error message")
			}
			return
		}
		evalAll(c, ev)
	})
}

// evalAll runs every expression of c over ev, binding every step to ev.
func evalAll(c *Compiled, ev *Event) {
	vars := everyStep{ev}
	if c.Key != nil {
		_, _ = c.Key.EvalKey(ev)
	}
	if c.Time != nil {
		_, _ = c.Time.EvalTime(ev)
	}
	for _, r := range c.Rules {
		if r.When != nil {
			_, _ = r.When.EvalBool(ev, nil)
		}
		var steps func([]*CompiledStep)
		steps = func(ss []*CompiledStep) {
			for _, s := range ss {
				if s.Where != nil {
					_, _ = s.Where.EvalBool(ev, vars)
				}
				if s.Until != nil {
					_, _ = s.Until.EvalBool(ev, vars)
				}
				steps(s.Steps)
			}
		}
		steps(r.Steps)
		summaryVars := Vars(vars)
		if a := r.Aggregate; a != nil {
			_, _ = a.Where.EvalBool(ev, nil)
			mv := measures{} // every measure a value of its type
			for i, arg := range a.Args {
				if arg != nil {
					_, _ = arg.Eval(ev, nil)
				}
				mv[i] = 1.5
				if f := a.Measures[i].Func; f == Count || f == CountDistinct {
					mv[i] = 2
				}
			}
			_, _ = a.Having.EvalBool(ev, mv)
			summaryVars = mv
		}
		if r.Summary != nil {
			_, _ = r.Summary.EvalString(ev, summaryVars)
		}
	}
}

type everyStep struct{ ev *Event }

func (a everyStep) StepEvents(string) ([]*Event, bool) { return []*Event{a.ev, a.ev}, true }

// FuzzParseEvent checks ParseEvent against encoding/json: it never panics,
// it accepts exactly the JSON objects encoding/json accepts but those with
// invalid UTF-8 or a number beyond float64 (ErrBadValue), and its fields
// decode to the values encoding/json gives them.
func FuzzParseEvent(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a": 1}`, string(paymentsEvent),
		`{"s": "a\"b\\c\u00e9\ud83d\ude00\ud800", "n": [1, 2.5, -0, 1e3, {"x": null}], "t": true, "f": false}`,
		`{"a": 1, "a": 2}`, `[]`, `{"a": }`, `{"a": 1e400}`, `{"big": 123456789012345678901234567890}`,
		" {\"x\":\t\"\xff\xfe\"} ", `{"k\u0000ey": "v"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		in := bytes.Clone(raw)
		ev, err := ParseEvent(in)
		valid := json.Valid(raw)
		var want map[string]any
		isObject := false
		if valid {
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.UseNumber()
			var v any
			if dec.Decode(&v) == nil {
				want, isObject = v.(map[string]any)
			}
		}
		if err != nil {
			if errors.Is(err, ErrBadValue) {
				var m map[string]any
				if !isObject || (utf8.Valid(raw) && json.Unmarshal(raw, &m) == nil) {
					t.Fatalf("ParseEvent rejected %q as unrepresentable (object %v): %v", raw, isObject, err)
				}
				return
			}
			if isObject {
				t.Fatalf("ParseEvent rejected a JSON object %q: %v", raw, err)
			}
			return
		}
		if !valid || !isObject {
			t.Fatalf("ParseEvent accepted %q, which encoding/json does not take for an object (valid %v)", raw, valid)
		}
		names := map[string]bool{}
		for _, k := range ev.Fields() {
			names[k] = true
		}
		if len(names) != len(want) {
			t.Fatalf("%q: %d distinct fields, encoding/json has %d", raw, len(names), len(want))
		}
		for k, wv := range want {
			got, ok := ev.Field(k)
			if !ok {
				t.Fatalf("%q: field %q missing", raw, k)
			}
			if err := sameValue(got, wv); err != nil {
				t.Fatalf("%q: field %q: %v", raw, k, err)
			}
		}
		// Every value decodes under every schema type without panicking.
		for i := range ev.fields {
			for k := kindNatural; k <= kindMap; k++ {
				_ = decodeAs(ev.raw[ev.fields[i].v0:ev.fields[i].v1], k)
			}
		}
	})
}

// sameValue compares a decoded field with encoding/json's value for it
// (decoded with UseNumber).
func sameValue(got ref.Val, want any) error {
	switch w := want.(type) {
	case nil:
		if got != types.NullValue {
			return fmt.Errorf("got %v, want null", got)
		}
	case bool:
		if got != types.Bool(w) {
			return fmt.Errorf("got %v, want %v", got, w)
		}
	case string:
		if got != types.String(w) {
			return fmt.Errorf("got %q, want %q", got, w)
		}
	case json.Number:
		f, ferr := strconv.ParseFloat(string(w), 64)
		switch g := got.(type) {
		case types.Int:
			if n, err := strconv.ParseInt(string(w), 10, 64); err != nil || n != int64(g) {
				return fmt.Errorf("got int %d, want %s", g, w)
			}
		case types.Double:
			if ferr != nil || f != float64(g) && !(math.IsNaN(f) && math.IsNaN(float64(g))) {
				return fmt.Errorf("got double %v, want %s", g, w)
			}
		case *types.Err:
			if ferr == nil {
				return fmt.Errorf("got error %w, want %s", g, w)
			}
		default:
			return fmt.Errorf("got %T, want number %s", got, w)
		}
	case []any:
		l, ok := got.(traits.Lister)
		if !ok || l.Size() != types.Int(len(w)) {
			return fmt.Errorf("got %v, want list of %d", got, len(w))
		}
		for i, x := range w {
			if err := sameValue(l.Get(types.Int(i)), x); err != nil {
				return fmt.Errorf("[%d]: %w", i, err)
			}
		}
	case map[string]any:
		m, ok := got.(traits.Mapper)
		if !ok || m.Size() != types.Int(len(w)) {
			return fmt.Errorf("got %v, want map of %d", got, len(w))
		}
		for k, x := range w {
			v, found := m.Find(types.String(k))
			if !found {
				return fmt.Errorf("key %q missing", k)
			}
			if err := sameValue(v, x); err != nil {
				return fmt.Errorf(".%s: %w", k, err)
			}
		}
	default:
		return fmt.Errorf("unexpected %T", want)
	}
	return nil
}

// TestFuzzHelpers keeps the fuzz helpers honest on a few known values.
func TestFuzzHelpers(t *testing.T) {
	if err := sameValue(types.Int(1), json.Number("1")); err != nil {
		t.Error(err)
	}
	if err := sameValue(types.Int(2), json.Number("1")); err == nil {
		t.Error("sameValue(2, 1) = nil")
	}
	if err := sameValue(types.String("a"), nil); err == nil {
		t.Error("sameValue(a, null) = nil")
	}
}
