package cep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
)

// Defaults of EngineOptions.
const (
	DefaultGroup              = "shrike"
	DefaultAlertsTopic        = "shrike-alerts"
	DefaultShadowAlertsTopic  = "shrike-shadow-alerts"
	DefaultDeadLetterTopic    = "shrike-deadletter"
	DefaultLateTopic          = "shrike-late"
	DefaultCheckpointInterval = time.Second
	DefaultMaxResidentKeys    = 1_000_000
	// DefaultMaxUncommittedRecords bounds the records a partition worker
	// processes past its last checkpoint while the Store fails.
	DefaultMaxUncommittedRecords = 1_000_000
	// DefaultDrainTimeout bounds the last checkpoint of a revoked
	// partition, so that a Store that is down cannot hold a rebalance or a
	// shutdown forever.
	DefaultDrainTimeout = 30 * time.Second
	// DefaultPollRecords is how many records one poll hands out at most.
	DefaultPollRecords = 10_000
	// DefaultIdleTimeout is the idle timeout of a stream none of whose
	// rulesets sets stream.idle_timeout: without one, the last events of a
	// topic gone quiet would wait for newer ones for ever.
	DefaultIdleTimeout = 30 * time.Second
	// DefaultMaxClockSkew is how far ahead of the wall clock an event's
	// time may be on a stream none of whose rulesets sets
	// stream.max_clock_skew: producers' clocks drift by seconds, and an
	// event minutes or years ahead would otherwise make every later event
	// of its partition late and close every open window early.
	DefaultMaxClockSkew = 5 * time.Minute
	// DefaultSessionTimeout is the consumer group session timeout: an
	// instance killed without leaving the group keeps its partitions this
	// long before the others take them (franz-go's own default is 45 s).
	DefaultSessionTimeout = 10 * time.Second
	// DefaultTransactionTimeout is the transaction timeout when
	// ExactlyOnce: long enough for a checkpoint barrier on a slow Store,
	// short enough that a crashed instance holds read_committed consumers
	// only seconds.
	DefaultTransactionTimeout = 10 * time.Second
	// fetchMaxWait is how long a broker may hold a fetch for data to
	// arrive. A partition resumed after a pause (a rewind after an aborted
	// transaction, a worker that caught up) is fetched only once the fetch
	// in flight returns: with franz-go's default of 5 s, a partition gone
	// back to its checkpoint waited up to 5 s to re-read its records while
	// the others were idle. 500 ms is the Java consumer's
	// fetch.max.wait.ms; an idle instance pays two fetches a second per
	// broker for it.
	fetchMaxWait = 500 * time.Millisecond
)

// ReasonHeader is the record header that says why a record went to the
// dead-letter or late topic (docs/design.md#runtime). The record keeps its original
// key, value and headers besides.
const ReasonHeader = "shrike-reason"

