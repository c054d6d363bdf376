package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/shrike-cep/shrike/api"
	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
)

// maxGatewayResponse bounds a response the gateway reads from the gRPC
// server (a TestRuleset with many alerts, a page of large rulesets).
const maxGatewayResponse = 64 << 20

// gateway is the REST side: grpc-gateway's mux over a client connection
// to the server's in-process listener, behind a body limit, plus the
// OpenAPI document. The generated in-process registration
// (Register…HandlerServer) cannot serve SubscribeAlerts, a server stream,
// and would skip the interceptors; a real connection does neither.
type gateway struct {
	conn    *grpc.ClientConn
	mux     *runtime.ServeMux
	handler http.Handler
	maxBody int64
	auth    *authenticator
}

// marshaler writes JSON with the proto field names (the alert JSON of
// docs/design.md#alerts) and every field, also those at their zero value, so that
// REST clients see "timeout": false rather than nothing.
var marshaler = bodyDecoding{&runtime.JSONPb{
	MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
	UnmarshalOptions: protojson.UnmarshalOptions{},
}}

func newGateway(s *Server) (*gateway, error) {
	conn, err := grpc.NewClient("passthrough:///shrike-api",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return s.inproc.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxGatewayResponse)),
	)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, marshaler),
		runtime.WithErrorHandler(httpError),
		runtime.WithRoutingErrorHandler(unknownPath),
		runtime.WithStreamErrorHandler(func(_ context.Context, err error) *status.Status { return restStatus(err) }),
		runtime.WithForwardResponseOption(streamStart),
		runtime.WithMiddlewares(routeNoter),
	)
	ctx := context.Background()
	for _, register := range []func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error{
		shrikev1.RegisterRulesetServiceHandler,
		shrikev1.RegisterAlertServiceHandler,
		shrikev1.RegisterEventServiceHandler,
		shrikev1.RegisterAnalysisServiceHandler,
		shrikev1.RegisterShadowServiceHandler,
		shrikev1.RegisterListServiceHandler,
		shrikev1.RegisterRecordingServiceHandler,
		shrikev1.RegisterAuthServiceHandler,
	} {
		if err := register(ctx, mux, conn); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	g := &gateway{conn: conn, mux: mux, maxBody: int64(s.opts.MaxRequestBytes), auth: s.auth}
	h := http.NewServeMux()
	h.HandleFunc("GET /v1/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		noteRoute(r, "/v1/openapi.json")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(api.OpenAPI)
	})
	h.Handle("/", http.HandlerFunc(g.limited))
	g.handler = s.calls.rest(h)
	return g, nil
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.handler.ServeHTTP(w, r) }

func (g *gateway) close() { _ = g.conn.Close() }

