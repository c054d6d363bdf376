package deploy

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/shrike-cep/shrike/internal/tokencheck"
)

// deployingCommands returns the commands of the sh blocks of README.md's
// "Deploying" section.
func deployingCommands(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	in, inBlock := false, false
	for line := range strings.SplitSeq(string(b), "\n") {
		switch {
		case !inBlock && strings.HasPrefix(line, "## "):
			in = line == "## Deploying"
		case in && strings.HasPrefix(line, "```"):
			inBlock = !inBlock
		case in && inBlock && strings.TrimSpace(line) != "":
			cmds = append(cmds, line)
		}
	}
	if len(cmds) == 0 {
		t.Fatal(`README.md has no commands under "## Deploying"`)
	}
	return cmds
}

// TestREADMEDeployingCommands checks the commands of README.md's
// "Deploying" section. Docker cannot run here, so each docker command is
// checked for what it names: the build context and its Dockerfile's build
// arguments, the compose file and its built services. The commands that
// need no Docker run: the token the README generates for compose must be
// one shrike accepts, and the version command must work in a checkout.
func TestREADMEDeployingCommands(t *testing.T) {
	root := repoRoot(t)
	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	compose := loadCompose(t)
	subst := regexp.MustCompile(`\$\(([^)]*)\)`)
	for _, cmd := range deployingCommands(t) {
		fields := strings.Fields(cmd)
		switch {
		case strings.HasPrefix(cmd, "export "):
			name, value, ok := strings.Cut(strings.TrimPrefix(cmd, "export "), "=")
			if !ok {
				t.Errorf("README: %q sets nothing", cmd)
				continue
			}
			if strings.Contains(value, "openssl") {
				requireTool(t, "openssl")
			}
			out, err := exec.Command("sh", "-c", "printf %s "+value).Output()
			if err != nil {
				t.Errorf("README: %s: %v", cmd, err)
				continue
			}
			used := false
			for _, sec := range compose.Secrets {
				used = used || sec.Environment == name
			}
			if !used {
				t.Errorf("README: %s sets %s, which no secret of docker-compose.yml reads", cmd, name)
			}
			if err := tokencheck.Check(string(out)); err != nil {
				t.Errorf("README: %s gives a token shrike refuses: %v", cmd, err)
			}
		case strings.HasPrefix(cmd, "docker build "):
			if ctx := fields[len(fields)-1]; ctx != "." {
				t.Errorf("README: %s: build context %q, want the repository's root", cmd, ctx)
			}
			for i, f := range fields {
				if f != "--build-arg" || i+1 == len(fields) {
					continue
				}
				arg, _, _ := strings.Cut(fields[i+1], "=")
				if !regexp.MustCompile(`(?m)^ARG ` + regexp.QuoteMeta(arg) + `(=|$)`).Match(dockerfile) {
					t.Errorf("README: %s: the Dockerfile has no ARG %s", cmd, arg)
				}
			}
			for _, m := range subst.FindAllStringSubmatch(cmd, -1) {
				c := exec.Command("sh", "-c", m[1])
				c.Dir = root
				if out, err := c.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) == "" {
					t.Errorf("README: %s: $(%s) in a checkout: %v %s", cmd, m[1], err, out)
				}
			}
		case strings.HasPrefix(cmd, "docker compose "):
			if slices.Contains(fields, "--build") && !slices.ContainsFunc(slices.Collect(maps.Values(compose.Services)), func(s composeService) bool { return s.Build != nil }) {
				t.Errorf("README: %s: docker-compose.yml builds nothing", cmd)
			}
			if !slices.Contains(fields, "up") {
				t.Errorf("README: %s: a compose command this test does not know", cmd)
			}
		default:
			t.Errorf("README: %q under Deploying: a command this test does not check (add a case)", cmd)
		}
	}
}

// requireTool skips the test when tool is missing, unless CI is set: CI
// installs it (.ci/run), so there a missing tool is a failure.
func requireTool(t *testing.T, tool string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err == nil {
		return
	}
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatalf("%s is not installed, and CI is set: CI must run this test (apt-get install -y %s)", tool, tool)
	}
	t.Skipf("%s is not installed (apt-get install -y %s); CI=true makes this a failure", tool, tool)
}
