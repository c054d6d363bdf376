package ruletest

import (
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/shrike-cep/shrike/internal/yamlnode"
	"github.com/shrike-cep/shrike/rules"
)

// ListItems are the items a test file gives a managed list of its
// rulesets (`lists: {NAME: [items]}`, at the top of the file for every
// test, or in a test for that test).
type ListItems struct {
	Name  string
	Pos   rules.Pos
	Items []string
	// itemPos are the items' positions, for the type check.
	itemPos []rules.Pos
}

// lists reads a lists mapping: name → list of item strings.
func (p *parser) lists(n *yaml.Node) map[string]*ListItems {
	n = p.Resolve(n)
	if n.Kind != yaml.MappingNode {
		p.add(p.pos(n), "lists must be a mapping of list names to items, not %s", yamlnode.KindName(n))
		return nil
	}
	out := map[string]*ListItems{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := p.Resolve(n.Content[i]), p.Resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			p.add(p.pos(k), "lists keys must be list names")
			continue
		}
		if _, dup := out[k.Value]; dup {
			p.add(p.pos(k), "duplicate key %q in lists", k.Value)
			continue
		}
		l := &ListItems{Name: k.Value, Pos: p.pos(k), Items: []string{}}
		out[k.Value] = l
		if v.Kind != yaml.SequenceNode {
			p.add(p.pos(v), "list %q must be a list of items, not %s", k.Value, yamlnode.KindName(v))
			continue
		}
		if len(v.Content) > rules.MaxListItems {
			p.add(p.pos(v), "list %q has %d items, over the limit of %d", k.Value, len(v.Content), rules.MaxListItems)
			continue
		}
		for j, it := range v.Content {
			it = p.Resolve(it)
			if it.Kind != yaml.ScalarNode || it.Tag == "!!null" {
				p.add(p.pos(it), "list %q item %d must be a string, not %s", k.Value, j, yamlnode.KindName(it))
				continue
			}
			l.Items = append(l.Items, it.Value)
			l.itemPos = append(l.itemPos, p.pos(it))
		}
	}
	return out
}

// checkLists checks given lists against the managed lists the rulesets
// declare: every name declared, every item valid for each type it is
// declared with (cidr items become canonical).
func (p *parser) checkLists(declared map[string][]rules.ListType, where string, given map[string]*ListItems) {
	for _, name := range sortedNames(given) {
		l := given[name]
		types, ok := declared[name]
		if !ok {
			p.add(l.Pos, "%slist %q: no ruleset of this file declares it managed (%s)", where, name, declaredText(declared))
			continue
		}
		for _, t := range types {
			for i, it := range l.Items {
				c, err := rules.CanonicalListItem(t, it)
				if err != nil {
					p.add(l.itemPos[i], "%slist %q (%s) item %d %s: %v", where, name, t, i, strconv.Quote(it), err)
					continue
				}
				if t == rules.ListCIDR {
					l.Items[i] = c
				}
			}
		}
	}
}

// declaredLists returns the managed lists of rulesets with their types.
func declaredLists(rulesets []*rules.Compiled) map[string][]rules.ListType {
	out := map[string][]rules.ListType{}
	for _, c := range rulesets {
		for _, d := range c.ManagedLists() {
			if !slices.Contains(out[d.Name], d.Type) {
				out[d.Name] = append(out[d.Name], d.Type)
			}
		}
	}
	return out
}

func declaredText(declared map[string][]rules.ListType) string {
	if len(declared) == 0 {
		return "they declare no managed list"
	}
	return "managed: " + strings.Join(sortedNames(declared), ", ")
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// setLists gives the file's managed lists the items of test t: its own,
// else the file's, else opts.Lists, else none.
func (f *File) setLists(t *Test, opts Options) {
	if f.managed == nil {
		return
	}
	for name := range declaredLists(f.Rulesets) {
		var items []string
		switch {
		case t.Lists[name] != nil:
			items = t.Lists[name].Items
		case f.Lists[name] != nil:
			items = f.Lists[name].Items
		default:
			items = opts.Lists[name]
		}
		f.managed.Set(name, items)
	}
}
