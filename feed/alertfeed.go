package feed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shrike-cep/shrike/internal/pagetoken"
	"github.com/shrike-cep/shrike/matcher"
)

// Defaults of AlertFeedOptions.
const (
	// DefaultRecentAlerts is how many alerts an AlertFeed keeps in its
	// ring: for Recent, and as the buffer every subscriber reads from.
	DefaultRecentAlerts = 10_000
	// DefaultPartitionRefresh is how often the feed looks for partitions
	// added to the alerts topic (or for the topic itself, before it
	// exists).
	DefaultPartitionRefresh = 10 * time.Second
	// DefaultFeedPageSize is the page size of Recent when it is given 0.
	DefaultFeedPageSize = 50
	// DefaultReplayFetches bounds the Kafka reads in flight for all the
	// subscribers that are behind the ring together.
	DefaultReplayFetches = 4
	// DefaultReplayCacheBytes bounds the alerts read back from Kafka that
	// the feed keeps for the next subscriber resuming from the same
	// position.
	DefaultReplayCacheBytes = 16 << 20
)

// subscriberQueue is the channel buffer of one subscription. Alerts wait
// for a subscriber in the feed's shared ring, not in its channel, so the
// channel only smooths the hand-over.
const subscriberQueue = 256

// ringBatch is how many ring entries a subscription copies out under the
// feed's lock at a time.
const ringBatch = 256

// Errors of the alert feed that callers branch on (the API maps them to
// status codes).
var (
	// ErrCursorExpired means that alerts after the cursor are no longer
	// retained by the alerts topic: resuming from it would skip some.
	ErrCursorExpired = errors.New("alert cursor expired: the alerts topic no longer holds the alerts after it")
	// ErrInvalidCursor is a cursor that no feed of this alerts topic made.
	ErrInvalidCursor = errors.New("invalid alert cursor")
	// ErrFeedStopped ends subscriptions when the feed's Run returns.
	ErrFeedStopped = errors.New("alert feed stopped")
)

// AlertFeedOptions configure NewAlertFeed. Zero values are the documented
// defaults.
type AlertFeedOptions struct {
	// Brokers are the seed brokers, host:port. Required.
	Brokers []string
	// Topic is the alerts topic (the engine's EngineOptions.AlertsTopic).
	// Required.
	Topic string
	// Recent is how many of the latest alerts the feed keeps in its ring:
	// what Recent can list, and how far a subscriber may fall behind (a
	// burst of alerts) before it reads from Kafka instead. Default
	// DefaultRecentAlerts. At start the feed reads back about this many
	// alerts from the topic, so that a restarted instance lists the same.
	Recent int
	// ReplayFetches bounds the Kafka reads in flight for subscribers
	// behind the ring. Default DefaultReplayFetches.
	ReplayFetches int
	// ReplayCacheBytes bounds the alerts read back from Kafka kept for
	// other subscribers at the same position. Default
	// DefaultReplayCacheBytes.
	ReplayCacheBytes int
	// PartitionRefresh: see DefaultPartitionRefresh.
	PartitionRefresh time.Duration
	// ReadCommitted reads only the alerts of committed transactions
	// (read_committed), for an engine that writes its alerts in
	// transactions (exactly-once mode): an alert written again after its
	// transaction aborted is then shown once, not once per attempt. A
	// partition's end is then its last stable offset, so that the feed
	// neither reads nor waits for the records of a transaction still
	// open. Default false: every alert written, as an engine writing
	// outside transactions needs.
	ReadCommitted bool
	// Logger receives the feed's rare operational messages. Default:
	// discard.
	Logger *slog.Logger
	// ExtraKafka are further franz-go options for the feed's clients (TLS,
	// SASL), applied last.
	ExtraKafka []kgo.Opt
}

