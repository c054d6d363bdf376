// Package docs checks that the repository's documentation points only at
// things that exist: every relative markdown link of a *.md file, every
// path-like mention of a *.md file, and every backticked repository path in
// a *.md file or a Go comment must name a file or folder of the repository,
// and a link or mention with a #fragment into a *.md file must name one of
// its headings.
//
// Invariants:
//   - Links to other sites (http, https, mailto), fragment-only links,
//     package patterns (`./...`) and placeholders (`testdata/NAME.jsonl`)
//     are not checked; neither are Go code other than comments (string
//     literals are data) and fenced code blocks of *.md files (commands
//     there name files they create).
//   - A backticked path is only checked when its first element is a folder
//     next to the citing file or at the repository's root, so that
//     identifiers (`rules.Event`), flags and globs are left alone.
//   - Fragments follow GitHub's heading anchors: lower case, punctuation
//     other than '-' and '_' dropped, spaces as '-', a repeated heading
//     numbered -1, -2, ….
package docs
