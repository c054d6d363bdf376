package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDocsChangingRules follows docs/changing-rules.md, "Changing a rule
// safely", in a copy of the shipped rulesets/: every command of its sh
// blocks runs as written, in order, `shrike serve --rules rulesets` (which
// the page says is running) started before the first `shrike rules`
// command. The output a page block shows after a command must be in what
// the command printed. `shrike diff` and `shrike rules shadow diff` exit 1
// when the versions differ, as the page says; the shadow's diff is asked
// again until the generated traffic's alerts reached both versions.
func TestDocsChangingRules(t *testing.T) {
	requireTools(t, "curl")
	root := repoRoot(t)
	page := filepath.Join(root, "docs", "changing-rules.md")
	dir := t.TempDir()
	rulesets := filepath.Join(dir, "rulesets")
	if err := os.Mkdir(rulesets, 0o755); err != nil {
		t.Fatal(err)
	}
	files, err := os.ReadDir(filepath.Join(root, "rulesets"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f.Type().IsRegular() {
			copyFile(t, filepath.Join(root, "rulesets", f.Name()), filepath.Join(rulesets, f.Name()))
		}
	}
	if err := os.Symlink(filepath.Join(root, "rulesets", "testdata"), filepath.Join(rulesets, "testdata")); err != nil {
		t.Fatal(err)
	}

	ports := map[string]int{"kafka": freePort(t), "redis": freePort(t), "http": freePort(t), "grpc": freePort(t)}
	kafka := fmt.Sprintf("127.0.0.1:%d", ports["kafka"])
	httpAddr := fmt.Sprintf("127.0.0.1:%d", ports["http"])
	sh := newReadmeShell(t, dir, kafka, httpAddr)
	env := []string{"SHRIKE_SERVER=" + fmt.Sprintf("127.0.0.1:%d", ports["grpc"])}

	var (
		s        *serve
		last     string // the output of the last command
		lastCmd  string
		ran      []string
		verdicts int // the page's output blocks found in the output
	)
	for _, b := range mdBlocks(t, page) {
		switch b.lang {
		case "":
			if lastCmd == "" {
				t.Fatalf("%s:%d: an output block before any command", page, b.line)
			}
			if !strings.Contains(last, b.text) {
				t.Errorf("%s:%d: $ %s\nprinted:\n%s\nthe page shows:\n%s", page, b.line, lastCmd, last, b.text)
			}
			verdicts++
		case "sh":
			for _, cmd := range shellCommands(b.text) {
				if s == nil && strings.HasPrefix(cmd, "shrike rules ") {
					s = startReadmeServe(t, sh, "go run ./cmd/shrike serve --rules rulesets", ports)
					s.waitReady(t, 60*time.Second)
				}
				switch {
				case strings.HasPrefix(cmd, "shrike rules shadow diff "):
					last = shadowDiffUntilBoth(t, sh, env, cmd)
				case strings.HasPrefix(cmd, "shrike diff "):
					last, _ = runDocCommand(t, sh, env, cmd, 0, 1)
				default:
					last, _ = runDocCommand(t, sh, env, cmd, 0)
				}
				lastCmd = cmd
				ran = append(ran, cmd)
				checkChangingRulesStep(t, cmd, last)
			}
		}
	}
	if s == nil || len(ran) < 10 || verdicts < 2 {
		t.Fatalf("the page ran %d commands (%q), %d output blocks, serve started: %v; want the whole loop", len(ran), ran, verdicts, s != nil)
	}
	// The promoted version is the folder's too.
	got, err := os.ReadFile(filepath.Join(rulesets, "payments.yaml"))
	if err != nil || !bytes.Contains(got, []byte("within: 20m")) {
		t.Errorf("rulesets/payments.yaml after the page: %v\n%s", err, got)
	}
}

// checkChangingRulesStep checks what the page says each kind of command
// shows.
func checkChangingRulesStep(t *testing.T, cmd, out string) {
	t.Helper()
	want := map[string]string{
		"shrike explain --rules rulesets/payments.yaml":  `did not fire: .*the rule's within 10m expired.*unmet step drain`,
		"shrike explain --rules payments-candidate.yaml": `payments/account-takeover\s+fired 1 time: [0-9a-f]{32}`,
		"shrike rules shadow push payments":              `shadow of ruleset payments \(live version 1\)`,
		"shrike rules shadow promote payments":           `ruleset payments version 2: the source of its shadow`,
		"shrike rules versions payments":                 `(?m)^\s*2\s`,
		"shrike diff --rules rulesets/payments.yaml --against payments-candidate.yaml rulesets/testdata/payments.jsonl": `no rule differs`,
	}
	for prefix, re := range want {
		if strings.HasPrefix(cmd, prefix) && !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("$ %s\nprinted:\n%s\nwant it to match %s", cmd, out, re)
		}
	}
}

// runDocCommand runs cmd as the page's reader would, with env added, and
// returns its stdout and exit status, which must be one of ok.
func runDocCommand(t *testing.T, sh *readmeShell, env []string, cmd string, ok ...int) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, "sh", "-c", sh.expand(cmd))
	c.Dir = sh.dir
	c.Env = append(childEnviron(), env...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("$ %s: %v", cmd, err)
	}
	for _, o := range ok {
		if code == o {
			return out.String(), code
		}
	}
	t.Fatalf("$ %s\nexited %d, want one of %v\n(run as: %s)\nstdout:\n%s\nstderr:\n%s", cmd, code, ok, sh.expand(cmd), tail(out.String()), errb.String())
	return "", 0
}

// bothAlerted is a row of `shrike rules shadow diff`'s table with alerts
// in both versions.
var bothAlerted = regexp.MustCompile(`(?m)^\S+\s+yes\s+yes\s+[1-9]`)

// shadowDiffUntilBoth runs the shadow's diff until both versions alerted
// on the generated traffic (the watermark passes the events some seconds
// after they were produced), and returns its last output.
func shadowDiffUntilBoth(t *testing.T, sh *readmeShell, env []string, cmd string) string {
	t.Helper()
	var out string
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, _ = runDocCommand(t, sh, env, cmd, 0, 1)
		if bothAlerted.MatchString(out) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("$ %s\nshowed no alerts in both versions within 90 s:\n%s", cmd, out)
		}
		time.Sleep(2 * time.Second)
	}
}
