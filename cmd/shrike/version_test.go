package main

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFormatVersion(t *testing.T) {
	stamped := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/shrike-cep/shrike", Version: "v0.0.0-20261205084551-0233c198aee4+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "-buildmode", Value: "exe"},
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "0233c198aee4a0b0b2013c5e8185ac2ba06f470d"},
			{Key: "vcs.time", Value: "2026-12-05T08:45:51Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	clean := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0233c198aee4a0b0b2013c5e8185ac2ba06f470d"},
			{Key: "vcs.modified", Value: "false"},
		},
	}
	tests := []struct {
		name, linked, built string
		bi                  *debug.BuildInfo
		want                string
	}{
		{
			name: "stamped checkout", bi: stamped,
			want: "v0.0.0-20261205084551-0233c198aee4+dirty (go1.26.8, commit 0233c198aee4a0b0b2013c5e8185ac2ba06f470d, modified, committed 2026-12-05T08:45:51Z)",
		},
		{
			name: "clean devel", bi: clean,
			want: "devel (go1.26.8, commit 0233c198aee4a0b0b2013c5e8185ac2ba06f470d)",
		},
		{
			name: "link-time version and build time", linked: "v1.2.3", built: "2026-12-05T10:00:00Z", bi: stamped,
			want: "v1.2.3 (go1.26.8, commit 0233c198aee4a0b0b2013c5e8185ac2ba06f470d, modified, committed 2026-12-05T08:45:51Z, built 2026-12-05T10:00:00Z)",
		},
		{name: "no vcs", bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, want: "devel (go1.26.8)"},
		{name: "no build info", want: "devel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := formatVersion(tt.linked, tt.built, tt.bi); got != tt.want {
				t.Errorf("formatVersion = %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestVersionStampedByGoBuild builds the binary from a git checkout of
// this module, as `go build` in a clone does, and runs --version: it
// names the commit the checkout is at.
func TestVersionStampedByGoBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	// The working tree's files in a new repository: it has a .git folder,
	// which the go command needs to stamp the build (a linked worktree's
	// .git file is not recognised).
	dir := t.TempDir()
	gitEnv := append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t.invalid", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t.invalid")
	git := func(d string, args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir, cmd.Env = d, gitEnv
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for _, f := range strings.Split(git(root, "ls-files", "--cached", "--others", "--exclude-standard"), "\n") {
		b, err := os.ReadFile(filepath.Join(root, f))
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted in the working tree
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git(dir, "init", "-q")
	git(dir, "add", "-A")
	git(dir, "commit", "-q", "-m", "snapshot")
	rev := git(dir, "rev-parse", "HEAD")
	bin := filepath.Join(t.TempDir(), "shrike")
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, "./cmd/shrike")
	build.Dir, build.Env = dir, append(gitEnv, "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("--version: %v\n%s", err, out)
	}
	want := regexp.MustCompile(`^shrike \S+ \(go[0-9.]+\S*, commit ` + rev + `, committed \S+\)\n$`)
	if !want.Match(out) {
		t.Errorf("--version printed %q, want the commit %s", out, rev)
	}
}
