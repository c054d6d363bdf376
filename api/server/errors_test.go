package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shrike-cep/shrike/feed"
	"github.com/shrike-cep/shrike/internal/pagetoken"
	"github.com/shrike-cep/shrike/registry"
	"github.com/shrike-cep/shrike/rules"
)

// TestToStatus pins the one mapping from errors to statuses: the code,
// the ErrorInfo reason and metadata, and the field violations.
func TestToStatus(t *testing.T) {
	list := rules.ErrorList{
		{Pos: rules.Pos{File: "payments.yaml", Line: 3, Col: 11}, Rule: "big", Msg: "undeclared reference to 'amount'", Snippet: " | x\n | ^"},
		{Pos: rules.Pos{File: "payments.yaml"}, Msg: "ruleset is 9 bytes, over the limit of 8"},
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{
			"ruleset errors, every one, without file or snippet", fmt.Errorf("registry: put: %w", list),
			`InvalidArgument RULESET_INVALID map[errors:2] [source: 3:11: rule "big": undeclared reference to 'amount'; source: ruleset is 9 bytes, over the limit of 8]`,
		},
		{"a bad field", badField("page_size", "must not be negative"), "InvalidArgument INVALID_REQUEST map[] [page_size: must not be negative]"},
		{"bad name", fmt.Errorf("%w %q", registry.ErrInvalidName, "-x"), `InvalidArgument INVALID_REQUEST map[] [name: invalid ruleset name "-x"]`},
		{"page token", pagetoken.ErrInvalid, "InvalidArgument INVALID_REQUEST map[] [page_token: invalid page token]"},
		{"cursor", feed.ErrInvalidCursor, "InvalidArgument INVALID_REQUEST map[] [after: invalid alert cursor]"},
		{"ruleset not found", withMeta(registry.ErrRulesetNotFound, "ruleset", "p"), "NotFound RULESET_NOT_FOUND map[ruleset:p]"},
		{"version not found", withMeta(registry.ErrVersionNotFound, "ruleset", "p", "version", "3"), "NotFound VERSION_NOT_FOUND map[ruleset:p version:3]"},
		{"rollback to a deletion", registry.ErrDeletedVersion, "FailedPrecondition VERSION_IS_DELETION map[]"},
		{"recording", withMeta(errRecordingNotFound, "recording", "x"), "NotFound RECORDING_NOT_FOUND map[recording:x]"},
		{"no recordings", errRecordingsDisabled, "FailedPrecondition RECORDINGS_DISABLED map[]"},
		{"topic", withMeta(errTopicNotRead, "topic", "t"), "FailedPrecondition TOPIC_NOT_READ map[topic:t]"},
		{"expired position", fmt.Errorf("feed: %w", feed.ErrCursorExpired), "OutOfRange POSITION_EXPIRED map[]"},
		{"feed stopped", feed.ErrFeedStopped, "Unavailable SHUTTING_DOWN map[]"},
		{"redis down", unavailable("redis", errors.New("dial tcp 10.0.0.1:6379: refused")), "Unavailable BACKEND_UNAVAILABLE map[backend:redis]"},
		{"canceled", fmt.Errorf("x: %w", context.Canceled), "Canceled CANCELED map[]"},
		{"a non-breaking space", badField("events[0].value", "proto:\u00a0(line 1:5):\u00a0invalid value"), "InvalidArgument INVALID_REQUEST map[] [events[0].value: (line 1:5): invalid value]"},
		{"a bug", errors.New("nil map"), "Internal INTERNAL map[]"},
		{"a status passes", status.Error(codes.Aborted, "x"), "Aborted  map[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := toStatus(slog.New(slog.DiscardHandler), "/m", tt.err)
			if diff := cmp.Diff(tt.want, describeStatus(err)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	t.Run("a backend's detail stays in the log", func(t *testing.T) {
		err := toStatus(slog.New(slog.DiscardHandler), "/m", unavailable("redis", errors.New("dial tcp 10.0.0.1:6379: refused")))
		if msg := status.Convert(err).Message(); strings.Contains(msg, "10.0.0.1") {
			t.Errorf("message %q shows the address", msg)
		}
	})
	if toStatus(nil, "/m", nil) != nil {
		t.Error("nil error mapped to a status")
	}
}

func describeStatus(err error) string {
	st := status.Convert(err)
	reason, meta := "", map[string]string{}
	var fields []string
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			if d.GetDomain() != ErrorDomain {
				return "wrong domain " + d.GetDomain()
			}
			reason, meta = d.GetReason(), d.GetMetadata()
			if meta == nil {
				meta = map[string]string{}
			}
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				fields = append(fields, v.GetField()+": "+v.GetDescription())
			}
		}
	}
	s := fmt.Sprintf("%s %s %v", st.Code(), reason, meta)
	if len(fields) > 0 {
		s += " [" + strings.Join(fields, "; ") + "]"
	}
	return s
}
