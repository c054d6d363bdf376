package rules

import (
	"strings"
	"testing"
)

const groupRules = `ruleset: t
rules:
  - id: probe
    within: 10m
    pattern:
      - step: start
        where: event.type == "login"
      - group: probe
        times: 3..
        loop: strict
        until: event.type == "logout" && size(small) > 0
        steps:
          - step: small
            where: event.type == "auth" && event.amount < 2.0 && (size(small) == 0 || small[size(small) - 1].card == event.card)
          - step: decline
            contiguity: strict
            where: event.type == "auth_declined" && decline.all(d, d.card != small[0].card || true)
      - step: big
        where: event.amount > 500.0 && event.card == small[0].card && start.ip != ""
  - id: once
    pattern:
      - step: a
      - group: pair
        optional: true
        steps:
          - step: b
            where: event.x == a.x
          - step: c
            where: event.x == b.x
`

func TestGroupCompile(t *testing.T) {
	c := mustLoad(t, groupRules)
	probe := c.Rules[0]
	if len(probe.Steps) != 3 || !probe.Steps[1].Group || len(probe.Steps[1].Steps) != 2 {
		t.Fatalf("compiled steps of probe: %d top-level, want start, the group of 2, big", len(probe.Steps))
	}
	var names []string
	for _, s := range probe.EventSteps() {
		names = append(names, s.Name)
	}
	if got := strings.Join(names, " "); got != "start small decline big" {
		t.Errorf("EventSteps = %q, want the group's steps in its place", got)
	}
	g := probe.Steps[1]
	if g.Until == nil || g.Where != nil {
		t.Errorf("group: until %v, where %v: want an until and no where", g.Until, g.Where)
	}
	if got := strings.Join(g.Until.Steps, ","); got != "small" {
		t.Errorf("group until reads %q, want small", got)
	}
	if got := strings.Join(probe.Steps[2].Where.Steps, ","); got != "small,start" {
		t.Errorf("big reads %q, want small,start", got)
	}
	once := c.Rules[1]
	if once.Steps[1].Steps[1].Where == nil {
		t.Fatal("step c of group pair not compiled")
	}
}

func TestGroupStepTypes(t *testing.T) {
	tests := []struct {
		name, where string
		wantErr     string
	}{
		// A step of a group that runs once holds one event.
		{"singleton in a group", "event.x == b.x", ""},
		{"own name in a group that runs once", "event.x == c.x", `step "c" cannot use its own name`},
		{"later step of the group", "event.x == d.x", `step "d" comes later in the pattern`},
		// In a looping group every step holds a list, itself included.
		{"own steps of a looping group", "size(b) >= 0 && size(c) >= 0", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			times := ""
			if strings.Contains(tt.name, "looping") {
				times = "\n        times: 2.."
			}
			src := `ruleset: t
rules:
  - id: r
    pattern:
      - step: a
      - group: g` + times + `
        steps:
          - step: b
          - step: c
            where: ` + tt.where + `
          - step: d
`
			_, err := Load("t.yaml", []byte(src), CompileOptions{})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Load: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Load error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestGroupVersion(t *testing.T) {
	src := groupRules
	v0 := mustLoad(t, src).Rules[0].Version
	for _, change := range [][2]string{
		{"times: 3..", "times: 2.."},
		{"loop: strict", "loop: any"},
		{`until: event.type == "logout"`, `until: event.type == "exit"`},
		{"contiguity: strict\n            where: event.type == \"auth_declined\"", "where: event.type == \"auth_declined\""},
	} {
		if !strings.Contains(src, change[0]) {
			t.Fatalf("no %q in the rules", change[0])
		}
		if v := mustLoad(t, strings.Replace(src, change[0], change[1], 1)).Rules[0].Version; v == v0 {
			t.Errorf("%q -> %q kept version %s", change[0], change[1], v)
		}
	}
}

// TestGroupExpansionBound rejects nested groups whose times multiply into
// more step copies than the bound, and accepts the same steps unnested.
func TestGroupExpansionBound(t *testing.T) {
	src := `ruleset: t
rules:
  - id: r
    pattern:
      - step: a
      - group: outer
        times: 2000
        steps:
          - group: inner
            times: 2000
            steps:
              - step: b
`
	_, err := Load("t.yaml", []byte(src), CompileOptions{})
	if err == nil || !strings.Contains(err.Error(), "t.yaml:5:7: rule \"r\": the pattern expands to more than 1048576 step states") {
		t.Fatalf("Load error = %v, want the expansion bound at the pattern", err)
	}
	flat := `ruleset: t
rules:
  - id: r
    pattern:
      - step: a
      - step: b
        times: 1000000
`
	if _, err := Load("t.yaml", []byte(flat), CompileOptions{}); err != nil {
		t.Fatalf("a step's own large times: %v", err)
	}
}
