package cep

import (
	"sync"

	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
)

// A replay decodes every event into a record allocated with its event and
// the event's bytes (recordEvent), some 750 bytes for a payments event,
// which the matcher is done with microseconds later: partial matches keep
// a copy of what they take. Allocating them anew made a replay allocate
// three quarters of a gigabyte per million events, and the runtime zero
// and sweep as much. A replay of one stream instead recycles them: the
// matcher hands back each record it is done with (matcher.Options.Recycle)
// and the decoders take them again, with the bytes' buffer. With several
// streams an event may have several records sharing it, and nothing is
// recycled.

// recordPool is the free records of one replay, shared by the matching
// goroutine, which returns them, and the decoders, which take them, a
// batch at a time so that the lock is rare.
type recordPool struct {
	mu   sync.Mutex
	free []freeRecord
	// returned are the records the matching goroutine gave back since it
	// last moved them to free; only that goroutine touches it.
	returned []freeRecord
}

// freeRecord is a recycled record and the buffer its event's bytes were
// in, emptied.
type freeRecord struct {
	re  *recordEvent
	raw []byte
}

// recycleBatch is how many records move between the matching goroutine
// and the pool, and from the pool to a decoder, at once.
const recycleBatch = 256

// maxFreeRecords bounds the records the pool holds: a burst that frees
// more than the decoders take again is left to the collector.
const maxFreeRecords = 64 * recycleBatch

// poisonRecycled, set by tests, overwrites the bytes of every recycled
// event, so that anything that kept one would show it.
var poisonRecycled bool

// recycle takes back a record the matcher is done with. Every record of a
// replay with a pool is the first field of a recordEvent.
func (p *recordPool) recycle(r *matcher.Record) {
	re := recordEventOf(r)
	raw := re.ev.Raw()
	if poisonRecycled {
		for i := range raw {
			raw[i] = '#'
		}
	}
	re.rec = matcher.Record{}
	re.ev = rules.Event{}
	p.returned = append(p.returned, freeRecord{re: re, raw: raw[:0]})
	if len(p.returned) < recycleBatch {
		return
	}
	p.mu.Lock()
	if room := maxFreeRecords - len(p.free); room > 0 {
		p.free = append(p.free, p.returned[:min(room, len(p.returned))]...)
	}
	p.mu.Unlock()
	clear(p.returned)
	p.returned = p.returned[:0]
}

// take moves up to recycleBatch free records to dst.
func (p *recordPool) take(dst []freeRecord) []freeRecord {
	p.mu.Lock()
	n := min(recycleBatch, len(p.free))
	dst = append(dst, p.free[len(p.free)-n:]...)
	clear(p.free[len(p.free)-n:])
	p.free = p.free[:len(p.free)-n]
	p.mu.Unlock()
	return dst
}

// records hands a decoder its records: recycled ones while the pool has
// some, else new ones.
type records struct {
	pool  *recordPool // nil: always new
	local []freeRecord
}

// next returns a zero record with its event, and a buffer (perhaps nil)
// for the event's bytes.
func (rs *records) next() (*recordEvent, []byte) {
	if rs.pool != nil {
		if len(rs.local) == 0 {
			rs.local = rs.pool.take(rs.local)
		}
		if n := len(rs.local); n > 0 {
			f := rs.local[n-1]
			rs.local[n-1] = freeRecord{}
			rs.local = rs.local[:n-1]
			return f.re, f.raw
		}
	}
	return new(recordEvent), nil
}
