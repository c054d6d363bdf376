package registry

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shrike-cep/shrike/internal/testkit"
	"github.com/shrike-cep/shrike/rules"
)

// setterLog is a RulesetSetter that records the sets it is given.
type setterLog struct {
	mu   sync.Mutex
	sets [][]*rules.Compiled
}

func (s *setterLog) SetRulesets(_ context.Context, rs []*rules.Compiled) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sets = append(s.sets, rs)
	return nil
}

func (s *setterLog) calls() [][]*rules.Compiled {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]*rules.Compiled(nil), s.sets...)
}

// describe names each ruleset of a set with its rule's condition.
func describe(set []*rules.Compiled) []string {
	var out []string
	for _, c := range set {
		out = append(out, c.Name+": "+c.Rules[0].When.Source)
	}
	return out
}

// apiAndHere opens two registries on one miniredis: the API instance
// accepts larger rulesets than the instance that runs them, so that a
// version can be stored that this one cannot compile.
func apiAndHere(t *testing.T) (api, here *Registry) {
	t.Helper()
	m := miniredis.RunT(t)
	open := func(maxBytes int) *Registry {
		r, err := New(Options{Client: newTestClient(t, []string{m.Addr()}, false), MaxSourceBytes: maxBytes})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	return open(4096), open(400)
}

// newCheckedReloader keeps engine on here, logging to the returned buffer
// and counting in the returned registry; its Check refuses a ruleset that
// reads shrike-alerts, as the engine's CheckRuleset does.
func newCheckedReloader(t *testing.T, here *Registry, engine RulesetSetter) (*Reloader, *testkit.Buffer, *prometheus.Registry) {
	t.Helper()
	log := &testkit.Buffer{}
	metrics := prometheus.NewRegistry()
	rl, err := NewReloader(ReloaderOptions{
		Registry: here, Engine: engine, Logger: slog.New(slog.NewTextHandler(log, nil)), Registerer: metrics,
		Check: func(c *rules.Compiled) error {
			if c.Stream.Topic == "shrike-alerts" {
				return errors.New("reads an output topic")
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return rl, log, metrics
}

func TestReloader(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	api, here := apiAndHere(t)
	put := func(name string, src []byte) {
		t.Helper()
		if _, err := api.Put(ctx, name, src); err != nil {
			t.Fatal(err)
		}
	}
	put("payments", rulesetSource("payments", 1))
	put("logins", rulesetSource("logins", 1))

	engine := &setterLog{}
	rl, log, metrics := newCheckedReloader(t, here, engine)
	initial, err := rl.Initial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"logins: event.amount > 1.0", "payments: event.amount > 1.0"}, describe(initial)); diff != "" {
		t.Errorf("Initial (-want +got):\n%s", diff)
	}
	done := make(chan error)
	go func() { done <- rl.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	// waitSets waits for the engine's nth set.
	waitSets := func(n int) [][]*rules.Compiled {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			calls := engine.calls()
			if len(calls) >= n {
				return calls
			}
			if time.Now().After(deadline) {
				t.Fatalf("the engine got %d sets, want %d\nlog:\n%s", len(calls), n, log.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// waitMetric waits until the metrics text holds line.
	waitMetric := func(line string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(testkit.MetricsText(t, metrics), line) {
			if time.Now().After(deadline) {
				t.Fatalf("metrics lack %q:\n%s", line, testkit.MetricsText(t, metrics))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	put("payments", rulesetSource("payments", 2))
	calls := waitSets(1)
	if diff := cmp.Diff([]string{"logins: event.amount > 1.0", "payments: event.amount > 2.0"}, describe(calls[0])); diff != "" {
		t.Errorf("set after a change (-want +got):\n%s", diff)
	}
	if calls[0][0] != initial[0] {
		t.Error("the unchanged ruleset was compiled again")
	}
	waitMetric(`shrike_rules_ruleset_version{ruleset="payments"} 2`)
	waitMetric(`shrike_rules_reloads_total{result="success"} 1`)

	// A version this instance cannot compile leaves the previous one
	// running; it is logged and counted once, whatever changes later.
	big := append(rulesetSource("payments", 3), strings.Repeat("#", 500)...)
	put("payments", big)
	waitMetric(`shrike_rules_ruleset_errors_total{ruleset="payments"} 1`)
	waitMetric(`shrike_rules_last_reload_successful 0`)
	waitMetric(`shrike_rules_reloads_total{result="failure"} 1`)
	put("logins", rulesetSource("logins", 2))
	calls = waitSets(2)
	if diff := cmp.Diff([]string{"logins: event.amount > 2.0", "payments: event.amount > 2.0"}, describe(calls[1])); diff != "" {
		t.Errorf("set with a version that does not compile (-want +got):\n%s", diff)
	}
	waitMetric(`shrike_rules_ruleset_version{ruleset="payments"} 2`)
	waitMetric(`shrike_rules_reloads_total{result="failure"} 2`)
	if got := testkit.MetricsText(t, metrics); !strings.Contains(got, `shrike_rules_ruleset_errors_total{ruleset="payments"} 1`) {
		t.Errorf("the failing version was counted again:\n%s", got)
	}
	if n := strings.Count(log.String(), "ruleset version cannot run"); n != 1 {
		t.Errorf("the failing version was logged %d times, want once:\n%s", n, log.String())
	}
	if !strings.Contains(log.String(), "payments.yaml: ruleset is") {
		t.Errorf("the log lacks the compile error:\n%s", log.String())
	}

	// A new ruleset the engine refuses does not run; the rest do.
	put("loop", []byte(strings.ReplaceAll(string(rulesetSource("loop", 1)), "topic: payments", "topic: shrike-alerts")))
	waitMetric(`shrike_rules_ruleset_errors_total{ruleset="loop"} 1`)

	// Fixed, deleted: back to success.
	put("payments", rulesetSource("payments", 4))
	if err := api.Delete(ctx, "loop"); err != nil {
		t.Fatal(err)
	}
	if err := api.Delete(ctx, "logins"); err != nil {
		t.Fatal(err)
	}
	waitMetric(`shrike_rules_last_reload_successful 1`)
	// The fix and the two deletes may reach the engine in one set or in
	// several: wait for the set that has them all.
	want := []string{"payments: event.amount > 4.0"}
	testkit.WaitFor(t, 0, "the set after the fix and the deletes", func() bool {
		calls := engine.calls()
		return cmp.Equal(want, describe(calls[len(calls)-1]))
	})
	testkit.WaitFor(t, 0, "the deleted logins to leave the metrics", func() bool {
		return !strings.Contains(testkit.MetricsText(t, metrics), `ruleset_version{ruleset="logins"}`)
	})
	got := testkit.MetricsText(t, metrics)
	if !strings.Contains(got, `shrike_rules_ruleset_version{ruleset="payments"} 4`) {
		t.Errorf("metrics lack payments at version 4:\n%s", got)
	}
	if strings.Contains(got, `ruleset_version{ruleset="logins"}`) {
		t.Errorf("metrics still hold the version of the deleted logins:\n%s", got)
	}
	// A deleted ruleset's error count goes with it: the series follow
	// the live rulesets, not every name ever used.
	if strings.Contains(got, `ruleset_errors_total{ruleset="loop"}`) {
		t.Errorf("metrics still count the errors of the deleted loop:\n%s", got)
	}
}

// refusingSetter is a RulesetSetter that refuses every set holding a
// shadow whose rule fires above refuse, as an engine refuses a set it
// cannot plan, and records the sets it takes.
type refusingSetter struct {
	setterLog
	refuse string
}

func (s *refusingSetter) SetRulesets(ctx context.Context, rs []*rules.Compiled) error {
	for _, c := range rs {
		if c.Shadow && strings.HasSuffix(c.Rules[0].When.Source, "> "+s.refuse) {
			return errors.New("cannot plan the set")
		}
	}
	return s.setterLog.SetRulesets(ctx, rs)
}

// describeShadows is describe with shadows marked.
func describeShadows(set []*rules.Compiled) []string {
	var out []string
	for _, c := range set {
		name := c.Name
		if c.Shadow {
			name += " (shadow)"
		}
		out = append(out, name+": "+c.Rules[0].When.Source)
	}
	return out
}

// TestReloaderShadows: a shadow runs beside its live ruleset; one that
// does not compile here, that Check refuses, or whose set the engine
// refuses stays out, counted and logged once, and the live rulesets run;
// a deleted shadow leaves the set, a promoted one becomes the live
// version.
func TestReloaderShadows(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	api, here := apiAndHere(t)
	if _, err := api.Put(ctx, "payments", rulesetSource("payments", 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Put(ctx, "logins", rulesetSource("logins", 1)); err != nil {
		t.Fatal(err)
	}
	putShadow := func(name string, src []byte) {
		t.Helper()
		if _, err := api.PutShadow(ctx, name, src); err != nil {
			t.Fatal(err)
		}
	}
	// A shadow present at start: the engine starts without it, and the
	// first reload adds it.
	putShadow("logins", rulesetSource("logins", 2))

	engine := &refusingSetter{refuse: "66.0"}
	rl, log, metrics := newCheckedReloader(t, here, engine)
	initial, err := rl.Initial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"logins: event.amount > 1.0", "payments: event.amount > 1.0"}, describeShadows(initial)); diff != "" {
		t.Errorf("Initial (-want +got):\n%s", diff)
	}
	done := make(chan error)
	go func() { done <- rl.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	// waitLast waits until the engine's last set is want.
	waitLast := func(what string, want ...string) {
		t.Helper()
		testkit.WaitFor(t, 0, what, func() bool {
			calls := engine.calls()
			return len(calls) > 0 && cmp.Equal(want, describeShadows(calls[len(calls)-1]))
		})
	}
	waitMetric := func(line string) {
		t.Helper()
		testkit.WaitFor(t, 0, "metrics with "+line, func() bool {
			return strings.Contains(testkit.MetricsText(t, metrics), line)
		})
	}
	waitLast("the shadow present at start",
		"logins: event.amount > 1.0", "logins (shadow): event.amount > 2.0", "payments: event.amount > 1.0")
	if calls := engine.calls(); calls[len(calls)-1][0] != initial[0] {
		t.Error("the live ruleset was compiled again for its shadow")
	}

	putShadow("payments", rulesetSource("payments", 3))
	waitLast("the put shadow",
		"logins: event.amount > 1.0", "logins (shadow): event.amount > 2.0",
		"payments: event.amount > 1.0", "payments (shadow): event.amount > 3.0")

	// A shadow this instance cannot compile: out, the live one runs;
	// counted once, not as a failed reload of the live rulesets.
	putShadow("payments", append(rulesetSource("payments", 4), strings.Repeat("#", 500)...))
	waitLast("the set without the shadow that does not compile",
		"logins: event.amount > 1.0", "logins (shadow): event.amount > 2.0", "payments: event.amount > 1.0")
	waitMetric(`shrike_rules_shadow_errors_total{ruleset="payments"} 1`)
	// Check refuses it.
	putShadow("payments", []byte(strings.ReplaceAll(string(rulesetSource("payments", 5)), "topic: payments", "topic: shrike-alerts")))
	waitMetric(`shrike_rules_shadow_errors_total{ruleset="payments"} 2`)
	// The engine refuses the set with it: the set without it runs, with
	// the shadow the engine ran already.
	putShadow("payments", rulesetSource("payments", 66))
	waitMetric(`shrike_rules_shadow_errors_total{ruleset="payments"} 3`)
	waitLast("the set without the shadow the engine refused",
		"logins: event.amount > 1.0", "logins (shadow): event.amount > 2.0", "payments: event.amount > 1.0")
	// A change elsewhere leaves the refused shadow out.
	if _, err := api.Put(ctx, "logins", rulesetSource("logins", 7)); err != nil {
		t.Fatal(err)
	}
	waitLast("the set after a live change",
		"logins: event.amount > 7.0", "logins (shadow): event.amount > 2.0", "payments: event.amount > 1.0")
	got := testkit.MetricsText(t, metrics)
	for _, line := range []string{
		`shrike_rules_shadow_errors_total{ruleset="payments"} 3`,
		`shrike_rules_last_reload_successful 1`,
		`shrike_rules_reloads_total{result="failure"} 0`,
	} {
		if !strings.Contains(got, line) {
			t.Errorf("metrics lack %s:\n%s", line, got)
		}
	}
	for _, msg := range []string{"shadow cannot run; the live version runs alone", "shadow refused by the engine"} {
		if n := strings.Count(log.String(), msg); msg == "shadow refused by the engine" && n != 1 || n == 0 {
			t.Errorf("the log has %q %d times:\n%s", msg, n, log.String())
		}
	}

	// Delete and promote.
	if err := api.DeleteShadow(ctx, "payments"); err != nil {
		t.Fatal(err)
	}
	if _, err := api.PromoteShadow(ctx, "logins"); err != nil {
		t.Fatal(err)
	}
	waitLast("the set after the delete and the promote",
		"logins: event.amount > 2.0", "payments: event.amount > 1.0")
	testkit.WaitFor(t, 0, "the deleted shadow's errors to leave the metrics", func() bool {
		return !strings.Contains(testkit.MetricsText(t, metrics), "shadow_errors_total{")
	})
	waitMetric(`shrike_rules_ruleset_version{ruleset="logins"} 3`)
}
