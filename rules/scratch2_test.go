package rules

import (
	"fmt"
	"testing"
)

func TestScratch2(t *testing.T) {
	cases := []string{
		`ruleset: t
schema:
  amount: double
  type: string
lists:
  hr: [a, b]
rules:
  - id: a
    when: event.amont > 1.0
  - id: b
    when: "event.type == \"x\" && event.typo"
  - id: c
    when: |
      event.type == "x" &&
        lists.hx.exists(x, x == event.type)
  - id: d
    when: >
      event.type == "x" &&
      event.amount > 'a'
  - id: e
    when: 'event.type == ''x'' && event.nope'
  - id: f
    when: event.type == "x" &&
      event.zap
  - id: g
    when: event.type +
  - id: h
    when: event.amount
`,
		`ruleset: t
rules:
  - id: p
    within: 5m
    pattern:
      - step: a
        where: b.x == 1 && size(a) > 0
      - step: b
        where: a.x == event.x && c.y == 1 && zz.q
        times: 2..
        until: size(b) > 3 && c.x == 1
      - step: c
        not: true
        where: b[0].x == a.x
    alert:
      summary: 'a.x + c.y'
`,
	}
	for i, c := range cases {
		_, err := Load(fmt.Sprintf("c%d.yaml", i), []byte(c), CompileOptions{})
		t.Logf("case %d:\n%v", i, err)
	}
}
