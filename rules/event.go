package rules

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"reflect"
	"slices"
	"strconv"
	"sync/atomic"
	"unicode/utf8"
	"unsafe"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"

	"github.com/shrike-cep/shrike/internal/jsonstr"
)

// Event is one decoded event: its original JSON bytes plus the fields
// decoded on demand. It is the CEL value bound to `event` and to singleton
// step variables.
//
// ParseEvent validates the whole object in one pass but only records where
// each top-level field lies; a field is decoded the first time an expression
// reads it and the result is cached on the Event, so an event costs only
// what the rules actually look at. Because of that cache an Event is not
// safe for concurrent use: one goroutine at a time (the partition worker
// that owns its key) may evaluate expressions over it.
type Event struct {
	raw    []byte
	fields []field
	// slow: a key repeats, or some key has escapes or is too long for klen.
	// Lookups then scan from the end and compare decoded keys; otherwise a
	// name occurs at most once and compares by its bytes, so that a hinted
	// lookup (findHinted) may stop at the first match.
	slow bool
	// nextSlot is the cache slot the next decoded value takes once all are
	// used (round robin).
	nextSlot uint8
	// cacheMode and cacheOwner describe the values in cache: how each was
	// decoded and the index in fields of the field it belongs to. They are
	// kept apart from the values so that they fill the padding after slow.
	cacheMode  [cacheSlots]kind
	cacheOwner [cacheSlots]uint8
	// cache holds the last few decoded values. Rules read few fields of an
	// event, and an event that partial matches retain is read again and
	// again for the same ones (here.lat), so a handful of slots serve; a
	// value per field would make every Event twice as large.
	cache [cacheSlots]ref.Val
	// numKey and num are numbers decoded ahead by a NumberLoader: num[i] is
	// the value of the field and decoding numKey[i] names (0: empty). They
	// hold no pointers, so they sit past the part the collector scans.
	numKey [numSlots]uint16
	num    [numSlots]float64
	// layout identifies the Layout the event's keys follow, key for key
	// (0: none): findHinted then trusts a hint left by an event of the same
	// layout without comparing keys.
	layout uint32
	// lazy is set on an event made by SetLazy until its fields are needed:
	// its bytes were parsed before, and most of the events partial matches
	// keep are never read again by field.
	lazy bool
}

// FieldBuffer backs the fields of a typical event (up to 16), so that an
// Event and its buffer can be allocated in one piece (ParseEvent does;
// so does the replay, with the record the event belongs to). It holds no
// pointers: placed after the Event, it adds nothing the collector scans.
type FieldBuffer struct {
	fields [inlineFields]field
}

const (
	inlineFields = 16
	cacheSlots   = 3
	// numSlots bounds the numbers a NumberLoader keeps per event: the
	// latitude and longitude distance_km reads, and two more.
	numSlots = 4
	// maxDepth is encoding/json's nesting limit, so that both accept the
	// same documents.
	maxDepth = 10000
)

// field is one top-level member of the event object.
//
// It is 16 bytes and holds no pointers, so that the inline array keeps the
// Event in a small size class and out of the collector's way: the key's
// length is a uint16, and keys of 64 KiB or more are found by scanning back
// from the value.
type field struct {
	k0     int32 // key, after the opening quote
	v0, v1 int32 // value
	klen   uint16
	kesc   bool  // key contains escapes or invalid UTF-8: compare decoded
	cached uint8 // 1 + the cache slot holding its decoded value; 0: none
}

// longKey marks a key too long for field.klen.
const longKey = 1<<16 - 1

// keyBytes returns the key of f inside the quotes.
func (e *Event) keyBytes(f *field) []byte {
	if f.klen != longKey {
		return e.raw[f.k0 : f.k0+int32(f.klen)]
	}
	// Back from the value over whitespace, the colon, whitespace and the
	// closing quote.
	i := int(f.v0) - 1
	for e.raw[i] != ':' {
		i--
	}
	i--
	for e.raw[i] != '"' {
		i--
	}
	return e.raw[f.k0:i]
}

// kind is a decoding mode: the natural JSON mapping or a schema type.
type kind uint8

const (
	kindNone kind = iota
	kindNatural
	kindString
	kindInt
	kindUint
	kindDouble
	kindBool
	kindTimestamp
	kindDuration
	kindBytes
	kindList
	kindMap
)

// ErrNotObject is returned (wrapped) by ParseEvent for input that is valid
// JSON but not an object.
var ErrNotObject = errors.New("line is not a JSON object")

// ErrBadJSON is returned (wrapped) by ParseEvent for input that is not
// valid JSON.
var ErrBadJSON = errors.New("invalid JSON")

