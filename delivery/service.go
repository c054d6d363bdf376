package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sync/errgroup"
)

// Defaults of Options.
const (
	DefaultAlertsTopic      = "shrike-alerts"
	DefaultUndeliveredTopic = "shrike-alerts-undelivered"
	DefaultGroup            = "shrike"
	// DefaultCommitInterval is how often each webhook commits the offsets
	// of the alerts whose delivery ended: what a crash makes it deliver
	// again.
	DefaultCommitInterval = time.Second
	// DefaultSessionTimeout is the consumer groups' session timeout.
	DefaultSessionTimeout = 10 * time.Second
	// DefaultUserAgent is the User-Agent of every delivery.
	DefaultUserAgent = "Shrike-Webhook/1"
)

// Headers of a record of the undelivered topic. Its key and value are the
// alert record's, unchanged.
const (
	// UndeliveredWebhook names the webhook that could not deliver it.
	UndeliveredWebhook = "shrike-webhook"
	// UndeliveredReason is the last attempt's error.
	UndeliveredReason = "shrike-reason"
	// UndeliveredAttempts is how many attempts were made (0 for a record
	// that is not an alert).
	UndeliveredAttempts = "shrike-attempts"
	// UndeliveredSource is the alert's position: topic/partition/offset.
	UndeliveredSource = "shrike-source"
)

// Options configure New. Zero values are the documented defaults.
type Options struct {
	// Brokers are the seed brokers, host:port. Required.
	Brokers []string
	// AlertsTopic is read; default DefaultAlertsTopic.
	AlertsTopic string
	// UndeliveredTopic receives the alerts a webhook gave up on; default
	// DefaultUndeliveredTopic.
	UndeliveredTopic string
	// Group is the engine's consumer group: webhook NAME reads in the
	// group GroupName(Group, NAME). Default DefaultGroup.
	Group string
	// Webhooks are delivered to, each independently of the others.
	Webhooks []Webhook
	// CommitInterval: default DefaultCommitInterval.
	CommitInterval time.Duration
	// SessionTimeout: default DefaultSessionTimeout.
	SessionTimeout time.Duration
	// UserAgent: default DefaultUserAgent.
	UserAgent string
	// Logger: default discard.
	Logger *slog.Logger
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
	// KafkaOptions are further franz-go options for every client (TLS,
	// SASL, metrics), applied last.
	KafkaOptions []kgo.Opt
}

// GroupName is the consumer group of a webhook: "<group>-webhooks-<name>",
// so that each webhook keeps its own place in the alerts topic and a
// receiver that is down holds back no other.
func GroupName(group, webhook string) string { return group + "-webhooks-" + webhook }

// Service delivers the alerts of the alerts topic to webhooks.
type Service struct {
	opts     Options
	log      *slog.Logger
	producer *kgo.Client
	hooks    []*runner
}

// metrics are the series of one webhook.
type metrics struct {
	delivered, failed, retries, filterErrors prometheus.Counter
	latency                                  prometheus.Observer
}

