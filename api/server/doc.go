// Package server implements Shrike's API (api/README.md): the gRPC services
// of package shrike.v1 over the rules registry (RulesetService), the alerts
// topic's feed (AlertService), a Kafka producer (EventService), offline
// replays of the matcher (AnalysisService: explain and diff) and the
// registry's shadow versions with the alerts topics (ShadowService), the
// registry's managed lists (ListService), the recordings folder
// (RecordingService) and what the caller's token grants (AuthService), with
// gRPC health and server reflection, and their REST mapping through
// grpc-gateway. GetRulesetStats sums the per-rule figures every serve
// instance publishes to the registry (registry.StatsPublisher).
//
// Invariants:
//
//   - One unary and one stream interceptor see every call, REST calls
//     included: the gateway is a gRPC client of this same server (over an
//     in-process connection), never a second implementation. The
//     interceptors check the bearer token against the scope the method's
//     required_scope option names, or for "authenticated" only a valid
//     token (missing or unknown token:
//     UNAUTHENTICATED, HTTP 401; a token without the scope:
//     PERMISSION_DENIED, HTTP 403) and map every error a service returns
//     to a status through one function, toStatus (AIP-193: an ErrorInfo in
//     domain "shrike" with a reason, and for invalid arguments a
//     BadRequest with one field violation per problem; a ruleset's errors
//     are each "line:col: rule "id": message").
//   - Without tokens the server refuses to listen beyond loopback.
//   - Services return plain Go errors and hold no state of their own
//     beyond caches of derived, immutable data (ruleset summaries by name
//     and version, the topics rulesets read); every instance serves the
//     same registry and the same alerts.
//   - Every List method pages (AIP-158): page_size 0 is 50, more than 1000
//     is 1000, and tokens are opaque.
//   - Requests over the size limit are refused before they are decoded
//     (RESOURCE_EXHAUSTED; HTTP 413), rulesets over the ruleset size limit
//     by the rules package (INVALID_ARGUMENT).
//   - The server never waits for a slow subscriber and never cuts one off:
//     one that falls behind the feed's ring reads on from Kafka through
//     the feed's shared replay client. Streams are bounded overall and per
//     token (RESOURCE_EXHAUSTED, reason TOO_MANY_STREAMS, naming the
//     configuration field). A stopping server ends every stream at once
//     (UNAVAILABLE); the client resumes with the position of the last
//     alert it got.
//   - Every call counts once in shrike_api_requests_total: a gRPC call of
//     the public listener by its full method and status code, a REST
//     request by its HTTP method, path pattern (never the path) and HTTP
//     status, and not again as the gateway's gRPC call.
package server
