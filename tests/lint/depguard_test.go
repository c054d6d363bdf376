package lint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const module = "github.com/shrike-cep/shrike"

// imports writes a Go file of package pkg that imports each of paths for
// its side effects only.
func imports(pkg string, paths ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "package %s\n\nimport (\n", pkg)
	for _, p := range paths {
		fmt.Fprintf(&b, "\t_ %q\n", p)
	}
	b.WriteString(")\n")
	return b.String()
}

// TestDepguardImportDirection lints a throwaway copy of the module layout
// and expects exactly the findings listed: every wrong-direction import is
// refused by the rule named, and every allowed one passes.
func TestDepguardImportDirection(t *testing.T) {
	bin := golangciLint(t)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range []string{"go.mod", "go.sum", ".golangci.yml"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const (
		goRedis = "github.com/redis/go-redis/v9"
		kgo     = "github.com/twmb/franz-go/pkg/kgo"
		kadm    = "github.com/twmb/franz-go/pkg/kadm"
		kfake   = "github.com/twmb/franz-go/pkg/kfake"
		grpc    = "google.golang.org/grpc"
	)
	files := map[string]string{
		// Leaves with nothing to say, so that the imports below resolve.
		"internal/jsonstr/jsonstr.go":   imports("jsonstr"),
		"internal/yamlnode/yamlnode.go": imports("yamlnode"),
		"nfa/nfa.go":                    imports("nfa"),
		"feed/feed.go":                  imports("feed"),

		"rules/rules.go":     imports("rules", module+"/internal/jsonstr", module+"/nfa"),
		"matcher/matcher.go": imports("matcher", module+"/rules", module+"/state", goRedis, "os"),
		// Tests of the pure core may read files but need no client.
		"matcher/matcher_test.go": imports("matcher", "os", kgo),
		// The picture of an automaton reads nfa and rules and does no I/O.
		"nfa/draw/draw.go": imports("draw", module+"/nfa", module+"/rules", module+"/matcher", "os"),
		"state/state.go":   imports("state", goRedis, module+"/rules"),
		// An external test package may check a contract against a consumer.
		"state/state_test.go":               imports("state_test", module+"/matcher", goRedis),
		"registry/registry.go":              imports("registry", goRedis, module+"/rules", module+"/feed"),
		"config/config.go":                  imports("config", module+"/internal/yamlnode", kgo),
		"cep/cep.go":                        imports("cep", module+"/matcher", kgo, goRedis),
		"internal/embedded/embedded.go":     imports("embedded", kfake, kadm),
		"cmd/shrike/main.go":                imports("main", module+"/cep", goRedis, kgo, grpc),
		"tests/e2e/e2e_test.go":             imports("e2e", goRedis, kgo),
		"internal/httpserver/httpserver.go": imports("httpserver", grpc),
	}
	for name, src := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Every finding as "file: import (rule)".
	want := []string{
		"cep/cep.go: " + goRedis + " (go-redis)",
		"config/config.go: " + kgo + " (franz-go)",
		"internal/embedded/embedded.go: " + kadm + " (franz-go-embedded)",
		"internal/httpserver/httpserver.go: " + grpc + " (grpc)",
		"matcher/matcher.go: " + goRedis + " (go-redis)",
		"matcher/matcher.go: " + module + "/state (matcher)",
		"matcher/matcher.go: os (matcher)",
		"matcher/matcher_test.go: " + kgo + " (core-tests)",
		"nfa/draw/draw.go: " + module + "/matcher (nfa-draw)",
		"nfa/draw/draw.go: os (nfa-draw)",
		"registry/registry.go: " + module + "/feed (registry)",
		"rules/rules.go: " + module + "/nfa (rules)",
		"state/state.go: " + module + "/rules (leaves)",
	}
	got := depguardFindings(t, bin, dir)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("depguard findings (-want +got):\n%s", diff)
	}
}

var findingRE = regexp.MustCompile(`^import '([^']+)' is not allowed from list '([^']+)'`)

// depguardFindings runs golangci-lint with depguard alone in dir and
// returns its findings, sorted.
func depguardFindings(t *testing.T, bin, dir string) []string {
	t.Helper()
	cmd := exec.Command(bin, "run", "--enable-only", "depguard", "--show-stats=false", "--output.json.path", "stdout", "--output.text.path", "stderr", "./...")
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	// Exit code 1 is "issues found", the expected outcome.
	if exit := (*exec.ExitError)(nil); err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
		t.Fatalf("golangci-lint: %v\n%s%s", err, stdout.Bytes(), stderr.Bytes())
	}
	var report struct {
		Issues []struct {
			FromLinter string
			Text       string
			Pos        struct{ Filename string }
		}
	}
	if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
		t.Fatalf("golangci-lint output: %v\n%s\n%s", err, stdout.Bytes(), stderr.Bytes())
	}
	var got []string
	for _, is := range report.Issues {
		m := findingRE.FindStringSubmatch(is.Text)
		if is.FromLinter != "depguard" || m == nil {
			t.Errorf("unexpected finding of %s in %s: %s", is.FromLinter, is.Pos.Filename, is.Text)
			continue
		}
		got = append(got, fmt.Sprintf("%s: %s (%s)", filepath.ToSlash(is.Pos.Filename), m[1], m[2]))
	}
	slices.Sort(got)
	return got
}

// golangciLint returns the path of golangci-lint, skipping the test when
// there is none, unless CI is set.
func golangciLint(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("golangci-lint"); err == nil {
		return p
	}
	for _, env := range []string{"GOBIN", "GOPATH"} {
		out, err := exec.Command("go", "env", env).Output()
		if err != nil || strings.TrimSpace(string(out)) == "" {
			continue
		}
		d := strings.TrimSpace(string(out))
		if env == "GOPATH" {
			d = filepath.Join(filepath.SplitList(d)[0], "bin")
		}
		if p := filepath.Join(d, "golangci-lint"); isFile(p) {
			return p
		}
	}
	msg := "golangci-lint not installed (./scripts/test installs the pinned version)"
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatalf("%s, and CI is set: CI must run this test", msg)
	}
	t.Skip(msg + "; CI=true makes this a failure")
	return ""
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
