package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/shrike-cep/shrike/internal/pagetoken"
	"github.com/shrike-cep/shrike/rules"
)

// The registry tests run on miniredis, standalone and as a one-node
// Cluster, and on a real redis-server (SHRIKE_REDIS_ADDR) and Redis
// Cluster (SHRIKE_REDIS_CLUSTER, comma-separated seeds) when those are set
// (scripts/redis-servers starts both). On a shared server each test writes
// under a key prefix of its own, deleted at cleanup.

// redisTarget opens clients on one Redis deployment; every client a test
// opens shares the deployment and the key prefix.
type redisTarget struct {
	name   string
	prefix string
	client func(t *testing.T) redis.UniversalClient
}

func redisTargets(t *testing.T) []redisTarget {
	mini := func(cluster bool) func(t *testing.T) redisTarget {
		return func(t *testing.T) redisTarget {
			m := miniredis.RunT(t)
			return redisTarget{prefix: "shrike", client: func(t *testing.T) redis.UniversalClient {
				return newTestClient(t, []string{m.Addr()}, cluster)
			}}
		}
	}
	type opener struct {
		name string
		open func(t *testing.T) redisTarget
	}
	openers := []opener{{"miniredis", mini(false)}, {"miniredis-cluster", mini(true)}}
	shared := func(addrs []string, cluster bool) func(t *testing.T) redisTarget {
		return func(t *testing.T) redisTarget {
			prefix := "shrike-test-" + randomHex(t)
			cleanupPrefix(t, addrs, cluster, prefix)
			return redisTarget{prefix: prefix, client: func(t *testing.T) redis.UniversalClient {
				return newTestClient(t, addrs, cluster)
			}}
		}
	}
	if addr := os.Getenv("SHRIKE_REDIS_ADDR"); addr != "" {
		openers = append(openers, opener{"redis", shared([]string{addr}, false)})
	}
	if seeds := os.Getenv("SHRIKE_REDIS_CLUSTER"); seeds != "" {
		openers = append(openers, opener{"redis-cluster", shared(strings.Split(seeds, ","), true)})
	}
	out := make([]redisTarget, 0, len(openers))
	for _, o := range openers {
		tg := o.open(t)
		tg.name = o.name
		out = append(out, tg)
	}
	return out
}

