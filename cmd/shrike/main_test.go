package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

var update = flag.Bool("update", false, "rewrite the expected files of the testscripts")

// testNow is the clock of the shrike command in tests, so that alert output
// (detected_at) can be compared byte for byte.
var testNow = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// testEnv is the environment of the scripts' shrike command: a
// subprocess whose variables are the script's (testscript does not pass
// the test's own on, so a CI runner's SHRIKE_REDIS_ADDR stays out).
func testEnv() env {
	return env{stdin: os.Stdin, stdout: newOutput(os.Stdout), stderr: newOutput(os.Stderr), clock: func() time.Time { return testNow }, environ: os.Environ}
}

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"shrike": func() { os.Exit(run(context.Background(), os.Args[1:], testEnv())) },
	})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		UpdateScripts:       *update,
		RequireExplicitExec: true,
		Cmds:                map[string]func(ts *testscript.TestScript, neg bool, args []string){"gzip": cmdGzip},
	})
}

// cmdGzip compresses FILE into FILE.gz, since txtar archives hold text only.
func cmdGzip(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: gzip FILE")
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write([]byte(ts.ReadFile(args[0])))
	ts.Check(err)
	ts.Check(zw.Close())
	ts.Check(os.WriteFile(ts.MkAbs(args[0]+".gz"), buf.Bytes(), 0o644))
}

// TestExitCodes pins the exit statuses, which testscript can only tell
// apart as zero and non-zero.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, content)
		return p
	}
	good := write("good.yaml", "ruleset: g\nrules:\n  - id: r\n    when: event.type == \"x\"\n")
	bad := write("bad.yaml", "ruleset: b\nrules:\n  - id: r\n    when: event.type ==\n")
	events := write("events.jsonl", "{\"type\":\"x\"}\nnot json\n")
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"check good", []string{"check", good}, 0},
		{"check bad", []string{"check", good, bad}, 1},
		{"check missing file", []string{"check", dir + "/nope.yaml"}, 1},
		{"check without arguments", []string{"check"}, 2},
		{"check a directory without rulesets", []string{"check", t.TempDir()}, 1},
		{"run with a dead-lettered line", []string{"run", "--rules", good, events}, 0},
		{"run with a bad ruleset", []string{"run", "--rules", good + "," + bad, events}, 1},
		{"run with a missing events file", []string{"run", "--rules", good, events, dir + "/nope.jsonl"}, 1},
		{"run without --rules", []string{"run", events}, 2},
		{"run without events", []string{"run", "--rules", good}, 2},
		{"run with an unknown flag", []string{"run", "--nope", "--rules", good, events}, 2},
		{"unknown command", []string{"frobnicate"}, 2},
		{"version", []string{"--version"}, 0},
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
