package deploy

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// imageUID is the numeric user of the Dockerfile's run stage.
const imageUID = 65532

// TestServeInTheImageLayout runs `shrike serve` as the image does: the
// static binary alone in a root laid out as the run stage lays it out
// (/usr/local/bin/shrike, /etc/shrike/shrike.yaml from deploy/docker, the
// shipped rulesets in /etc/shrike/rules, /tmp), as the image's numeric
// non-root user, with its configuration file. Flags move the listeners to
// free loopback ports (beyond loopback the file's would need tokens and
// could collide with other processes here) and start the embedded broker
// and Redis on free ports. `shrike health`, the HEALTHCHECK, run in the
// same root, must then find it ready, and SIGTERM must stop it with status 0.
func TestServeInTheImageLayout(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: chroot and a change of user need root (CI runs as root)")
	}
	root := repoRoot(t)
	bin := buildStatic(t)
	fs := t.TempDir()
	if err := os.Chmod(fs, 0o755); err != nil { // the root folder of the non-root user
		t.Fatal(err)
	}
	copyFile(t, bin, filepath.Join(fs, "usr/local/bin/shrike"), 0o755)
	copyFile(t, filepath.Join(root, "deploy/docker/shrike.yaml"), filepath.Join(fs, "etc/shrike/shrike.yaml"), 0o644)
	for _, name := range []string{"payments.yaml", "account_security.yaml", "itops.yaml"} {
		copyFile(t, filepath.Join(root, "rulesets", name), filepath.Join(fs, "etc/shrike/rules", name), 0o644)
	}
	if err := os.MkdirAll(filepath.Join(fs, "tmp"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(fs, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}

	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	serve := imageCmd(ctx, fs, "serve", "--config", "/etc/shrike/shrike.yaml",
		"--listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--grpc-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--admin-listen", admin,
		"--embedded-kafka-port", "0", "--embedded-redis-port", "0")
	var log bytes.Buffer
	serve.Stdout, serve.Stderr = &log, &log
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	defer func() {
		_ = serve.Process.Kill()
	}()

	// Wait for readiness as the HEALTHCHECK would see it: shrike health
	// inside the root, as the same user, until it exits 0.
	var last string
	for ready := false; !ready; {
		select {
		case err := <-exited:
			t.Fatalf("serve exited before it was ready: %v\n%s", err, log.String())
		case <-ctx.Done():
			t.Fatalf("serve was not ready within the test's deadline; last health check:\n%s\nserve's log:\n%s", last, log.String())
		case <-time.After(200 * time.Millisecond):
		}
		probe := imageCmd(ctx, fs, "health", "--url", "http://"+admin+"/healthz", "--url", "http://"+admin+"/readyz")
		out, err := probe.CombinedOutput()
		last = string(out)
		ready = err == nil
	}
	if !strings.Contains(last, "/readyz: 200 OK") {
		t.Errorf("shrike health printed %q, want /readyz: 200 OK", last)
	}
	if !strings.Contains(log.String(), `"level":"INFO"`) {
		t.Errorf("serve's log is not JSON as deploy/docker/shrike.yaml says:\n%s", log.String())
	}

	if err := serve.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("serve after SIGTERM: %v, want exit status 0\n%s", err, log.String())
		}
	case <-ctx.Done():
		t.Fatalf("serve did not stop after SIGTERM\n%s", log.String())
	}
}

// imageCmd runs /usr/local/bin/shrike with args in the root fs as the
// image's user, with no environment, as the image's entrypoint would.
func imageCmd(ctx context.Context, fs string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "/usr/local/bin/shrike", args...)
	cmd.Dir = "/"
	cmd.Env = []string{}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     fs,
		Credential: &syscall.Credential{Uid: imageUID, Gid: imageUID},
	}
	return cmd
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() //nolint:errcheck // only the port was wanted
	return ln.Addr().(*net.TCPAddr).Port
}
