package ruletest

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/shrike-cep/shrike/rules"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// golden compares got with the file testdata/name, or rewrites the file
// with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, diff)
	}
}

// TestLoadErrors pins every problem Load reports for broken test files,
// with positions, in a golden file per test file.
func TestLoadErrors(t *testing.T) {
	files, err := filepath.Glob("testdata/errors/*_test.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), "_test.yaml")
		t.Run(name, func(t *testing.T) {
			_, err := Load(f)
			if err == nil {
				t.Fatal("Load succeeded, want errors")
			}
			if !errors.Is(err, rules.ErrInvalid) {
				t.Errorf("errors.Is(err, rules.ErrInvalid) = false for %v", err)
			}
			golden(t, filepath.Join("errors", name+".golden"), err.Error()+"\n")
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/nope_test.yaml")
	if err == nil || errors.Is(err, rules.ErrInvalid) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: %v, want a not-exist error that is not rules.ErrInvalid", err)
	}
}

func ptr[T any](v T) *T { return &v }

// TestLoad checks the model Load builds: defaults filled in (record
// topics, rulesets of unqualified rules), events as JSON, matchers split
// into line and fields.
func TestLoad(t *testing.T) {
	const src = `
rulesets: [shop.yaml, records.yaml]
tests:
  - name: inline
    events:
      - {type: cart, user: u1, n: 0x1F, big: 1_000, f: .5, ok: yes, no: false, none: ~, ts: 2026-11-20T10:00:00Z, q: "42", list: [1, {a: b}]}
    only: [big-order, records/login-then-transfer]
    expect:
      - rule: big-order
        key: u1
        severity: high
        labels: {team: shop}
        timeout: false
        summary: user u1 ordered 150
        events:
          event: [{line: 1, amount: 150.0}]
  - name: records
    records:
      - {key: a, ts: 1000, value: {type: login}, topic: payments}
      - {ts: "1970-01-01T00:00:02Z", value: {type: transfer}, key: null, topic: payments}
    expect:
      - {rule: login-then-transfer, events: {login: [{}], transfer: [{line: 2}]}}
  - name: file
    events_file: events.jsonl
    expect: []
`
	f, err := LoadSource("testdata/load_test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	pos := func(line, col int) rules.Pos {
		return rules.Pos{File: "testdata/load_test.yaml", Line: line, Col: col}
	}
	want := []*Test{
		{
			Name: "inline", Pos: pos(4, 5),
			Events: []*Event{{
				Pos:  pos(6, 9),
				JSON: []byte(`{"type":"cart","user":"u1","n":31,"big":1000,"f":0.5,"ok":"yes","no":false,"none":null,"ts":"2026-11-20T10:00:00Z","q":"42","list":[1,{"a":"b"}]}`),
			}},
			Only: []RuleRef{
				{Ruleset: "shop", Rule: "big-order", Pos: pos(7, 12)},
				{Ruleset: "records", Rule: "login-then-transfer", Pos: pos(7, 23)},
			},
			Expect: []*Expected{{
				Pos:      pos(9, 9),
				RuleRef:  RuleRef{Ruleset: "shop", Rule: "big-order", Pos: pos(9, 15)},
				Key:      ptr("u1"),
				Severity: rules.SeverityHigh,
				Labels:   map[string]string{"team": "shop"},
				Timeout:  ptr(false),
				Summary:  ptr("user u1 ordered 150"),
				Steps: []*ExpectedStep{{Step: "event", Pos: pos(16, 11), Events: []*EventMatcher{
					{Pos: pos(16, 19), Line: 1, Fields: []byte(`{"amount":150.0}`)},
				}}},
			}},
		},
		{
			Name: "records", Pos: pos(17, 5),
			Events: []*Event{
				{Pos: pos(19, 9), JSON: []byte(`{"type":"login"}`), Record: true, Topic: "payments", Key: "a", HasKey: true, TimeMillis: 1000, HasTime: true},
				{Pos: pos(20, 9), JSON: []byte(`{"type":"transfer"}`), Record: true, Topic: "payments", TimeMillis: 2000, HasTime: true},
			},
			Expect: []*Expected{{
				Pos:     pos(22, 9),
				RuleRef: RuleRef{Ruleset: "records", Rule: "login-then-transfer", Pos: pos(22, 16)},
				Steps: []*ExpectedStep{
					{Step: "login", Pos: pos(22, 46), Events: []*EventMatcher{{Pos: pos(22, 54)}}},
					{Step: "transfer", Pos: pos(22, 59), Events: []*EventMatcher{{Pos: pos(22, 70), Line: 2}}},
				},
			}},
		},
		{
			Name: "file", Pos: pos(23, 5),
			EventsFile: filepath.Join("testdata", "events.jsonl"), EventsFilePos: pos(24, 18),
			Expect: []*Expected{},
		},
	}
	// Expect: [] and no expect differ in the source but not in meaning.
	opts := cmp.Options{cmpopts.IgnoreUnexported(EventMatcher{}), cmpopts.EquateEmpty()}
	if diff := cmp.Diff(want, f.Tests, opts); diff != "" {
		t.Errorf("tests (-want +got):\n%s", diff)
	}
	var names []string
	for _, rs := range f.Rulesets {
		names = append(names, rs.Name)
	}
	if diff := cmp.Diff([]string{"shop", "records"}, names); diff != "" {
		t.Errorf("rulesets (-want +got):\n%s", diff)
	}
}

// TestEventJSON checks how YAML scalars become JSON: YAML types kept,
// numbers as written when JSON allows, else in JSON's spelling.
func TestEventJSON(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"strings", `{a: x, b: "1", c: 'true'}`, `{"a":"x","b":"1","c":"true"}`},
		{"numbers as written", `{a: 1, b: -2.50, c: 1e3, d: 0}`, `{"a":1,"b":-2.50,"c":1e3,"d":0}`},
		{"numbers JSON cannot spell", `{a: 0x10, b: 0o17, c: +3, d: .5, e: 1_000}`, `{"a":16,"b":15,"c":3,"d":0.5,"e":1000}`},
		{"booleans and null", `{a: true, b: False, c: null, d: ~}`, `{"a":true,"b":false,"c":null,"d":null}`},
		{"timestamp stays as written", `{ts: 2026-11-20T10:00:00.5Z}`, `{"ts":"2026-11-20T10:00:00.5Z"}`},
		{"nested", "a:\n  b: [1, [2], {c: d}]\n", `{"a":{"b":[1,[2],{"c":"d"}]}}`},
		{"escapes", `{"a\"b": "line\nbreak"}`, `{"a\"b":"line\nbreak"}`},
		{"alias", "x: &v {k: 1}\ny: *v\n", `{"x":{"k":1},"y":{"k":1}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "rulesets: [shop.yaml]\ntests:\n  - name: t\n    expect: []\n    events:\n      - " +
				strings.ReplaceAll(tt.yaml, "\n", "\n        ") + "\n"
			f, err := LoadSource("testdata/json_test.yaml", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(f.Tests[0].Events[0].JSON)); diff != "" {
				t.Errorf("JSON (-want +got):\n%s", diff)
			}
		})
	}
}
