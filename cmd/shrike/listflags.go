package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/shrike-cep/shrike/rules"
)

// listFlagHelp is the help of --list, shared by run, test, explain and
// diff.
const listFlagHelp = "items of the managed list `NAME=FILE` (one item per line, # comments); repeat for several lists; a managed list given none is empty"

// listFile is one --list NAME=FILE: the items read and their lines.
type listFile struct {
	name, file string
	items      []string
	lines      []int
}

// readListFlags reads the files of --list NAME=FILE values. A name given
// twice, an empty name or file, and a file that cannot be read are
// errors.
func readListFlags(specs []string) ([]*listFile, error) {
	var out []*listFile
	seen := map[string]bool{}
	for _, spec := range specs {
		name, file, ok := strings.Cut(spec, "=")
		switch {
		case !ok || name == "" || file == "":
			return nil, usageError{fmt.Errorf("--list %q: want NAME=FILE", spec)}
		case seen[name]:
			return nil, usageError{fmt.Errorf("--list %s: given twice", name)}
		}
		seen[name] = true
		src, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--list %s: %w", name, err)
		}
		lf := &listFile{name: name, file: file}
		for i, line := range strings.Split(string(src), "\n") {
			for _, item := range rules.ParseListText([]byte(line)) {
				lf.items = append(lf.items, item)
				lf.lines = append(lf.lines, i+1)
			}
		}
		if len(lf.items) > rules.MaxListItems {
			return nil, fmt.Errorf("--list %s: %s holds %d items, over the limit of %d", name, file, len(lf.items), rules.MaxListItems)
		}
		out = append(out, lf)
	}
	return out, nil
}

// testListFlags checks the --list files of `shrike test` against the
// managed lists of one test file's rulesets, notes in declared the names
// they declare, and returns the items for ruletest.Options.Lists.
func testListFlags(lists []*listFile, compiled []*rules.Compiled, declared map[string]bool) (map[string][]string, error) {
	var mine []*listFile
	names := map[string]bool{}
	for _, c := range compiled {
		for _, d := range c.ManagedLists() {
			names[d.Name] = true
		}
	}
	for _, lf := range lists {
		if names[lf.name] {
			declared[lf.name] = true
			mine = append(mine, lf)
		}
	}
	store := rules.NewManagedLists()
	if err := setListFlags(store, mine, compiled); err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, lf := range mine {
		out[lf.name], _ = store.Items(lf.name)
	}
	return out, nil
}

// setListFlags checks the --list files against the managed lists the
// compiled rulesets declare and sets their items in store: a list no
// ruleset declares is a usage error; a bad item is named by file and
// line.
func setListFlags(store *rules.ManagedLists, lists []*listFile, compiled ...[]*rules.Compiled) error {
	declared := map[string][]rules.ListType{}
	for _, set := range compiled {
		for _, c := range set {
			for _, d := range c.ManagedLists() {
				if !slices.Contains(declared[d.Name], d.Type) {
					declared[d.Name] = append(declared[d.Name], d.Type)
				}
			}
		}
	}
	var errs []string
	for _, lf := range lists {
		types, ok := declared[lf.name]
		if !ok {
			names := make([]string, 0, len(declared))
			for n := range declared {
				names = append(names, n)
			}
			slices.Sort(names)
			what := "they declare no managed list"
			if len(names) > 0 {
				what = "managed: " + strings.Join(names, ", ")
			}
			return usageError{fmt.Errorf("--list %s: no ruleset declares a managed list %q (%s)", lf.name, lf.name, what)}
		}
		items := slices.Clone(lf.items)
		for _, t := range types {
			for i, it := range lf.items {
				c, err := rules.CanonicalListItem(t, it)
				if err != nil {
					if len(errs) < 20 {
						errs = append(errs, fmt.Sprintf("%s:%d: list %q (%s): item %s: %v", lf.file, lf.lines[i], lf.name, t, strconv.Quote(it), err))
					}
					continue
				}
				if t == rules.ListCIDR {
					items[i] = c
				}
			}
		}
		store.Set(lf.name, items)
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n"))
	}
	return nil
}
