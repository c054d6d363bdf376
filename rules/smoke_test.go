package rules

import (
	"os"
	"testing"
)

type mapVars map[string][]*Event

func (m mapVars) StepEvents(s string) ([]*Event, bool) { v, ok := m[s]; return v, ok }

func TestSmoke(t *testing.T) {
	src, _ := os.ReadFile("testdata/payments.yaml")
	c, err := Load("payments.yaml", src, CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := ParseEvent([]byte(`{"type":"transfer","amount":20000,"country":"KP","account_id":"a1","ts":"2026-01-01T00:00:00Z","ip":"1.2.3.4","success":true}`))
	if err != nil {
		t.Fatal(err)
	}
	ok, err := c.Rules[0].When.EvalBool(ev, nil)
	t.Log(ok, err)
	k, err := c.Key.EvalKey(ev)
	t.Log(k, err)
	ts, err := c.Time.EvalTime(ev)
	t.Log(ts, err)
	f, _ := ParseEvent([]byte(`{"type":"login","success":false,"ip":"9.9.9.9","account_id":"a1"}`))
	ok, err = c.Rules[1].Steps[1].Where.EvalBool(ev, mapVars{"fails": {f, f, f}})
	t.Log(ok, err, c.Rules[1].Steps[1].Where.Steps)
	s, err := c.Rules[1].Summary.EvalString(ev, mapVars{"fails": {f, f, f}, "login": {ev}, "drain": {ev}})
	t.Log(s, err, c.Rules[1].Version)
}

func TestSmokeNoSchema(t *testing.T) {
	src := []byte(`ruleset: x
lists:
  hr: [KP, IR]
rules:
  - id: a
    when: event.type == "login" && !event.success && event.country in lists.hr
  - id: b
    within: 1m
    pattern:
      - step: fails
        where: event.type == "login" && (size(fails) == 0 || fails[0].ip == event.ip)
        times: 2..
      - step: ok
        where: event.type == "login" && event.success && event.amount > 10
    alert:
      summary: '"x " + string(fails.map(e, e.amount).sum())'
`)
	c, err := Load("x.yaml", src, CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ev, _ := ParseEvent([]byte(`{"type":"login","success":false,"country":"KP","ip":"1","amount":5}`))
	ok, err := c.Rules[0].When.EvalBool(ev, nil)
	t.Log(ok, err)
	ok, err = c.Rules[1].Steps[0].Where.EvalBool(ev, mapVars{})
	t.Log(ok, err)
	ok, err = c.Rules[1].Steps[1].Where.EvalBool(ev, mapVars{})
	t.Log(ok, err)
	s, err := c.Rules[1].Summary.EvalString(ev, mapVars{"fails": {ev, ev}, "ok": {ev}})
	t.Log(s, err)
}