// ErrBadValue is returned (wrapped) by ParseEvent for a JSON object that
// holds a value no consumer of the event can represent: a number beyond
// float64's range, or a string that is not valid UTF-8. encoding/json
// accepts both, but such an event cannot be decoded by the rules (the
// field is an error) nor carried by an alert to the API (protobuf strings
// are UTF-8, and JSON numbers decode to float64), so it is rejected with
// the other undecodable input rather than let into alerts.
var ErrBadValue = errors.New("value cannot be represented")

// ParseEvent checks that raw is one JSON object and returns it as an Event.
// The Event keeps raw; the caller must not modify it afterwards.
func ParseEvent(raw []byte) (*Event, error) {
	eb := new(struct {
		ev  Event
		buf FieldBuffer
	})
	if err := eb.ev.ParseInto(raw, nil, &eb.buf); err != nil {
		return nil, err
	}
	return &eb.ev, nil
}

// Parse is ParseEvent into an Event the caller allocated. ev must be zero;
// after an error it is unusable.
func (e *Event) Parse(raw []byte) error { return e.ParseWith(raw, nil) }

// Layout remembers the keys of the last events parsed with it, in order:
// the few shapes a stream's events come in (a login has no card fields, a
// card authorisation no IP). ParseWith recognises each key by comparing
// its bytes with the one the event's shape has there, instead of scanning a
// string, and knows the keys distinct without checking. A Layout is not
// safe for concurrent use: a decoding goroutine keeps its own.
type Layout struct {
	shapes [layoutShapes]shape
	n      int // shapes in use
	cur    int // the shape the last event had
	evict  int // the next shape replaced when all are in use
}

// layoutShapes is how many shapes a Layout remembers: a stream of more
// shapes, in turns, parses as without one, plus a failed comparison.
const layoutShapes = 4

// shape is one sequence of keys.
type shape struct {
	keys []byte  // the keys, one after the other (then scratch space)
	ends []int32 // key i is keys[ends[i-1]:ends[i]] (ends[-1] = 0)
	id   uint32  // layoutIDs' number for these keys; 0: none
}

// layoutIDs numbers the shapes of the process by their keys, so that the
// Layouts of two decoding goroutines that see the same events agree on
// their numbers (the hints of compiled expressions are shared). It stops
// numbering at 4,096: a stream whose every event has keys of its own does
// not grow it without bound, and its events look fields up by name.
var layoutIDs = interner{max: 1 << 12}

func (sh *shape) key(i int) []byte {
	start := int32(0)
	if i > 0 {
		start = sh.ends[i-1]
	}
	return sh.keys[start:sh.ends[i]]
}

// sharesPrefix reports whether o has the first n keys of sh.
func (sh *shape) sharesPrefix(o *shape, n int) bool {
	if len(o.ends) < n || len(sh.ends) < n {
		return false
	}
	if n == 0 {
		return true
	}
	return slices.Equal(sh.ends[:n], o.ends[:n]) && string(sh.keys[:sh.ends[n-1]]) == string(o.keys[:o.ends[n-1]])
}

// matchKey reports whether raw[k0:] holds sh's key i and its closing
// quote, returning the key's end.
func (sh *shape) matchKey(raw []byte, k0, i int) (int, bool) {
	if i >= len(sh.ends) {
		return 0, false
	}
	want := sh.key(i)
	end := k0 + len(want)
	return end, end < len(raw) && raw[end] == '"' && string(raw[k0:end]) == string(want)
}

// follow returns the index of a remembered shape that has the first n keys
// of shape cur and the key at raw[k0:] next, with the key's end; ok is
// false when none has.
func (l *Layout) follow(cur, n int, raw []byte, k0 int) (next, end int, ok bool) {
	for j := range l.n {
		if j == cur || !l.shapes[cur].sharesPrefix(&l.shapes[j], n) {
			continue
		}
		if end, ok := l.shapes[j].matchKey(raw, k0, n); ok {
			return j, end, true
		}
	}
	return 0, 0, false
}

