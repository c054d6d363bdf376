package yamlnode

import (
	"bytes"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestSyntaxError(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		line     int
		msg      string
		yamlLine int // the line yaml.v3 prints, to show the test covers a case it gets wrong
	}{
		{
			name:     "mis-indented key",
			src:      "ruleset: t\nrules:\n  - id: a\n    when: 'true'\n   severity: high\n",
			line:     5,
			msg:      "did not find expected '-' indicator",
			yamlLine: 2,
		},
		{
			name:     "unterminated quote",
			src:      "ruleset: t\nrules:\n  - id: a\n    when: \"event.x == 1\n    severity: high\n  - id: b\n    when: 'true'\n",
			line:     4,
			msg:      "found unexpected end of stream",
			yamlLine: 4,
		},
		{
			// The quote opened on line 4 closes at the first quote of line 6.
			name:     "unterminated quote closed by a later one",
			src:      "ruleset: t\nrules:\n  - id: a\n    when: \"event.x == 1\n    severity: high\n    description: \"x\"\n",
			line:     4,
			msg:      "did not find expected key (the quoted string that begins on this line ends on line 6: is a quote missing?)",
			yamlLine: 2,
		},
		{
			name:     "unclosed bracket",
			src:      "ruleset: t\nrules:\n  - id: a\n    when: 'true'\n    alert:\n      labels: [a, b\n    severity: high\n",
			line:     6,
			msg:      "did not find expected ',' or ']'",
			yamlLine: 5,
		},
		{
			name:     "unclosed bracket at the end",
			src:      "ruleset: t\nrules:\n  - id: a\n    when: 'true'\n    alert:\n      labels: [a, b",
			line:     6,
			msg:      "did not find expected ',' or ']'",
			yamlLine: 5,
		},
		{
			name:     "indented too far",
			src:      "ruleset: t\nrules:\n  - id: a\n    when: 'true'\n      severity: high\n",
			line:     5,
			msg:      "did not find expected key",
			yamlLine: 2,
		},
		{
			name:     "a multi-line flow list before the error is not the error",
			src:      "ruleset: t\nrules:\n  - id: a\n    when: 'true'\n    alert:\n      labels: [a,\n        b]\n   severity: high\n",
			line:     8,
			msg:      "did not find expected '-' indicator",
			yamlLine: 2,
		},
		{
			name:     "tab",
			src:      "a: b\n\tc: d\n",
			line:     2,
			msg:      "found a tab character that violates indentation",
			yamlLine: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n yaml.Node
			err := yaml.NewDecoder(bytes.NewReader([]byte(tt.src))).Decode(&n)
			if err == nil {
				t.Fatal("the document parses")
			}
			printed, _ := SyntaxError(nil, err)
			if printed != tt.yamlLine {
				t.Errorf("yaml.v3 printed line %d (%v), the test expects %d", printed, err, tt.yamlLine)
			}
			line, msg := SyntaxError([]byte(tt.src), err)
			if line != tt.line || msg != tt.msg {
				t.Errorf("SyntaxError = %d %q, want %d %q (yaml.v3: %v)", line, msg, tt.line, tt.msg, err)
			}
		})
	}
}

func TestSyntaxErrorWithoutLine(t *testing.T) {
	err := &yaml.TypeError{Errors: []string{"x"}}
	if line, msg := SyntaxError([]byte("a: b\n"), err); line != 0 || msg != "unmarshal errors:\n  x" {
		t.Errorf("SyntaxError = %d %q, want 0 and the message unchanged", line, msg)
	}
}
