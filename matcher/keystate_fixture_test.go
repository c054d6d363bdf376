package matcher

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rogpeppe/go-internal/txtar"

	"github.com/shrike-cep/shrike/rules"
)

var updateKeyState = flag.Bool("update-keystate", false,
	"write the missing testdata/keystate/NAME-vN.bin of the current key-state version N from each scenario")

// Key-state fixtures: testdata/keystate/NAME.txtar is a scenario (a
// ruleset, the events pushed before a checkpoint, the events pushed after
// it, and the state it leaves, one "state: rule runs=N held=M" line per
// rule in its comment); NAME-vN.bin is the key's state as version N of the
// encoding wrote it. Fixtures are never regenerated: a newer Shrike must
// restore every one, so neither a scenario nor an old fixture may change.
// -update-keystate writes the current version's fixtures that are missing,
// and never overwrites one.

// keyStateScenario is a parsed testdata/keystate/NAME.txtar.
type keyStateScenario struct {
	name          string
	ruleset       *rules.Compiled
	prog          *Program
	before, after []*Record
	key           string
	// wantState is the comment's "state:" lines: rule name → "runs=N held=M".
	wantState map[string]string
}

var stateLine = regexp.MustCompile(`(?m)^state: (\S+) (runs=\d+ held=\d+)$`)

