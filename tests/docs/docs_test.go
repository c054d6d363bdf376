package docs

import (
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/google/go-cmp/cmp"
)

// TestCitationsExist fails for every link, *.md mention or backticked path
// in the repository's *.md files and Go comments that names nothing in the
// repository.
func TestCitationsExist(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root %s: %v", root, err)
	}
	problems, checked, err := check(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
	t.Logf("%d citations checked", checked)
	// A checker that reads nothing passes everything: make sure it read the
	// citations this repository is known to have.
	if checked < 100 {
		t.Errorf("only %d citations checked; the scan is missing files", checked)
	}
}

// missingDoc is a document the repository does not have, spelt so that
// searching the repository for its name finds nothing.
const missingDoc = "DESIGN" + ".md"

// TestCheckFindsBrokenCitations runs the checker on a small tree with one
// citation of each kind, good and broken.
func TestCheckFindsBrokenCitations(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":        "module example\n",
		"README.md":     "# Example\n\n## Getting started\n\nSee [the guide](docs/guide.md), [gone](docs/gone.md) and [web](https://example.com/x.md).\nJump to [start](#getting-started).\nThe contract is " + missingDoc + " §3.\n\n```sh\ncat docs/made-by-this-command.md\n```\n",
		"docs/guide.md": "# Guide\n\n## Usage\n\n## Usage\n\nBack to [top](../README.md#getting-started), [nowhere](../README.md#no-such-heading), [second](#usage-1).\nThe code is in `pkg/a.go` and `pkg/missing.go`; `rules.Event` is no path.\n",
		"pkg/a.go":      "package pkg\n\n// See docs/guide.md#usage and docs/guide.md#nope, and `pkg/b.go`.\nvar s = `pkg/not-a-comment.go`\n",
	}
	for name, text := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, _, err := check(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`README.md:5: link "docs/gone.md": no such file`,
		`README.md:7: "` + missingDoc + `": no such file`,
		`docs/guide.md:7: link "../README.md#no-such-heading": no heading "no-such-heading" in README.md`,
		"docs/guide.md:8: `pkg/missing.go`: no such file",
		`pkg/a.go:3: "docs/guide.md#nope": no heading "nope" in docs/guide.md`,
		"pkg/a.go:3: `pkg/b.go`: no such file",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

var (
	// mdLink is a markdown link or image: [text](target "title").
	mdLink = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	// mdMention is a *.md file named in text, with an optional fragment; it
	// starts after a space, bracket, quote or backtick, so that absolute
	// paths and URLs are not taken apart.
	mdMention = regexp.MustCompile("(?:^|[\\s(\\[\"'`])((?:\\.\\./|[A-Za-z0-9_.-]+/)*[A-Za-z0-9_-]+\\.md)(#[A-Za-z0-9_-]+)?")
	// backticked is a backticked path: two or more elements, no spaces,
	// globs or placeholders.
	backticked = regexp.MustCompile("`(\\.{0,2}/?[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)+/?)`")
	// fence opens or closes a fenced code block.
	fence = regexp.MustCompile("^\\s*(```|~~~)")
)

// check reads every *.md and *.go file under root, except hidden folders,
// testdata and third_party, and returns one line per broken citation, as
// "file:line: what", and how many citations it checked.
func check(root string) (problems []string, checked int, err error) {
	c := &checker{root: root, headings: map[string][]string{}}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "third_party") {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(name) {
		case ".md", ".go":
			return c.file(path)
		}
		return nil
	})
	return c.problems, c.checked, err
}

type checker struct {
	root     string
	problems []string
	checked  int
	headings map[string][]string // anchors by absolute *.md path
}

func (c *checker) file(path string) error {
	rel, err := filepath.Rel(c.root, path)
	if err != nil {
		return err
	}
	rel = filepath.ToSlash(rel)
	dir := filepath.Dir(path)
	if strings.HasSuffix(path, ".go") {
		// Only comments: string literals in Go code are data, not citations.
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		for _, g := range f.Comments {
			for _, cm := range g.List {
				first := fset.Position(cm.Slash).Line
				for i, line := range strings.Split(cm.Text, "\n") {
					c.line(rel, first+i, line, dir, false)
				}
			}
		}
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	inFence := false
	for i, line := range strings.Split(string(b), "\n") {
		if fence.MatchString(line) {
			inFence = !inFence
			continue
		}
		if !inFence {
			c.line(rel, i+1, line, dir, true)
		}
	}
	return nil
}

// line checks the citations of one line of file rel (in folder dir).
func (c *checker) line(rel string, n int, line, dir string, isMD bool) {
	report := func(format string, args ...any) {
		c.problems = append(c.problems, fmt.Sprintf("%s:%d: ", rel, n)+fmt.Sprintf(format, args...))
	}
	if isMD {
		for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
			c.link(m[1], dir, report)
		}
		// A link's target is checked as a link, not again as a mention.
		line = mdLink.ReplaceAllString(line, "]()")
	}
	for _, m := range mdMention.FindAllStringSubmatch(line, -1) {
		c.mention(m[1], strings.TrimPrefix(m[2], "#"), dir, report)
	}
	for _, m := range backticked.FindAllStringSubmatch(line, -1) {
		c.path(m[1], dir, report)
	}
}

