package httpserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// start runs a server with opts on a free loopback port until the test
// ends.
func start(t *testing.T, opts Options, handlers map[string]http.Handler) *Server {
	t.Helper()
	opts.Addr = "127.0.0.1:0"
	if opts.Gatherer == nil {
		opts.Gatherer = prometheus.NewRegistry()
	}
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for p, h := range handlers {
		s.Handle(p, h)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s
}

// closedWithin writes what to a new connection, then waits for the
// server to close it, and returns how long that took; it fails the test
// if the server holds it past limit.
func closedWithin(t *testing.T, addr, what string, limit time.Duration) time.Duration {
	t.Helper()
	// Timed from before the dial: the server starts its timer once it has
	// accepted the connection, which may be before Dial returns here.
	t0 := time.Now()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }() // the server closed it already, or the test failed
	if _, err := io.WriteString(conn, what); err != nil {
		t.Fatal(err)
	}
	if err := conn.SetReadDeadline(t0.Add(limit)); err != nil {
		t.Fatal(err)
	}
	// Whatever the server answers is read until it closes.
	_, err = io.Copy(io.Discard, conn)
	held := time.Since(t0)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server still holds the connection after %v", held.Round(time.Millisecond))
	}
	return held
}

// TestAPIListenerHasNoAdminPaths: a server without Admin (the API's
// listener) serves /healthz and /readyz, and neither /metrics nor any
// /debug/pprof/ path, whatever the request carries.
func TestAPIListenerHasNoAdminPaths(t *testing.T) {
	s := start(t, Options{}, nil)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for path, want := range map[string]int{
		"/healthz":                   200,
		"/readyz":                    200,
		"/metrics":                   404,
		"/debug/pprof/":              404,
		"/debug/pprof/cmdline":       404,
		"/debug/pprof/heap":          404,
		"/debug/pprof/profile":       404,
		"/debug/pprof/goroutine?x=2": 404,
	} {
		req, err := http.NewRequest(http.MethodGet, "http://"+s.Addr()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer anything")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close() // only the status matters
		if resp.StatusCode != want {
			t.Errorf("GET %s = %d, want %d", path, resp.StatusCode, want)
		}
	}
}

// TestSlowloris: a client that never finishes its headers is cut off
// after ReadHeaderTimeout.
func TestSlowloris(t *testing.T) {
	const timeout = 300 * time.Millisecond
	s := start(t, Options{ReadHeaderTimeout: timeout}, nil)
	held := closedWithin(t, s.Addr(), "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1", 10*timeout)
	if held < timeout {
		t.Errorf("closed after %v, before the header timeout %v", held, timeout)
	}
	t.Logf("a connection that never finishes its headers is held %v", held.Round(time.Millisecond))
}

// TestSlowBody: a client that sends its body slowly, or not at all, is
// cut off after ReadTimeout, and the handler reading it gets an error.
func TestSlowBody(t *testing.T) {
	const timeout = 300 * time.Millisecond
	readErr := make(chan error, 1)
	s := start(t, Options{ReadHeaderTimeout: timeout, ReadTimeout: timeout}, map[string]http.Handler{
		"POST /v1/upload": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, err := io.ReadAll(r.Body)
			readErr <- err
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
			}
		}),
	})
	held := closedWithin(t, s.Addr(), "POST /v1/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nonly ten b", 10*timeout)
	if err := <-readErr; err == nil {
		t.Error("the handler read a body that never came to its end")
	}
	t.Logf("a connection whose body never ends is held %v", held.Round(time.Millisecond))
}

// TestIdleKeepAlive: a keep-alive connection that sends no next request
// is closed after IdleTimeout.
func TestIdleKeepAlive(t *testing.T) {
	const timeout = 300 * time.Millisecond
	s := start(t, Options{IdleTimeout: timeout}, nil)
	held := closedWithin(t, s.Addr(), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 10*timeout)
	if held < timeout {
		t.Errorf("closed after %v, before the idle timeout %v", held, timeout)
	}
}

// TestMaxHeaderBytes: headers over MaxHeaderBytes are refused with 431.
func TestMaxHeaderBytes(t *testing.T) {
	s := start(t, Options{MaxHeaderBytes: 4096}, nil)
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }() // the answer was read
	big := strings.Repeat("a", 16<<10)
	if _, err := fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", big); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close() // only the status matters
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status = %d, want 431", resp.StatusCode)
	}
}

// TestStreamOutlivesReadTimeout: a response that lasts longer than
// ReadTimeout (an alert stream, a CPU profile) is not cut: the request's
// context stays alive and every chunk arrives, for a request without a
// body and for one whose body was read.
func TestStreamOutlivesReadTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	const chunks = 8 // at timeout/2 apart: four read timeouts in all
	stream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			t.Errorf("read body: %v", err)
			return
		}
		rc := http.NewResponseController(w)
		for i := range chunks {
			select {
			case <-r.Context().Done():
				t.Errorf("the request's context ended after chunk %d: %v", i, context.Cause(r.Context()))
				return
			case <-time.After(timeout / 2):
			}
			_, _ = fmt.Fprintf(w, "chunk %d\n", i)
			_ = rc.Flush()
		}
	})
	s := start(t, Options{ReadHeaderTimeout: timeout, ReadTimeout: timeout}, map[string]http.Handler{"/v1/stream": stream})
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			var body io.Reader
			if method == http.MethodPost {
				body = strings.NewReader(`{"filter": "x"}`)
			}
			req, err := http.NewRequest(method, "http://"+s.Addr()+"/v1/stream", body)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }() // read to the end
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Count(string(b), "chunk"); got != chunks {
				t.Errorf("got %d chunks, want %d:\n%s", got, chunks, b)
			}
		})
	}
}
