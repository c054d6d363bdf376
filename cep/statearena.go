package cep

import (
	"sync"

	"github.com/shrike-cep/shrike/matcher"
)

// stateArena holds the key states one checkpoint encodes in a few large
// buffers instead of a buffer per key grown from nothing: encoding a
// state of a few hundred bytes to a few kilobytes into a fresh slice
// reallocated, zeroed and copied it about ten times, which cost more than
// the encoding itself. The buffers come from a pool shared by the workers
// and go back to it once the Store has the checkpoint (release), so that
// the memory they hold follows the checkpoints being written, not the
// number of partitions.
//
// The states it returns are valid until release: the Store must not keep
// them past Commit or Stage (cep.Store documents this).
type stateArena struct {
	cur  []byte    // the buffer being filled; len(cur) bytes are taken
	used []*[]byte // the buffers this checkpoint filled, cur's included
}

// arenaChunk is the size of an arena buffer: large enough that most
// states fit in the room left, small enough that a partition with few
// changed keys takes little.
const arenaChunk = 256 << 10

// arenaMinRoom is the room below which a new buffer is taken rather than
// a state started at the end of the current one (whose room it would
// likely outgrow).
const arenaMinRoom = 4 << 10

var arenaPool = sync.Pool{New: func() any {
	b := make([]byte, 0, arenaChunk)
	return &b
}}

// appendKeyState encodes the state of key in part into the arena; ok is
// false when the key holds no state. A state larger than the room of a
// buffer gets an allocation of its own.
func (a *stateArena) appendKeyState(part *matcher.Partition, key string) ([]byte, bool) {
	if cap(a.cur)-len(a.cur) < arenaMinRoom {
		a.grow()
	}
	n := len(a.cur)
	room := cap(a.cur) - n
	out, ok := part.AppendKeyState(a.cur[n:n], key)
	if !ok {
		return nil, false
	}
	if cap(out) != room {
		// Outgrew the room: the encoder moved it to a slice of its own.
		return out, true
	}
	a.cur = a.cur[:n+len(out)]
	return out[:len(out):len(out)], true
}

// grow starts a new buffer from the pool.
func (a *stateArena) grow() {
	p := arenaPool.Get().(*[]byte)
	a.used = append(a.used, p)
	a.cur = (*p)[:0]
}

// release gives the buffers back to the pool: every state appendKeyState
// returned is invalid from now on.
func (a *stateArena) release() {
	for i, p := range a.used {
		*p = (*p)[:0]
		arenaPool.Put(p)
		a.used[i] = nil
	}
	a.used = a.used[:0]
	a.cur = nil
}