// Alert is one alert of the feed, or the end of a subscription.
type Alert struct {
	// Cursor is the feed's position after this alert: passed to Subscribe,
	// the subscription starts with the alerts that follow it, on any
	// instance reading the same alerts topic. It lists the next offset of
	// every partition of the topic ("0:1234,1:988,2:17"); clients must
	// treat it as opaque.
	Cursor string
	// Alert is the alert decoded from the topic's JSON. Its steps' records
	// hold the matched events' original bytes (Event.Raw) and the alert's
	// key; their times and positions are not in the JSON and are zero.
	// Every subscriber gets the same value: it must not be modified.
	Alert *matcher.Alert
	// Raw is the record's value, the alert JSON of docs/design.md#alerts, exactly as
	// the engine wrote it. It must not be modified.
	Raw []byte
	// Err, set only on the last value of a subscription's channel, says
	// why the feed ended the subscription (ErrFeedStopped,
	// ErrCursorExpired or a Kafka error). A subscription ended by its
	// context closes without it.
	Err error

	// shared is the record's memo, common to every subscriber and listing
	// that gets this record from the same ring entry or replay read.
	shared *shared
}

// shared holds what a consumer of the feed derives from one alert record
// once for all subscribers (the API's converted alert).
type shared struct {
	once sync.Once
	v    any
}

// Shared returns what compute returns for this alert, calling it once for
// every subscriber that receives the same record from the feed (live, or
// replayed from the ring or the same Kafka read) and for Recent's
// listings: the API converts each alert once, not once per subscriber.
// compute must not depend on the subscriber; the result must not be
// modified. An Alert not made by a feed calls compute every time.
func (a Alert) Shared(compute func() any) any {
	if a.shared == nil {
		return compute()
	}
	a.shared.once.Do(func() { a.shared.v = compute() })
	return a.shared.v
}

// AlertFeed reads every partition of the alerts topic, without a consumer
// group, so that each instance can serve any subscriber the alerts of all
// instances (api/README.md). It keeps the latest alerts in a ring, which
// Recent lists and every subscriber reads from.
//
// Invariants:
//
//   - The feed never waits for a subscriber, and never cuts one off: each
//     subscription follows the shared ring with a goroutine of its own,
//     and one that falls behind the ring's oldest alert (a slow reader, a
//     cursor older than the ring) reads the alerts it lacks from Kafka
//     through the feed's one replay client, whose reads are bounded in
//     number and shared by subscribers at the same position. Memory per
//     subscriber is bounded: its channel and at most one read.
//   - A cursor is the next offset of every partition the feed reads: the
//     alerts below it were delivered before it. A subscription follows
//     the ring only while the ring holds every alert at or after its
//     position in each partition (ringFrom), so that it misses no alert
//     and gets none twice (delivery across reconnects is still
//     at-least-once: a client may reconnect with an older cursor than its
//     last alert's).
//   - Within a partition alerts arrive in offset order; across partitions
//     in the order the feed fetched them, or partition by partition while
//     a subscriber reads from Kafka.
type AlertFeed struct {
	opts AlertFeedOptions
	log  *slog.Logger

	ran   atomic.Bool
	ready chan struct{} // closed once the topic's partitions were listed
	done  chan struct{} // closed when Run returns

	// adm lists offsets for Subscribe; set before ready is closed.
	adm *kadm.Client
	// replay reads for subscribers behind the ring; set before ready is
	// closed.
	replay *replayReader

	// subs counts the subscriptions' goroutines, which Run waits for.
	subsWG sync.WaitGroup

	// mu guards the fields below.
	mu      sync.Mutex
	stopped bool
	// next is the next offset of each partition the feed reads.
	next map[int32]int64
	// first is the offset the feed started each partition at.
	first map[int32]int64
	// ringFrom is, per partition, the offset from which the ring holds
	// every alert up to next.
	ringFrom map[int32]int64
	// ring holds the latest alerts, oldest first from head; seq numbers
	// them from 1, newest is seq.
	ring []ringEntry
	head int
	seq  uint64
	// grown is closed, and replaced, whenever alerts are added to the ring.
	grown chan struct{}
}

type ringEntry struct {
	seq uint64
	// part and off are the alert record's partition and offset; next is
	// the feed's next offsets after it, whose encoding is fa.Cursor.
	part int32
	off  int64
	next map[int32]int64
	fa   Alert
}

