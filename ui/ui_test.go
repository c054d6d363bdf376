package ui_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/shrike-cep/shrike/ui"
)

func get(t *testing.T, h http.Handler, method, path string, header ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func TestHandlerServesIndexWithSecurityHeaders(t *testing.T) {
	h := ui.Handler()
	res := get(t, h, "GET", "/ui/")
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /ui/: %d", res.StatusCode)
	}
	if !strings.Contains(string(body), `<script type="module" src="js/app.js">`) {
		t.Errorf("GET /ui/ is not the console's index.html:\n%s", body)
	}
	for _, name := range []string{"Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options", "ETag"} {
		if res.Header.Get(name) == "" {
			t.Errorf("GET /ui/ has no %s header", name)
		}
	}
	if csp := res.Header.Get("Content-Security-Policy"); strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy allows more than the console's own scripts: %q", csp)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("index Content-Type %q", ct)
	}

	again := get(t, h, "GET", "/ui/", "If-None-Match", res.Header.Get("ETag"))
	if again.StatusCode != http.StatusNotModified {
		t.Errorf("GET /ui/ with its ETag: %d, want 304", again.StatusCode)
	}
}

func TestHandlerContentTypes(t *testing.T) {
	h := ui.Handler()
	for path, want := range map[string]string{
		"/ui/js/app.js":            "text/javascript",
		"/ui/css/console.css":      "text/css",
		"/ui/js/pages/rulesets.js": "text/javascript",
	} {
		res := get(t, h, "GET", path)
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), want) {
			t.Errorf("GET %s: %d %q, want 200 %s", path, res.StatusCode, res.Header.Get("Content-Type"), want)
		}
	}
}

func TestHandlerRefusesOtherRequests(t *testing.T) {
	h := ui.Handler()
	if res := get(t, h, "POST", "/ui/"); res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") == "" {
		t.Errorf("POST /ui/: %d, Allow %q", res.StatusCode, res.Header.Get("Allow"))
	}
	if res := get(t, h, "GET", "/ui"); res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != "/ui/" {
		t.Errorf("GET /ui: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	for _, path := range []string{"/ui/nope.js", "/ui/../ui.go", "/ui/js/../../ui.go", "/elsewhere"} {
		if res := get(t, h, "GET", path); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, res.StatusCode)
		}
	}
}

// TestFilesAreSelfContained holds the console to working offline: no file
// refers to another origin, and every module and stylesheet an HTML or
// JavaScript file names is embedded.
func TestFilesAreSelfContained(t *testing.T) {
	files := ui.Files()
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*["'](https?:)?//|@import\s+url\(\s*["']?(https?:)?//|\bimport\s*\(?\s*["'](https?:)?//|from\s+["'](https?:)?//`)
	imports := regexp.MustCompile(`(?:from\s+|import\s*\(\s*|import\s+)["'](\.[^"'$]+)["']`)
	err := fs.WalkDir(files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(files, path)
		if err != nil {
			return err
		}
		if loc := external.FindIndex(b); loc != nil {
			t.Errorf("%s refers to another origin: %q", path, b[loc[0]:loc[1]])
		}
		if strings.HasSuffix(path, ".js") {
			dir := path[:strings.LastIndex(path, "/")+1]
			for _, m := range imports.FindAllSubmatch(b, -1) {
				target := cleanJoin(dir, string(m[1]))
				if _, err := fs.Stat(files, target); err != nil {
					t.Errorf("%s imports %s, which is not embedded (%s)", path, m[1], target)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func cleanJoin(dir, rel string) string {
	parts := strings.Split(strings.TrimSuffix(dir, "/"), "/")
	if dir == "" {
		parts = nil
	}
	for _, p := range strings.Split(rel, "/") {
		switch p {
		case ".":
		case "..":
			if len(parts) > 0 {
				parts = parts[:len(parts)-1]
			}
		default:
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "/")
}
