package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/shrike-cep/shrike/rules"
)

// rulesetFiles expands ruleset arguments: each may be a comma-separated
// list, and a directory stands for its *.yaml and *.yml files (sorted, not
// recursive). Files named *_test.yaml in a directory are rule unit tests
// for `shrike test`, not rulesets, and are left out; named explicitly, a
// file is always taken.
func rulesetFiles(args []string) ([]string, error) {
	var files []string
	for _, arg := range args {
		for _, p := range strings.Split(arg, ",") {
			if p == "" {
				continue
			}
			fi, err := os.Stat(p)
			if err != nil {
				return nil, fmt.Errorf("ruleset: %w", err)
			}
			if !fi.IsDir() {
				files = append(files, p)
				continue
			}
			entries, err := os.ReadDir(p)
			if err != nil {
				return nil, fmt.Errorf("ruleset: %w", err)
			}
			var found []string
			for _, de := range entries {
				name := de.Name()
				ext := filepath.Ext(name)
				if de.IsDir() || (ext != ".yaml" && ext != ".yml") || strings.HasSuffix(strings.TrimSuffix(name, ext), "_test") {
					continue
				}
				found = append(found, filepath.Join(p, name))
			}
			if len(found) == 0 {
				return nil, fmt.Errorf("ruleset: no *.yaml files in %s", p)
			}
			slices.Sort(found)
			files = append(files, found...)
		}
	}
	if len(files) == 0 {
		return nil, errors.New("no ruleset given")
	}
	return files, nil
}

// loadResult is the outcome of loading one ruleset file.
type loadResult struct {
	file     string
	compiled *rules.Compiled
	err      error
}

// loadRulesets loads every file, so that one run reports every problem of
// every file. Errors are printed on stderr as they come: a rules.ErrorList
// prints one `file:line:col: rule "id": message` per problem, with the CEL
// caret snippet. A loaded file's warnings are printed the same way, as
// `file:line:col: warning: …`. ok is false when any file failed; warnings
// do not count.
//
// The rulesets read their managed lists from store (nil: each its own,
// empty).
func loadRulesets(files []string, stderr *output, store *rules.ManagedLists) (results []loadResult, ok bool) {
	ok = true
	names := map[string]string{} // ruleset name → file defining it
	for _, f := range files {
		res := loadResult{file: f}
		src, err := os.ReadFile(f)
		if err == nil {
			res.compiled, err = rules.Load(f, src, rules.CompileOptions{Lists: store})
		}
		if err == nil {
			// Alert ids and rule counters are keyed by ruleset name: two
			// files may not claim the same one.
			name := res.compiled.Name
			if prev, dup := names[name]; dup {
				err = fmt.Errorf("%s: ruleset %q is already defined in %s", f, name, prev)
				res.compiled = nil
			} else {
				names[name] = f
			}
		}
		if err == nil && len(res.compiled.Warnings) > 0 {
			// Warnings do not fail the file: it loads and runs as written.
			fmt.Fprintln(stderr, res.compiled.Warnings)
		}
		if err != nil {
			res.err = err
			ok = false
			if errors.Is(err, rules.ErrInvalid) {
				fmt.Fprintln(stderr, err)
			} else {
				fmt.Fprintf(stderr, "shrike: %v\n", err)
			}
		}
		results = append(results, res)
	}
	return results, ok
}
