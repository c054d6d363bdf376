// Package e2e holds Shrike's end-to-end tests of `shrike serve`: the shrike
// binary, built with `go build` into a temporary directory, runs as a
// separate process against Kafka-protocol brokers and Redis servers that are
// processes of their own too, and is fed and read with kcat, the
// librdkafka-based command-line client, or with franz-go from the test.
//
// The tests and what they show:
//   - TestKcatEndToEnd: serve on its embedded defaults, fed with kcat and
//     read with kcat, gives the alerts `shrike run` gives on the same events.
//   - TestCrashRecovery: kill -9 of the engine, twice, mid-stream, with a
//     persistent broker process and a redis-server with AOF: every alert
//     arrives, duplicates carry identical ids, and the engine restarts
//     cleanly.
//   - TestCrashRecoveryExactlyOnce: two instances in one group with
//     exactly-once outputs, killed 21 times: at each test point of the
//     checkpoint barrier (below), twice, then at random while they emit
//     alerts; read_committed readers (franz-go and kcat) get every alert of
//     `shrike run` exactly once, read_uncommitted ones every alert at
//     least once. TestZombieFenced: an instance stopped in the middle of a
//     barrier past its session, resumed after another took its partitions,
//     commits nothing. TestRedisOutageExactlyOnce: exactly once through a
//     20 s Redis outage.
//   - TestRedisOutage: Redis unreachable for a while (a TCP proxy the test
//     controls): not ready, no offset commits, the engine keeps running,
//     and nothing is lost once Redis is back.
//   - TestMalformedRecord: a record that is not JSON goes to the dead-letter
//     topic with its reason header, and the partition keeps flowing.
//   - TestPoisonEventsKeepStreams: events with 1e999 and with invalid UTF-8,
//     fed with kcat between good ones, go to the dead-letter topic with
//     their reasons; a REST subscription (curl -N) and `shrike alerts tail`
//     stay open and deliver every later alert.
//   - TestOversizedAlertReachesTopic: the 1.5 MB alert of a 500 KB key
//     reaches the alerts topic shrunk, with its truncated list, and
//     ListAlerts lists it with that list.
//   - TestWebhookDelivery: serve with three webhooks, fed generated
//     payments: every alert of `shrike run` reaches a receiver that
//     refuses each alert's first two attempts, with valid signatures;
//     every alert of a webhook whose receiver is down lands in
//     shrike-alerts-undelivered with its webhook, attempts and reason; a
//     filtered slack webhook gets the high and critical alerts only; the
//     webhook metrics exist at 0 at start and count it all.
//     TestWebhookCrashLosesNothing: kill -9 of serve while it delivers to
//     a slow receiver, and a restart: every alert arrives, a duplicate
//     with its id. TestWebhookSlowReceiverDoesNotSlowMatching: with a
//     receiver that holds each request 10 s, the alerts topic gets every
//     alert while the receiver has taken a few requests.
//   - TestWeakTokenRefused: serve refuses a guessable token file (status 2),
//     naming the token, its file and how to generate a good one.
//   - TestScaleOut: two instances in one consumer group split the
//     partitions; one leaves mid-stream; the alerts are still run's.
//   - TestREADMEQuickStart, TestREADMEFirstRule: the commands of README.md's
//     quick start, "Your first rule" and API examples (and api/README.md's),
//     taken from its code blocks and run with sh as written, but for the
//     built binary and free ports: alerts arrive, output is what the README
//     shows; TestDocsFirstTest likewise for docs/testing.md's first test;
//     TestREADMEConfiguration: serve accepts the README's
//     configuration file with every field.
//
// Invariants:
//   - Alerts are compared as sets of their JSON without "id" and
//     "detected_at": only those depend on where the events were read (Kafka
//     positions, or file lines for `shrike run`) and on the wall clock.
//     Among the alerts of one run of the engine, equal alerts must carry
//     equal ids (at-least-once delivery with deterministic ids).
//   - Windows are closed by one far-future "flush" event per partition,
//     appended to the events `shrike run` gets as well, not by the wall
//     clock: the results do not depend on the machine's date or speed.
//   - The Kafka broker of the tests that need one apart from the engine is
//     this test binary itself in a helper mode (kfake, optionally with a
//     data directory), started as a separate process.
//   - Without kcat, redis-server, curl or jq the tests that need them skip,
//     unless CI is set: then a missing tool fails them (.ci/run installs
//     them).
//   - The binary is built with the build tag shrike_testhooks, which adds
//     test points to the exactly-once checkpoint barrier (a normal build
//     has none; cep/testpoints_hooks.go). SHRIKE_TEST_CRASH_AT=<point>:<n>
//     makes the process SIGKILL itself at the n-th call of the point (n
//     from 1, counted per point), SHRIKE_TEST_PAUSE_AT=<point>:<n> SIGSTOP
//     itself, so that a test can let another instance take its
//     partitions and SIGCONT it as a zombie. The points, in barrier order:
//     work (an alert produced into the open transaction), staged
//     (checkpoints staged in Redis), txn-offsets (the TxnOffsetCommit
//     answer read: the tags are in the transaction, not ended),
//     endtxn-sent (EndTxn written: the broker may decide either way),
//     committed (the transaction committed, the checkpoints not promoted)
//     and promoted. Before the signal the process writes "shrike test
//     point: <VAR> <point>:<n>, sending <signal> to self" to stderr, which
//     the tests check, so that a run that never reached its point fails.
//   - SHRIKE_E2E_BIN names a shrike binary to test instead of building one;
//     SHRIKE_REDIS_CLUSTER (seeds, comma-separated) puts TestScaleOut's state
//     in that Redis Cluster, under a key prefix of its own.
package e2e
