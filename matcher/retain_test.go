package matcher

import (
	"fmt"
	"math"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shrike-cep/shrike/internal/gen"
	"github.com/shrike-cep/shrike/rules"
)

// TestKeptEventsShareNothingWithTheirRecords checks that what partial
// matches keep of an event is a copy: once a record is matched, the
// runtime may reuse its bytes, and later conditions that read the step
// (login.ip), the alert's records and its summary still see the event as
// it was, with its place in the source.
func TestKeptEventsShareNothingWithTheirRecords(t *testing.T) {
	p, c := newPartition(t, `
ruleset: test
rules:
  - id: new-ip
    within: 1m
    pattern:
      - step: login
        where: event.type == "login"
      - step: again
        where: event.type == "login" && event.ip != login.ip && event.n > login.n
    alert:
      summary: '"from " + login.ip + " to " + event.ip'
`, Options{})
	pushEvent := func(raw string, at int64, offset int64) {
		b := []byte(raw)
		event, err := rules.ParseEvent(b)
		if err != nil {
			t.Fatalf("ParseEvent(%s): %v", raw, err)
		}
		p.Push(&Record{Event: event, Key: "k", Time: at * ms, Pos: Position{Source: fmt.Sprintf("file-%d", offset%2), Offset: offset}})
		p.Advance(at*ms + 1)
		// The runtime reuses the buffer once the record is matched.
		for i := range b {
			b[i] = 'x'
		}
	}
	pushEvent(`{"type":"login","ip":"10.0.0.1","n":1}`, 1, 10)
	pushEvent(`{"type":"login","ip":"10.0.0.1","n":2}`, 2, 11)
	pushEvent(`{"type":"login","ip":"10.0.0.9","n":3}`, 3, 12)
	if len(c.alerts) != 2 {
		t.Fatalf("%d alerts, want 2 (both earlier logins, then the new IP): %v", len(c.alerts), c.matches())
	}
	a := c.alerts[0]
	if a.Summary != "from 10.0.0.1 to 10.0.0.9" {
		t.Errorf("summary %q", a.Summary)
	}
	var got []string
	for _, s := range a.Steps {
		for _, r := range s.Records {
			got = append(got, fmt.Sprintf("%s %s@%s:%d t=%d k=%s", s.Step, r.Event.Raw(), r.Pos.Source, r.Pos.Offset, r.Time/ms, r.Key))
		}
	}
	want := []string{
		`login {"type":"login","ip":"10.0.0.1","n":1}@file-0:10 t=1 k=k`,
		`again {"type":"login","ip":"10.0.0.9","n":3}@file-0:12 t=3 k=k`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("alert records:\n%s\nwant:\n%s", got, want)
	}
	if v, ok := a.Steps[0].Records[0].Event.Field("ip"); !ok || fmt.Sprint(v) != "10.0.0.1" {
		t.Errorf("the alert's first record reads ip = %v, %v", v, ok)
	}
}

// TestNoCheckpointsListsNoChanges checks that a partition whose runtime
// never checkpoints keeps no list of changed keys, and that one that does
// lists them.
func TestNoCheckpointsListsNoChanges(t *testing.T) {
	for _, noCheckpoints := range []bool{false, true} {
		p, _ := newPartition(t, abRule, Options{NoCheckpoints: noCheckpoints})
		push(t, p, []ev{{id: 1, key: "k1", t: 1, kind: "a"}, {id: 2, key: "k2", t: 2, kind: "a"}})
		p.Advance(3 * ms)
		changed, _ := p.Changes()
		slices.Sort(changed)
		want := []string{"k1", "k2"}
		if noCheckpoints {
			want = nil
		}
		if !slices.Equal(changed, want) {
			t.Errorf("NoCheckpoints %v: changed keys %q, want %q", noCheckpoints, changed, want)
		}
	}
}

