// Command shrike is Shrike's one binary (README.md#command-line).
//
//	shrike check RULESET...                    validate and compile rulesets
//	shrike run --rules RULESET... EVENTS...    replay recorded events, print alerts
//	shrike test TESTFILE... | DIR/...          run rule unit tests (docs/testing.md)
//	shrike explain --rules R... --key K EVENTS...   why rules did or did not fire for a key (docs/explain.md)
//	shrike diff --rules OLD... --against NEW... EVENTS...   alerts of two versions compared
//	shrike gen --scenario NAME [--kafka B]     synthetic events, to stdout or Kafka
//	shrike serve --rules DIR [flags]           run the rulesets on Kafka, state in Redis
//	shrike rules push|get|list|delete|versions|rollback ...   API client: the registry
//	shrike rules explain|diff ...              API client: explain and diff on the server
//	shrike rules shadow push|get|diff|promote|delete NAME ...   API client: shadow versions
//	shrike alerts tail|list [filters]          API client: follow or list alerts
//
// check and run load rulesets with rules.Load and replay with cep.Replay: the
// same code the engine and the API use, so what passes here behaves the same
// there. Alerts go to stdout as JSON lines, everything meant for a person
// (errors, dead-letter reports, the summary) to stderr, so stdout can be
// piped into other tools.
//
// rules and alerts are clients of serve's gRPC API (api/shrike/v1) at
// --server or $SHRIKE_SERVER, with --token or $SHRIKE_TOKEN; they print
// tables, or JSON lines with -o json, and push prints a refused ruleset's
// errors as check does.
//
// Exit status: 0 on success (dead-lettered or late events included), 1 when
// a ruleset is invalid, a file cannot be opened or read, or stdout cannot be
// written (a full disk: `shrike: writing output: ...`), 2 for a usage
// error. shrike test exits 1 when a test fails and 3 when a test file or
// ruleset cannot be loaded. shrike diff, shrike rules diff and shrike rules
// shadow diff exit 0 when the versions agree and 1 when they differ, as
// diff(1) does; shrike diff and shrike rules diff exit 3 when a ruleset is
// invalid, a file cannot be read or the server refused the request, and
// shrike rules shadow diff 2 when the versions cannot be compared. shrike
// serve runs until SIGINT or SIGTERM and
// then exits 0 after its ordered shutdown; a configuration that does not
// validate is a usage error (2), anything that stops it from starting or
// running is 1. Progress bars and colours appear only on a terminal.
package main
