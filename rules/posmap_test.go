package rules

import (
	"errors"
	"strings"
	"testing"
)

// TestCELErrorAtEndOfBlockScalar checks that an error at the end of a
// block scalar, after its final line break, points at the end of its last
// line, not at the line after it (which, at the end of the file, is past
// the file's end).
func TestCELErrorAtEndOfBlockScalar(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{
			name: "literal at the end of the file",
			src:  ruleset("  - id: a\n    when: |\n      event.x ==\n"),
			want: "t.yaml:5:17",
		},
		{
			name: "keep chomping",
			src:  ruleset("  - id: a\n    when: |+\n      event.x ==\n\n"),
			want: "t.yaml:5:17",
		},
		{
			name: "literal followed by another field",
			src:  ruleset("  - id: a\n    when: |\n      event.x &&\n      event.y ==\n    severity: high\n"),
			want: "t.yaml:6:17",
		},
		{
			name: "folded",
			src:  ruleset("  - id: a\n    when: >\n      event.x ==\n"),
			want: "t.yaml:5:17",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load("t.yaml", []byte(tt.src), CompileOptions{})
			var list ErrorList
			if !errors.As(err, &list) || len(list) != 1 {
				t.Fatalf("Load: %v, want one error", err)
			}
			e := list[0]
			if got := e.Pos.String(); got != tt.want {
				t.Errorf("error at %s, want %s: %v", got, tt.want, err)
			}
			if lines := strings.Count(tt.src, "\n"); e.Pos.Line > lines {
				t.Errorf("error on line %d of a %d-line file", e.Pos.Line, lines)
			}
		})
	}
}

func TestCELErrorAtEndOfExpressionBuiltInCode(t *testing.T) {
	rs := &Ruleset{Name: "code", Rules: []*Rule{{
		ID: "r", Enabled: true, When: "event.k ==\n", WhenPos: Pos{File: "gen.yaml", Line: 20, Col: 5},
	}}}
	_, err := Compile(rs, CompileOptions{})
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 1 {
		t.Fatalf("Compile error %v, want one error", err)
	}
	if got, want := list[0].Pos, (Pos{File: "gen.yaml", Line: 20, Col: 15}); got != want {
		t.Errorf("error at %v, want %v (%v)", got, want, err)
	}
}
