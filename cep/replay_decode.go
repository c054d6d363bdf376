package cep

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
)

// batch carries the outcome of consecutive lines of one file from the
// decoder to the replayer. Batches are reused: the decoder fills one, the
// replayer applies it, and it goes back to the decoder empty but with its
// slices' capacity, so that a replay in its steady state allocates nothing
// for the hand-over.
type batch struct {
	file string // every line of a batch is from this file
	// source is the file's name in positions (Input.Source).
	source string
	items  []item
	// pushes are the items' records, each with the stream to push it to.
	pushes []push
	// raw holds the envelope lines of the items that have pushes, as read,
	// for the late sink: the reader reuses its buffer, and an envelope's
	// event bytes are not the line.
	raw []byte
	// eof marks the last batch of the file: the file was read to its end.
	eof bool
	// err is a fatal read error that came after the items.
	err error
	// seq numbers the batches of a pipelined replay in reading order, which
	// is the order they are matched in, whoever decoded them.
	seq int
	// src holds the lines a pipelined replay read for the batch (copied:
	// the reader reuses its buffer), and lines says where each is, until
	// they are decoded into items.
	src   []byte
	lines []srcLine
}

// srcLine is one line read for a batch: src[from:to] of the batch, or why
// it could not be read (a line over the limit).
type srcLine struct {
	line     int64
	from, to int
	err      error
}

// item is what became of one non-blank line.
type item struct {
	line int64 // 1-based
	// pushes[from:to] of the batch are the line's records. Empty for a line
	// no stream could use.
	from, to int
	// raw[rawFrom:rawTo] of the batch is the line as read when it is an
	// envelope; for a plain line it is empty and the line is its event's
	// raw bytes.
	rawFrom, rawTo int
	// unrouted marks an envelope of a topic no stream reads.
	unrouted bool
	// lane numbers the Kafka partition of a kcat envelope that names one
	// (laneTable); 0 for every other line, whose records go to their
	// streams' own Partitions.
	lane int32
	// dead is why the line is dead-lettered, reported after its pushes: it
	// could not be read or decoded, or a stream could not key or time it
	// (another stream may still have taken it).
	dead error
}

// push is one record for one stream.
type push struct {
	s   *stream
	rec *matcher.Record
}

// reset empties b for reuse. It clears the pointers too, so that an idle
// batch does not keep events alive after the matcher let go of them.
func (b *batch) reset(file, source string) {
	clear(b.items)
	clear(b.pushes)
	clear(b.lines)
	*b = batch{file: file, source: source, items: b.items[:0], pushes: b.pushes[:0], raw: b.raw[:0], src: b.src[:0], lines: b.lines[:0]}
}

// decoder is the decoding side of a Replay: it reads lines and turns each
// into matcher records (event, key, time), all of which depends only on the
// line. It touches nothing of the replayer's, so that it can run on its own
// goroutine; an event it hands over in a batch it never touches again,
// because an Event's lazily decoded fields are not safe for concurrent use.
type decoder struct {
	streams []*stream
	dec     LineDecoder
	line    Line
	layout  rules.Layout
	records records

	lanes *laneTable
	// The lane of the last envelope, which the next one most likely shares:
	// kcat writes a partition's records one after another.
	lastLane      int32
	lastTopic     []byte
	lastPartition int64
}

// laneTable numbers the (topic, partition) pairs of the kcat envelopes of
// one replay from 1, in the order the decoders meet them. The decoders of
// a replay share it; the replayer gives each stream one Partition per lane,
// so that every Kafka partition of a recording keeps its own watermark, as
// it does on `shrike serve`.
type laneTable struct {
	mu    sync.Mutex
	lanes map[string]map[int64]int32
	n     int32
}

func (t *laneTable) lane(topic []byte, partition int64) int32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	byPartition := t.lanes[string(topic)]
	if byPartition == nil {
		if t.lanes == nil {
			t.lanes = map[string]map[int64]int32{}
		}
		byPartition = map[int64]int32{}
		t.lanes[string(topic)] = byPartition
	}
	l, ok := byPartition[partition]
	if !ok {
		t.n++
		l = t.n
		byPartition[partition] = l
	}
	return l
}

// lane returns the lane of ln: that of its topic and partition when it is
// an envelope that names a partition, else 0. An envelope without a
// partition (as the rule tester writes its records) goes with the plain
// lines.
func (d *decoder) lane(ln *Line) int32 {
	if !ln.Envelope || ln.Partition < 0 {
		return 0
	}
	if d.lastLane == 0 || d.lastPartition != ln.Partition || !bytes.Equal(d.lastTopic, ln.Topic) {
		d.lastLane = d.lanes.lane(ln.Topic, ln.Partition)
		d.lastTopic = append(d.lastTopic[:0], ln.Topic...)
		d.lastPartition = ln.Partition
	}
	return d.lastLane
}

// maxBatchRaw bounds the bytes read for one batch, so that a batch of
// long lines holds a few of them rather than BatchLines.
const maxBatchRaw = 1 << 20

