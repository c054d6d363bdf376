package state

import (
	"context"
	"fmt"
	"sync"
)

// Memory is a Store held in process memory, for tests: it behaves like
// Redis (atomic commits, fencing, deletes) without persistence. Every value
// going in or out is copied, so a caller may reuse its buffers and cannot
// change stored state by writing to what it loaded. It is safe for
// concurrent use.
type Memory struct {
	mu     sync.Mutex // guards everything below; a commit holds it throughout, which makes it atomic
	parts  map[PartitionID]*memPartition
	closed bool
}

type memPartition struct {
	keys  map[string][]byte
	cp    Checkpoint
	hasCP bool
	// pend and pkeys are the pending checkpoint and its staged keys (a
	// nil value: the key is deleted), when hasPend.
	pend    Checkpoint
	pkeys   map[string][]byte
	hasPend bool
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{parts: map[PartitionID]*memPartition{}}
}

// LoadCheckpoint returns the partition's last committed checkpoint.
func (m *Memory) LoadCheckpoint(ctx context.Context, p PartitionID) (Checkpoint, bool, error) {
	if err := ctx.Err(); err != nil {
		return Checkpoint{}, false, fmt.Errorf("load checkpoint of %s: %w", partName(p), err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Checkpoint{}, false, fmt.Errorf("load checkpoint of %s: %w", partName(p), ErrClosed)
	}
	mp := m.parts[p]
	if mp == nil || !mp.hasCP {
		return Checkpoint{}, false, nil
	}
	cp := mp.cp
	cp.Streams = cloneStreams(cp.Streams)
	return cp, true, nil
}

// LoadKeys returns the stored states of the given keys of the partition.
func (m *Memory) LoadKeys(ctx context.Context, p PartitionID, keys []string) (map[string][]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("load keys of %s: %w", partName(p), err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, fmt.Errorf("load keys of %s: %w", partName(p), ErrClosed)
	}
	out := make(map[string][]byte, len(keys))
	mp := m.parts[p]
	if mp == nil {
		return out, nil
	}
	for _, k := range keys {
		if s, ok := mp.keys[k]; ok {
			out[k] = append([]byte{}, s...)
		}
	}
	return out, nil
}

// LoadAll returns every stored key state of the partition. It is meant for
// tests and tools (checking what a crash left behind), not for the engine,
// which loads the keys it needs.
func (m *Memory) LoadAll(ctx context.Context, p PartitionID) (map[string][]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("load all keys of %s: %w", partName(p), err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, fmt.Errorf("load all keys of %s: %w", partName(p), ErrClosed)
	}
	out := map[string][]byte{}
	if mp := m.parts[p]; mp != nil {
		for k, s := range mp.keys {
			out[k] = append([]byte{}, s...)
		}
	}
	return out, nil
}

// Commit writes the changed key states, then deletes the emptied keys (a
// key in both is deleted), and replaces the checkpoint, all at once. It
// fails with ErrFenced, changing nothing, when the stored checkpoint has a
// greater Generation than cp.
func (m *Memory) Commit(ctx context.Context, p PartitionID, put []KeyState, del []string, cp Checkpoint) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("commit %s: %w", partName(p), err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("commit %s: %w", partName(p), ErrClosed)
	}
	mp := m.parts[p]
	if err := mp.check(cp.Generation); err != nil {
		return fmt.Errorf("commit %s: %w", partName(p), err)
	}
	if mp != nil && mp.hasPend {
		return fmt.Errorf("commit %s: %w", partName(p), ErrPending)
	}
	if mp == nil {
		mp = &memPartition{keys: map[string][]byte{}}
		m.parts[p] = mp
	}
	for _, ks := range put {
		mp.keys[ks.Key] = append([]byte{}, ks.State...)
	}
	for _, k := range del {
		delete(mp.keys, k)
	}
	cp.Streams = cloneStreams(cp.Streams)
	mp.cp, mp.hasCP = cp, true
	return nil
}