// link checks a markdown link's target, relative to the citing file.
func (c *checker) link(target, dir string, report func(string, ...any)) {
	if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") || strings.HasPrefix(target, "#") {
		return
	}
	c.checked++
	file, frag, _ := strings.Cut(target, "#")
	p := filepath.Join(dir, filepath.FromSlash(file))
	if strings.HasPrefix(file, "/") {
		p = filepath.Join(c.root, filepath.FromSlash(file))
	}
	if _, err := os.Stat(p); err != nil {
		report("link %q: no such file", target)
		return
	}
	if frag != "" && strings.HasSuffix(file, ".md") && !c.hasHeading(p, frag) {
		report("link %q: no heading %q in %s", target, frag, c.relative(p))
	}
}

// mention checks a *.md file named in text: relative to the citing file or
// to the repository's root, with its fragment a heading of either.
func (c *checker) mention(file, frag, dir string, report func(string, ...any)) {
	c.checked++
	var found []string
	for _, p := range []string{filepath.Join(dir, filepath.FromSlash(file)), filepath.Join(c.root, filepath.FromSlash(file))} {
		if _, err := os.Stat(p); err == nil && !slices.Contains(found, p) {
			found = append(found, p)
		}
	}
	if len(found) == 0 {
		report("%q: no such file", file)
		return
	}
	if frag == "" {
		return
	}
	for _, p := range found {
		if c.hasHeading(p, frag) {
			return
		}
	}
	report("%q: no heading %q in %s", file+"#"+frag, frag, c.relative(found[0]))
}

// path checks a backticked path whose first element is a folder next to the
// citing file or at the root.
func (c *checker) path(p, dir string, report func(string, ...any)) {
	if strings.Contains(p, "...") || hasPlaceholder(p) || slices.Contains(tutorialFiles, p) {
		return // a package pattern, a name to fill in, or a file a tutorial has the reader write
	}
	first, _, _ := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	var bases []string
	for _, base := range []string{dir, c.root} {
		if fi, err := os.Stat(filepath.Join(base, first)); err == nil && fi.IsDir() && !slices.Contains(bases, base) {
			bases = append(bases, base)
		}
	}
	if len(bases) == 0 {
		return
	}
	c.checked++
	for _, base := range bases {
		if _, err := os.Stat(filepath.Join(base, filepath.FromSlash(p))); err == nil {
			return
		}
	}
	report("`%s`: no such file", p)
}

// tutorialFiles are files that a tutorial in docs/ tells the reader to
// create (tests/e2e runs those tutorials): they are cited before they exist.
var tutorialFiles = []string{"rulesets/takeover_test.yaml"}

// placeholders are the upper-case words docs use for a name to fill in
// (`testdata/NAME.jsonl`).
var placeholders = []string{"NAME", "FILE", "DIR", "PATH", "TOPIC", "ID", "N"}

func hasPlaceholder(p string) bool {
	for elem := range strings.SplitSeq(p, "/") {
		base, _, _ := strings.Cut(elem, ".")
		if slices.Contains(placeholders, base) {
			return true
		}
	}
	return false
}

func (c *checker) relative(p string) string {
	if rel, err := filepath.Rel(c.root, p); err == nil {
		return filepath.ToSlash(rel)
	}
	return p
}

// hasHeading reports whether the *.md file at p has a heading whose anchor
// is frag.
func (c *checker) hasHeading(p, frag string) bool {
	anchors, ok := c.headings[p]
	if !ok {
		anchors = headingAnchors(p)
		c.headings[p] = anchors
	}
	return slices.Contains(anchors, frag)
}

// headingAnchors returns the anchors GitHub gives the headings of a *.md
// file (outside fenced code blocks).
func headingAnchors(p string) []string {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil
	}
	var anchors []string
	seen := map[string]int{}
	inFence := false
	for line := range strings.SplitSeq(string(b), "\n") {
		if fence.MatchString(line) {
			inFence = !inFence
			continue
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		text := strings.TrimSpace(strings.TrimLeft(line, "#"))
		a := anchor(text)
		if k := seen[a]; k > 0 {
			anchors = append(anchors, fmt.Sprintf("%s-%d", a, k))
		} else {
			anchors = append(anchors, a)
		}
		seen[a]++
	}
	return anchors
}

// anchor is GitHub's anchor of a heading's text: lower case, letters,
// digits, '-' and '_' kept, spaces as '-', everything else dropped.
func anchor(text string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