// decodeLine decodes one line once and makes a record for every stream that
// reads its topic.
func (d *decoder) decodeLine(b *batch, lineNo int64, line []byte) {
	it := item{line: lineNo, from: len(b.pushes), to: len(b.pushes)}
	ln := &d.line
	if err := d.dec.Decode(line, ln); err != nil {
		it.dead = err
		b.items = append(b.items, it)
		return
	}
	var routed bool
	b.pushes, routed, it.dead = decodeEventFrom(&d.records, d.streams, &d.layout, ln, matcher.Position{Source: b.source, Offset: lineNo}, b.pushes)
	if !routed {
		it.unrouted = true
		b.items = append(b.items, it)
		return
	}
	it.to = len(b.pushes)
	it.lane = d.lane(ln)
	if ln.Envelope && it.to > it.from {
		it.rawFrom = len(b.raw)
		b.raw = append(b.raw, line...)
		it.rawTo = len(b.raw)
	}
	b.items = append(b.items, it)
}

// decodeEvent is the decoding Replay and the Kafka engine share, so that
// both make the same records of the same event: it parses the event bytes
// of ln once (rules.Event.ParseWith, on the layout of the events the
// caller decoded before) and appends to pushes one record at pos for
// every stream that reads ln's topic, keyed and timed by that stream.
// routed is false when no stream reads the topic (nothing is parsed then);
// dead is why the event is dead-lettered: it could not be parsed, or a
// stream could not key or time it (another stream may still have taken
// it). A plain line's event time may come from pos.Offset, its line number.
func decodeEvent(streams []*stream, layout *rules.Layout, ln *Line, pos matcher.Position, pushes []push) (_ []push, routed bool, dead error) {
	return decodeEventFrom(nil, streams, layout, ln, pos, pushes)
}

// decodeEventFrom is decodeEvent with records taken from rs (nil: new).
func decodeEventFrom(rs *records, streams []*stream, layout *rules.Layout, ln *Line, pos matcher.Position, pushes []push) (_ []push, routed bool, dead error) {
	for _, s := range streams {
		if reads(s, ln) {
			routed = true
			break
		}
	}
	if !routed {
		return pushes, false, nil
	}
	// The reader reuses its buffer: each event gets bytes of its own.
	// The first record and the event share an allocation.
	var first *recordEvent
	var raw []byte
	if rs != nil {
		first, raw = rs.next()
	} else {
		first = new(recordEvent)
	}
	ev := &first.ev
	if err := ev.ParseInto(append(raw, ln.Event...), layout, &first.fields); err != nil {
		return pushes, true, fmt.Errorf("%w: %w", errInvalidEvent, err)
	}
	for _, s := range streams {
		if !reads(s, ln) {
			continue
		}
		var rec *matcher.Record
		if first != nil {
			rec, first = &first.rec, nil
		} else {
			rec = new(matcher.Record)
		}
		*rec = matcher.Record{Event: ev, Pos: pos}
		var err error
		if rec.Key, err = key(s, ev, ln); err != nil {
			dead = err
			continue
		}
		if rec.Time, err = eventTime(s, ev, ln, pos.Offset); err != nil {
			dead = err
			continue
		}
		s.prog.Prepare(rec)
		pushes = append(pushes, push{s: s, rec: rec})
	}
	return pushes, true, dead
}

// recordEvent is a record with its event and the event's fields.
type recordEvent struct {
	rec    matcher.Record // first: recordEventOf depends on it
	ev     rules.Event
	fields rules.FieldBuffer
}

// recordEventOf returns the recordEvent whose first field r is.
func recordEventOf(r *matcher.Record) *recordEvent {
	return (*recordEvent)(unsafe.Pointer(r))
}

// The reasons decodeEvent dead-letters an event, wrapped so that the engine
// can count them apart; the messages are those of the offline reports.
var (
	errInvalidEvent = errors.New("invalid event")
	errNoKey        = errors.New("no key")
	errNoTime       = errors.New("no event time")
)

func reads(s *stream, ln *Line) bool {
	return !ln.Envelope || s.topic == "" || s.topic == string(ln.Topic)
}

// key returns the partition key: the stream's key expression, else the
// envelope's record key, else "" (a file without keys is one key).
func key(s *stream, ev *rules.Event, ln *Line) (string, error) {
	if s.key != nil {
		k, err := s.key.EvalKey(ev)
		if err != nil {
			return "", fmt.Errorf("%w: %w", errNoKey, err)
		}
		return k, nil
	}
	if ln.HasKey {
		return string(ln.Key), nil
	}
	return "", nil
}

// eventTime returns the event time in Unix ns: the stream's time
// expression, else the envelope's record timestamp. A plain line has no
// record timestamp; as rules.Stream documents, its line number then counts
// as milliseconds, which keeps the file's order.
func eventTime(s *stream, ev *rules.Event, ln *Line, lineNo int64) (int64, error) {
	if s.time != nil {
		t, err := s.time.EvalTime(ev)
		if err != nil {
			return 0, fmt.Errorf("%w: %w", errNoTime, err)
		}
		return t, nil
	}
	if !ln.Envelope {
		return lineNo * int64(time.Millisecond), nil
	}
	if !ln.HasTime {
		return 0, fmt.Errorf("%w: the kafka record has no timestamp", errNoTime)
	}
	return ln.TimeMillis * int64(time.Millisecond), nil
}
