// Package lint checks the lint configuration itself: that depguard, as
// .golangci.yml configures it, refuses an import against the package map of
// docs/design.md and lets the allowed ones through.
//
// The test builds a throwaway module beside the repository (the same
// module path, go.mod, go.sum and .golangci.yml) with one small file per
// package, each importing what its package may and may not, runs
// golangci-lint with depguard alone, and compares the findings with the
// exact list it expects: a rule that stops matching (a moved package, a
// renamed folder, an edited glob) fails the test as surely as one that
// matches too much.
//
// Invariants:
//   - The repository is only read: the files under test live in a
//     temporary folder, so lint and go test of the real packages never see
//     them.
//   - golangci-lint is found on PATH, in GOBIN or in GOPATH/bin; when it is
//     missing the test skips, unless CI is set: scripts/test installs the
//     pinned version before go test, so there a missing one is a failure.
package lint