func randomHex(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// stepClock is a clock that moves one second per reading, so that every
// version gets a distinct, predictable time.
type stepClock struct{ n atomic.Int64 }

var clockStart = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

func (c *stepClock) Now() time.Time { return clockStart.Add(time.Duration(c.n.Add(1)) * time.Second) }

func newTestRegistry(t *testing.T, tg redisTarget, clock func() time.Time) *Registry {
	t.Helper()
	r, err := New(Options{Client: tg.client(t), KeyPrefix: tg.prefix, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// recordCmp compares records in UTC.
var recordCmp = cmp.Transformer("UTC", func(t time.Time) time.Time { return t.UTC() })

func TestRegistryVersions(t *testing.T) {
	for _, tg := range redisTargets(t) {
		t.Run(tg.name, func(t *testing.T) {
			ctx := context.Background()
			clock := &stepClock{}
			r := newTestRegistry(t, tg, clock.Now)
			v1, v2 := rulesetSource("payments", 100), rulesetSource("payments", 200)

			put := func(src []byte) RulesetRecord {
				t.Helper()
				rec, err := r.Put(ctx, "payments", src)
				if err != nil {
					t.Fatalf("Put: %v", err)
				}
				return rec
			}
			got := []RulesetRecord{put(v1), put(v1), put(v2)}
			want := []RulesetRecord{
				{Name: "payments", Version: 1, Source: v1, CreateTime: at(1), UpdateTime: at(1)},
				// The same source again is no new version.
				{Name: "payments", Version: 1, Source: v1, CreateTime: at(1), UpdateTime: at(1)},
				{Name: "payments", Version: 2, Source: v2, CreateTime: at(1), UpdateTime: at(3)},
			}
			if diff := cmp.Diff(want, got, recordCmp); diff != "" {
				t.Errorf("Put (-want +got):\n%s", diff)
			}

			cur, err := r.Get(ctx, "payments", 0)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want[2], cur, recordCmp); diff != "" {
				t.Errorf("Get current (-want +got):\n%s", diff)
			}
			first, err := r.Get(ctx, "payments", 1)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want[0], first, recordCmp); diff != "" {
				t.Errorf("Get version 1 (-want +got):\n%s", diff)
			}

			back, err := r.Rollback(ctx, "payments", 1)
			if err != nil {
				t.Fatalf("Rollback: %v", err)
			}
			wantBack := RulesetRecord{Name: "payments", Version: 3, Source: v1, CreateTime: at(1), UpdateTime: at(4), RollbackOf: 1}
			if diff := cmp.Diff(wantBack, back, recordCmp); diff != "" {
				t.Errorf("Rollback (-want +got):\n%s", diff)
			}

			hist, next, err := r.Versions(ctx, "payments", 0, "")
			if err != nil {
				t.Fatal(err)
			}
			if next != "" {
				t.Errorf("Versions: next page token %q on the only page", next)
			}
			if diff := cmp.Diff([]RulesetRecord{wantBack, want[2], want[0]}, hist, recordCmp); diff != "" {
				t.Errorf("Versions, newest first (-want +got):\n%s", diff)
			}

			for _, tc := range []struct {
				name    string
				ruleset string
				version int64
				want    error
			}{
				{"a version past the last", "payments", 4, ErrVersionNotFound},
				{"a negative version", "payments", -1, ErrVersionNotFound},
				{"another ruleset", "nothing", 0, ErrRulesetNotFound},
			} {
				t.Run(tc.name, func(t *testing.T) {
					name := tc.ruleset
					_, err := r.Get(ctx, name, tc.version)
					if !errors.Is(err, tc.want) {
						t.Errorf("Get(%q, %d) = %v, want %v", name, tc.version, err, tc.want)
					}
					if !errors.Is(err, ErrRulesetNotFound) {
						t.Errorf("Get(%q, %d) = %v, which is not ErrRulesetNotFound", name, tc.version, err)
					}
				})
			}
			if _, err := r.Rollback(ctx, "payments", 9); !errors.Is(err, ErrVersionNotFound) {
				t.Errorf("Rollback to version 9 = %v, want ErrVersionNotFound", err)
			}
		})
	}
}

// TestRegistryRollbackPrevious: Rollback with version 0 restores the
// newest earlier version with another source (twice in a row goes back
// and forth), skipping deletions; it brings a deleted ruleset back as it
// was, and is ErrNoPreviousVersion when there is no such version.
func TestRegistryRollbackPrevious(t *testing.T) {
	for _, tg := range redisTargets(t) {
		t.Run(tg.name, func(t *testing.T) {
			ctx := context.Background()
			r := newTestRegistry(t, tg, (&stepClock{}).Now)
			a, b, c := rulesetSource("payments", 100), rulesetSource("payments", 200), rulesetSource("payments", 300)
			step := func(what string, err error) {
				t.Helper()
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
			}
			put := func(src []byte) {
				t.Helper()
				_, err := r.Put(ctx, "payments", src)
				step("put", err)
			}
			back := func(wantVersion, wantOf int64, wantSrc []byte) {
				t.Helper()
				rec, err := r.Rollback(ctx, "payments", 0)
				if err != nil {
					t.Fatalf("Rollback to the previous version: %v", err)
				}
				if rec.Version != wantVersion || rec.RollbackOf != wantOf || string(rec.Source) != string(wantSrc) {
					t.Errorf("Rollback to the previous version = version %d of %d, source %q; want version %d of %d, source %q",
						rec.Version, rec.RollbackOf, rec.Source, wantVersion, wantOf, wantSrc)
				}
			}
			noPrevious := func(name, want string) {
				t.Helper()
				if _, err := r.Rollback(ctx, name, 0); !errors.Is(err, ErrNoPreviousVersion) || !strings.Contains(err.Error(), want) {
					t.Errorf("Rollback(%q) = %v, want ErrNoPreviousVersion saying %s", name, err, want)
				}
			}

			put(a) // 1
			noPrevious("payments", `"payments" has only version 1`)
			if _, err := r.Rollback(ctx, "nothing", 0); !errors.Is(err, ErrRulesetNotFound) {
				t.Errorf("Rollback of no ruleset = %v, want ErrRulesetNotFound", err)
			}
			put(b)                                    // 2
			back(3, 1, a)                             // b -> a
			back(4, 2, b)                             // and back to b
			step("delete", r.Delete(ctx, "payments")) // 5
			back(6, 4, b)                             // undoes the deletion
			back(7, 3, a)                             // past the deletion (5) and b's other version (4)
			step("delete", r.Delete(ctx, "payments")) // 8
			put(c)                                    // 9
			back(10, 7, a)                            // past the deletion (8)

			src := rulesetSource("solo", 100)
			for _, op := range []func() error{
				func() error { _, err := r.Put(ctx, "solo", src); return err },
				func() error { return r.Delete(ctx, "solo") },
				func() error { _, err := r.Put(ctx, "solo", src); return err },
			} {
				step("solo", op())
			}
			noPrevious("solo", `"solo" has no version before version 3 with another source`)
		})
	}
}

func TestRegistryDelete(t *testing.T) {
	for _, tg := range redisTargets(t) {
		t.Run(tg.name, func(t *testing.T) {
			ctx := context.Background()
			clock := &stepClock{}
			r := newTestRegistry(t, tg, clock.Now)
			src := rulesetSource("payments", 100)
			if _, err := r.Put(ctx, "payments", src); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Put(ctx, "other", rulesetSource("other", 5)); err != nil {
				t.Fatal(err)
			}
			if err := r.Delete(ctx, "payments"); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if _, err := r.Get(ctx, "payments", 0); !errors.Is(err, ErrRulesetNotFound) {
				t.Errorf("Get of a deleted ruleset = %v, want ErrRulesetNotFound", err)
			}
			if err := r.Delete(ctx, "payments"); !errors.Is(err, ErrRulesetNotFound) {
				t.Errorf("Delete again = %v, want ErrRulesetNotFound", err)
			}
			if err := r.Delete(ctx, "never"); !errors.Is(err, ErrRulesetNotFound) {
				t.Errorf("Delete of an unknown ruleset = %v, want ErrRulesetNotFound", err)
			}
			list, _, err := r.List(ctx, 0, "")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{"other"}, recordNames(list)); diff != "" {
				t.Errorf("List after the delete (-want +got):\n%s", diff)
			}

			// The history stays, the deletion is its newest version.
			hist, _, err := r.Versions(ctx, "payments", 0, "")
			if err != nil {
				t.Fatal(err)
			}
			wantHist := []RulesetRecord{
				{Name: "payments", Version: 2, CreateTime: at(1), UpdateTime: at(3), Deleted: true},
				{Name: "payments", Version: 1, Source: src, CreateTime: at(1), UpdateTime: at(1)},
			}
			if diff := cmp.Diff(wantHist, hist, recordCmp); diff != "" {
				t.Errorf("Versions after the delete (-want +got):\n%s", diff)
			}
			if _, err := r.Rollback(ctx, "payments", 2); !errors.Is(err, ErrDeletedVersion) {
				t.Errorf("Rollback to the deletion = %v, want ErrDeletedVersion", err)
			}

			// A rollback brings it back as a new ruleset life. (Each
			// write, found or not, read the clock: this is its sixth
			// reading.)
			back, err := r.Rollback(ctx, "payments", 1)
			if err != nil {
				t.Fatal(err)
			}
			want := RulesetRecord{Name: "payments", Version: 3, Source: src, CreateTime: at(6), UpdateTime: at(6), RollbackOf: 1}
			if diff := cmp.Diff(want, back, recordCmp); diff != "" {
				t.Errorf("Rollback of a deleted ruleset (-want +got):\n%s", diff)
			}
			cur, err := r.Get(ctx, "payments", 0)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, cur, recordCmp); diff != "" {
				t.Errorf("Get after the rollback (-want +got):\n%s", diff)
			}
		})
	}
}

