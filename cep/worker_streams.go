package cep

import (
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

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
//	version            uvarint (1)
//	readTo             varint   offset after the last record read
//	streams            uvarint  count, then per stream:
//	  namespace        uvarint length + bytes
//	  watermark        varint   matcher.Checkpoint
//	  maxTime          varint
//	  seq              uvarint
//	  deadlines        uvarint  count, then per key, by deadline:
//	    key            uvarint length + bytes
//	    deadline       varint   delta from the previous deadline
const streamsVersion = 1

// savedStreams is a decoded checkpoint's engine part.
type savedStreams struct {
	readTo  int64
	streams map[string]savedStream // by namespace
}

type savedStream struct {
	cp        matcher.Checkpoint
	deadlines map[string]int64
}

// encodeStreams encodes a worker's streams for a checkpoint. The deadline
// index holds every key with an open window, resident or evicted, so it
// is sized before it is written: grown from nothing, a large index was
// copied over and over.
func encodeStreams(sps []*streamPart, readTo int64) []byte {
	// Bytes of the fixed fields, at their longest.
	const headerMax = 3 * binary.MaxVarintLen64
	const streamMax = 4 * binary.MaxVarintLen64
	const entryMax = 2 * binary.MaxVarintLen64
	type entry struct {
		key string
		d   int64
	}
	indexes := make([][]entry, len(sps))
	size := headerMax
	for i, sp := range sps {
		entries := make([]entry, 0, len(sp.keys.deadlines))
		for k, d := range sp.keys.deadlines {
			entries = append(entries, entry{k, d})
			size += entryMax + len(k)
		}
		// Sorted, the deltas are small and the bytes do not depend on map
		// order.
		slices.SortFunc(entries, func(a, b entry) int {
			if c := cmp.Compare(a.d, b.d); c != 0 {
				return c
			}
			return strings.Compare(a.key, b.key)
		})
		indexes[i] = entries
		size += streamMax + len(sp.keys.ns)
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
		entries := indexes[i]
		b = binary.AppendUvarint(b, uint64(len(entries)))
		var prev int64
		for _, e := range entries {
			b = appendString(b, e.key)
			b = binary.AppendVarint(b, e.d-prev)
			prev = e.d
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
	if v := d.uvarint(); d.err == nil && (v == 0 || v > streamsVersion) {
		return savedStreams{}, fmt.Errorf("%w: version %d", errStreams, v)
	}
	out := savedStreams{readTo: d.varint(), streams: map[string]savedStream{}}
	n := d.count()
	for range n {
		ns := d.string()
		ss := savedStream{deadlines: map[string]int64{}}
		ss.cp.Watermark = d.varint()
		ss.cp.MaxTime = d.varint()
		ss.cp.Seq = d.uvarint()
		var prev int64
		for range d.count() {
			k := d.string()
			prev += d.varint()
			if d.err != nil {
				break
			}
			ss.deadlines[k] = prev
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
