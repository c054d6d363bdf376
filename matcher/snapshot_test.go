package matcher

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rogpeppe/go-internal/txtar"

	"github.com/shrike-cep/shrike/internal/gen"
	"github.com/shrike-cep/shrike/rules"
)

// idCollector keeps alert ids.
type idCollector struct{ ids []string }

func (c *idCollector) Alert(a *Alert) { c.ids = append(c.ids, a.ID) }
func (c *idCollector) Late(*Record)   {}

// snapshotFixture is a payments stream with few keys, so that keys hold
// many partial matches across checkpoints.
func snapshotFixture(t *testing.T) (*Program, *rules.Compiled, []*Record) {
	t.Helper()
	src, err := os.ReadFile("../rulesets/payments.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Load("payments.yaml", src, rules.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	prog, err := NewProgram([]*rules.Compiled{rs})
	if err != nil {
		t.Fatal(err)
	}
	recs := generatedRecords(t, rs, gen.Options{Seed: 7, Events: 6000, Keys: 60, Rate: 20, OutOfOrder: 0.05, MaxLateness: 1500 * time.Millisecond}, "payments/0")
	return prog, rs, recs
}

func clone(r *Record) *Record { c := *r; return &c }

// generatedRecords are the events internal/gen makes with o, keyed and timed
// by rs, at positions source:line; events rs cannot key are left out.
func generatedRecords(t *testing.T, rs *rules.Compiled, o gen.Options, source string) []*Record {
	t.Helper()
	g, err := gen.New(o)
	if err != nil {
		t.Fatal(err)
	}
	var recs []*Record
	for line := int64(1); ; line++ {
		raw, ok := g.Next()
		if !ok {
			return recs
		}
		ev, err := rules.ParseEvent(append([]byte(nil), raw...))
		if err != nil {
			t.Fatal(err)
		}
		key, err := rs.Key.EvalKey(ev)
		if err != nil {
			continue
		}
		ts, err := rs.Time.EvalTime(ev)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &Record{Event: ev, Key: key, Time: ts, Pos: Position{Source: source, Offset: line}})
	}
}

func referenceIDs(t *testing.T, prog *Program, rs *rules.Compiled, recs []*Record) []string {
	out := &idCollector{}
	p, _ := NewPartition(prog, out, Options{MaxOutOfOrderness: rs.Stream.MaxOutOfOrderness})
	for _, r := range recs {
		p.Push(clone(r))
	}
	p.Advance(math.MaxInt64)
	if len(out.ids) == 0 {
		t.Fatal("the fixture stream produced no alert")
	}
	return out.ids
}

// store is an in-memory stand-in for the runtime's state store.
type store struct {
	keys      map[string][]byte
	deadlines map[string]int64 // evicted keys with an open window
	// evicted are the keys evicted and not restored since, as the
	// engine's key cache tracks them: a key not in memory that was not
	// evicted has no state, whatever the store still holds for it until
	// the next checkpoint deletes it.
	evicted map[string]bool
}

// checkpoint writes every changed key to the store.
func (s *store) checkpoint(t *testing.T, p *Partition) {
	changed, emptied := p.Changes()
	for _, k := range changed {
		b, ok := p.AppendKeyState(nil, k)
		if !ok {
			t.Fatalf("changed key %q has no state", k)
		}
		s.keys[k] = b
	}
	for _, k := range emptied {
		delete(s.keys, k)
	}
}

// load restores a key that was evicted.
func (s *store) load(t *testing.T, p *Partition, key string) {
	if p.Resident(key) || !s.evicted[key] {
		return
	}
	delete(s.evicted, key)
	if b, ok := s.keys[key]; ok {
		if err := p.RestoreKey(key, b); err != nil {
			t.Fatal(err)
		}
		delete(s.deadlines, key)
	}
}

