// Package console holds the browser tests of the analyst console (package
// ui): each test starts `shrike serve` on embedded defaults, drives Debian's
// chromium headless through the Chrome DevTools protocol (chromedp), and
// asserts on what the page shows. Screenshots the tests take go to
// docs/console/ with -update-screenshots.
//
// Under CI=true a missing chromium fails the tests; elsewhere they are
// skipped with the command that installs it.
package console
