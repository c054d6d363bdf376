package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/shrike-cep/shrike/feed"
	"github.com/shrike-cep/shrike/internal/pagetoken"
	"github.com/shrike-cep/shrike/registry"
	"github.com/shrike-cep/shrike/rules"
)

// ErrorDomain is the google.rpc.ErrorInfo domain of every error the API
// returns (AIP-193).
const ErrorDomain = "shrike"

// The google.rpc.ErrorInfo reasons of the API's errors; clients branch on
// them rather than on messages.
const (
	ReasonRulesetInvalid     = "RULESET_INVALID"       // INVALID_ARGUMENT: the source does not parse, validate or compile
	ReasonInvalidRequest     = "INVALID_REQUEST"       // INVALID_ARGUMENT: another bad field
	ReasonRulesetNotFound    = "RULESET_NOT_FOUND"     // NOT_FOUND
	ReasonListNotFound       = "LIST_NOT_FOUND"        // NOT_FOUND: no live ruleset declares a managed list of that name
	ReasonListItemsInvalid   = "LIST_ITEMS_INVALID"    // INVALID_ARGUMENT: items the list's type cannot hold, field violations items[i]
	ReasonListTooLarge       = "LIST_TOO_LARGE"        // RESOURCE_EXHAUSTED: too many items in the request or the list
	ReasonVersionNotFound    = "VERSION_NOT_FOUND"     // NOT_FOUND
	ReasonShadowNotFound     = "SHADOW_NOT_FOUND"      // NOT_FOUND: the ruleset has no shadow
	ReasonShadowReplaced     = "SHADOW_REPLACED"       // ABORTED: the shadow changed while it was promoted; promote again
	ReasonShadowDiffOff      = "SHADOW_DIFF_DISABLED"  // UNAVAILABLE: this server does not read the alerts topics to compare
	ReasonShadowDiffTooLarge = "SHADOW_DIFF_TOO_LARGE" // FAILED_PRECONDITION: more alerts since the shadow started than one comparison reads
	ReasonVersionIsDeletion  = "VERSION_IS_DELETION"   // FAILED_PRECONDITION: rollback to a deletion
	ReasonNoPreviousVersion  = "NO_PREVIOUS_VERSION"   // FAILED_PRECONDITION: rollback with no version of a ruleset with one version
	ReasonRecordingNotFound  = "RECORDING_NOT_FOUND"   // NOT_FOUND
	ReasonRecordingsDisabled = "RECORDINGS_DISABLED"   // FAILED_PRECONDITION: no recordings folder
	ReasonTopicNotRead       = "TOPIC_NOT_READ"        // FAILED_PRECONDITION: no stored ruleset reads the topic
	ReasonPositionExpired    = "POSITION_EXPIRED"      // OUT_OF_RANGE: alerts after `after` are gone
	ReasonRequestTooLarge    = "REQUEST_TOO_LARGE"     // RESOURCE_EXHAUSTED (HTTP 413)
	ReasonTokenMissing       = "TOKEN_MISSING"         // UNAUTHENTICATED (HTTP 401): no bearer token
	ReasonTokenInvalid       = "TOKEN_INVALID"         // UNAUTHENTICATED (HTTP 401): an unknown one
	ReasonScopeMissing       = "SCOPE_MISSING"         // PERMISSION_DENIED (HTTP 403), metadata "scope"
	ReasonBackendUnavailable = "BACKEND_UNAVAILABLE"   // UNAVAILABLE: Redis or Kafka did not answer, metadata "backend"
	ReasonShuttingDown       = "SHUTTING_DOWN"         // UNAVAILABLE: the server stops; reconnect (elsewhere)
	ReasonInternal           = "INTERNAL"              // INTERNAL
	ReasonUnknownPath        = "UNKNOWN_PATH"          // NOT_FOUND (404), UNIMPLEMENTED (405): no REST method at this path and HTTP method
)

// fieldError is a bad request field (AIP-193 BadRequest field violation).
type fieldError struct {
	field, msg string
}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

