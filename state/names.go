package state

import (
	"strconv"
	"strings"
)

// partName names a partition in error messages.
func partName(p PartitionID) string {
	return "partition " + p.Group + "/" + p.Topic + "/" + strconv.Itoa(int(p.Partition))
}

// tagEscaper keeps a name from ending the hash tag early ('}'), and keeps
// the escaping reversible ('%'). Topic names also escape '/', so that a
// tag splits back into group, topic and partition from the right whatever
// the group is called. Kafka topic names never need it, and real group
// names rarely do: the layout stays readable.
var (
	groupEscaper = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D")
	topicEscaper = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D", "/", "%2F")
)

// redisKeys returns the partition's Redis keys: the hash of key states and
// the checkpoint. Both carry the one hash tag {group/topic/partition}, so
// that they live in one Redis Cluster slot and a commit (MULTI/EXEC on
// both) is allowed there.
func redisKeys(prefix string, p PartitionID) (keys, cp string) {
	base := redisBase(prefix, p)
	return base + "keys", base + "cp"
}

// redisPendingKeys returns the partition's keys of a staged checkpoint: the
// pending checkpoint and the hash of staged key states, under the same hash
// tag as redisKeys', so that a promotion moves them in one slot.
func redisPendingKeys(prefix string, p PartitionID) (pend, pkeys string) {
	base := redisBase(prefix, p)
	return base + "pend", base + "pkeys"
}

// redisBase is what the partition's keys start with, up to the suffix.
func redisBase(prefix string, p PartitionID) string {
	return prefix + ":{" + groupEscaper.Replace(p.Group) + "/" + topicEscaper.Replace(p.Topic) + "/" + strconv.Itoa(int(p.Partition)) + "}:"
}
