// Package delivery delivers alerts to webhooks (README.md#webhooks): each
// configured webhook reads the alerts topic in a Kafka consumer group of
// its own, POSTs each alert its filter passes, signed with HMAC-SHA256,
// retries with exponential backoff and jitter, and after its last attempt
// produces the alert to the undelivered topic. It runs beside the engine
// on clients and goroutines of its own, so a slow or dead receiver never
// slows matching.
//
// Invariants:
//
//   - At least once: a partition's offset is committed only up to the
//     first alert that is neither delivered, filtered out nor
//     dead-lettered, so that a crash or a rebalance resumes at the
//     oldest alert whose delivery had not ended. An alert delivered twice
//     carries the same id (X-Shrike-Alert-Id) both times.
//   - Bounded: at most Webhook.MaxInFlight alerts of a webhook are being
//     delivered at once, and the consumer polls for more only when a
//     slot is free; a response's headers and body are read up to fixed
//     bounds; redirects are not followed.
//   - A new webhook (a group without committed offsets) starts at the end
//     of the alerts topic as it is when the webhook first runs; from then
//     on its committed offsets carry delivery across restarts.
package delivery
