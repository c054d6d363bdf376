package conformance

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"testing"

	"github.com/shrike-cep/shrike/nfa"
	"github.com/shrike-cep/shrike/nfa/draw"
	"github.com/shrike-cep/shrike/rules"
)

// TestCasesDraw draws the automaton of every Flink case's pattern, the
// widest variety of pattern shapes there is: each picture is well-formed
// XML with one state group per automaton state and one edge group per
// edge.
func TestCasesDraw(t *testing.T) {
	cases, err := builtinCases()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.ID, func(t *testing.T) {
			g, err := convert(c)
			if err != nil {
				t.Fatalf("convert: %v", err)
			}
			rs, err := rules.Load("flink.yaml", g.Ruleset, rules.CompileOptions{})
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			a, err := nfa.Compile(rs.Rules[0])
			if err != nil {
				t.Fatal(err)
			}
			graph, err := draw.Describe(a)
			if err != nil {
				t.Fatal(err)
			}
			svg := draw.SVG(graph)
			dec := xml.NewDecoder(bytes.NewReader(svg))
			for {
				_, err := dec.Token()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("the SVG is not well-formed: %v", err)
				}
			}
			edges := 0
			for _, s := range a.States {
				edges += len(s.Edges)
			}
			if n := bytes.Count(svg, []byte(`<g class="state" `)); n != len(a.States) {
				t.Errorf("%d state groups, want %d", n, len(a.States))
			}
			if n := bytes.Count(svg, []byte(`<g class="edge" `)); n != edges {
				t.Errorf("%d edge groups, want %d", n, edges)
			}
		})
	}
}
