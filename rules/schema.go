package rules

import (
	"encoding/base64"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
)

// Names of the object types our provider declares.
const (
	eventTypeName = "shrike.Event"
	listsTypeName = "shrike.Lists"
)

// schemaTypes maps the type names a schema may use to their CEL types and
// decoding modes.
var schemaTypes = map[string]struct {
	t *types.Type
	k kind
}{
	"string":    {types.StringType, kindString},
	"int":       {types.IntType, kindInt},
	"uint":      {types.UintType, kindUint},
	"double":    {types.DoubleType, kindDouble},
	"bool":      {types.BoolType, kindBool},
	"timestamp": {types.TimestampType, kindTimestamp},
	"duration":  {types.DurationType, kindDuration},
	"bytes":     {types.BytesType, kindBytes},
	"list":      {types.NewListType(types.DynType), kindList},
	"map":       {types.NewMapType(types.StringType, types.DynType), kindMap},
	"dyn":       {types.DynType, kindNatural},
}

// provider declares the shrike.Event object type (when the ruleset has a
// schema) and shrike.Lists (always, so that lists.NAME of an unknown list
// fails type-checking) on top of cel-go's registry, which still serves
// every other type (the ext libraries register theirs through it).
type provider struct {
	*types.Registry
	event map[string]*types.FieldType // nil: no schema
	lists map[string]*types.FieldType
	// eventNames and listNames keep declaration order.
	eventNames, listNames []string
}

func newProvider(rs *Ruleset) (*provider, error) {
	reg, err := types.NewRegistry()
	if err != nil {
		return nil, fmt.Errorf("new cel registry: %w", err)
	}
	p := &provider{Registry: reg, lists: map[string]*types.FieldType{}}
	if len(rs.Schema) > 0 {
		p.event = map[string]*types.FieldType{}
		for _, f := range rs.Schema {
			st, ok := schemaTypes[f.Type]
			if !ok {
				continue // reported by validation
			}
			p.eventNames = append(p.eventNames, f.Name)
			p.event[f.Name] = schemaField(f.Name, st.t, st.k)
		}
	}
	managedIdx := map[string]int{}
	for i, d := range rs.managedDecls() {
		managedIdx[d.Name] = i
	}
	for _, name := range rs.listNames() {
		p.listNames = append(p.listNames, name)
		elem, idx := listElemType(rs.Lists[name]), -1
		if d := rs.ListDecls[name]; d != nil {
			elem = types.StringType
			if d.Managed {
				idx = managedIdx[name]
			}
		}
		p.lists[name] = listField(name, elem, idx)
	}
	return p, nil
}

// eventCELType is the type of `event` and singleton step variables.
func (p *provider) eventCELType() *types.Type {
	if p.event == nil {
		return types.NewMapType(types.StringType, types.DynType)
	}
	return types.NewObjectType(eventTypeName)
}

// FindStructType implements types.Provider.
func (p *provider) FindStructType(name string) (*types.Type, bool) {
	switch {
	case name == eventTypeName && p.event != nil:
		return types.NewTypeTypeWithParam(types.NewObjectType(eventTypeName)), true
	case name == listsTypeName:
		return types.NewTypeTypeWithParam(types.NewObjectType(listsTypeName)), true
	}
	return p.Registry.FindStructType(name)
}

// FindStructFieldNames implements types.Provider.
func (p *provider) FindStructFieldNames(name string) ([]string, bool) {
	switch {
	case name == eventTypeName && p.event != nil:
		return p.eventNames, true
	case name == listsTypeName:
		return p.listNames, true
	}
	return p.Registry.FindStructFieldNames(name)
}

// FindStructFieldType implements types.Provider.
func (p *provider) FindStructFieldType(name, field string) (*types.FieldType, bool) {
	switch {
	case name == eventTypeName && p.event != nil:
		ft, ok := p.event[field]
		return ft, ok
	case name == listsTypeName:
		ft, ok := p.lists[field]
		return ft, ok
	}
	return p.Registry.FindStructFieldType(name, field)
}

// NewValue implements types.Provider; events and lists cannot be built in
// CEL.
func (p *provider) NewValue(name string, fields map[string]ref.Val) ref.Val {
	if name == eventTypeName || name == listsTypeName {
		return types.NewErr("cannot construct %s", name)
	}
	return p.Registry.NewValue(name, fields)
}

