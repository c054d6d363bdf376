package rules

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"go.yaml.in/yaml/v3"
)

// maxSuppressBy bounds the expressions of one alert.suppress.by: each is
// evaluated for every alert of the rule.
const maxSuppressBy = 16

// suppress reads `alert.suppress: {for: DURATION, by: [CEL, ...]}`.
func (p *parser) suppress(n *yaml.Node, a *Alert) {
	s := &Suppress{Pos: p.pos(n)}
	forSet := false
	p.Fields(n, "alert suppress", map[string]func(k, v *yaml.Node){
		"for": func(k, v *yaml.Node) {
			forSet = true
			s.For, s.ForPos = p.duration(v, "suppress for"), p.pos(v)
		},
		"by": func(k, v *yaml.Node) {
			s.By, s.ByPos = []string{}, []Pos{}
			p.Seq(v, "suppress by", func(i int, it *yaml.Node) {
				if i == maxSuppressBy {
					p.add(p.pos(it), "suppress by has more than %d expressions", maxSuppressBy)
				}
				if i >= maxSuppressBy {
					return
				}
				src, pos := p.expr(it, "suppress by expression")
				if src != "" {
					s.By, s.ByPos = append(s.By, src), append(s.ByPos, pos)
				}
			})
		},
	})
	if n.Kind == yaml.MappingNode && !forSet {
		p.add(s.Pos, "alert suppress needs for (how long an alert suppresses the next ones, e.g. for: 1h)")
	}
	a.Suppress = s
}

// byKinds are the types a suppress.by expression may give: values with a
// canonical form (AppendSuppressValue).
var byKinds = []types.Kind{
	types.BoolKind, types.IntKind, types.UintKind, types.DoubleKind, types.StringKind, types.BytesKind,
	types.NullTypeKind, types.TimestampKind, types.DurationKind, types.ListKind, types.MapKind,
}

// compileSuppressBy compiles the rule's suppress.by expressions with
// compile, which compiles in the environment of the rule's summary, so
// that they read what the summary reads.
func compileSuppressBy(r *Rule, cr *CompiledRule, compile func(sp exprSpec) *Expr, listsUsed map[string]bool) {
	s := r.Alert.Suppress
	if s == nil || len(s.By) == 0 {
		return
	}
	cr.SuppressBy = make([]*Expr, 0, len(s.By))
	for i, src := range s.By {
		x := compile(exprSpec{src: src, pos: s.ByPos[i], what: "suppress by", want: byKinds, rule: r})
		if x != nil {
			collectLists(x, listsUsed)
			cr.SuppressBy = append(cr.SuppressBy, x)
		}
	}
}

// AppendSuppressValue appends the canonical bytes of a suppress.by value
// to dst: a type tag, then the value, so that values equal in CEL but of
// different types (1 and 1u, "1" and 1) differ, and lists and maps
// (whose entries are sorted by their keys' bytes) compare by content. A
// value of another type (an event, a list of events) is an error.
func AppendSuppressValue(dst []byte, v ref.Val) ([]byte, error) {
	return appendSuppressValue(dst, v, 0)
}

// maxSuppressDepth bounds the nesting of lists and maps hashed.
const maxSuppressDepth = 32

func appendSuppressValue(dst []byte, v ref.Val, depth int) ([]byte, error) {
	if depth > maxSuppressDepth {
		return dst, fmt.Errorf("suppress by value nested deeper than %d", maxSuppressDepth)
	}
	switch x := v.(type) {
	case types.Bool:
		if x {
			return append(dst, 'T'), nil
		}
		return append(dst, 'F'), nil
	case types.Int:
		return binary.AppendVarint(append(dst, 'i'), int64(x)), nil
	case types.Uint:
		return binary.AppendUvarint(append(dst, 'u'), uint64(x)), nil
	case types.Double:
		f := float64(x)
		if f == 0 {
			f = 0 // -0 and 0 are one value
		}
		if math.IsNaN(f) {
			f = math.NaN() // one NaN
		}
		return binary.LittleEndian.AppendUint64(append(dst, 'd'), math.Float64bits(f)), nil
	case types.String:
		dst = binary.AppendUvarint(append(dst, 's'), uint64(len(x)))
		return append(dst, x...), nil
	case types.Bytes:
		dst = binary.AppendUvarint(append(dst, 'b'), uint64(len(x)))
		return append(dst, x...), nil
	case types.Null:
		return append(dst, 'n'), nil
	case types.Timestamp:
		return binary.AppendVarint(append(dst, 't'), x.UnixNano()), nil
	case types.Duration:
		return binary.AppendVarint(append(dst, 'D'), int64(x.Duration)), nil
	}
	switch v.Type() {
	case types.ListType:
		l, ok := v.(traits.Lister)
		if !ok {
			break
		}
		n, ok := l.Size().(types.Int)
		if !ok {
			break
		}
		dst = binary.AppendUvarint(append(dst, 'l'), uint64(n))
		for i := range int64(n) {
			var err error
			if dst, err = appendSuppressValue(dst, l.Get(types.Int(i)), depth+1); err != nil {
				return dst, err
			}
		}
		return dst, nil
	case types.MapType:
		m, ok := v.(traits.Mapper)
		if !ok {
			break
		}
		type entry struct{ k, v []byte }
		var entries []entry
		for it := m.Iterator(); it.HasNext() == types.True; {
			k := it.Next()
			kb, err := appendSuppressValue(nil, k, depth+1)
			if err != nil {
				return dst, err
			}
			vb, err := appendSuppressValue(nil, m.Get(k), depth+1)
			if err != nil {
				return dst, err
			}
			entries = append(entries, entry{kb, vb})
		}
		slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(string(a.k), string(b.k)) })
		dst = binary.AppendUvarint(append(dst, 'm'), uint64(len(entries)))
		for _, e := range entries {
			dst = append(append(dst, e.k...), e.v...)
		}
		return dst, nil
	}
	return dst, fmt.Errorf("suppress by value of type %s (want a bool, number, string, bytes, null, timestamp, duration, or a list or map of them)", strconv.Quote(v.Type().TypeName()))
}
