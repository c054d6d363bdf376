package cep

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/shrike-cep/shrike/internal/gen"
	"github.com/shrike-cep/shrike/internal/testkit"
	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
	"github.com/shrike-cep/shrike/state"
)

// The helpers the engine, replay and worker tests share.
//
// The engine tests run a real consumer group against kfake, franz-go's
// in-process Kafka, with state in state.Memory (or a wrapper that fails on
// demand). Their yardstick is Replay: the same events must give the same
// alerts, told apart by rule, key, timeout and the positions of the matched
// events (Replay's file lines mapped to the Kafka offsets they were
// produced at). The engine's clock is a fakeClock that stands still, so
// that no stream goes idle until a test moves it.

// TestMain fails the package's tests if any goroutine outlives them: a
// pipelined Replay must not leave its decoder behind. Every recycled
// record's bytes are overwritten, so that a test whose alerts or reports
// read an event the matcher handed back would see it.
func TestMain(m *testing.M) {
	poisonRecycled = true
	goleak.VerifyTestMain(m)
}

// processed sums the records the engine's partitions processed.
func processed(e *Engine) uint64 {
	var n uint64
	for _, p := range e.Status().Partitions {
		n += p.Records
	}
	return n
}

// t0 is the event time the hand-written events start at.
var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

func ts(d time.Duration) string { return t0.Add(d).Format(gen3339) }

const gen3339 = "2006-01-02T15:04:05.000Z"

// faultStore is a Store that fails on demand, as a Redis that is down.
type faultStore struct {
	Store
	// fail makes every call fail with state.ErrUnavailable.
	fail atomic.Bool
	// frozen makes every commit fail: nothing is written any more, as
	// when the engine was killed.
	frozen atomic.Bool
	// failCommits is how many of the next commits fail; failStages and
	// failPromotes the same for staged checkpoints.
	failCommits  atomic.Int64
	failStages   atomic.Int64
	failPromotes atomic.Int64
	commits      atomic.Int64 // successful commits
	failures     atomic.Int64 // failed calls
	asked        atomic.Int64 // event keys asked for by LoadKeys
	askedBuckets atomic.Int64 // deadline index buckets asked for by LoadKeys

	mu        sync.Mutex
	committed map[int32]state.Checkpoint // last successful checkpoint per partition
}

func newFaultStore(s Store) *faultStore {
	return &faultStore{Store: s, committed: map[int32]state.Checkpoint{}}
}

var errDown = fmt.Errorf("test store is down: %w", state.ErrUnavailable)

func (f *faultStore) LoadCheckpoint(ctx context.Context, p state.PartitionID) (state.Checkpoint, bool, error) {
	if f.fail.Load() {
		f.failures.Add(1)
		return state.Checkpoint{}, false, errDown
	}
	return f.Store.LoadCheckpoint(ctx, p)
}

func (f *faultStore) LoadKeys(ctx context.Context, p state.PartitionID, keys []string) (map[string][]byte, error) {
	if f.fail.Load() {
		f.failures.Add(1)
		return nil, errDown
	}
	for _, k := range keys {
		if strings.HasPrefix(k, deadlineBucketPrefix) {
			f.askedBuckets.Add(1)
		} else {
			f.asked.Add(1)
		}
	}
	return f.Store.LoadKeys(ctx, p, keys)
}

func (f *faultStore) Commit(ctx context.Context, p state.PartitionID, put []state.KeyState, del []string, cp state.Checkpoint) error {
	if f.fail.Load() || f.frozen.Load() {
		f.failures.Add(1)
		return errDown
	}
	if f.failCommits.Load() > 0 && f.failCommits.Add(-1) >= 0 {
		f.failures.Add(1)
		return errDown
	}
	if err := f.Store.Commit(ctx, p, put, del, cp); err != nil {
		return err
	}
	f.commits.Add(1)
	f.mu.Lock()
	f.committed[p.Partition] = cp
	f.mu.Unlock()
	return nil
}

// Stage fails like a commit, and while failStages is positive.
func (f *faultStore) Stage(ctx context.Context, p state.PartitionID, put []state.KeyState, del []string, pend state.Checkpoint) error {
	if f.fail.Load() || f.frozen.Load() || (f.failStages.Load() > 0 && f.failStages.Add(-1) >= 0) {
		f.failures.Add(1)
		return errDown
	}
	return f.Store.Stage(ctx, p, put, del, pend)
}

// Promote fails like a commit, and while failPromotes is positive.
func (f *faultStore) Promote(ctx context.Context, p state.PartitionID, gen int64) (state.Checkpoint, error) {
	if f.fail.Load() || f.frozen.Load() || (f.failPromotes.Load() > 0 && f.failPromotes.Add(-1) >= 0) {
		f.failures.Add(1)
		return state.Checkpoint{}, errDown
	}
	return f.Store.Promote(ctx, p, gen)
}

