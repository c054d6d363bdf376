package cep

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/cespare/xxhash/v2"

	"github.com/shrike-cep/shrike/matcher"
)

// streamNamespace is the prefix of a stream's keys in the Store: a short
// hash of the stream's identity, so that streams that share a partition
// (rulesets reading one topic with different keys) keep their keys apart,
// and a stream whose identity changes does not read another's state.
func streamNamespace(id string) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], xxhash.Sum64String(id))
	return hex.EncodeToString(b[:4]) + ":"
}

// The engine's part of a Store checkpoint (state.Checkpoint.Streams),
// versioned so that a newer Shrike reads an older checkpoint:
//
//	version            uvarint (2)
//	readTo             varint   offset after the last record read
//	streams            uvarint  count, then per stream:
//	  namespace        uvarint length + bytes
//	  watermark        varint   matcher.Checkpoint
//	  maxTime          varint
//	  seq              uvarint
//	  bucketWidth      uvarint  event time a second of the deadline index spans
//	  bucketSplit      uvarint  buckets a second is split into by key hash
//	  buckets          uvarint  count, then per bucket of the deadline
//	                            index (deadlineindex.go), ascending:
//	    bucket         varint   delta from the previous bucket number
//
// Version 1 carried the deadline index itself instead of bucketWidth and
// buckets, every key with an open window written at every checkpoint:
//
//	deadlines        uvarint  count, then per key, by deadline:
//	  key            uvarint length + bytes
//	  deadline       varint   delta from the previous deadline
//
// A worker restored from version 1 writes its whole index into buckets at
// its first checkpoint.
const streamsVersion = 2

// savedStreams is a decoded checkpoint's engine part.
type savedStreams struct {
	readTo  int64
	streams map[string]savedStream // by namespace
}

// savedStream is a stream of a checkpoint: its deadline index is either
// the buckets to load from the Store (version 2) or, from version 1, the
// index itself.
type savedStream struct {
	cp        matcher.Checkpoint
	buckets   []int64
	deadlines map[string]int64
}

// encodeStreams encodes a worker's streams for a checkpoint.
func encodeStreams(sps []*streamPart, readTo int64) []byte {
	// Bytes of the fixed fields, at their longest.
	const headerMax = 3 * binary.MaxVarintLen64
	const streamMax = 7 * binary.MaxVarintLen64
	buckets := make([][]int64, len(sps))
	size := headerMax
	for i, sp := range sps {
		buckets[i] = sp.keys.bucketNumbers()
		size += streamMax + len(sp.keys.ns) + len(buckets[i])*binary.MaxVarintLen64
	}
	b := make([]byte, 0, size)
	b = binary.AppendUvarint(b, streamsVersion)
	b = binary.AppendVarint(b, readTo)
	b = binary.AppendUvarint(b, uint64(len(sps)))
	for i, sp := range sps {
		b = appendString(b, sp.keys.ns)
		cp := sp.s.part.Checkpoint()
		b = binary.AppendVarint(b, cp.Watermark)
		b = binary.AppendVarint(b, cp.MaxTime)
		b = binary.AppendUvarint(b, cp.Seq)
		b = binary.AppendUvarint(b, uint64(deadlineBucketWidth))
		b = binary.AppendUvarint(b, deadlineBucketSplit)
		b = binary.AppendUvarint(b, uint64(len(buckets[i])))
		var prev int64
		for _, n := range buckets[i] {
			b = binary.AppendVarint(b, n-prev)
			prev = n
		}
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// errStreams wraps every error decoding a checkpoint's streams.
var errStreams = errors.New("bad checkpoint streams")

// decodeStreams decodes what encodeStreams wrote, in any version up to
// streamsVersion.
func decodeStreams(b []byte) (savedStreams, error) {
	d := byteReader{b: b}
	v := d.uvarint()
	if d.err == nil && (v == 0 || v > streamsVersion) {
		return savedStreams{}, fmt.Errorf("%w: version %d", errStreams, v)
	}
	out := savedStreams{readTo: d.varint(), streams: map[string]savedStream{}}
	n := d.count()
	for range n {
		ns := d.string()
		var ss savedStream
		ss.cp.Watermark = d.varint()
		ss.cp.MaxTime = d.varint()
		ss.cp.Seq = d.uvarint()
		if v == 1 {
			ss.deadlines = decodeDeadlinesV1(&d)
		} else {
			if w := d.uvarint(); d.err == nil && w != uint64(deadlineBucketWidth) {
				d.err = fmt.Errorf("deadline index bucket width %d, want %d", w, deadlineBucketWidth)
			}
			if n := d.uvarint(); d.err == nil && n != deadlineBucketSplit {
				d.err = fmt.Errorf("deadline index split %d, want %d", n, deadlineBucketSplit)
			}
			var prev int64
			for range d.count() {
				prev += d.varint()
				if d.err != nil {
					break
				}
				ss.buckets = append(ss.buckets, prev)
			}
		}
		if d.err != nil {
			break
		}
		out.streams[ns] = ss
	}
	if d.err == nil && len(d.b) > 0 {
		d.err = errors.New("trailing bytes")
	}
	if d.err != nil {
		return savedStreams{}, fmt.Errorf("%w: %w", errStreams, d.err)
	}
	return out, nil
}

// decodeDeadlinesV1 reads the deadline index of a version 1 stream.
func decodeDeadlinesV1(d *byteReader) map[string]int64 {
	deadlines := map[string]int64{}
	var prev int64
	for range d.count() {
		k := d.string()
		prev += d.varint()
		if d.err != nil {
			break
		}
		deadlines[k] = prev
	}
	return deadlines
}

// byteReader reads varints and strings; the first error sticks.
type byteReader struct {
	b   []byte
	err error
}

func (d *byteReader) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("truncated")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *byteReader) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errors.New("truncated")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length that cannot exceed the bytes left (every element
// takes at least one byte), so that a corrupt length allocates nothing.
func (d *byteReader) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		if d.err == nil {
			d.err = errors.New("length past the end")
		}
		return 0
	}
	return int(n)
}

func (d *byteReader) string() string {
	n := d.count()
	if d.err != nil {
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