func loadKeyStateScenario(t testing.TB, path string) *keyStateScenario {
	t.Helper()
	ar, err := txtar.ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sc := &keyStateScenario{name: strings.TrimSuffix(filepath.Base(path), ".txtar"), wantState: map[string]string{}}
	for _, m := range stateLine.FindAllStringSubmatch(string(ar.Comment), -1) {
		sc.wantState[m[1]] = m[2]
	}
	files := map[string][]byte{}
	for _, f := range ar.Files {
		files[f.Name] = f.Data
	}
	sc.ruleset, err = rules.Load(path+":ruleset.yaml", files["ruleset.yaml"], rules.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sc.prog, err = NewProgram([]*rules.Compiled{sc.ruleset})
	if err != nil {
		t.Fatal(err)
	}
	rs, offset := sc.ruleset, int64(0)
	read := func(name string) []*Record {
		var recs []*Record
		lines := bufio.NewScanner(bytes.NewReader(files[name]))
		for lines.Scan() {
			offset++
			recs = append(recs, scenarioRecord(t, rs, lines.Bytes(), path, offset))
		}
		return recs
	}
	sc.before, sc.after = read("before.jsonl"), read("after.jsonl")
	if len(sc.before) == 0 || len(sc.after) == 0 {
		t.Fatalf("%s: before.jsonl and after.jsonl must both hold events", path)
	}
	sc.key = sc.before[0].Key
	for _, r := range append(slices.Clone(sc.before), sc.after...) {
		if r.Key != sc.key {
			t.Fatalf("%s: events of keys %q and %q: a scenario has one key", path, sc.key, r.Key)
		}
	}
	return sc
}

// scenarioRecord decodes one event line of the scenario at path, keyed and
// timed by its ruleset; its position is the scenario's name as the source
// and the line's number among the scenario's events.
func scenarioRecord(t testing.TB, rs *rules.Compiled, line []byte, path string, offset int64) *Record {
	t.Helper()
	ev, err := rules.ParseEvent(append([]byte(nil), line...))
	if err != nil {
		t.Fatalf("%s: event %d: %v", path, offset, err)
	}
	key, err := rs.Key.EvalKey(ev)
	if err != nil {
		t.Fatalf("%s: event %d: key: %v", path, offset, err)
	}
	ts, err := rs.Time.EvalTime(ev)
	if err != nil {
		t.Fatalf("%s: event %d: time: %v", path, offset, err)
	}
	source := strings.TrimSuffix(filepath.Base(path), ".txtar") + "/0"
	return &Record{Event: ev, Key: key, Time: ts, Pos: Position{Source: source, Offset: offset}}
}

// newScenarioPartition returns an empty Partition of the scenario's
// Program whose wall clock stands still.
func (sc *keyStateScenario) newPartition(t testing.TB, out Output) *Partition {
	t.Helper()
	p, err := NewPartition(sc.prog, out, Options{
		MaxOutOfOrderness: sc.ruleset.Stream.MaxOutOfOrderness,
		Clock:             func() time.Time { return time.Unix(0, 0).UTC() },
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// checkpointed pushes the events before the checkpoint into p and moves
// the watermark past the last, so that every one is matched.
func (sc *keyStateScenario) checkpointed(p *Partition) {
	last := int64(math.MinInt64)
	for _, r := range sc.before {
		p.Push(clone(r))
		last = max(last, r.Time)
	}
	p.Advance(last + 1)
}

// finish pushes the events after the checkpoint and closes every window.
func (sc *keyStateScenario) finish(p *Partition) {
	for _, r := range sc.after {
		p.Push(clone(r))
	}
	p.Advance(math.MaxInt64)
}

// alertCollector renders every alert with everything that identifies it.
type alertCollector struct{ alerts []string }

func (c *alertCollector) Alert(a *Alert) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s/%s@%s key=%s timeout=%t %s..%s %q", a.ID, a.Ruleset, a.Rule, a.RuleVersion, a.Key, a.Timeout,
		a.Start.UTC().Format(time.RFC3339Nano), a.End.UTC().Format(time.RFC3339Nano), a.Summary)
	for _, m := range a.Measures {
		fmt.Fprintf(&b, " %s=%g", m.Name, m.Value)
	}
	for _, s := range a.Steps {
		fmt.Fprintf(&b, "\n  %s:", s.Step)
		for _, r := range s.Records {
			fmt.Fprintf(&b, " %s@%d(t=%d seq=%d %d bytes)", r.Pos.Source, r.Pos.Offset, r.Time, r.Seq, len(r.Event.Raw()))
		}
	}
	c.alerts = append(c.alerts, b.String())
}

func (c *alertCollector) Late(r *Record) {
	c.alerts = append(c.alerts, fmt.Sprintf("late %s@%d", r.Pos.Source, r.Pos.Offset))
}

// keyStateCounts describes a key's state as the scenarios' "state:" lines do.
func keyStateCounts(p *Partition, key string) map[string]string {
	got := map[string]string{}
	ks := p.residentState(key)
	if ks == nil {
		return got
	}
	for _, rk := range ks.rules {
		got[rk.rule.name] = fmt.Sprintf("runs=%d held=%d", len(rk.runs), len(rk.heldRuns()))
	}
	return got
}

var fixtureVersion = regexp.MustCompile(`^(.+)-v(\d+)\.bin$`)

// TestKeyStateFixtures restores every fixture of every version into a
// Partition that has the scenario's checkpoint: the key's state must
// re-encode to exactly what a Partition that matched the same events
// encodes today, and the events after the checkpoint must produce exactly
// the alerts of a Partition that never stopped.
func TestKeyStateFixtures(t *testing.T) {
	paths, err := filepath.Glob("testdata/keystate/*.txtar")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no scenario in testdata/keystate: %v", err)
	}
	fixtures, err := filepath.Glob("testdata/keystate/*.bin")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range paths {
		sc := loadKeyStateScenario(t, path)
		t.Run(sc.name, func(t *testing.T) {
			ref := sc.newPartition(t, &alertCollector{})
			sc.checkpointed(ref)
			if diff := cmp.Diff(sc.wantState, keyStateCounts(ref, sc.key)); diff != "" {
				t.Fatalf("state after before.jsonl (-scenario's state: lines +got):\n%s", diff)
			}
			cp := ref.Checkpoint()
			want, ok := ref.AppendKeyState(nil, sc.key)
			if !ok {
				t.Fatal("the key holds no state at the checkpoint")
			}
			refOut := &alertCollector{}
			ref.out = refOut
			sc.finish(ref)
			if len(refOut.alerts) == 0 {
				t.Fatal("after.jsonl produces no alert: the scenario tests nothing")
			}

			current := filepath.Join("testdata", "keystate", fmt.Sprintf("%s-v%d.bin", sc.name, snapshotVersion))
			if *updateKeyState && !slices.Contains(fixtures, current) {
				// Only a missing fixture is written: one that exists is
				// what a released Shrike wrote, and a difference from it
				// is an encoding change that needs a new version.
				if err := os.WriteFile(current, want, 0o644); err != nil {
					t.Fatal(err)
				}
				fixtures = append(fixtures, current)
			}
			for _, fx := range slices.Compact(slices.Sorted(slices.Values(fixtures))) {
				m := fixtureVersion.FindStringSubmatch(filepath.Base(fx))
				if m == nil || m[1] != sc.name {
					continue
				}
				v, _ := strconv.Atoi(m[2])
				t.Run("v"+m[2], func(t *testing.T) {
					data, err := os.ReadFile(fx)
					if err != nil {
						t.Fatal(err)
					}
					if v == snapshotVersion && !bytes.Equal(data, want) {
						t.Errorf("%s differs from what AppendKeyState writes today (%d bytes, fixture %d): the encoding of version %d changed",
							fx, len(want), len(data), v)
					}
					out := &alertCollector{}
					q := sc.newPartition(t, out)
					if err := q.Restore(cp); err != nil {
						t.Fatal(err)
					}
					if err := q.RestoreKey(sc.key, data); err != nil {
						t.Fatalf("RestoreKey: %v", err)
					}
					if diff := cmp.Diff(sc.wantState, keyStateCounts(q, sc.key)); diff != "" {
						t.Errorf("restored state (-want +got):\n%s", diff)
					}
					again, _ := q.AppendKeyState(nil, sc.key)
					if !bytes.Equal(again, want) {
						t.Errorf("restored state re-encodes to %d bytes that differ from the %d bytes of the original state", len(again), len(want))
					}
					sc.finish(q)
					if diff := cmp.Diff(refOut.alerts, out.alerts); diff != "" {
						t.Errorf("alerts after the restore (-never stopped +restored):\n%s", diff)
					}
				})
			}
			if !slices.Contains(fixtures, current) {
				t.Errorf("no fixture %s of the current key-state version: run go test ./matcher -run TestKeyStateFixtures -update-keystate", current)
			}
		})
	}
}

// TestKeyStateFixturesTruncated restores every proper prefix of every
// fixture into a Partition of its scenario's Program: a state's counts
// fix its length, so each must be refused, with an error wrapping
// ErrSnapshot, and none may panic.
func TestKeyStateFixturesTruncated(t *testing.T) {
	fixtures, err := filepath.Glob("testdata/keystate/*.bin")
	if err != nil || len(fixtures) == 0 {
		t.Fatalf("no fixture in testdata/keystate: %v", err)
	}
	for _, fx := range fixtures {
		m := fixtureVersion.FindStringSubmatch(filepath.Base(fx))
		if m == nil {
			t.Fatalf("%s: not named NAME-vN.bin", fx)
		}
		t.Run(filepath.Base(fx), func(t *testing.T) {
			sc := loadKeyStateScenario(t, filepath.Join("testdata", "keystate", m[1]+".txtar"))
			data, err := os.ReadFile(fx)
			if err != nil {
				t.Fatal(err)
			}
			for cut := range len(data) {
				func() {
					defer func() {
						if v := recover(); v != nil {
							t.Errorf("cut at %d of %d: RestoreKey panicked: %v", cut, len(data), v)
						}
					}()
					err := sc.newPartition(t, &alertCollector{}).RestoreKey(sc.key, data[:cut])
					if !errors.Is(err, ErrSnapshot) {
						t.Errorf("cut at %d of %d: RestoreKey = %v, want an error wrapping ErrSnapshot", cut, len(data), err)
					}
				}()
			}
		})
	}
}