// limited authenticates the request and refuses bodies over the request
// limit with 413, both before the body is read; then it reads the body
// whole (it is small) and hands it to the gateway. A client without a
// valid token makes the server read no byte of its body: the token is
// checked here on the header, and again with its scope by the gRPC
// interceptor, once the call is decoded.
func (g *gateway) limited(w http.ResponseWriter, r *http.Request) {
	if err := g.authenticate(r); err != nil {
		refuseUnread(w, r, func() { httpError(r.Context(), g.mux, marshaler, w, r, err) })
		return
	}
	if r.ContentLength > g.maxBody {
		refuseUnread(w, r, func() { g.tooLarge(w, r) })
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		b, err := io.ReadAll(io.LimitReader(r.Body, g.maxBody+1))
		if err != nil {
			httpError(r.Context(), g.mux, marshaler, w, r, status.Errorf(codes.InvalidArgument, "reading the body: %v", err))
			return
		}
		if int64(len(b)) > g.maxBody {
			g.tooLarge(w, r)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	g.mux.ServeHTTP(w, r)
}

// authenticate checks the bearer token of the Authorization header, as
// the interceptor does (authorize), but without a method and so without
// its scope: UNAUTHENTICATED when tokens are configured and it is missing
// or unknown.
func (g *gateway) authenticate(r *http.Request) error {
	if !g.auth.enabled() {
		return nil
	}
	md := metadata.MD{}
	for _, v := range r.Header.Values("Authorization") {
		md.Append("authorization", v)
	}
	secret, err := bearer(metadata.NewIncomingContext(r.Context(), md))
	switch {
	case errors.Is(err, errNoToken):
		return withDetails(codes.Unauthenticated, err.Error(), ReasonTokenMissing, nil)
	case err != nil:
		return withDetails(codes.Unauthenticated, err.Error(), ReasonTokenInvalid, nil)
	case g.auth.byHash[sha256.Sum256([]byte(secret))] == nil:
		return withDetails(codes.Unauthenticated, "unknown bearer token", ReasonTokenInvalid, nil)
	}
	return nil
}

// refuseUnread writes a refusal (answer) that leaves the body unread, and
// closes the connection right after it. net/http would otherwise read up
// to 256 KiB of the body, before the answer (for a kept-alive connection)
// or after it, waiting up to the read timeout on a client that sends it
// slowly or never.
func refuseUnread(w http.ResponseWriter, r *http.Request, answer func()) {
	if r.ContentLength == 0 {
		answer()
		return
	}
	w.Header().Set("Connection", "close")
	answer()
	// A read deadline already past makes that read fail at once; the
	// answer is written all the same. Without support (a wrapped
	// writer), the read timeout still bounds the wait.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
}

func (g *gateway) tooLarge(w http.ResponseWriter, r *http.Request) {
	err := withDetails(codes.ResourceExhausted, fmt.Sprintf("request body over the limit of %d bytes", g.maxBody), ReasonRequestTooLarge, nil)
	httpError(r.Context(), g.mux, marshaler, w, r, &runtime.HTTPStatusError{HTTPStatus: http.StatusRequestEntityTooLarge, Err: err})
}

// httpError writes an error as its google.rpc.Status in JSON (code,
// message, details: ErrorInfo, BadRequest with every line:col), with the
// HTTP status of its code: 400, 401, 403, 404, 413 for a body over the
// limit, 503.
func httpError(_ context.Context, _ *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
	code := 0
	var hs *runtime.HTTPStatusError
	if errors.As(err, &hs) {
		code, err = hs.HTTPStatus, hs.Err
	}
	st := restStatus(err)
	if code == 0 {
		code = runtime.HTTPStatusFromCode(st.Code())
		if reason(st) == ReasonRequestTooLarge || (st.Code() == codes.ResourceExhausted && reason(st) == "") {
			// gRPC's own message size limit has no ErrorInfo.
			code = http.StatusRequestEntityTooLarge
		}
	}
	body, merr := m.Marshal(st.Proto())
	if merr != nil {
		body = []byte(`{"code": 13, "message": "failed to marshal the error"}`)
		code = http.StatusInternalServerError
	}
	w.Header().Del("Trailer")
	w.Header().Set("Content-Type", "application/json")
	if st.Code() == codes.Unauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="shrike"`)
	}
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
}

// reason is the ErrorInfo reason of a status, if any.
func reason(st *status.Status) string {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

// streamStart answers a server stream (GET /v1/alerts:subscribe) at once
// with its status line and headers, once the gRPC handler said it has
// subscribed, so that a client that sees them knows that later alerts
// reach it; the gateway itself would wait for the first alert. A stream
// that failed before (a bad filter, an expired position) is left to the
// gateway, which answers with the error's HTTP status.
func streamStart(ctx context.Context, w http.ResponseWriter, msg proto.Message) error {
	if msg != nil {
		return nil // a unary response, or a message of the stream
	}
	md, ok := runtime.ServerMetadataFromContext(ctx)
	if !ok || len(md.HeaderMD.Get(subscribedHeader)) == 0 {
		return nil
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no") // proxies must not hold alerts back
	w.WriteHeader(http.StatusOK)
	return http.NewResponseController(w).Flush()
}
