// Package httpserver is an HTTP server of `shrike serve`
// (README.md#operating-it). serve runs two: the API's listener
// (http.listen, 127.0.0.1:8080 by default), with /healthz, /readyz and
// the REST gateway mounted with Handle under /v1/; and the admin listener
// (admin.listen, 127.0.0.1:8079), with /healthz, /readyz, Prometheus
// metrics on /metrics and Go's profiler under /debug/pprof/.
//
// Invariants:
//   - /metrics and /debug/pprof/ are served only by a server made with
//     Options.Admin: they need no token, so the API's listener, which
//     clients reach and tokens guard, never serves them.
//   - New binds the listener, so a port in use fails the start rather than
//     a goroutine later, and Addr is the real address when port 0 was
//     asked for.
//   - Every connection is bounded while the server waits for it: request
//     headers within ReadHeaderTimeout, the whole request within
//     ReadTimeout, the next keep-alive request within IdleTimeout, and
//     headers within MaxHeaderBytes. A response is not bounded (no write
//     timeout, and the read deadline is lifted once the request is read),
//     so alert streams and profiles last as long as they need.
//   - /healthz answers 200 for as long as the process serves at all; it
//     never depends on Kafka or Redis, so an orchestrator does not restart
//     an engine that is only waiting for them.
//   - /readyz answers 200 only while the readiness function reports no
//     problem, else 503 with the reason as text.
//   - Run returns only after the server has stopped accepting requests and
//     the ones in flight finished (or ShutdownTimeout passed): the first
//     step of serve's shutdown order (docs/design.md#shutdown).
package httpserver
