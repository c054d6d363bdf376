package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/shrike-cep/shrike/internal/testkit"
	"github.com/shrike-cep/shrike/rules"
)

// rulesetFile is a small ruleset reading topic whose one rule fires above
// amount.
func rulesetFile(name, topic string, amount int) string {
	return fmt.Sprintf(`ruleset: %s
stream:
  topic: %s
  key: event.account_id
rules:
  - id: big
    severity: high
    when: event.amount > %d.0
`, name, topic, amount)
}

// running describes what the engine runs: "name@when" per ruleset.
func runningRules(s *server) []string {
	var out []string
	for _, c := range s.engine.Rulesets() {
		out = append(out, c.Name+": "+c.Rules[0].When.Source)
	}
	slices.Sort(out)
	return out
}

// TestServeRulesDir runs serve on embedded Kafka and Redis with --rules on
// a folder that is edited while it runs: a change, a broken save (the
// running version stays, the error is logged with its position and
// counted), the fix, a new file on a new topic (subscribed to), and a
// removed file (its ruleset deleted, its topic dropped). A ruleset uploaded
// through the registry, not from a file, is left alone.
func TestServeRulesDir(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	payments := filepath.Join(dir, "payments.yaml")
	writeFile(t, payments, rulesetFile("payments", "payments", 100))

	var logs testkit.Buffer
	s, err := startServer(ctx, env{stderr: newOutput(&logs), clock: time.Now}, testServeConfig(dir))
	if err != nil {
		t.Fatalf("start: %v\n%s", err, logs.String())
	}
	if diff := cmp.Diff([]string{"payments: event.amount > 100.0"}, runningRules(s)); diff != "" {
		t.Errorf("rulesets at start (-want +got):\n%s", diff)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- s.run(runCtx) }()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	base := "http://" + s.http.Addr()
	waitReady(ctx, t, client, base)
	admin := "http://" + s.admin.Addr()

	// An upload through the registry (the API's way) runs too.
	if _, err := s.rules.registry.Put(ctx, "uploaded", []byte(rulesetFile("uploaded", "payments", 7))); err != nil {
		t.Fatal(err)
	}
	waitRules := func(want ...string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cmp.Equal(want, runningRules(s)) {
			if time.Now().After(deadline) {
				t.Fatalf("running %v, want %v\nlog:\n%s", runningRules(s), want, logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitRules("payments: event.amount > 100.0", "uploaded: event.amount > 7.0")

	writeFile(t, payments, rulesetFile("payments", "payments", 200))
	waitRules("payments: event.amount > 200.0", "uploaded: event.amount > 7.0")

	// A broken save: logged with its position and counted; the running
	// version stays.
	writeFile(t, payments, strings.Replace(rulesetFile("payments", "payments", 300), "event.amount >", "event.amount >>", 1))
	waitMetric(ctx, t, client, admin, `(?m)^shrike_rules_file_errors_total [1-9]`)
	if !strings.Contains(logs.String(), "payments.yaml:8:") {
		t.Errorf("the log lacks the broken file's position:\n%s", logs.String())
	}
	waitRules("payments: event.amount > 200.0", "uploaded: event.amount > 7.0")

	writeFile(t, payments, rulesetFile("payments", "payments", 300))
	waitRules("payments: event.amount > 300.0", "uploaded: event.amount > 7.0")
	waitMetric(ctx, t, client, admin, `(?m)^shrike_rules_ruleset_version\{ruleset="payments"\} 3$`)

	logins := filepath.Join(dir, "logins.yaml")
	writeFile(t, logins, rulesetFile("logins", "logins", 1))
	waitRules("logins: event.amount > 1.0", "payments: event.amount > 300.0", "uploaded: event.amount > 7.0")
	if got := s.engine.Topics(); !slices.Contains(got, "logins") {
		t.Errorf("topics %v lack the new ruleset's", got)
	}

	if err := os.Remove(payments); err != nil {
		t.Fatal(err)
	}
	waitRules("logins: event.amount > 1.0", "uploaded: event.amount > 7.0")
	if err := os.Remove(logins); err != nil {
		t.Fatal(err)
	}
	waitRules("uploaded: event.amount > 7.0")
	if got := s.engine.Topics(); !cmp.Equal(got, []string{"payments"}) {
		t.Errorf("topics %v after logins.yaml went, want [payments]", got)
	}
	waitMetric(ctx, t, client, admin, `(?m)^shrike_rules_last_reload_successful 1$`)

	stop()
	if err := <-done; err != nil {
		t.Errorf("run after cancel = %v, want nil", err)
	}
}

// TestServeWithoutRules: without --rules serve starts with no ruleset,
// says how to add one, and runs what the registry gets later.
func TestServeWithoutRules(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var logs testkit.Buffer
	s, err := startServer(ctx, env{stderr: newOutput(&logs), clock: time.Now}, testServeConfig(""))
	if err != nil {
		t.Fatalf("start: %v\n%s", err, logs.String())
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- s.run(runCtx) }()
	if !strings.Contains(logs.String(), "no rulesets yet") {
		t.Errorf("the log does not say how to add a ruleset:\n%s", logs.String())
	}
	src := []byte(rulesetFile("payments", "payments", 1))
	if _, err := s.rules.registry.Put(ctx, "payments", src); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(s.engine.Rulesets()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the uploaded ruleset never ran\nlog:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := s.engine.Rulesets()[0]; got.Name != "payments" || got.Rules[0].When.Source != "event.amount > 1.0" {
		t.Errorf("running %s %q", got.Name, got.Rules[0].When.Source)
	}
	if _, err := rules.Load("x.yaml", src, s.rules.compile); err != nil {
		t.Errorf("the registry's compile options refuse what it stored: %v", err)
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("run after cancel = %v, want nil", err)
	}
}