// subscription is one Subscribe call's state, owned by its goroutine.
type subscription struct {
	ch chan Alert
	// pos is the next offset per partition this subscriber is to get.
	pos map[int32]int64
	// seq is the last ring entry it has looked at.
	seq uint64
	// ahead runs the read of what the subscription will read next from
	// Kafka.
	ahead sync.WaitGroup
}

// NewAlertFeed checks the options; Run reads the topic.
func NewAlertFeed(opts AlertFeedOptions) (*AlertFeed, error) {
	if len(opts.Brokers) == 0 {
		return nil, errors.New("alert feed: no brokers")
	}
	if opts.Topic == "" {
		return nil, errors.New("alert feed: no topic")
	}
	if opts.Recent < 0 || opts.ReplayFetches < 0 || opts.ReplayCacheBytes < 0 || opts.PartitionRefresh < 0 {
		return nil, errors.New("alert feed: negative limit")
	}
	if opts.Recent == 0 {
		opts.Recent = DefaultRecentAlerts
	}
	if opts.ReplayFetches == 0 {
		opts.ReplayFetches = DefaultReplayFetches
	}
	if opts.ReplayCacheBytes == 0 {
		opts.ReplayCacheBytes = DefaultReplayCacheBytes
	}
	if opts.PartitionRefresh == 0 {
		opts.PartitionRefresh = DefaultPartitionRefresh
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &AlertFeed{
		opts:     opts,
		log:      opts.Logger,
		ready:    make(chan struct{}),
		done:     make(chan struct{}),
		next:     make(map[int32]int64),
		first:    make(map[int32]int64),
		ringFrom: make(map[int32]int64),
		ring:     make([]ringEntry, 0, min(opts.Recent, 1024)),
		grown:    make(chan struct{}),
	}, nil
}

// isolation is the feed's Kafka isolation level (ReadCommitted).
func (f *AlertFeed) isolation() kgo.IsolationLevel {
	if f.opts.ReadCommitted {
		return kgo.ReadCommitted()
	}
	return kgo.ReadUncommitted()
}

func (f *AlertFeed) kafkaOpts(more ...kgo.Opt) []kgo.Opt {
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(f.opts.Brokers...),
		kgo.ClientID("shrike-alert-feed"),
		// A read_committed fetch waits for records at the last stable
		// offset; a broker that does not answer it early when a
		// transaction commits (the embedded one) keeps the committed
		// alerts from subscribers for the whole wait: franz-go's default
		// of 5 s. The Java consumer's 500 ms bounds it.
		kgo.FetchMaxWait(500 * time.Millisecond),
	}, more...)
	return append(opts, f.opts.ExtraKafka...)
}

// Run reads the alerts topic until ctx ends, then ends every subscription
// with ErrFeedStopped. Kafka being unreachable is not an error: the feed
// retries, and Subscribe waits until it has listed the topic once. Run
// may be called once.
func (f *AlertFeed) Run(ctx context.Context) error {
	if !f.ran.CompareAndSwap(false, true) {
		return errors.New("alert feed: Run called twice")
	}
	defer func() {
		f.mu.Lock()
		f.stopped = true
		f.mu.Unlock()
		close(f.done)
		// Subscriptions end before the replay client closes.
		f.subsWG.Wait()
		if f.replay != nil {
			f.replay.close()
		}
	}()
	cl, err := kgo.NewClient(f.kafkaOpts(
		// Records deleted under the feed by retention: go on from the
		// oldest left.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(f.isolation()),
	)...)
	if err != nil {
		return fmt.Errorf("alert feed: %w", err)
	}
	defer cl.Close()
	f.adm = kadm.NewClient(cl)
	// The replay client is apart from the feed's, whose fetch connection
	// is held by long polls; it connects on first use.
	if f.replay, err = newReplayReader(f.kafkaOpts(kgo.ClientID("shrike-alert-replay")), f.opts.Topic, f.opts.ReadCommitted, f.opts.ReplayFetches, f.opts.ReplayCacheBytes); err != nil {
		return fmt.Errorf("alert feed: %w", err)
	}

	var discovered bool
	due := time.Now()
	for {
		if !time.Now().Before(due) {
			if err := f.discover(ctx, cl, discovered); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				f.log.Warn("alert feed: cannot list the alerts topic; retrying", "topic", f.opts.Topic, "err", err)
				due = time.Now().Add(min(time.Second, f.opts.PartitionRefresh))
			} else {
				if !discovered {
					discovered = true
					close(f.ready)
				}
				due = time.Now().Add(f.opts.PartitionRefresh)
			}
		}
		pctx, cancel := context.WithDeadline(ctx, due)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return
			}
			f.log.Warn("alert feed: fetch failed", "topic", t, "partition", p, "err", err)
		})
		f.deliver(fs)
	}
}