// New checks the webhooks, compiles their filters and makes the Kafka
// clients (which connect lazily); Run delivers. Close releases them.
func New(o Options) (_ *Service, err error) {
	if len(o.Brokers) == 0 {
		return nil, errors.New("delivery: no brokers")
	}
	if o.AlertsTopic == "" {
		o.AlertsTopic = DefaultAlertsTopic
	}
	if o.UndeliveredTopic == "" {
		o.UndeliveredTopic = DefaultUndeliveredTopic
	}
	if o.Group == "" {
		o.Group = DefaultGroup
	}
	if o.CommitInterval <= 0 {
		o.CommitInterval = DefaultCommitInterval
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = DefaultSessionTimeout
	}
	if o.UserAgent == "" {
		o.UserAgent = DefaultUserAgent
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{opts: o, log: o.Logger}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	deliveries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shrike_webhook_deliveries_total",
		Help: "Alerts whose delivery to a webhook ended: delivered (a 2xx answer), or failed (sent to the undelivered topic).",
	}, []string{"webhook", "result"})
	retries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shrike_webhook_retries_total",
		Help: "Attempts to deliver an alert to a webhook after its first.",
	}, []string{"webhook"})
	filterErrors := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shrike_webhook_filter_errors_total",
		Help: "Alerts a webhook's filter failed on (a missing field, the cost limit), which the webhook does not get.",
	}, []string{"webhook"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "shrike_webhook_delivery_seconds",
		Help:    "Time from an alert's first attempt to its delivery or its failure, retries included.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
	}, []string{"webhook"})
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{deliveries, retries, filterErrors, latency} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("delivery: register metrics: %w", err)
			}
		}
	}
	s.producer, err = kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(o.Brokers...),
		kgo.ClientID("shrike-webhooks"),
		kgo.AllowAutoTopicCreation(),
		kgo.ProducerLinger(0),
	}, o.KafkaOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("delivery: kafka producer: %w", err)
	}
	names := map[string]bool{}
	for _, w := range o.Webhooks {
		w.fill()
		if err := w.check(); err != nil {
			return nil, fmt.Errorf("webhook %q: %w", w.Name, err)
		}
		if names[w.Name] {
			return nil, fmt.Errorf("webhook %q: the name is used twice", w.Name)
		}
		names[w.Name] = true
		f, err := CompileFilter(w.Filter)
		if err != nil {
			return nil, fmt.Errorf("webhook %q: filter: %w", w.Name, err)
		}
		snd, err := newSender(w, o.UserAgent)
		if err != nil {
			return nil, err
		}
		r := &runner{
			svc: s, hook: w, filter: f, send: snd,
			group:  GroupName(o.Group, w.Name),
			log:    s.log.With("webhook", w.Name),
			sem:    make(chan struct{}, w.MaxInFlight),
			parts:  map[topicPartition]*partition{},
			popped: make(chan struct{}, 1),
			m: metrics{
				// Every series exists from the start, at 0, so that rates
				// and alerting rules work before the first delivery.
				delivered:    deliveries.WithLabelValues(w.Name, "delivered"),
				failed:       deliveries.WithLabelValues(w.Name, "failed"),
				retries:      retries.WithLabelValues(w.Name),
				filterErrors: filterErrors.WithLabelValues(w.Name),
				latency:      latency.WithLabelValues(w.Name),
			},
		}
		// The consumer is made in run, after initGroup: a group member
		// joins as soon as its client exists.
		r.clientOpts = append([]kgo.Opt{
			kgo.SeedBrokers(o.Brokers...),
			kgo.ClientID("shrike-webhook-" + w.Name),
			kgo.ConsumerGroup(r.group),
			kgo.ConsumeTopics(o.AlertsTopic),
			// Alerts of aborted transactions are never delivered; alerts
			// written outside transactions are read all the same.
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			// A partition without a committed offset starts at its
			// beginning; initGroup commits the end of the topic first for
			// a new webhook, so this covers partitions added later.
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.DisableAutoCommit(),
			kgo.BlockRebalanceOnPoll(),
			kgo.SessionTimeout(o.SessionTimeout),
			kgo.OnPartitionsAssigned(r.assigned),
			kgo.OnPartitionsRevoked(r.revoked),
			kgo.OnPartitionsLost(r.lost),
			// Alerts are at most about 1 MB; a fetch need not hold more
			// than a few dozen of them.
			kgo.FetchMaxBytes(16 << 20),
		}, o.KafkaOptions...)
		// Options are checked now, so that New reports what Run would.
		if err := kgo.ValidateOpts(r.clientOpts...); err != nil {
			return nil, fmt.Errorf("webhook %q: kafka client: %w", w.Name, err)
		}
		s.hooks = append(s.hooks, r)
	}
	return s, nil
}

// Run delivers until ctx ends, then commits what was delivered. Deliveries
// in progress are abandoned: whichever instance next owns their
// partitions delivers them again.
func (s *Service) Run(ctx context.Context) error {
	var g errgroup.Group
	for _, r := range s.hooks {
		g.Go(func() error { return r.run(ctx) })
	}
	return g.Wait()
}

// Close releases the Kafka clients: each webhook's consumer leaves its
// group.
func (s *Service) Close() {
	for _, r := range s.hooks {
		if r.client != nil {
			r.client.Close()
		}
	}
	if s.producer != nil {
		s.producer.Close()
	}
}

type topicPartition struct {
	topic string
	part  int32
}

// partition is the delivery state of one assigned partition.
type partition struct {
	// pending are the polled records whose delivery has not ended and
	// those behind them, in offset order.
	pending []*entry
	// commit is the offset after the last record of an unbroken run of
	// ended deliveries from the partition's start; dirty says it was not
	// committed yet.
	commit kgo.EpochOffset
	dirty  bool
	// gone: the partition was revoked or lost; its entries' outcomes are
	// not committed by this instance.
	gone bool
}