func badField(field, format string, args ...any) error {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

// metaError adds ErrorInfo metadata (the ruleset and version a NOT_FOUND
// is about) to the error it wraps.
type metaError struct {
	err  error
	meta map[string]string
}

func (e *metaError) Error() string { return e.err.Error() }
func (e *metaError) Unwrap() error { return e.err }

// withMeta wraps err with ErrorInfo metadata key, value, ….
func withMeta(err error, kv ...string) error {
	if err == nil {
		return nil
	}
	m := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metaError{err: err, meta: m}
}

// Errors of this package that toStatus maps.
var (
	errRecordingNotFound  = errors.New("no such recording")
	errRecordingsDisabled = errors.New("the server has no recordings folder (api.recordings_dir)")
	errTopicNotRead       = errors.New("no stored ruleset reads this topic")
	errShuttingDown       = errors.New("server shutting down")
	errNoCaller           = errors.New("no authenticated token in the call")
	errNoShadowAlerts     = errors.New("this server does not compare shadow alerts: it has no reader of the alerts and shadow alerts topics")
)

// toStatus is the one mapping from the errors of the services to gRPC
// status errors (AIP-193): a code, a message, and a google.rpc.ErrorInfo
// (domain "shrike", a reason), plus a google.rpc.BadRequest for invalid
// arguments. Errors that are not the caller's fault (Redis or Kafka down,
// bugs) are logged here with their detail and reach the client without it.
func toStatus(log *slog.Logger, method string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err // already a status (auth, gRPC's own)
	}
	meta := map[string]string{}
	var me *metaError
	if errors.As(err, &me) {
		meta = me.meta
	}
	var list rules.ErrorList
	var fe *fieldError
	var ue *unavailableErr
	var items *rules.ListItemsError
	switch {
	case errors.Is(err, context.Canceled):
		return withDetails(codes.Canceled, "canceled", codeReason(codes.Canceled), meta)
	case errors.Is(err, context.DeadlineExceeded):
		return withDetails(codes.DeadlineExceeded, "deadline exceeded", codeReason(codes.DeadlineExceeded), meta)
	case errors.As(err, &list):
		return rulesetInvalid(list, meta)
	case errors.As(err, &fe):
		return withDetails(codes.InvalidArgument, fe.Error(), ReasonInvalidRequest, meta,
			&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: fe.field, Description: fe.msg}}})
	case errors.Is(err, registry.ErrInvalidName), errors.Is(err, registry.ErrInvalidListName):
		return invalidField("name", err, meta)
	case errors.As(err, &items):
		br := &errdetails.BadRequest{}
		for _, p := range items.Problems {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
				Field:       fmt.Sprintf("items[%d]", p.Index),
				Description: fmt.Sprintf("%s: %s", strconv.Quote(p.Item), p.Msg),
			})
		}
		return withDetails(codes.InvalidArgument, err.Error(), ReasonListItemsInvalid, meta, br)
	case errors.Is(err, registry.ErrListNotFound):
		return withDetails(codes.NotFound, err.Error(), ReasonListNotFound, meta)
	case errors.Is(err, registry.ErrTooManyItems), errors.Is(err, registry.ErrListTooLarge):
		return withDetails(codes.ResourceExhausted, err.Error(), ReasonListTooLarge, meta)
	case errors.Is(err, pagetoken.ErrInvalid):
		return invalidField("page_token", err, meta)
	case errors.Is(err, feed.ErrInvalidCursor):
		return invalidField("after", err, meta)
	case errors.Is(err, registry.ErrShadowNotFound):
		return withDetails(codes.NotFound, err.Error(), ReasonShadowNotFound, meta)
	case errors.Is(err, registry.ErrShadowReplaced):
		return withDetails(codes.Aborted, err.Error(), ReasonShadowReplaced, meta)
	case errors.Is(err, feed.ErrTooManyAlerts):
		return withDetails(codes.FailedPrecondition, err.Error(), ReasonShadowDiffTooLarge, meta)
	case errors.Is(err, errNoShadowAlerts):
		return withDetails(codes.Unavailable, err.Error(), ReasonShadowDiffOff, meta)
	case errors.Is(err, registry.ErrVersionNotFound):
		return withDetails(codes.NotFound, err.Error(), ReasonVersionNotFound, meta)
	case errors.Is(err, registry.ErrRulesetNotFound):
		return withDetails(codes.NotFound, err.Error(), ReasonRulesetNotFound, meta)
	case errors.Is(err, registry.ErrDeletedVersion):
		return withDetails(codes.FailedPrecondition, err.Error(), ReasonVersionIsDeletion, meta)
	case errors.Is(err, registry.ErrNoPreviousVersion):
		return withDetails(codes.FailedPrecondition, err.Error(), ReasonNoPreviousVersion, meta)
	case errors.Is(err, errRecordingNotFound):
		return withDetails(codes.NotFound, err.Error(), ReasonRecordingNotFound, meta)
	case errors.Is(err, errRecordingsDisabled):
		return withDetails(codes.FailedPrecondition, err.Error(), ReasonRecordingsDisabled, meta)
	case errors.Is(err, errTopicNotRead):
		return withDetails(codes.FailedPrecondition, err.Error(), ReasonTopicNotRead, meta)
	case errors.Is(err, feed.ErrCursorExpired):
		return withDetails(codes.OutOfRange, err.Error(), ReasonPositionExpired, meta)
	case errors.Is(err, feed.ErrFeedStopped), errors.Is(err, errShuttingDown):
		return withDetails(codes.Unavailable, "server shutting down; reconnect", ReasonShuttingDown, meta)
	case errors.As(err, &ue):
		log.Warn("api: backend unavailable", "method", method, "backend", ue.backend, "err", err)
		meta["backend"] = ue.backend
		return withDetails(codes.Unavailable, ue.backend+" unavailable; retry", ReasonBackendUnavailable, meta)
	}
	log.Error("api: internal error", "method", method, "err", err)
	return withDetails(codes.Internal, "internal error", ReasonInternal, meta)
}

