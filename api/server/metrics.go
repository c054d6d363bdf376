package server

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Protocols of the call metrics' protocol label.
const (
	protocolGRPC = "grpc"
	protocolREST = "rest"
)

// restUnrouted is the route of a REST request answered before it reached
// one: no valid token, a body over the limit, an unknown path.
const restUnrouted = "unrouted"

// callMetrics count the API's calls and time them, gRPC and REST apart:
// a gRPC call by its full method and status code, a REST request by its
// HTTP method and path pattern (never the path: names in it are the
// client's) and HTTP status. A REST request reaches the gRPC server over
// the gateway's in-process connection; it counts as REST only.
type callMetrics struct {
	requests *prometheus.CounterVec   // protocol, method, code
	duration *prometheus.HistogramVec // protocol, method
}

// callDurationBuckets reach past the default request timeout (30 s).
var callDurationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

func newCallMetrics() *callMetrics {
	return &callMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "shrike", Subsystem: "api", Name: "requests_total",
			Help: "API calls ended, by protocol (grpc, rest), method (the gRPC full method; the HTTP method and path pattern) and code (the gRPC status code; the HTTP status).",
		}, []string{"protocol", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "shrike", Subsystem: "api", Name: "request_duration_seconds",
			Help:    "Time to answer an API call: a unary call's whole, a stream's until it started (its response headers were sent), by protocol and method.",
			Buckets: callDurationBuckets,
		}, []string{"protocol", "method"}),
	}
}

func (c *callMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{c.requests, c.duration}
}

// startCall starts timing a gRPC call on the public listener; nil for a
// call of the gateway, which its REST request counts. Its done ends it
// with the call's error, mapped to its status.
func (s *Server) startCall(ctx context.Context, method string) *grpcCall {
	if p, ok := peer.FromContext(ctx); ok && p.Addr == s.inproc.Addr() {
		return nil
	}
	return &grpcCall{m: s.calls, method: method, start: time.Now()}
}

// grpcCall is one gRPC call being timed.
type grpcCall struct {
	m        *callMetrics
	method   string
	start    time.Time
	answered bool
}

// answer observes the call's duration, once: a stream's first header or
// message, or the call's end.
func (c *grpcCall) answer() {
	if c == nil || c.answered {
		return
	}
	c.answered = true
	c.m.duration.WithLabelValues(protocolGRPC, c.method).Observe(time.Since(c.start).Seconds())
}

// done counts the ended call under its status code.
func (c *grpcCall) done(err error) {
	if c == nil {
		return
	}
	c.answer()
	c.m.requests.WithLabelValues(protocolGRPC, c.method, status.Code(err).String()).Inc()
}

// timedStream observes its call's duration when the stream sends its
// first header or message.
type timedStream struct {
	grpc.ServerStream
	call *grpcCall
}

func (t *timedStream) SendHeader(md metadata.MD) error {
	t.call.answer()
	return t.ServerStream.SendHeader(md)
}

func (t *timedStream) SendMsg(m any) error {
	t.call.answer()
	return t.ServerStream.SendMsg(m)
}

// restRoute is where the gateway's router notes the route of a request
// (routeNoter), for the metrics around it.
type restRoute struct{ pattern string }

type restRouteKey struct{}

// routeNoter is the gateway's middleware that notes the path pattern a
// request was routed to.
func routeNoter(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		if rr, ok := r.Context().Value(restRouteKey{}).(*restRoute); ok {
			if p, ok := runtime.HTTPPattern(r.Context()); ok {
				rr.pattern = cleanPattern(p.String())
			}
		}
		next(w, r, params)
	}
}

// noteRoute notes the route of a request served beside the gateway's
// router (the OpenAPI document).
func noteRoute(r *http.Request, pattern string) {
	if rr, ok := r.Context().Value(restRouteKey{}).(*restRoute); ok {
		rr.pattern = pattern
	}
}

// cleanPattern writes a gateway pattern's variables as the API's
// documentation does: /v1/rulesets/{name=*} as /v1/rulesets/{name}.
func cleanPattern(p string) string {
	return strings.ReplaceAll(p, "=*}", "}")
}

// restMethods are the HTTP methods counted by name; others count as
// OTHER, so that a client cannot make a series per made-up method.
var restMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

// rest counts and times the REST requests next serves.
func (c *callMetrics) rest(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route := &restRoute{}
		sw := &statusWriter{ResponseWriter: w, start: time.Now()}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), restRouteKey{}, route)))
		method := r.Method
		if !restMethods[method] {
			method = "OTHER"
		}
		if route.pattern != "" {
			method += " " + route.pattern
		} else {
			method += " " + restUnrouted
		}
		code := sw.code
		if code == 0 {
			code = http.StatusOK // what net/http answers for a handler that wrote nothing
		}
		if sw.answered.IsZero() {
			sw.answered = time.Now()
		}
		c.duration.WithLabelValues(protocolREST, method).Observe(sw.answered.Sub(sw.start).Seconds())
		c.requests.WithLabelValues(protocolREST, method, strconv.Itoa(code)).Inc()
	})
}

// statusWriter notes the status of a response and when its headers were
// written.
type statusWriter struct {
	http.ResponseWriter
	start    time.Time
	answered time.Time
	code     int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
		s.answered = time.Now()
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.WriteHeader(http.StatusOK)
	}
	return s.ResponseWriter.Write(b)
}

// Flush lets streamed responses through (the alert stream).
func (s *statusWriter) Flush() {
	if s.code == 0 {
		s.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(s.ResponseWriter).Flush()
}

// Unwrap gives http.ResponseController the writer beneath (read
// deadlines, flushing).
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