func (f *faultStore) Claim(ctx context.Context, p state.PartitionID) (state.Checkpoint, bool, state.Checkpoint, error) {
	// A claim is a commit of a checkpoint, and fails like one.
	if f.fail.Load() || f.frozen.Load() {
		f.failures.Add(1)
		return state.Checkpoint{}, false, state.Checkpoint{}, errDown
	}
	if f.failCommits.Load() > 0 && f.failCommits.Add(-1) >= 0 {
		f.failures.Add(1)
		return state.Checkpoint{}, false, state.Checkpoint{}, errDown
	}
	prev, ok, claimed, err := f.Store.Claim(ctx, p)
	if err != nil {
		return prev, ok, claimed, err
	}
	f.commits.Add(1)
	f.mu.Lock()
	f.committed[p.Partition] = claimed
	f.mu.Unlock()
	return prev, ok, claimed, nil
}

func (f *faultStore) checkpointOf(p int32) state.Checkpoint {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.committed[p]
}

// checkpointed reports whether the engines checkpointed every record
// they processed.
func checkpointed(engines ...*running) bool {
	for _, e := range engines {
		for _, p := range e.Status().Partitions {
			if p.Uncommitted > 0 {
				return false
			}
		}
	}
	return true
}

const testPartitions = 3

// fakeClock is a wall clock that moves only when told.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

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
	return produceKeyed(t, brokers, rs, lines, func(r *kgo.Record) { r.Topic = topic })
}

// produceKeyed writes lines as records keyed by the ruleset's key
// expression, placed by place (topic, and partition with opts holding a
// partitioner that keeps it), and returns where they landed.
func produceKeyed(t testing.TB, brokers []string, rs *rules.Compiled, lines [][]byte, place func(*kgo.Record), opts ...kgo.Opt) produced {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ProducerLinger(0)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(lines))
	for i, line := range lines {
		recs[i] = &kgo.Record{Value: line}
		place(recs[i])
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
	testkit.WaitFor(t, 0, "watermarks to follow the clock", func() bool {
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

// eventProducer writes numbered events, in the order of their numbers.
type eventProducer struct {
	cl    *kgo.Client
	topic string
	base  int64 // event time of event 0, Unix ms

	mu  sync.Mutex
	n   int64
	pos []matcher.Position // by event number, once acknowledged
	err error
	wg  sync.WaitGroup
}

// emit produces the next event, of type typ and key k, and returns its
// number. Calls are serialised: events of one partition land in number
// order, with increasing event times.
func (p *eventProducer) emit(typ, k string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.n
	p.n++
	p.pos = append(p.pos, matcher.Position{})
	value := fmt.Appendf(nil, `{"k":%q,"n":%d,"type":%q,"ts":%d}`, k, n, typ, p.base+n)
	p.wg.Add(1)
	p.cl.Produce(context.Background(), &kgo.Record{Key: []byte(k), Value: value}, func(r *kgo.Record, err error) {
		defer p.wg.Done()
		p.mu.Lock()
		defer p.mu.Unlock()
		if err != nil {
			p.err = err
			return
		}
		p.pos[n] = matcher.Position{Source: fmt.Sprintf("%s/%d", r.Topic, r.Partition), Offset: r.Offset}
	})
	return n
}

// posOf returns where event n landed, once acknowledged.
func (p *eventProducer) posOf(n int64) (matcher.Position, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pos := p.pos[n]
	return pos, pos.Source != ""
}

func (p *eventProducer) next() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// run emits ticks over 12 keys until ctx ends.
func (p *eventProducer) run(ctx context.Context) {
	for i := 0; ctx.Err() == nil; i++ {
		p.emit("tick", fmt.Sprintf("key-%d", i%12))
		time.Sleep(time.Millisecond)
	}
}

// produced waits for every acknowledgement and describes what landed.
func (p *eventProducer) produced(t *testing.T) produced {
	t.Helper()
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		t.Fatalf("produce: %v", p.err)
	}
	out := produced{pos: p.pos, end: map[int32]int64{}}
	for _, pos := range p.pos {
		var part int32
		if _, err := fmt.Sscanf(pos.Source[strings.LastIndexByte(pos.Source, '/')+1:], "%d", &part); err != nil {
			t.Fatalf("position %v names no partition: %v", pos, err)
		}
		out.end[part] = max(out.end[part], pos.Offset+1)
	}
	return out
}

// alertSink keeps the alerts of an engine.
type alertSink struct {
	mu     sync.Mutex
	alerts []*matcher.Alert
}

func (s *alertSink) add(a *matcher.Alert) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.alerts = append(s.alerts, a)
}

func (s *alertSink) all() []*matcher.Alert {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*matcher.Alert(nil), s.alerts...)
}

