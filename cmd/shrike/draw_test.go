package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDrawExitCodes pins the exit statuses of shrike draw: 0 for a
// picture, 1 for an invalid ruleset or an automaton too large to draw, 2
// for a rule without an automaton or a bad flag.
func TestDrawExitCodes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, content)
		return p
	}
	good := write("good.yaml", "ruleset: g\nrules:\n  - id: w\n    when: event.type == \"x\"\n  - id: p\n    pattern:\n      - step: a\n        where: event.type == \"a\"\n      - step: b\n        where: event.type == \"b\"\n")
	bad := write("bad.yaml", "ruleset: b\nrules:\n  - id: r\n    when: event.type ==\n")
	huge := write("huge.yaml", "ruleset: h\nrules:\n  - id: huge\n    pattern:\n      - step: a\n        where: event.type == \"a\"\n      - group: g\n        times: 300\n        steps:\n          - step: b\n            where: event.type == \"b\"\n          - step: c\n            where: event.type == \"c\"\n")
	tests := []struct {
		name   string
		args   []string
		want   int
		stderr string
	}{
		{"pattern rule", []string{"draw", "--rules", good, "--rule", "p"}, 0, ""},
		{"pattern rule as json", []string{"draw", "--rules", good, "--rule", "g/p", "--format", "json"}, 0, ""},
		{"when rule", []string{"draw", "--rules", good, "--rule", "w"}, 2, `rule "w" of ruleset "g" is a when rule`},
		{"unknown rule", []string{"draw", "--rules", good, "--rule", "x"}, 2, `no rule "x" in ruleset "g"`},
		{"unknown rule in several rulesets", []string{"draw", "--rules", good + "," + huge, "--rule", "x"}, 2, `no rule "x" in the rulesets "g", "h"`},
		{"bad format", []string{"draw", "--rules", good, "--rule", "p", "--format", "png"}, 2, "--format must be svg or json"},
		{"without --rule", []string{"draw", "--rules", good}, 2, `required flag(s) "rule" not set`},
		{"with an argument", []string{"draw", "--rules", good, "--rule", "p", "extra"}, 2, ""},
		{"invalid ruleset", []string{"draw", "--rules", bad, "--rule", "r"}, 1, "bad.yaml:4:"},
		{"too large to draw", []string{"draw", "--rules", huge, "--rule", "huge"}, 1, `automaton too large to draw: rule "huge": its automaton has`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			e := env{stdin: strings.NewReader(""), stdout: newOutput(&stdout), stderr: newOutput(&stderr), clock: time.Now}
			if got := run(context.Background(), tt.args, e); got != tt.want {
				t.Errorf("exit status %d, want %d\nstdout:\n%.300s\nstderr:\n%s", got, tt.want, stdout.String(), stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.stderr)
			}
			if tt.want == 0 && stdout.Len() == 0 {
				t.Error("nothing written")
			}
		})
	}
}
