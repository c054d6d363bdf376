package state

import (
	"encoding/binary"
	"fmt"
)

// checkpointVersion is the version this Shrike writes. Readers keep a
// decoder for every older version, so that a newer Shrike resumes from a
// checkpoint an older one wrote; testdata/ holds a fixture per version.
const checkpointVersion = 2

// appendCheckpoint appends the encoding of cp to dst.
//
// Version 2 (written): the version byte 2; Offset, Generation and Seq as
// signed varints; the length of Streams as an unsigned varint and Streams
// itself. Nothing follows: a field added later makes a new version.
//
// Version 1 (read only): as version 2 without Seq, which decodes as 0 (a
// partition never staged for a Kafka transaction).
func appendCheckpoint(dst []byte, cp Checkpoint) []byte {
	dst = append(dst, checkpointVersion)
	dst = binary.AppendVarint(dst, cp.Offset)
	dst = binary.AppendVarint(dst, cp.Generation)
	dst = binary.AppendVarint(dst, cp.Seq)
	dst = binary.AppendUvarint(dst, uint64(len(cp.Streams)))
	return append(dst, cp.Streams...)
}

// decodeCheckpoint decodes a checkpoint of any known version. Streams
// does not alias b.
func decodeCheckpoint(b []byte) (Checkpoint, error) {
	if len(b) == 0 {
		return Checkpoint{}, fmt.Errorf("%w: empty", ErrBadCheckpoint)
	}
	switch v := b[0]; v {
	case 1:
		return decodeCheckpointFields(b[1:], false)
	case 2:
		return decodeCheckpointFields(b[1:], true)
	default:
		return Checkpoint{}, fmt.Errorf("%w: version %d is not known to this version of Shrike (it reads 1 to %d)", ErrBadCheckpoint, v, checkpointVersion)
	}
}

// decodeCheckpointFields decodes what follows the version byte of version
// 1 (withSeq false) or 2, which differ only in Seq.
func decodeCheckpointFields(b []byte, withSeq bool) (Checkpoint, error) {
	var cp Checkpoint
	var n int
	if cp.Offset, n = binary.Varint(b); n <= 0 {
		return Checkpoint{}, fmt.Errorf("%w: offset", ErrBadCheckpoint)
	}
	b = b[n:]
	if cp.Generation, n = binary.Varint(b); n <= 0 {
		return Checkpoint{}, fmt.Errorf("%w: generation", ErrBadCheckpoint)
	}
	b = b[n:]
	if withSeq {
		if cp.Seq, n = binary.Varint(b); n <= 0 {
			return Checkpoint{}, fmt.Errorf("%w: seq", ErrBadCheckpoint)
		}
		b = b[n:]
	}
	size, n := binary.Uvarint(b)
	if n <= 0 {
		return Checkpoint{}, fmt.Errorf("%w: streams length", ErrBadCheckpoint)
	}
	b = b[n:]
	if size != uint64(len(b)) {
		return Checkpoint{}, fmt.Errorf("%w: streams length %d, %d bytes left", ErrBadCheckpoint, size, len(b))
	}
	if size > 0 {
		cp.Streams = append([]byte(nil), b...)
	}
	return cp, nil
}
