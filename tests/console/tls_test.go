package console

import (
	"strings"
	"testing"
)

// TestConsoleOverTLS serves the console and the API over HTTPS: the page,
// its modules and its API calls all load from the TLS listener.
func TestConsoleOverTLS(t *testing.T) {
	s := startServerWith(t, serverOptions{TLS: true})
	if !strings.HasPrefix(s.base, "https://") {
		t.Fatalf("base %s", s.base)
	}
	if code, body := s.request(t, "GET", "/ui/", "", ""); code != 200 || !strings.Contains(body, "js/app.js") {
		t.Fatalf("GET %s/ui/: %d %s", s.base, code, body)
	}
	ctx := s.tab(t)
	s.login(ctx, t, s.viewer)
	waitText(ctx, t, `section.ruleset[data-ruleset="payments"]`, "card-spree")
	if proto := eval[string](ctx, t, `location.protocol`); proto != "https:" {
		t.Errorf("the console was loaded over %s", proto)
	}
}