// TestEvictAndRestoreKeepsAlerts checkpoints and evicts every key it can
// every few hundred records, restoring keys when a record or a closing
// window needs them: the alerts must be exactly those of a run that keeps
// everything in memory.
func TestEvictAndRestoreKeepsAlerts(t *testing.T) {
	prog, rs, recs := snapshotFixture(t)
	want := referenceIDs(t, prog, rs, recs)

	out := &idCollector{}
	ooo := int64(rs.Stream.MaxOutOfOrderness)
	p, _ := NewPartition(prog, out, Options{MaxOutOfOrderness: rs.Stream.MaxOutOfOrderness})
	s := &store{keys: map[string][]byte{}, deadlines: map[string]int64{}, evicted: map[string]bool{}}
	maxTime := int64(math.MinInt64)
	for i, r := range recs {
		// Before the watermark moves, bring back every evicted key whose
		// window closes by then, and the record's own key.
		maxTime = max(maxTime, r.Time)
		for k, d := range s.deadlines {
			if d <= maxTime-ooo-1 {
				s.load(t, p, k)
			}
		}
		s.load(t, p, r.Key)
		p.Push(clone(r))
		if i%337 == 0 {
			s.checkpoint(t, p)
			buffered := p.BufferedSet()
			for _, k := range p.ResidentKeys() {
				if buffered.MayHold(k) {
					continue
				}
				if d, ok := p.KeyDeadline(k); ok {
					s.deadlines[k] = d
				}
				p.Evict(k)
				s.evicted[k] = true
			}
		}
	}
	for k := range s.deadlines {
		s.load(t, p, k)
	}
	p.Advance(math.MaxInt64)
	if diff := cmp.Diff(want, out.ids); diff != "" {
		t.Errorf("alert ids (-want +got):\n%s", diff)
	}
}

// TestRestartFromCheckpoint stops a partition at several points, starts a
// fresh one from the checkpoint and re-reads the source from the oldest
// record still buffered, skipping records behind the restored watermark:
// together the two emit every alert of an uninterrupted run (a few twice,
// with the same id), and nothing else.
func TestRestartFromCheckpoint(t *testing.T) {
	prog, rs, recs := snapshotFixture(t)
	want := referenceIDs(t, prog, rs, recs)
	for _, stop := range []int{1, 500, 2999, 4000, len(recs) - 2} {
		first := &idCollector{}
		p, _ := NewPartition(prog, first, Options{MaxOutOfOrderness: rs.Stream.MaxOutOfOrderness})
		s := &store{keys: map[string][]byte{}, evicted: map[string]bool{}}
		for _, r := range recs[:stop] {
			p.Push(clone(r))
		}
		s.checkpoint(t, p)
		cp := p.Checkpoint()
		resume := stop
		if off, ok := p.OldestBuffered(); ok {
			resume = int(off) - 1 // offsets are 1-based line numbers here
		}
		// A crash after more records were matched: the same alerts again.
		for _, r := range recs[stop:min(stop+50, len(recs))] {
			p.Push(clone(r))
		}

		second := &idCollector{}
		q, _ := NewPartition(prog, second, Options{MaxOutOfOrderness: rs.Stream.MaxOutOfOrderness})
		if err := q.Restore(cp); err != nil {
			t.Fatal(err)
		}
		// A fresh partition: every stored key is as evicted.
		for k := range s.keys {
			s.evicted[k] = true
			s.load(t, q, k)
		}
		for _, r := range recs[resume:] {
			if r.Time < cp.Watermark {
				continue // matched (or late) before the checkpoint
			}
			q.Push(clone(r))
		}
		q.Advance(math.MaxInt64)

		got := map[string]bool{}
		for _, id := range append(first.ids, second.ids...) {
			got[id] = true
		}
		wantSet := map[string]bool{}
		for _, id := range want {
			wantSet[id] = true
		}
		if diff := cmp.Diff(wantSet, got); diff != "" {
			t.Errorf("stop at %d: alert ids (-want +got):\n%s", stop, diff)
		}
	}
}

