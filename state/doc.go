// Package state persists key state and partition checkpoints for the
// engine (docs/design.md#runtime): an in-memory store for tests and a Redis store
// (standalone or Cluster) for production. It imports nothing of Shrike's
// above matcher; the engine (package cep) declares the Store interface it
// needs and these types satisfy it.
//
// Invariants every store keeps:
//
//   - A commit is atomic: after a crash, a lost connection or an error,
//     either all of its key writes, deletes and checkpoint are visible or
//     none are. Deletes apply after writes, so a key in both is gone.
//   - Fencing: a commit whose checkpoint Generation is lower than the
//     stored one fails with ErrFenced and changes nothing, so a worker that
//     lost its partition cannot overwrite the new owner's state. Equal
//     generations commit (the same owner, checkpoint after checkpoint). The
//     new owner should commit once right after it restores (even with no
//     key), which claims the partition before the old owner's next commit.
//   - Staging (exactly-once mode): Stage writes a pending checkpoint and
//     its keys beside the committed ones, changing nothing committed;
//     Promote makes them the committed ones atomically, Discard drops them.
//     While one is pending, Stage and Commit fail with ErrPending. Each is
//     fenced like a commit. A checkpoint's Seq never goes back, not even
//     through a discard.
//   - Values are opaque bytes and are copied: a caller may reuse its
//     buffers after a call returns.
//   - A checkpoint is stored with a version byte; this package reads every
//     version it ever wrote (testdata/ holds one fixture per version) and
//     refuses one it does not know (ErrBadCheckpoint) rather than guess.
//   - Errors name the operation and partition. ErrUnavailable marks the
//     ones worth retrying with backoff; see its documentation for which.
//
// The Redis layout is on the Redis type. Nothing here expires keys: the
// engine deletes a key when its state becomes empty (the matcher drops
// state when its windows close).
package state
