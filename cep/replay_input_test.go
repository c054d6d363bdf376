package cep

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shrike-cep/shrike/internal/gen"
	"github.com/shrike-cep/shrike/rules"
)

// byCountryRules is a second stream over the payments events, keyed by
// country with a shorter watermark delay, so that lines reach two
// partitions and some are late in one stream but not the other.
const byCountryRules = `
ruleset: by-country
stream:
  topic: payments
  key: event.country
  time: event.ts
  max_out_of_orderness: 2s
rules:
  - id: reset-then-transfer
    within: 1m
    pattern:
      - step: reset
        where: event.type == "password_reset"
      - step: transfer
        where: event.type == "transfer" && event.amount > 5000.0
    skip: past_last_event
  - id: failed-logins
    within: 10s
    pattern:
      - step: fails
        where: event.type == "login" && !event.success
        times: 4..
    skip: past_last_event
`

// mixedInputs generates a payments stream of n events (internal/gen) with
// out-of-order events beyond the rulesets' watermark delays, and splits it
// into a plain JSON-lines file and a gzipped file in which some lines are
// turned into kcat envelopes, envelopes of another topic, tombstones,
// garbage, events without a key or a time, and blank lines: every kind of
// outcome a line can have, spread over many batches.
func mixedInputs(t testing.TB, n int) []Input {
	t.Helper()
	g, err := gen.New(gen.Options{
		Seed:        20261121,
		Events:      n,
		Keys:        max(n/40, 1),
		OutOfOrder:  0.05,
		MaxLateness: 8 * time.Second,
		FraudRate:   0.02,
	})
	if err != nil {
		t.Fatal(err)
	}
	var plain, mixed bytes.Buffer
	for i := 0; ; i++ {
		line, ok := g.Next()
		if !ok {
			break
		}
		if i < n/2 {
			plain.Write(line)
			plain.WriteByte('\n')
			continue
		}
		switch {
		case i%97 == 0:
			mixed.WriteString(envelope("payments", i, line))
		case i%89 == 0:
			mixed.WriteString(envelope("audit", i, line))
		case i%503 == 0:
			mixed.WriteString(`{"topic":"payments","partition":0,"offset":` + strconv.Itoa(i) + `,"key":null,"payload":null}`)
		case i%101 == 0:
			mixed.WriteString("not json")
		case i%211 == 0:
			mixed.Write(bytes.Replace(line, []byte(`"account_id"`), []byte(`"acct"`), 1))
		case i%223 == 0:
			mixed.Write(bytes.Replace(line, []byte(`"ts"`), []byte(`"at"`), 1))
		case i%307 == 0:
			mixed.WriteString("   \n")
			mixed.Write(line)
		default:
			mixed.Write(line)
		}
		mixed.WriteByte('\n')
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(mixed.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return []Input{
		{Name: "plain.jsonl", R: bytes.NewReader(plain.Bytes())},
		{Name: "mixed.jsonl.gz", R: bytes.NewReader(gz.Bytes())},
	}
}

// envelope wraps an event in a kcat -J envelope of topic.
func envelope(topic string, offset int, event []byte) string {
	return `{"topic":"` + topic + `","partition":0,"offset":` + strconv.Itoa(offset) +
		`,"tstype":"create","ts":1,"key":"k","payload":` + strconv.Quote(string(event)) + `}`
}

// replayInputs returns inputs over the same bytes as in, read from the
// start, so that one table of inputs serves several replays. Inputs without
// a reader (files) are kept as they are.
func replayInputs(t testing.TB, in []Input) []Input {
	t.Helper()
	out := make([]Input, len(in))
	for i, x := range in {
		if x.R == nil {
			out[i] = x
			continue
		}
		r, ok := x.R.(interface {
			io.ReaderAt
			Size() int64
		})
		if !ok {
			t.Fatalf("input %s: %T cannot be read again", x.Name, x.R)
		}
		b := make([]byte, r.Size())
		if _, err := r.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		out[i] = Input{Name: x.Name, R: bytes.NewReader(b)}
	}
	return out
}

// loadFile compiles a ruleset file.
func loadFile(t testing.TB, path string) *rules.Compiled {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := rules.Load(path, src, rules.CompileOptions{})
	if err != nil {
		t.Fatalf("load %s:\n%v", path, err)
	}
	return c
}

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