func recordNames(recs []RulesetRecord) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Name)
	}
	return out
}

func TestRegistryPagination(t *testing.T) {
	for _, tg := range redisTargets(t) {
		t.Run(tg.name, func(t *testing.T) {
			ctx := context.Background()
			r := newTestRegistry(t, tg, nil)
			for i := range 7 {
				name := fmt.Sprintf("rs-%d", i)
				if _, err := r.Put(ctx, name, rulesetSource(name, i)); err != nil {
					t.Fatal(err)
				}
			}
			for v := range 5 {
				if _, err := r.Put(ctx, "rs-3", rulesetSource("rs-3", 100+v)); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.Delete(ctx, "rs-5"); err != nil {
				t.Fatal(err)
			}

			var pages [][]string
			tok := ""
			for {
				recs, next, err := r.List(ctx, 2, tok)
				if err != nil {
					t.Fatalf("List(2, %q): %v", tok, err)
				}
				pages = append(pages, recordNames(recs))
				if next == "" {
					break
				}
				tok = next
			}
			want := [][]string{{"rs-0", "rs-1"}, {"rs-2", "rs-3"}, {"rs-4", "rs-6"}}
			if diff := cmp.Diff(want, pages); diff != "" {
				t.Errorf("List pages (-want +got):\n%s", diff)
			}

			var vpages [][]int64
			tok = ""
			for {
				recs, next, err := r.Versions(ctx, "rs-3", 4, tok)
				if err != nil {
					t.Fatalf("Versions(4, %q): %v", tok, err)
				}
				var vs []int64
				for _, rec := range recs {
					vs = append(vs, rec.Version)
				}
				vpages = append(vpages, vs)
				if next == "" {
					break
				}
				tok = next
			}
			if diff := cmp.Diff([][]int64{{6, 5, 4, 3}, {2, 1}}, vpages); diff != "" {
				t.Errorf("Versions pages (-want +got):\n%s", diff)
			}

			_, listTok, err := r.List(ctx, 1, "")
			if err != nil {
				t.Fatal(err)
			}
			_, verTok, err := r.Versions(ctx, "rs-3", 1, "")
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				name string
				call func() error
			}{
				{"List with garbage", func() error { _, _, err := r.List(ctx, 1, "!!"); return err }},
				{"List with a Versions token", func() error { _, _, err := r.List(ctx, 1, verTok); return err }},
				{"Versions with a List token", func() error { _, _, err := r.Versions(ctx, "rs-3", 1, listTok); return err }},
				{"Versions with another ruleset's token", func() error { _, _, err := r.Versions(ctx, "rs-2", 1, verTok); return err }},
			} {
				t.Run(tc.name, func(t *testing.T) {
					if err := tc.call(); !errors.Is(err, pagetoken.ErrInvalid) {
						t.Errorf("got %v, want pagetoken.ErrInvalid", err)
					}
				})
			}
		})
	}
}