// waitAlert waits for an alert that match accepts and returns it.
func (s *alertSink) waitAlert(t *testing.T, what string, match func(*matcher.Alert) bool) *matcher.Alert {
	t.Helper()
	var found *matcher.Alert
	testkit.WaitFor(t, 0, what, func() bool {
		for _, a := range s.all() {
			if match(a) {
				found = a
				return true
			}
		}
		return false
	})
	return found
}

// byCountryRules is a second stream over the payments events, keyed by
// country with a shorter watermark delay, so that lines reach two
// partitions and some are late in one stream but not the other.
const byCountryRules = `
ruleset: by-country
stream:
  topic: payments
  key: event.country
  time: event.ts
  max_out_of_orderness: 2s
rules:
  - id: reset-then-transfer
    within: 1m
    pattern:
      - step: reset
        where: event.type == "password_reset"
      - step: transfer
        where: event.type == "transfer" && event.amount > 5000.0
    skip: past_last_event
  - id: failed-logins
    within: 10s
    pattern:
      - step: fails
        where: event.type == "login" && !event.success
        times: 4..
    skip: past_last_event
`

// mixedInputs generates a payments stream of n events (internal/gen) with
// out-of-order events beyond the rulesets' watermark delays, and splits it
// into a plain JSON-lines file and a gzipped file in which some lines are
// turned into kcat envelopes, envelopes of another topic, tombstones,
// garbage, events without a key or a time, and blank lines: every kind of
// outcome a line can have, spread over many batches.
func mixedInputs(t testing.TB, n int) []Input {
	t.Helper()
	g, err := gen.New(gen.Options{
		Seed:        20261121,
		Events:      n,
		Keys:        max(n/40, 1),
		OutOfOrder:  0.05,
		MaxLateness: 8 * time.Second,
		FraudRate:   0.02,
	})
	if err != nil {
		t.Fatal(err)
	}
	var plain, mixed bytes.Buffer
	for i := 0; ; i++ {
		line, ok := g.Next()
		if !ok {
			break
		}
		if i < n/2 {
			plain.Write(line)
			plain.WriteByte('\n')
			continue
		}
		switch {
		case i%97 == 0:
			mixed.WriteString(envelope("payments", i, line))
		case i%89 == 0:
			mixed.WriteString(envelope("audit", i, line))
		case i%503 == 0:
			mixed.WriteString(`{"topic":"payments","partition":0,"offset":` + strconv.Itoa(i) + `,"key":null,"payload":null}`)
		case i%101 == 0:
			mixed.WriteString("not json")
		case i%211 == 0:
			mixed.Write(bytes.Replace(line, []byte(`"account_id"`), []byte(`"acct"`), 1))
		case i%223 == 0:
			mixed.Write(bytes.Replace(line, []byte(`"ts"`), []byte(`"at"`), 1))
		case i%307 == 0:
			mixed.WriteString("   \n")
			mixed.Write(line)
		default:
			mixed.Write(line)
		}
		mixed.WriteByte('\n')
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(mixed.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return []Input{
		{Name: "plain.jsonl", R: bytes.NewReader(plain.Bytes())},
		{Name: "mixed.jsonl.gz", R: bytes.NewReader(gz.Bytes())},
	}
}

// envelope wraps an event in a kcat -J envelope of topic.
func envelope(topic string, offset int, event []byte) string {
	return `{"topic":"` + topic + `","partition":0,"offset":` + strconv.Itoa(offset) +
		`,"tstype":"create","ts":1,"key":"k","payload":` + strconv.Quote(string(event)) + `}`
}

// replayInputs returns inputs over the same bytes as in, read from the
// start, so that one table of inputs serves several replays. Inputs without
// a reader (files) are kept as they are.
func replayInputs(t testing.TB, in []Input) []Input {
	t.Helper()
	out := make([]Input, len(in))
	for i, x := range in {
		if x.R == nil {
			out[i] = x
			continue
		}
		r, ok := x.R.(interface {
			io.ReaderAt
			Size() int64
		})
		if !ok {
			t.Fatalf("input %s: %T cannot be read again", x.Name, x.R)
		}
		b := make([]byte, r.Size())
		if _, err := r.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		out[i] = Input{Name: x.Name, R: bytes.NewReader(b)}
	}
	return out
}

// loadFile compiles a ruleset file.
func loadFile(t testing.TB, path string) *rules.Compiled {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := rules.Load(path, src, rules.CompileOptions{})
	if err != nil {
		t.Fatalf("load %s:\n%v", path, err)
	}
	return c
}

// without returns the lines of a that b does not have, both sorted.
func without(a, b []string) []string {
	var out []string
	for _, x := range a {
		if _, ok := slices.BinarySearch(b, x); !ok {
			out = append(out, x)
		}
	}
	return out
}

// modes are the ways Replay can run. Tests run each and expect the same
// results; tiny batches put batch boundaries everywhere.
var modes = []struct {
	name string
	set  func(*ReplayOptions)
}{
	{"sequential", func(o *ReplayOptions) { o.Sequential = true }},
	{"pipelined", func(*ReplayOptions) {}},
	{"pipelined/batch=1", func(o *ReplayOptions) { o.BatchLines = 1 }},
	{"pipelined/batch=7", func(o *ReplayOptions) { o.BatchLines = 7 }},
	// Batches are decoded by whichever goroutine takes them; here all by
	// the matching one.
	{"pipelined/batch=3/decoded while matching", func(o *ReplayOptions) { o.BatchLines, o.noDecodingGoroutine = 3, true }},
}

func (r result) output() output {
	s := r.sum
	s.Elapsed = 0
	return output{alerts: r.raw, late: r.late, reports: r.reports, sum: s}
}

// diffOutput describes how got differs from want: the first differing line
// of each output (the outputs can be megabytes) and the summaries' diff.
func diffOutput(want, got output) string {
	var b strings.Builder
	for _, o := range []struct{ name, want, got string }{
		{"alerts", want.alerts, got.alerts},
		{"late", want.late, got.late},
		{"reports", want.reports, got.reports},
	} {
		if o.want == o.got {
			continue
		}
		w, g := strings.Split(o.want, "\n"), strings.Split(o.got, "\n")
		i := 0
		for i < len(w) && i < len(g) && w[i] == g[i] {
			i++
		}
		line := func(s []string) string {
			if i < len(s) {
				return s[i]
			}
			return "(end)"
		}
		fmt.Fprintf(&b, "%s: %d lines, want %d; first difference at line %d:\n-%s\n+%s\n",
			o.name, len(g)-1, len(w)-1, i+1, line(w), line(g))
	}
	if d := cmp.Diff(want.sum, got.sum); d != "" {
		fmt.Fprintf(&b, "summary (-want +got):\n%s", d)
	}
	return b.String()
}

// shopRules reads orders keyed by user and timed by ts (epoch ms).
const shopRules = `
ruleset: shop
stream:
  topic: orders
  key: event.user
  time: event.ts
  max_out_of_orderness: 1s
rules:
  - id: big
    severity: high
    when: event.type == "order" && event.amount > 100
  - id: cart-then-pay
    within: 1m
    pattern:
      - step: cart
        where: event.type == "cart"
      - step: pay
        where: event.type == "pay"
  - id: no-pay
    within: 10m
    pattern:
      - step: cart
        where: event.type == "cart"
      - step: pay
        not: true
        where: event.type == "pay"
`

// recordRules reads the Kafka record's key and timestamp.
const recordRules = `
ruleset: records
stream:
  topic: orders
rules:
  - id: cart-then-pay
    pattern:
      - step: cart
        where: event.type == "cart"
      - step: pay
        where: event.type == "pay"
`

var fixedNow = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

func load(t testing.TB, name, src string) *rules.Compiled {
	t.Helper()
	c, err := rules.Load(name, []byte(src), rules.CompileOptions{})
	if err != nil {
		t.Fatalf("load %s:\n%v", name, err)
	}
	return c
}

// result is what a test replay produced.
type result struct {
	alerts  []string // summarised, see summarise
	raw     string   // the alerts output as written
	late    string
	reports string
	sum     Summary
}

func replay(t *testing.T, opts ReplayOptions) (result, error) {
	t.Helper()
	var alerts, late, reports bytes.Buffer
	opts.Alerts, opts.Late, opts.Reports = &alerts, &late, &reports
	opts.Clock = func() time.Time { return fixedNow }
	sum, err := Replay(context.Background(), opts)
	res := result{raw: alerts.String(), late: late.String(), reports: reports.String(), sum: sum}
	for line := range strings.Lines(alerts.String()) {
		res.alerts = append(res.alerts, summarise(t, line))
	}
	return res, err
}

func inputs(files ...string) []Input {
	var in []Input
	for i := 0; i < len(files); i += 2 {
		in = append(in, Input{Name: files[i], R: strings.NewReader(files[i+1])})
	}
	return in
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func gzipped(t *testing.T, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
