package deploy

import (
	"bytes"
	"debug/elf"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// repoRoot is the repository's root, from this package's folder.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root %s: %v", root, err)
	}
	return root
}

const (
	staticVersion   = "v0.0.0-static"
	staticBuildTime = "2026-12-07T00:00:00Z"
)

// buildStatic builds shrike as the Dockerfile does: CGO_ENABLED=0 and the
// version through -ldflags. (-trimpath and -s -w change neither linking
// nor what the binary needs at run time; leaving them out reuses the
// test run's build cache.)
func buildStatic(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "shrike")
	cmd := exec.Command("go", "build", "-buildvcs=false",
		"-ldflags", "-X main.version="+staticVersion+" -X main.buildTime="+staticBuildTime,
		"-o", bin, "./cmd/shrike")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestStaticBinaryRunsInAnEmptyRoot builds the binary as the image does,
// checks that it needs no dynamic loader and no shared library, then runs
// it as the only file of a root (what the scratch image gives it): it
// answers --version with the link-time version, and `shrike health`, the
// image's HEALTHCHECK, probes a server on loopback.
func TestStaticBinaryRunsInAnEmptyRoot(t *testing.T) {
	bin := buildStatic(t)

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() //nolint:errcheck // read-only
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the binary has a PT_INTERP program header: it needs a dynamic loader")
		}
		if p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary has a PT_DYNAMIC program header: it is dynamically linked")
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		t.Fatal(err)
	}
	if len(libs) > 0 {
		t.Errorf("the binary needs shared libraries (DT_NEEDED): %v", libs)
	}

	root := t.TempDir()
	src, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "shrike"), src, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(root)
	if err != nil || len(entries) != 1 {
		t.Fatalf("the root holds %v (%v), want the binary alone", entries, err)
	}

	out, err := inRoot(t, root, "--version")
	if err != nil {
		t.Fatalf("shrike --version in an empty root: %v\n%s", err, out)
	}
	if want := "shrike " + staticVersion + " ("; !strings.HasPrefix(out, want) || !strings.Contains(out, "built "+staticBuildTime) {
		t.Errorf("--version printed %q, want %q… with built %s", out, want, staticBuildTime)
	}

	ready := true
	probe := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" && !ready {
			http.Error(w, "restoring partitions", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	}))
	defer probe.Close()
	if out, err := inRoot(t, root, "health", "--url", probe.URL+"/healthz", "--url", probe.URL+"/readyz"); err != nil {
		t.Errorf("shrike health in an empty root, server ready: %v\n%s", err, out)
	}
	ready = false
	out, err = inRoot(t, root, "health", "--url", probe.URL+"/healthz", "--url", probe.URL+"/readyz")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(out, "503 Service Unavailable: restoring partitions") {
		t.Errorf("shrike health in an empty root, server not ready: %v, want exit status 1 and the reason\n%s", err, out)
	}
}

// inRoot runs /shrike with args in the root folder root: chroot as root
// (CI), else chroot inside a user namespace (unshare -r), else the test is
// skipped.
func inRoot(t *testing.T, root string, args ...string) (string, error) {
	t.Helper()
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.Command("/shrike", args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	} else {
		unshare, err := exec.LookPath("unshare")
		if err != nil {
			t.Skip("not root and no unshare: cannot chroot (CI runs as root)")
		}
		if out, err := exec.Command(unshare, "-r", "true").CombinedOutput(); err != nil {
			t.Skipf("not root and user namespaces are not available (%v: %s): cannot chroot (CI runs as root)", err, out)
		}
		cmd = exec.Command(unshare, append([]string{"-r", "--root=" + root, "/shrike"}, args...)...)
	}
	cmd.Dir = "/"
	cmd.Env = []string{} // an empty root has no environment either
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}
