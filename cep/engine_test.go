package cep

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shrike-cep/shrike/internal/gen"
	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
	"github.com/shrike-cep/shrike/state"
)

// The engine tests run a real consumer group against kfake, franz-go's
// in-process Kafka, with state in state.Memory (or a wrapper that fails on
// demand). Their yardstick is Replay: the same events must give the same
// alerts, told apart by rule, key, timeout and the positions of the matched
// events (Replay's file lines mapped to the Kafka offsets they were
// produced at). The engine's clock is a fakeClock that stands still, so
// that no stream goes idle until a test moves it.

const testPartitions = 3

// fakeClock is a wall clock that moves only when told.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// cluster starts an in-process Kafka with topic partitions for each name.
func cluster(t testing.TB, topics ...string) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(testPartitions, topics...), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func loadPayments(t testing.TB) *rules.Compiled {
	t.Helper()
	src, err := os.ReadFile("../rulesets/payments.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Load("payments.yaml", src, rules.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// paymentsEvents generates a payments stream with many injected patterns
// and some disorder (a fraction outOfOrder of the events arrive late), all
// within the ruleset's max_out_of_orderness so that no event is late (per
// partition or over the whole file alike).
func paymentsEvents(t testing.TB, n, keys int, outOfOrder float64) [][]byte {
	t.Helper()
	g, err := gen.New(gen.Options{
		Stream: gen.StreamPayments, Seed: 11, Events: n, Keys: keys, Rate: 20,
		FraudRate: 0.02, OutOfOrder: outOfOrder, MaxLateness: 1500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	for {
		line, ok := g.Next()
		if !ok {
			return lines
		}
		lines = append(lines, bytes.Clone(line))
	}
}

// produced maps the events' 1-based line numbers to where they landed.
type produced struct {
	pos []matcher.Position // by line - 1
	end map[int32]int64    // next offset per partition
}

// produce writes lines to topic in order, keyed by the ruleset's key
// expression, as a producer keyed by account would.
func produce(t testing.TB, brokers []string, topic string, rs *rules.Compiled, lines [][]byte) produced {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(lines))
	for i, line := range lines {
		recs[i] = &kgo.Record{Value: line}
		if ev, err := rules.ParseEvent(bytes.Clone(line)); err == nil {
			if k, err := rs.Key.EvalKey(ev); err == nil {
				recs[i].Key = []byte(k)
			}
		}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	out := produced{end: map[int32]int64{}}
	for _, r := range recs {
		out.pos = append(out.pos, matcher.Position{Source: fmt.Sprintf("%s/%d", r.Topic, r.Partition), Offset: r.Offset})
		out.end[r.Partition] = max(out.end[r.Partition], r.Offset+1)
	}
	return out
}

// canon describes an alert by what must not depend on where its events
// were read: rule, key, timeout and the matched events' Kafka positions.
func canon(a *matcher.Alert, pos func(matcher.Position) string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s key=%s timeout=%v", a.Ruleset, a.Rule, a.Key, a.Timeout)
	for _, s := range a.Steps {
		fmt.Fprintf(&b, " %s:", s.Step)
		for _, r := range s.Records {
			b.WriteString(" " + pos(r.Pos))
		}
	}
	return b.String()
}

func kafkaPos(p matcher.Position) string { return fmt.Sprintf("%s@%d", p.Source, p.Offset) }

// replayAlerts replays lines through Replay and returns the canonical
// alerts, with file lines mapped to the Kafka positions in prod.
func replayAlerts(t testing.TB, rs *rules.Compiled, lines [][]byte, prod produced) []string {
	t.Helper()
	var got []string
	_, err := Replay(context.Background(), ReplayOptions{
		Rulesets: []*rules.Compiled{rs},
		Inputs:   []Input{{Name: "events.jsonl", R: bytes.NewReader(append(bytes.Join(lines, []byte("\n")), '\n'))}},
		OnAlert: func(a *matcher.Alert) {
			got = append(got, canon(a, func(p matcher.Position) string { return kafkaPos(prod.pos[p.Offset-1]) }))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 {
		t.Fatal("the replay found no alert: the fixture tests nothing")
	}
	t.Logf("%d events, %d alerts", len(lines), len(got))
	sort.Strings(got)
	return got
}

// alertLog collects alerts from OnAlert of one or more engines.
type alertLog struct {
	mu   sync.Mutex
	ids  map[string]string // canonical form → id
	n    int
	errs []string
}

func newAlertLog() *alertLog { return &alertLog{ids: map[string]string{}} }

func (l *alertLog) add(a *matcher.Alert) {
	c := canon(a, kafkaPos)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	if id, ok := l.ids[c]; ok && id != a.ID {
		l.errs = append(l.errs, fmt.Sprintf("%s: ids %s and %s", c, id, a.ID))
	}
	l.ids[c] = a.ID
}

// check compares the distinct alerts with want and fails on duplicates
// whose ids differ.
func (l *alertLog) check(t *testing.T, want []string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.errs {
		t.Errorf("a duplicate alert with another id: %s", e)
	}
	got := make([]string, 0, len(l.ids))
	for c := range l.ids {
		got = append(got, c)
	}
	sort.Strings(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
}

// duplicates counts alerts seen more than once.
func (l *alertLog) duplicates() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n - len(l.ids)
}

func (l *alertLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// running is an Engine running on its own goroutine.
type running struct {
	*Engine
	cancel context.CancelFunc
	done   chan error
}

// start runs an engine over the brokers with test defaults: a fake clock
// that stands still, short checkpoint intervals and drain timeouts.
func start(t *testing.T, opts EngineOptions) *running {
	t.Helper()
	if opts.CheckpointInterval == 0 {
		opts.CheckpointInterval = 20 * time.Millisecond
	}
	if opts.DrainTimeout == 0 {
		opts.DrainTimeout = 5 * time.Second
	}
	opts.KafkaOptions = append(opts.KafkaOptions,
		kgo.FetchMaxWait(50*time.Millisecond),
		// kfake's group joins wait for the rebalance timeout when a member
		// is slow to rejoin; keep it short for tests.
		kgo.RebalanceTimeout(3*time.Second),
		kgo.SessionTimeout(6*time.Second),
		kgo.HeartbeatInterval(200*time.Millisecond),
	)
	e, err := NewEngine(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Engine: e, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- e.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop shuts the engine down and checks that Run returned nil.
func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.done == nil {
		return
	}
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	r.done = nil
}

// waitFor polls cond until it holds, failing the test after a long
// deadline (a hang, not a slow machine, is what it catches).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// consumed reports whether the engines together processed every record of
// prod and checkpointed up to the end.
func consumed(prod produced, engines ...*running) bool {
	next := map[int32]int64{}
	for _, e := range engines {
		for _, p := range e.Status().Partitions {
			next[p.Partition] = max(next[p.Partition], p.NextOffset)
		}
	}
	for p, end := range prod.end {
		if next[p] < end {
			return false
		}
	}
	return true
}

// closeWindows moves the fake clock a day on, so that every stream goes
// idle and its watermark passes every window of the fixture, and waits
// until the engines' watermarks show it.
func closeWindows(t *testing.T, clock *fakeClock, prod produced, engines ...*running) {
	t.Helper()
	clock.Advance(24 * time.Hour)
	target := clock.Now().Add(-time.Hour)
	waitFor(t, "watermarks to follow the clock", func() bool {
		seen := map[int32]bool{}
		for _, e := range engines {
			for _, p := range e.Status().Partitions {
				if p.Watermark.After(target) {
					seen[p.Partition] = true
				}
			}
		}
		for p := range prod.end {
			if !seen[p] {
				return false
			}
		}
		return true
	})
}

// TestEngineMatchesReplay runs the engine over a topic of three partitions
// and compares its alerts with Replay's of the same events, the alerts
// topic with what OnAlert saw, the checkpoints and committed offsets with
// the ends of the partitions, and a few metrics with what happened.
func TestEngineMatchesReplay(t *testing.T) {
	for _, kind := range engineStores() {
		t.Run(kind.name, func(t *testing.T) {
			brokers := cluster(t, "payments")
			rs := loadPayments(t)
			lines := paymentsEvents(t, 4000, 300, 0.05)
			prod := produce(t, brokers, "payments", rs, lines)
			want := replayAlerts(t, rs, lines, prod)

			clock := newFakeClock()
			log := newAlertLog()
			store := kind.open(t)
			reg := prometheus.NewRegistry()
			e := start(t, EngineOptions{
				Brokers: brokers, Rulesets: []*rules.Compiled{rs}, Store: store,
				Clock: clock.Now, OnAlert: log.add, Registerer: reg,
			})
			waitFor(t, "the engine to be ready", e.Ready)
			waitFor(t, "every record to be processed", func() bool { return consumed(prod, e) })
			closeWindows(t, clock, prod, e)
			e.stop(t)
			log.check(t, want)

			// The alerts topic holds every alert, keyed by its id, once (no
			// restart happened), its value the alert's JSON.
			topic := readTopic(t, brokers, DefaultAlertsTopic)
			var ids []string
			for _, r := range topic {
				var a struct {
					ID, Rule, Key string
				}
				if err := json.Unmarshal(r.Value, &a); err != nil {
					t.Fatalf("alert record %q: %v", r.Value, err)
				}
				if string(r.Key) != a.ID {
					t.Errorf("alert record keyed %q, its id is %q", r.Key, a.ID)
				}
				ids = append(ids, a.ID)
			}
			var wantIDs []string
			for _, id := range log.ids {
				wantIDs = append(wantIDs, id)
			}
			sort.Strings(ids)
			sort.Strings(wantIDs)
			if diff := cmp.Diff(wantIDs, ids); diff != "" {
				t.Errorf("alert ids on the alerts topic (-want +got):\n%s", diff)
			}

			// The last checkpoint of each partition resumes at its end, and Kafka's
			// committed offset says the same.
			for p, end := range prod.end {
				cp, ok, err := store.LoadCheckpoint(context.Background(), state.PartitionID{Group: DefaultGroup, Topic: "payments", Partition: p})
				if err != nil || !ok {
					t.Fatalf("checkpoint of partition %d: %v %v", p, ok, err)
				}
				if cp.Offset != end {
					t.Errorf("partition %d: checkpoint offset %d, want %d", p, cp.Offset, end)
				}
			}
			committed := committedOffsets(t, brokers, DefaultGroup, "payments")
			if diff := cmp.Diff(prod.end, committed); diff != "" {
				t.Errorf("kafka committed offsets (-want +got):\n%s", diff)
			}

			metricsText := gatherText(t, reg)
			for _, m := range []string{
				`shrike_engine_records_total{topic="payments"} 4000`,
				`shrike_engine_events_total{topic="payments"} 4000`,
				`shrike_engine_alerts_total{rule="account-takeover",ruleset="payments"}`,
				`shrike_state_checkpoint_duration_seconds_count`,
			} {
				if !strings.Contains(metricsText, m) {
					t.Errorf("metrics lack %s", m)
				}
			}
		})
	}
}

// readTopic reads every record of topic.
func readTopic(t *testing.T, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends := endOffsets(t, cl, topic)
	offsets := map[int32]kgo.Offset{}
	for p := range ends {
		offsets[p] = kgo.NewOffset().AtStart()
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets})
	var out []*kgo.Record
	next := map[int32]int64{}
	done := func() bool {
		for p, end := range ends {
			if next[p] < end {
				return false
			}
		}
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for !done() {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("reading %s: %v", topic, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, r)
			next[r.Partition] = r.Offset + 1
		})
	}
	return out
}

// endOffsets lists the next offset of each partition of topic.
func endOffsets(t *testing.T, cl *kgo.Client, topic string) map[int32]int64 {
	t.Helper()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			out[o.Partition] = o.Offset
		}
	})
	return out
}

func gatherText(t *testing.T, g prometheus.Gatherer) string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			name := mf.GetName()
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				fmt.Fprintf(&b, "%s %g\n", name, m.Counter.GetValue())
			case m.Gauge != nil:
				fmt.Fprintf(&b, "%s %g\n", name, m.Gauge.GetValue())
			case m.Histogram != nil:
				fmt.Fprintf(&b, "%s_count %d\n", name, m.Histogram.GetSampleCount())
			}
		}
	}
	return b.String()
}

