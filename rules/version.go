package rules

import (
	"fmt"
	"sort"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// ruleVersion hashes a canonical rendering of everything that decides what
// a rule matches and what its alerts say: its own fields (not description
// or enabled, which change neither), the schema (it changes decoding) and
// the contents of the lists it reads (a managed list's declaration only:
// its items change while the rule runs). Formatting and comments in the YAML
// do not count, so re-uploading an unchanged rule keeps its version, its
// running partial matches and its alert ids.
func ruleVersion(rs *Ruleset, r *Rule, listsUsed map[string]bool) string {
	var b strings.Builder
	w := func(k string, v any) { fmt.Fprintf(&b, "%s=%q\n", k, fmt.Sprint(v)) }
	w("id", r.ID)
	w("severity", r.Severity)
	w("when", r.When)
	w("within", int64(r.Within))
	w("skip", string(r.Skip.Kind)+":"+r.Skip.Step)
	writeSteps(w, r.Pattern)
	if r.Aggregate != nil {
		// Only aggregate rules add lines, so that other rules keep their
		// versions.
		writeAggregate(w, r.Aggregate)
	}
	w("summary", r.Alert.Summary)
	keys := make([]string, 0, len(r.Alert.Labels))
	for k := range r.Alert.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		w("label."+k, r.Alert.Labels[k])
	}
	w("on_timeout", r.Alert.OnTimeout)
	if s := r.Alert.Suppress; s != nil {
		// Only a rule with suppression has these lines: the others keep
		// their versions.
		w("suppress.for", int64(s.For))
		for _, by := range s.By {
			w("suppress.by", by)
		}
	}
	for _, f := range rs.Schema {
		w("schema."+f.Name, f.Type)
	}
	for _, name := range rs.listNames() {
		if !listsUsed[name] {
			continue
		}
		// A managed list's items are data, edited while its rules run:
		// only its declaration is part of the version.
		d := rs.ListDecls[name]
		switch {
		case d != nil && d.Managed:
			w("list."+name, "managed "+string(d.Type))
		case d != nil:
			w("list."+name, string(d.Type)+" "+fmt.Sprintf("%#v", rs.Lists[name]))
		default:
			w("list."+name, fmt.Sprintf("%#v", rs.Lists[name]))
		}
	}
	return fmt.Sprintf("%08x", uint32(xxhash.Sum64String(b.String())))
}

// writeSteps renders a pattern's steps for ruleVersion. A group adds its
// own lines around its steps; a pattern without groups renders as it
// always has, so that its rules keep their versions.
func writeSteps(w func(k string, v any), steps []*Step) {
	for _, s := range steps {
		if s.Group {
			w("group", s.Name)
		} else {
			w("step", s.Name)
			w("where", s.Where)
		}
		w("contiguity", s.Contiguity)
		w("times", fmt.Sprintf("%d..%d", s.Min, s.Max))
		w("optional", s.Optional)
		w("greedy", s.Greedy)
		w("loop", s.Loop)
		w("until", s.Until)
		if s.Group {
			w("group.steps", len(s.Steps))
			writeSteps(w, s.Steps)
			w("group.end", s.Name)
			continue
		}
		w("not", s.Not)
		w("step.within", int64(s.Within))
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
