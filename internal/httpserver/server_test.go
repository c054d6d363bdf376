package httpserver

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestHandlers(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "shrike_test_things_total", Help: "Things."})
	reg.MustRegister(c)
	c.Add(3)
	var notReady atomic.Pointer[error]
	reason := errors.New("partitions not assigned yet")
	notReady.Store(&reason)
	s, err := New(Options{
		Addr:     "127.0.0.1:0",
		Admin:    true,
		Gatherer: reg,
		Ready: func() error {
			if p := notReady.Load(); p != nil {
				return *p
			}
			return nil
		},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()

	type response struct {
		Code     int
		Contains string
	}
	get := func(method, path string) (int, string) {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		return rec.Code, rec.Body.String()
	}
	tests := []struct {
		name, method, path string
		ready              bool
		want               response
	}{
		{name: "health", path: "/healthz", want: response{200, "ok\n"}},
		{name: "health while not ready", path: "/healthz", want: response{200, "ok\n"}},
		{name: "not ready", path: "/readyz", want: response{503, "not ready: partitions not assigned yet\n"}},
		{name: "ready", path: "/readyz", ready: true, want: response{200, "ready\n"}},
		{name: "metrics", path: "/metrics", want: response{200, "shrike_test_things_total 3\n"}},
		{name: "pprof index", path: "/debug/pprof/", want: response{200, "goroutine"}},
		{name: "pprof heap", path: "/debug/pprof/heap?debug=1", want: response{200, "heap profile"}},
		{name: "index", path: "/", want: response{200, "shrike admin: /metrics /healthz /readyz"}},
		{name: "unknown path", path: "/nope", want: response{404, "404 page not found"}},
		{name: "wrong method", method: http.MethodPost, path: "/healthz", want: response{405, "Method Not Allowed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.ready {
				notReady.Store(nil)
			}
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			code, body := get(method, tt.path)
			got := response{code, tt.want.Contains}
			if !strings.Contains(body, tt.want.Contains) {
				got.Contains = body
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("GET %s (-want +got):\n%s", tt.path, diff)
			}
		})
	}
}

func TestRunServesAndShutsDown(t *testing.T) {
	s, err := New(Options{Addr: "127.0.0.1:0", Gatherer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	s.Handle("GET /v1/hello", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "hello")
	}))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for _, p := range []struct{ path, want string }{{"/healthz", "ok\n"}, {"/v1/hello", "hello"}} {
		resp, err := client.Get("http://" + s.Addr() + p.path)
		if err != nil {
			t.Fatalf("GET %s: %v", p.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close() // read to the end: a Close error loses nothing
		if resp.StatusCode != 200 || string(body) != p.want {
			t.Errorf("GET %s = %d %q, want 200 %q", p.path, resp.StatusCode, body, p.want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}
	if conn, err := net.Dial("tcp", s.Addr()); err == nil {
		_ = conn.Close() // the test fails either way
		t.Error("the server still accepts connections after Run returned")
	}
}

func TestNewErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The listener only holds a port; its Close cannot change the outcome.
	defer func() { _ = ln.Close() }()
	tests := []struct {
		name, addr, want string
	}{
		{name: "no address", addr: "", want: "http server: no listen address"},
		{name: "port in use", addr: ln.Addr().String(), want: "address already in use"},
		{name: "not an address", addr: "nohost", want: "missing port in address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(Options{Addr: tt.addr})
			if err == nil {
				_ = s.Close() // the test fails either way
				t.Fatalf("New(%q) succeeded", tt.addr)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to say %q", err, tt.want)
			}
		})
	}
}
