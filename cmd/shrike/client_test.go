package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
)

func TestPushName(t *testing.T) {
	tests := []struct {
		name, file, src, want string
	}{
		{"ruleset field", "dir/a.yaml", "ruleset: payments\nrules: []\n", "payments"},
		{"no ruleset field: the file name", "dir/shop.yml", "rules: []\n", "shop"},
		{"not YAML: the file name", "dir/broken.yaml", "ruleset: [\n", "broken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pushName(tt.file, []byte(tt.src)); got != tt.want {
				t.Errorf("pushName(%q) = %q, want %q", tt.file, got, tt.want)
			}
		})
	}
}

// TestRulesetErrorFormat pins that an error from the API prints as shrike
// check prints a local one: file:line:col: rule "id": message, then the
// snippet.
func TestRulesetErrorFormat(t *testing.T) {
	tests := []struct {
		name string
		in   *shrikev1.RulesetError
		want string
	}{
		{
			"position, rule and snippet",
			&shrikev1.RulesetError{Line: 7, Column: 50, Rule: "big", Message: "Syntax error: mismatched input", Snippet: " | when: x >\n |           ^"},
			"bad.yaml:7:50: rule \"big\": Syntax error: mismatched input\n | when: x >\n |           ^",
		},
		{
			"position outside rules",
			&shrikev1.RulesetError{Line: 2, Column: 1, Message: `unknown field "colour"`},
			`bad.yaml:2:1: unknown field "colour"`,
		},
		{
			"no position",
			&shrikev1.RulesetError{Message: "ruleset is larger than 1048576 bytes"},
			"bad.yaml: ruleset is larger than 1048576 bytes",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, rulesetError("bad.yaml", tt.in).Error()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestPrefixFile(t *testing.T) {
	tests := []struct{ desc, want string }{
		{`7:50: rule "big": Syntax error`, `f.yaml:7:50: rule "big": Syntax error`},
		{`rule "big": duplicate id`, `f.yaml: rule "big": duplicate id`},
		{"source: too large", "f.yaml: source: too large"},
		{"", "f.yaml: "},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			if got := prefixFile("f.yaml", tt.desc); got != tt.want {
				t.Errorf("prefixFile(%q) = %q, want %q", tt.desc, got, tt.want)
			}
		})
	}
}

func withDetails(t *testing.T, st *status.Status, details ...*errdetails.BadRequest) *status.Status {
	t.Helper()
	for _, d := range details {
		var err error
		if st, err = st.WithDetails(d); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func withInfo(t *testing.T, st *status.Status, info *errdetails.ErrorInfo) *status.Status {
	t.Helper()
	st, err := st.WithDetails(info)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestRPCError(t *testing.T) {
	bad := &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
		{Field: "filter", Description: "1:7: undeclared reference to 'nope'"},
		{Field: "min_severity", Description: `"urgent" is not a severity`},
	}}
	tests := []struct {
		name  string
		token string
		err   error
		want  string
	}{
		{
			"no server",
			"", status.Error(codes.Unavailable, "connection refused"),
			"tail alerts: cannot reach the server at 127.0.0.1:9099: connection refused (is shrike serve running there? set --server or SHRIKE_SERVER)",
		},
		{
			"no token",
			"", status.Error(codes.Unauthenticated, "missing bearer token"),
			"tail alerts: missing bearer token (the server wants a token: set --token or SHRIKE_TOKEN)",
		},
		{
			"unknown token",
			"t0ken", status.Error(codes.Unauthenticated, "unknown token"),
			"tail alerts: unknown token (the server does not accept this token)",
		},
		{
			"scope missing",
			"t0ken", status.Error(codes.PermissionDenied, `token "ci" lacks scope alerts:read`),
			`tail alerts: token "ci" lacks scope alerts:read (the token lacks the scope this needs)`,
		},
		{
			"scope named by the server",
			"t0ken", withInfo(t, status.New(codes.PermissionDenied, "permission denied"), &errdetails.ErrorInfo{Reason: "SCOPE_MISSING", Domain: "shrike", Metadata: map[string]string{"scope": "rules:write"}}).Err(),
			"tail alerts: permission denied (the token lacks the scope rules:write)",
		},
		{
			"scope named in the message",
			"t0ken", withInfo(t, status.New(codes.PermissionDenied, `token "ci" lacks scope rules:write`), &errdetails.ErrorInfo{Reason: "SCOPE_MISSING", Domain: "shrike", Metadata: map[string]string{"scope": "rules:write"}}).Err(),
			`tail alerts: token "ci" lacks scope rules:write`,
		},
		{
			"deadline",
			"", status.Error(codes.DeadlineExceeded, "context deadline exceeded"),
			"tail alerts: no answer from 127.0.0.1:9099 within 5s",
		},
		{
			"field violations, one per line",
			"", withDetails(t, status.New(codes.InvalidArgument, "bad request"), bad).Err(),
			"tail alerts: bad request\n  filter: 1:7: undeclared reference to 'nope'\n  min_severity: \"urgent\" is not a severity",
		},
		{
			"field violations the message holds already",
			"", withDetails(t, status.New(codes.InvalidArgument, "invalid filter:\n1:7: undeclared reference to 'nope'"), bad).Err(),
			"tail alerts: invalid filter:\n1:7: undeclared reference to 'nope'\n  min_severity: \"urgent\" is not a severity",
		},
		{
			"not a status",
			"", errors.New("boom"),
			"tail alerts: boom",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &clientFlags{server: "127.0.0.1:9099", token: tt.token, timeout: 5 * time.Second}
			if diff := cmp.Diff(tt.want, f.rpcError("tail alerts", tt.err).Error()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestWriteJSONLine checks the JSON of an alert: one compact line with the
// field names of docs/design.md#alerts, zero fields included, the same bytes every
// time (protojson alone varies its spacing).
func TestWriteJSONLine(t *testing.T) {
	ev, err := structpb.NewList([]any{map[string]any{"type": "transfer", "amount": 12000.5}})
	if err != nil {
		t.Fatal(err)
	}
	a := &shrikev1.Alert{
		Id: "a1", Ruleset: "payments", Rule: "big-foreign-transfer", RuleVersion: "v9", Severity: "high", Key: "acct-1",
		Start:      timestamppb.New(time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)),
		End:        timestamppb.New(time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)),
		DetectedAt: timestamppb.New(time.Date(2026, 11, 20, 10, 0, 1, 200e6, time.UTC)),
		Events:     map[string]*structpb.ListValue{"event": ev},
		Position:   "0:17",
	}
	want := `{"id":"a1","ruleset":"payments","rule":"big-foreign-transfer","rule_version":"v9","severity":"high","key":"acct-1",` +
		`"summary":"","labels":{},"start":"2026-11-20T10:00:00Z","end":"2026-11-20T10:00:00Z","detected_at":"2026-11-20T10:00:01.200Z",` +
		`"timeout":false,"events":{"event":[{"amount":12000.5,"type":"transfer"}]},"position":"0:17","truncated":[],"measures":null,"window":null}` + "\n"
	for i := range 3 {
		var buf bytes.Buffer
		if err := writeJSONLine(&buf, a); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, buf.String()); diff != "" {
			t.Fatalf("write %d (-want +got):\n%s", i, diff)
		}
	}
}

func TestWriteAlertLine(t *testing.T) {
	a := &shrikev1.Alert{
		Ruleset: "payments", Rule: "account-takeover", Severity: "critical", Key: "acct-42",
		Summary: "account acct-42 drained after 3 failed logins",
		End:     timestamppb.New(time.Date(2026, 11, 20, 10, 4, 10, 500e6, time.UTC)),
	}
	timedOut := &shrikev1.Alert{Ruleset: "payments", Rule: "reset-without-2fa", Severity: "low", Timeout: true}
	var buf bytes.Buffer
	for _, a := range []*shrikev1.Alert{a, timedOut} {
		if err := writeAlert(&buf, "table", a); err != nil {
			t.Fatal(err)
		}
	}
	want := "2026-11-20T10:04:10Z  critical  payments/account-takeover       acct-42       account acct-42 drained after 3 failed logins\n" +
		"-                     low       payments/reset-without-2fa      -             [timeout] -\n"
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:9090", true},
		{"[::1]:9090", true},
		{"localhost:9090", true},
		{"127.0.0.1", true},
		{"10.1.2.3:9090", false},
		{"shrike.internal:9090", false},
		{"0.0.0.0:9090", false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			if got := isLoopback(tt.addr); got != tt.want {
				t.Errorf("isLoopback(%q) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
}

func TestRetryableStream(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{io.EOF, true},
		{status.Error(codes.Unavailable, "server stopped"), true},
		{status.Error(codes.ResourceExhausted, "subscriber too slow"), true},
		{status.Error(codes.InvalidArgument, "bad filter"), false},
		{status.Error(codes.OutOfRange, "position expired"), false},
		{status.Error(codes.PermissionDenied, "scope"), false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.err), func(t *testing.T) {
			if got := retryableStream(tt.err); got != tt.want {
				t.Errorf("retryableStream(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestClientExitCodes pins the exit statuses of the client commands that
// need no server: usage errors are 2, a server that does not answer is 1
// with a hint on stderr.
func TestClientExitCodes(t *testing.T) {
	nobody := closedPort(t)
	tests := []struct {
		name   string
		args   []string
		want   int
		stderr string
	}{
		{"get without a name", []string{"rules", "get"}, 2, "missing ruleset name"},
		{"get with two names", []string{"rules", "get", "a", "b"}, 2, `unexpected argument "b"`},
		{"rollback to version 0", []string{"rules", "rollback", "payments", "--version", "0", "--server", nobody}, 2, "--version 0: want a version number, 1 or more"},
		{"rollback without --version reaches the server", []string{"rules", "rollback", "payments", "--server", nobody}, 1, "roll back ruleset payments to its previous version: cannot reach the server"},
		{"push without files", []string{"rules", "push"}, 2, "missing ruleset file argument"},
		{"push a missing file", []string{"rules", "push", "nope.yaml", "--server", nobody}, 1, "no such file"},
		{"unknown output", []string{"rules", "list", "-o", "xml", "--server", nobody}, 2, `unknown output format "xml"`},
		{"yaml is for get only", []string{"rules", "list", "-o", "yaml", "--server", nobody}, 2, `unknown output format "yaml"`},
		{"bad severity", []string{"alerts", "tail", "--severity", "urgent", "--server", nobody}, 2, `--severity "urgent"`},
		{"list with --limit 0", []string{"alerts", "list", "--limit", "0", "--server", nobody}, 2, "--limit 0"},
		{"no server for list", []string{"rules", "list", "--server", nobody}, 1, "cannot reach the server at " + nobody},
		{"no server for tail", []string{"alerts", "tail", "--server", nobody}, 1, "tail alerts: cannot reach the server"},
		{"ca file missing", []string{"rules", "list", "--server", nobody, "--ca-file", "nope.pem"}, 1, "ca file: open nope.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			e := env{stdin: strings.NewReader(""), stdout: newOutput(&stdout), stderr: newOutput(&stderr), clock: time.Now}
			if got := run(context.Background(), tt.args, e); got != tt.want {
				t.Errorf("exit status %d, want %d\nstderr:\n%s", got, tt.want, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr does not say %q:\n%s", tt.stderr, stderr.String())
			}
		})
	}
}

// TestServerFromEnv checks that SHRIKE_SERVER picks the server and that
// --server wins over it.
func TestServerFromEnv(t *testing.T) {
	fromEnv, fromFlag := closedPort(t), closedPort(t)
	t.Setenv(serverEnv, fromEnv)
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"env", []string{"rules", "list"}, fromEnv},
		{"flag wins", []string{"rules", "list", "--server", fromFlag}, fromFlag},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			e := env{stdin: strings.NewReader(""), stdout: newOutput(io.Discard), stderr: newOutput(&stderr), clock: time.Now}
			run(context.Background(), tt.args, e)
			if !strings.Contains(stderr.String(), "cannot reach the server at "+tt.want+":") {
				t.Errorf("stderr does not name %s:\n%s", tt.want, stderr.String())
			}
		})
	}
}
