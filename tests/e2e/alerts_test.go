package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// canonAlert returns an alert's JSON without "id" and "detected_at", keys
// sorted: what `shrike serve` and `shrike run` must agree on for the same
// events (ruleset, rule and version, key, summary, labels, start, end,
// timeout, and the matched events by step). It also returns the id.
func canonAlert(t *testing.T, line []byte) (canon, id string) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("alert %q: %v", line, err)
	}
	id, _ = m["id"].(string)
	if id == "" {
		t.Errorf("alert without id: %s", line)
	}
	delete(m, "id")
	delete(m, "detected_at")
	b, err := json.Marshal(m) // map keys sorted
	if err != nil {
		t.Fatal(err)
	}
	return string(b), id
}

// runAlerts runs `shrike run --rules RULESET` over the events (in order)
// and returns its alerts' canonical forms, sorted.
func runAlerts(t *testing.T, ruleset string, events []string) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(events, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want, _ := runFile(t, ruleset, path)
	return want
}

// runFile runs `shrike run --rules RULESET FILE` and returns its alerts'
// canonical forms, sorted, and its stderr.
func runFile(t *testing.T, ruleset, path string) ([]string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, shrikeBin(t), "run", "--rules", ruleset, path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("shrike run: %v\n%s", err, stderr.String())
	}
	var want []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		c, _ := canonAlert(t, sc.Bytes())
		want = append(want, c)
	}
	if len(want) == 0 {
		t.Fatalf("shrike run found no alert: the test would show nothing\n%s", stderr.String())
	}
	sort.Strings(want)
	return want, stderr.String()
}

// alertSet is the alerts read from the alerts topic.
type alertSet struct {
	ids     map[string]string // canonical form → id
	raw     map[string]string // canonical form → the first record's value
	records int
	errs    []string
}

// readAlerts reads the alerts topic with kcat. Each record must be keyed by
// its alert's id, and equal alerts must carry equal ids.
func readAlerts(t *testing.T, broker string) alertSet {
	t.Helper()
	s := alertSet{ids: map[string]string{}, raw: map[string]string{}}
	for _, r := range kcatConsume(t, broker, alertsTopic) {
		if r.Payload == nil {
			s.errs = append(s.errs, fmt.Sprintf("alert record %d@%d without value", r.Partition, r.Offset))
			continue
		}
		s.records++
		c, id := canonAlert(t, []byte(*r.Payload))
		if r.Key == nil || *r.Key != id {
			s.errs = append(s.errs, fmt.Sprintf("alert record %d@%d keyed %v, its id is %q", r.Partition, r.Offset, r.Key, id))
		}
		if prev, ok := s.ids[c]; ok && prev != id {
			s.errs = append(s.errs, fmt.Sprintf("a duplicate alert with another id (%s, %s): %s", prev, id, c))
		}
		if _, ok := s.raw[c]; !ok {
			s.raw[c] = fmt.Sprintf("partition %d offset %d: %s", r.Partition, r.Offset, *r.Payload)
		}
		s.ids[c] = id
	}
	return s
}

func (s alertSet) distinct() []string {
	out := make([]string, 0, len(s.ids))
	for c := range s.ids {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// hasAll reports whether every wanted alert is in the set.
func (s alertSet) hasAll(want []string) bool {
	for _, w := range want {
		if _, ok := s.ids[w]; !ok {
			return false
		}
	}
	return true
}

// waitAlerts waits until every wanted alert arrived on the alerts topic
// (or timeout passes), then checks that the distinct alerts are exactly
// want and that duplicates carry their original's id. It returns the set.
func waitAlerts(t *testing.T, broker string, want []string, timeout time.Duration) alertSet {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var got alertSet
	for {
		got = readAlerts(t, broker)
		if got.hasAll(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, e := range got.errs {
		t.Error(e)
	}
	if diff := cmp.Diff(want, got.distinct()); diff != "" {
		t.Errorf("alerts of shrike serve, against shrike run's (-want +got):\n%s", shortDiff(diff))
		// In full, for the investigation: the diff cuts long lines.
		for _, w := range want {
			if _, ok := got.ids[w]; !ok {
				t.Logf("missing: %s", w)
			}
		}
		wanted := map[string]bool{}
		for _, w := range want {
			wanted[w] = true
		}
		for _, g := range got.distinct() {
			if !wanted[g] {
				t.Logf("unexpected: %s", got.raw[g])
			}
		}
	}
	t.Logf("%d distinct alerts as shrike run's, in %d records", len(got.ids), got.records)
	return got
}

// shortDiff keeps a diff of long JSON lines readable: each line is cut to
// 300 characters, and at most 40 lines are shown.
func shortDiff(diff string) string {
	lines := strings.Split(diff, "\n")
	for i, l := range lines {
		if len(l) > 300 {
			lines[i] = l[:300] + "…"
		}
	}
	if len(lines) > 40 {
		lines = append(slices.Clip(lines[:40]), fmt.Sprintf("… %d more lines", len(lines)-40))
	}
	return strings.Join(lines, "\n")
}