func TestRegistryConcurrentPuts(t *testing.T) {
	for _, tg := range redisTargets(t) {
		t.Run(tg.name, func(t *testing.T) {
			ctx := context.Background()
			// Two instances on one Redis.
			regs := []*Registry{newTestRegistry(t, tg, nil), newTestRegistry(t, tg, nil)}
			const n = 20
			var wg sync.WaitGroup
			got := make([]int64, n)
			errs := make([]error, n)
			for i := range n {
				wg.Go(func() {
					rec, err := regs[i%2].Put(ctx, "payments", rulesetSource("payments", i))
					got[i], errs[i] = rec.Version, err
				})
			}
			wg.Wait()
			seen := map[int64]int{}
			for i, v := range got {
				if errs[i] != nil {
					t.Fatalf("Put %d: %v", i, errs[i])
				}
				if j, ok := seen[v]; ok {
					t.Errorf("puts %d and %d both got version %d", j, i, v)
				}
				seen[v] = i
			}
			hist, _, err := regs[0].Versions(ctx, "payments", 0, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(hist) != n {
				t.Fatalf("%d versions, want %d", len(hist), n)
			}
			for _, rec := range hist {
				i, ok := seen[rec.Version]
				if !ok {
					t.Errorf("version %d was returned by no Put", rec.Version)
					continue
				}
				if want := rulesetSource("payments", i); string(rec.Source) != string(want) {
					t.Errorf("version %d holds %q, its Put stored %q", rec.Version, rec.Source, want)
				}
			}
		})
	}
}

func TestRegistryRejectsInvalidRulesets(t *testing.T) {
	tg := redisTargets(t)[0]
	ctx := context.Background()
	r := newTestRegistry(t, tg, nil)
	r.copts.MaxSourceBytes = 512
	badCEL := []byte(`ruleset: payments
stream:
  topic: payments
rules:
  - id: big
    severity: high
    when: event.amount > limit
`)
	big := append(rulesetSource("payments", 1), strings.Repeat("#", 600)...)
	for _, tc := range []struct {
		name, ruleset string
		src           []byte
		want          []string // each error's first line
	}{
		{"bad CEL", "payments", badCEL, []string{`payments.yaml:7:26: rule "big": undeclared reference to 'limit'`}},
		{"another name", "cards", rulesetSource("payments", 1), []string{`cards.yaml:1:10: ruleset name "payments" differs from "cards", the name it is stored under`}},
		{"another name and bad CEL", "cards", badCEL, []string{
			`cards.yaml:1:10: ruleset name "payments" differs from "cards", the name it is stored under`,
			`cards.yaml:7:26: rule "big": undeclared reference to 'limit'`,
		}},
		{"no name", "payments", []byte("rules: []\n"), []string{`payments.yaml:1:1: missing field "ruleset" (the ruleset's name)`}},
		{"too big", "payments", big, []string{fmt.Sprintf("payments.yaml: ruleset is %d bytes, over the limit of 512", len(big))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Put(ctx, tc.ruleset, tc.src)
			var list rules.ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("Put = %v, want a rules.ErrorList", err)
			}
			var got []string
			for _, e := range list {
				got = append(got, strings.SplitN(e.Error(), "\n", 2)[0])
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if _, err := r.Get(ctx, tc.ruleset, 0); !errors.Is(err, ErrRulesetNotFound) {
				t.Errorf("Get after a rejected Put = %v, want ErrRulesetNotFound", err)
			}
			if seq, err := r.seq(ctx); err != nil || seq != 0 {
				t.Errorf("change counter %d (%v) after rejected Puts, want 0", seq, err)
			}
		})
	}
	for _, name := range []string{"", "-x", "a b", "{tag}", strings.Repeat("x", MaxRulesetNameBytes+1)} {
		if _, err := r.Put(ctx, name, rulesetSource(name, 1)); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Put(%q) = %v, want ErrInvalidName", name, err)
		}
	}
}