// EngineOptions configure an Engine. Zero values are the documented
// defaults.
type EngineOptions struct {
	// Brokers are the Kafka seed brokers. Required.
	Brokers []string
	// Group is the consumer group. Default DefaultGroup. State in the Store
	// is kept per group, so two groups reading one topic do not share it.
	Group string
	// Rulesets are the compiled rulesets to run first; their stream.topic
	// names the topic each reads, and every ruleset needs one. Their names
	// must differ. None is fine: SetRulesets gives the engine rulesets
	// while it runs.
	Rulesets []*rules.Compiled
	// Store keeps key state and partition checkpoints. Required.
	Store Store
	// AlertsTopic receives one record per alert, keyed by the alert id,
	// the alert's JSON as value. Default DefaultAlertsTopic.
	AlertsTopic string
	// ShadowAlertsTopic receives the alerts of shadow versions
	// (rules.Compiled.Shadow) as AlertsTopic receives the live ones: they
	// never go to AlertsTopic. Default DefaultShadowAlertsTopic.
	ShadowAlertsTopic string
	// DeadLetterTopic receives the records that could not be decoded,
	// keyed or timed. Default DefaultDeadLetterTopic.
	DeadLetterTopic string
	// LateTopic receives the records that arrived behind their stream's
	// watermark. Default DefaultLateTopic.
	LateTopic string
	// CheckpointInterval is how often each partition writes its changed
	// key states and offset to the Store and then commits the offset to
	// Kafka. Default DefaultCheckpointInterval.
	CheckpointInterval time.Duration
	// MaxResidentKeys caps the keys whose state each partition (each
	// stream of it) keeps in memory; past it, keys that no buffered event
	// needs are evicted after a checkpoint and loaded again from the Store
	// when an event or a closing window needs them. Default
	// DefaultMaxResidentKeys.
	MaxResidentKeys int
	// MaxRunsPerKey caps each rule's partial matches per key (see
	// matcher.Options). Default: the matcher's.
	MaxRunsPerKey int
	// MaxUncommittedRecords bounds how many records a partition processes
	// past its last successful checkpoint while the Store fails; past it
	// the partition stops taking records (and fetching is paused) until a
	// checkpoint succeeds. Default DefaultMaxUncommittedRecords.
	MaxUncommittedRecords int
	// DrainTimeout bounds the last checkpoint of a partition that is
	// revoked or at shutdown; when it passes, the partition's state since
	// its last checkpoint is dropped (the next owner re-reads it). Default
	// DefaultDrainTimeout.
	DrainTimeout time.Duration
	// IdleTimeout is the idle timeout of streams whose rulesets set no
	// stream.idle_timeout: a partition that receives nothing for this long
	// advances its watermark with the wall clock (docs/semantics.md). Default
	// DefaultIdleTimeout; negative: such streams wait for events for ever.
	IdleTimeout time.Duration
	// MaxClockSkew is the bound of streams whose rulesets set no
	// stream.max_clock_skew: an event whose time is further ahead of Clock
	// than this is dead-lettered and never moves the watermark
	// (docs/semantics.md). Default DefaultMaxClockSkew; negative: no bound.
	MaxClockSkew time.Duration
	// PollRecords is the most records one poll hands to the partition
	// workers. Default DefaultPollRecords.
	PollRecords int
	// SessionTimeout is the consumer group session timeout: how long the
	// broker waits for a member's heartbeat before it gives the member's
	// partitions to the others. Brokers refuse values outside their
	// group.min/max.session.timeout.ms (6 s to 30 min by default).
	// Default DefaultSessionTimeout.
	SessionTimeout time.Duration
	// Logger receives operational messages; nothing per event at Info.
	// Default: discard.
	Logger *slog.Logger
	// Registerer registers the engine's metrics (README.md#operating-it). Nil
	// keeps them unregistered.
	Registerer prometheus.Registerer
	// Clock is the wall clock: it stamps the alerts' detected_at, moves
	// the watermark of idle partitions and bounds how far ahead event times
	// may be (MaxClockSkew). Default time.Now.
	Clock func() time.Time
	// OnAlert, when set, is also called with every alert, from the
	// partition workers' goroutines (concurrently for different
	// partitions). It must not modify the alert, nor block for long.
	OnAlert func(*matcher.Alert)
	// ExactlyOnce produces the outputs (alerts, late and dead-lettered
	// records) in Kafka transactions tied to the checkpoints
	// (docs/design.md#exactly-once-outputs): a consumer reading with
	// isolation.level=read_committed sees every output once, through
	// crashes and rebalances. The brokers must support transactions (Kafka
	// 2.5 or later). False: outputs are at-least-once, with stable ids.
	ExactlyOnce bool
	// TransactionalID is the Kafka transactional id of this instance when
	// ExactlyOnce; it must be unique among the running instances and the
	// same across restarts of one (a restart fences its predecessor).
	// Default DefaultTransactionalID(Group).
	TransactionalID string
	// TransactionTimeout is how long the brokers keep a transaction open
	// before aborting it, when ExactlyOnce: it bounds how long a crashed
	// instance's open transaction holds read_committed consumers of the
	// outputs, and how long a new owner waits to learn its outcome.
	// Default DefaultTransactionTimeout.
	TransactionTimeout time.Duration
	// KafkaOptions are extra franz-go options, applied after the engine's
	// own (TLS, SASL, client id, hooks such as kprom).
	KafkaOptions []kgo.Opt
}

