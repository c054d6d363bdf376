package cep

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"

	"github.com/shrike-cep/shrike/state"
)

// The deadline index of a stream tells a restarted worker which evicted
// keys to load when the watermark passes their deadline (the earliest
// window close of their state). It lives in the Store beside the key
// states, cut into buckets by deadline (below), each bucket a value of
// its own written in the same atomic commit as the key
// states: a checkpoint writes only the buckets that gained keys (as
// traffic goes, the few seconds of deadlines that new windows open), and
// deletes those left empty, whatever the number of keys; the checkpoint
// record lists only the buckets' numbers. A bucket that only lost keys
// (a key whose deadline moved or whose state emptied) is not written
// again for that: the Store's copy lists those keys until the bucket is
// written again, emptied, or passed by the watermark (its keys then load
// and move on). An entry left so costs a restart an early load of its key
// (keyCache.restore then corrects the index from the key's state), never
// a deadline missed: every key with an open window is in the bucket of
// its deadline. A bucket's Store name, deadlineBucketName, cannot be
// an event key's (those start with the stream's hexadecimal namespace).
//
// A bucket's value:
//
//	count              uvarint  keys, then per key, by deadline then key:
//	  key              uvarint length + bytes
//	  deadline         varint   delta from the previous deadline (the
//	                            first from the start of the bucket's
//	                            second)
//
// A second of deadlines is split into deadlineBucketSplit buckets by a
// hash of the key, so that a key moving into a second that holds many
// (its earlier window closed, and its next is the one of a partial match
// opened long ago) rewrites a small bucket, not a second's worth (hundreds
// of keys per partition with ten million accounts). Bucket n holds
// the deadlines of second n/deadlineBucketSplit (rounded down) of the
// keys whose hash is n mod deadlineBucketSplit.
const (
	deadlineBucketWidth = int64(1e9) // 1 s of event time (nanoseconds)
	deadlineBucketSplit = 16
)

// deadlineSecond is the second of deadline d, rounded down.
func deadlineSecond(d int64) int64 {
	s := d / deadlineBucketWidth
	if d%deadlineBucketWidth < 0 {
		s-- // floor, for deadlines before the epoch
	}
	return s
}

// deadlineBucket is the bucket of key with deadline d. The hash is part
// of the stored format: xxhash, the same in every process.
func deadlineBucket(key string, d int64) int64 {
	return deadlineSecond(d)*deadlineBucketSplit + int64(xxhash.Sum64String(key)%deadlineBucketSplit)
}

// bucketStart is the first deadline of bucket b's second.
func bucketStart(b int64) int64 {
	s := b / deadlineBucketSplit
	if b%deadlineBucketSplit < 0 {
		s--
	}
	return s * deadlineBucketWidth
}

// deadlineBucketPrefix starts the Store name of every bucket.
const deadlineBucketPrefix = "!deadlines:"

// deadlineBucketName is the Store name of bucket b of the stream whose
// keys are under namespace ns.
func deadlineBucketName(ns string, b int64) string {
	return deadlineBucketPrefix + ns + strconv.FormatInt(b, 10)
}

// encodeDeadlineBucket encodes bucket b, holding keys whose deadlines are
// in deadlines.
func encodeDeadlineBucket(b int64, keys map[string]struct{}, deadlines map[string]int64) []byte {
	type entry struct {
		key string
		d   int64
	}
	entries := make([]entry, 0, len(keys))
	size := binary.MaxVarintLen64
	for k := range keys {
		entries = append(entries, entry{k, deadlines[k]})
		size += 2*binary.MaxVarintLen64 + len(k)
	}
	// Sorted, the deltas are small and the bytes do not depend on map
	// order.
	slices.SortFunc(entries, func(x, y entry) int {
		if c := cmp.Compare(x.d, y.d); c != 0 {
			return c
		}
		return strings.Compare(x.key, y.key)
	})
	out := make([]byte, 0, size)
	out = binary.AppendUvarint(out, uint64(len(entries)))
	prev := bucketStart(b)
	for _, e := range entries {
		out = appendString(out, e.key)
		out = binary.AppendVarint(out, e.d-prev)
		prev = e.d
	}
	return out
}

// errDeadlineBucket wraps every error decoding a bucket.
var errDeadlineBucket = errors.New("bad deadline index bucket")

// decodeDeadlineBucket adds the keys of bucket b, encoded in data, to
// into with their deadlines.
func decodeDeadlineBucket(b int64, data []byte, into map[string]int64) error {
	r := byteReader{b: data}
	n := r.count()
	prev := bucketStart(b)
	for range n {
		k := r.string()
		prev += r.varint()
		if r.err != nil {
			break
		}
		if deadlineBucket(k, prev) != b {
			r.err = fmt.Errorf("deadline %d of %q outside the bucket", prev, k)
			break
		}
		into[k] = prev
	}
	if r.err == nil && len(r.b) > 0 {
		r.err = errors.New("trailing bytes")
	}
	if r.err != nil {
		return fmt.Errorf("%w %d: %w", errDeadlineBucket, b, r.err)
	}
	return nil
}

// bucketNumbers returns the buckets of the stream's deadline index, in
// order, for the checkpoint record.
func (c *keyCache) bucketNumbers() []int64 {
	bs := make([]int64, 0, len(c.buckets))
	for b := range c.buckets {
		bs = append(bs, b)
	}
	slices.Sort(bs)
	return bs
}

// restoreIndex loads the buckets of the stream's deadline index a
// checkpoint listed, in one Store call, and takes their keys as evicted
// with those deadlines. A bucket missing or undecodable is reported
// through bad and skipped: its keys load when an event asks for them
// rather than when their windows close.
func (c *keyCache) restoreIndex(ctx context.Context, st Store, pid state.PartitionID, buckets []int64, bad func(bucket int64, err error)) error {
	if len(buckets) == 0 {
		return nil
	}
	names := make([]string, len(buckets))
	for i, b := range buckets {
		names[i] = deadlineBucketName(c.ns, b)
	}
	got, err := st.LoadKeys(ctx, pid, names)
	if err != nil {
		return fmt.Errorf("load deadline index: %w", err)
	}
	deadlines := map[string]int64{}
	var rewrite []int64
	for i, b := range buckets {
		data, ok := got[names[i]]
		if !ok {
			bad(b, fmt.Errorf("%w %d: not in the Store", errDeadlineBucket, b))
			rewrite = append(rewrite, b)
			continue
		}
		if err := decodeDeadlineBucket(b, data, deadlines); err != nil {
			bad(b, err)
			rewrite = append(rewrite, b)
		}
	}
	c.restoreDeadlines(deadlines)
	// Restored, the buckets are the Store's already, but for those that
	// were bad: the next checkpoint rewrites (or deletes) them.
	clear(c.dirty)
	for _, b := range rewrite {
		c.dirty[b] = true
	}
	return nil
}