type entry struct {
	rec  *kgo.Record
	part *partition
	done bool
}

// runner delivers to one webhook.
type runner struct {
	svc    *Service
	hook   Webhook
	filter *Filter
	send   *sender
	group  string
	log    *slog.Logger
	m      metrics
	// clientOpts make client, the group consumer, in run; Close closes it.
	clientOpts []kgo.Opt
	client     *kgo.Client
	// sem holds a token per delivery in progress.
	sem chan struct{}
	// wg counts the deliveries' goroutines.
	wg sync.WaitGroup

	// mu guards parts, what they hold, and pending. The rebalance
	// callbacks take it too, so that an outcome is never recorded into a
	// partition after its revocation was committed.
	mu    sync.Mutex
	parts map[topicPartition]*partition
	// pending counts the entries of every partition's queue: the poll
	// loop polls only while it is under maxPending, so that one alert
	// retrying for long does not let the queue behind it grow without
	// bound. popped is signalled when entries leave the queues.
	pending int
	popped  chan struct{}
}

// maxPendingPerSlot bounds the queued records of a webhook, ended or not,
// per max_in_flight slot. An ended record waiting behind one still being
// delivered holds only its position.
const maxPendingPerSlot = 256

func (r *runner) run(ctx context.Context) error {
	// Until the group's start is known the consumer must not join: a new
	// group joining first would start at the topic's beginning and send
	// its whole history.
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		err := r.initGroup(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		r.log.Warn("webhook: cannot read the group's offsets yet; retrying", "group", r.group, "err", err)
		if sleepCtx(ctx, wait) != nil {
			return nil
		}
	}
	var err error
	if r.client, err = kgo.NewClient(r.clientOpts...); err != nil {
		return fmt.Errorf("webhook %q: kafka client: %w", r.hook.Name, err)
	}
	deliverCtx, abandon := context.WithCancel(context.WithoutCancel(ctx))
	defer abandon()
	commitDone := make(chan struct{})
	commitCtx, stopCommits := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		defer close(commitDone)
		r.commitLoop(commitCtx)
	}()
	r.log.Info("webhook delivering", "group", r.group, "url", r.send.origin, "format", r.hook.Format)
	r.pollLoop(ctx, deliverCtx)
	abandon()
	r.wg.Wait()
	stopCommits()
	<-commitDone
	// The last commit, of everything that ended before the deliveries in
	// progress were abandoned.
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r.commit(cctx)
	return nil
}

func (r *runner) pollLoop(ctx, deliverCtx context.Context) {
	for {
		room := r.room(ctx)
		if room == 0 {
			return
		}
		fetches := r.client.PollRecords(ctx, min(room, r.hook.MaxInFlight))
		if fetches.IsClientClosed() || ctx.Err() != nil {
			r.client.AllowRebalance()
			return
		}
		failed := false
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				failed = true
				r.log.Warn("webhook: fetch failed", "topic", topic, "partition", p, "err", err)
			}
		})
		if failed && fetches.NumRecords() == 0 {
			// An error that comes back at once (authorization, a missing
			// topic) must not turn the loop into a busy one.
			r.client.AllowRebalance()
			if sleepCtx(ctx, time.Second) != nil {
				return
			}
			continue
		}
		// While the poll holds off rebalances, the records' partitions are
		// the assigned ones: each record joins its partition's queue.
		var batch []*entry
		r.mu.Lock()
		fetches.EachRecord(func(rec *kgo.Record) {
			tp := topicPartition{rec.Topic, rec.Partition}
			p := r.parts[tp]
			if p == nil {
				p = &partition{}
				r.parts[tp] = p
			}
			e := &entry{rec: rec, part: p}
			p.pending = append(p.pending, e)
			r.pending++
			batch = append(batch, e)
		})
		r.mu.Unlock()
		r.client.AllowRebalance()
		for _, e := range batch {
			select {
			case r.sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			r.mu.Lock()
			gone := e.part.gone
			r.mu.Unlock()
			if gone {
				<-r.sem
				continue
			}
			r.wg.Add(1)
			go r.handle(deliverCtx, e)
		}
	}
}