// Claim takes the partition over: it returns the last committed
// checkpoint and stores it again with the next generation, in one atomic
// step, so that of two owners claiming at once each gets its own
// generation and the earlier one is fenced.
func (m *Memory) Claim(ctx context.Context, p PartitionID) (prev Checkpoint, ok bool, claimed Checkpoint, err error) {
	if err := ctx.Err(); err != nil {
		return Checkpoint{}, false, Checkpoint{}, fmt.Errorf("claim %s: %w", partName(p), err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Checkpoint{}, false, Checkpoint{}, fmt.Errorf("claim %s: %w", partName(p), ErrClosed)
	}
	mp := m.parts[p]
	if mp == nil {
		mp = &memPartition{keys: map[string][]byte{}}
		m.parts[p] = mp
	}
	if mp.hasCP {
		prev, ok = mp.cp, true
		prev.Streams = cloneStreams(prev.Streams)
	}
	claimed = nextClaim(prev, ok)
	mp.cp, mp.hasCP = claimed, true
	mp.cp.Streams = cloneStreams(claimed.Streams)
	return prev, ok, claimed, nil
}

// check fails with ErrFenced when the stored checkpoint's generation is
// greater than gen.
func (mp *memPartition) check(gen int64) error {
	if mp != nil && mp.hasCP && mp.cp.Generation > gen {
		return fmt.Errorf("generation %d, stored %d: %w", gen, mp.cp.Generation, ErrFenced)
	}
	return nil
}

// open checks ctx and the store, and returns the partition (nil: nothing
// stored), with mu held; the caller unlocks.
func (m *Memory) open(ctx context.Context, p PartitionID) (*memPartition, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	return m.parts[p], nil
}

// Stage writes a pending checkpoint and its keys beside the committed
// ones. A key state must not be empty, as Redis stages a deleted key as
// an empty value.
func (m *Memory) Stage(ctx context.Context, p PartitionID, put []KeyState, del []string, pend Checkpoint) error {
	mp, err := m.open(ctx, p)
	if err != nil {
		return fmt.Errorf("stage %s: %w", partName(p), err)
	}
	defer m.mu.Unlock()
	for _, ks := range put {
		if len(ks.State) == 0 {
			return fmt.Errorf("stage %s: key %q: empty state (a key without state is deleted, not staged)", partName(p), ks.Key)
		}
	}
	if err := mp.check(pend.Generation); err != nil {
		return fmt.Errorf("stage %s: %w", partName(p), err)
	}
	if mp == nil {
		mp = &memPartition{keys: map[string][]byte{}}
		m.parts[p] = mp
	}
	if mp.hasPend {
		return fmt.Errorf("stage %s: %w", partName(p), ErrPending)
	}
	if want := mp.cp.Seq + 1; pend.Seq != want {
		return fmt.Errorf("stage %s: sequence %d, want %d (the committed one's plus one)", partName(p), pend.Seq, want)
	}
	mp.pkeys = make(map[string][]byte, len(put)+len(del))
	for _, ks := range put {
		mp.pkeys[ks.Key] = append([]byte{}, ks.State...)
	}
	for _, k := range del {
		mp.pkeys[k] = nil
	}
	pend.Streams = cloneStreams(pend.Streams)
	mp.pend, mp.hasPend = pend, true
	return nil
}

// LoadPending returns the partition's pending checkpoint.
func (m *Memory) LoadPending(ctx context.Context, p PartitionID) (Checkpoint, bool, error) {
	mp, err := m.open(ctx, p)
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("load pending checkpoint of %s: %w", partName(p), err)
	}
	defer m.mu.Unlock()
	if mp == nil || !mp.hasPend {
		return Checkpoint{}, false, nil
	}
	pend := mp.pend
	pend.Streams = cloneStreams(pend.Streams)
	return pend, true, nil
}

// Promote makes the pending checkpoint the committed one.
func (m *Memory) Promote(ctx context.Context, p PartitionID, gen int64) (Checkpoint, error) {
	mp, err := m.open(ctx, p)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("promote %s: %w", partName(p), err)
	}
	defer m.mu.Unlock()
	if err := mp.check(gen); err != nil {
		return Checkpoint{}, fmt.Errorf("promote %s: %w", partName(p), err)
	}
	if mp == nil {
		return Checkpoint{}, nil
	}
	if mp.hasPend {
		for k, s := range mp.pkeys {
			if s == nil {
				delete(mp.keys, k)
			} else {
				mp.keys[k] = s
			}
		}
		mp.cp, mp.hasCP = mp.pend, true
		mp.cp.Generation = gen
		mp.pend, mp.pkeys, mp.hasPend = Checkpoint{}, nil, false
	}
	cp := mp.cp
	cp.Streams = cloneStreams(cp.Streams)
	return cp, nil
}

// Discard drops the pending checkpoint, keeping its Seq.
func (m *Memory) Discard(ctx context.Context, p PartitionID, gen int64) error {
	mp, err := m.open(ctx, p)
	if err != nil {
		return fmt.Errorf("discard %s: %w", partName(p), err)
	}
	defer m.mu.Unlock()
	if err := mp.check(gen); err != nil {
		return fmt.Errorf("discard %s: %w", partName(p), err)
	}
	if mp == nil || !mp.hasPend {
		return nil
	}
	if !mp.hasCP {
		mp.cp, mp.hasCP = Checkpoint{Offset: -1, Generation: gen}, true
	}
	mp.cp.Seq = max(mp.cp.Seq, mp.pend.Seq)
	mp.pend, mp.pkeys, mp.hasPend = Checkpoint{}, nil, false
	return nil
}

// Close makes every later call fail with ErrClosed. The stored state is
// dropped.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	clear(m.parts)
	return nil
}

// cloneStreams copies a checkpoint's Streams; empty is nil, as decoding a
// stored checkpoint gives.
func cloneStreams(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}
