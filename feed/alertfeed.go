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
	// DefaultRecentAlerts is how many alerts an AlertFeed keeps for Recent.
	DefaultRecentAlerts = 10_000
	// DefaultSubscriberBuffer is how many alerts may wait for one
	// subscriber before the feed cuts it off as too slow.
	DefaultSubscriberBuffer = 1024
	// DefaultPartitionRefresh is how often the feed looks for partitions
	// added to the alerts topic (or for the topic itself, before it
	// exists).
	DefaultPartitionRefresh = 10 * time.Second
	// DefaultFeedPageSize is the page size of Recent when it is given 0.
	DefaultFeedPageSize = 50
)

// Errors of the alert feed that callers branch on (the API maps them to
// status codes).
var (
	// ErrSlowSubscriber ends a subscription that let more than its buffer
	// of alerts pile up: the feed never waits for one subscriber. The
	// subscriber reconnects with the cursor of the last alert it got.
	ErrSlowSubscriber = errors.New("alert subscriber too slow: cut off")
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
	// Recent is how many of the latest alerts Recent can list. Default
	// DefaultRecentAlerts. At start the feed reads back about this many
	// alerts from the topic, so that a restarted instance lists the same.
	Recent int
	// Buffer bounds the alerts waiting for one subscriber. Default
	// DefaultSubscriberBuffer.
	Buffer int
	// PartitionRefresh: see DefaultPartitionRefresh.
	PartitionRefresh time.Duration
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
	// why the feed ended the subscription (ErrSlowSubscriber,
	// ErrFeedStopped, ErrCursorExpired or a Kafka error). A subscription
	// ended by its context closes without it.
	Err error
}

// AlertFeed reads every partition of the alerts topic, without a consumer
// group, so that each instance can serve any subscriber the alerts of all
// instances (api/README.md). It keeps the latest alerts for Recent and fans
// each alert out to the live subscribers.
//
// Invariants:
//
//   - The feed never waits for a subscriber: each has a bounded buffer,
//     and one that lets it fill is cut off with ErrSlowSubscriber.
//   - A cursor is the next offset of every partition the feed reads: the
//     alerts below it were delivered before it. A subscription resumed from
//     a cursor first replays the alerts from those offsets with a consumer
//     of its own, then, once it has caught up with the feed, joins the live
//     fan-out under the feed's lock, so that it misses no alert and gets
//     none twice (delivery across reconnects is still at-least-once: a
//     client may reconnect with an older cursor than its last alert's).
//   - Within a partition alerts arrive in offset order; across partitions
//     in the order the feed fetched them.
type AlertFeed struct {
	opts AlertFeedOptions
	log  *slog.Logger

	ran   atomic.Bool
	ready chan struct{} // closed once the topic's partitions were listed
	done  chan struct{} // closed when Run returns

	// adm lists offsets for Subscribe; set before ready is closed.
	adm *kadm.Client

	// subs counts the subscriptions' goroutines, which Run waits for.
	subsWG sync.WaitGroup

	// mu guards the fields below and every live subscriber's pos and
	// ahead. Fan-out happens under it, so that a subscription switching
	// from replay to live sees a consistent next.
	mu      sync.Mutex
	stopped bool
	// next is the next offset of each partition the feed reads.
	next map[int32]int64
	// first is the offset the feed started each partition at.
	first map[int32]int64
	subs  map[*subscription]struct{}
	// ring holds the latest alerts, oldest first from head; seq numbers
	// them from 1, newest is seq.
	ring []ringEntry
	head int
	seq  uint64
}

type ringEntry struct {
	seq uint64
	fa  Alert
}

// subscription is one Subscribe call's state.
type subscription struct {
	ch chan Alert
	// cut is closed by the feed, under its lock, when it drops the
	// subscription as too slow.
	cut chan struct{}
	// pos is the next offset per partition this subscriber is to get:
	// owned by the replay goroutine until the subscription is live, then
	// guarded by the feed's mu. Nil for a subscription from now.
	pos map[int32]int64
	// ahead is set while pos is past the feed's next in some partition (a
	// cursor from an instance whose feed is further along): live alerts
	// below pos are then skipped, and cursors take the larger offsets.
	ahead bool
}

