package registry

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/shrike-cep/shrike/internal/testkit"
	"github.com/shrike-cep/shrike/rules"
)

// counterValue reads a counter.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func miniRegistry(t *testing.T) *Registry {
	t.Helper()
	m := miniredis.RunT(t)
	r, err := New(Options{Client: newTestClient(t, []string{m.Addr()}, false)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func writeFile(t *testing.T, path string, src []byte) {
	t.Helper()
	if err := os.WriteFile(path, src, 0o644); err != nil {
		t.Fatal(err)
	}
}

// registryState is name@version of every live ruleset.
func registryState(t *testing.T, r *Registry) []string {
	t.Helper()
	recs, _, err := r.List(context.Background(), MaxPageSize, "")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, rec := range recs {
		out = append(out, rec.Name+"@"+strconv.FormatInt(rec.Version, 10))
	}
	return out
}

const brokenSource = `ruleset: payments
stream:
  topic: payments
rules:
  - id: big
    severity: high
    when: event.amount > limit
`

func TestDirSyncOnce(t *testing.T) {
	ctx := context.Background()
	reg := miniRegistry(t)
	if _, err := reg.Put(ctx, "api-managed", rulesetSource("api-managed", 1)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "payments.yaml"), rulesetSource("payments", 1))
	writeFile(t, filepath.Join(dir, "cards.yml"), rulesetSource("cards", 1))
	writeFile(t, filepath.Join(dir, "broken.yaml"), []byte(strings.ReplaceAll(brokenSource, "payments", "broken")))
	// Valid for shrike check and run, but serve cannot run it.
	writeFile(t, filepath.Join(dir, "notopic.yaml"), bytes.Replace(rulesetSource("notopic", 1), []byte("  topic: payments\n"), nil, 1))
	writeFile(t, filepath.Join(dir, "payments_test.yaml"), []byte("not a ruleset: a unit test file"))
	writeFile(t, filepath.Join(dir, ".payments.yaml.swp"), []byte("an editor's swap file"))
	writeFile(t, filepath.Join(dir, "notes.txt"), []byte("not yaml"))
	writeFile(t, filepath.Join(dir, "again.yaml"), rulesetSource("payments", 2)) // a second file of payments
	if err := os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}

	var log testkit.Buffer
	metrics := prometheus.NewRegistry()
	d, err := NewDirSync(DirSyncOptions{Dir: dir, Registry: reg, Logger: slog.New(slog.NewTextHandler(&log, nil)), Registerer: metrics})
	if err != nil {
		t.Fatal(err)
	}
	res, err := d.Sync(ctx)
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	// again.yaml and payments.yaml both hold payments: the first by name
	// takes it, the other is an error.
	if diff := cmp.Diff([]string{"payments", "cards"}, res.Put); diff != "" {
		t.Errorf("Put (-want +got):\n%s", diff)
	}
	var invalid []string
	for path, err := range res.Invalid {
		var list rules.ErrorList
		if !errors.As(err, &list) {
			t.Errorf("%s: error %v is no rules.ErrorList", path, err)
		}
		invalid = append(invalid, err.Error())
	}
	wantInvalid := []string{
		`payments.yaml: ruleset "payments" is in ` + filepath.Join(dir, "again.yaml") + ` already`,
		`broken.yaml:7:26: rule "big": undeclared reference to 'limit'`,
		`notopic.yaml:2:1: stream: no topic: serve needs the Kafka topic the rules read`,
	}
	if len(invalid) != len(wantInvalid) {
		t.Errorf("invalid files %q, want %d", invalid, len(wantInvalid))
	}
	for _, want := range wantInvalid {
		found := false
		for _, got := range invalid {
			found = found || strings.Contains(got, want)
		}
		if !found {
			t.Errorf("invalid files %q lack %q", invalid, want)
		}
	}
	if diff := cmp.Diff([]string{"api-managed@1", "cards@1", "payments@1"}, registryState(t, reg)); diff != "" {
		t.Errorf("registry (-want +got):\n%s", diff)
	}
	if got := counterValue(t, d.errs); got != 3 {
		t.Errorf("shrike_rules_file_errors_total = %v, want 3", got)
	}
	for _, pos := range []string{"broken.yaml:7:26", "notopic.yaml:2:1"} {
		if !strings.Contains(log.String(), pos) {
			t.Errorf("the log lacks the rejected file's position %s:\n%s", pos, log.String())
		}
	}

	// A second sync of the unchanged folder changes nothing and logs no
	// error again.
	before := log.String()
	res, err = d.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Put)+len(res.Deleted) != 0 {
		t.Errorf("a sync of an unchanged folder put %v and deleted %v", res.Put, res.Deleted)
	}
	if got := counterValue(t, d.errs); got != 3 {
		t.Errorf("shrike_rules_file_errors_total = %v after an unchanged sync, want 3", got)
	}
	if strings.Count(log.String(), "broken.yaml:7:26") != strings.Count(before, "broken.yaml:7:26") {
		t.Errorf("an unchanged broken file was logged again")
	}

	// Removing again.yaml leaves payments to payments.yaml.
	if err := os.Remove(filepath.Join(dir, "again.yaml")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"api-managed@1", "cards@1", "payments@2"}, registryState(t, reg)); diff != "" {
		t.Errorf("registry after removing the first file of payments (-want +got):\n%s", diff)
	}
}

// TestDirSyncWatches runs a DirSync on a folder while a person edits it:
// a new file, a change, a broken save, the fix, an editor's
// rename-over-the-original save, and a removal.
func TestDirSyncWatches(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	reg := miniRegistry(t)
	if _, err := reg.Put(ctx, "api-managed", rulesetSource("api-managed", 1)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var log testkit.Buffer
	d, err := NewDirSync(DirSyncOptions{Dir: dir, Registry: reg, Debounce: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	path := filepath.Join(dir, "payments.yaml")
	current := func(want ...string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got := registryState(t, reg)
			if cmp.Equal(want, got) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("registry %v, want %v\nlog:\n%s", got, want, log.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// Written perhaps before Run watches: its first sync finds it.
	writeFile(t, path, rulesetSource("payments", 1))
	current("api-managed@1", "payments@1")

	writeFile(t, path, rulesetSource("payments", 2))
	current("api-managed@1", "payments@2")

	// (A sync may also have read a file half written: counted, but not
	// with this position.)
	writeFile(t, path, []byte(brokenSource))
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(log.String(), "payments.yaml:7:26") {
		if time.Now().After(deadline) {
			t.Fatalf("the log lacks the broken save's error position:\n%s", log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := counterValue(t, d.errs); n < 1 {
		t.Errorf("shrike_rules_file_errors_total = %v after a broken save", n)
	}
	current("api-managed@1", "payments@2")

	writeFile(t, path, rulesetSource("payments", 3))
	current("api-managed@1", "payments@3")

	// Saved the way vim and many editors do: a new file renamed over it.
	tmp := filepath.Join(dir, ".payments.yaml.tmp")
	writeFile(t, tmp, rulesetSource("payments", 4))
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	current("api-managed@1", "payments@4")

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	current("api-managed@1")
	hist, _, err := reg.Versions(ctx, "payments", 1, "")
	if err != nil || len(hist) != 1 || !hist[0].Deleted {
		t.Errorf("newest version of payments after its file was removed: %+v, %v; want a deletion", hist, err)
	}
}