// TestKeptEventsKeepPreloadedNumbers checks that a kept event gives back
// what its parse learned: the numbers Program.Prepare decoded ahead for
// distance_km (stored after the header) and, for an event without any,
// its layout alone.
func TestKeptEventsKeepPreloadedNumbers(t *testing.T) {
	prog := program(t, `
ruleset: test
rules:
  - id: travel
    within: 1h
    pattern:
      - step: here
        where: event.type == "login"
      - step: there
        where: event.type == "login" && distance_km(here.lat, here.lon, event.lat, event.lon) > 500.0
`)
	p, err := NewPartition(prog, &collector{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var layout rules.Layout
	for _, c := range []struct {
		raw         string
		withNumbers bool
	}{{`{"type":"login","lat":48.85,"lon":2.35}`, true}, {`{"type":"logout"}`, false}} {
		raw := c.raw
		var ev rules.Event
		if err := ev.ParseWith([]byte(raw), &layout); err != nil {
			t.Fatal(err)
		}
		r := &Record{Event: &ev, Key: "k", Time: 5, Seq: 7, Pos: Position{Source: "s", Offset: 9}}
		prog.Prepare(r)
		want := ev.Preloaded()
		if hasNumbers := want.HasNumbers(); hasNumbers != c.withNumbers {
			t.Fatalf("%s: HasNumbers() = %v after Prepare", raw, hasNumbers)
		}
		k := p.keep(ev.Raw(), want, r.Time, r.Seq, r.Pos)
		if got := k.pre(); got != want {
			t.Errorf("%s: kept %+v, want %+v", raw, got, want)
		}
		if string(k.raw()) != raw || k.time != 5 || k.seq != 7 || p.position(k) != r.Pos {
			t.Errorf("%s: kept %s at %d/%d %+v", raw, k.raw(), k.time, k.seq, p.position(k))
		}
	}
}

// TestCompactBufferedRecordsMatchAsTheOriginals replays the shipped
// rulesets' streams, with disorder, through a Partition whose reorder
// buffer keeps every waiting record as a compact copy and one that keeps
// none: the alerts and counters are the same, and the originals handed
// back to the runtime (whose bytes are overwritten then, as a runtime
// reusing them would) are never read again.
func TestCompactBufferedRecordsMatchAsTheOriginals(t *testing.T) {
	for _, c := range []struct {
		stream    string
		keys      int
		fraudRate float64
	}{{"payments", 40, 0.02}, {"account_security", 40, 0}, {"itops", 0, 0}} {
		stream := c.stream
		src, err := os.ReadFile("../rulesets/" + stream + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		rs, err := rules.Load(stream+".yaml", src, rules.CompileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		prog, err := NewProgram([]*rules.Compiled{rs})
		if err != nil {
			t.Fatal(err)
		}
		g, err := gen.New(gen.Options{Stream: stream, Seed: 9, Events: 5000, Keys: c.keys, OutOfOrder: 0.2, MaxLateness: time.Second, FraudRate: c.fraudRate})
		if err != nil {
			t.Fatal(err)
		}
		var lines [][]byte
		for {
			raw, ok := g.Next()
			if !ok {
				break
			}
			lines = append(lines, append([]byte(nil), raw...))
		}
		var outs [2]*collector
		var stats [2]Stats
		recycled := 0
		for i, compact := range []bool{false, true} {
			outs[i] = &collector{}
			opts := Options{MaxOutOfOrderness: rs.Stream.MaxOutOfOrderness, Clock: func() time.Time { return time.Unix(0, 0) }}
			if compact {
				opts.Recycle = func(r *Record) {
					recycled++
					raw := r.Event.Raw()
					for j := range raw {
						raw[j] = '#'
					}
				}
			}
			p, err := NewPartition(prog, outs[i], opts)
			if err != nil {
				t.Fatal(err)
			}
			if compact {
				p.compactAfter = 0
			}
			for n, line := range lines {
				ev, err := rules.ParseEvent(append([]byte(nil), line...))
				if err != nil {
					t.Fatal(err)
				}
				key, err := rs.Key.EvalKey(ev)
				if err != nil {
					continue
				}
				ts, err := rs.Time.EvalTime(ev)
				if err != nil {
					t.Fatal(err)
				}
				r := &Record{Event: ev, Key: key, Time: ts, Pos: Position{Source: stream, Offset: int64(n)}}
				prog.Prepare(r)
				p.Push(r)
			}
			p.Advance(math.MaxInt64)
			stats[i] = p.Stats()
		}
		if recycled == 0 {
			t.Errorf("%s: no record was handed back", stream)
		}
		if stats[0].Alerts+stats[0].Timeouts == 0 {
			t.Errorf("%s: no partial match ended: nothing to compare", stream)
		}
		if d := cmp.Diff(outs[0].matches(), outs[1].matches()); d != "" {
			t.Errorf("%s: alerts (-original +compact):\n%s", stream, d)
		}
		for i := range outs[0].alerts {
			if i < len(outs[1].alerts) && (outs[0].alerts[i].ID != outs[1].alerts[i].ID || outs[0].alerts[i].Summary != outs[1].alerts[i].Summary) {
				t.Errorf("%s: alert %d: id %s / %s, summary %q / %q", stream, i, outs[0].alerts[i].ID, outs[1].alerts[i].ID, outs[0].alerts[i].Summary, outs[1].alerts[i].Summary)
			}
		}
		if d := cmp.Diff(stats[0], stats[1], cmp.AllowUnexported(RuleStats{})); d != "" {
			t.Errorf("%s: counters (-original +compact):\n%s", stream, d)
		}
	}
}
