package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var errDiskFull = errors.New("disk full")

// failingWriter accepts n writes, then fails every later one.
type failingWriter struct {
	n      int
	writes int
	buf    bytes.Buffer
}

func (w *failingWriter) Write(p []byte) (int, error) {
	w.writes++
	if w.writes > w.n {
		return 0, errDiskFull
	}
	return w.buf.Write(p)
}

// shortWriter writes half of what it is given and reports no error.
type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) / 2, nil }

func TestOutputKeepsFirstError(t *testing.T) {
	fw := &failingWriter{n: 1}
	o := newOutput(fw)
	if _, err := io.WriteString(o, "one\n"); err != nil {
		t.Fatalf("first write: %v", err)
	}
	if err := o.Err(); err != nil {
		t.Fatalf("Err after a good write: %v", err)
	}
	if _, err := io.WriteString(o, "two\n"); !errors.Is(err, errDiskFull) {
		t.Fatalf("second write: %v, want %v", err, errDiskFull)
	}
	// Sticky: the third write does not reach the writer, so the output
	// has no hole in it.
	if _, err := io.WriteString(o, "three\n"); !errors.Is(err, errDiskFull) {
		t.Errorf("third write: %v, want %v", err, errDiskFull)
	}
	if fw.writes != 2 {
		t.Errorf("the writer saw %d writes, want 2", fw.writes)
	}
	if !errors.Is(o.Err(), errDiskFull) {
		t.Errorf("Err: %v, want %v", o.Err(), errDiskFull)
	}
	if got := fw.buf.String(); got != "one\n" {
		t.Errorf("written %q, want %q", got, "one\n")
	}

	s := newOutput(shortWriter{})
	if _, err := io.WriteString(s, "four\n"); !errors.Is(err, io.ErrShortWrite) {
		t.Errorf("short write: %v, want %v", err, io.ErrShortWrite)
	}
	if !errors.Is(s.Err(), io.ErrShortWrite) {
		t.Errorf("Err after a short write: %v, want %v", s.Err(), io.ErrShortWrite)
	}
}

// TestStdoutWriteError runs commands whose stdout fails: a command that
// would succeed exits 1 and says so on stderr instead of exiting 0 with
// its output lost; one that failed anyway reports its own error.
func TestStdoutWriteError(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, content)
		return p
	}
	good := write("good.yaml", "ruleset: g\nrules:\n  - id: r\n    when: event.type == \"x\"\n")
	bad := write("bad.yaml", "ruleset: b\nrules:\n  - id: r\n    when: event.type ==\n")
	events := write("events.jsonl", "{\"type\":\"x\"}\n")
	const writeFailed = "shrike: writing output: disk full\n"
	tests := []struct {
		name       string
		args       []string
		wantStatus int
		// wantStderr is stderr exactly, or with a trailing "..." its start.
		wantStderr string
	}{
		{"check", []string{"check", good}, 1, writeFailed},
		// cobra returns the bare write error of the version line.
		{"version", []string{"--version"}, 1, writeFailed},
		{"help", []string{"check", "--help"}, 1, writeFailed},
		{"check that fails anyway", []string{"check", bad}, 1, bad + ":4:24: ..."},
		{"gen checks its writes", []string{"gen", "--scenario", "payments", "--events", "10", "-q"}, 1, "shrike: gen: disk full\n"},
		{"run checks its alert writes", []string{"run", "-q", "--rules", good, events}, 1, "shrike: ..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			e := env{stdin: strings.NewReader(""), stdout: newOutput(&failingWriter{}), stderr: newOutput(&stderr), clock: time.Now}
			if got := run(context.Background(), tt.args, e); got != tt.wantStatus {
				t.Errorf("exit status %d, want %d\nstderr:\n%s", got, tt.wantStatus, stderr.String())
			}
			got := stderr.String()
			if prefix, ok := strings.CutSuffix(tt.wantStderr, "..."); ok {
				if !strings.HasPrefix(got, prefix) {
					t.Errorf("stderr does not start with %q:\n%s", prefix, got)
				}
				if strings.Contains(got, "writing output") {
					t.Errorf("a command that failed on its own reports the write as well:\n%s", got)
				}
				return
			}
			if diff := cmp.Diff(tt.wantStderr, got); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStdoutDevFull is `shrike check good.yaml > /dev/full`: the write
// error of a real file.
func TestStdoutDevFull(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full on this system: %v", err)
	}
	t.Cleanup(func() { _ = full.Close() })
	good := t.TempDir() + "/good.yaml"
	if err := os.WriteFile(good, []byte("ruleset: g\nrules:\n  - id: r\n    when: event.type == \"x\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	e := env{stdin: strings.NewReader(""), stdout: newOutput(full), stderr: newOutput(&stderr), clock: time.Now}
	if got := run(context.Background(), []string{"check", good}, e); got != 1 {
		t.Errorf("exit status %d, want 1", got)
	}
	if want := "shrike: writing output: write /dev/full: no space left on device\n"; stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
}

// TestStderrWriteErrorIgnored: a failing stderr has nowhere to be reported
// and changes neither the exit status nor stdout.
func TestStderrWriteErrorIgnored(t *testing.T) {
	var stdout bytes.Buffer
	e := env{stdin: strings.NewReader(""), stdout: newOutput(&stdout), stderr: newOutput(&failingWriter{}), clock: time.Now}
	// gen's summary on stderr is the only thing it writes there.
	if got := run(context.Background(), []string{"gen", "--scenario", "payments", "--events", "10"}, e); got != 0 {
		t.Errorf("exit status %d, want 0", got)
	}
	if !errors.Is(e.stderr.Err(), errDiskFull) {
		t.Errorf("stderr was not written: its error is %v", e.stderr.Err())
	}
	if got := strings.Count(stdout.String(), "\n"); got != 10 {
		t.Errorf("stdout has %d events, want 10:\n%s", got, stdout.String())
	}
}