// unavailableErr marks a failure to reach a backend ("redis", "kafka"):
// worth a retry, and not worth showing the client its detail (addresses).
type unavailableErr struct {
	backend string
	err     error
}

func (e *unavailableErr) Error() string { return e.backend + ": " + e.err.Error() }
func (e *unavailableErr) Unwrap() error { return e.err }

func unavailable(backend string, err error) error { return &unavailableErr{backend, err} }

func invalidField(field string, err error, meta map[string]string) error {
	return withDetails(codes.InvalidArgument, err.Error(), ReasonInvalidRequest, meta,
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: err.Error()}}})
}

// rulesetInvalid is INVALID_ARGUMENT with one field violation per ruleset
// error, "line:col: rule "id": message" without the file name (the
// caller knows what it sent) or the caret snippet (ValidateRuleset
// returns it). The message lists them too, for clients that print only
// the message.
//
// A request with two rulesets (DiffRulesets) names the one that does not
// compile in the metadata "field" ("new.source"), which then is the
// violations' field and begins the message.
func rulesetInvalid(list rules.ErrorList, meta map[string]string) error {
	br := &errdetails.BadRequest{}
	lines := make([]string, len(list))
	field := "source"
	if f := meta["field"]; f != "" {
		field = f
	}
	for i, e := range list {
		d := describe(e)
		lines[i] = d
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: field, Description: d})
	}
	msg := fmt.Sprintf("invalid ruleset (%d %s):\n%s", len(list), plural(len(list), "error"), strings.Join(lines, "\n"))
	if f := meta["field"]; f != "" {
		msg = f + ": " + msg
	}
	if meta["errors"] == "" {
		meta["errors"] = strconv.Itoa(len(list))
	}
	return withDetails(codes.InvalidArgument, msg, ReasonRulesetInvalid, meta, br)
}

// describe formats a ruleset error as `shrike check` does, without the
// file name and the snippet: "line:col: rule "id": message".
func describe(e *rules.Error) string {
	var b strings.Builder
	if e.Pos.Line > 0 {
		fmt.Fprintf(&b, "%d:%d: ", e.Pos.Line, e.Pos.Col)
	}
	if e.Rule != "" {
		fmt.Fprintf(&b, "rule %q: ", e.Rule)
	}
	b.WriteString(e.Msg)
	return b.String()
}

func plural(n int, noun string) string {
	if n == 1 {
		return noun
	}
	return noun + "s"
}

// withDetails builds a status with an ErrorInfo and further details. The
// message and the field violations are plainText.
func withDetails(code codes.Code, msg, reason string, meta map[string]string, more ...*errdetails.BadRequest) error {
	st := status.New(code, plainText(msg))
	for _, br := range more {
		for _, v := range br.GetFieldViolations() {
			v.Description = plainText(v.Description)
		}
	}
	info := &errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain}
	if len(meta) > 0 {
		info.Metadata = meta
	}
	details := []protoadapt.MessageV1{info}
	for _, m := range more {
		details = append(details, m)
	}
	if withD, err := st.WithDetails(details...); err == nil {
		st = withD
	}
	return st.Err()
}