// Engine runs rulesets over Kafka topics (docs/design.md#runtime): one consumer group
// over the rulesets' topics, one worker goroutine per assigned partition
// that owns that partition's keys, state checkpointed into a Store, alerts,
// late and dead-lettered records produced to their topics.
type Engine struct {
	opts    EngineOptions
	log     *slog.Logger
	metrics *metrics

	// plan is the rulesets to run, planned (reload_engine.go): SetRulesets
	// replaces it, workers load it once per batch. Run reads its topics
	// and sets cl under mu, as SetRulesets swaps it under mu.
	plan     atomic.Pointer[enginePlan]
	reloadMu sync.Mutex // serialises SetRulesets

	ran atomic.Bool

	// alertMax is alertLimit for the alerts topic, learnt once, at the
	// first alert (alertLimit).
	alertMaxOnce sync.Once
	alertMax     int

	// mu guards the fields below. The group callbacks, the poll loop,
	// Ready and Status all use them.
	mu      sync.Mutex
	cl      *kgo.Client
	joined  bool // assigned at least once by the current group session
	stopped bool
	workers map[topicPartition]*worker
	wg      sync.WaitGroup // worker goroutines

	// group is the last check that every partition of the group has an
	// owner (watchGroup), under mu; groupKick asks for one at once;
	// groupTurn lets one CheckGroup run at a time.
	group     groupHealth
	groupKick chan struct{}
	groupTurn chan struct{}

	// txn runs the transactions of exactly-once mode; nil otherwise. Set
	// by Run before any worker starts.
	txn *txnCoordinator
}

type topicPartition struct {
	topic     string
	partition int32
}

