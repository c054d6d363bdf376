package rules

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"cel.dev/cel-go/common/types"
)

// TestFastPathAgreesWithCEL evaluates every natively evaluated shape both
// natively and through the CEL interpreter, on events that have the field,
// lack it, hold null or hold another type, with and without a schema.
func TestFastPathAgreesWithCEL(t *testing.T) {
	exprs := []string{
		`event.type`, `event.n`, `event.ok`, `!event.ok`,
		`event.type == "login"`, `"login" == event.type`, `event.type != "login"`,
		`event.n == 5`, `event.n == 5.0`, `event.n != 5`, `event.ok == true`,
		`event.n < 5.0`, `event.n <= 5.0`, `event.n > 5.0`, `event.n >= 5.5`, `5.0 < event.n`,
		`event.n > 4`, `event.type < "m"`, `"m" >= event.type`,
		`event.n != 5.0`, `event.n == 0.0`, `event.n < 10.0`, `event.n >= -0.0055`,
	}
	events := []string{
		`{"type":"login","n":5,"ok":true}`,
		`{"type":"logout","n":5.5,"ok":false}`,
		`{"type":null,"n":null,"ok":null}`,
		`{"other":1}`,
		`{"type":7,"n":"5","ok":"yes"}`,
		// Numbers in the forms the double shortcut parses or leaves alone.
		`{"n":5.0}`, `{"n":-0.0}`, `{"n":0}`, `{"n":1e1}`, `{"n":10E0}`, `{"n":-5.5e-3}`, `{"n":-0.0055}`,
		`{"n":4.99999999999999999}`, `{"n":12345678901234567.5}`, `{"n":1.7976931348623157e308}`, `{"n":-1e-999}`,
		`{"n":9007199254740993}`, `{"n":99999999999999999999}`,
	}
	for _, schema := range []bool{false, true} {
		for _, src := range exprs {
			if schema && (src == `event.n == 5` || src == `event.n != 5` || src == `event.n > 4`) {
				continue // double == int does not type-check against the schema
			}
			name := fmt.Sprintf("schema=%v/%s", schema, src)
			t.Run(name, func(t *testing.T) {
				doc := "ruleset: t\nrules:\n  - id: r\n    when: 'true'\n"
				if schema {
					doc = "ruleset: t\nschema: {type: string, n: double, ok: bool}\nrules:\n  - id: r\n    when: 'true'\n"
				}
				c, err := Load("t.yaml", []byte(doc), CompileOptions{})
				if err != nil {
					t.Fatal(err)
				}
				x := compileProbe(t, c, src)
				if x.fast == nil {
					t.Fatalf("%s: not recognised as a fast shape", src)
				}
				slow := withoutFast(x)
				for _, raw := range events {
					ev, err := ParseEvent([]byte(raw))
					if err != nil {
						t.Fatal(err)
					}
					fv, ferr := x.Eval(ev, nil)
					ev2, _ := ParseEvent([]byte(raw))
					sv, serr := slow.Eval(ev2, nil)
					if (ferr != nil) != (serr != nil) {
						t.Errorf("%s on %s: fast err %v, cel err %v", src, raw, ferr, serr)
						continue
					}
					if ferr == nil && fv.Equal(sv) != types.True {
						t.Errorf("%s on %s: fast %v, cel %v", src, raw, fv, sv)
					}
				}
			})
		}
	}
}

