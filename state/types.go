package state

import "errors"

// PartitionID names one source partition's state. Group is the consumer
// group, so that two groups reading the same topic keep separate state.
type PartitionID struct {
	Group     string
	Topic     string
	Partition int32
}

// KeyState is one key's encoded state (matcher.Partition.AppendKeyState).
type KeyState struct {
	Key   string
	State []byte
}

// Checkpoint is the partition-wide record written with every commit.
type Checkpoint struct {
	// Offset is where consumption resumes: the oldest offset still buffered
	// by the matcher at the checkpoint, or the next offset to fetch.
	Offset int64
	// Generation increases with every assignment of the partition to a
	// worker (fencing, see ErrFenced).
	Generation int64
	// Seq numbers the partition's checkpoints staged for a Kafka
	// transaction (Store.Stage): a pending checkpoint has the committed
	// one's Seq plus one, and Seq never goes back, not even when a pending
	// checkpoint is discarded, so that the tag a transaction commits with
	// the partition's offset names one staging only (docs/design.md).
	Seq int64
	// Streams holds, per stream of rulesets reading the partition, the
	// matcher checkpoint (watermark, newest event time, arrival counter),
	// encoded by the engine.
	Streams []byte
}

// ErrFenced is returned by a commit when a newer owner of the partition has
// committed since (a worker that lost its partition must not overwrite the
// new owner's state).
var ErrFenced = errors.New("partition fenced: a newer owner committed")

// nextClaim is the checkpoint a new owner stores when it claims a
// partition whose last checkpoint is prev (ok: there is one): the same
// offset and streams, with the next generation. A partition never
// checkpointed resumes from Kafka's offset (-1).
func nextClaim(prev Checkpoint, ok bool) Checkpoint {
	if !ok {
		return Checkpoint{Offset: -1, Generation: prev.Generation + 1}
	}
	return Checkpoint{Offset: prev.Offset, Generation: prev.Generation + 1, Seq: prev.Seq, Streams: prev.Streams}
}

// ErrPending is returned by Stage and Commit while the partition has a
// pending checkpoint: it must be promoted or discarded first, or the keys
// it staged would be lost.
var ErrPending = errors.New("a pending checkpoint is not resolved yet")