// handle delivers one alert and records the outcome.
func (r *runner) handle(ctx context.Context, e *entry) {
	defer r.wg.Done()
	defer func() { <-r.sem }()
	rec := e.rec
	id := string(rec.Key)
	alert, err := decodeAlert(rec.Value)
	attempts := 0
	start := time.Now()
	if err == nil {
		if id == "" {
			id = str(alert, "id")
		}
		pass, ferr := r.filter.Match(alert)
		if ferr != nil {
			r.m.filterErrors.Inc()
			r.log.Debug("webhook: filter failed", "alert_id", id, "err", ferr)
		}
		if !pass {
			r.ended(e)
			return
		}
		var b []byte
		if b, err = body(r.hook.Format, r.hook.Secret, rec.Value, alert); err == nil {
			attempts, err = r.send.deliver(ctx, id, b, r.m.retries.Inc)
		}
	}
	if err == nil {
		r.m.delivered.Inc()
		r.m.latency.Observe(time.Since(start).Seconds())
		r.ended(e)
		return
	}
	if ctx.Err() != nil {
		return // abandoned at shutdown: not ended, so not committed
	}
	r.log.Warn("webhook: alert undeliverable, sending it to the undelivered topic",
		"alert_id", id, "attempts", attempts, "topic", r.svc.opts.UndeliveredTopic, "err", err)
	if !r.deadLetter(ctx, rec, attempts, err) {
		return
	}
	r.m.failed.Inc()
	r.m.latency.Observe(time.Since(start).Seconds())
	r.ended(e)
}

// deadLetter produces the alert to the undelivered topic, trying until
// the broker takes it or ctx ends (false).
func (r *runner) deadLetter(ctx context.Context, rec *kgo.Record, attempts int, cause error) bool {
	out := &kgo.Record{
		Topic: r.svc.opts.UndeliveredTopic,
		Key:   rec.Key,
		Value: rec.Value,
		Headers: []kgo.RecordHeader{
			{Key: UndeliveredWebhook, Value: []byte(r.hook.Name)},
			{Key: UndeliveredReason, Value: []byte(cause.Error())},
			{Key: UndeliveredAttempts, Value: []byte(strconv.Itoa(attempts))},
			{Key: UndeliveredSource, Value: fmt.Appendf(nil, "%s/%d/%d", rec.Topic, rec.Partition, rec.Offset)},
		},
	}
	wait := time.Second
	for {
		err := r.svc.producer.ProduceSync(ctx, out).FirstErr()
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		r.log.Warn("webhook: produce to the undelivered topic failed; retrying", "topic", out.Topic, "err", err)
		if sleepCtx(ctx, wait) != nil {
			return false
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// ended records that e's delivery ended (delivered, filtered out or
// dead-lettered), and moves its partition's commit past every ended
// record at the head of its queue.
func (r *runner) ended(e *entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e.done = true
	// Only the position is needed from now on.
	e.rec = &kgo.Record{Offset: e.rec.Offset, LeaderEpoch: e.rec.LeaderEpoch}
	p := e.part
	if p.gone {
		return
	}
	n := 0
	for len(p.pending) > 0 && p.pending[0].done {
		rec := p.pending[0].rec
		p.pending[0] = nil
		p.pending = p.pending[1:]
		p.commit = kgo.EpochOffset{Epoch: rec.LeaderEpoch, Offset: rec.Offset + 1}
		p.dirty = true
		n++
	}
	r.release(n)
}

// release takes n entries off the pending count; mu is held.
func (r *runner) release(n int) {
	if n == 0 {
		return
	}
	r.pending -= n
	select {
	case r.popped <- struct{}{}:
	default:
	}
}

// room waits until the queues hold fewer than their bound and returns
// how many more records they may take; 0 when ctx ends.
func (r *runner) room(ctx context.Context) int {
	limit := maxPendingPerSlot * r.hook.MaxInFlight
	for {
		r.mu.Lock()
		room := limit - r.pending
		r.mu.Unlock()
		if room > 0 {
			return room
		}
		select {
		case <-r.popped:
		case <-ctx.Done():
			return 0
		}
	}
}

// take returns the uncommitted offsets of the partitions of ps (all
// assigned ones when nil), marking them committed; with drop, those
// partitions are forgotten and their later outcomes ignored.
func (r *runner) take(ps map[string][]int32, drop bool) map[string]map[int32]kgo.EpochOffset {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]map[int32]kgo.EpochOffset{}
	visit := func(tp topicPartition, p *partition) {
		if p.dirty {
			if out[tp.topic] == nil {
				out[tp.topic] = map[int32]kgo.EpochOffset{}
			}
			out[tp.topic][tp.part] = p.commit
			p.dirty = false
		}
		if drop {
			p.gone = true
			r.release(len(p.pending))
			p.pending = nil
			delete(r.parts, tp)
		}
	}
	if ps == nil {
		for tp, p := range r.parts {
			visit(tp, p)
		}
		return out
	}
	for topic, parts := range ps {
		for _, n := range parts {
			tp := topicPartition{topic, n}
			if p := r.parts[tp]; p != nil {
				visit(tp, p)
			}
		}
	}
	return out
}

// commit commits the offsets that moved since the last commit. A failed
// commit marks them to be committed again.
func (r *runner) commit(ctx context.Context) {
	offsets := r.take(nil, false)
	if len(offsets) == 0 {
		return
	}
	r.commitOffsets(ctx, offsets)
}

func (r *runner) commitOffsets(ctx context.Context, offsets map[string]map[int32]kgo.EpochOffset) {
	r.client.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err == nil {
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if err = kerr.ErrorForCode(p.ErrorCode); err != nil {
						break
					}
				}
			}
		}
		if err == nil {
			return
		}
		if ctx.Err() == nil {
			r.log.Warn("webhook: offset commit failed; alerts delivered since the last commit may be delivered again", "group", r.group, "err", err)
		}
		r.mu.Lock()
		for topic, ps := range offsets {
			for n := range ps {
				if p := r.parts[topicPartition{topic, n}]; p != nil {
					p.dirty = true
				}
			}
		}
		r.mu.Unlock()
	})
}