// NewAlertFeed checks the options; Run reads the topic.
func NewAlertFeed(opts AlertFeedOptions) (*AlertFeed, error) {
	if len(opts.Brokers) == 0 {
		return nil, errors.New("alert feed: no brokers")
	}
	if opts.Topic == "" {
		return nil, errors.New("alert feed: no topic")
	}
	if opts.Recent < 0 || opts.Buffer < 0 || opts.PartitionRefresh < 0 {
		return nil, errors.New("alert feed: negative limit")
	}
	if opts.Recent == 0 {
		opts.Recent = DefaultRecentAlerts
	}
	if opts.Buffer == 0 {
		opts.Buffer = DefaultSubscriberBuffer
	}
	if opts.PartitionRefresh == 0 {
		opts.PartitionRefresh = DefaultPartitionRefresh
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &AlertFeed{
		opts:  opts,
		log:   opts.Logger,
		ready: make(chan struct{}),
		done:  make(chan struct{}),
		next:  make(map[int32]int64),
		first: make(map[int32]int64),
		subs:  make(map[*subscription]struct{}),
		ring:  make([]ringEntry, 0, min(opts.Recent, 1024)),
	}, nil
}

func (f *AlertFeed) kafkaOpts(more ...kgo.Opt) []kgo.Opt {
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(f.opts.Brokers...),
		kgo.ClientID("shrike-alert-feed"),
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
		// A subscription's replay consumer closes before Run returns.
		f.subsWG.Wait()
	}()
	cl, err := kgo.NewClient(f.kafkaOpts(
		// Records deleted under the feed by retention: go on from the
		// oldest left.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)...)
	if err != nil {
		return fmt.Errorf("alert feed: %w", err)
	}
	defer cl.Close()
	f.adm = kadm.NewClient(cl)

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
	starts, ends, err := f.listOffsets(lctx)
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
		f.next[p], f.first[p] = at, at
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
// partitions; a topic that does not exist has none.
func (f *AlertFeed) listOffsets(ctx context.Context) (starts, ends map[string]map[int32]int64, err error) {
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
	e, err := f.adm.ListEndOffsets(ctx, f.opts.Topic)
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
// feed's offsets, keeps them in the ring and fans them out.
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
	for _, d := range recs {
		p, o := d.r.Partition, d.r.Offset
		if o < f.next[p] {
			continue // a partition reset behind us (never expected): not twice
		}
		f.next[p] = o + 1
		if d.a == nil {
			continue
		}
		fa := Alert{Cursor: encodeCursor(f.next), Alert: d.a, Raw: d.r.Value}
		f.remember(fa)
		for s := range f.subs {
			sfa := fa
			if s.ahead {
				if o < s.pos[p] {
					continue
				}
				s.pos[p] = o + 1
				s.ahead = isAhead(s.pos, f.next)
				sfa.Cursor = encodeCursor(maxOffsets(s.pos, f.next))
			}
			select {
			case s.ch <- sfa:
			default:
				delete(f.subs, s)
				close(s.cut)
				f.log.Info("alert feed: subscriber cut off: too slow", "buffer", f.opts.Buffer)
			}
		}
	}
}

// remember keeps fa in the ring; f.mu is held.
func (f *AlertFeed) remember(fa Alert) {
	f.seq++
	e := ringEntry{seq: f.seq, fa: fa}
	if len(f.ring) < f.opts.Recent {
		f.ring = append(f.ring, e)
		return
	}
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
	s := &subscription{ch: make(chan Alert, f.opts.Buffer), cut: make(chan struct{}), pos: pos}
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
	if pos == nil {
		f.subs[s] = struct{}{}
	}
	f.subsWG.Add(1)
	go f.serve(ctx, s, pos != nil)
	return s.ch, nil
}

// checkCursor compares a cursor with the topic's offsets, and fills in
// the partitions it does not name with their start: the cursor was made
// before the feed read them, so all their alerts are new to it.
func (f *AlertFeed) checkCursor(ctx context.Context, pos map[int32]int64) error {
	starts, ends, err := f.listOffsets(ctx)
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

// serve runs one subscription: its replay, if any, then its wait while
// the feed delivers to it, then its end. It alone closes the channel,
// after removing the subscription from the feed under the lock, so that
// nothing is sent on a closed channel.
func (f *AlertFeed) serve(ctx context.Context, s *subscription, replay bool) {
	defer f.subsWG.Done()
	defer close(s.ch)
	var reason error
	if replay {
		reason = f.replayUntilLive(ctx, s)
	}
	if reason == nil {
		select {
		case <-ctx.Done():
		case <-s.cut:
			reason = ErrSlowSubscriber
		case <-f.done:
			reason = ErrFeedStopped
		}
	}
	f.mu.Lock()
	delete(f.subs, s)
	f.mu.Unlock()
	if reason == nil || ctx.Err() != nil {
		return
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
	// A slow subscriber gets the error after what it still has to read.
	select {
	case s.ch <- end:
	case <-ctx.Done():
	case <-f.done:
	}
}

// replayUntilLive runs replay under a context that also ends with the
// feed, so that a stopping feed does not wait for a replay's poll.
func (f *AlertFeed) replayUntilLive(ctx context.Context, s *subscription) error {
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-f.done:
			cancel()
		case <-rctx.Done():
		}
	})
	defer func() {
		cancel()
		wg.Wait()
	}()
	err := f.replay(rctx, s)
	if err != nil && ctx.Err() == nil && rctx.Err() != nil {
		return ErrFeedStopped
	}
	return err
}

// replayPoll bounds one poll of a replay consumer, so that it rechecks
// whether it has caught up when no record comes.
const replayPoll = 500 * time.Millisecond

// replay reads the alerts from s.pos with a consumer of its own until s
// has caught up with the feed, then adds s to the live subscribers. It
// returns nil once s is live, or why it could not get there.
func (f *AlertFeed) replay(ctx context.Context, s *subscription) error {
	var cl *kgo.Client
	defer func() {
		if cl != nil {
			cl.Close()
		}
	}()
	reading := make(map[int32]bool)
	for {
		add := make(map[int32]kgo.Offset)
		f.mu.Lock()
		if f.stopped {
			f.mu.Unlock()
			return ErrFeedStopped
		}
		lagging := false
		for p, n := range f.next {
			o, ok := s.pos[p]
			if !ok {
				// A partition the feed found after the subscription began.
				o = f.first[p]
				s.pos[p] = o
			}
			if o < n {
				lagging = true
				if !reading[p] {
					add[p] = kgo.NewOffset().At(o)
					reading[p] = true
				}
			}
		}
		if !lagging {
			s.ahead = isAhead(s.pos, f.next)
			f.subs[s] = struct{}{}
			f.mu.Unlock()
			return nil
		}
		f.mu.Unlock()

		if cl == nil {
			var err error
			cl, err = kgo.NewClient(f.kafkaOpts(
				kgo.ClientID("shrike-alert-replay"),
				kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{f.opts.Topic: add}),
				// Retention deleting what the replay still has to read
				// must fail it, not skip alerts silently.
				kgo.ConsumeResetOffset(kgo.NoResetOffset()),
			)...)
			if err != nil {
				return fmt.Errorf("alert feed: replay: %w", err)
			}
		} else if len(add) > 0 {
			cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{f.opts.Topic: add})
		}
		pctx, cancel := context.WithTimeout(ctx, replayPoll)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if ferr == nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				ferr = err
			}
		})
		if ferr != nil {
			if errors.Is(ferr, kgo.ErrClientClosed) {
				return ErrFeedStopped
			}
			// Offsets out of range: the alerts were deleted while the
			// replay read up to them.
			return fmt.Errorf("%w: %w", ErrCursorExpired, ferr)
		}
		var err error
		fs.EachRecord(func(r *kgo.Record) {
			if err != nil || r.Offset < s.pos[r.Partition] {
				return
			}
			s.pos[r.Partition] = r.Offset + 1
			a, perr := ParseAlert(r.Value)
			if perr != nil {
				return // the feed logs it
			}
			select {
			case s.ch <- Alert{Cursor: encodeCursor(s.pos), Alert: a, Raw: r.Value}:
			case <-ctx.Done():
				err = ctx.Err()
			case <-f.done:
				err = ErrFeedStopped
			}
		})
		if err != nil {
			return err
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

// isAhead reports whether pos is past next in some partition.
func isAhead(pos, next map[int32]int64) bool {
	for p, o := range pos {
		if o > next[p] {
			return true
		}
	}
	return false
}

func maxOffsets(a, b map[int32]int64) map[int32]int64 {
	out := maps.Clone(b)
	for p, o := range a {
		out[p] = max(out[p], o)
	}
	return out
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
