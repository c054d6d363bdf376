package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runHealthCmd runs `shrike health` with args and returns its exit status,
// stdout and stderr.
func runHealthCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := testEnv()
	e.stdout, e.stderr = newOutput(&out), newOutput(&errb)
	code = run(context.Background(), append([]string{"health"}, args...), e)
	return code, out.String(), errb.String()
}

// probeServer answers /healthz with 200, /readyz with 503 and a reason,
// /moved with a redirect to /healthz, and /hang not before the client gives
// up.
func probeServer(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "not ready: restoring partition payments/1\nmore detail", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/healthz", http.StatusFound) })
	mux.HandleFunc("/hang", func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func TestHealth(t *testing.T) {
	s := probeServer(t)
	closed := "http://" + closedPort(t) + "/readyz"
	tests := []struct {
		name       string
		args       []string
		want       int
		wantStdout []string
		wantStderr []string
	}{
		{
			name:       "a 2xx answer",
			args:       []string{"--url", s.URL + "/healthz"},
			want:       0,
			wantStdout: []string{s.URL + "/healthz: 200 OK"},
		},
		{
			name:       "quiet",
			args:       []string{"-q", "--url", s.URL + "/healthz"},
			want:       0,
			wantStdout: []string{""},
		},
		{
			name:       "not ready: the status and the first line of the reason",
			args:       []string{"--url", s.URL + "/healthz", "--url", s.URL + "/readyz"},
			want:       1,
			wantStdout: []string{s.URL + "/healthz: 200 OK"},
			wantStderr: []string{"shrike health: " + s.URL + "/readyz: 503 Service Unavailable: not ready: restoring partition payments/1\n"},
		},
		{
			name:       "a redirect is not followed",
			args:       []string{"--url", s.URL + "/moved"},
			want:       1,
			wantStderr: []string{s.URL + "/moved: 302 Found"},
		},
		{
			name:       "nothing listens",
			args:       []string{"--url", closed},
			want:       1,
			wantStderr: []string{"shrike health: " + closed + ": ", "connection refused"},
		},
		{
			name:       "no answer in time",
			args:       []string{"--url", s.URL + "/hang", "--timeout", "50ms"},
			want:       1,
			wantStderr: []string{s.URL + "/hang: no answer within 50ms"},
		},
		{
			name:       "not an http URL",
			args:       []string{"--url", "127.0.0.1:8079/readyz"},
			want:       2,
			wantStderr: []string{`--url "127.0.0.1:8079/readyz": want an absolute http:// or https:// URL`},
		},
		{
			name:       "a zero timeout",
			args:       []string{"--timeout", "0s"},
			want:       2,
			wantStderr: []string{"--timeout 0s: must be positive"},
		},
		{
			name:       "an argument",
			args:       []string{s.URL},
			want:       2,
			wantStderr: []string{"give URLs with --url"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runHealthCmd(t, tt.args...)
			if code != tt.want {
				t.Errorf("exit status %d, want %d\nstdout: %s\nstderr: %s", code, tt.want, stdout, stderr)
			}
			for _, w := range tt.wantStdout {
				if w == "" && stdout != "" || !strings.Contains(stdout, w) {
					t.Errorf("stdout %q, want it to contain %q", stdout, w)
				}
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q, want it to contain %q", stderr, w)
				}
			}
			if strings.Contains(stderr, "more detail") {
				t.Errorf("stderr %q quotes more than the first line of the answer", stderr)
			}
		})
	}
}

// TestHealthDefaultsProbeTheAdminListener pins the default URLs: the
// image's HEALTHCHECK runs `shrike health` without flags.
func TestHealthDefaultsProbeTheAdminListener(t *testing.T) {
	cmd := newHealthCmd(testEnv())
	got, err := cmd.Flags().GetStringArray("url")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"http://127.0.0.1:8079/healthz", "http://127.0.0.1:8079/readyz"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("default --url %q, want %q", got, want)
	}
}

func TestHealthTLS(t *testing.T) {
	s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	t.Cleanup(s.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runHealthCmd(t, "--url", s.URL+"/readyz", "--ca-file", ca); code != 0 {
		t.Errorf("with --ca-file: exit status %d, want 0; stderr: %s", code, stderr)
	}
	code, _, stderr := runHealthCmd(t, "--url", s.URL+"/readyz")
	if code != 1 || !strings.Contains(stderr, "certificate") {
		t.Errorf("without --ca-file: exit status %d, stderr %q; want 1 and a certificate error", code, stderr)
	}
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runHealthCmd(t, "--url", s.URL+"/readyz", "--ca-file", notPEM); code != 1 || !strings.Contains(stderr, "no PEM certificate") {
		t.Errorf("with a --ca-file without PEM: exit status %d, stderr %q; want 1 and the file named", code, stderr)
	}
}