// NewEngine checks opts and plans the rulesets' streams. It connects to
// nothing: Run does.
func NewEngine(opts EngineOptions) (*Engine, error) {
	if len(opts.Brokers) == 0 {
		return nil, errors.New("engine: no brokers")
	}
	if opts.Store == nil {
		return nil, errors.New("engine: no store")
	}
	if opts.Group == "" {
		opts.Group = DefaultGroup
	}
	if opts.AlertsTopic == "" {
		opts.AlertsTopic = DefaultAlertsTopic
	}
	if opts.ShadowAlertsTopic == "" {
		opts.ShadowAlertsTopic = DefaultShadowAlertsTopic
	}
	if opts.DeadLetterTopic == "" {
		opts.DeadLetterTopic = DefaultDeadLetterTopic
	}
	if opts.LateTopic == "" {
		opts.LateTopic = DefaultLateTopic
	}
	if opts.CheckpointInterval <= 0 {
		opts.CheckpointInterval = DefaultCheckpointInterval
	}
	if opts.MaxResidentKeys <= 0 {
		opts.MaxResidentKeys = DefaultMaxResidentKeys
	}
	if opts.MaxUncommittedRecords <= 0 {
		opts.MaxUncommittedRecords = DefaultMaxUncommittedRecords
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = DefaultDrainTimeout
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.MaxClockSkew == 0 {
		opts.MaxClockSkew = DefaultMaxClockSkew
	}
	if opts.PollRecords <= 0 {
		opts.PollRecords = DefaultPollRecords
	}
	if opts.SessionTimeout <= 0 {
		opts.SessionTimeout = DefaultSessionTimeout
	}
	if opts.TransactionTimeout <= 0 {
		opts.TransactionTimeout = DefaultTransactionTimeout
	}
	if opts.ExactlyOnce && opts.TransactionalID == "" {
		opts.TransactionalID = DefaultTransactionalID(opts.Group)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	e := &Engine{
		opts:    opts,
		log:     opts.Logger,
		workers: map[topicPartition]*worker{},
	}
	e.groupKick, e.groupTurn = make(chan struct{}, 1), make(chan struct{}, 1)
	p, err := e.newPlan(opts.Rulesets, 1)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	e.plan.Store(p)
	e.metrics, err = newMetrics(opts.Registerer, e.Ready)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	e.metrics.startAtZero([]string{opts.AlertsTopic, opts.ShadowAlertsTopic, opts.DeadLetterTopic, opts.LateTopic}, opts.ExactlyOnce)
	return e, nil
}

// alertLimit is the most bytes of JSON an alert may take (alertLimit). The
// alerts topic's max.message.bytes is asked for once, at the first alert,
// by a partition worker rather than in the group's callbacks, which a
// broker round trip would hold up; a change of it takes a restart.
func (e *Engine) alertLimit(ctx context.Context, cl *kgo.Client) int {
	e.alertMaxOnce.Do(func() {
		brokerMax := topicMaxMessageBytes(ctx, cl, e.opts.AlertsTopic, e.log)
		e.alertMax = alertLimit(cl, e.opts.AlertsTopic, brokerMax)
	})
	return e.alertMax
}

// Topics returns the topics the engine reads, sorted.
func (e *Engine) Topics() []string { return slices.Clone(e.plan.Load().topics) }

// Run joins the consumer group and processes records until ctx ends, then
// shuts down gracefully: it stops fetching, lets every partition finish the
// batch in hand, checkpoint and commit, leaves the group and returns nil. It
// returns an error when it cannot start, or when its exactly-once
// transactions fail for good (another instance took its transactional
// id). An Engine runs once.
func (e *Engine) Run(ctx context.Context) error {
	if !e.ran.CompareAndSwap(false, true) {
		return errors.New("engine: already run")
	}
	e.mu.Lock()
	topics := e.plan.Load().topics
	opts := []kgo.Opt{
		kgo.SeedBrokers(e.opts.Brokers...),
		kgo.ConsumerGroup(e.opts.Group),
		kgo.ConsumeTopics(topics...),
		// A member killed without leaving holds its partitions until its
		// session times out; heartbeats come at least three times per
		// session, as Kafka advises.
		kgo.SessionTimeout(e.opts.SessionTimeout),
		kgo.HeartbeatInterval(min(3*time.Second, e.opts.SessionTimeout/3)),
		// A member that dies during a rebalance holds the others' joins
		// for the rebalance timeout (franz-go's default is 60 s). The
		// engine rejoins once its revoked partitions are drained, which
		// DrainTimeout bounds, and a heartbeat has told it to; in
		// exactly-once mode nothing is drained, and the barrier in
		// progress lets the rebalance go on once its checkpoints are
		// staged.
		kgo.RebalanceTimeout(e.rebalanceTimeout()),
		// Offsets are committed by the workers, each after its checkpoint
		// is in the Store; polls and rebalances exclude each other so that
		// a worker exists for every partition a poll returns.
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxWait(fetchMaxWait),
		// The workers live within Run's ctx: the callback's is the
		// client's.
		kgo.OnPartitionsAssigned(func(_ context.Context, cl *kgo.Client, assigned map[string][]int32) {
			e.assigned(ctx, cl, assigned)
		}),
		kgo.OnPartitionsRevoked(e.revoked),
		kgo.OnPartitionsLost(e.lost),
		kgo.AdjustFetchOffsetsFn(e.adjustOffsets),
		// The output topics are created on first use where the brokers
		// allow it, rather than alerts waiting for an operator.
		kgo.AllowAutoTopicCreation(),
		// Alerts leave as soon as they are produced: a linger (franz-go's
		// default is 10 ms) would add its whole length to every alert's
		// latency, and batching still happens while a produce is in flight.
		kgo.ProducerLinger(0),
	}
	if e.opts.ExactlyOnce {
		opts = append(opts,
			kgo.TransactionalID(e.opts.TransactionalID),
			kgo.TransactionTimeout(e.opts.TransactionTimeout),
			// Aborted input (an upstream transactional producer's) is not
			// matched.
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		)
	}
	opts = append(opts, e.opts.KafkaOptions...)
	opts = append(opts, testKafkaOpts()...)
	var cl *kgo.Client
	var err error
	if e.opts.ExactlyOnce {
		var sess *kgo.GroupTransactSession
		if sess, err = kgo.NewGroupTransactSession(opts...); err == nil {
			cl = sess.Client()
			e.txn = newTxnCoordinator(e, sess)
		}
	} else {
		cl, err = kgo.NewClient(opts...)
	}
	if err != nil {
		e.mu.Unlock()
		return fmt.Errorf("engine: kafka client: %w", err)
	}
	e.cl = cl
	e.mu.Unlock()
	e.log.Info("engine started", "group", e.opts.Group, "topics", topics, "exactly_once", e.opts.ExactlyOnce)

	groupDone := make(chan struct{})
	// A failure of the transactions stops the engine as ctx would.
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		defer close(groupDone)
		e.watchGroup(runCtx, cl)
	}()
	var runErr error
	if e.txn != nil {
		if runErr = e.pollTxn(ctx, e.txn); runErr != nil {
			runErr = fmt.Errorf("engine: exactly-once outputs: %w", runErr)
		}
	} else {
		e.poll(ctx, cl)
	}
	stop()
	<-groupDone

	// Leaving the group revokes every partition: each worker finishes its
	// batch, checkpoints and commits in e.revoked, within DrainTimeout.
	leaveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.opts.DrainTimeout+5*time.Second)
	if err := cl.LeaveGroupContext(leaveCtx); err != nil {
		e.log.Warn("leave consumer group", "err", err)
	}
	cancel()
	e.mu.Lock()
	e.stopped = true
	rest := make([]*worker, 0, len(e.workers))
	for tp, w := range e.workers {
		rest = append(rest, w)
		delete(e.workers, tp)
	}
	e.mu.Unlock()
	// Workers still there when the leave gave up are dropped, as if lost:
	// their state since the last checkpoint is re-read by the next owner.
	for _, w := range rest {
		w.stop(false)
	}
	cl.Close()
	e.wg.Wait()
	e.log.Info("engine stopped", "group", e.opts.Group)
	return runErr
}

