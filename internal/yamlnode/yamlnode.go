// Package yamlnode walks go.yaml.in/yaml/v3 node trees strictly, for the
// formats Shrike reads with positions (rulesets, rule test files): unknown
// and duplicate fields are errors, aliases are followed under a node budget,
// and every problem is reported against the node it is about, so that the
// caller can print file:line:col.
package yamlnode

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxNodes bounds the nodes a Walker visits, aliases included, so that a
// small document of nested aliases cannot expand without limit.
const MaxNodes = 1 << 20

// Walker reads nodes and reports what is wrong with them.
type Walker struct {
	// Report records a problem at node n.
	Report func(n *yaml.Node, msg string)
	// ListFields names the accepted fields in an unknown-field error.
	ListFields bool
	nodes      int
}

func (w *Walker) report(n *yaml.Node, format string, args ...any) {
	w.Report(n, fmt.Sprintf(format, args...))
}

// Resolve follows aliases and counts n against MaxNodes.
func (w *Walker) Resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	w.nodes++
	if w.nodes == MaxNodes {
		w.report(n, "document too large after expanding aliases")
	}
	return n
}

// Exhausted reports whether the node budget is spent.
func (w *Walker) Exhausted() bool { return w.nodes >= MaxNodes }

// Fields walks a mapping strictly: every key must be one of fields, once.
func (w *Walker) Fields(n *yaml.Node, what string, fields map[string]func(k, v *yaml.Node)) {
	n = w.Resolve(n)
	if n.Kind != yaml.MappingNode {
		w.report(n, "%s must be a mapping, not %s", what, KindName(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content) && !w.Exhausted(); i += 2 {
		k, v := w.Resolve(n.Content[i]), w.Resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			w.report(k, "%s keys must be strings", what)
			continue
		}
		f, ok := fields[k.Value]
		switch {
		case !ok && w.ListFields:
			w.report(k, "unknown field %q in %s (want one of %s)", k.Value, what, strings.Join(sortedKeys(fields), ", "))
		case !ok:
			w.report(k, "unknown field %q in %s", k.Value, what)
		case seen[k.Value]:
			w.report(k, "duplicate field %q in %s", k.Value, what)
		default:
			seen[k.Value] = true
			f(k, v)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Seq walks a sequence, calling f for each resolved item; false when n is
// not a sequence.
func (w *Walker) Seq(n *yaml.Node, what string, f func(i int, it *yaml.Node)) bool {
	n = w.Resolve(n)
	if n.Kind != yaml.SequenceNode {
		w.report(n, "%s must be a list, not %s", what, KindName(n))
		return false
	}
	for i, it := range n.Content {
		if w.Exhausted() {
			break
		}
		f(i, w.Resolve(it))
	}
	return true
}

// Str reads a non-null scalar as text, so that `key: 42` reads as "42".
func (w *Walker) Str(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		w.report(n, "%s must be a string, not %s", what, KindName(n))
		return "", false
	}
	return n.Value, true
}

// Bool reads a YAML boolean.
func (w *Walker) Bool(n *yaml.Node, what string) (bool, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		w.report(n, "%s must be true or false, not %s", what, KindName(n))
		return false, false
	}
	b, err := strconv.ParseBool(strings.ToLower(n.Value))
	if err != nil {
		w.report(n, "%s must be true or false", what)
		return false, false
	}
	return b, true
}

// KindName describes a node for error messages: "a mapping", "a list",
// "a string", "null", …
func KindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return TagName(n.Tag)
	}
	return "an unexpected node"
}

// TagName describes a scalar by its resolved tag: "null", "a string", "an
// integer", "a number", "a boolean", …
func TagName(tag string) string {
	switch tag {
	case "!!null":
		return "null"
	case "!!str":
		return "a string"
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	}
	return "a " + strings.TrimPrefix(tag, "!!") + " scalar"
}
