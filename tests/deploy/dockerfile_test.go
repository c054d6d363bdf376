package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/shrike-cep/shrike/config"
)

// dockerfileLines returns the Dockerfile's instructions, continuation
// lines joined, comments dropped.
func dockerfileLines(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var cur strings.Builder
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		trimmed := strings.TrimRight(line, " \t")
		if rest, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur.WriteString(rest + " ")
			continue
		}
		cur.WriteString(trimmed)
		if s := strings.TrimSpace(cur.String()); s != "" {
			out = append(out, s)
		}
		cur.Reset()
	}
	return out
}

// TestDockerfile checks what the image promises: the builder is the
// toolchain go.mod names; the binary is static, -trimpath, stamped with
// the version as --version reads it; the run stage is scratch with a
// numeric non-root user, the CA roots, the ports of its configuration
// file, and `shrike health` as its HEALTHCHECK.
func TestDockerfile(t *testing.T) {
	root := repoRoot(t)
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(gomod)
	if goVersion == nil {
		t.Fatal("go.mod has no go line")
	}
	lines := dockerfileLines(t)
	var froms []string
	var last []string // the instructions of the final stage
	for _, l := range lines {
		if strings.HasPrefix(l, "FROM ") {
			froms = append(froms, l)
			last = nil
		}
		last = append(last, l)
	}
	if len(froms) < 2 {
		t.Fatalf("FROM lines %q: want a build stage and a run stage", froms)
	}
	if want := "FROM golang:" + string(goVersion[1]) + "-"; !strings.HasPrefix(froms[0], want) {
		t.Errorf("builder %q, want %s… (go.mod's toolchain)", froms[0], want)
	}
	if froms[len(froms)-1] != "FROM scratch" && !strings.HasPrefix(froms[len(froms)-1], "FROM gcr.io/distroless/static") {
		t.Errorf("run stage %q, want scratch or distroless static", froms[len(froms)-1])
	}
	all := strings.Join(lines, "\n")
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=", "-X main.buildTime=", "/etc/ssl/certs/ca-certificates.crt"} {
		if !strings.Contains(all, want) {
			t.Errorf("the Dockerfile does not say %q", want)
		}
	}
	final := strings.Join(last, "\n")
	user := regexp.MustCompile(`(?m)^USER (\d+)(?::(\d+))?$`).FindStringSubmatch(final)
	if user == nil {
		t.Errorf("the run stage has no numeric USER")
	} else if uid, _ := strconv.Atoi(user[1]); uid == 0 {
		t.Errorf("the run stage runs as root")
	}
	if !regexp.MustCompile(`(?m)^HEALTHCHECK .*CMD \["/usr/local/bin/shrike", "health"`).MatchString(final) {
		t.Errorf("the run stage's HEALTHCHECK is not `shrike health` in exec form (there is no shell)")
	}
	for _, probe := range []string{"/healthz", "/readyz"} {
		if !regexp.MustCompile(`(?m)^HEALTHCHECK .*` + probe).MatchString(final) {
			t.Errorf("the HEALTHCHECK does not probe %s", probe)
		}
	}

	cfg, err := config.LoadConfigFile(filepath.Join(root, "deploy", "docker", "shrike.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var listenPorts []string
	for _, l := range []string{cfg.HTTP.Listen, cfg.GRPC.Listen, cfg.Admin.Listen} {
		_, port, _ := strings.Cut(l, ":")
		listenPorts = append(listenPorts, port)
	}
	expose := regexp.MustCompile(`(?m)^EXPOSE (.*)$`).FindStringSubmatch(final)
	if expose == nil {
		t.Fatal("the run stage exposes no port")
	}
	exposed := strings.Fields(expose[1])
	slices.Sort(exposed)
	slices.Sort(listenPorts)
	if !slices.Equal(exposed, listenPorts) {
		t.Errorf("EXPOSE %v, want the listeners' ports of deploy/docker/shrike.yaml %v", exposed, listenPorts)
	}
	_, admin, _ := strings.Cut(cfg.Admin.Listen, ":")
	if !strings.Contains(final, "http://127.0.0.1:"+admin+"/readyz") {
		t.Errorf("the HEALTHCHECK does not probe the admin listener's port %s", admin)
	}
	if !strings.Contains(final, `"--config", "/etc/shrike/shrike.yaml"`) || !strings.Contains(final, "COPY deploy/docker/shrike.yaml /etc/shrike/shrike.yaml") {
		t.Errorf("the image does not run serve with its configuration file /etc/shrike/shrike.yaml")
	}
}

// TestDockerignoreKeepsTheSources checks that .dockerignore leaves out
// the history and keeps what the build reads: the module's files, the
// Go packages of cmd/shrike (not under an ignored folder) and the image's
// configuration file.
func TestDockerignoreKeepsTheSources(t *testing.T) {
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var ignored, kept []string
	for line := range strings.SplitSeq(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "!"):
			kept = append(kept, strings.TrimPrefix(line, "!"))
		default:
			ignored = append(ignored, strings.TrimSuffix(strings.TrimPrefix(line, "/"), "/"))
		}
	}
	isIgnored := func(p string) bool {
		if slices.Contains(kept, p) {
			return false
		}
		for _, pat := range ignored {
			if rest, ok := strings.CutPrefix(pat, "**/"); ok {
				for elem := range strings.SplitSeq(p, "/") {
					if ok, _ := filepath.Match(rest, elem); ok {
						return true
					}
				}
				continue
			}
			if ok, _ := filepath.Match(pat, p); ok || strings.HasPrefix(p, pat+"/") {
				return true
			}
		}
		return false
	}
	if !isIgnored(".git") {
		t.Error(".dockerignore keeps .git")
	}
	for _, p := range []string{"go.mod", "go.sum", "deploy/docker/shrike.yaml", "cmd/shrike/main.go", "api/openapi/shrike.swagger.json"} {
		if isIgnored(p) {
			t.Errorf(".dockerignore leaves out %s, which the build needs", p)
		}
	}
	// Every folder of the module with non-test Go files the binary may
	// import: none may be left out.
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && rel != "." || rel == "tests" || rel == "deploy" || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(rel, ".go") && !strings.HasSuffix(rel, "_test.go") && isIgnored(rel) {
			t.Errorf(".dockerignore leaves out %s", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
