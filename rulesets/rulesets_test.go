package rulesets_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/shrike-cep/shrike/cep/ruletest"
	"github.com/shrike-cep/shrike/rules"
)

// testFiles returns every rule unit-test file of the folder.
func testFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no *_test.yaml files")
	}
	return files
}

// TestRulesets runs every *_test.yaml file as `shrike test rulesets/...`
// does and fails with the same report when a test fails.
func TestRulesets(t *testing.T) {
	for _, path := range testFiles(t) {
		t.Run(strings.TrimSuffix(path, "_test.yaml"), func(t *testing.T) {
			f, err := ruletest.Load(path)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			res, err := f.Run(context.Background(), ruletest.Options{})
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if len(res.Tests) == 0 {
				t.Fatal("the file has no tests")
			}
			if !res.OK() {
				var report bytes.Buffer
				if err := ruletest.WriteReport(&report, []*ruletest.FileResult{res}, ruletest.ReportOptions{}); err != nil {
					t.Fatal(err)
				}
				t.Errorf("%d of %d tests failed:\n%s", res.Failed(), len(res.Tests), report.String())
			}
		})
	}
}

// TestCoverage checks the folder's promise to users: every ruleset here is
// tested, and each of its rules has a test in which it must fire and one
// in which its alerts are compared and none is expected.
func TestCoverage(t *testing.T) {
	type coverage struct{ positive, negative bool }
	byRule := map[string]*coverage{} // "ruleset/rule"
	tested := map[string]bool{}      // ruleset name
	for _, path := range testFiles(t) {
		f, err := ruletest.Load(path)
		if err != nil {
			t.Fatalf("load %s: %v", path, err)
		}
		for _, rs := range f.Rulesets {
			tested[rs.Name] = true
		}
		for _, test := range f.Tests {
			expected := map[string]bool{}
			for _, e := range test.Expect {
				expected[e.RuleRef.String()] = true
			}
			for _, rs := range f.Rulesets {
				for _, r := range rs.Rules {
					ref := rs.Name + "/" + r.ID
					c := byRule[ref]
					if c == nil {
						c = &coverage{}
						byRule[ref] = c
					}
					compared := len(test.Only) == 0 || slices.ContainsFunc(test.Only, func(o ruletest.RuleRef) bool { return o.String() == ref })
					c.positive = c.positive || expected[ref]
					c.negative = c.negative || (compared && !expected[ref])
				}
			}
		}
	}

	rulesets, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range rulesets {
		if strings.HasSuffix(path, "_test.yaml") {
			continue
		}
		t.Run(path, func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			rs, err := rules.Load(path, src, rules.CompileOptions{})
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if !tested[rs.Name] {
				t.Fatalf("ruleset %s is not tested by any *_test.yaml file", rs.Name)
			}
			for _, r := range rs.Rules {
				c := byRule[rs.Name+"/"+r.ID]
				if c == nil || !c.positive {
					t.Errorf("rule %s: no test expects it to fire", r.ID)
				}
				if c == nil || !c.negative {
					t.Errorf("rule %s: no test compares its alerts and expects none", r.ID)
				}
			}
		})
	}
}
