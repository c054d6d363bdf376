package e2e

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shrike-cep/shrike/internal/testkit"
)

// TestHostileAdminListener runs `shrike serve` with a token file and TLS,
// as a deployment that exposes its API would, and attacks its API
// listener with curl and raw connections:
//   - /metrics and every /debug/pprof/ path answer 404 on the API
//     listener, without a token and with one; the admin listener serves
//     them;
//   - a connection that never finishes its TLS handshake, or its headers,
//     is closed after http.read_header_timeout;
//   - a PUT without a token whose body never comes is refused with 401
//     at once, the body unread, and its connection closed.
func TestHostileAdminListener(t *testing.T) {
	requireTools(t, "curl")
	dir := t.TempDir()
	const secret = "q7Vt2mXc9LpR4wZs8NbK3yHd6FgJ1aEu"
	tokenFile := filepath.Join(dir, "ops.token")
	if err := os.WriteFile(tokenFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, key := testkit.WriteSelfSigned(t, dir)
	const headerTimeout = time.Second
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := fmt.Sprintf(`http:
  listen: %q
  read_header_timeout: %s
grpc:
  listen: "127.0.0.1:%d"
kafka:
  embedded: {port: %d}
redis:
  embedded: {port: %d}
api:
  tokens: [{name: ops, token_file: %q, scopes: [rules:read, alerts:read]}]
  tls: {cert_file: %q, key_file: %q}
`, httpAddr, headerTimeout, freePort(t), freePort(t), freePort(t), tokenFile, cert, key)
	s := startServeConfig(t, "shrike serve with tokens", cfg, httpAddr)
	api, admin := "https://"+s.http, "https://"+s.admin
	get := func(url string, args ...string) curlResult {
		t.Helper()
		return curl(t, append(append([]string{"-k"}, args...), url)...)
	}
	waitFor(t, 60*time.Second, "serve ready on its admin listener", func() bool {
		if !s.running() {
			t.Fatalf("serve exited: %v", s.err)
		}
		return curlQuiet(admin+"/readyz") == http.StatusOK
	})

	auth := bearer(secret)
	for _, path := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=2"} {
		if r := get(api + path); r.code != http.StatusNotFound {
			t.Errorf("API listener without a token: GET %s = %d %.100q, want 404", path, r.code, r.body)
		}
		if r := get(api+path, auth...); r.code != http.StatusNotFound {
			t.Errorf("API listener with a token: GET %s = %d %.100q, want 404", path, r.code, r.body)
		}
	}
	for _, tt := range []struct {
		url  string
		args []string
		code int
		want string
	}{
		{admin + "/metrics", nil, 200, "shrike_engine_ready 1"},
		{admin + "/debug/pprof/", nil, 200, "goroutine"},
		{admin + "/debug/pprof/cmdline", nil, 200, "serve"},
		{api + "/healthz", nil, 200, "ok"},
		{api + "/readyz", nil, 200, "ready"},
		{api + "/v1/rulesets", nil, 401, "TOKEN_MISSING"},
		{api + "/v1/rulesets", auth, 200, "rulesets"},
	} {
		if r := get(tt.url, tt.args...); r.code != tt.code || !strings.Contains(r.body, tt.want) {
			t.Errorf("GET %s = %d %.200q, want %d with %q", tt.url, r.code, r.body, tt.code, tt.want)
		}
	}

	tlsConf := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the test's own self-signed certificate
	t.Run("no TLS handshake", func(t *testing.T) {
		conn, err := net.Dial("tcp", s.http)
		if err != nil {
			t.Fatal(err)
		}
		held := heldFor(t, conn, 10*headerTimeout)
		t.Logf("a connection that never starts TLS is closed after %v", held.Round(time.Millisecond))
	})
	t.Run("headers never finished", func(t *testing.T) {
		conn, err := tls.Dial("tcp", s.http, tlsConf)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(conn, "GET /v1/rulesets HTTP/1.1\r\nHost: shrike\r\nX-Slow: "); err != nil {
			t.Fatal(err)
		}
		held := heldFor(t, conn, 10*headerTimeout)
		if held < headerTimeout/2 {
			t.Errorf("closed after %v, before the header timeout %v", held, headerTimeout)
		}
		t.Logf("a connection that never finishes its headers is closed after %v", held.Round(time.Millisecond))
	})
	t.Run("body never sent without a token", func(t *testing.T) {
		conn, err := tls.Dial("tcp", s.http, tlsConf)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = conn.Close() }() // the answer was read
		t0 := time.Now()
		if _, err := io.WriteString(conn, "PUT /v1/rulesets/payments HTTP/1.1\r\nHost: shrike\r\nContent-Type: application/json\r\nContent-Length: 4000000\r\n\r\n{\"source\": \""); err != nil {
			t.Fatal(err)
		}
		if err := conn.SetReadDeadline(t0.Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer while the body is pending: %v", err)
		}
		_ = resp.Body.Close() // only the status matters
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("status %d, want 401 before the body", resp.StatusCode)
		}
		refused := time.Since(t0)
		// The server closes the connection at once, rather than wait for
		// the body until http.read_timeout.
		heldFor(t, conn, 5*time.Second)
		t.Logf("refused after %v, closed after %v", refused.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	})
	s.exitedCleanly(t)
}

// curlQuiet is the status of a GET with curl -k, 0 when it fails.
func curlQuiet(url string) int {
	out, err := exec.Command("curl", "-sk", "--max-time", "2", "-o", "/dev/null", "-w", "%{http_code}", url).Output()
	if err != nil {
		return 0
	}
	var code int
	_, _ = fmt.Sscan(string(out), &code) // no number: 0, not ready
	return code
}

// heldFor waits for the server to close conn, and returns how long that
// took from now; it fails the test when it is held past limit.
func heldFor(t *testing.T, conn net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	defer func() { _ = conn.Close() }() // the server closed it, or the test failed
	t0 := time.Now()
	if err := conn.SetReadDeadline(t0.Add(limit)); err != nil {
		t.Fatal(err)
	}
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection is still open after %v", limit)
	}
	return time.Since(t0)
}
