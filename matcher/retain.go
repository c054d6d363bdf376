package matcher

import (
	"unsafe"

	"github.com/shrike-cep/shrike/rules"
)

// A record that a partial match takes may be kept for as long as the rule's
// window: hours, for millions of keys. What the decoding side allocates for
// a record is made for the few microseconds of matching (the record, its
// parsed event and room for 16 fields' places in one 512-byte object, the
// event's bytes in another, together some 600 bytes for a 77-byte event
// and 800 for a payments event, most of it pointers the collector scans).
// The partition keeps instead what the match can need again, in one
// pointer-free allocation: a keptEvent header and the event's bytes,
// 128 bytes for the first and 320 for the second. The original becomes
// garbage as soon as it is matched, and the collector marks a kept event
// without scanning it.
//
// Conditions and alert summaries that read a step's event get one made
// again from the bytes (eventViews): lazily, so that only a lookup of a
// field parses it (once), while the numbers a NumberLoader decoded ahead
// (distance_km's operands) come with the header.

// keptEvent is the header of a kept event's allocation. The numbers a
// NumberLoader decoded ahead follow it, for the few events that have any
// (a rules.Preloaded), then the event's bytes.
type keptEvent struct {
	time   int64
	seq    uint64
	offset int64  // Position.Offset
	source uint32 // Position.Source, as an index in Partition.sources
	rawLen uint32
	layout uint32 // the layout of the event's keys (rules.Preloaded.Layout)
	flags  uint32
}

// keptNumbers flags a kept event whose preloaded numbers follow the header.
const keptNumbers = 1

// keptPrefixShift places, in the flags' upper 16 bits, the size of the
// compact key's header and key allocated before the kept event
// (compact.go); 0 when there is none.
const keptPrefixShift = 16

const (
	keptHeaderSize  = unsafe.Sizeof(keptEvent{})
	keptNumbersSize = unsafe.Sizeof(rules.Preloaded{})
)

// bytesAt is where the event's bytes start.
func (k *keptEvent) bytesAt() uintptr {
	if k.flags&keptNumbers != 0 {
		return keptHeaderSize + keptNumbersSize
	}
	return keptHeaderSize
}

// raw returns the event's bytes.
func (k *keptEvent) raw() []byte {
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(k), k.bytesAt())), k.rawLen)
}

// pre returns what the event's parse learned.
func (k *keptEvent) pre() rules.Preloaded {
	if k.flags&keptNumbers != 0 {
		return *(*rules.Preloaded)(unsafe.Add(unsafe.Pointer(k), keptHeaderSize))
	}
	return rules.PreloadedLayout(k.layout)
}

// id is the event's place in the partition's order.
func (k *keptEvent) id() eventID { return eventID{k.time, k.seq} }

// retain returns the kept copy of r, the record being processed, making
// it on the first call for r.
func (p *Partition) retain(r *Record) *keptEvent {
	if p.retainedFrom == r {
		return p.retainedTo
	}
	room := p.keyRoom && len(r.Key) <= maxCompactKey
	k := p.keepFor(r.Event.Raw(), r.Event.Preloaded(), r.Time, r.Seq, r.Pos, r.Key, room)
	p.retainedFrom, p.retainedTo = r, k
	return k
}

// keep copies an event and its place into a kept event.
func (p *Partition) keep(raw []byte, pre rules.Preloaded, t int64, seq uint64, pos Position) *keptEvent {
	return p.keepFor(raw, pre, t, seq, pos, "", false)
}

// keepFor is keep, allocating room for a compact key's header and key
// before the event when room is set (compact.go), the key written.
func (p *Partition) keepFor(raw []byte, pre rules.Preloaded, t int64, seq uint64, pos Position, key string, room bool) *keptEvent {
	// A byte slice is allocated without pointers and, from 8 bytes up,
	// aligned for the header's 8-byte fields (the numbers follow at a
	// multiple of 8).
	at := keptHeaderSize
	var flags uint32
	if pre.HasNumbers() {
		at += keptNumbersSize
		flags |= keptNumbers
	}
	var k *keptEvent
	if room {
		var c *compactKey
		c, k = newCompact(raw, flags&keptNumbers != 0, key)
		flags |= uint32(uintptr(unsafe.Pointer(k))-uintptr(unsafe.Pointer(c))) << keptPrefixShift
	} else {
		blob := make([]byte, int(at)+len(raw))
		k = (*keptEvent)(unsafe.Pointer(unsafe.SliceData(blob)))
	}
	*k = keptEvent{time: t, seq: seq, offset: pos.Offset, source: p.sourceIndex(pos.Source), rawLen: uint32(len(raw)), layout: pre.Layout(), flags: flags}
	if flags&keptNumbers != 0 {
		*(*rules.Preloaded)(unsafe.Add(unsafe.Pointer(k), keptHeaderSize)) = pre
	}
	copy(unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(k), at)), len(raw)), raw)
	return k
}

// sourceIndex returns the number of a record source, adding it to the
// partition's list the first time. A partition reads from a few sources (a
// file, a topic partition), so that the list stays short.
func (p *Partition) sourceIndex(source string) uint32 {
	if len(p.sources) > 0 && p.sources[p.lastSource] == source {
		return p.lastSource
	}
	i, ok := p.sourceIDs[source]
	if !ok {
		if p.sourceIDs == nil {
			p.sourceIDs = map[string]uint32{}
		}
		i = uint32(len(p.sources))
		p.sources = append(p.sources, source)
		p.sourceIDs[source] = i
	}
	p.lastSource = i
	return i
}

// position returns a kept event's place in its source.
func (p *Partition) position(k *keptEvent) Position {
	return Position{Source: p.sources[k.source], Offset: k.offset}
}

// recordCopy is a record and its event, the event made again from a kept
// event's bytes, for an alert (alertBuf).
type recordCopy struct {
	rec Record
	ev  rules.Event
}

// recordInto makes c a Record of a kept event for an alert, and returns
// it.
func (p *Partition) recordInto(c *recordCopy, k *keptEvent, key string) *Record {
	// Alerts are written from the bytes; the fields' places are found (and
	// allocated) only if something looks a field up.
	c.ev.SetLazy(k.raw(), k.pre(), nil)
	c.rec = Record{Event: &c.ev, Key: key, Time: k.time, Pos: p.position(k), Seq: k.seq}
	return &c.rec
}

// eventViews hands out events made again from kept ones for one
// evaluation of a condition or summary: CEL holds them only while it
// evaluates, so the next evaluation reuses them.
type eventViews struct {
	views []*eventView
	used  int
}

type eventView struct {
	ev  rules.Event
	buf rules.FieldBuffer
}

// reset makes every view free again.
func (v *eventViews) reset() { v.used = 0 }

// view returns an event for k, valid until the next reset.
func (v *eventViews) view(k *keptEvent) *rules.Event {
	if v.used == len(v.views) {
		v.views = append(v.views, new(eventView))
	}
	ev := v.views[v.used]
	v.used++
	ev.ev.SetLazy(k.raw(), k.pre(), &ev.buf)
	return &ev.ev
}