// settle records the shape of ev, a successfully parsed event with plain,
// distinct keys whose first keys followed shape cur (all of them when
// whole) and returns its number.
func (l *Layout) settle(ev *Event, cur int, whole bool) uint32 {
	n := len(ev.fields)
	if whole {
		if len(l.shapes[cur].ends) == n {
			l.cur = cur
			return l.shapes[cur].id
		}
		for j := range l.n { // a shorter shape with the same keys
			if len(l.shapes[j].ends) == n && l.shapes[cur].sharesPrefix(&l.shapes[j], n) {
				l.cur = j
				return l.shapes[j].id
			}
		}
	}
	slot := l.n
	if l.n < layoutShapes {
		l.n++
	} else {
		slot = l.evict
		l.evict = (l.evict + 1) % layoutShapes
	}
	sh := &l.shapes[slot]
	sh.keys, sh.ends = sh.keys[:0], sh.ends[:0]
	for i := range ev.fields {
		sh.keys = append(sh.keys, ev.plainKey(&ev.fields[i])...)
		sh.ends = append(sh.ends, int32(len(sh.keys)))
	}
	// The keys with their ends name the shape unambiguously.
	name := sh.keys
	for _, end := range sh.ends {
		name = binary.LittleEndian.AppendUint32(name, uint32(end))
	}
	sh.id = layoutIDs.id(string(name))
	sh.keys = name[:len(sh.keys)] // keep the grown array
	l.cur = slot
	return sh.id
}

// ParseWith is Parse with the layout of the events parsed before (nil: no
// layout), which it updates when this event's keys differ.
func (e *Event) ParseWith(raw []byte, layout *Layout) error {
	return e.ParseInto(raw, layout, new(FieldBuffer))
}

// ParseInto is ParseWith with the fields kept in buf (more than it holds
// spill to the heap); the Event uses buf for as long as it lives.
func (e *Event) ParseInto(raw []byte, layout *Layout, buf *FieldBuffer) error {
	if len(raw) > 1<<31-2 {
		return fmt.Errorf("event of %d bytes is too large: %w", len(raw), ErrBadJSON)
	}
	e.raw = raw
	e.fields = buf.fields[:0]
	return e.parse(raw, layout)
}

// parse parses raw into e.fields, which is empty.
func (e *Event) parse(raw []byte, layout *Layout) error {
	// seen is a 256-bit filter of the keys so far; only a key whose bit is
	// already set is compared with the earlier ones.
	var seen keyFilter
	// cur is the shape the keys so far followed, while onLayout.
	onLayout := layout != nil && layout.n > 0
	cur := 0
	if onLayout {
		cur = layout.cur
	}
	s := scanner{b: raw}
	s.ws()
	if s.i >= len(raw) {
		return fmt.Errorf("empty line: %w", ErrNotObject)
	}
	if raw[s.i] != '{' {
		// Tell "valid JSON but not an object" apart from garbage.
		if err := s.value(0); err != nil {
			return err
		}
		s.ws()
		if s.i < len(raw) {
			return s.errf("after top-level value")
		}
		return ErrNotObject
	}
	s.i++
	s.ws()
	if s.i < len(raw) && raw[s.i] == '}' {
		s.i++
	} else {
		for {
			if s.i >= len(raw) {
				return s.eof()
			}
			if raw[s.i] != '"' {
				return s.errf("looking for beginning of object key string")
			}
			k0, k1, esc := s.i+1, 0, false
			if onLayout {
				n := len(e.fields)
				end, ok := layout.shapes[cur].matchKey(raw, k0, n)
				if !ok {
					cur, end, ok = layout.follow(cur, n, raw, k0)
				}
				if ok {
					k1, s.i = end, end+1
				} else {
					// Off the layout: from here on keys are scanned and
					// checked for repeats, against the earlier ones too.
					onLayout = false
					for i := range e.fields {
						seen.add(e.plainKey(&e.fields[i]))
					}
				}
			}
			if k1 == 0 {
				var hi bool
				var err error
				if esc, hi, err = s.str(); err != nil {
					return err
				}
				k1 = s.i - 1
				// A key with invalid UTF-8 decodes to U+FFFD: compare it decoded.
				esc = esc || (hi && !utf8.Valid(raw[k0:k1]))
			}
			s.ws()
			if s.i >= len(raw) {
				return s.eof()
			}
			if raw[s.i] != ':' {
				return s.errf("after object key")
			}
			s.i++
			s.ws()
			v0 := s.i
			if err := s.value(1); err != nil {
				return err
			}
			if s.bad != nil && !s.named {
				s.bad, s.named = fmt.Errorf("field %q: %w", unquote(raw[k0:k1]), s.bad), true
			}
			e.fields = append(e.fields, field{
				k0: int32(k0), v0: int32(v0), v1: int32(s.i), kesc: esc,
				klen: uint16(min(k1-k0, longKey)),
			})
			f := &e.fields[len(e.fields)-1]
			if !e.slow && !onLayout { // a layout's keys are plain and distinct
				e.slow = esc || f.klen == longKey || e.repeats(&seen, raw[k0:k1])
			}
			s.ws()
			if s.i >= len(raw) {
				return s.eof()
			}
			if raw[s.i] == ',' {
				s.i++
				s.ws()
				continue
			}
			if raw[s.i] == '}' {
				s.i++
				break
			}
			return s.errf("after object key:value pair")
		}
	}
	s.ws()
	if s.i < len(raw) {
		return s.errf("after top-level value")
	}
	if s.bad != nil {
		return s.bad
	}
	// Only a document with non-ASCII bytes in its strings (the scanner
	// takes them nowhere else) can hold invalid UTF-8: one pass then.
	if s.hi && !utf8.Valid(raw) {
		return fmt.Errorf("invalid UTF-8 at byte %d: %w", invalidUTF8(raw), ErrBadValue)
	}
	if layout != nil && !e.slow {
		e.layout = layout.settle(e, cur, onLayout)
	}
	return nil
}

