package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Defaults of the API client commands (rules, alerts).
const (
	defaultServer = "127.0.0.1:9090" // serve's grpc.listen default
	serverEnv     = "SHRIKE_SERVER"
	tokenEnv      = "SHRIKE_TOKEN"
)

// clientFlags are the connection and output flags shared by the API client
// commands, declared once on their parent (`shrike rules`, `shrike alerts`).
type clientFlags struct {
	server  string
	token   string
	tls     bool
	caFile  string
	output  string
	timeout time.Duration
}

// addClientFlags declares the shared flags as persistent flags of parent.
// outputs lists the accepted -o values, the first being the default.
func addClientFlags(parent *cobra.Command, f *clientFlags) {
	fl := parent.PersistentFlags()
	fl.StringVar(&f.server, "server", defaultServer, "gRPC `ADDRESS` of shrike serve (env "+serverEnv+")")
	fl.StringVar(&f.token, "token", "", "bearer `TOKEN` for the API (env "+tokenEnv+")")
	fl.BoolVar(&f.tls, "tls", false, "connect with TLS, verifying the server against the system's roots or --ca-file")
	fl.StringVar(&f.caFile, "ca-file", "", "PEM `FILE` of the CA that signed the server's certificate (implies --tls)")
	fl.StringVarP(&f.output, "output", "o", "table", "output `FORMAT`: table or json (JSON lines)")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "give up on a request after `DURATION` (not on alerts tail)")
}

// resolve fills in the values given by environment variables for flags not
// set on the command line: flags win over the environment.
func (f *clientFlags) resolve(cmd *cobra.Command) {
	if v := os.Getenv(serverEnv); v != "" && !cmd.Flags().Changed("server") {
		f.server = v
	}
	if v := os.Getenv(tokenEnv); v != "" && !cmd.Flags().Changed("token") {
		f.token = v
	}
}

// checkOutput rejects an -o value the command does not print.
func (f *clientFlags) checkOutput(formats ...string) error {
	if len(formats) == 0 {
		formats = []string{"table", "json"}
	}
	for _, v := range formats {
		if f.output == v {
			return nil
		}
	}
	return usageError{fmt.Errorf("unknown output format %q (want %s)", f.output, strings.Join(formats, " or "))}
}

// bearerToken sends the API token with every call. It does not require
// transport security: serve accepts tokens over plain connections on
// loopback, where most clients run.
type bearerToken string

func (t bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

func (bearerToken) RequireTransportSecurity() bool { return false }

// dial returns a client connection to the server. It does not connect yet:
// the first call does, and fails with Unavailable when nobody answers. A
// token about to travel in the clear beyond this machine gets a warning on
// stderr.
func (f *clientFlags) dial(stderr *output) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	useTLS := f.tls || f.caFile != ""
	if f.token != "" && !useTLS && !isLoopback(f.server) {
		fmt.Fprintf(stderr, "shrike: warning: sending the token to %s without TLS (use --tls)\n", f.server)
	}
	if useTLS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if f.caFile != "" {
			pem, err := os.ReadFile(f.caFile)
			if err != nil {
				return nil, fmt.Errorf("ca file: %w", err)
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("ca file %s: no PEM certificate in it", f.caFile)
			}
		}
		creds = credentials.NewTLS(cfg)
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithUserAgent("shrike-cli/" + buildVersion()),
		// Large rulesets and pages of them: the server enforces its limits.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64 << 20)),
	}
	if f.token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearerToken(f.token)))
	}
	conn, err := grpc.NewClient(f.server, opts...)
	if err != nil {
		return nil, usageError{fmt.Errorf("--server %q: %w", f.server, err)}
	}
	return conn, nil
}

// rpcError turns a failed call into an error for a person: what was being
// done, the server's message, and for the usual mistakes (no server, no or
// a wrong token) what to change. Field violations of a BadRequest follow,
// one per line.
func (f *clientFlags) rpcError(what string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", what, err)
	}
	msg := st.Message()
	var hint string
	switch st.Code() {
	case codes.Unavailable:
		return fmt.Errorf("%s: cannot reach the server at %s: %s (is shrike serve running there? set --server or %s)", what, f.server, msg, serverEnv)
	case codes.DeadlineExceeded:
		return fmt.Errorf("%s: no answer from %s within %v", what, f.server, f.timeout)
	case codes.Unauthenticated:
		if f.token == "" {
			hint = " (the server wants a token: set --token or " + tokenEnv + ")"
		} else {
			hint = " (the server does not accept this token)"
		}
	case codes.PermissionDenied:
		// The server's message may name the scope already.
		switch scope := errorInfo(st).GetMetadata()["scope"]; {
		case scope == "":
			hint = " (the token lacks the scope this needs)"
		case !strings.Contains(msg, scope):
			hint = " (the token lacks the scope " + scope + ")"
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s%s", what, msg, hint)
	for _, v := range fieldViolations(st) {
		if strings.Contains(msg, v.GetDescription()) {
			continue // the message says it already
		}
		b.WriteString("\n  ")
		if v.GetField() != "" {
			b.WriteString(v.GetField() + ": ")
		}
		b.WriteString(v.GetDescription())
	}
	return errors.New(b.String())
}

// fieldViolations returns the field violations of every BadRequest detail.
func fieldViolations(st *status.Status) []*errdetails.BadRequest_FieldViolation {
	var out []*errdetails.BadRequest_FieldViolation
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			out = append(out, br.GetFieldViolations()...)
		}
	}
	return out
}

// errorInfo returns the ErrorInfo of a status (AIP-193: one per error),
// nil when it has none.
func errorInfo(st *status.Status) *errdetails.ErrorInfo {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	return nil
}

// jsonOptions print messages with the field names of the alert JSON of
// docs/design.md#alerts and every field, zero or not, as the REST gateway does.
var jsonOptions = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

// writeJSONLine writes m as one line of JSON. protojson varies its
// whitespace on purpose; compacting it gives output that scripts and
// golden files can compare.
func writeJSONLine(w io.Writer, m proto.Message) error {
	b, err := jsonOptions.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	buf.WriteByte('\n')
	_, err = w.Write(buf.Bytes())
	return err
}

// formatTime prints a timestamp for a table: UTC to the second, or "-".
func formatTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().UTC().Format(time.RFC3339)
}

// isLoopback reports whether the server address names this machine, where
// a token travels without TLS unseen.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