// watcher collects what Watch hands over.
type watcher struct {
	mu    sync.Mutex
	calls [][]string // name@version of each call
}

func (w *watcher) fn(set Set) {
	var s []string
	for _, r := range set.Rulesets {
		s = append(s, fmt.Sprintf("%s@%d", r.Name, r.Version))
	}
	w.mu.Lock()
	w.calls = append(w.calls, s)
	w.mu.Unlock()
}

func (w *watcher) last() ([]string, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.calls) == 0 {
		return nil, 0
	}
	return w.calls[len(w.calls)-1], len(w.calls)
}

// watch runs r.Watch until the test ends.
func watch(t *testing.T, r *Registry) *watcher {
	w := &watcher{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Watch(ctx, w.fn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
	return w
}

// waitSet waits until w's last call holds want, and returns how long that
// took.
func waitSet(t *testing.T, w *watcher, want ...string) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(10 * time.Second)
	for {
		got, _ := w.last()
		if cmp.Equal(want, got) {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("Watch: last set %v, want %v", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRegistryWatch(t *testing.T) {
	for _, tg := range redisTargets(t) {
		t.Run(tg.name, func(t *testing.T) {
			ctx := context.Background()
			// Two instances on one Redis: a writes, b watches.
			a := newTestRegistry(t, tg, nil)
			if _, err := a.Put(ctx, "payments", rulesetSource("payments", 1)); err != nil {
				t.Fatal(err)
			}

			// The change message alone wakes the watcher: b reads the
			// counter only once an hour.
			b := newTestRegistry(t, tg, nil)
			b.poll = time.Hour
			wb := watch(t, b)
			waitSet(t, wb, "payments@1")
			if _, err := a.Put(ctx, "cards", rulesetSource("cards", 1)); err != nil {
				t.Fatal(err)
			}
			t.Logf("a Put seen after %v", waitSet(t, wb, "cards@1", "payments@1"))
			if err := a.Delete(ctx, "payments"); err != nil {
				t.Fatal(err)
			}
			t.Logf("a Delete seen after %v", waitSet(t, wb, "cards@1"))
			if _, n := wb.last(); n != 3 {
				t.Errorf("Watch called fn %d times for 2 changes, want 3", n)
			}

			// A change whose message is lost is caught by reading the
			// counter: c listens on a channel nobody publishes to.
			c := newTestRegistry(t, tg, nil)
			c.channel += "-lost"
			wc := watch(t, c)
			waitSet(t, wc, "cards@1")
			if _, err := a.Put(ctx, "cards", rulesetSource("cards", 2)); err != nil {
				t.Fatal(err)
			}
			// The poll interval bounds this; the time is logged, not
			// asserted (no timed assertions in unit tests).
			t.Logf("a change without its message seen after %v (poll every %v)", waitSet(t, wc, "cards@2"), c.poll)
		})
	}
}