// Raw returns the event's original bytes.
func (e *Event) Raw() []byte { return e.raw }

// Preloaded is what an Event learned when it was parsed beyond its fields'
// places: the numbers a NumberLoader decoded ahead and the layout its keys
// follow. It holds no pointers. A runtime that keeps only an event's bytes
// keeps this beside them, so that the event it makes again (SetLazy) reads
// as fast as the original.
type Preloaded struct {
	numKey [numSlots]uint16
	num    [numSlots]float64
	layout uint32
}

// Preloaded returns what e learned when it was parsed.
func (e *Event) Preloaded() Preloaded {
	return Preloaded{numKey: e.numKey, num: e.num, layout: e.layout}
}

// HasNumbers reports whether a NumberLoader decoded numbers ahead; most
// events have none, and the layout (Layout, PreloadedLayout) is all a
// runtime need keep of them.
func (p *Preloaded) HasNumbers() bool { return p.numKey != [numSlots]uint16{} }

// Layout is the identity of the layout the event's keys follow (0: none).
func (p *Preloaded) Layout() uint32 { return p.layout }

// PreloadedLayout is a Preloaded with a layout and no numbers.
func PreloadedLayout(layout uint32) Preloaded { return Preloaded{layout: layout} }

// SetLazy makes e the event of raw, bytes that ParseEvent (or Parse)
// accepted before, with what that parse learned. Nothing is parsed until a
// field is looked up; the fields then go to buf (nil: to a buffer
// allocated then). raw must not change while e is in use; e's previous
// contents are dropped.
func (e *Event) SetLazy(raw []byte, pre Preloaded, buf *FieldBuffer) {
	*e = Event{raw: raw, numKey: pre.numKey, num: pre.num, layout: pre.layout, lazy: true}
	if buf != nil {
		e.fields = buf.fields[:0]
	}
}

// ensureParsed parses a lazy event's fields. Its bytes were accepted
// before, so that this cannot fail; if they were changed and it does, the
// event has the fields parsed up to the error.
func (e *Event) ensureParsed() {
	if !e.lazy {
		return
	}
	e.lazy = false
	if cap(e.fields) == 0 {
		e.fields = new(FieldBuffer).fields[:0]
	}
	e.fields = e.fields[:0]
	_ = e.parse(e.raw, nil)
}

// Fields returns the names of the event's top-level fields in document
// order (a name repeats if the document repeats it).
func (e *Event) Fields() []string {
	e.ensureParsed()
	out := make([]string, len(e.fields))
	for i := range e.fields {
		out[i] = e.key(&e.fields[i])
	}
	return out
}

// Has reports whether the event has a top-level field name.
func (e *Event) Has(name string) bool { return e.find(name) != nil }

// Field returns the decoded value of a top-level field with the natural
// JSON mapping (integral numbers as int, others as double). ok is false
// when the field is missing; a field that does not decode (a number out of
// range) yields a CEL error value.
func (e *Event) Field(name string) (v ref.Val, ok bool) {
	f := e.find(name)
	if f == nil {
		return nil, false
	}
	return e.decode(f, kindNatural), true
}

func (e *Event) key(f *field) string {
	k := e.keyBytes(f)
	if !f.kesc {
		return string(k)
	}
	return unquote(k)
}

// keyFilter is a 256-bit filter of the keys of an event so far: only a key
// whose bit is already set is compared with the earlier ones.
type keyFilter [4]uint64

// add sets key's bit, reporting whether it was set already.
func (kf *keyFilter) add(key []byte) (was bool) {
	h := uint8(len(key))
	if len(key) > 0 {
		h = h*31 + key[0]*7 + key[len(key)-1]
	}
	bit := uint64(1) << (h & 63)
	was = kf[h>>6]&bit != 0
	kf[h>>6] |= bit
	return was
}

// repeats reports whether key, the newest field's key, is also the key of
// an earlier field; seen filters the keys so far.
func (e *Event) repeats(seen *keyFilter, key []byte) bool {
	if !seen.add(key) {
		return false
	}
	for i := range len(e.fields) - 1 {
		if string(e.plainKey(&e.fields[i])) == string(key) {
			return true
		}
	}
	return false
}

