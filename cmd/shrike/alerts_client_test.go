package main

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/internal/testkit"
)

// scriptedAlerts is an AlertService on a loopback gRPC server whose
// subscriptions follow a script: call i sends the alerts of steps[i], then
// ends with its error, or, with a nil error, waits for the client to go.
type scriptedAlerts struct {
	shrikev1.UnimplementedAlertServiceServer
	steps []scriptedCall

	mu     sync.Mutex
	afters []string // SubscribeAlertsRequest.after of each call
}

type scriptedCall struct {
	alerts []string // ids; the position of alert "a" is "pos-a"
	err    error
}

func (s *scriptedAlerts) SubscribeAlerts(req *shrikev1.SubscribeAlertsRequest, stream grpc.ServerStreamingServer[shrikev1.Alert]) error {
	s.mu.Lock()
	n := len(s.afters)
	s.afters = append(s.afters, req.GetAfter())
	s.mu.Unlock()
	if n >= len(s.steps) {
		return status.Error(codes.Internal, "the script has no more calls")
	}
	for _, id := range s.steps[n].alerts {
		a := &shrikev1.Alert{Id: id, Ruleset: "rs", Rule: "r", Severity: "high", Key: "k-" + id, Summary: "alert " + id, Position: "pos-" + id}
		if err := stream.Send(a); err != nil {
			return err
		}
	}
	if err := s.steps[n].err; err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

func (s *scriptedAlerts) calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.afters...)
}

// startScriptedAlerts serves s on a free loopback port and returns the
// address.
func startScriptedAlerts(t *testing.T, s *scriptedAlerts) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	shrikev1.RegisterAlertServiceServer(srv, s)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

// TestTailReconnects checks that tail resumes after the last alert it
// printed when the stream breaks (a server going away, a subscriber cut
// off for reading too slowly), and that an error about the request ends
// it at once.
func TestTailReconnects(t *testing.T) {
	tests := []struct {
		name       string
		steps      []scriptedCall
		args       []string
		wantCode   int
		wantAfters []string
		wantIDs    []string
		stderr     []string
	}{
		{
			name: "stream broken twice",
			steps: []scriptedCall{
				{alerts: []string{"a"}, err: status.Error(codes.Unavailable, "server stopping")},
				{alerts: []string{"b", "c"}, err: status.Error(codes.ResourceExhausted, "subscriber too slow")},
				{alerts: []string{"d"}},
			},
			args:       []string{"-n", "4"},
			wantAfters: []string{"", "pos-a", "pos-c"},
			wantIDs:    []string{"a", "b", "c", "d"},
			stderr: []string{
				"shrike: alert stream interrupted (server stopping); reconnecting in 500ms\n",
				// An alert since the last break: the delay starts over.
				"shrike: alert stream interrupted (subscriber too slow); reconnecting in 500ms\n",
			},
		},
		{
			name: "from a position, broken before any alert, twice",
			steps: []scriptedCall{
				{err: status.Error(codes.Unavailable, "server stopping")},
				{err: status.Error(codes.Unavailable, "server stopping")},
				{alerts: []string{"x"}},
			},
			args:       []string{"-n", "1", "--from", "pos-w"},
			wantAfters: []string{"pos-w", "pos-w", "pos-w"},
			wantIDs:    []string{"x"},
			stderr:     []string{"reconnecting in 500ms\n", "reconnecting in 1s\n"},
		},
		{
			name:       "a bad request ends it",
			steps:      []scriptedCall{{alerts: []string{"a"}, err: status.Error(codes.OutOfRange, "position expired")}},
			args:       []string{"--from", "pos-0"},
			wantCode:   1,
			wantAfters: []string{"pos-0"},
			wantIDs:    []string{"a"},
			stderr:     []string{"shrike: tail alerts: position expired\n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &scriptedAlerts{steps: tt.steps}
			addr := startScriptedAlerts(t, srv)
			var stdout, stderr testkit.Buffer
			e := env{stdin: strings.NewReader(""), stdout: newOutput(&stdout), stderr: newOutput(&stderr), clock: time.Now}
			args := append([]string{"alerts", "tail", "--server", addr, "-o", "json"}, tt.args...)
			if code := run(t.Context(), args, e); code != tt.wantCode {
				t.Errorf("exit status %d, want %d\nstderr:\n%s", code, tt.wantCode, stderr.String())
			}
			if diff := cmp.Diff(tt.wantAfters, srv.calls()); diff != "" {
				t.Errorf("after of each subscription (-want +got):\n%s", diff)
			}
			var ids []string
			for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
				if _, rest, ok := strings.Cut(line, `{"id":"`); ok {
					id, _, _ := strings.Cut(rest, `"`)
					ids = append(ids, id)
				}
			}
			if diff := cmp.Diff(tt.wantIDs, ids); diff != "" {
				t.Errorf("alerts printed (-want +got):\n%s\nstdout:\n%s", diff, stdout.String())
			}
			for _, want := range tt.stderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr does not say %q:\n%s", want, stderr.String())
				}
			}
		})
	}
}

// TestTailInterrupted checks that an interrupted tail says how to resume
// after the last alert it printed.
func TestTailInterrupted(t *testing.T) {
	addr := startScriptedAlerts(t, &scriptedAlerts{steps: []scriptedCall{{alerts: []string{"a", "b"}}}})
	var stdout, stderr testkit.Buffer
	e := env{stdin: strings.NewReader(""), stdout: newOutput(&stdout), stderr: newOutput(&stderr), clock: time.Now}
	ctx, interrupt := context.WithCancel(t.Context())
	defer interrupt()
	code := make(chan int, 1)
	go func() { code <- run(ctx, []string{"alerts", "tail", "--server", addr}, e) }()
	for strings.Count(stdout.String(), "\n") < 2 {
		select {
		case c := <-code:
			t.Fatalf("tail exited %d before printing two alerts:\n%s", c, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	interrupt()
	if c := <-code; c != 0 {
		t.Errorf("interrupted tail exited %d, want 0", c)
	}
	if diff := cmp.Diff("shrike: resume with --from pos-b\n", stderr.String()); diff != "" {
		t.Errorf("stderr (-want +got):\n%s", diff)
	}
	want := "-                     high      rs/r                            k-a           alert a\n" +
		"-                     high      rs/r                            k-b           alert b\n"
	if diff := cmp.Diff(want, stdout.String()); diff != "" {
		t.Errorf("stdout (-want +got):\n%s", diff)
	}
}