// TestRestoreKeyRejectsCorruptState restores prefixes of a key's encoded
// state, cut at every fiftieth of its length. A prefix may decode when it
// ends on a boundary, but RestoreKey must never panic, every failure must
// wrap ErrSnapshot, and most cuts must fail; the whole encoding must restore
// and re-encode to the same bytes.
func TestRestoreKeyRejectsCorruptState(t *testing.T) {
	prog, rs, recs := snapshotFixture(t)
	p, _ := NewPartition(prog, &idCollector{}, Options{MaxOutOfOrderness: rs.Stream.MaxOutOfOrderness})
	for _, r := range recs[:2000] {
		p.Push(clone(r))
	}
	changed, _ := p.Changes()
	if len(changed) == 0 {
		t.Fatal("no key holds state")
	}
	good, _ := p.AppendKeyState(nil, changed[0])
	// restore reports a panic as a test error and the cut as failed, so
	// that one panicking cut does not hide the others.
	restore := func(cut int) (panicked bool, err error) {
		defer func() {
			if v := recover(); v != nil {
				t.Errorf("cut at %d of %d: RestoreKey panicked: %v", cut, len(good), v)
				panicked = true
			}
		}()
		q, _ := NewPartition(prog, &idCollector{}, Options{})
		return false, q.RestoreKey("k", good[:cut])
	}
	cuts, failed := 0, 0
	for cut := 0; cut < len(good); cut += max(1, len(good)/50) {
		cuts++
		panicked, err := restore(cut)
		switch {
		case panicked:
			failed++
		case err == nil:
		case !errors.Is(err, ErrSnapshot):
			failed++
			t.Errorf("cut at %d of %d: error %v does not wrap ErrSnapshot", cut, len(good), err)
		default:
			failed++
		}
	}
	t.Logf("%d of %d truncated states of %d bytes refused", failed, cuts, len(good))
	if cuts < 20 {
		t.Fatalf("only %d cuts of a %d-byte state: the fixture is too small to test truncation", cuts, len(good))
	}
	if failed*10 < cuts*9 {
		t.Errorf("%d of %d truncated states restored without error, want at most a tenth", cuts-failed, cuts)
	}
	q, _ := NewPartition(prog, &idCollector{}, Options{})
	if err := q.RestoreKey("k", good); err != nil {
		t.Fatalf("restore full state: %v", err)
	}
	again, _ := q.AppendKeyState(nil, "k")
	if !bytes.Equal(good, again) {
		t.Error("state re-encoded after restore differs from the original")
	}
}

// FuzzRestoreKey restores arbitrary bytes into a Partition of four
// rulesets, payments (testdata/keystate/payments-busy.txtar), abRule,
// fx (testdata/keystate/suppress.txtar, with alert suppression) and
// wideRule (an aggregate), seeded with the fixtures of every version, a
// version-2 state of abRule and a state of wideRule holding panes: every
// failure must wrap ErrSnapshot, and whatever restores must
// encode again and restore to the same encoding.
func FuzzRestoreKey(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Add([]byte{1, 1, 1, 'x', 1, 2, 2, 0, 0, 2, '{', '}', 0, 0})
	f.Add([]byte{2, 6, 1, 1, 'x', 0, 0})
	fixtures, err := filepath.Glob("testdata/keystate/*.bin")
	if err != nil || len(fixtures) == 0 {
		f.Fatalf("no key-state fixture: %v", err)
	}
	for _, fx := range fixtures {
		b, err := os.ReadFile(fx)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	ar, err := txtar.ParseFile("testdata/keystate/payments-busy.txtar")
	if err != nil {
		f.Fatal(err)
	}
	var paymentsYAML []byte
	for _, file := range ar.Files {
		if file.Name == "ruleset.yaml" {
			paymentsYAML = file.Data
		}
	}
	payments, err := rules.Load("payments.yaml", paymentsYAML, rules.CompileOptions{})
	if err != nil {
		f.Fatal(err)
	}
	ab, err := rules.Load("t.yaml", []byte(abRule), rules.CompileOptions{})
	if err != nil {
		f.Fatal(err)
	}
	// The suppression scenario's rules: its fixtures restore suppression
	// entries of a single-event and of a pattern rule.
	suppress := loadKeyStateScenario(f, "testdata/keystate/suppress.txtar").ruleset
	wide, err := rules.Load("wide.yaml", []byte(strings.Replace(wideRule, "ruleset: test", "ruleset: wide", 1)), rules.CompileOptions{})
	if err != nil {
		f.Fatal(err)
	}
	prog, err := NewProgram([]*rules.Compiled{payments, ab, suppress, wide})
	if err != nil {
		f.Fatal(err)
	}
	p, _ := NewPartition(prog, &idCollector{}, Options{})
	for i, kind := range []string{"a", "a", "x", "b"} {
		ev, err := rules.ParseEvent(fmt.Appendf(nil, `{"id":%d,"type":%q}`, i, kind))
		if err != nil {
			f.Fatal(err)
		}
		p.Push(&Record{Event: ev, Key: "k", Time: int64(i) * ms, Pos: Position{Source: "t", Offset: int64(i)}})
	}
	if st, ok := p.AppendKeyState(nil, "k"); ok {
		f.Add(st)
	} else {
		f.Fatal("the abRule seed holds no state")
	}
	w, _ := NewPartition(prog, &idCollector{}, Options{MaxRunsPerKey: 2})
	feed(f, w, paneStream(0, 40), 0)
	panes := 0
	for _, rk := range w.residentState("k").rules {
		if rk.x != nil && rk.x.agg != nil {
			panes += len(rk.x.agg.panes)
		}
	}
	if st, ok := w.AppendKeyState(nil, "k"); ok && panes > 0 {
		f.Add(st)
	} else {
		f.Fatal("the wideRule seed holds no pane")
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, _ := NewPartition(prog, &idCollector{}, Options{})
		if err := p.RestoreKey("k", data); err != nil {
			if !errors.Is(err, ErrSnapshot) {
				t.Fatalf("error %v does not wrap ErrSnapshot", err)
			}
			return
		}
		once, ok := p.AppendKeyState(nil, "k")
		if !ok {
			return // nothing of the Program's rules
		}
		q, _ := NewPartition(prog, &idCollector{}, Options{})
		if err := q.RestoreKey("k", once); err != nil {
			t.Fatalf("a state AppendKeyState wrote does not restore: %v", err)
		}
		if twice, _ := q.AppendKeyState(nil, "k"); !bytes.Equal(once, twice) {
			t.Fatalf("restored and encoded again, %d bytes became %d", len(once), len(twice))
		}
	})
}