// discover adds the partitions of the topic the feed does not read yet.
// The first time, each partition starts far enough back that Recent has
// its alerts; partitions found later start at their beginning, since all
// their alerts are new.
func (f *AlertFeed) discover(ctx context.Context, cl *kgo.Client, later bool) error {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	starts, ends, err := f.listOffsets(lctx, f.opts.ReadCommitted)
	if err != nil {
		return err
	}
	parts := ends[f.opts.Topic]
	add := make(map[int32]kgo.Offset)
	f.mu.Lock()
	quota := int64(f.opts.Recent)
	if n := int64(len(parts)); n > 0 {
		quota = (quota + n - 1) / n
	}
	for p, end := range parts {
		if _, ok := f.next[p]; ok {
			continue
		}
		at := starts[f.opts.Topic][p]
		if !later {
			at = max(at, end-quota)
		}
		f.next[p], f.first[p], f.ringFrom[p] = at, at, at
		add[p] = kgo.NewOffset().At(at)
	}
	f.mu.Unlock()
	if len(add) > 0 {
		f.log.Debug("alert feed: reading partitions", "topic", f.opts.Topic, "partitions", len(add))
		cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{f.opts.Topic: add})
	}
	return nil
}

// listOffsets returns the log start and end offsets of the topic's
// partitions; a topic that does not exist has none. With stable, the end
// is the last stable offset, below the records of any open transaction
// (where a read_committed reader stops), rather than the high watermark.
func (f *AlertFeed) listOffsets(ctx context.Context, stable bool) (starts, ends map[string]map[int32]int64, err error) {
	conv := func(l kadm.ListedOffsets) map[string]map[int32]int64 {
		out := map[string]map[int32]int64{f.opts.Topic: {}}
		l.Each(func(o kadm.ListedOffset) {
			if o.Err == nil && o.Partition >= 0 && o.Topic == f.opts.Topic {
				out[o.Topic][o.Partition] = o.Offset
			}
		})
		return out
	}
	s, err := f.adm.ListStartOffsets(ctx, f.opts.Topic)
	if err != nil {
		return nil, nil, fmt.Errorf("list start offsets: %w", err)
	}
	listEnds := f.adm.ListEndOffsets
	if stable {
		listEnds = f.adm.ListCommittedOffsets
	}
	e, err := listEnds(ctx, f.opts.Topic)
	if err != nil {
		return nil, nil, fmt.Errorf("list end offsets: %w", err)
	}
	return conv(s), conv(e), nil
}

// decoded is one fetched record with its alert.
type decoded struct {
	r *kgo.Record
	a *matcher.Alert
}