// rebalanceTimeout is how long the group waits for a member to rejoin in
// a rebalance.
func (e *Engine) rebalanceTimeout() time.Duration {
	if e.opts.ExactlyOnce {
		return stageTimeout(e.opts) + endTimeout(e.opts) + 5*time.Second
	}
	return e.opts.DrainTimeout + 5*time.Second
}

// poll fetches records and hands each partition's to its worker until ctx
// ends. Handing over never blocks: a worker that falls behind has its
// partition paused instead, so one slow partition (or a Store that is
// down) never holds a rebalance.
func (e *Engine) poll(ctx context.Context, cl *kgo.Client) {
	for {
		fetches := cl.PollRecords(ctx, e.opts.PollRecords)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			cl.AllowRebalance()
			return
		}
		e.dispatch(fetches)
		cl.AllowRebalance()
	}
}

// dispatch hands each partition's records of a poll to its worker.
func (e *Engine) dispatch(fetches kgo.Fetches) {
	fetches.EachError(func(topic string, partition int32, err error) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return
		}
		e.metrics.fetchErrors.Inc()
		e.log.Warn("fetch", "topic", topic, "partition", partition, "err", err)
	})
	at := e.opts.Clock()
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		e.mu.Lock()
		w := e.workers[topicPartition{p.Topic, p.Partition}]
		e.mu.Unlock()
		if w == nil {
			// BlockRebalanceOnPoll makes this impossible: a partition is
			// polled only between its assignment and its revocation;
			// but SetRulesets may have just dropped its topic.
			if slices.Contains(e.plan.Load().topics, p.Topic) {
				e.log.Error("records of a partition without worker", "topic", p.Topic, "partition", p.Partition)
			}
			return
		}
		w.enqueue(p.Records, p.HighWatermark, at)
	})
}

