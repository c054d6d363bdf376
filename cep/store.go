package cep

import (
	"context"

	"github.com/shrike-cep/shrike/state"
)

// Store persists what a partition worker needs to resume elsewhere
// (docs/design.md#runtime): per source partition, the encoded state of each key
// (matcher.Partition.AppendKeyState) and a checkpoint. state.Memory (tests)
// and state.Redis (standalone or Cluster; one hash tag per partition so
// that a commit is atomic on one slot) implement it. The engine calls a
// Store only in batches: at assignment, before a batch of records whose
// keys are not in memory, and at checkpoints — never once per event.
type Store interface {
	// LoadCheckpoint returns the partition's last committed checkpoint;
	// ok is false when there is none (a partition never checkpointed).
	LoadCheckpoint(ctx context.Context, p state.PartitionID) (cp state.Checkpoint, ok bool, err error)
	// LoadKeys returns the stored states of the given keys of the
	// partition; keys without state are absent from the map.
	LoadKeys(ctx context.Context, p state.PartitionID, keys []string) (map[string][]byte, error)
	// Commit atomically writes the changed key states, deletes the emptied
	// keys and replaces the checkpoint: after a crash either all of it is
	// visible or none. A commit whose checkpoint Generation is lower than
	// the stored one fails with state.ErrFenced. The key states are the
	// caller's again once it returns: it must not keep them.
	Commit(ctx context.Context, p state.PartitionID, put []state.KeyState, del []string, cp state.Checkpoint) error
	// Claim takes the partition over for a new owner: it returns the last
	// committed checkpoint (ok false: none) and atomically stores it again
	// with the next generation, which it returns as claimed. Two owners
	// claiming at once get different generations, so the earlier one's
	// commits fail with state.ErrFenced.
	Claim(ctx context.Context, p state.PartitionID) (prev state.Checkpoint, ok bool, claimed state.Checkpoint, err error)
	// Stage writes a pending checkpoint beside the committed one: the
	// changed key states, the emptied keys and pend, atomically, without
	// touching the committed keys or checkpoint. pend.Seq must be the
	// committed checkpoint's Seq plus one. It fails with state.ErrFenced
	// when the stored generation is greater than pend.Generation, and with
	// state.ErrPending when a pending checkpoint exists already. As with
	// Commit, it must not keep the key states once it returns.
	Stage(ctx context.Context, p state.PartitionID, put []state.KeyState, del []string, pend state.Checkpoint) error
	// LoadPending returns the partition's pending checkpoint; ok is false
	// when there is none.
	LoadPending(ctx context.Context, p state.PartitionID) (pend state.Checkpoint, ok bool, err error)
	// Promote makes the pending checkpoint the committed one, atomically:
	// its staged keys replace (or delete) the committed ones, and the
	// committed checkpoint becomes pend with Generation gen. Without a
	// pending checkpoint it changes nothing (a retried Promote). It returns
	// the committed checkpoint, and fails with state.ErrFenced when the
	// stored generation is greater than gen.
	Promote(ctx context.Context, p state.PartitionID, gen int64) (state.Checkpoint, error)
	// Discard drops the pending checkpoint and its staged keys; the
	// committed checkpoint keeps its keys, offset and streams but takes the
	// pending one's Seq (if greater), so that it is never staged again.
	// Without a pending checkpoint it changes nothing. It fails with
	// state.ErrFenced when the stored generation is greater than gen.
	Discard(ctx context.Context, p state.PartitionID, gen int64) error
	// Close releases the Store's connections.
	Close() error
}
