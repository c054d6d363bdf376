package rules

import (
	"fmt"
	"testing"
)

func TestScratch(t *testing.T) {
	cases := []string{
		`ruleset: t
rules:
  - id: a
    when: event.x == 1
  - id: a
    when: event.y
  - when: true
  - id: b
  - id: c
    when: "true"
    pattern:
      - step: x
`,
		`ruleset: t
bogus: 1
stream:
  topic: x
  tme: event.ts
  max_out_of_orderness: -5s
  idle_timeout: 5x
rules:
  - id: a
    severity: urgent
    enabled: yes
    when: event.x == 1
    within: 5m
    skip: past_last_event
    alert:
      on_timeout: true
      labels: {a: 1, b: x}
`,
		`ruleset: t
rules:
  - id: p
    pattern:
      - step: not
        not: true
      - step: 1x
        where: 'event.a == 1'
      - step: b
        times: 3..2
        greedy: true
      - step: b
        times: 0
      - step: event
        until: "true"
        contiguity: sideways
    skip: {to_first: zz}
`,
		`ruleset: t
rules:
  - id: n
    pattern:
      - step: a
        contiguity: strict
        optional: true
      - step: b
        not: true
        times: 2
      - step: c
        not: true
      - step: d
        within: 20m
        greedy: true
        loop: strict
      - step: e
        not: true
        contiguity: relaxed
`,
	}
	for i, c := range cases {
		_, err := Load(fmt.Sprintf("c%d.yaml", i), []byte(c), CompileOptions{})
		t.Logf("case %d:\n%v", i, err)
	}
}
