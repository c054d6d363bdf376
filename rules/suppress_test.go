package rules

import (
	"math"
	"testing"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"github.com/google/go-cmp/cmp"
)

func TestSuppressParse(t *testing.T) {
	src := ruleset(`  - id: w
    when: event.amount > 100
    alert:
      suppress:
        for: 1h
        by: [event.country, 'event.amount > 1000']
  - id: p
    within: 10m
    pattern:
      - step: a
      - step: b
    alert:
      summary: '"x"'
      suppress: {for: 2d, by: [b.country]}
  - id: k
    when: "true"
    alert: {suppress: {for: 30s}}
`)
	c, err := Load("t.yaml", []byte(src), CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pos := func(line, col int) Pos { return Pos{File: "t.yaml", Line: line, Col: col} }
	want := []*Suppress{
		{For: time.Hour, ForPos: pos(7, 14), By: []string{"event.country", "event.amount > 1000"}, ByPos: []Pos{pos(8, 14), pos(8, 29)}, Pos: pos(7, 9)},
		{For: 48 * time.Hour, ForPos: pos(16, 23), By: []string{"b.country"}, ByPos: []Pos{pos(16, 32)}, Pos: pos(16, 17)},
		{For: 30 * time.Second, ForPos: pos(19, 29), Pos: pos(19, 23)},
	}
	for i, r := range c.Rules {
		if diff := cmp.Diff(want[i], r.Alert.Suppress); diff != "" {
			t.Errorf("rule %s suppress (-want +got):\n%s", r.ID, diff)
		}
		if len(r.SuppressBy) != len(want[i].By) {
			t.Errorf("rule %s: %d compiled by expressions, want %d", r.ID, len(r.SuppressBy), len(want[i].By))
		}
	}
}

func TestSuppressErrors(t *testing.T) {
	tests := []struct {
		name, alert string
		pattern     bool
		want        []string
	}{
		{"no for", "{suppress: {by: [event.x]}}", false, []string{"5:23: r: alert suppress needs for (how long an alert suppresses the next ones, e.g. for: 1h)"}},
		{"zero for", "{suppress: {for: 0s}}", false, []string{"5:29: r: suppress for must be positive, not 0s"}},
		{"bad for", "{suppress: {for: soon}}", false, []string{`5:29: r: suppress for: invalid duration "soon"`}},
		{"unknown key", "{suppress: {for: 1h, per: x}}", false, []string{`5:33: r: unknown field "per" in alert suppress`}},
		{"not a mapping", "{suppress: 1h}", false, []string{"5:23: r: alert suppress must be a mapping, not a string"}},
		{"by not a list", "{suppress: {for: 1h, by: event.x}}", false, []string{"5:37: r: suppress by must be a list, not a string"}},
		{"empty by", "{suppress: {for: 1h, by: ['']}}", false, []string{"5:38: r: suppress by expression is empty"}},
		{"by does not compile", "{suppress: {for: 1h, by: [event.x +]}}", false, []string{"5:47: r: Syntax error: mismatched input '<EOF>' expecting"}},
		{"by of an unknown step", "{suppress: {for: 1h, by: [c.x]}}", true, []string{"5:38: r: undeclared reference to 'c'"}},
		{"by of a step", "{suppress: {for: 1h, by: [b.x]}}", true, nil},
		{"by step in a when rule", "{suppress: {for: 1h, by: [a.x]}}", false, []string{"5:38: r: undeclared reference to 'a'"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := "  - id: r\n    when: 'true'\n    alert: " + tt.alert + "\n"
			if tt.pattern {
				body = "  - id: r\n    pattern: [{step: a}, {step: b}]\n    alert: " + tt.alert + "\n"
			}
			_, err := Load("t.yaml", []byte(ruleset(body)), CompileOptions{})
			got := errLines(t, err)
			if len(got) != len(tt.want) {
				t.Fatalf("errors %q, want %q", got, tt.want)
			}
			for i := range got {
				if len(got[i]) < len(tt.want[i]) || got[i][:len(tt.want[i])] != tt.want[i] {
					t.Errorf("error %d\n%s\nwant it to start with\n%s", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestSuppressVersion: suppression is part of a rule's version, and a rule
// without it keeps the version it had.
func TestSuppressVersion(t *testing.T) {
	version := func(alert string) string {
		c, err := Load("t.yaml", []byte(ruleset("  - id: r\n    when: 'true'\n"+alert)), CompileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return c.Rules[0].Version
	}
	plain := version("")
	v1 := version("    alert: {suppress: {for: 1h}}\n")
	v2 := version("    alert: {suppress: {for: 2h}}\n")
	v3 := version("    alert: {suppress: {for: 1h, by: [event.x]}}\n")
	if plain == v1 || v1 == v2 || v1 == v3 {
		t.Errorf("versions: none %s, for 1h %s, for 2h %s, by %s: want all different", plain, v1, v2, v3)
	}
}

func TestAppendSuppressValue(t *testing.T) {
	enc := func(v ref.Val) string {
		b, err := AppendSuppressValue(nil, v)
		if err != nil {
			t.Fatalf("%v: %v", v, err)
		}
		return string(b)
	}
	distinct := []ref.Val{
		types.Int(1), types.Uint(1), types.Double(1), types.String("1"), types.Bytes("1"), types.True, types.NullValue,
		types.DefaultTypeAdapter.NativeToValue([]any{"a", "b"}),
		types.DefaultTypeAdapter.NativeToValue([]any{"ab"}),
		types.DefaultTypeAdapter.NativeToValue(map[string]any{"a": 1, "b": 2}),
	}
	seen := map[string]ref.Val{}
	for _, v := range distinct {
		if prev, ok := seen[enc(v)]; ok {
			t.Errorf("%v and %v encode alike", prev, v)
		}
		seen[enc(v)] = v
	}
	if enc(types.Double(0)) != enc(types.Double(math.Copysign(0, -1))) {
		t.Error("0.0 and -0.0 encode apart")
	}
	m1 := types.DefaultTypeAdapter.NativeToValue(map[string]any{"a": 1, "b": 2, "c": 3})
	m2 := types.DefaultTypeAdapter.NativeToValue(map[string]any{"c": 3, "b": 2, "a": 1})
	for range 10 {
		if enc(m1) != enc(m2) {
			t.Fatal("equal maps encode apart")
		}
	}
	if _, err := AppendSuppressValue(nil, types.IntType); err == nil {
		t.Error("a type value encodes")
	}
}
