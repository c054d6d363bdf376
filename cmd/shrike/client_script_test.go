package main

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/config"
	"github.com/shrike-cep/shrike/internal/testkit"
)

// Tokens of the client scripts' servers: admin may do everything, reader
// only read.
const (
	scriptAdminToken  = "admin-8b0c4507e41e72b0ec05a52b3cd07691"
	scriptReaderToken = "reader-095f9ca68670cc1d8221a9754603a253"
)

// TestClientScripts runs the scripts of testdata/client, each against a
// `shrike serve` of its own, in process, on embedded Kafka and Redis and
// free ports. The script's environment names it: SHRIKE_SERVER (its gRPC
// address) and SHRIKE_TOKEN (the admin token); READER_TOKEN holds a token
// with the read scopes only. Besides exec, scripts have
//
//	publish TOPIC FILE   produce FILE's lines, "KEY JSON", through the API
//	waitalerts RULESET N wait until the server lists N alerts of RULESET,
//	                     and set $POSITION to the newest one's position
func TestClientScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/client",
		UpdateScripts:       *update,
		RequireExplicitExec: true,
		Setup:               setupScriptServer,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"publish":    cmdPublish,
			"waitalerts": cmdWaitAlerts,
		},
	})
}

// setupScriptServer starts the script's server and stops it when the
// script ends.
func setupScriptServer(te *testscript.Env) error {
	cfg := testServeConfig("")
	cfg.API.Tokens = []config.TokenConfig{
		{Name: "admin", Token: scriptAdminToken, Scopes: shrikev1.Scopes()},
		{Name: "reader", Token: scriptReaderToken, Scopes: []shrikev1.Scope{shrikev1.ScopeRulesRead, shrikev1.ScopeAlertsRead}},
	}
	ctx, cancel := context.WithCancel(context.Background())
	var logs testkit.Buffer
	s, err := startServer(ctx, env{stderr: newOutput(&logs), clock: time.Now}, cfg)
	if err != nil {
		cancel()
		return fmt.Errorf("start serve: %w\n%s", err, logs.String())
	}
	done := make(chan error, 1)
	go func() { done <- s.run(ctx) }()
	te.Defer(func() {
		cancel()
		if err := <-done; err != nil {
			te.T().Log("serve: ", err, "\n", logs.String())
		}
	})
	te.Setenv("SHRIKE_SERVER", s.api.srv.Addr())
	te.Setenv("SHRIKE_TOKEN", scriptAdminToken)
	te.Setenv("READER_TOKEN", scriptReaderToken)
	return nil
}

// scriptClient connects to the script's server as its admin.
func scriptClient(ts *testscript.TestScript) *grpc.ClientConn {
	conn, err := grpc.NewClient(ts.Getenv("SHRIKE_SERVER"),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearerToken(ts.Getenv("SHRIKE_TOKEN"))))
	ts.Check(err)
	return conn
}

// cmdPublish produces the lines of a file, each "KEY JSON", to a topic
// through EventService, as they are: raw_json keeps every byte.
func cmdPublish(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: publish TOPIC FILE")
	}
	req := &shrikev1.PublishEventsRequest{Topic: args[0]}
	sc := bufio.NewScanner(strings.NewReader(ts.ReadFile(args[1])))
	for sc.Scan() {
		key, value, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !ok {
			continue
		}
		req.Events = append(req.Events, &shrikev1.Event{Key: key, Payload: &shrikev1.Event_RawJson{RawJson: value}})
	}
	conn := scriptClient(ts)
	defer func() { _ = conn.Close() }() // the command is done: nothing waits on the connection
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := shrikev1.NewEventServiceClient(conn).PublishEvents(ctx, req)
	ts.Check(err)
	if int(resp.GetPublishedCount()) != len(req.Events) {
		ts.Fatalf("published %d of %d events", resp.GetPublishedCount(), len(req.Events))
	}
}

// cmdWaitAlerts waits until ListAlerts has N alerts of a ruleset, then sets
// $POSITION to the newest one's position, which tail --from resumes after.
func cmdWaitAlerts(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitalerts RULESET N")
	}
	want, err := strconv.Atoi(args[1])
	ts.Check(err)
	conn := scriptClient(ts)
	defer func() { _ = conn.Close() }() // the command is done: nothing waits on the connection
	c := shrikev1.NewAlertServiceClient(conn)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := c.ListAlerts(ctx, &shrikev1.ListAlertsRequest{Ruleset: args[0], PageSize: 1000})
		cancel()
		ts.Check(err)
		if got := len(resp.GetAlerts()); got >= want {
			if got > want {
				ts.Fatalf("%d alerts of %s, want %d", got, args[0], want)
			}
			ts.Setenv("POSITION", resp.GetAlerts()[0].GetPosition())
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%d alerts of %s after 30 s, want %d", len(resp.GetAlerts()), args[0], want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
