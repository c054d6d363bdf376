package cep

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shrike-cep/shrike/rules"
)

// TestReplayIDsIgnorePath replays one recording under several spellings of
// its path, and a copy in another folder, and expects the same alert ids
// from each: the base name identifies a recording. Input.Source names it
// otherwise, and then the ids change.
func TestReplayIDsIgnorePath(t *testing.T) {
	dir := t.TempDir()
	orders := `{"id":1,"user":"u1","type":"cart","ts":1000}
{"id":2,"user":"u1","type":"pay","ts":2000}
{"id":3,"user":"u2","type":"cart","ts":3000}
{"id":4,"user":"u1","type":"order","amount":150,"ts":4000}
`
	for _, sub := range []string{"day1", "copy"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, sub, "orders.jsonl"), []byte(orders), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	rs := load(t, "shop.yaml", shopRules)
	ids := func(in Input) []string {
		t.Helper()
		var out bytes.Buffer
		if _, err := Replay(t.Context(), ReplayOptions{Rulesets: []*rules.Compiled{rs}, Inputs: []Input{in}, Alerts: &out}); err != nil {
			t.Fatal(err)
		}
		var got []string
		for line := range strings.Lines(out.String()) {
			var a struct{ ID string }
			if err := json.Unmarshal([]byte(line), &a); err != nil {
				t.Fatal(err)
			}
			got = append(got, a.ID)
		}
		return got
	}
	want := ids(Input{Name: "day1/orders.jsonl"})
	if len(want) != 3 {
		t.Fatalf("%d alerts, want 3", len(want))
	}
	for _, in := range []Input{
		{Name: filepath.Join(dir, "day1", "orders.jsonl")},
		{Name: "copy/orders.jsonl"},
		{Name: "./day1/../day1/orders.jsonl"},
		{Name: "orders.jsonl", R: strings.NewReader(orders)},
		{Name: "elsewhere/named.jsonl", Source: "orders.jsonl", R: strings.NewReader(orders)},
	} {
		if got := ids(in); !slices.Equal(got, want) {
			t.Errorf("%+v: ids %v, want those of day1/orders.jsonl %v", in, got, want)
		}
	}
	for _, in := range []Input{
		{Name: "day1/orders.jsonl", Source: "orders-2026-11-20"},
		{Name: "copy/other.jsonl", R: strings.NewReader(orders)},
	} {
		if got := ids(in); slices.ContainsFunc(got, func(id string) bool { return slices.Contains(want, id) }) {
			t.Errorf("%+v: ids %v share some with day1/orders.jsonl %v, want none", in, got, want)
		}
	}
}
