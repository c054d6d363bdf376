// Package httpserver is the admin HTTP server of `shrike serve`
// (README.md#operating-it): Prometheus metrics on /metrics, liveness on
// /healthz, readiness on /readyz and Go's profiler under /debug/pprof/, on
// one listener (127.0.0.1:8080 by default). The API's REST gateway mounts
// on the same server with Handle.
//
// Invariants:
//   - New binds the listener, so a port in use fails the start rather than
//     a goroutine later, and Addr is the real address when port 0 was
//     asked for.
//   - /healthz answers 200 for as long as the process serves at all; it
//     never depends on Kafka or Redis, so an orchestrator does not restart
//     an engine that is only waiting for them.
//   - /readyz answers 200 only while the readiness function reports no
//     problem, else 503 with the reason as text.
//   - Run returns only after the server has stopped accepting requests and
//     the ones in flight finished (or ShutdownTimeout passed): the first
//     step of serve's shutdown order (docs/design.md#shutdown).
package httpserver
