package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
)

// fixedShadowDiff is a ShadowService on a loopback gRPC server whose
// GetShadowDiff answers diffs[name], or NOT_FOUND, or UNAVAILABLE for
// "off", as a server without the alerts reader does.
type fixedShadowDiff struct {
	shrikev1.UnimplementedShadowServiceServer
	diffs map[string]*shrikev1.ShadowDiff
}

func (s *fixedShadowDiff) GetShadowDiff(_ context.Context, req *shrikev1.GetShadowDiffRequest) (*shrikev1.ShadowDiff, error) {
	if req.GetName() == "off" {
		return nil, status.Error(codes.Unavailable, "this server does not compare shadow alerts")
	}
	d, ok := s.diffs[req.GetName()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "shadow not found: ruleset %q has no shadow", req.GetName())
	}
	return d, nil
}

func startFixedShadowDiff(t *testing.T, s *fixedShadowDiff) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	shrikev1.RegisterShadowServiceServer(srv, s)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

// TestShadowDiffCmd pins shrike rules shadow diff's table and its exit
// statuses: 0 when the versions agree, 1 when they differ, 2 when they
// cannot be compared.
func TestShadowDiffCmd(t *testing.T) {
	start := timestamppb.New(time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))
	alert := func(key, summary string, minute int) *shrikev1.Alert {
		return &shrikev1.Alert{Ruleset: "payments", Rule: "big", Key: key, Summary: summary, End: timestamppb.New(time.Date(2026, 11, 20, 10, minute, 0, 0, time.UTC))}
	}
	addr := startFixedShadowDiff(t, &fixedShadowDiff{diffs: map[string]*shrikev1.ShadowDiff{
		"payments": {
			Name: "payments", StartTime: start, Differ: true,
			Rules: []*shrikev1.RuleDiff{
				{
					Ruleset: "payments", Rule: "big", Both: 5, OnlyOld: 2, OnlyNew: 1, InOld: true, InNew: true,
					OnlyOldExamples: []*shrikev1.Alert{alert("acct-1", "big payment", 3), alert("acct-2", "", 4)},
					OnlyNewExamples: []*shrikev1.Alert{alert("acct-3", "bigger payment", 5)},
				},
				{Ruleset: "payments", Rule: "tiny", InNew: true},
			},
		},
		"logins": {
			Name: "logins", StartTime: start,
			Rules: []*shrikev1.RuleDiff{{Ruleset: "logins", Rule: "takeover", Both: 2, InOld: true, InNew: true}},
		},
	}})
	tests := []struct {
		name           string
		args           []string
		want           int
		stdout, stderr string
	}{
		{
			name: "differ",
			args: []string{"payments"},
			want: 1,
			stdout: `ruleset payments since 2026-11-20T10:00:00Z: the shadow and the live version differ

RULE  IN LIVE  IN SHADOW  BOTH  ONLY LIVE  ONLY SHADOW
big   yes      yes        5     2          1
tiny  no       yes        0     0          0

big, only live:
  2026-11-20T10:03:00Z  acct-1        big payment
  2026-11-20T10:04:00Z  acct-2        -

big, only shadow:
  2026-11-20T10:05:00Z  acct-3        bigger payment
`,
		},
		{
			name: "agree",
			args: []string{"logins"},
			want: 0,
			stdout: `ruleset logins since 2026-11-20T10:00:00Z: the shadow and the live version agree

RULE      IN LIVE  IN SHADOW  BOTH  ONLY LIVE  ONLY SHADOW
takeover  yes      yes        2     0          0
`,
		},
		{
			name:   "json, differ",
			args:   []string{"payments", "-o", "json"},
			want:   1,
			stdout: `{"name":"payments","start_time":"2026-11-20T10:00:00Z","differ":true,`,
		},
		{name: "no shadow", args: []string{"nosuch"}, want: 2, stderr: `shrike: compare the shadow of ruleset nosuch: shadow not found: ruleset "nosuch" has no shadow`},
		{name: "no comparison on the server", args: []string{"off"}, want: 2, stderr: "does not compare shadow alerts"},
		{name: "too many examples", args: []string{"payments", "--examples", "21"}, want: 2, stderr: "--examples 21: want 1 to 20"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			e := env{stdin: strings.NewReader(""), stdout: newOutput(&stdout), stderr: newOutput(&stderr), clock: time.Now}
			args := append([]string{"rules", "shadow", "diff", "--server", addr}, tt.args...)
			if got := run(context.Background(), args, e); got != tt.want {
				t.Errorf("exit status %d, want %d\nstderr:\n%s", got, tt.want, stderr.String())
			}
			if strings.HasSuffix(tt.stdout, "\n") {
				if diff := cmp.Diff(tt.stdout, stdout.String()); diff != "" {
					t.Errorf("stdout (-want +got):\n%s", diff)
				}
			} else if !strings.HasPrefix(stdout.String(), tt.stdout) {
				t.Errorf("stdout does not start with %s:\n%s", tt.stdout, stdout.String())
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr does not say %q:\n%s", tt.stderr, stderr.String())
			}
		})
	}
}
