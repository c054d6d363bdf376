package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shrike-cep/shrike/cep/ruletest"
)

// exitStatus ends a command that has already reported its outcome with a
// status of its own (shrike test: 1 a test failed, 3 a file did not load).
type exitStatus int

func (s exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(s)) }

// Exit statuses of `shrike test`.
const (
	exitTestFailed  exitStatus = 1
	exitTestNotLoad exitStatus = 3
)

type testFlags struct {
	run   string
	junit string
	lists []string
}

func newTestCmd(e env) *cobra.Command {
	var f testFlags
	cmd := &cobra.Command{
		Use:   "test [flags] TESTFILE... | DIR | DIR/...",
		Short: "Run rule unit tests",
		Long: `Test runs rule unit tests: YAML files that name rulesets, give events (inline,
as Kafka records, or a recorded file) and list the alerts expected
(docs/testing.md). Each test replays its events through the rulesets with the
matcher the engine runs, and its alerts are compared with the expected ones.

A DIR argument stands for its *_test.yaml files, DIR/... for every
*_test.yaml file below DIR.

Per file the report says SUCCESS or FAILED, and for each failed test its
file:line, name, the missing and unexpected alerts, and for an alert of the
right rule and key what differed. Events that could not be used
(dead-lettered) fail their test.

Exit status: 0 when every test passed, 1 when a test failed, 3 when a test
file or one of its rulesets could not be loaded, 2 for a usage error.`,
		Example: `  shrike test rulesets/payments_test.yaml
  shrike test rulesets/...
  shrike test --run 'takeover' --junit report.xml rulesets/...`,
		Args: argsAtLeast(1, "test file argument"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTests(cmd, e, f, args)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.run, "run", "", "run only the tests whose name matches `REGEX`")
	fl.StringVar(&f.junit, "junit", "", "also write a JUnit XML report to `FILE`")
	fl.StringArrayVar(&f.lists, "list", nil, listFlagHelp+" (for tests whose file gives the list no items)")
	return cmd
}

func runTests(cmd *cobra.Command, e env, f testFlags, args []string) error {
	opts := ruletest.Options{Clock: e.clock}
	if f.run != "" {
		re, err := regexp.Compile(f.run)
		if err != nil {
			return usageError{fmt.Errorf("--run: %w", err)}
		}
		opts.Run = re
	}
	var bars []*progress
	opts.WrapEvents = func(name string, size int64, r io.Reader) io.Reader {
		if size < progressMinBytes {
			return r
		}
		p := newProgress(e.stderr, size, filepath.Base(name))
		bars = append(bars, p)
		return p.reader(r, !strings.HasSuffix(name, ".gz"))
	}
	lists, err := readListFlags(f.lists)
	if err != nil {
		return err
	}
	declared := map[string]bool{}
	var results []*ruletest.FileResult
	for _, path := range testFiles(args) {
		if path.err != nil {
			results = append(results, &ruletest.FileResult{Path: path.name, LoadErr: path.err})
			continue
		}
		tf, err := ruletest.Load(path.name)
		if err != nil {
			results = append(results, &ruletest.FileResult{Path: path.name, LoadErr: err})
			continue
		}
		if opts.Lists, err = testListFlags(lists, tf.Rulesets, declared); err != nil {
			return err
		}
		res, err := tf.Run(cmd.Context(), opts)
		for _, p := range bars {
			p.finish()
		}
		bars = bars[:0]
		if err != nil {
			return err
		}
		results = append(results, res)
	}
	color := isTerminal(underlying(e.stdout)) && os.Getenv("NO_COLOR") == ""
	if err := ruletest.WriteReport(e.stdout, results, ruletest.ReportOptions{Color: color}); err != nil {
		return err
	}
	if f.junit != "" {
		if err := writeJUnitFile(f.junit, results); err != nil {
			return err
		}
	}
	for _, lf := range lists {
		if !declared[lf.name] {
			return usageError{fmt.Errorf("--list %s: no ruleset of the test files declares a managed list %q", lf.name, lf.name)}
		}
	}
	var ran int
	status := exitStatus(0)
	for _, r := range results {
		ran += len(r.Tests)
		switch {
		case r.LoadErr != nil:
			status = exitTestNotLoad
		case !r.OK() && status == 0:
			status = exitTestFailed
		}
	}
	if ran == 0 && opts.Run != nil && status == 0 {
		fmt.Fprintf(e.stderr, "shrike: no test matches --run %s\n", f.run)
	}
	if status != 0 {
		return status
	}
	return nil
}

func writeJUnitFile(name string, results []*ruletest.FileResult) error {
	out, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	if err := ruletest.WriteJUnit(out, results); err != nil {
		_ = out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	return nil
}

// testPath is one test file to load, or the reason an argument gave none.
type testPath struct {
	name string
	err  error
}

// testFiles expands the arguments of `shrike test`: a file is taken as
// given, DIR stands for its *_test.yaml (and *_test.yml) files and DIR/...
// for all of them below DIR, in lexical order. An argument that names
// nothing becomes a load error of its own, so that one typo does not hide
// the results of the other files.
func testFiles(args []string) []testPath {
	var out []testPath
	for _, arg := range args {
		dir, recursive := arg, false
		if arg == "..." || strings.HasSuffix(arg, "/...") {
			dir, recursive = strings.TrimSuffix(strings.TrimSuffix(arg, "..."), "/"), true
			if dir == "" {
				dir = "."
			}
		}
		fi, err := os.Stat(dir)
		if err != nil {
			out = append(out, testPath{name: arg, err: fmt.Errorf("test file: %w", err)})
			continue
		}
		if !fi.IsDir() {
			if recursive {
				out = append(out, testPath{name: arg, err: fmt.Errorf("test file: %s is not a directory", dir)})
				continue
			}
			out = append(out, testPath{name: arg})
			continue
		}
		var found []testPath
		err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if p != dir && !recursive {
					return filepath.SkipDir
				}
				return nil
			}
			if isTestFile(d.Name()) {
				found = append(found, testPath{name: p})
			}
			return nil
		})
		switch {
		case err != nil:
			out = append(out, testPath{name: arg, err: fmt.Errorf("test files: %w", err)})
		case len(found) == 0:
			out = append(out, testPath{name: arg, err: errors.New("no *_test.yaml files in " + dir)})
		default:
			out = append(out, found...)
		}
	}
	return out
}

func isTestFile(name string) bool {
	return strings.HasSuffix(name, "_test.yaml") || strings.HasSuffix(name, "_test.yml")
}
