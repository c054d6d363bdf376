package ruletest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/shrike-cep/shrike/internal/yamlnode"
)

// jsonNumberRE is the number grammar of JSON. YAML numbers that fit it are
// kept as written, so an event reads back the way the test spelt it.
var jsonNumberRE = regexp.MustCompile(`^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$`)

// toJSON appends the JSON form of a YAML node to dst: mappings become
// objects with their keys in source order, scalars keep their YAML type
// (an unquoted timestamp is a string as written). What JSON cannot hold
// (NaN, infinities, binary, merge keys) is reported at its position.
func (p *parser) toJSON(dst []byte, n *yaml.Node) []byte {
	n = p.Resolve(n)
	if p.Exhausted() {
		return append(dst, "null"...)
	}
	switch n.Kind {
	case yaml.MappingNode:
		dst = append(dst, '{')
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := p.Resolve(n.Content[i])
			if k.Kind != yaml.ScalarNode || k.Tag == "!!null" || k.Tag == "!!merge" {
				p.add(p.pos(k), "event field names must be strings, not %s", yamlnode.KindName(k))
				continue
			}
			if seen[k.Value] {
				p.add(p.pos(k), "duplicate field %q", k.Value)
				continue
			}
			seen[k.Value] = true
			if len(seen) > 1 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, k.Value)
			dst = append(dst, ':')
			dst = p.toJSON(dst, n.Content[i+1])
		}
		return append(dst, '}')
	case yaml.SequenceNode:
		dst = append(dst, '[')
		for i, it := range n.Content {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = p.toJSON(dst, it)
		}
		return append(dst, ']')
	case yaml.ScalarNode:
		return p.scalarJSON(dst, n)
	}
	p.add(p.pos(n), "unexpected YAML node")
	return append(dst, "null"...)
}

func (p *parser) scalarJSON(dst []byte, n *yaml.Node) []byte {
	switch n.Tag {
	case "!!null":
		return append(dst, "null"...)
	case "!!bool":
		b, err := strconv.ParseBool(strings.ToLower(n.Value))
		if err != nil {
			p.add(p.pos(n), "invalid boolean %q", n.Value)
		}
		return strconv.AppendBool(dst, b)
	case "!!int", "!!float":
		if jsonNumberRE.MatchString(n.Value) {
			return append(dst, n.Value...)
		}
		// Hex, octal, underscores, a leading + or a bare .5: let the YAML
		// library read the value and write it the JSON way.
		if n.Tag == "!!int" {
			var i int64
			if err := n.Decode(&i); err == nil {
				return strconv.AppendInt(dst, i, 10)
			}
		}
		var f float64
		if err := n.Decode(&f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			p.add(p.pos(n), "%s is not a number JSON can hold", n.Value)
			return append(dst, "null"...)
		}
		return strconv.AppendFloat(dst, f, 'g', -1, 64)
	case "!!str", "!!timestamp":
		return appendJSONString(dst, n.Value)
	}
	p.add(p.pos(n), "unsupported YAML type %s in an event", n.Tag)
	return append(dst, "null"...)
}

func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s)
	return append(dst, b...)
}

// decodeJSON decodes an event or matcher with numbers kept exact.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("decode event: %w", err)
	}
	return v, nil
}

// fieldDiffs compares a matcher's fields with an event and describes each
// difference as "path: want X, got Y". Objects match as subsets (the
// event may hold more), arrays element by element, numbers by value (1500
// equals 1500.0).
func fieldDiffs(want map[string]any, got any) []string {
	var out []string
	diffValue(&out, "", want, got)
	return out
}

func diffValue(out *[]string, path string, want, got any) {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			*out = append(*out, fmt.Sprintf("%s: want an object, got %s", pathOr(path), render(got)))
			return
		}
		for _, k := range slices.Sorted(maps.Keys(w)) {
			sub := k
			if path != "" {
				sub = path + "." + k
			}
			gv, ok := g[k]
			if !ok {
				*out = append(*out, fmt.Sprintf("%s: want %s, the event has no such field", sub, render(w[k])))
				continue
			}
			diffValue(out, sub, w[k], gv)
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			*out = append(*out, fmt.Sprintf("%s: want %s, got %s", pathOr(path), render(want), render(got)))
			return
		}
		for i := range w {
			diffValue(out, fmt.Sprintf("%s[%d]", path, i), w[i], g[i])
		}
	case json.Number:
		g, ok := got.(json.Number)
		if !ok || !sameNumber(w, g) {
			*out = append(*out, fmt.Sprintf("%s: want %s, got %s", pathOr(path), render(want), render(got)))
		}
	default:
		if want != got {
			*out = append(*out, fmt.Sprintf("%s: want %s, got %s", pathOr(path), render(want), render(got)))
		}
	}
}

func pathOr(path string) string {
	if path == "" {
		return "event"
	}
	return path
}

func sameNumber(a, b json.Number) bool {
	if a == b {
		return true
	}
	x, ok1 := new(big.Rat).SetString(string(a))
	y, ok2 := new(big.Rat).SetString(string(b))
	return ok1 && ok2 && x.Cmp(y) == 0
}

// render formats a decoded JSON value compactly for a report.
func render(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// labelDiffs compares expected labels (a subset) with an alert's.
func labelDiffs(want, got map[string]string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[k]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("label %s: want %q, the alert has no such label", k, want[k]))
		case g != want[k]:
			out = append(out, fmt.Sprintf("label %s: want %q, got %q", k, want[k], g))
		}
	}
	return out
}

// sortedLabels formats labels as {k: v, ...} in key order.
func sortedLabels(l map[string]string) string {
	keys := slices.Sorted(maps.Keys(l))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ": " + l[k]
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
