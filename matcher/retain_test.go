package matcher

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"testing"
	"unsafe"

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

// TestRecycleSparesRecordsAlertsPointInto checks that a record is handed
// to Options.Recycle once matched, and not when an alert emitted while it
// was matched may point into it (the alert's key is the record's, read
// from its bytes): the runtime overwrites what it recycles.
func TestRecycleSparesRecordsAlertsPointInto(t *testing.T) {
	recycled := map[int64]bool{}
	p, c := newPartition(t, abRule, Options{Recycle: func(r *Record) {
		recycled[r.Pos.Offset] = true
		raw := r.Event.Raw()
		for i := range raw {
			raw[i] = '#'
		}
	}})
	for i, kind := range []string{"a", "x", "b"} {
		raw := []byte(fmt.Sprintf(`{"id":%d,"type":%q,"user":"user-%d"}`, i+1, kind, 7))
		ev, err := rules.ParseEvent(raw)
		if err != nil {
			t.Fatal(err)
		}
		key := unsafeKeyInto(raw, "user-7")
		p.Push(&Record{Event: ev, Key: key, Time: int64(i+1) * ms, Pos: Position{Source: "test", Offset: int64(i + 1)}})
	}
	p.Advance(100 * ms)
	if len(c.alerts) != 1 || c.alerts[0].Key != "user-7" {
		t.Fatalf("alerts %v, want one for key user-7", c.matches())
	}
	want := map[int64]bool{1: true, 2: true} // the b's matching emitted the alert
	if !maps.Equal(recycled, want) {
		t.Errorf("recycled records %v, want %v", recycled, want)
	}
}

// unsafeKeyInto returns key as a string sharing raw's bytes, as a key
// read from an event is.
func unsafeKeyInto(raw []byte, key string) string {
	i := bytes.Index(raw, []byte(key))
	return unsafe.String(&raw[i], len(key))
}
