package yamlnode

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

func walk(t *testing.T, src string, listFields bool) []string {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	var got []string
	w := &Walker{ListFields: listFields, Report: func(n *yaml.Node, msg string) {
		got = append(got, fmt.Sprintf("%d:%d: %s", n.Line, n.Column, msg))
	}}
	w.Fields(doc.Content[0], "test", map[string]func(k, v *yaml.Node){
		"name": func(_, v *yaml.Node) { w.Str(v, "name") },
		"on":   func(_, v *yaml.Node) { w.Bool(v, "on") },
		"list": func(_, v *yaml.Node) { w.Seq(v, "list", func(int, *yaml.Node) {}) },
	})
	return got
}

func TestWalker(t *testing.T) {
	src := "name: [a]\non: yes please\nlist: 3\nnope: 1\nname: x\n"
	want := []string{
		`1:7: name must be a string, not a list`,
		`2:5: on must be true or false, not a string`,
		`3:7: list must be a list, not an integer`,
		`4:1: unknown field "nope" in test`,
		`5:1: duplicate field "name" in test`,
	}
	if diff := cmp.Diff(want, walk(t, src, false)); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
	got := walk(t, src, true)
	if !strings.HasSuffix(got[3], `(want one of list, name, on)`) {
		t.Errorf("ListFields report = %q", got[3])
	}
}

func TestAliasBudget(t *testing.T) {
	// Each level doubles the references to the level below.
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x]\n")
	for i := 1; i < 24; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [*a%d, *a%d]\n", i, i, i-1, i-1)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(b.String()), &doc); err != nil {
		t.Fatal(err)
	}
	var reports []string
	w := &Walker{Report: func(_ *yaml.Node, msg string) { reports = append(reports, msg) }}
	var visit func(n *yaml.Node)
	visit = func(n *yaml.Node) {
		n = w.Resolve(n)
		for _, c := range n.Content {
			if w.Exhausted() {
				return
			}
			visit(c)
		}
	}
	visit(doc.Content[0])
	if !w.Exhausted() || len(reports) != 1 || reports[0] != "document too large after expanding aliases" {
		t.Errorf("exhausted %v, reports %q", w.Exhausted(), reports)
	}
}
