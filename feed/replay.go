package feed

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	// replayFetchBytes bounds one replay read: the most a subscriber
	// behind the ring holds of Kafka's data at a time.
	replayFetchBytes = 1 << 20
	// replayRetry is the pause before a replay read is tried again after
	// it found nothing, or after the partition's leader moved.
	replayRetry = 100 * time.Millisecond
	// replayAttempts bounds the tries of one read whose leader is not
	// where the metadata said.
	replayAttempts = 5
)

// replayReader reads alert records at given offsets for subscribers
// behind the feed's ring, for all of them with one Kafka client: each read
// is a Fetch request of one partition from one offset to that partition's
// leader, with no consumer state, so that any number of subscribers at
// any positions share the client and its connections. At most `fetches`
// reads are in flight; a read's decoded alerts are kept (up to cacheBytes)
// for the next subscriber at the same position, and concurrent reads of
// the same position are made once, so that subscribers replaying the same
// history together read and decode it once.
type replayReader struct {
	cl    *kgo.Client
	adm   *kadm.Client
	topic string
	// committed reads only committed transactions' records, as the
	// feed's live client does (AlertFeedOptions.ReadCommitted).
	committed bool
	sem       chan struct{}
	max       int

	mu sync.Mutex
	// id and leaders come from the topic's metadata, loaded on first use
	// and again when a leader moves.
	id      kadm.TopicID
	leaders map[int32]int32
	// chunks are the reads kept or in flight, by partition and offset,
	// evicted oldest first past max bytes.
	chunks map[chunkKey]*chunk
	order  []kept
	bytes  int
}

// kept is a read in the order it was made, for eviction.
type kept struct {
	k chunkKey
	c *chunk
}

// maxKept bounds the reads kept, besides their bytes.
const maxKept = 4096

type chunkKey struct {
	part int32
	off  int64
}

// chunk is one read: the records of a partition from an offset.
type chunk struct {
	done chan struct{} // closed once recs, next and err are set
	recs []chunkRecord
	// next is the offset to read on from; end the partition's readable
	// end when it was read: its high watermark, or reading committed
	// records its last stable offset, past which a read finds nothing
	// until the open transaction ends.
	next, end int64
	size      int
	err       error
	// counted is set while size is in the reader's bytes; under its mu.
	counted bool
}

// chunkRecord is one record of a read; fa.Alert is nil for a record that
// is not an alert.
type chunkRecord struct {
	off int64
	fa  Alert
}

func newReplayReader(opts []kgo.Opt, topic string, committed bool, fetches, cacheBytes int) (*replayReader, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("replay client: %w", err)
	}
	return &replayReader{
		cl:        cl,
		adm:       kadm.NewClient(cl),
		topic:     topic,
		committed: committed,
		sem:       make(chan struct{}, fetches),
		max:       cacheBytes,
		chunks:    make(map[chunkKey]*chunk),
	}, nil
}

func (r *replayReader) close() { r.cl.Close() }

// read returns the records of partition p from offset off: a read kept
// from before, one in flight, or a new one.
func (r *replayReader) read(ctx context.Context, p int32, off int64) (*chunk, error) {
	for {
		c, err := r.readOnce(ctx, p, off)
		// A read in flight for another subscriber that left fails with
		// that subscriber's context: this one makes its own.
		if err != nil && ctx.Err() == nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			continue
		}
		return c, err
	}
}

func (r *replayReader) readOnce(ctx context.Context, p int32, off int64) (*chunk, error) {
	k := chunkKey{p, off}
	r.mu.Lock()
	c, ok := r.chunks[k]
	if !ok {
		c = &chunk{done: make(chan struct{})}
		r.chunks[k] = c
		r.order = append(r.order, kept{k, c})
	}
	r.mu.Unlock()
	if ok {
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if c.err != nil {
			return nil, c.err
		}
		return c, nil
	}
	c.err = r.fill(ctx, c, p, off)
	close(c.done)
	r.mu.Lock()
	if c.err != nil || len(c.recs) == 0 {
		// Failures are not kept, nor reads that found nothing yet: the
		// next subscriber tries again.
		if r.chunks[k] == c {
			delete(r.chunks, k)
		}
	} else if r.chunks[k] == c {
		r.bytes += c.size
		c.counted = true
	}
	r.evict()
	r.mu.Unlock()
	if c.err != nil {
		return nil, c.err
	}
	return c, nil
}

// evict drops the oldest reads past the bounds; r.mu is held. A read in
// flight is dropped from the map only; its waiters keep it.
func (r *replayReader) evict() {
	for (r.bytes > r.max || len(r.order) > maxKept) && len(r.order) > 0 {
		o := r.order[0]
		r.order[0] = kept{}
		r.order = r.order[1:]
		if r.chunks[o.k] == o.c {
			delete(r.chunks, o.k)
		}
		if o.c.counted {
			r.bytes -= o.c.size
			o.c.counted = false
		}
	}
	if len(r.order) == 0 {
		r.order = nil // let the backing array go
	}
}