// TestRestoreKeyErrors checks that each kind of corrupt state is refused
// with an error that wraps ErrSnapshot and says what and where.
func TestRestoreKeyErrors(t *testing.T) {
	// dropped marks a state that restores to nothing: its rule is not the
	// Program's at that version.
	const dropped = "(dropped)"
	prog := program(t, abRule)
	ab := prog.byName()["test/ab"]
	ref := binary.LittleEndian.AppendUint64(nil, ruleRef(ab.name, ab.rule.Version))
	// state builds a version-2 state: one source "s", one record, one
	// node of step step (zigzag-encoded), then rules.
	state := func(step byte, rules ...byte) []byte {
		b := []byte{2, 6, 1, 1, 's', 1, 2, 2, 2, 2, '{', '}', 1, 0, step, 0}
		return append(b, rules...)
	}
	// oneRun is a rule count of 1, then abRule with one run.
	oneRun := func(stateID, last byte) []byte {
		return append(append([]byte{1}, ref...), 2, stateID, last, 0, 0, 0)
	}
	// v1 builds a version-1 state of one record, one node and abRule at
	// version with one run whose last node is last.
	v1 := func(last byte, version string) []byte {
		b := []byte{1, 1, 1, 's', 1, 0, 2, 0, 2, 2, '{', '}', 1, 0, 0, 0, 1}
		b = appendLenString(b, ab.name)
		b = appendLenString(b, version)
		return append(b, 1, 1, last, 0, 2, 0, 0)
	}
	p, _ := newPartition(t, abRule, Options{})
	push(t, p, []ev{{1, "", 0, "a"}})
	p.Advance(1)
	good, ok := p.AppendKeyState(nil, "k")
	if !ok {
		t.Fatal("no state after an a")
	}
	tests := []struct {
		name string
		in   []byte
		want string // "" when the state restores, dropped when it restores to nothing
	}{
		{"good", good, ""},
		{"built", state(0, oneRun(1, 1)...), ""},
		{"empty", nil, "version at byte 0: truncated or overlong varint"},
		{"version 0", []byte{0}, "version 0 is not known to this version of Shrike (it reads 1 to 3)"},
		{"newer version", append([]byte{4}, good[1:]...), "version 4 is not known to this version of Shrike (it reads 1 to 3)"},
		{"time unit above a second", []byte{2, 10, 0, 0, 0, 0}, "version 2: time exponent at byte 2: 10 is above 9"},
		{"count past the end", []byte{2, 6, 0, 100, 1}, "version 2: record count at byte 4: length 100, 1 bytes left"},
		{"cut in a record", state(0)[:9], "version 2: record 1 of 1 at byte 9: truncated or overlong varint"},
		{"event not JSON", []byte{2, 6, 1, 1, 's', 1, 2, 2, 2, 1, 'x', 0, 0}, "version 2: record 1 of 1: event: "},
		{"node of a missing record", []byte{2, 6, 0, 0, 1, 0, 0, 0, 0}, "version 2: node 1 of 1 at byte 6: index 0 of 0"},
		{"node refers forward", []byte{2, 6, 1, 1, 's', 1, 2, 2, 2, 2, '{', '}', 1, 0, 0, 1, 0}, "version 2: node 1 of 1 at byte 16: refers to a later node"},
		{"run of a missing state", state(0, oneRun(99, 1)...), "version 2: run 1 of 1 at byte 31: state 99 of a rule with"},
		{"run of a missing node", state(0, oneRun(1, 5)...), "version 2: run 1 of 1 at byte 31: node 5 of 1"},
		{"node of a missing step", state(18, oneRun(1, 1)...), "version 2: run 1 of 1 at byte 31: node of step 9 of a rule with 2"},
		{"rule twice", state(0, append(append([]byte{2}, oneRun(1, 1)[1:]...), oneRun(1, 1)[1:]...)...), "version 2: rule 2 of 2 at byte 45: rule test/ab a second time"},
		{"version 1", v1(1, ab.rule.Version), ""},
		{"version 1 run of a missing node", v1(5, ab.rule.Version), "version 1: run 1 of 1 at byte 40: node 5 of 1"},
		{"version 1 of another rule version", v1(1, "00000000"), dropped},
		{"another rule version", append(state(0, oneRun(1, 1)[:1]...), append(make([]byte, 8), 2, 1, 1, 0, 0, 0)...), dropped},
		{"trailing bytes", append(append([]byte{}, good...), 7), "version 3: end at byte " + fmt.Sprint(len(good)) + ": 1 bytes past the end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, _ := newPartition(t, abRule, Options{})
			err := q.RestoreKey("k", tt.in)
			if tt.want == "" || tt.want == dropped {
				if err != nil {
					t.Fatalf("RestoreKey: %v", err)
				}
				if q.Resident("k") != (tt.want == "") {
					t.Errorf("resident after the restore: %t, want %t", q.Resident("k"), tt.want == "")
				}
				return
			}
			if !errors.Is(err, ErrSnapshot) {
				t.Fatalf("RestoreKey = %v, want an error wrapping ErrSnapshot", err)
			}
			if want := `restore key "k": bad key state: ` + tt.want; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error\n%v\nwant it to start with\n%s", err, want)
			}
		})
	}
}