// committedOffsets returns the group's committed offsets of topic.
func committedOffsets(t *testing.T, brokers []string, group, topic string) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).FetchOffsets(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Err == nil && o.Topic == topic {
			out[o.Partition] = o.At
		}
	})
	return out
}

// storeKind opens an empty Store for a test.
type storeKind struct {
	name string
	open func(t *testing.T) Store
}

// engineStores are the Stores the engine tests run on: state.Memory and
// state.Redis on miniredis always; on a real redis-server when
// SHRIKE_REDIS_ADDR is set and on a Redis Cluster when SHRIKE_REDIS_CLUSTER
// (comma-separated seeds) is set, each test under a key prefix of its own,
// deleted at cleanup.
func engineStores() []storeKind {
	kinds := []storeKind{
		{"memory", func(*testing.T) Store { return state.NewMemory() }},
		{"miniredis", func(t *testing.T) Store {
			m := miniredis.RunT(t)
			return openRedis(t, state.Options{Addrs: []string{m.Addr()}}, false)
		}},
	}
	if addr := os.Getenv("SHRIKE_REDIS_ADDR"); addr != "" {
		kinds = append(kinds, storeKind{"redis", func(t *testing.T) Store {
			return openRedis(t, state.Options{Addrs: []string{addr}}, true)
		}})
	}
	if seeds := os.Getenv("SHRIKE_REDIS_CLUSTER"); seeds != "" {
		kinds = append(kinds, storeKind{"redis-cluster", func(t *testing.T) Store {
			return openRedis(t, state.Options{Addrs: strings.Split(seeds, ","), Cluster: true}, true)
		}})
	}
	return kinds
}

// openRedis opens a state.Redis; on a shared server it writes under a
// fresh key prefix, whose keys the cleanup deletes.
func openRedis(t testing.TB, opts state.Options, shared bool) Store {
	t.Helper()
	if shared {
		var b [6]byte
		if _, err := rand.Read(b[:]); err != nil {
			t.Fatal(err)
		}
		opts.KeyPrefix = "shrike-test-" + hex.EncodeToString(b[:])
		t.Cleanup(func() { deletePrefix(t, opts) })
	}
	s, err := state.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func deletePrefix(t testing.TB, opts state.Options) {
	ctx := context.Background()
	raw := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: opts.Addrs, IsClusterMode: opts.Cluster})
	defer func() { _ = raw.Close() }() // a cleanup connection: nothing to report
	del := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, opts.KeyPrefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			if err := c.Del(ctx, iter.Val()).Err(); err != nil {
				return err
			}
		}
		return iter.Err()
	}
	var err error
	switch c := raw.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, del)
	case *redis.Client:
		err = del(ctx, c)
	}
	if err != nil {
		t.Errorf("delete %s:*: %v", opts.KeyPrefix, err)
	}
}
