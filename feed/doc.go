// Package feed is the API's window onto Kafka (api/README.md). AlertFeed
// reads every partition of the alerts topic without a group, so that any
// instance serves any subscriber the alerts of all instances; Publisher
// writes events for producers without a Kafka client. Invariants of the
// AlertFeed:
//
//   - It never waits for a subscriber and never cuts one off: each
//     follows a shared ring of recent alerts, and reads what it missed
//     (a slow reader, an old cursor) from Kafka through the feed's one
//     replay client, in bounded, shared reads.
//   - A cursor is the next offset of every partition: resuming from one
//     reads from those offsets, from Kafka where the ring no longer holds
//     them, missing no alert and getting none twice; a cursor behind the
//     topic's retention is refused (ErrCursorExpired) rather than
//     skipping alerts.
package feed