// deliver decodes the fetched alerts, then, under the lock, advances the
// feed's offsets, keeps them in the ring and wakes the subscriptions.
func (f *AlertFeed) deliver(fs kgo.Fetches) {
	var recs []decoded
	fs.EachRecord(func(r *kgo.Record) {
		a, err := ParseAlert(r.Value)
		if err != nil {
			f.log.Warn("alert feed: record skipped: not an alert", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
		}
		recs = append(recs, decoded{r, a})
	})
	if len(recs) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	added := false
	for _, d := range recs {
		p, o := d.r.Partition, d.r.Offset
		if o < f.next[p] {
			continue // a partition reset behind us (never expected): not twice
		}
		f.next[p] = o + 1
		if d.a == nil {
			continue
		}
		f.remember(p, o, Alert{Cursor: encodeCursor(f.next), Alert: d.a, Raw: d.r.Value, shared: &shared{}})
		added = true
	}
	if added {
		close(f.grown)
		f.grown = make(chan struct{})
	}
}

// remember keeps fa, the alert at offset o of partition p, in the ring;
// f.mu is held. The alert it evicts moves its partition's ringFrom past
// it.
func (f *AlertFeed) remember(p int32, o int64, fa Alert) {
	f.seq++
	e := ringEntry{seq: f.seq, part: p, off: o, next: maps.Clone(f.next), fa: fa}
	if len(f.ring) < f.opts.Recent {
		f.ring = append(f.ring, e)
		return
	}
	old := f.ring[f.head]
	f.ringFrom[old.part] = max(f.ringFrom[old.part], old.off+1)
	f.ring[f.head] = e
	f.head = (f.head + 1) % len(f.ring)
}

// Subscribe streams the alerts after the cursor from (from this instance
// or any other reading the same topic), or with from empty, the alerts
// the feed reads from now on. The channel ends when ctx ends, or with a
// last Alert whose Err says why the feed ended it. A cursor older
// than the topic's retention is ErrCursorExpired, one that no feed made
// ErrInvalidCursor. Subscribe waits until Run has listed the topic.
func (f *AlertFeed) Subscribe(ctx context.Context, from string) (<-chan Alert, error) {
	var pos map[int32]int64
	if from != "" {
		var err error
		if pos, err = parseCursor(from); err != nil {
			return nil, err
		}
	}
	select {
	case <-f.ready:
	case <-f.done:
		return nil, ErrFeedStopped
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if pos != nil {
		if err := f.checkCursor(ctx, pos); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// Under the lock with stopped, so that Run's Wait never races an Add.
	if f.stopped {
		return nil, ErrFeedStopped
	}
	s := &subscription{ch: make(chan Alert, subscriberQueue), pos: pos}
	if pos == nil {
		s.pos, s.seq = maps.Clone(f.next), f.seq
	}
	f.subsWG.Add(1)
	go f.serve(ctx, s)
	return s.ch, nil
}

// checkCursor compares a cursor with the topic's offsets, and fills in
// the partitions it does not name with their start: the cursor was made
// before the feed read them, so all their alerts are new to it. A cursor
// is checked against the high watermark even when the feed reads
// committed alerts: one made by a feed reading uncommitted ones may be
// past the last stable offset, and is a position ahead of this feed, not
// an invalid one.
func (f *AlertFeed) checkCursor(ctx context.Context, pos map[int32]int64) error {
	starts, ends, err := f.listOffsets(ctx, false)
	if err != nil {
		return fmt.Errorf("alert feed: %w", err)
	}
	st, en := starts[f.opts.Topic], ends[f.opts.Topic]
	for _, p := range slices.Sorted(maps.Keys(pos)) {
		o := pos[p]
		end, ok := en[p]
		switch {
		case !ok:
			return fmt.Errorf("%w: topic %s has no partition %d", ErrInvalidCursor, f.opts.Topic, p)
		case o > end:
			return fmt.Errorf("%w: offset %d of partition %d is past its end %d", ErrInvalidCursor, o, p, end)
		case o < st[p]:
			return fmt.Errorf("%w: partition %d starts at offset %d, the cursor at %d", ErrCursorExpired, p, st[p], o)
		}
	}
	for p, o := range st {
		if _, ok := pos[p]; !ok {
			pos[p] = o
		}
	}
	return nil
}

// serve runs one subscription until its context or the feed ends, or it
// fails. It alone closes the channel, so that nothing is sent on a closed
// channel.
func (f *AlertFeed) serve(ctx context.Context, s *subscription) {
	defer f.subsWG.Done()
	defer close(s.ch)
	// The subscription's reads end with the feed too, so that a stopping
	// feed does not wait for one.
	fctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-f.done:
			cancel()
		case <-fctx.Done():
		}
	})
	reason := f.follow(fctx, s)
	cancel()
	wg.Wait()
	s.ahead.Wait()
	if ctx.Err() != nil {
		return
	}
	if reason == nil || fctx.Err() != nil || errors.Is(reason, kgo.ErrClientClosed) {
		reason = ErrFeedStopped
	}
	end := Alert{Err: reason}
	if errors.Is(reason, ErrFeedStopped) {
		// Run waits for this goroutine: the news is given if there is
		// room, never waited for.
		select {
		case s.ch <- end:
		default:
		}
		return
	}
	select {
	case s.ch <- end:
	case <-ctx.Done():
	case <-f.done:
	}
}