// plainKey is the key of f as it appears in raw (valid for fields with
// klen < longKey).
func (e *Event) plainKey(f *field) []byte { return e.raw[f.k0 : f.k0+int32(f.klen)] }

// findHinted is find for a caller that reads the same name from event
// after event (a compiled expression): hint remembers where the name was
// last found, which in a stream of uniformly shaped events is where it is
// again, so the lookup is one comparison instead of a scan. When the event
// was parsed on a Layout, and the hint was left by an event of the same
// layout, even that comparison is skipped: the layout puts the same key at
// the same index. hint may be shared by goroutines.
func (e *Event) findHinted(name string, hint *fieldHint) *field {
	e.ensureParsed()
	if e.slow {
		return e.find(name)
	}
	h := hint.Load()
	i := int(h & hintIndexMask)
	if e.layout != 0 && uint32(h>>hintLayoutShift) == e.layout {
		return &e.fields[i]
	}
	if i < len(e.fields) {
		if f := &e.fields[i]; int(f.klen) == len(name) && string(e.plainKey(f)) == name {
			hint.remember(e, i)
			return f
		}
	}
	for i := range e.fields {
		if f := &e.fields[i]; int(f.klen) == len(name) && string(e.plainKey(f)) == name {
			hint.remember(e, i)
			return f
		}
	}
	return nil
}

// fieldHint is where a name was last found: the index of its field, and
// the layout of the event (0: none) in the bits above hintLayoutShift.
type fieldHint struct{ atomic.Uint64 }

const (
	hintLayoutShift = 32
	hintIndexMask   = 1<<hintLayoutShift - 1
)

// remember records that the name is field i of e, unless the hint says so
// already (a store would take the hint's cache line from the other cores
// that read it).
func (h *fieldHint) remember(e *Event, i int) {
	if v := uint64(e.layout)<<hintLayoutShift | uint64(i); h.Load() != v {
		h.Store(v)
	}
}

// find returns the last field called name, as encoding/json keeps the last
// of duplicate keys.
func (e *Event) find(name string) *field {
	e.ensureParsed()
	for i := len(e.fields) - 1; i >= 0; i-- {
		f := &e.fields[i]
		if f.kesc {
			if unquote(e.keyBytes(f)) == name {
				return f
			}
			continue
		}
		if f.klen != longKey {
			if int(f.klen) == len(name) && string(e.raw[f.k0:f.k0+int32(f.klen)]) == name {
				return f
			}
			continue
		}
		if string(e.keyBytes(f)) == name {
			return f
		}
	}
	return nil
}

// decode returns f's value in mode k, caching the last decoding: rulesets
// sharing a stream normally agree on field types, so the cache hits.
func (e *Event) decode(f *field, k kind) ref.Val {
	if f.cached != 0 {
		if i := f.cached - 1; e.cacheMode[i] == k {
			return e.cache[i]
		}
	}
	v := decodeAs(e.raw[f.v0:f.v1], k)
	slot := int(f.cached) - 1
	if slot < 0 {
		// Fields beyond the 256th are not cached (owner is a uint8).
		idx := (uintptr(unsafe.Pointer(f)) - uintptr(unsafe.Pointer(unsafe.SliceData(e.fields)))) / unsafe.Sizeof(field{})
		if idx > 255 || idx >= uintptr(len(e.fields)) {
			return v
		}
		slot = int(e.nextSlot % cacheSlots)
		e.nextSlot++
		if e.cache[slot] != nil {
			e.fields[e.cacheOwner[slot]].cached = 0
		}
		e.cacheOwner[slot] = uint8(idx)
		f.cached = uint8(slot + 1)
	}
	e.cache[slot], e.cacheMode[slot] = v, k
	return v
}

// eventType is the runtime type of an event. Without a schema, CEL sees
// events as map(string, dyn), so that is what type(event) reports.
var eventType = types.MapType

// ConvertToNative implements ref.Val. An event converts to its raw JSON
// bytes or to a map of its decoded fields.
func (e *Event) ConvertToNative(typeDesc reflect.Type) (any, error) {
	e.ensureParsed()
	switch typeDesc {
	case reflect.TypeOf(e):
		return e, nil
	case reflect.TypeOf([]byte(nil)):
		return e.raw, nil
	}
	m := make(map[string]any, len(e.fields))
	for i := range e.fields {
		f := &e.fields[i]
		v := e.decode(f, kindNatural)
		if types.IsError(v) {
			return nil, v.(*types.Err)
		}
		m[e.key(f)] = v.Value()
	}
	if reflect.TypeOf(m).AssignableTo(typeDesc) {
		return m, nil
	}
	return nil, fmt.Errorf("type conversion error from event to '%v'", typeDesc)
}

