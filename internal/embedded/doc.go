// Package embedded starts the in-process stand-ins `shrike serve` uses when
// no Kafka brokers or Redis addresses are configured (docs/design.md#runtime): a
// Kafka-protocol broker (franz-go's kfake) and a Redis server (miniredis),
// both listening on 127.0.0.1, so that one command gives a newcomer a
// working engine that kcat and redis-cli can talk to.
//
// Invariants:
//   - Both listen only on loopback: they have no authentication.
//   - NewKafka returns once every requested topic exists, so that
//     consumers started afterwards see their topics' partitions at once.
//   - Both keep their data in memory only: nothing survives Close or a
//     crash, so a restart never resumes into a damaged log.
//   - Close releases every goroutine and listener the value started, and
//     may be called more than once.
//   - The embedded Redis expires keys against the wall clock, as a real
//     one does.
package embedded
