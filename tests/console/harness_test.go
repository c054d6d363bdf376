package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"image/png"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/security"
	"github.com/chromedp/chromedp"

	"github.com/shrike-cep/shrike/internal/testkit"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "write the pages' screenshots to docs/console/")

// root is the module's root folder.
var root = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}()

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string

	browserCtx    context.Context
	browserCancel context.CancelFunc
)

// chromium finds the browser: $SHRIKE_CHROMIUM, or Debian's chromium.
func chromium() (string, error) {
	if p := os.Getenv("SHRIKE_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("chromium not found (apt-get install -y chromium, or set SHRIKE_CHROMIUM)")
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := runTests(m)
	os.Exit(code)
}

func runTests(m *testing.M) int {
	exe, err := chromium()
	if err != nil {
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "console tests:", err)
			return 1
		}
		fmt.Fprintln(os.Stderr, "console tests skipped:", err)
		return 0
	}
	dir, err := os.MkdirTemp("", "shrike-console-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	binDir = dir
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.WindowSize(1366, 900),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	browserCtx, browserCancel = chromedp.NewContext(alloc)
	defer browserCancel()
	// Start the browser once; each test opens tabs of its own.
	if err := chromedp.Do(browserCtx); err != nil {
		fmt.Fprintln(os.Stderr, "console tests: starting chromium:", err)
		return 1
	}
	return m.Run()
}

// shrikeBin builds the shrike command once per test binary.
func shrikeBin(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binPath = filepath.Join(binDir, "shrike")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/shrike")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build ./cmd/shrike: %w\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port
}

