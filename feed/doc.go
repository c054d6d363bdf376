// Package feed is the API's window onto Kafka (api/README.md). AlertFeed
// reads every partition of the alerts topic without a group, so that any
// instance serves any subscriber the alerts of all instances; Publisher
// writes events for producers without a Kafka client. Invariants of the
// AlertFeed:
//
//   - It never waits for a subscriber: each has a bounded buffer and is
//     cut off (ErrSlowSubscriber) when it fills.
//   - A cursor is the next offset of every partition: resuming from one
//     replays from those offsets with a consumer of its own until it has
//     caught up with the feed, then joins the live fan-out under the
//     feed's lock, missing no alert and getting none twice; a cursor
//     behind the topic's retention is refused (ErrCursorExpired) rather
//     than skipping alerts.
package feed