// ConvertToType implements ref.Val.
func (e *Event) ConvertToType(t ref.Type) ref.Val {
	switch t {
	case types.MapType:
		return e
	case types.TypeType:
		return types.MapType
	}
	return types.NewErr("type conversion error from 'event' to '%s'", t.TypeName())
}

// Equal implements ref.Val: two events are equal when their bytes are.
func (e *Event) Equal(other ref.Val) ref.Val {
	o, ok := other.(*Event)
	if !ok {
		return types.False
	}
	return types.Bool(e == o || string(e.raw) == string(o.raw))
}

// Type implements ref.Val.
func (e *Event) Type() ref.Type { return eventType }

// Value implements ref.Val; it returns the Event itself so that schema
// field getters receive it.
func (e *Event) Value() any { return e }

// Contains implements traits.Container: `"f" in event`.
func (e *Event) Contains(key ref.Val) ref.Val {
	k, ok := key.(types.String)
	if !ok {
		return types.False
	}
	return types.Bool(e.find(string(k)) != nil)
}

// Get implements traits.Indexer: `event["f"]`.
func (e *Event) Get(key ref.Val) ref.Val {
	v, found := e.Find(key)
	if !found {
		if v != nil {
			return v
		}
		return types.NewErr("no such key: %v", key)
	}
	return v
}

// Find implements traits.Mapper; it is how CEL reads `event.f` when the
// event is dyn.
func (e *Event) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(key), false
	}
	f := e.find(string(k))
	if f == nil {
		return nil, false
	}
	v := e.decode(f, kindNatural)
	if types.IsError(v) {
		return v, false
	}
	return v, true
}

// Iterator implements traits.Iterable over the field names.
func (e *Event) Iterator() traits.Iterator {
	e.ensureParsed()
	return &fieldIter{e: e}
}

// Size implements traits.Sizer.
func (e *Event) Size() ref.Val {
	e.ensureParsed()
	return types.Int(len(e.fields))
}

// String renders the event as its JSON text.
func (e *Event) String() string { return string(e.raw) }

// fieldIter iterates over an event's field names (`event.all(k, ...)`).
type fieldIter struct {
	e *Event
	i int
}

// ConvertToNative implements ref.Val.
func (it *fieldIter) ConvertToNative(reflect.Type) (any, error) {
	return nil, errors.New("iterator cannot be converted")
}

// ConvertToType implements ref.Val.
func (it *fieldIter) ConvertToType(ref.Type) ref.Val {
	return types.NewErr("iterator cannot be converted")
}

// Equal implements ref.Val.
func (it *fieldIter) Equal(ref.Val) ref.Val { return types.False }

// Type implements ref.Val.
func (it *fieldIter) Type() ref.Type { return types.IteratorType }

// Value implements ref.Val.
func (it *fieldIter) Value() any { return it }

// HasNext implements traits.Iterator.
func (it *fieldIter) HasNext() ref.Val { return types.Bool(it.i < len(it.e.fields)) }

// Next implements traits.Iterator.
func (it *fieldIter) Next() ref.Val {
	if it.i >= len(it.e.fields) {
		return nil
	}
	f := &it.e.fields[it.i]
	it.i++
	return types.String(it.e.key(f))
}

var (
	_ traits.Mapper = (*Event)(nil)
	_ fmt.Stringer  = (*Event)(nil)
)

// scanner validates JSON. It follows RFC 8259 as encoding/json does
// (control characters inside strings are not accepted), and notes the
// first number beyond float64's range in bad, so that a syntax error
// further on is reported first. Invalid UTF-8 it leaves to its caller,
// which checks the whole document once when hi says there are non-ASCII
// bytes.
type scanner struct {
	b   []byte
	i   int
	hi  bool  // a string held a non-ASCII byte
	bad error // the first number out of range (ErrBadValue)
	// named: bad names its top-level field already.
	named bool
}

// invalidUTF8 returns the offset of the first byte of b that is not part
// of valid UTF-8.
func invalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) eof() error {
	return fmt.Errorf("unexpected end of JSON input at byte %d: %w", s.i, ErrBadJSON)
}

func (s *scanner) errf(context string) error {
	if s.i >= len(s.b) {
		return s.eof()
	}
	return fmt.Errorf("invalid character %s %s at byte %d: %w", quoteChar(s.b[s.i]), context, s.i, ErrBadJSON)
}

func quoteChar(c byte) string {
	switch {
	case c == '\'':
		return `'\''`
	case c == '"':
		return `'"'`
	case c < 0x20 || c >= 0x7f:
		return fmt.Sprintf("%#02x", c)
	}
	return "'" + string(c) + "'"
}

