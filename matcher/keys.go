package matcher

import (
	"hash/maphash"
	"iter"
)

// The key states are found by a hash of the key that Program.Prepare
// computes on the decoding goroutine, so that the matching goroutine,
// which looks a key up for every record, neither hashes it nor compares
// it with a key stored apart from the key state: a map keyed by the hash
// compares eight bytes in its own memory, and the one key comparison left
// reads the key state's inline key, which the matcher reads next anyway.

// keySeed seeds the key hashes of every Partition in the process, so that
// a record prepared by any Program hashes its key as every Partition does.
var keySeed = maphash.MakeSeed()

func hashKey(key string) uint64 { return maphash.String(keySeed, key) }

// keyHash returns the hash of r.Key: the one Prepare computed, else a new
// one (records pushed without Prepare).
func (r *Record) keyHash() uint64 {
	if r.pre.prog != nil {
		return r.pre.keyHash
	}
	return hashKey(r.Key)
}

// keyTable holds the resident key states. A key whose hash another
// resident key already has (with 64-bit hashes, next to never) goes to
// collided, which a lookup reads only when the hash's entry is another
// key.
type keyTable struct {
	byHash   map[uint64]*keyState
	collided map[string]*keyState
}

func newKeyTable() keyTable { return keyTable{byHash: map[uint64]*keyState{}} }

// get returns the state of key, whose hash is h; nil when not resident.
func (t *keyTable) get(key string, h uint64) *keyState {
	ks := t.byHash[h]
	if ks != nil && ks.key == key {
		return ks
	}
	if len(t.collided) == 0 {
		return nil
	}
	return t.collided[key]
}

// lookup is get for a caller without the hash.
func (t *keyTable) lookup(key string) *keyState { return t.get(key, hashKey(key)) }

// put adds ks, which must not be resident.
func (t *keyTable) put(ks *keyState) {
	if _, taken := t.byHash[ks.hash]; !taken {
		t.byHash[ks.hash] = ks
		return
	}
	if t.collided == nil {
		t.collided = map[string]*keyState{}
	}
	t.collided[ks.key] = ks
}

// remove drops ks.
func (t *keyTable) remove(ks *keyState) {
	if t.byHash[ks.hash] == ks {
		delete(t.byHash, ks.hash)
		return
	}
	delete(t.collided, ks.key)
}

func (t *keyTable) len() int { return len(t.byHash) + len(t.collided) }

// all yields every resident key state; the loop may remove the one it is
// given.
func (t *keyTable) all() iter.Seq[*keyState] {
	return func(yield func(*keyState) bool) {
		for _, ks := range t.byHash {
			if !yield(ks) {
				return
			}
		}
		for _, ks := range t.collided {
			if !yield(ks) {
				return
			}
		}
	}
}