// assigned starts a worker for every newly assigned partition, under Run's
// ctx: its end drains them. Each restores its partition from the Store on
// its own goroutine; adjustOffsets waits for that before fetching starts.
func (e *Engine) assigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	e.mu.Lock()
	defer e.mu.Unlock()
	defer e.kickGroupCheck()
	e.joined = true
	if e.stopped {
		return
	}
	// A partition this instance was fenced from was paused; it may come
	// back with this assignment.
	cl.ResumeFetchPartitions(assigned)
	for topic, parts := range assigned {
		for _, p := range parts {
			tp := topicPartition{topic, p}
			if e.workers[tp] != nil {
				continue
			}
			w := newWorker(ctx, e, cl, topic, p)
			e.workers[tp] = w
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				w.run(ctx)
			}()
		}
	}
	e.metrics.partitions.Set(float64(len(e.workers)))
	e.log.Info("partitions assigned", "partitions", fmtPartitions(assigned))
}

// adjustOffsets makes each newly assigned partition start at its Store
// checkpoint's offset rather than Kafka's committed one: the Store is the
// truth, Kafka's offset (committed after it) may lag behind.
func (e *Engine) adjustOffsets(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	for topic, parts := range offsets {
		for p := range parts {
			e.mu.Lock()
			w := e.workers[topicPartition{topic, p}]
			e.mu.Unlock()
			if w == nil {
				continue
			}
			select {
			case <-w.restored:
			case <-w.done:
				continue
			case <-ctx.Done():
				// The session is being revoked before this partition
				// could be restored: the revocation stops the worker.
				return nil, ctx.Err()
			}
			if w.resumeAt >= 0 {
				parts[p] = kgo.NewOffset().At(w.resumeAt)
			}
		}
	}
	return offsets, nil
}

// revoked lets every revoked partition's worker finish its batch,
// checkpoint and commit, and waits for them: the rebalance goes on only
// after.
func (e *Engine) revoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	e.stopWorkers(revoked, true)
	e.kickGroupCheck()
	e.log.Info("partitions revoked", "partitions", fmtPartitions(revoked))
}

// lost drops the lost partitions' state without writing anything: another
// member may own them already.
func (e *Engine) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	e.stopWorkers(lost, false)
	e.kickGroupCheck()
	e.log.Warn("partitions lost", "partitions", fmtPartitions(lost))
}

func (e *Engine) stopWorkers(parts map[string][]int32, drain bool) {
	var ws []*worker
	e.mu.Lock()
	for topic, ps := range parts {
		for _, p := range ps {
			tp := topicPartition{topic, p}
			if w := e.workers[tp]; w != nil {
				ws = append(ws, w)
				delete(e.workers, tp)
			}
		}
	}
	e.metrics.partitions.Set(float64(len(e.workers)))
	e.mu.Unlock()
	// Signal all first so that the partitions drain in parallel.
	for _, w := range ws {
		w.stop(drain)
	}
	if e.txn != nil {
		// Nothing to drain in exactly-once mode: a revoked worker's work
		// since the last barrier is in the transaction the revocation
		// aborts. Waiting for the workers could wait for the barrier in
		// progress, which may wait for this rebalance.
		return
	}
	for _, w := range ws {
		<-w.done
	}
}