// schemaField reads a typed field from an *Event. A missing field, like a
// null one, is unset: has(event.f) is false and reading it is an error, so
// the condition is false for that event.
func schemaField(name string, t *types.Type, k kind) *types.FieldType {
	var hint fieldHint // where name was last found (Event.findHinted)
	return &types.FieldType{
		Type: t,
		IsSet: func(target any) bool {
			ev, ok := target.(*Event)
			if !ok {
				return false
			}
			f := ev.findHinted(name, &hint)
			return f != nil && ev.raw[f.v0] != 'n'
		},
		GetFrom: func(target any) (any, error) {
			ev, ok := target.(*Event)
			if !ok {
				return nil, fmt.Errorf("no such key: %s", name)
			}
			f := ev.findHinted(name, &hint)
			if f == nil {
				return nil, fmt.Errorf("no such key: %s", name)
			}
			v := ev.decode(f, k)
			switch v := v.(type) {
			case *types.Err:
				return nil, fmt.Errorf("field %s: %w", name, v)
			case types.Null:
				return nil, fmt.Errorf("field %s is null", name)
			}
			return v, nil
		},
	}
}

// listsValue holds a compiled ruleset's lists: the items of those given
// in the ruleset, and the shared holders of its managed lists.
type listsValue struct {
	m       map[string]ref.Val
	managed []*managedList
	// shared is the view of evaluations that read no managed list (or
	// that have no activation of their own): it reads holders every time.
	shared *listsView
}

// listField reads list name from a listsView; managedIdx is its index in
// listsValue.managed, -1 for a list given in the ruleset.
func listField(name string, elem *types.Type, managedIdx int) *types.FieldType {
	return &types.FieldType{
		Type: types.NewListType(elem),
		IsSet: func(target any) bool {
			l, ok := target.(*listsView)
			return ok && l.get(name, managedIdx) != nil
		},
		GetFrom: func(target any) (any, error) {
			l, ok := target.(*listsView)
			if !ok {
				return nil, fmt.Errorf("no such list: %s", name)
			}
			v := l.get(name, managedIdx)
			if v == nil {
				return nil, fmt.Errorf("no such list: %s", name)
			}
			return v, nil
		},
	}
}

// newListsValue makes the value of rs's lists: a list given in the ruleset
// becomes a CEL list (a hash set when typed), a managed one is read from
// its holder in store.
func newListsValue(rs *Ruleset, store *ManagedLists) *listsValue {
	lv := &listsValue{m: make(map[string]ref.Val, len(rs.Lists))}
	for name, items := range rs.Lists {
		if d := rs.ListDecls[name]; d != nil && !d.Managed {
			strs := make([]string, 0, len(items))
			for _, it := range items {
				if s, ok := it.(string); ok {
					strs = append(strs, s)
				}
			}
			c, _ := buildList(d.Type, strs)
			lv.m[name] = c.val
			continue
		}
		vals := make([]ref.Val, len(items))
		for i, it := range items {
			vals[i] = types.DefaultTypeAdapter.NativeToValue(it)
		}
		lv.m[name] = types.NewRefValList(types.DefaultTypeAdapter, vals)
	}
	for _, d := range rs.managedDecls() {
		lv.managed = append(lv.managed, store.holder(d.Name, d.Type))
	}
	lv.shared = &listsView{v: lv}
	return lv
}

// managedDecls returns the managed list declarations of rs by name: their
// order gives the managed list indexes of listsValue and listField.
func (rs *Ruleset) managedDecls() []*ListDecl {
	var out []*ListDecl
	for _, name := range sortedKeys(rs.ListDecls) {
		if d := rs.ListDecls[name]; d.Managed {
			out = append(out, d)
		}
	}
	return out
}

// ManagedLists returns the managed list declarations of the ruleset, by
// name.
func (rs *Ruleset) ManagedLists() []ListDecl {
	ds := rs.managedDecls()
	out := make([]ListDecl, len(ds))
	for i, d := range ds {
		out[i] = *d
	}
	return out
}