// follow sends s its alerts: from Kafka for the partitions where its
// position is older than the ring holds, then from the ring, waiting for
// the feed when it has read all. It returns why it stopped.
func (f *AlertFeed) follow(ctx context.Context, s *subscription) error {
	var batch []ringEntry
	for {
		f.mu.Lock()
		if f.stopped {
			f.mu.Unlock()
			return ErrFeedStopped
		}
		behind := f.behindRing(s)
		if len(behind) > 0 {
			starts := make(map[int32]int64, len(behind))
			for _, p := range behind {
				starts[p] = s.pos[p]
			}
			f.mu.Unlock()
			// The other partitions' first reads go on while the first
			// partition's alerts are sent.
			for _, p := range behind[1:] {
				s.ahead.Go(func() { _, _ = f.replay.read(ctx, p, starts[p]) })
			}
			for _, p := range behind {
				if err := f.readBack(ctx, s, p); err != nil {
					return err
				}
			}
			continue
		}
		var grown chan struct{}
		batch, grown = f.ringAfter(s, batch[:0])
		f.mu.Unlock()
		if len(batch) == 0 {
			select {
			case <-grown:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		for _, e := range batch {
			if e.off < s.pos[e.part] {
				mergeMax(s.pos, e.next)
				continue
			}
			mergeMax(s.pos, e.next)
			cursor := e.fa.Cursor
			if !maps.Equal(s.pos, e.next) {
				cursor = encodeCursor(s.pos) // a cursor ahead of this feed
			}
			fa := e.fa
			fa.Cursor = cursor
			select {
			case s.ch <- fa:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		clear(batch) // the alerts are the ring's, not to be kept here
	}
}

// behindRing lists the partitions in which s's position is older than
// the ring holds; f.mu is held. Partitions the feed found after s began
// start where the feed started them.
func (f *AlertFeed) behindRing(s *subscription) []int32 {
	var out []int32
	for p, from := range f.ringFrom {
		o, ok := s.pos[p]
		if !ok {
			o = f.first[p]
			s.pos[p] = o
		}
		if o < from {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// ringAfter appends to batch the ring entries after the last s has
// looked at, ringBatch at most, and moves s on past them; f.mu is held.
// With none, it returns the channel that is closed when some arrive.
func (f *AlertFeed) ringAfter(s *subscription, batch []ringEntry) ([]ringEntry, chan struct{}) {
	if len(f.ring) == 0 || s.seq >= f.seq {
		return batch, f.grown
	}
	oldest := f.seq - uint64(len(f.ring)) + 1
	// Entries evicted before s looked at them are all below its
	// position: behindRing found none it lacks.
	from := max(s.seq+1, oldest)
	for seq := from; seq <= f.seq && len(batch) < ringBatch; seq++ {
		batch = append(batch, f.ring[(f.head+int(seq-oldest))%len(f.ring)])
	}
	s.seq = batch[len(batch)-1].seq
	return batch, nil
}

// readBack sends s the alerts of partition p from its position, one
// Kafka read's worth, through the shared replay reader.
func (f *AlertFeed) readBack(ctx context.Context, s *subscription, p int32) error {
	start := s.pos[p]
	c, err := f.replay.read(ctx, p, start)
	if err != nil {
		return err
	}
	if len(c.recs) > 0 && c.next < c.end {
		// Read on while this read is sent: the next readBack finds it
		// made, or joins it.
		s.ahead.Go(func() { _, _ = f.replay.read(ctx, p, c.next) })
	}
	if len(c.recs) == 0 && c.next <= start {
		// Nothing readable yet at this offset (records of a transaction
		// still open): try again shortly rather than spin.
		t := time.NewTimer(replayRetry)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for _, r := range c.recs {
		if r.off < s.pos[p] {
			continue
		}
		s.pos[p] = r.off + 1
		if r.fa.Alert == nil {
			continue
		}
		fa := r.fa
		fa.Cursor = encodeCursor(s.pos)
		select {
		case s.ch <- fa:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.pos[p] = max(s.pos[p], c.next)
	return nil
}

// mergeMax raises each offset of pos to next's.
func mergeMax(pos, next map[int32]int64) {
	for p, o := range next {
		if o > pos[p] {
			pos[p] = o
		}
	}
}

// Recent lists the latest alerts that keep accepts (nil: all), newest
// first, pageSize at most (0: DefaultFeedPageSize), and the token of the
// next page, empty on the last. Pages stay consistent while alerts
// arrive: a token continues below the last alert of its page. keep runs
// outside the feed's lock.
func (f *AlertFeed) Recent(pageSize int, pageToken string, keep func(*matcher.Alert) bool) ([]Alert, string, error) {
	if pageSize <= 0 {
		pageSize = DefaultFeedPageSize
	}
	before := uint64(1<<64 - 1)
	if pageToken != "" {
		var err error
		if before, err = parsePageToken(pageToken); err != nil {
			return nil, "", err
		}
	}
	f.mu.Lock()
	var entries []ringEntry
	for i := len(f.ring) - 1; i >= 0; i-- {
		e := f.ring[(f.head+i)%len(f.ring)]
		if e.seq < before {
			entries = append(entries, e)
		}
	}
	f.mu.Unlock()
	var out []Alert
	var last uint64
	for _, e := range entries {
		if keep != nil && !keep(e.fa.Alert) {
			continue
		}
		if len(out) == pageSize {
			// One more passes: there is a next page.
			return out, encodePageToken(last), nil
		}
		out = append(out, e.fa)
		last = e.seq
	}
	return out, "", nil
}

// encodeCursor writes next offsets as "p:o,p:o" in partition order.
func encodeCursor(next map[int32]int64) string {
	var b strings.Builder
	for i, p := range slices.Sorted(maps.Keys(next)) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(int64(p), 10))
		b.WriteByte(':')
		b.WriteString(strconv.FormatInt(next[p], 10))
	}
	return b.String()
}

func parseCursor(s string) (map[int32]int64, error) {
	out := make(map[int32]int64)
	for part := range strings.SplitSeq(s, ",") {
		ps, os, ok := strings.Cut(part, ":")
		p, perr := strconv.ParseInt(ps, 10, 32)
		o, oerr := strconv.ParseInt(os, 10, 64)
		if !ok || perr != nil || oerr != nil || p < 0 || o < 0 {
			return nil, fmt.Errorf("%w: %q", ErrInvalidCursor, s)
		}
		if _, dup := out[int32(p)]; dup {
			return nil, fmt.Errorf("%w: partition %d twice", ErrInvalidCursor, p)
		}
		out[int32(p)] = o
	}
	return out, nil
}

// Page tokens are opaque to clients; the prefix lets a token of another
// list be told apart.
// encodePageToken and parsePageToken make Recent's page tokens: the
// sequence number of the last alert of a page.
func encodePageToken(seq uint64) string {
	return pagetoken.Encode("alerts", "", strconv.FormatUint(seq, 10))
}

func parsePageToken(tok string) (uint64, error) {
	last, err := pagetoken.Decode(tok, "alerts", "")
	if err != nil {
		return 0, err
	}
	seq, err := strconv.ParseUint(last, 10, 64)
	if err != nil {
		return 0, pagetoken.Invalid(tok)
	}
	return seq, nil
}