func (r *runner) commitLoop(ctx context.Context) {
	t := time.NewTicker(r.svc.opts.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.commit(ctx)
		}
	}
}

func (r *runner) assigned(_ context.Context, _ *kgo.Client, ps map[string][]int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for topic, parts := range ps {
		for _, n := range parts {
			tp := topicPartition{topic, n}
			if r.parts[tp] == nil {
				r.parts[tp] = &partition{}
			}
		}
	}
}

// revoked commits what ended in the revoked partitions, so that their
// next owner starts after it, and forgets them: the outcomes of their
// deliveries still in progress are not committed (the next owner
// delivers those alerts again).
func (r *runner) revoked(ctx context.Context, cl *kgo.Client, ps map[string][]int32) {
	if offsets := r.take(ps, true); len(offsets) > 0 {
		r.commitOffsets(ctx, offsets)
	}
}

// lost forgets the partitions without committing: the group already
// gave them to another member.
func (r *runner) lost(_ context.Context, _ *kgo.Client, ps map[string][]int32) {
	r.take(ps, true)
}

// initGroup starts a new webhook at the end of the alerts topic: when its
// group has no committed offset, it commits the topic's last stable
// offsets, so that the webhook delivers the alerts produced from now on
// rather than the topic's whole history. Best effort: two instances
// starting a new webhook at the same moment may both commit, each a
// position at its start.
func (r *runner) initGroup(ctx context.Context) error {
	adm := kadm.NewClient(r.svc.producer)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	committed, err := adm.FetchOffsets(ctx, r.group)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return fmt.Errorf("fetch offsets: %w", err)
	}
	has := false
	committed.Each(func(o kadm.OffsetResponse) {
		if o.Err == nil && o.At >= 0 {
			has = true
		}
	})
	if has {
		return nil
	}
	listed, err := adm.ListCommittedOffsets(ctx, r.svc.opts.AlertsTopic)
	if err != nil {
		return fmt.Errorf("list offsets: %w", err)
	}
	start := kadm.Offsets{}
	for _, ps := range listed {
		for _, l := range ps {
			switch {
			case errors.Is(l.Err, kerr.UnknownTopicOrPartition):
				// No alerts topic yet: nothing to skip.
			case l.Err != nil:
				return fmt.Errorf("list offsets: %w", l.Err)
			case l.Partition >= 0:
				start.Add(kadm.Offset{Topic: l.Topic, Partition: l.Partition, At: l.Offset, LeaderEpoch: -1})
			}
		}
	}
	if len(start) == 0 {
		return nil
	}
	resp, err := adm.CommitOffsets(ctx, r.group, start)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("commit start offsets: %w", err)
	}
	r.log.Info("webhook: new group starts at the end of the alerts topic", "group", r.group)
	return nil
}
