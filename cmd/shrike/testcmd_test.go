package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestTestExitCodes pins the statuses of `shrike test`: 0 all passed, 1 a
// test failed, 3 a file did not load (over 1), 2 a usage error.
func TestTestExitCodes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("shop.yaml", "ruleset: shop\nrules:\n  - id: r\n    when: event.type == \"x\"\n")
	pass := write("pass_test.yaml", "rulesets: [shop.yaml]\ntests:\n  - name: p\n    events: [{type: x}]\n    expect: [{rule: r}]\n")
	fail := write("fail_test.yaml", "rulesets: [shop.yaml]\ntests:\n  - name: f\n    events: [{type: x}]\n    expect: []\n")
	broken := write("broken_test.yaml", "rulesets: [shop.yaml]\ntests:\n  - name: b\n    expect: []\n")
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"all pass", []string{"test", pass}, 0},
		{"a test fails", []string{"test", pass, fail}, 1},
		{"a file does not load", []string{"test", broken}, 3},
		{"not loading wins over failing", []string{"test", fail, broken}, 3},
		{"a missing file", []string{"test", filepath.Join(dir, "nope_test.yaml")}, 3},
		{"a directory without tests", []string{"test", t.TempDir()}, 3},
		{"--run deselects the failing test", []string{"test", "--run", "^p$", pass, fail}, 0},
		{"a bad --run", []string{"test", "--run", "(", pass}, 2},
		{"no arguments", []string{"test"}, 2},
		{"junit into a missing folder", []string{"test", "--junit", filepath.Join(dir, "no", "r.xml"), pass}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			e := env{stdin: strings.NewReader(""), stdout: newOutput(&stdout), stderr: newOutput(&stderr), clock: time.Now}
			if got := run(context.Background(), tt.args, e); got != tt.want {
				t.Errorf("exit status %d, want %d\nstdout:\n%s\nstderr:\n%s", got, tt.want, stdout.String(), stderr.String())
			}
		})
	}
}

func TestTestFiles(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a_test.yaml", "b_test.yml", "c.yaml", "sub/d_test.yaml", "sub/deeper/e_test.yaml", "other/x.yaml"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir)
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"."}, []string{"a_test.yaml", "b_test.yml"}},
		{[]string{"./..."}, []string{"a_test.yaml", "b_test.yml", "sub/d_test.yaml", "sub/deeper/e_test.yaml"}},
		{[]string{"..."}, []string{"a_test.yaml", "b_test.yml", "sub/d_test.yaml", "sub/deeper/e_test.yaml"}},
		{[]string{"sub/..."}, []string{"sub/d_test.yaml", "sub/deeper/e_test.yaml"}},
		{[]string{"c.yaml", "sub"}, []string{"c.yaml", "sub/d_test.yaml"}},
		{[]string{"other"}, []string{"other: no *_test.yaml files in other"}},
		{[]string{"nope/..."}, []string{"nope/...: test file: stat nope: no such file or directory"}},
		{[]string{"c.yaml/..."}, []string{"c.yaml/...: test file: c.yaml is not a directory"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var got []string
			for _, p := range testFiles(tt.args) {
				if p.err != nil {
					got = append(got, p.name+": "+p.err.Error())
				} else {
					got = append(got, p.name)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("testFiles(%q) (-want +got):\n%s", tt.args, diff)
			}
		})
	}
}