// BenchmarkKeyStateCodec encodes and restores the key state each scenario
// of testdata/keystate leaves at its checkpoint, reporting its size
// (B/key-state) and its open partial matches (runs, held matches
// included).
func BenchmarkKeyStateCodec(b *testing.B) {
	for _, name := range []string{"payments-login", "payments-busy", "shared-runs"} {
		sc := loadKeyStateScenario(b, filepath.Join("testdata", "keystate", name+".txtar"))
		p := sc.newPartition(b, &idCollector{})
		sc.checkpointed(p)
		state, ok := p.AppendKeyState(nil, sc.key)
		if !ok {
			b.Fatalf("%s: no state", name)
		}
		runs := 0
		for _, rk := range p.residentState(sc.key).rules {
			runs += len(rk.runs) + len(rk.heldRuns())
		}
		b.Run(name+"/encode", func(b *testing.B) {
			b.ReportAllocs()
			var buf []byte
			for b.Loop() {
				buf, _ = p.AppendKeyState(buf[:0], sc.key)
			}
			b.ReportMetric(float64(len(state)), "B/key-state")
			b.ReportMetric(float64(runs), "runs")
		})
		b.Run(name+"/restore", func(b *testing.B) {
			b.ReportAllocs()
			q := sc.newPartition(b, &idCollector{})
			for b.Loop() {
				if err := q.RestoreKey(sc.key, state); err != nil {
					b.Fatal(err)
				}
				q.Evict(sc.key)
			}
		})
	}
}

// TestBufferedSet: every key with records waiting for the watermark is in
// the set, for records pushed with and without Prepare; few others are.
func TestBufferedSet(t *testing.T) {
	prog, rs, recs := snapshotFixture(t)
	for _, prepared := range []bool{false, true} {
		p, _ := NewPartition(prog, &idCollector{}, Options{MaxOutOfOrderness: rs.Stream.MaxOutOfOrderness})
		if got := p.BufferedSet(); got.MayHold("anything") {
			t.Fatal("an empty buffer's set holds a key")
		}
		for _, r := range recs[:3000] {
			c := clone(r)
			if prepared {
				prog.Prepare(c)
			}
			p.Push(c)
		}
		buffered := p.BufferedKeys()
		if len(buffered) == 0 {
			t.Fatal("no record waits for the watermark: the test needs some")
		}
		set := p.BufferedSet()
		for k := range buffered {
			if !set.MayHold(k) {
				t.Errorf("prepared %v: buffered key %q not in the set", prepared, k)
			}
		}
		var wrong int
		const others = 10_000
		for i := range others {
			if set.MayHold(fmt.Sprintf("not-buffered-%d", i)) {
				wrong++
			}
		}
		if wrong > others/8 {
			t.Errorf("prepared %v: %d of %d keys without buffered records in the set", prepared, wrong, others)
		}
	}
}