// value scans one value starting at s.i (no leading space).
func (s *scanner) value(depth int) error {
	if s.i >= len(s.b) {
		return s.eof()
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, _, err := s.str()
		return err
	case c == '{':
		return s.object(depth + 1)
	case c == '[':
		return s.array(depth + 1)
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	}
	return s.errf("looking for beginning of value")
}

func (s *scanner) lit(word string) error {
	for j := 0; j < len(word); j++ {
		if s.i >= len(s.b) {
			return s.eof()
		}
		if s.b[s.i] != word[j] {
			return s.errf("in literal " + word)
		}
		s.i++
	}
	return nil
}

func (s *scanner) object(depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("exceeded max depth at byte %d: %w", s.i, ErrBadJSON)
	}
	s.i++ // {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	for {
		if s.i >= len(s.b) {
			return s.eof()
		}
		if s.b[s.i] != '"' {
			return s.errf("looking for beginning of object key string")
		}
		if _, _, err := s.str(); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return s.eof()
		}
		if s.b[s.i] != ':' {
			return s.errf("after object key")
		}
		s.i++
		s.ws()
		if err := s.value(depth); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return s.eof()
		}
		switch s.b[s.i] {
		case ',':
			s.i++
			s.ws()
		case '}':
			s.i++
			return nil
		default:
			return s.errf("after object key:value pair")
		}
	}
}

func (s *scanner) array(depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("exceeded max depth at byte %d: %w", s.i, ErrBadJSON)
	}
	s.i++ // [
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return nil
	}
	for {
		if err := s.value(depth); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return s.eof()
		}
		switch s.b[s.i] {
		case ',':
			s.i++
			s.ws()
		case ']':
			s.i++
			return nil
		default:
			return s.errf("after array element")
		}
	}
}

// plainByte marks the bytes a string may hold without a closer look: not
// a quote, a backslash, a control character or a non-ASCII byte.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// special reports whether any of the 8 bytes in x needs a closer look
// (see plainByte), testing them all at once: a byte below 0x20, equal to
// '"' or '\\', or with its high bit set makes the result non-zero.
func special(x uint64) uint64 {
	q := x ^ (lsb * '"')
	bs := x ^ (lsb * '\\')
	ctl := (x - lsb*0x20) &^ x // a byte below 0x20
	isQ := (q - lsb) &^ q      // a zero byte in q: a quote
	isBS := (bs - lsb) &^ bs   // a backslash
	return (ctl | isQ | isBS | x) & msb
}

