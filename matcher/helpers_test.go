package matcher

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shrike-cep/shrike/rules"
)

// collector is an Output that records what a Partition produces.
type collector struct {
	alerts []*Alert
	late   []*Record
}

func (c *collector) Alert(a *Alert) { c.alerts = append(c.alerts, a) }
func (c *collector) Late(r *Record) { c.late = append(c.late, r) }

// matches describes the alerts collected, in order.
func (c *collector) matches() []string {
	var out []string
	for _, a := range c.alerts {
		out = append(out, describe(a))
	}
	return out
}

// describe renders an alert as "rule key step=[ids] …" using the events' id
// field, with a "timeout" suffix for timed-out partial matches.
func describe(a *Alert) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", a.Rule, a.Key)
	for _, s := range a.Steps {
		var ids []string
		for _, r := range s.Records {
			ids = append(ids, string(r.Event.Raw()[len(`{"id":`):strings.IndexByte(string(r.Event.Raw()), ',')]))
		}
		fmt.Fprintf(&b, " %s=[%s]", s.Step, strings.Join(ids, ","))
	}
	if a.Timeout {
		b.WriteString(" timeout")
	}
	return b.String()
}

// ms is a millisecond in the matcher's time unit, nanoseconds.
const ms = int64(time.Millisecond)

// ev is a test event: push gives it the JSON {"id":id,"type":kind}, key
// k when key is empty, and time t milliseconds.
type ev struct {
	id   int
	key  string
	t    int64 // ms
	kind string
}

// newPartition runs the ruleset yaml in a Partition whose wall clock stands
// at the epoch, collecting its output.
func newPartition(t *testing.T, yaml string, opts Options) (*Partition, *collector) {
	t.Helper()
	prog := program(t, yaml)
	c := &collector{}
	opts.Clock = func() time.Time { return time.Unix(0, 0) }
	p, err := NewPartition(prog, c, opts)
	if err != nil {
		t.Fatalf("NewPartition: %v", err)
	}
	return p, c
}

// push pushes events to p in the order given.
func push(t *testing.T, p *Partition, events []ev) {
	t.Helper()
	for _, e := range events {
		raw := fmt.Sprintf(`{"id":%d,"type":%q}`, e.id, e.kind)
		event, err := rules.ParseEvent([]byte(raw))
		if err != nil {
			t.Fatalf("ParseEvent(%s): %v", raw, err)
		}
		key := e.key
		if key == "" {
			key = "k"
		}
		p.Push(&Record{Event: event, Key: key, Time: e.t * ms, Pos: Position{Source: "test", Offset: int64(e.id)}})
	}
}

// abRule matches an a followed by a b of the same key within 10 ms.
const abRule = `
ruleset: test
rules:
  - id: ab
    within: 10ms
    pattern:
      - step: a
        where: event.type == "a"
      - step: b
        where: event.type == "b"
`

// program compiles the ruleset yaml into a Program.
func program(t *testing.T, yaml string) *Program {
	t.Helper()
	rs, err := rules.Load("test.yaml", []byte(yaml), rules.CompileOptions{})
	if err != nil {
		t.Fatalf("load ruleset: %v", err)
	}
	prog, err := NewProgram([]*rules.Compiled{rs})
	if err != nil {
		t.Fatalf("NewProgram: %v", err)
	}
	return prog
}