// compileProbe compiles src as a `when` condition of c's ruleset.
func compileProbe(t *testing.T, c *Compiled, src string) *Expr {
	t.Helper()
	doc := string(c.Source)
	doc = doc[:len(doc)-len("'true'\n")] + fmt.Sprintf("%q\n", src)
	if src == "event.type" || src == "event.n" {
		// A when condition must be bool: compile non-bool shapes as a key.
		doc = "ruleset: t\n" + schemaLine(c) + "stream: {key: " + src + "}\nrules:\n  - id: r\n    when: 'true'\n"
		k, err := Load("t.yaml", []byte(doc), CompileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return k.Key
	}
	k, err := Load("t.yaml", []byte(doc), CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return k.Rules[0].When
}

func schemaLine(c *Compiled) string {
	if len(c.Schema) == 0 {
		return ""
	}
	return "schema: {type: string, n: double, ok: bool}\n"
}

func TestConjunctsOrderCheapFirst(t *testing.T) {
	doc := `ruleset: t
rules:
  - id: r
    pattern:
      - step: a
        where: event.type == "a"
      - step: b
        where: event.ip != a.ip && size(event.tags) > 1 && event.type == "b"
`
	c, err := Load("t.yaml", []byte(doc), CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	where := c.Rules[0].Steps[1].Where
	var got []string
	for _, x := range where.Conjuncts {
		got = append(got, x.Source)
	}
	want := []string{`event.type == "b"`, `size(event.tags) > 1`, `event.ip != a.ip`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("conjuncts = %q, want %q", got, want)
	}
	if len(where.Conjuncts[2].Steps) != 1 || len(where.Conjuncts[0].Steps) != 0 {
		t.Errorf("conjunct steps = %v / %v", where.Conjuncts[0].Steps, where.Conjuncts[2].Steps)
	}
}

func TestParseRFC3339AgreesWithTimeParse(t *testing.T) {
	for _, s := range []string{
		"2026-11-20T10:00:00Z", "2026-11-20T10:00:00.123Z", "2026-11-20T10:00:00.123456789Z",
		"2026-11-20T10:00:00+02:00", "2026-11-20T10:00:00.5-07:30", "2024-02-29T23:59:59Z",
		"2023-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-11-20T24:00:00Z", "2026-11-20 10:00:00Z",
		"2026-11-20T10:00:00", "2026-11-20T10:00:00.Z", "2026-11-20T10:00:00.1234567890Z",
		"2026-11-20T10:00:60Z", "2026-11-20t10:00:00z", "0000-01-01T00:00:00Z", "2026-11-20T10:00:00+24:00",
		"2026-11-20T10:00:00.999Z", "2026-11-20T10:00:00.000Z", "2026-11-20T10:00:00.1a3Z", "2026-11-20T10:00:00.12Z",
	} {
		want, werr := time.Parse(time.RFC3339Nano, s)
		got, ok := parseRFC3339(s)
		if ok && (werr != nil || got != want.UnixNano()) {
			t.Errorf("parseRFC3339(%q) = %d, time.Parse = %v, %v", s, got, want.UnixNano(), werr)
		}
		// Plain UTC times within int64 nanoseconds never fall back.
		if !ok && werr == nil && len(s) == len("2026-11-20T10:00:00Z") && s[19] == 'Z' && s[:4] >= "1678" && s[:4] <= "2261" {
			t.Errorf("parseRFC3339(%q) fell back on a plain UTC time", s)
		}
	}
}

func FuzzParseRFC3339(f *testing.F) {
	f.Add("2026-11-20T10:00:00.123Z")
	f.Add("2026-11-20T10:00:00+02:00")
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseRFC3339(s)
		if !ok {
			return
		}
		want, err := time.Parse(time.RFC3339Nano, s)
		if err != nil || want.UnixNano() != got {
			t.Fatalf("parseRFC3339(%q) = %d, time.Parse = %v (%v)", s, got, want, err)
		}
	})
}

func TestKeyAndTimeFastPaths(t *testing.T) {
	c, err := Load("t.yaml", []byte("ruleset: t\nstream: {key: event.k, time: event.ts}\nrules:\n  - id: r\n    when: 'true'\n"), CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{
		`{"k":"acct-1","ts":"2026-11-20T10:00:00.250Z"}`,
		`{"k":"caf\u00e9","ts":1763632800250}`,
		`{"k":42,"ts":1763632800250.5}`,
		`{"k":"x","ts":"2026-11-20T12:00:00.250+02:00"}`,
	} {
		ev, _ := ParseEvent([]byte(raw))
		slowKey, slowTime := withoutFast(c.Key), withoutFast(c.Time)
		ev2, _ := ParseEvent([]byte(raw))
		k1, e1 := c.Key.EvalKey(ev)
		k2, e2 := slowKey.EvalKey(ev2)
		if k1 != k2 || (e1 != nil) != (e2 != nil) {
			t.Errorf("key of %s: fast %q %v, cel %q %v", raw, k1, e1, k2, e2)
		}
		t1, e1 := c.Time.EvalTime(ev)
		t2, e2 := slowTime.EvalTime(ev2)
		if t1 != t2 || (e1 != nil) != (e2 != nil) {
			t.Errorf("time of %s: fast %d %v, cel %d %v", raw, t1, e1, t2, e2)
		}
	}
}

// TestParseRFC3339Sweep checks the civil-date arithmetic against the time
// package over the whole range of int64 nanoseconds, in several zones.
func TestParseRFC3339Sweep(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	zones := []*time.Location{time.UTC, time.FixedZone("", 5*3600+30*60), time.FixedZone("", -8*3600)}
	for range 20000 {
		ts := time.Unix(rng.Int64N(18_000_000_000)-9_000_000_000, rng.Int64N(1e9)).In(zones[rng.IntN(len(zones))])
		s := ts.Format(time.RFC3339Nano)
		got, ok := parseRFC3339(s)
		if !ok || got != ts.UnixNano() {
			t.Fatalf("parseRFC3339(%q) = %d, %v; want %d", s, got, ok, ts.UnixNano())
		}
	}
}

// TestFieldReadersAgreeWithEval holds Expr.PlainString and Expr.Number to
// Eval's result on every event they answer for, and checks that they
// answer for the plain forms they exist for.
func TestFieldReadersAgreeWithEval(t *testing.T) {
	events := []string{
		`{"type":"login","n":5}`, `{"type":"café","n":5.5}`, `{"type":"a\"b","n":-0.0055}`,
		`{"type":null,"n":null}`, `{"other":1}`, `{"type":7,"n":"5"}`,
		`{"n":-0.0}`, `{"n":-0}`, `{"n":0}`, `{"n":1e1}`, `{"n":123456789012345}`, `{"n":1234567890123456}`,
		`{"n":4.99999999999999999}`, `{"n":9007199254740993}`, `{"n":99999999999999999999}`, `{"n":0.1}`, `{"n":-12.75}`,
	}
	for _, schema := range []string{"", "schema: {type: string, n: double}\n", "schema: {type: string, n: int}\n"} {
		read := func(src string) *Expr {
			doc := "ruleset: t\n" + schema + "stream: {key: " + src + "}\nrules:\n  - id: r\n    when: 'true'\n"
			c, err := Load("t.yaml", []byte(doc), CompileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return c.Key
		}
		str, num := read("event.type"), read("event.n")
		answered := map[string]int{}
		for _, raw := range events {
			ev, err := ParseEvent([]byte(raw))
			if err != nil {
				t.Fatal(err)
			}
			if s, ok := str.PlainString(ev); ok {
				answered["string"]++
				if v, err := str.Eval(ev, nil); err != nil || v.Equal(types.String(s)) != types.True {
					t.Errorf("%sevent.type on %s: PlainString %q, Eval %v (%v)", schema, raw, s, v, err)
				}
			}
			if x, ok := num.Number(ev); ok {
				answered["number"]++
				v, err := num.Eval(ev, nil)
				var want float64
				switch v := v.(type) {
				case types.Int:
					want = float64(v)
				case types.Double:
					want = float64(v)
				default:
					t.Errorf("%sevent.n on %s: Number %v, Eval %v (%v)", schema, raw, x, v, err)
					continue
				}
				if err != nil || x != want || (x == 0 && math.Signbit(x)) {
					t.Errorf("%sevent.n on %s: Number %v, Eval %v (%v)", schema, raw, x, v, err)
				}
			}
		}
		if answered["string"] != 1 {
			t.Errorf("%sPlainString answered for %d events, want 1 (the plain ASCII string)", schema, answered["string"])
		}
		if wantNumbers := map[string]int{"": 9, "schema: {type: string, n: double}\n": 9}[schema]; answered["number"] != wantNumbers {
			t.Errorf("%sNumber answered for %d events, want %d", schema, answered["number"], wantNumbers)
		}
	}
}
