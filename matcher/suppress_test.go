package matcher

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shrike-cep/shrike/rules"
)

// sev is an event of the suppression tests: JSON
// {"id":id,"type":kind,"c":c}, at t ms.
type sev struct {
	id   int
	key  string
	t    int64
	kind string
	c    string
}

func pushS(t *testing.T, p *Partition, events ...sev) {
	t.Helper()
	for _, e := range events {
		raw := fmt.Sprintf(`{"id":%d,"type":%q,"c":%q}`, e.id, e.kind, e.c)
		event, err := rules.ParseEvent([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		key := e.key
		if key == "" {
			key = "k"
		}
		p.Push(&Record{Event: event, Key: key, Time: e.t * ms, Pos: Position{Source: "test", Offset: int64(e.id)}})
	}
}

const suppressWhen = `
ruleset: test
rules:
  - id: s
    when: event.type == "s"
    alert:
      suppress: {for: 10ms}
`

func TestSuppressWhenRule(t *testing.T) {
	p, c := newPartition(t, suppressWhen, Options{})
	pushS(t, p,
		sev{1, "", 0, "s", ""},  // alerts; suppresses until 10
		sev{2, "", 5, "s", ""},  // suppressed
		sev{3, "o", 6, "s", ""}, // another key
		sev{4, "", 9, "s", ""},  // suppressed
		sev{5, "", 10, "s", ""}, // for has passed: alerts, until 20
		sev{6, "", 12, "s", ""}, // suppressed
		sev{7, "", 13, "x", ""},
	)
	p.Advance(math.MaxInt64)
	want := []string{"s k event=[1]", "s o event=[3]", "s k event=[5]"}
	if diff := cmp.Diff(want, c.matches()); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
	st := p.Stats()
	if st.Suppressed != 3 || st.Alerts != 3 {
		t.Errorf("stats: %d alerts, %d suppressed; want 3 and 3", st.Alerts, st.Suppressed)
	}
	if rs := st.ByRule[RuleID{Ruleset: "test", Rule: "s"}]; rs.Suppressed != 3 || rs.Alerts != 3 {
		t.Errorf("rule stats %+v, want 3 alerts and 3 suppressed", rs)
	}
}

func TestSuppressBy(t *testing.T) {
	p, c := newPartition(t, `
ruleset: test
rules:
  - id: s
    when: event.type == "s"
    alert:
      suppress:
        for: 10ms
        by: [event.c, 'event.type + "!"']
`, Options{})
	pushS(t, p,
		sev{1, "", 0, "s", "x"},
		sev{2, "", 1, "s", "y"}, // another by value
		sev{3, "", 2, "s", "x"}, // suppressed
		sev{4, "", 3, "s", "y"}, // suppressed
		sev{5, "", 4, "s", "z"},
	)
	p.Advance(math.MaxInt64)
	want := []string{"s k event=[1]", "s k event=[2]", "s k event=[5]"}
	if diff := cmp.Diff(want, c.matches()); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
	if st := p.Stats(); st.Suppressed != 2 {
		t.Errorf("%d suppressed, want 2", st.Suppressed)
	}
}

// TestSuppressByError: a by expression that fails counts a CEL error, and
// the alert is neither suppressed nor suppresses.
func TestSuppressByError(t *testing.T) {
	p, c := newPartition(t, `
ruleset: test
rules:
  - id: s
    when: event.type == "s"
    alert:
      suppress:
        for: 10ms
        by: [event.missing]
`, Options{})
	pushS(t, p, sev{1, "", 0, "s", ""}, sev{2, "", 1, "s", ""})
	p.Advance(math.MaxInt64)
	if got := len(c.alerts); got != 2 {
		t.Errorf("%d alerts, want 2", got)
	}
	rs := p.Stats().ByRule[RuleID{Ruleset: "test", Rule: "s"}]
	if rs.CELErrors != 2 || rs.Suppressed != 0 {
		t.Errorf("rule stats %+v, want 2 CEL errors and none suppressed", rs)
	}
	if p.Stats().Keys != 0 {
		t.Errorf("%d keys hold state, want 0", p.Stats().Keys)
	}
}

const suppressPattern = `
ruleset: test
rules:
  - id: ab
    within: 10ms
    pattern:
      - step: a
        where: event.type == "a"
      - step: b
        where: event.type == "b"
    alert:
      on_timeout: true
      suppress:
        for: 50ms
        by: [a.c]
`

// TestSuppressPattern suppresses matches and timeout alerts: a timeout
// alert's time is when its window closed.
func TestSuppressPattern(t *testing.T) {
	p, c := newPartition(t, suppressPattern, Options{})
	pushS(t, p,
		sev{1, "", 0, "a", "x"},
		sev{2, "", 1, "b", ""}, // match at 1: suppresses c=x until 51
		sev{3, "", 2, "a", "x"},
		// a:3 times out at 12: suppressed
		sev{4, "", 20, "a", "y"}, // times out at 30: another by value
		sev{5, "", 45, "a", "x"}, // times out at 55: past 51
		sev{6, "", 60, "a", "x"},
		sev{7, "", 61, "b", ""}, // match at 61 < 105: suppressed
	)
	p.Advance(math.MaxInt64)
	want := []string{"ab k a=[1] b=[2]", "ab k a=[4] timeout", "ab k a=[5] timeout"}
	if diff := cmp.Diff(want, c.matches()); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
	if st := p.Stats(); st.Suppressed != 2 {
		t.Errorf("%d suppressed, want 2", st.Suppressed)
	}
}

// TestSuppressExpires: a key whose only state is suppression entries has a
// deadline at their expiry, and leaves the table once the watermark
// passes it.
func TestSuppressExpires(t *testing.T) {
	for _, yaml := range []string{suppressWhen, suppressPattern} {
		p, _ := newPartition(t, yaml, Options{})
		kind := "s"
		if yaml == suppressPattern {
			pushS(t, p, sev{1, "", 0, "a", "x"})
			kind = "b"
		}
		pushS(t, p, sev{2, "", 1, kind, "x"})
		p.Advance(2 * ms)
		if !p.Resident("k") {
			t.Fatal("the key holds no state after its alert")
		}
		until := int64(11)
		if yaml == suppressPattern {
			until = 51
		}
		if d, ok := p.KeyDeadline("k"); !ok || d != until*ms {
			t.Errorf("KeyDeadline = %d, %t; want %d", d, ok, until*ms)
		}
		changed, _ := p.Changes()
		if !slices.Equal(changed, []string{"k"}) {
			t.Errorf("changed keys %q, want k", changed)
		}
		p.Advance(until * ms)
		if !p.Resident("k") {
			t.Error("the key left the table before its suppression expired")
		}
		p.Advance(until*ms + 1)
		if p.Resident("k") || p.Stats().Keys != 0 {
			t.Error("the key holds state after its suppression expired")
		}
		if _, emptied := p.Changes(); !slices.Equal(emptied, []string{"k"}) {
			t.Errorf("emptied keys %q, want k", emptied)
		}
	}
}

// TestSuppressHeldOlder: an entry outlives its expiry while an open
// partial match may still give an alert from before it (a held match of
// a skip strategy, released later).
func TestSuppressHeldOlder(t *testing.T) {
	p, c := newPartition(t, `
ruleset: test
rules:
  - id: ab
    within: 100ms
    skip: to_next
    pattern:
      - step: a
        where: event.type == "a"
      - step: b
        where: event.type == "b" && event.c == a.c
    alert:
      suppress: {for: 5ms}
`, Options{})
	pushS(t, p,
		sev{1, "", 0, "a", "x"},
		sev{2, "", 1, "a", "y"},
		sev{3, "", 2, "b", "y"}, // completes a:2, held behind a:1
		sev{4, "", 3, "b", "x"}, // a:1 b:4 at 3, then the held one at 2: suppressed
	)
	p.Advance(math.MaxInt64)
	want := []string{"ab k a=[1] b=[4]"}
	if diff := cmp.Diff(want, c.matches()); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
	if st := p.Stats(); st.Suppressed != 1 {
		t.Errorf("%d suppressed, want 1", st.Suppressed)
	}
}

// TestSuppressSnapshot: the entries survive AppendKeyState, Evict and
// RestoreKey, in a Partition of their own too.
func TestSuppressSnapshot(t *testing.T) {
	for _, evict := range []bool{true, false} {
		p, c := newPartition(t, suppressWhen, Options{})
		pushS(t, p, sev{1, "", 0, "s", ""}, sev{2, "", 1, "x", ""})
		p.Advance(2 * ms)
		st, ok := p.AppendKeyState(nil, "k")
		if !ok {
			t.Fatal("no state after an alert")
		}
		q := p
		if evict {
			p.Evict("k")
			if p.Resident("k") {
				t.Fatal("evicted key resident")
			}
		} else {
			q, c = newPartition(t, suppressWhen, Options{})
			if err := q.Restore(p.Checkpoint()); err != nil {
				t.Fatal(err)
			}
		}
		if err := q.RestoreKey("k", st); err != nil {
			t.Fatal(err)
		}
		if d, ok := q.KeyDeadline("k"); !ok || d != 10*ms {
			t.Errorf("restored KeyDeadline = %d, %t; want %d", d, ok, 10*ms)
		}
		pushS(t, q, sev{3, "", 5, "s", ""}, sev{4, "", 10, "s", ""})
		q.Advance(math.MaxInt64)
		got := c.matches()
		if evict {
			got = got[1:]
		}
		if diff := cmp.Diff([]string{"s k event=[4]"}, got); diff != "" {
			t.Errorf("evict %t: alerts after the restore (-want +got):\n%s", evict, diff)
		}
	}
}

// TestSuppressTrace: explain shows a suppressed alert, until when and the
// alert that started the suppression.
func TestSuppressTrace(t *testing.T) {
	var events []*TraceEvent
	tr := NewTracer("k", func(e *TraceEvent) { events = append(events, e) })
	p, c := newPartition(t, suppressPattern, Options{Tracer: tr})
	pushS(t, p, sev{1, "", 0, "a", "x"}, sev{2, "", 1, "b", ""}, sev{3, "", 2, "a", "x"}, sev{4, "", 3, "b", ""})
	p.Advance(math.MaxInt64)
	if len(c.alerts) != 1 {
		t.Fatalf("%d alerts, want 1", len(c.alerts))
	}
	var sup []*TraceEvent
	for _, e := range events {
		if e.Kind == TraceSuppressed {
			sup = append(sup, e)
		}
	}
	if len(sup) != 1 {
		t.Fatalf("%d suppressed trace events, want 1", len(sup))
	}
	e := sup[0]
	if e.Until != 51*ms || e.SuppressedBy != c.alerts[0].ID || e.Rule.Rule != "ab" || e.Record == nil || len(e.Taken) != 2 {
		t.Errorf("trace event: until %d by %q rule %v record %v taken %v; want until %d by %q", e.Until, e.SuppressedBy, e.Rule, e.Record, e.Taken, 51*ms, c.alerts[0].ID)
	}
}

// TestSuppressNotGrouped: rules with suppression keep their own state.
func TestSuppressNotGrouped(t *testing.T) {
	var b strings.Builder
	b.WriteString("ruleset: test\nrules:\n")
	for i, sup := range []string{"", "", "\n    alert: {suppress: {for: 1s}}", "\n    alert: {suppress: {for: 1s}}"} {
		fmt.Fprintf(&b, "  - id: r%d\n    within: 1s\n    pattern:\n      - step: a\n        where: event.type == \"a%d\"\n      - step: b\n        where: event.type == \"b\"%s\n", i, i, sup)
	}
	prog := program(t, b.String())
	for _, pr := range prog.rules {
		grouped := pr.group != nil
		if want := pr.rule.Alert.Suppress == nil; grouped != want {
			t.Errorf("%s grouped %t, want %t", pr.name, grouped, want)
		}
	}
}

// TestSuppressReload: the entries of a rule whose version is unchanged
// carry over SetProgram; a changed suppression is a new version.
func TestSuppressReload(t *testing.T) {
	p, c := newPartition(t, suppressWhen, Options{})
	pushS(t, p, sev{1, "", 0, "s", ""})
	p.Advance(1 * ms)
	p.SetProgram(program(t, suppressWhen))
	pushS(t, p, sev{2, "", 5, "s", ""})
	p.Advance(6 * ms)
	p.SetProgram(program(t, strings.Replace(suppressWhen, "10ms", "20ms", 1)))
	pushS(t, p, sev{3, "", 6, "s", ""}, sev{4, "", 7, "s", ""})
	p.Advance(math.MaxInt64)
	want := []string{"s k event=[1]", "s k event=[3]"}
	if diff := cmp.Diff(want, c.matches()); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
}

// TestSuppressBatching: the alerts do not depend on how the watermark
// moved (entries dropped early or late).
func TestSuppressBatching(t *testing.T) {
	events := []sev{
		{1, "", 0, "a", "x"},
		{2, "", 1, "b", ""},
		{3, "", 2, "a", "x"},
		{4, "", 20, "a", "y"},
		{5, "", 45, "a", "x"},
		{6, "", 60, "a", "x"},
		{7, "", 61, "b", ""},
		{8, "", 200, "a", "x"},
		{9, "", 201, "b", ""},
	}
	var ref []string
	for _, step := range []int64{0, 1, 7, 50} {
		p, c := newPartition(t, suppressPattern, Options{})
		for _, e := range events {
			pushS(t, p, e)
			if step > 0 {
				for w := e.t - 50; w <= e.t; w += step {
					p.Advance(w * ms)
				}
			}
		}
		p.Advance(math.MaxInt64)
		if ref == nil {
			ref = c.matches()
			continue
		}
		if diff := cmp.Diff(ref, c.matches()); diff != "" {
			t.Errorf("advancing every %d ms (-unbatched +got):\n%s", step, diff)
		}
	}
}

// TestSuppressRestoreErrors: a corrupt suppression section is refused with
// an error wrapping ErrSnapshot that says what and where.
func TestSuppressRestoreErrors(t *testing.T) {
	p, _ := newPartition(t, suppressWhen, Options{})
	pushS(t, p, sev{1, "", 0, "s", ""})
	p.Advance(1 * ms)
	good, ok := p.AppendKeyState(nil, "k")
	if !ok {
		t.Fatal("no state after an alert")
	}
	// version, exponent, 0 sources, 0 records, 0 nodes, 1 rule, its ref,
	// flags (extra sections), 1 section, kind 1, length, entries.
	if len(good) < 18 || good[0] != snapshotVersion || good[5] != 1 || good[14] != 2 || good[15] != 1 || good[16] != sectionSuppression {
		t.Fatalf("unexpected layout % x", good)
	}
	with := func(at int, b byte) []byte {
		c := slices.Clone(good)
		c[at] = b
		return c
	}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"unknown kind", with(16, 9), "version 3: extra section 1 of 1 at byte 18: unknown kind 9"},
		{"short length", with(17, good[17]-1), fmt.Sprintf("version 3: extra section 1 of 1 at byte %d: %d bytes long, %d read", len(good), good[17]-1, good[17])},
		{"runs of a single-event rule", with(14, 1<<2|2), "version 3: rule 1 of 1 at byte 15: 1 runs of single-event rule test/s"},
		{"cut entry", good[:len(good)-1], "version 3: extra section 1 of 1 at byte 18: length 10, 9 bytes left"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, _ := newPartition(t, suppressWhen, Options{})
			err := q.RestoreKey("k", tt.in)
			if !errors.Is(err, ErrSnapshot) {
				t.Fatalf("RestoreKey = %v, want an error wrapping ErrSnapshot", err)
			}
			if want := `restore key "k": bad key state: ` + tt.want; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error\n%v\nwant it to start with\n%s", err, want)
			}
		})
	}
	q, _ := newPartition(t, suppressWhen, Options{})
	if err := q.RestoreKey("k", good); err != nil {
		t.Fatal(err)
	}
}
