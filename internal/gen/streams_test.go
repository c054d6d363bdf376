package gen

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Recordings are the options of the example recordings shipped as
// rulesets/testdata/STREAM.jsonl: small, with every scenario of the stream
// and a few out-of-order events (within the rulesets' max_out_of_orderness,
// so none is late).
var Recordings = map[string]Options{
	StreamPayments: {
		Stream:      StreamPayments,
		Seed:        2026,
		Events:      2000,
		Keys:        200,
		Rate:        1,
		OutOfOrder:  0.05,
		MaxLateness: 1500 * time.Millisecond,
		FraudRate:   0.012,
	},
	StreamAccountSecurity: {
		Stream:      StreamAccountSecurity,
		Seed:        2026,
		Events:      2000,
		Keys:        200,
		Rate:        1,
		OutOfOrder:  0.05,
		MaxLateness: 1500 * time.Millisecond,
		FraudRate:   0.012,
	},
	StreamITOps: {
		Stream:      StreamITOps,
		Seed:        2026,
		Duration:    16 * time.Minute,
		Keys:        4,
		Rate:        1.5,
		OutOfOrder:  0.02,
		MaxLateness: 3 * time.Second,
	},
}

// TestRecordings keeps the shipped example recordings identical to what the
// generator produces, and checks that each holds every scenario of its
// stream; run with -update after changing either.
func TestRecordings(t *testing.T) {
	for _, stream := range Streams() {
		t.Run(stream, func(t *testing.T) {
			path := filepath.Join("..", "..", "rulesets", "testdata", stream+".jsonl")
			g, err := New(Recordings[stream])
			if err != nil {
				t.Fatal(err)
			}
			var want bytes.Buffer
			if _, err := g.WriteTo(&want); err != nil {
				t.Fatal(err)
			}
			if *update {
				if err := os.WriteFile(path, want.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/gen -run TestRecordings -update)", err)
			}
			if !bytes.Equal(want.Bytes(), got) {
				t.Fatalf("%s differs from the generator's output; run go test ./internal/gen -run TestRecordings -update", path)
			}
			for _, name := range Scenarios(stream) {
				if g.Injected()[name] == 0 {
					t.Errorf("the recording has no %s instance", name)
				}
			}
		})
	}
}

// common are the fields every stream's events have.
type common struct {
	Type     string `json:"type"`
	TS       string `json:"ts"`
	Scenario string `json:"scenario"`
}

// scanCommon decodes the common fields of every line and checks that
// lines are JSON objects with a valid ts.
func scanCommon(t *testing.T, data []byte, fn func(line int, e common, ts time.Time)) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		var e common
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %d %s: %v", line, sc.Bytes(), err)
		}
		ts, err := time.Parse(TimeLayout, e.TS)
		if err != nil {
			t.Fatalf("line %d: ts: %v", line, err)
		}
		fn(line, e, ts)
	}
}

func TestStreamsDeterministic(t *testing.T) {
	for _, stream := range Streams() {
		t.Run(stream, func(t *testing.T) {
			opts := Options{Stream: stream, Seed: 7, Duration: 20 * time.Minute, OutOfOrder: 0.05, MaxLateness: time.Second}
			if stream != StreamITOps {
				opts.Keys, opts.Rate, opts.FraudRate = 300, 5, 0.01
			}
			a := generate(t, opts)
			b := generate(t, opts)
			if !bytes.Equal(a, b) {
				t.Fatalf("same options gave different output (%d vs %d bytes)", len(a), len(b))
			}
			opts.Seed = 8
			if c := generate(t, opts); bytes.Equal(a, c) {
				t.Fatal("seeds 7 and 8 gave the same output")
			}
		})
	}
}

// TestDuration checks that Duration bounds event time from Start and that
// the stream fills it: the traffic runs at Rate to the end.
func TestDuration(t *testing.T) {
	start := time.Date(2027, 3, 1, 8, 30, 0, 0, time.UTC)
	for _, stream := range Streams() {
		t.Run(stream, func(t *testing.T) {
			opts := Options{Stream: stream, Seed: 3, Start: start, Duration: 10 * time.Minute, Rate: 10}
			data := generate(t, opts)
			var first, last time.Time
			n := 0
			scanCommon(t, data, func(line int, e common, ts time.Time) {
				if n == 0 {
					first = ts
				}
				n++
				last = ts
				if ts.Before(start) || !ts.Before(start.Add(opts.Duration)) {
					t.Fatalf("line %d: ts %v outside [%v, %v)", line, ts, start, start.Add(opts.Duration))
				}
			})
			if first.Sub(start) > time.Second {
				t.Errorf("first event at %v, want at the start %v", first, start)
			}
			if start.Add(opts.Duration).Sub(last) > 10*time.Second {
				t.Errorf("last event at %v, want close to the end %v", last, start.Add(opts.Duration))
			}
			if want := 6000; n < want*95/100 || n > want*105/100 {
				t.Errorf("%d events, want about %d (10 events/s for 10 minutes)", n, want)
			}
		})
	}
}

// TestEventsCap checks that Events caps every stream exactly, and that
// Written and Options report it.
func TestEventsCap(t *testing.T) {
	for _, stream := range Streams() {
		t.Run(stream, func(t *testing.T) {
			g, err := New(Options{Stream: stream, Seed: 4, Events: 3000})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := g.WriteTo(new(bytes.Buffer)); err != nil {
				t.Fatal(err)
			}
			if g.Written() != 3000 {
				t.Errorf("Written() = %d, want 3000", g.Written())
			}
			if o := g.Options(); o.Stream != stream || o.Keys == 0 || o.Rate == 0 {
				t.Errorf("Options() = %+v, want the stream with its defaults filled in", o)
			}
		})
	}
}

// TestNoInjection checks that a negative FraudRate turns every stream's
// injection off.
func TestNoInjection(t *testing.T) {
	for _, stream := range Streams() {
		t.Run(stream, func(t *testing.T) {
			opts := Options{Stream: stream, Seed: 5, Duration: 15 * time.Minute, Rate: 10, FraudRate: -1}
			scanCommon(t, generate(t, opts), func(line int, e common, _ time.Time) {
				if e.Scenario != "" {
					t.Fatalf("line %d: scenario %q with injection off", line, e.Scenario)
				}
			})
		})
	}
}
