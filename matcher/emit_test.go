package matcher

import (
	"fmt"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// reuseRules has an alert of every shape: a single-event rule with
// labels, a sequence whose steps take several events, with a summary
// expression, timeout alerts with the description's summary, and an
// absence rule whose matches complete when their window closes.
const reuseRules = `
ruleset: test
rules:
  - id: single
    when: event.type == "s"
    alert:
      labels: {team: t, zone: "z<1>"}
  - id: many
    within: 10ms
    description: Two or more a then a b.
    pattern:
      - step: a
        where: event.type == "a"
        times: 2..
      - step: b
        where: event.type == "b"
    alert:
      summary: '"saw " + b.type'
      on_timeout: true
  - id: absent
    within: 10ms
    pattern:
      - step: a
        where: event.type == "a"
      - step: no_b
        not: true
        where: event.type == "b"
`

// reuseEvents gives several keys alerts of every rule of reuseRules, some
// at once when the input ends.
func reuseEvents() []ev {
	var events []ev
	id := 0
	for round := range 3 {
		base := int64(round) * 100
		for k := range 4 {
			key := fmt.Sprintf("key-%d", k)
			for j, kind := range []string{"a", "s", "a", "a", "b", "s", "a"} {
				if k%2 == 1 && kind == "b" {
					continue
				}
				id++
				events = append(events, ev{id, key, base + int64(j+k), kind})
			}
		}
	}
	return events
}

// jsonCollector keeps the JSON of every alert and, to show what reuse
// does to them, the alerts themselves.
type jsonCollector struct {
	json   []string
	alerts []*Alert
}

func (c *jsonCollector) Alert(a *Alert) {
	c.json = append(c.json, string(a.AppendJSON(nil)))
	c.alerts = append(c.alerts, a)
}
func (c *jsonCollector) Late(*Record) {}

// TestReuseAlerts runs the same events with and without ReuseAlerts: the
// alerts written out as they come are the same, and a reused alert kept
// past its Alert call reads as poisoned (PoisonReusedAlerts), which is what
// lets the replay tests catch an Output that keeps one.
func TestReuseAlerts(t *testing.T) {
	run := func(opts Options) *jsonCollector {
		c := &jsonCollector{}
		opts.Clock = func() time.Time { return time.Unix(0, 0) }
		p, err := NewPartition(program(t, reuseRules), c, opts)
		if err != nil {
			t.Fatal(err)
		}
		push(t, p, reuseEvents())
		p.Advance(math.MaxInt64)
		return c
	}
	kept := run(Options{})
	reused := run(Options{ReuseAlerts: true, PoisonReusedAlerts: true})
	if len(kept.json) < 20 {
		t.Fatalf("only %d alerts: the events should give more", len(kept.json))
	}
	if diff := cmp.Diff(kept.json, reused.json); diff != "" {
		t.Errorf("alerts with ReuseAlerts (-without +with):\n%s", diff)
	}
	for i, a := range kept.alerts {
		if got := string(a.AppendJSON(nil)); got != kept.json[i] {
			t.Errorf("alert %d kept without ReuseAlerts changed:\n%s\nwas\n%s", i, got, kept.json[i])
		}
	}
	for i, a := range reused.alerts {
		if a.ID == kept.alerts[i].ID || a.Key != "#" || len(a.Steps) != 0 {
			t.Errorf("alert %d kept past its Alert call with ReuseAlerts is not poisoned: id %q key %q, %d steps", i, a.ID, a.Key, len(a.Steps))
		}
	}
}

// TestReusedAlertsAllocateNothing pins what ReuseAlerts is for: once the
// partition's alert memory has grown to the largest alert, closing windows
// that complete absence matches allocates nothing per alert.
func TestReusedAlertsAllocateNothing(t *testing.T) {
	const keys = 2000
	var events []ev
	for k := range keys {
		at := int64(20) // the first keys' windows close before the others'
		if k < 100 {
			at = 0
		}
		events = append(events, ev{k + 1, fmt.Sprintf("key-%d", k), at, "a"})
	}
	alerts := 0
	p, err := NewPartition(program(t, absenceRule), countingOutput{&alerts}, Options{ReuseAlerts: true, NoCheckpoints: true, Clock: func() time.Time { return time.Unix(0, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	push(t, p, events)
	p.Advance(21 * ms) // every record is matched, the first keys' windows close
	early := alerts
	if early == 0 || early > keys/2 {
		t.Fatalf("%d alerts before the end, want some, and fewer than half", early)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	p.Advance(math.MaxInt64)
	runtime.ReadMemStats(&after)
	allocs := after.Mallocs - before.Mallocs
	if alerts != keys {
		t.Errorf("%d alerts, want %d", alerts, keys)
	}
	// The count is the process's: a stray allocation of the runtime or
	// the test framework may fall in it, one per alert may not.
	if late := uint64(keys - early); allocs > late/100 {
		t.Errorf("closing the last %d absence matches allocated %d times, want none", late, allocs)
	}
}

// absenceRule is reuseRules' absence rule alone.
const absenceRule = `
ruleset: test
rules:
  - id: absent
    within: 10ms
    pattern:
      - step: a
        where: event.type == "a"
      - step: no_b
        not: true
        where: event.type == "b"
`

// countingOutput counts alerts and keeps none.
type countingOutput struct{ n *int }

func (c countingOutput) Alert(*Alert) { *c.n++ }
func (c countingOutput) Late(*Record) {}