// str scans a string starting at its opening quote and reports whether it
// contains escapes (esc) or non-ASCII bytes (hi).
func (s *scanner) str() (esc, hi bool, err error) {
	b, i := s.b, s.i+1
	for {
		// Strings are most of an event's bytes: skip 8 plain ones at a time,
		// then straight to the first byte that needs a look (the lowest
		// flagged byte of special is exact).
		if i+8 <= len(b) {
			m := special(binary.LittleEndian.Uint64(b[i:]))
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
		} else {
			for i < len(b) && plainByte[b[i]] {
				i++
			}
		}
		if i >= len(b) {
			s.i = i
			return esc, hi, s.eof()
		}
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			return esc, hi, nil
		case c == '\\':
			esc = true
			i++
			if i >= len(b) {
				s.i = i
				return esc, hi, s.eof()
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				i++
				for j := 0; j < 4; j++ {
					if i >= len(b) {
						s.i = i
						return esc, hi, s.eof()
					}
					if !isHex(b[i]) {
						s.i = i
						return esc, hi, s.errf("in \\u hexadecimal character escape")
					}
					i++
				}
			default:
				s.i = i
				return esc, hi, s.errf("in string escape code")
			}
		case c >= utf8.RuneSelf:
			hi, s.hi = true, true
			i++
		default:
			s.i = i
			return esc, hi, s.errf("in string literal")
		}
	}
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func (s *scanner) number() error {
	start := s.i // for the range check
	if s.b[s.i] == '-' {
		s.i++
	}
	if s.i >= len(s.b) {
		return s.eof()
	}
	switch c := s.b[s.i]; {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		for s.i < len(s.b) && isDigit(s.b[s.i]) {
			s.i++
		}
	default:
		return s.errf("in numeric literal")
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.i >= len(s.b) {
			return s.eof()
		}
		if !isDigit(s.b[s.i]) {
			return s.errf("after decimal point in numeric literal")
		}
		for s.i < len(s.b) && isDigit(s.b[s.i]) {
			s.i++
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.i >= len(s.b) {
			return s.eof()
		}
		if !isDigit(s.b[s.i]) {
			return s.errf("in exponent of numeric literal")
		}
		for s.i < len(s.b) && isDigit(s.b[s.i]) {
			s.i++
		}
		s.checkRange(start)
		return nil
	}
	// Without an exponent only a number longer than 1e308 can be out of
	// range; the common short numbers skip the parse.
	if s.i-start > shortNumber {
		s.checkRange(start)
	}
	return nil
}

// shortNumber is the length in characters up to which a number without
// exponent is below 1e308, within float64's range (about 1.8e308).
const shortNumber = 308

// checkRange notes in bad a number b[start:i] beyond float64's range,
// which encoding/json fails to decode into a float64. A number too small
// rounds to zero, which is no error.
func (s *scanner) checkRange(start int) {
	if s.bad != nil {
		return
	}
	if _, ok := parseFloat(s.b[start:s.i]); ok {
		return
	}
	num := s.b[start:s.i]
	if len(num) > 32 {
		s.bad = fmt.Errorf("number %s… (%d digits) out of range at byte %d: %w", num[:24], len(num), start, ErrBadValue)
		return
	}
	s.bad = fmt.Errorf("number %s out of range at byte %d: %w", num, start, ErrBadValue)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// unquote decodes the inside of a validated JSON string the way
// encoding/json does: invalid UTF-8 and unpaired surrogates become U+FFFD.
func unquote(b []byte) string {
	if jsonstr.Plain(b) {
		return string(b)
	}
	return string(jsonstr.Append(make([]byte, 0, len(b)+8), b))
}

// decodeNatural decodes one validated JSON value with the natural mapping:
// strings, int for integral numbers written without fraction or exponent
// (double when they do not fit int64), double otherwise, bool, null, and
// CEL maps and lists for nested values.
func decodeNatural(b []byte) ref.Val {
	d := decoder{b: b}
	return d.value()
}

type decoder struct {
	b []byte
	i int
}

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// value decodes the value at d.i; the input is known to be valid JSON.
func (d *decoder) value() ref.Val {
	d.ws()
	switch c := d.b[d.i]; c {
	case '"':
		return types.String(d.str())
	case 't':
		d.i += 4
		return types.True
	case 'f':
		d.i += 5
		return types.False
	case 'n':
		d.i += 4
		return types.NullValue
	case '{':
		d.i++
		m := map[ref.Val]ref.Val{}
		d.ws()
		if d.b[d.i] == '}' {
			d.i++
			return types.NewRefValMap(types.DefaultTypeAdapter, m)
		}
		for {
			d.ws()
			k := types.String(d.str())
			d.ws()
			d.i++ // :
			v := d.value()
			if types.IsError(v) {
				return v
			}
			m[k] = v
			d.ws()
			c := d.b[d.i]
			d.i++
			if c == '}' {
				return types.NewRefValMap(types.DefaultTypeAdapter, m)
			}
		}
	case '[':
		d.i++
		var l []ref.Val
		d.ws()
		if d.b[d.i] == ']' {
			d.i++
			return types.NewRefValList(types.DefaultTypeAdapter, []ref.Val{})
		}
		for {
			v := d.value()
			if types.IsError(v) {
				return v
			}
			l = append(l, v)
			d.ws()
			c := d.b[d.i]
			d.i++
			if c == ']' {
				return types.NewRefValList(types.DefaultTypeAdapter, l)
			}
		}
	}
	start := d.i
	integral := true
	for d.i < len(d.b) {
		c := d.b[d.i]
		if c == '.' || c == 'e' || c == 'E' {
			integral = false
		} else if !(isDigit(c) || c == '-' || c == '+') {
			break
		}
		d.i++
	}
	return parseNumber(d.b[start:d.i], integral)
}

func parseNumber(num []byte, integral bool) ref.Val {
	s := string(num) // does not escape: strconv copies nothing it keeps
	if integral {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return types.Int(n)
		}
	}
	f, ok := parseFloat(num)
	if !ok {
		return types.NewErr("number %s out of range", s)
	}
	return types.Double(f)
}

// str decodes the string starting at the opening quote at d.i.
func (d *decoder) str() string {
	d.i++
	start := d.i
	for {
		c := d.b[d.i]
		if c == '"' {
			break
		}
		if c == '\\' {
			d.i++
		}
		d.i++
	}
	s := d.b[start:d.i]
	d.i++
	return valueString(s)
}

// valueString returns the text of a string value. Strings without escapes
// share the event's bytes instead of copying them: ParseEvent's contract
// already forbids changing raw, and field values are most of what an event
// allocates.
func valueString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	ascii := true
	for _, c := range b {
		if c == '\\' {
			return unquote(b)
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	if !ascii && !utf8.Valid(b) {
		return unquote(b)
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}
