// Package ui is the analyst console: a small single-page application that
// `shrike serve` serves at /ui/ on its HTTP listener, beside the REST API it
// calls.
//
// The console is plain HTML, CSS and JavaScript modules under static/,
// embedded in the binary with go:embed: there is no build step and no
// dependency to pin, and nothing is fetched from outside the server at run
// time, so the console works offline. Every figure and picture it shows
// comes from the same API that curl and grpcurl use (api/README.md); the
// console holds no privileges of its own. A bearer token typed into its
// login form is kept in the page's memory only, and sent on each call.
package ui