// listNames returns the names of every list of rs, given or managed,
// sorted.
func (rs *Ruleset) listNames() []string {
	names := sortedKeys(rs.Lists)
	for name := range rs.ListDecls {
		if _, ok := rs.Lists[name]; !ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// listElemType is the common CEL type of a list's items, dyn when mixed.
func listElemType(items []any) *types.Type {
	var t *types.Type
	for _, it := range items {
		var it2 *types.Type
		switch it.(type) {
		case string:
			it2 = types.StringType
		case int64:
			it2 = types.IntType
		case float64:
			it2 = types.DoubleType
		case bool:
			it2 = types.BoolType
		default:
			return types.DynType
		}
		if t != nil && t != it2 {
			return types.DynType
		}
		t = it2
	}
	if t == nil {
		return types.DynType
	}
	return t
}

// providerOptions installs p as the environment's type provider and adapter.
func providerOptions(p *provider) []cel.EnvOption {
	return []cel.EnvOption{cel.CustomTypeProvider(p), cel.CustomTypeAdapter(p)}
}

// decodeAs decodes a validated JSON value in mode k. Schema types win over
// the JSON form where the conversion is lossless: a double field written 5
// is 5.0, a timestamp may be an RFC 3339 string or epoch milliseconds, a
// duration a Go/CEL duration string or milliseconds, bytes base64. null
// stays null in every mode; callers treat it as unset.
func decodeAs(b []byte, k kind) ref.Val {
	if k == kindNatural {
		return decodeNatural(b)
	}
	if b[0] == 'n' {
		return types.NullValue
	}
	switch k {
	case kindString:
		if b[0] == '"' {
			return types.String(valueString(b[1 : len(b)-1]))
		}
	case kindInt:
		if isNum(b[0]) {
			n, err := strconv.ParseInt(string(b), 10, 64)
			if err == nil {
				return types.Int(n)
			}
			f, err := strconv.ParseFloat(string(b), 64)
			if err == nil && f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63 {
				return types.Int(int64(f))
			}
			return types.NewErr("%s is not an int", b)
		}
	case kindUint:
		if isNum(b[0]) {
			n, err := strconv.ParseUint(string(b), 10, 64)
			if err == nil {
				return types.Uint(n)
			}
			f, err := strconv.ParseFloat(string(b), 64)
			if err == nil && f == math.Trunc(f) && f >= 0 && f < 1<<64 {
				return types.Uint(uint64(f))
			}
			return types.NewErr("%s is not a uint", b)
		}
	case kindDouble:
		if isNum(b[0]) {
			f, ok := parseFloat(b)
			if !ok {
				return types.NewErr("number %s out of range", b)
			}
			return types.Double(f)
		}
	case kindBool:
		switch b[0] {
		case 't':
			return types.True
		case 'f':
			return types.False
		}
	case kindTimestamp:
		if b[0] == '"' {
			s := unquote(b[1 : len(b)-1])
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return types.NewErr("%q is not an RFC 3339 timestamp", s)
			}
			return types.Timestamp{Time: t}
		}
		if isNum(b[0]) {
			if n, err := strconv.ParseInt(string(b), 10, 64); err == nil && n <= maxMillis && n >= -maxMillis {
				return types.Timestamp{Time: time.UnixMilli(n).UTC()}
			}
			f, err := strconv.ParseFloat(string(b), 64)
			if err != nil || math.Abs(f) > float64(maxMillis) {
				return types.NewErr("epoch milliseconds %s out of range", b)
			}
			return types.Timestamp{Time: time.Unix(0, msToNanos(f)).UTC()}
		}
	case kindDuration:
		if b[0] == '"' {
			s := unquote(b[1 : len(b)-1])
			d, err := ParseDuration(s)
			if err != nil {
				return types.NewErr("%q is not a duration", s)
			}
			return types.Duration{Duration: d}
		}
		if isNum(b[0]) {
			if n, err := strconv.ParseInt(string(b), 10, 64); err == nil && n <= maxMillis && n >= -maxMillis {
				return types.Duration{Duration: time.Duration(n) * time.Millisecond}
			}
			f, err := strconv.ParseFloat(string(b), 64)
			if err != nil || math.Abs(f) > float64(maxMillis) {
				return types.NewErr("milliseconds %s out of range", b)
			}
			return types.Duration{Duration: time.Duration(msToNanos(f))}
		}
	case kindBytes:
		if b[0] == '"' {
			s := unquote(b[1 : len(b)-1])
			raw, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return types.NewErr("bytes field is not base64: %v", err)
			}
			return types.Bytes(raw)
		}
	case kindList:
		if b[0] == '[' {
			return decodeNatural(b)
		}
	case kindMap:
		if b[0] == '{' {
			return decodeNatural(b)
		}
	}
	return types.NewErr("%s is not a %s", jsonKind(b[0]), kindNames[k])
}

var kindNames = map[kind]string{
	kindString: "string", kindInt: "int", kindUint: "uint", kindDouble: "double",
	kindBool: "bool", kindTimestamp: "timestamp", kindDuration: "duration",
	kindBytes: "bytes", kindList: "list", kindMap: "map",
}

func isNum(c byte) bool { return c == '-' || isDigit(c) }

func jsonKind(c byte) string {
	switch c {
	case '"':
		return "a JSON string"
	case '{':
		return "a JSON object"
	case '[':
		return "a JSON array"
	case 't', 'f':
		return "a JSON bool"
	}
	return "a JSON number"
}

// msToNanos converts fractional milliseconds to nanoseconds, keeping the
// whole milliseconds exact (f*1e6 would lose digits beyond 2^53).
func msToNanos(f float64) int64 {
	whole := math.Floor(f)
	return int64(whole)*int64(time.Millisecond) + int64(math.Round((f-whole)*1e6))
}
