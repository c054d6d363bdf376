package cep

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shrike-cep/shrike/internal/testkit"
	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/registry"
	"github.com/shrike-cep/shrike/rules"
	"github.com/shrike-cep/shrike/state"
)

// The hot reload tests run the engine on kfake while a producer writes
// events without pause, and replace the rulesets under it.

// reloadSource is a ruleset over the topic "events": every event alerts
// by rule every (whose version changes with tag), even ones by steady
// (never changed), and an "a" followed by a "b" of one key by pair (whose
// version changes with pairTag).
func reloadSource(topic, tag, pairTag string) []byte {
	return fmt.Appendf(nil, `ruleset: reload-%s
stream:
  topic: %s
  key: event.k
  time: event.ts
  max_out_of_orderness: 0s
  idle_timeout: 1s
rules:
  - id: every
    severity: low
    when: event.n >= 0 && "%s" != ""
  - id: steady
    severity: low
    when: event.n %% 2 == 0
  - id: pair
    severity: high
    within: 1h
    pattern:
      - step: a
        where: event.type == "a"
      - step: b
        where: event.type == "b" && "%s" != ""
`, topic, topic, tag, pairTag)
}

func compileSource(t *testing.T, src []byte) *rules.Compiled {
	t.Helper()
	c, err := rules.Load("reload.yaml", src, rules.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ruleVersion(c *rules.Compiled, id string) string {
	for _, r := range c.Rules {
		if r.ID == id {
			return r.Version
		}
	}
	return ""
}

func newEventProducer(t *testing.T, brokers []string, topic string) *eventProducer {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &eventProducer{cl: cl, topic: topic, base: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC).UnixMilli()}
}

// firstPos is the position of the first record an alert matched.
func firstPos(a *matcher.Alert) matcher.Position {
	if len(a.Steps) == 0 || len(a.Steps[0].Records) == 0 {
		return matcher.Position{}
	}
	return a.Steps[0].Records[0].Pos
}

// TestEngineHotReloadUnderLoad replaces the ruleset four times while
// events flow without pause and checks, per docs/design.md#hot-reload: every event is
// matched by exactly one version of a changed rule (none skipped, none
// matched twice), the versions follow one another in each partition's
// order, a rule that did not change goes on as if nothing happened (its
// partial matches too), a partial match started under the old version of
// a changed rule completes under it, the first event produced after
// SetRulesets returns meets the new version, and a set the engine refuses
// leaves the running one.
func TestEngineHotReloadUnderLoad(t *testing.T) {
	brokers := cluster(t, "events")
	clock := newFakeClock()
	sink := &alertSink{}
	reg := prometheus.NewRegistry()
	sets := []*rules.Compiled{compileSource(t, reloadSource("events", "v0", "p0"))}
	e := start(t, EngineOptions{
		Brokers: brokers, Rulesets: sets, Store: state.NewMemory(),
		Clock: clock.Now, OnAlert: sink.add, Registerer: reg,
	})
	testkit.WaitFor(t, 0, "the engine to be ready", e.Ready)

	prod := newEventProducer(t, brokers, "events")
	ctx, stopProducing := context.WithCancel(context.Background())
	producing := make(chan struct{})
	go func() {
		defer close(producing)
		prod.run(ctx)
	}()
	defer func() {
		stopProducing()
		<-producing
	}()

	// openMatches waits until the engine holds a partial match.
	openMatches := func() {
		t.Helper()
		testkit.WaitFor(t, 0, "a partial match to open", func() bool {
			for _, line := range strings.Split(testkit.MetricsText(t, reg), "\n") {
				if strings.HasPrefix(line, "shrike_engine_partial_matches{") && !strings.HasSuffix(line, " 0") {
					return true
				}
			}
			return false
		})
	}
	// A partial match of pair under its first version.
	a := prod.emit("a", "pair")
	openMatches()
	var a2 int64 // a partial match of pair's second version, under reload 3

	// versionOf maps every's versions to the set that introduced them.
	versionOf := map[string]int{ruleVersion(sets[0], "every"): 0}
	after := []int64{0} // events numbered from here on were produced after set i ran
	for i := 1; i <= 4; i++ {
		pairTag := "p1" // pair changes once, with the first reload
		c := compileSource(t, reloadSource("events", fmt.Sprintf("v%d", i), pairTag))
		start := time.Now()
		if err := e.SetRulesets(context.Background(), []*rules.Compiled{c}); err != nil {
			t.Fatalf("SetRulesets %d: %v", i, err)
		}
		after = append(after, prod.next())
		sets = append(sets, c)
		versionOf[ruleVersion(c, "every")] = i

		// The first event after the switch meets the new version.
		marker := prod.emit("tick", "marker")
		got := sink.waitAlert(t, fmt.Sprintf("the alert of marker event %d", marker), func(a *matcher.Alert) bool {
			pos, ok := prod.posOf(marker)
			return ok && a.Rule == "every" && firstPos(a) == pos
		})
		if v := versionOf[got.RuleVersion]; v != i {
			t.Errorf("reload %d: the first event after it was matched by version %d of every", i, v)
		}
		t.Logf("reload %d: its behaviour seen %v after SetRulesets began", i, time.Since(start))

		if i == 1 {
			// The old version's partial match completes under it.
			b := prod.emit("b", "pair")
			got := sink.waitAlert(t, "the pair alert", func(a *matcher.Alert) bool { return a.Rule == "pair" })
			if want := ruleVersion(sets[0], "pair"); got.RuleVersion != want {
				t.Errorf("pair matched by version %s, want the old %s", got.RuleVersion, want)
			}
			posA, _ := prod.posOf(a)
			posB, _ := prod.posOf(b)
			if len(got.Steps) != 2 || firstPos(got) != posA || got.Steps[1].Records[0].Pos != posB {
				t.Errorf("pair alert steps %+v, want a at %v and b at %v", got.Steps, posA, posB)
			}
		}
		if i == 3 {
			// pair did not change: its partial match carries on.
			prod.emit("b", "pair2")
			got := sink.waitAlert(t, "the pair2 alert", func(a *matcher.Alert) bool { return a.Rule == "pair" && a.Key == "pair2" })
			posA, _ := prod.posOf(a2)
			if want := ruleVersion(sets[1], "pair"); got.RuleVersion != want || firstPos(got) != posA {
				t.Errorf("pair2 matched by version %s from %v, want %s from %v", got.RuleVersion, firstPos(got), want, posA)
			}
		}
		if i == 2 {
			a2 = prod.emit("a", "pair2")
			openMatches()
			// A set the engine refuses changes nothing.
			bad := compileSource(t, []byte(strings.ReplaceAll(string(reloadSource("events", "bad", "p1")), "topic: events", "topic: "+DefaultAlertsTopic)))
			if err := e.SetRulesets(context.Background(), []*rules.Compiled{c, bad}); err == nil {
				t.Error("SetRulesets took a ruleset that reads the alerts topic")
			}
			if got := e.Rulesets(); len(got) != 1 || got[0] != c {
				t.Errorf("after a refused set the engine runs %v", got)
			}
		}
		time.Sleep(100 * time.Millisecond) // events flow under this version
	}
	stopProducing()
	<-producing
	p := prod.produced(t)
	testkit.WaitFor(t, 0, "every record to be processed", func() bool { return consumed(p, e) })
	closeWindows(t, clock, p, e)
	e.stop(t)

	byPos := map[matcher.Position]int64{}
	for n, pos := range p.pos {
		byPos[pos] = int64(n)
	}
	every := map[int64][]int{} // event → versions that alerted it
	steady := map[int64]int{}
	var pairs []*matcher.Alert
	for _, a := range sink.all() {
		n, ok := byPos[firstPos(a)]
		if !ok {
			t.Fatalf("alert %s/%s at %v: no such event", a.Rule, a.RuleVersion, firstPos(a))
		}
		switch a.Rule {
		case "every":
			v, ok := versionOf[a.RuleVersion]
			if !ok {
				t.Fatalf("alert of every version %s: no set had it", a.RuleVersion)
			}
			every[n] = append(every[n], v)
		case "steady":
			steady[n]++
		case "pair":
			pairs = append(pairs, a)
		}
	}
	if len(pairs) != 2 {
		t.Errorf("%d pair alerts, want 2", len(pairs))
	}
	lastInPartition := map[string]int{}
	for n := range int64(len(p.pos)) {
		vs := every[n]
		if len(vs) != 1 {
			t.Errorf("event %d: matched by versions %v of every, want exactly one", n, vs)
			continue
		}
		v, src := vs[0], p.pos[n].Source
		if v < lastInPartition[src] {
			t.Errorf("event %d (%v): version %d after version %d in its partition", n, p.pos[n], v, lastInPartition[src])
		}
		lastInPartition[src] = v
		for i := len(after) - 1; i > 0; i-- {
			if n >= after[i] {
				if v < i {
					t.Errorf("event %d, produced after set %d ran, matched by version %d", n, i, v)
				}
				break
			}
		}
		if want := 1 - int(n%2); steady[n] != want {
			t.Errorf("event %d: %d alerts of steady, want %d", n, steady[n], want)
		}
	}
	t.Logf("%d events over %d reloads", len(p.pos), len(sets)-1)
}

// TestHotReloadThroughRegistry runs the whole chain on kfake and miniredis:
// the engine starts with no ruleset, a Reloader feeds it the registry's,
// and changes to the registry show in the alerts: a new ruleset (its topic
// subscribed to), a rejected upload (the running version stays), a second
// ruleset on another topic, and a delete (its topic dropped).
func TestHotReloadThroughRegistry(t *testing.T) {
	brokers := cluster(t, "events", "other")
	m := miniredis.RunT(t)
	reg, err := registry.New(registry.Options{Client: registry.NewClient(state.Options{Addrs: []string{m.Addr()}})})
	if err != nil {
		t.Fatal(err)
	}
	sink := &alertSink{}
	store := state.NewMemory()
	e := start(t, EngineOptions{Brokers: brokers, Store: store, Clock: newFakeClock().Now, OnAlert: sink.add})
	rl, err := registry.NewReloader(registry.ReloaderOptions{Registry: reg, Engine: e.Engine, Check: e.CheckRuleset})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- rl.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Reloader.Run: %v", err)
		}
	}()
	if got := e.Topics(); len(got) != 0 {
		t.Fatalf("an engine without rulesets reads %v", got)
	}
	// Nothing to consume is no reason to be unready.
	testkit.WaitFor(t, 0, "an engine without rulesets to be ready", e.Ready)

	events := newEventProducer(t, brokers, "events")
	other := newEventProducer(t, brokers, "other")
	// seen emits ticks until one of them alerts by every with the version
	// of c, and returns how long that took.
	seen := func(p *eventProducer, c *rules.Compiled) time.Duration {
		t.Helper()
		start := time.Now()
		want := ruleVersion(c, "every")
		deadline := start.Add(20 * time.Second)
		for {
			p.emit("tick", "k")
			p.emit("tick", "k") // raises the watermark past the first
			for _, a := range sink.all() {
				if a.Ruleset == c.Name && a.RuleVersion == want {
					return time.Since(start)
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no alert of %s's every version %s", c.Name, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	v1 := reloadSource("events", "v1", "p")
	if _, err := reg.Put(ctx, "reload-events", v1); err != nil {
		t.Fatal(err)
	}
	t.Logf("a new ruleset alerts %v after its Put", seen(events, compileSource(t, v1)))

	v2 := reloadSource("events", "v2", "p")
	if _, err := reg.Put(ctx, "reload-events", v2); err != nil {
		t.Fatal(err)
	}
	t.Logf("a changed ruleset alerts %v after its Put", seen(events, compileSource(t, v2)))

	broken := []byte(strings.Replace(string(reloadSource("events", "v3", "p")), "event.n >= 0", "event.n >=", 1))
	var list rules.ErrorList
	if _, err := reg.Put(ctx, "reload-events", broken); !errors.As(err, &list) {
		t.Fatalf("Put of a broken ruleset = %v, want a rules.ErrorList", err)
	}
	sink.mu.Lock()
	sink.alerts = nil
	sink.mu.Unlock()
	seen(events, compileSource(t, v2)) // v2 still runs

	o1 := reloadSource("other", "o1", "p")
	if _, err := reg.Put(ctx, "reload-other", o1); err != nil {
		t.Fatal(err)
	}
	t.Logf("a ruleset on a new topic alerts %v after its Put", seen(other, compileSource(t, o1)))

	// A partial match of pair: key state in the Store.
	storedKeys := func() int {
		n := 0
		for p := range int32(testPartitions) {
			keys, err := store.LoadAll(ctx, state.PartitionID{Group: DefaultGroup, Topic: "events", Partition: p})
			if err != nil {
				t.Fatal(err)
			}
			n += len(keys)
		}
		return n
	}
	events.emit("a", "k")
	events.emit("tick", "k")
	testkit.WaitFor(t, 0, "the partial match to be checkpointed", func() bool { return storedKeys() > 0 })

	if err := reg.Delete(ctx, "reload-events"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 0, "the deleted ruleset's topic to be dropped", func() bool {
		got := e.Topics()
		return len(got) == 1 && got[0] == "other"
	})
	sink.mu.Lock()
	sink.alerts = nil
	sink.mu.Unlock()
	events.emit("tick", "k")
	events.emit("tick", "k")
	seen(other, compileSource(t, o1))
	for _, a := range sink.all() {
		if a.Ruleset == "reload-events" {
			t.Errorf("the deleted ruleset alerted: %s/%s", a.Ruleset, a.Rule)
		}
	}
	// Its partitions' last checkpoints deleted its keys.
	if n := storedKeys(); n != 0 {
		t.Errorf("%d keys of the deleted ruleset's stream are still stored", n)
	}
}
