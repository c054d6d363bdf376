// Package registry keeps rulesets and their history in Redis and keeps
// running engines on them (docs/design.md#hot-reload, docs/operations.md).
//
// Registry keeps rulesets and their history in Redis; Reloader keeps a
// RulesetSetter (the engine: cep.Engine.SetRulesets) on the registry's
// rulesets; DirSync keeps the registry on a folder of ruleset files;
// ListSync keeps a rules.ManagedLists on the registry's managed lists
// (lists.go); StatsPublisher publishes an instance's per-rule figures and
// RuleStats sums every instance's (rulestats.go).
// Only this package and state talk to Redis. Invariants:
//
//   - Nothing reaches the registry, or the engine, without compiling
//     completely first: an invalid source is refused with every error at
//     its position and changes nothing; a version one instance cannot run
//     leaves its predecessor running there.
//   - Versions only grow: every change (put of a new source, rollback,
//     delete as a tombstone) is a new version, made in one Lua script with
//     the names index and the change counter, under one hash tag; two
//     writers get distinct versions, and a version once stored never
//     changes. The same script trims the versions beyond the newest
//     Options.MaxVersions, so that history is bounded; the current one,
//     and the one a deletion leaves, always stay.
//   - Every change bumps the counter and publishes it; Watch listens and
//     also polls the counter, so every instance sees every change within a
//     second, as a complete, consistent set.
//   - A ruleset has at most one shadow (shadow.go), stored beside it under
//     the same hash tag: it exists only while its ruleset is live (the
//     script that deletes the ruleset drops it), a promote stores its
//     source as a version and drops it in one script, and every shadow
//     change bumps the counter as a version does. The Reloader runs a
//     shadow beside its live ruleset, never in its stead: a shadow that
//     cannot run stays out and the live rulesets run on.
//   - A managed list's items are data, not a ruleset version: a change is
//     one script (items, the list's version, the counter, a message),
//     allowed only for a list a live ruleset declares managed and only
//     with items every declared type can hold; ListSync swaps it into the
//     running rules within a second, and no ruleset is reloaded.
//   - A folder is the truth only for the rulesets its files hold: a removed
//     file deletes its ruleset, a broken one keeps the running version, and
//     rulesets no file held are never touched.
package registry