// Ready reports whether the engine is serving: it has joined its group,
// every assigned partition is restored from the Store, the Store is not
// failing, and the broker last said (within groupCheckStale) that every
// partition of the engine's topics is held by a member of the group. It is
// false before Run and after it returns.
func (e *Engine) Ready() bool {
	st := e.Status()
	return st.Ready
}

// EngineStatus describes the engine for health checks (/readyz).
type EngineStatus struct {
	Ready bool
	// Reason says why the engine is not ready; empty when it is.
	Reason     string
	Partitions []PartitionStatus
}

// PartitionStatus describes one assigned partition.
type PartitionStatus struct {
	Topic     string
	Partition int32
	// Restored is true once the partition's state was restored from the
	// Store (and its offset found).
	Restored bool
	// StoreError is the last Store error, empty while the Store works.
	StoreError string
	// Paused is true while fetching is paused because the worker fell
	// behind (or the Store fails).
	Paused bool
	// Fenced is true when a newer owner committed the partition's state:
	// this instance stopped working on it and waits for the group to take
	// it away.
	Fenced bool
	// NextOffset is the offset after the last record processed; -1 before
	// the first.
	NextOffset int64
	// CommittedOffset is the offset of the last checkpoint; -1 before it.
	CommittedOffset int64
	// Records counts the records processed since assignment.
	Records uint64
	// Uncommitted counts the records processed since the last checkpoint.
	Uncommitted int
	// Watermark is the lowest watermark of the partition's streams; zero
	// before any event.
	Watermark time.Time
}

// Status returns the engine's state; partitions are sorted by topic and
// number.
func (e *Engine) Status() EngineStatus {
	e.mu.Lock()
	ws := make([]*worker, 0, len(e.workers))
	for _, w := range e.workers {
		ws = append(ws, w)
	}
	st := EngineStatus{}
	switch {
	case e.cl == nil:
		st.Reason = "not started"
	case e.stopped:
		st.Reason = "stopped"
	case !e.joined && len(e.plan.Load().topics) > 0:
		// With no ruleset there is nothing to join for: the engine is
		// ready to take rulesets.
		st.Reason = "joining the consumer group"
	}
	if e.txn != nil && st.Reason == "" {
		if err := e.txn.failed.Load(); err != nil {
			st.Reason = (*err).Error()
		}
	}
	groupReason := e.groupReason(time.Now())
	e.mu.Unlock()
	for _, w := range ws {
		ps := w.status()
		st.Partitions = append(st.Partitions, ps)
		if st.Reason != "" {
			continue
		}
		switch {
		case ps.Fenced:
			st.Reason = fmt.Sprintf("%s/%d fenced by a newer owner", ps.Topic, ps.Partition)
		case !ps.Restored && ps.StoreError != "":
			st.Reason = fmt.Sprintf("restoring %s/%d: %s", ps.Topic, ps.Partition, ps.StoreError)
		case !ps.Restored:
			st.Reason = fmt.Sprintf("restoring %s/%d", ps.Topic, ps.Partition)
		case ps.StoreError != "":
			st.Reason = fmt.Sprintf("store failing for %s/%d: %s", ps.Topic, ps.Partition, ps.StoreError)
		}
	}
	if st.Reason == "" {
		st.Reason = groupReason
	}
	sort.Slice(st.Partitions, func(i, j int) bool {
		a, b := st.Partitions[i], st.Partitions[j]
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		return a.Partition < b.Partition
	})
	st.Ready = st.Reason == ""
	return st
}

// fmtPartitions renders a partition map for logs, sorted.
func fmtPartitions(m map[string][]int32) string {
	topics := make([]string, 0, len(m))
	for t := range m {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	var b []byte
	for _, t := range topics {
		ps := slices.Clone(m[t])
		slices.Sort(ps)
		for _, p := range ps {
			if len(b) > 0 {
				b = append(b, ' ')
			}
			b = fmt.Appendf(b, "%s/%d", t, p)
		}
	}
	return string(b)
}