func randomToken(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// server is a running `shrike serve` with the shipped rulesets, the shipped
// recordings and two tokens: an analyst's with every scope, a viewer's
// that may only read.
type server struct {
	base    string         // http://127.0.0.1:PORT
	analyst string         // token with every scope
	viewer  string         // token with rules:read and alerts:read
	rules   string         // the rules folder serve watches
	roots   *x509.CertPool // with TLS: the pool that trusts the server
	log     *bytes.Buffer
	mu      *sync.Mutex
}

// allScopes is every scope of api/README.md.
var allScopes = []string{"rules:read", "rules:write", "alerts:read", "events:write", "lists:write"}

// serverOptions change what startServer starts.
type serverOptions struct {
	// TLS serves the API and the console over HTTPS with a self-signed
	// certificate.
	TLS bool
}

func startServer(t *testing.T) *server {
	t.Helper()
	return startServerWith(t, serverOptions{})
}

func startServerWith(t *testing.T, o serverOptions) *server {
	t.Helper()
	bin := shrikeBin(t)
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules")
	recordings := filepath.Join(dir, "recordings")
	for _, d := range []string{rulesDir, recordings} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"payments.yaml", "account_security.yaml", "itops.yaml"} {
		copyFile(t, filepath.Join(root, "rulesets", name), filepath.Join(rulesDir, name))
	}
	entries, err := os.ReadDir(filepath.Join(root, "rulesets", "testdata"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".jsonl") {
			copyFile(t, filepath.Join(root, "rulesets", "testdata", e.Name()), filepath.Join(recordings, e.Name()))
		}
	}
	s := &server{analyst: randomToken(t), viewer: randomToken(t), rules: rulesDir, log: &bytes.Buffer{}, mu: &sync.Mutex{}}
	writeSecret := func(name, value string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s.base = "http://" + httpAddr
	var tlsSection string
	if o.TLS {
		certFile, keyFile := testkit.WriteSelfSigned(t, dir)
		pemBytes, err := os.ReadFile(certFile)
		if err != nil {
			t.Fatal(err)
		}
		s.roots = x509.NewCertPool()
		s.roots.AppendCertsFromPEM(pemBytes)
		s.base = "https://" + httpAddr
		tlsSection = fmt.Sprintf("  tls:\n    cert_file: %q\n    key_file: %q\n", certFile, keyFile)
	}
	cfg := fmt.Sprintf(`rules:
  dir: %q
http:
  listen: %q
grpc:
  listen: "127.0.0.1:%d"
admin:
  listen: "127.0.0.1:%d"
kafka:
  embedded:
    port: %d
redis:
  embedded:
    port: %d
state:
  checkpoint_interval: 200ms
api:
  recordings_dir: %q
  tokens:
    - name: analyst
      token_file: %q
      scopes: [%s]
    - name: viewer
      token_file: %q
      scopes: [rules:read, alerts:read]
%s`, rulesDir, httpAddr, freePort(t), freePort(t), freePort(t), freePort(t), recordings,
		writeSecret("analyst.token", s.analyst), strings.Join(allScopes, ", "),
		writeSecret("viewer.token", s.viewer), tlsSection)
	cfgPath := filepath.Join(dir, "shrike.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	cmd.Env = serveEnviron()
	w := &lockedWriter{buf: s.log, mu: s.mu}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait returns at most this long after the process exits, even if
	// something still holds its output open.
	cmd.WaitDelay = 5 * time.Second
	// exited is closed when the process has ended; exitErr is its result.
	// Both the readiness loop and the cleanup look at it.
	exited := make(chan struct{})
	var exitErr error
	go func() {
		exitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		var ended error
		select {
		case <-exited:
			ended = exitErr
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			select {
			case <-exited:
				ended = exitErr
			case <-time.After(15 * time.Second):
				ended = errors.New("still running 15 s after SIGKILL")
			}
		}
		if t.Failed() {
			t.Logf("shrike serve (%v) logged:\n%s", ended, s.logText())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("shrike serve exited before it was ready: %v\n%s", exitErr, s.logText())
		default:
		}
		if code, _ := s.request(t, "GET", "/readyz", "", ""); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("shrike serve not ready in 60 s:\n%s", s.logText())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

// serveEnviron is the test's environment without SHRIKE_* variables: serve
// reads those as configuration (docs/configuration.md), and CI exports
// SHRIKE_REDIS_* to name its own Redis servers. The console's server is
// configured by its file alone.
func serveEnviron() []string { return testkit.EnvironWithout("SHRIKE_") }

func (s *server) logText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

type lockedWriter struct {
	buf *bytes.Buffer
	mu  *sync.Mutex
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// request calls the server's HTTP listener; code 0 when it does not answer.
func (s *server) request(t *testing.T, method, path, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	c := http.Client{Timeout: 10 * time.Second}
	if s.roots != nil {
		c.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.roots}}
	}
	res, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer func() { _ = res.Body.Close() }()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// tab opens a browser tab at the console; it closes when the test ends.
func (s *server) tab(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browserCtx)
	t.Cleanup(cancel)
	if s.roots != nil {
		// The server's certificate is self-signed: this tab accepts it,
		// as a user accepts a private CA's certificate.
		if _, err := chromedp.Call(ctx, security.SetIgnoreCertificateErrors, security.SetIgnoreCertificateErrorsParams{Ignore: true}); err != nil {
			t.Fatalf("accepting the test certificate: %v", err)
		}
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(s.base+"/ui/")); err != nil {
		t.Fatalf("opening %s/ui/: %v", s.base, err)
	}
	return ctx
}

// login signs in with token and waits for the rulesets page.
func (s *server) login(ctx context.Context, t *testing.T, token string) {
	t.Helper()
	do(ctx, t, "sign in",
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
		chromedp.SendKeys(chromedp.CSS(`#token`), token),
		chromedp.Click(chromedp.CSS(`form.login button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#nav`)),
	)
}

// actionTimeout bounds each step of a test in the browser.
const actionTimeout = 30 * time.Second

// do runs browser actions, within actionTimeout, failing the test with
// what names them and the text the page shows.
func do(ctx context.Context, t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	stepCtx, cancel := context.WithTimeout(ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(stepCtx, actions...); err != nil {
		t.Fatalf("%s: %v\nthe page shows:\n%s", what, err, pageText(ctx))
	}
}

// eval evaluates a JavaScript expression in the tab.
func eval[T any](ctx context.Context, t *testing.T, expr string) T {
	t.Helper()
	stepCtx, cancel := context.WithTimeout(ctx, actionTimeout)
	defer cancel()
	v, err := chromedp.Run(stepCtx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// pageText is the text of the page's main element, for failure messages.
func pageText(ctx context.Context) string {
	stepCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(stepCtx, chromedp.Evaluate[string](`(document.querySelector("main") || document.body).innerText`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return s
}

// text waits for the first element sel matches to be visible and returns
// its text.
func text(ctx context.Context, t *testing.T, sel string) string {
	t.Helper()
	do(ctx, t, "waiting for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
	stepCtx, cancel := context.WithTimeout(ctx, actionTimeout)
	defer cancel()
	s, err := chromedp.Run(stepCtx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("reading %s: %v", sel, err)
	}
	return s
}

// waitText waits until the element sel matches shows want.
func waitText(ctx context.Context, t *testing.T, sel, want string) {
	t.Helper()
	var ok bool
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		s := eval[string](ctx, t, fmt.Sprintf(
			`(() => { const e = document.querySelector(%q); return e ? e.innerText : ""; })()`, sel))
		if strings.Contains(s, want) {
			ok = true
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !ok {
		t.Fatalf("%s never showed %q; the page shows:\n%s", sel, want, pageText(ctx))
	}
}

// screenshot takes a full-page PNG of the tab, checks that it decodes, and
// with -update-screenshots writes it to docs/console/NAME.png.
// maxScreenshotHeight is the tallest screenshot taken, in CSS pixels.
const maxScreenshotHeight = 1800

func ptrTo[T any](v T) *T { return &v }

func screenshot(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	stepCtx, cancel := context.WithTimeout(ctx, actionTimeout)
	defer cancel()
	// The whole page, down to maxScreenshotHeight: a long page (explain's
	// timeline) shows what it is about in its top part, and the docs
	// should not carry megabytes of it.
	height := eval[float64](ctx, t, `document.documentElement.scrollHeight`)
	width := eval[float64](ctx, t, `document.documentElement.clientWidth`)
	shot, err := chromedp.Call(stepCtx, page.CaptureScreenshot, page.CaptureScreenshotParams{
		CaptureBeyondViewport: ptrTo(true),
		FromSurface:           ptrTo(true),
		Format:                page.CaptureScreenshotFormatPng,
		Clip:                  &page.Viewport{Width: width, Height: min(height, maxScreenshotHeight), Scale: 1},
	})
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	buf := shot.Data
	img, err := png.Decode(bytes.NewReader(buf))
	if err != nil {
		t.Fatalf("screenshot %s is not a PNG: %v", name, err)
	}
	if b := img.Bounds(); b.Dx() < 800 || b.Dy() < 300 {
		t.Fatalf("screenshot %s is %dx%d", name, b.Dx(), b.Dy())
	}
	if *updateScreenshots {
		dir := filepath.Join(root, "docs", "console")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
