package config

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode"

	"go.yaml.in/yaml/v3"
)

var updateDocs = flag.Bool("update", false, "rewrite the generated field table of docs/configuration.md")

// referenceDoc holds the generated table of every configuration field
// between these markers.
const (
	referenceDoc   = "../docs/configuration.md"
	tableBegin     = "<!-- BEGIN GENERATED: configuration fields (go test ./config -run TestReferenceTable -update) -->"
	tableEnd       = "<!-- END GENERATED: configuration fields -->"
	envItemsFooter = "`<N>` is an item's index, from 0."
)

// TestReferenceTable checks that docs/configuration.md lists every field
// of Config with its variable, default and meaning (the first sentence of
// the field's doc comment), as generated from the struct: a new field
// fails this test until the table is regenerated with -update.
func TestReferenceTable(t *testing.T) {
	docs := fieldDocs(t)
	table, missing := referenceTable(docs)
	for _, m := range missing {
		t.Errorf("field %s has no doc comment: write one (its first sentence is its meaning in %s)", m, referenceDoc)
	}
	src, err := os.ReadFile(referenceDoc)
	if err != nil {
		t.Fatal(err)
	}
	text := string(src)
	begin, end := strings.Index(text, tableBegin), strings.Index(text, tableEnd)
	if begin < 0 || end < begin {
		t.Fatalf("%s lacks the markers %q and %q", referenceDoc, tableBegin, tableEnd)
	}
	got := text[begin+len(tableBegin) : end]
	want := "\n" + table
	if got == want {
		return
	}
	if *updateDocs {
		if err := os.WriteFile(referenceDoc, []byte(text[:begin+len(tableBegin)]+want+text[end:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("the field table of %s is not the struct's: run go test ./config -run TestReferenceTable -update\n--- in the file\n%s\n--- generated\n%s", referenceDoc, got, want)
}

// referenceTable is the markdown table of every field, and the fields
// without a doc comment.
func referenceTable(docs map[string]string) (string, []string) {
	var b strings.Builder
	b.WriteString("| field | environment variable | default | meaning |\n|---|---|---|---|\n")
	defaults := DefaultConfig()
	var missing []string
	var walk func(t reflect.Type, v reflect.Value, path, prefix string)
	walk = func(t reflect.Type, v reflect.Value, path, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name := yamlName(f)
			if name == "" {
				continue
			}
			p, env := joinPath(path, name), prefix+strings.ToUpper(name)
			var fv reflect.Value
			if v.IsValid() {
				fv = v.Field(i)
			}
			switch {
			case f.Type.Kind() == reflect.Struct && f.Type != durationType:
				walk(f.Type, fv, p, env+"_")
				continue
			case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
				fmt.Fprintf(&b, "| `%s` | | `[]` | %s |\n", p, cell(docs[t.Name()+"."+f.Name]))
				if docs[t.Name()+"."+f.Name] == "" {
					missing = append(missing, p)
				}
				walk(f.Type.Elem(), reflect.Value{}, p+"[N]", env+"_<N>_")
				continue
			}
			doc := docs[t.Name()+"."+f.Name]
			if doc == "" {
				missing = append(missing, p)
			}
			envCell := "`" + env + "`"
			if f.Tag.Get("secret") == "true" {
				envCell = "never (a secret): `" + env + "_FILE`"
			}
			def := "—"
			if fv.IsValid() {
				def = "`" + defaultText(fv) + "`"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", p, envCell, def, cell(doc))
		}
	}
	walk(reflect.TypeFor[Config](), reflect.ValueOf(defaults), "", EnvPrefix)
	b.WriteString("\n" + envItemsFooter + "\n")
	return b.String(), missing
}

func defaultText(v reflect.Value) string {
	var c Config
	n := c.printNode(v, "")
	if n.Kind == yaml.SequenceNode {
		items := make([]string, len(n.Content))
		for i, it := range n.Content {
			items[i] = it.Value
		}
		return "[" + strings.Join(items, ", ") + "]"
	}
	if n.Value == "" {
		return `""`
	}
	return n.Value
}

func cell(s string) string { return strings.NewReplacer("|", `\|`, "*", `\*`).Replace(s) }

// fieldDocs maps "Type.Field" of the package's structs to the first
// sentence of the field's doc comment, its Go name and verb dropped
// ("Brokers are the seed brokers" → "The seed brokers").
func fieldDocs(t *testing.T) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok {
				return true
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				return true
			}
			for _, field := range st.Fields.List {
				doc := field.Doc
				if doc == nil {
					doc = field.Comment
				}
				for _, id := range field.Names {
					if doc != nil {
						out[ts.Name.Name+"."+id.Name] = firstSentence(doc.Text(), id.Name)
					}
				}
			}
			return false
		})
	}
	return out
}

func firstSentence(doc, goName string) string {
	s := strings.Join(strings.Fields(doc), " ")
	if i := strings.Index(s, ". "); i >= 0 {
		s = s[:i+1]
	}
	if rest, ok := strings.CutPrefix(s, goName+" "); ok {
		for _, verb := range []string{"is ", "are "} {
			if r, ok := strings.CutPrefix(rest, verb); ok {
				rest = r
				break
			}
		}
		s = rest
	}
	if s == "" {
		return s
	}
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}