// plainText is msg with protobuf's "proto: " prefix dropped and every
// space character beyond ASCII (U+00A0, which the protobuf module puts
// into its error messages at random so that nobody matches them, U+2007,
// U+202F, …) written as an ASCII space: clients and their logs get plain
// text that does not change from one build to the next.
func plainText(msg string) string {
	if rest, ok := strings.CutPrefix(msg, "proto:"); ok && rest != "" {
		if r, n := utf8.DecodeRuneInString(rest); unicode.IsSpace(r) {
			msg = rest[n:]
		}
	}
	if isPlain(msg) {
		return msg
	}
	return strings.Map(func(r rune) rune {
		if r > unicode.MaxASCII && (unicode.IsSpace(r) || r == '\u2007' || r == '\u202f') {
			return ' '
		}
		return r
	}, msg)
}

// isPlain reports whether msg holds no space character beyond ASCII.
func isPlain(msg string) bool {
	for _, r := range msg {
		if r > unicode.MaxASCII && (unicode.IsSpace(r) || r == '\u2007' || r == '\u202f') {
			return false
		}
	}
	return true
}

// codeReason is the ErrorInfo reason of an error that no case of toStatus
// names: the name of its gRPC code ("UNIMPLEMENTED", "DEADLINE_EXCEEDED").
func codeReason(c codes.Code) string {
	name := c.String()
	var b strings.Builder
	for i, r := range name {
		if i > 0 && unicode.IsUpper(r) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

// restStatus is the status an error becomes over REST, in the format of
// every other error (AIP-193): plain text, and an ErrorInfo even where
// the error did not come from toStatus (the gateway's own, about a body
// or a query parameter it cannot decode, gRPC's message size limit, a
// recovered panic), never an empty list of details. An INVALID_ARGUMENT
// of the gateway's also names its field: "body" or the query parameter.
func restStatus(err error) *status.Status {
	st := status.Convert(err)
	if reason(st) != "" {
		if isPlain(st.Message()) {
			return st
		}
		p := st.Proto()
		p.Message = plainText(p.Message)
		return status.FromProto(p)
	}
	msg := plainText(st.Message())
	switch st.Code() {
	case codes.InvalidArgument:
		field := "body"
		if rest, ok := strings.CutPrefix(msg, "parsing field "); ok {
			if f, _, ok := strings.Cut(rest, ": "); ok {
				if uq, err := strconv.Unquote(f); err == nil {
					field = uq
				}
			}
		}
		return status.Convert(withDetails(codes.InvalidArgument, msg, ReasonInvalidRequest, nil,
			&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: msg}}}))
	case codes.ResourceExhausted:
		return status.Convert(withDetails(st.Code(), msg, ReasonRequestTooLarge, nil))
	case codes.Internal, codes.Unknown:
		return status.Convert(withDetails(codes.Internal, "internal error", ReasonInternal, nil))
	}
	return status.Convert(withDetails(st.Code(), msg, codeReason(st.Code()), nil))
}

// unknownPath answers a REST request no method is mapped to: 404 for a
// path, 405 for an HTTP method the path does not take.
func unknownPath(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	code, what := codes.NotFound, "no REST method at "
	if httpStatus == http.StatusMethodNotAllowed {
		code, what = codes.Unimplemented, "method not allowed: "
	}
	if httpStatus != http.StatusNotFound && httpStatus != http.StatusMethodNotAllowed {
		runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, httpStatus)
		return
	}
	err := withDetails(code, what+r.Method+" "+r.URL.Path, ReasonUnknownPath, nil)
	httpError(ctx, mux, m, w, r, &runtime.HTTPStatusError{HTTPStatus: httpStatus, Err: err})
}

// bodyDecoding is the gateway's marshaler, whose decoder says that an
// error is about the request body ("request body: (line 1:12): invalid
// value for string field source: 12"), so that restStatus names the
// field "body".
type bodyDecoding struct{ *runtime.JSONPb }

// NewDecoder wraps the JSONPb decoder's errors.
func (m bodyDecoding) NewDecoder(r io.Reader) runtime.Decoder {
	d := m.JSONPb.NewDecoder(r)
	return runtime.DecoderFunc(func(v any) error {
		err := d.Decode(v)
		if err == nil || errors.Is(err, io.EOF) {
			return err
		}
		return &bodyError{err}
	})
}

// bodyError is an error decoding the request body.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "request body: " + plainText(e.err.Error()) }
func (e *bodyError) Unwrap() error { return e.err }