// fill makes one read into c, in turn with the other reads in flight.
func (r *replayReader) fill(ctx context.Context, c *chunk, p int32, off int64) error {
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-r.sem }()
	var last error
	for range replayAttempts {
		rp, err := r.fetch(ctx, p, off)
		if err == nil {
			return r.decode(c, rp, p, off)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		last = err
		if errors.Is(err, kerr.OffsetOutOfRange) {
			return fmt.Errorf("%w: partition %d, offset %d: %w", ErrCursorExpired, p, off, err)
		}
		if errors.Is(err, kgo.ErrClientClosed) {
			return err
		}
		// A moved leader, a broker restarting: look the leaders up again.
		r.mu.Lock()
		r.leaders = nil
		r.mu.Unlock()
		t := time.NewTimer(replayRetry)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	return fmt.Errorf("alert feed: replay read of partition %d at offset %d: %w", p, off, last)
}

// fetch sends one Fetch request for partition p from off to its leader.
func (r *replayReader) fetch(ctx context.Context, p int32, off int64) (*kmsg.FetchResponseTopicPartition, error) {
	leader, id, err := r.leader(ctx, p)
	if err != nil {
		return nil, err
	}
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis = 0 // the records are there: answer at once
	req.MinBytes = 1
	req.MaxBytes = replayFetchBytes
	if r.committed {
		// read_committed: the broker answers up to the last stable
		// offset, with the aborted transactions decode drops.
		req.IsolationLevel = 1
	}
	t := kmsg.NewFetchRequestTopic()
	t.Topic = r.topic
	t.TopicID = id
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition = p
	rp.FetchOffset = off
	rp.PartitionMaxBytes = replayFetchBytes
	t.Partitions = append(t.Partitions, rp)
	req.Topics = append(req.Topics, t)
	kresp, err := r.cl.Broker(int(leader)).RetriableRequest(ctx, req)
	if err != nil {
		return nil, err
	}
	resp := kresp.(*kmsg.FetchResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, err
	}
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			part := &resp.Topics[i].Partitions[j]
			if part.Partition != p {
				continue
			}
			if err := kerr.ErrorForCode(part.ErrorCode); err != nil {
				return nil, err
			}
			return part, nil
		}
	}
	return nil, fmt.Errorf("fetch response without partition %d", p)
}

// leader returns the leader of partition p and the topic's id, from the
// metadata loaded on first use or after a failed read.
func (r *replayReader) leader(ctx context.Context, p int32) (int32, kadm.TopicID, error) {
	r.mu.Lock()
	l, ok := r.leaders[p]
	id := r.id
	r.mu.Unlock()
	if ok {
		return l, id, nil
	}
	md, err := r.adm.Metadata(ctx, r.topic)
	if err != nil {
		return 0, id, fmt.Errorf("metadata: %w", err)
	}
	td, ok := md.Topics[r.topic]
	if !ok {
		return 0, id, fmt.Errorf("metadata: no topic %s", r.topic)
	}
	if td.Err != nil {
		return 0, id, fmt.Errorf("metadata of topic %s: %w", r.topic, td.Err)
	}
	leaders := make(map[int32]int32, len(td.Partitions))
	for _, pd := range td.Partitions {
		if pd.Err == nil && pd.Leader >= 0 {
			leaders[pd.Partition] = pd.Leader
		}
	}
	r.mu.Lock()
	r.leaders, r.id = leaders, td.ID
	r.mu.Unlock()
	l, ok = leaders[p]
	if !ok {
		return 0, td.ID, fmt.Errorf("partition %d of topic %s has no leader", p, r.topic)
	}
	return l, td.ID, nil
}

// decode fills c with the records of a fetched partition from off.
func (r *replayReader) decode(c *chunk, rp *kmsg.FetchResponseTopicPartition, p int32, off int64) error {
	o := kgo.ProcessFetchPartitionOpts{Topic: r.topic, Partition: p, Offset: off, IsolationLevel: kgo.ReadUncommitted()}
	if r.committed {
		o.IsolationLevel = kgo.ReadCommitted()
	}
	// next is past the control records and, reading committed, the
	// aborted records too: a read of only those moves on.
	fp, next := kgo.ProcessFetchPartition(o, rp, kgo.DefaultDecompressor(), nil)
	if fp.Err != nil {
		return fp.Err
	}
	c.next = max(next, off)
	c.end = rp.HighWatermark
	if r.committed && rp.LastStableOffset >= 0 {
		c.end = rp.LastStableOffset
	}
	for _, rec := range fp.Records {
		cr := chunkRecord{off: rec.Offset}
		c.size += len(rec.Value) + 64
		// A record that is not an alert is skipped; the feed logs it.
		if a, err := ParseAlert(rec.Value); err == nil {
			cr.fa = Alert{Alert: a, Raw: rec.Value, shared: &shared{}}
			// Decoded, and converted by the API (Shared), an alert takes
			// several times its JSON.
			c.size += 6 * len(rec.Value)
		}
		c.recs = append(c.recs, cr)
		c.next = max(c.next, rec.Offset+1)
	}
	return nil
}
