package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// apiRuleset is the ruleset the API tests upload: one single-event rule
// on their own topic. Event time is the event's ts, the wall clock when
// the test makes it. A quiet partition's watermark follows the wall clock
// minus max_out_of_orderness after the one-second idle timeout: an event
// is matched a second or two after it arrives, and is late only when it
// took over a second to arrive.
func apiRuleset(name, topic string) string {
	return fmt.Sprintf(`ruleset: %s
description: the API end-to-end tests' ruleset
stream:
  topic: %s
  key: event.account
  time: event.ts
  max_out_of_orderness: 1s
  idle_timeout: 1s
rules:
  - id: big
    severity: high
    when: event.amount > 1000.0
    alert:
      summary: '"big payment by " + event.account'
      labels: {team: fraud}
`, name, topic)
}

// badRuleset has three errors: an unknown field, a CEL syntax error and an
// undeclared reference, at 6:5, 7:25 and 9:34.
const badRuleset = `ruleset: e2e
stream:
  topic: e2e-events
rules:
  - id: broken
    colour: red
    when: event.amount > 
  - id: typo
    when: event.amount > 10.0 && nosuch.x
`

// bigPayment is an event that the big rule of apiRuleset matches, for
// account, now.
func bigPayment(account string) restEvent {
	return restEvent{Key: account, Value: map[string]any{
		"account": account, "amount": 5000.0, "ts": time.Now().UTC().Format(time.RFC3339Nano),
	}}
}

// firstAlert publishes a big payment for a new account every 1.5 s until
// next returns an alert, and returns it with the accounts published. A
// stream subscribed "from now" has no way to say that it is subscribed: an
// event published before would be missed, and publishing until something
// arrives needs no guess.
func firstAlert(t *testing.T, publish func(account string), next func(time.Duration) (json.RawMessage, bool)) (json.RawMessage, []string) {
	t.Helper()
	var accounts []string
	for i := range 20 {
		account := fmt.Sprintf("acct-%s-%d", strings.ToLower(t.Name()), i)
		account = strings.NewReplacer("/", "-", "_", "-").Replace(account)
		publish(account)
		accounts = append(accounts, account)
		if v, ok := next(1500 * time.Millisecond); ok {
			return v, accounts
		}
	}
	t.Fatalf("no alert arrived after %d events", len(accounts))
	return nil, nil
}

// TestAPICurl drives the REST API with curl, as a user without a gRPC
// client would: a ruleset uploaded with PUT, a bad one answered 400 with
// the line:col of every error, events published with POST, and their
// alert arriving on the NDJSON stream of curl -N; then a second
// subscription resumed from the first alert's position gets the alert
// that followed it, and ListAlerts has both.
func TestAPICurl(t *testing.T) {
	requireAPIClients(t)
	s := startAPIServe(t, apiServeOptions{})

	r := s.putRuleset(t, "", "e2e", apiRuleset("e2e", "e2e-events"))
	if r.code != http.StatusOK {
		t.Fatalf("PUT /v1/rulesets/e2e = %d %s", r.code, r.body)
	}
	var put struct {
		Name    string `json:"name"`
		Version string `json:"version"` // int64: a JSON string
		Topic   string `json:"topic"`
	}
	if err := json.Unmarshal([]byte(r.body), &put); err != nil {
		t.Fatalf("PUT response %s: %v", r.body, err)
	}
	if diff := cmp.Diff(struct{ Name, Version, Topic string }{"e2e", "1", "e2e-events"}, struct{ Name, Version, Topic string }(put)); diff != "" {
		t.Errorf("PUT response (-want +got):\n%s", diff)
	}

	t.Run("bad ruleset", func(t *testing.T) {
		r := s.putRuleset(t, "", "e2e", badRuleset)
		if r.code != http.StatusBadRequest {
			t.Fatalf("PUT of a bad ruleset = %d %s, want 400", r.code, r.body)
		}
		for _, want := range []string{
			`6:5: rule \"broken\": unknown field \"colour\" in rule`,
			`7:25: rule \"broken\": Syntax error: `,
			`9:34: rule \"typo\": undeclared reference to 'nosuch'`,
			`RULESET_INVALID`,
		} {
			if !strings.Contains(r.body, want) {
				t.Errorf("400 body does not hold %s:\n%s", want, r.body)
			}
		}
		// The running version stays.
		if v, _ := s.rulesetVersion(t, "", "e2e"); v != 1 {
			t.Errorf("after a refused PUT the ruleset is at version %d, want 1", v)
		}
	})

	stream := startJSONStream(t, "curl -N", nil, "curl", "-sS", "-N", s.url("/v1/alerts:subscribe?ruleset=e2e"))
	publish := func(account string) {
		if r := s.publish(t, "", "e2e-events", bigPayment(account)); r.code != http.StatusOK || !strings.Contains(r.body, `"published_count":"1"`) {
			t.Fatalf("POST /v1/events:publish = %d %s, want 200 and published_count 1", r.code, r.body)
		}
	}
	v, accounts := firstAlert(t, publish, stream.next)
	first, raw := restAlert(t, v)
	if !slices.Contains(accounts, first.Key) {
		t.Errorf("alert for key %q, want one of the accounts published %v", first.Key, accounts)
	}
	want := streamedAlert{Ruleset: "e2e", Rule: "big", Severity: "high", Key: first.Key, Summary: "big payment by " + first.Key}
	got := first
	got.ID, got.RuleVersion, got.Position = "", "", ""
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("alert on the REST stream (-want +got):\n%s\n%s", diff, raw)
	}
	if first.ID == "" || first.RuleVersion == "" || first.Position == "" {
		t.Errorf("alert without id, rule_version or position: %s", raw)
	}
	if !strings.Contains(string(raw), `"labels":{"team":"fraud"}`) {
		t.Errorf("alert without its labels: %s", raw)
	}

	// The alerts after the first one, on the live stream: the accounts
	// published before the first alert arrived may yield more, then one
	// more account.
	last := "acct-after-first"
	publish(last)
	var live []string // ids
	for lastSeen := false; !lastSeen; {
		v, ok := stream.next(15 * time.Second)
		if !ok {
			t.Fatalf("the alert for %s did not arrive on the live stream (got %v)", last, live)
		}
		a, _ := restAlert(t, v)
		live = append(live, a.ID)
		lastSeen = a.Key == last
	}

	t.Run("resume after a position", func(t *testing.T) {
		// Every alert the live stream had after the first one comes again
		// on a stream resumed after the first one's position (in the
		// alerts topic's order, which across its partitions may differ
		// from the live stream's), and the first one does not.
		resumed := startJSONStream(t, "curl -N after", nil, "curl", "-sS", "-N", s.url("/v1/alerts:subscribe?ruleset=e2e&after="+first.Position))
		missing := map[string]bool{}
		for _, id := range live {
			missing[id] = true
		}
		for len(missing) > 0 {
			v, ok := resumed.next(15 * time.Second)
			if !ok {
				break
			}
			a, _ := restAlert(t, v)
			if a.ID == first.ID {
				t.Errorf("the stream resumed after alert %s delivered it again", first.ID)
			}
			delete(missing, a.ID)
		}
		if len(missing) > 0 {
			t.Errorf("the stream resumed after %s missed %d of the %d alerts that followed it: %v", first.Position, len(missing), len(live), missing)
		}
	})

	t.Run("list alerts", func(t *testing.T) {
		r := curl(t, s.url("/v1/alerts?ruleset=e2e&page_size=1000"))
		if r.code != http.StatusOK {
			t.Fatalf("GET /v1/alerts = %d %s", r.code, r.body)
		}
		var page struct {
			Alerts []streamedAlert `json:"alerts"`
		}
		if err := json.Unmarshal([]byte(r.body), &page); err != nil {
			t.Fatalf("GET /v1/alerts: %v\n%s", err, r.body)
		}
		var ids []string
		for _, a := range page.Alerts {
			ids = append(ids, a.ID)
		}
		if !slices.Contains(ids, first.ID) {
			t.Errorf("GET /v1/alerts lacks the streamed alert %s: %v", first.ID, ids)
		}
	})
}

// grpcurl runs grpcurl -plaintext with args (flags, the address, then
// list or the method) and returns its combined output and whether it
// exited 0.
func grpcurl(t *testing.T, args ...string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "grpcurl", append([]string{"-plaintext"}, args...)...).CombinedOutput()
	return string(out), err == nil
}

// regexpMatch reports whether s matches the regular expression re.
func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

// TestAPIGrpcurl drives the gRPC API with grpcurl, which knows the
// services only through server reflection: the services are listed,
// health says SERVING, a ruleset is uploaded, and a subscription receives
// the alert of an event published through EventService.
func TestAPIGrpcurl(t *testing.T) {
	requireAPIClients(t)
	s := startAPIServe(t, apiServeOptions{})

	out, ok := grpcurl(t, s.grpc, "list")
	if !ok {
		t.Fatalf("grpcurl list: %s", out)
	}
	services := strings.Fields(out)
	for _, want := range []string{"shrike.v1.RulesetService", "shrike.v1.AlertService", "shrike.v1.EventService", "grpc.health.v1.Health"} {
		if !slices.Contains(services, want) {
			t.Errorf("grpcurl list does not show %s:\n%s", want, out)
		}
	}
	out, ok = grpcurl(t, s.grpc, "list", "shrike.v1.RulesetService")
	for _, want := range []string{"PutRuleset", "GetRuleset", "ListRulesets", "DeleteRuleset", "ListRulesetVersions", "RollbackRuleset", "ValidateRuleset", "TestRuleset"} {
		if !ok || !strings.Contains(out, "shrike.v1.RulesetService."+want) {
			t.Errorf("grpcurl list shrike.v1.RulesetService does not show %s:\n%s", want, out)
		}
	}
	// Health follows the engine's readiness on a short poll: give it a few
	// seconds after /readyz said ready.
	var health string
	poll(10*time.Second, 200*time.Millisecond, func() bool {
		out, ok := grpcurl(t, "-d", `{"service":""}`, s.grpc, "grpc.health.v1.Health/Check")
		health = out
		return ok && strings.Contains(out, `"SERVING"`)
	})
	if !strings.Contains(health, `"SERVING"`) {
		t.Errorf("grpcurl grpc.health.v1.Health/Check: %s", health)
	}

	put, err := json.Marshal(map[string]string{"name": "grpc", "source": apiRuleset("grpc", "grpc-events")})
	if err != nil {
		t.Fatal(err)
	}
	if out, ok := grpcurl(t, "-d", string(put), s.grpc, "shrike.v1.RulesetService/PutRuleset"); !ok || !strings.Contains(out, `"version": "1"`) {
		t.Fatalf("grpcurl PutRuleset: %s", out)
	}
	if out, ok := grpcurl(t, "-d", `{"name":"grpc","source":"ruleset: grpc\nrules:\n  - id: r\n    when: event.x >\n"}`, s.grpc, "shrike.v1.RulesetService/PutRuleset"); ok ||
		!strings.Contains(out, "InvalidArgument") || !strings.Contains(out, "4:") {
		t.Errorf("grpcurl PutRuleset of a bad ruleset: want InvalidArgument with a line:col, got:\n%s", out)
	}

	stream := startJSONStream(t, "grpcurl SubscribeAlerts", nil, "grpcurl", "-plaintext", "-d", `{"ruleset":"grpc","min_severity":"high"}`, s.grpc, "shrike.v1.AlertService/SubscribeAlerts")
	publish := func(account string) {
		ev, err := json.Marshal(map[string]any{"topic": "grpc-events", "events": []restEvent{bigPayment(account)}})
		if err != nil {
			t.Fatal(err)
		}
		if out, ok := grpcurl(t, "-d", string(ev), s.grpc, "shrike.v1.EventService/PublishEvents"); !ok {
			t.Fatalf("grpcurl PublishEvents: %s", out)
		}
	}
	v, accounts := firstAlert(t, publish, stream.next)
	var a streamedAlert
	if err := json.Unmarshal(v, &a); err != nil {
		t.Fatalf("grpcurl SubscribeAlerts printed %s: %v", v, err)
	}
	if a.Ruleset != "grpc" || a.Rule != "big" || !slices.Contains(accounts, a.Key) || a.ID == "" || a.Position == "" {
		t.Errorf("grpcurl SubscribeAlerts: alert %s, want rule grpc/big for one of %v, with id and position", v, accounts)
	}
}

// Tokens of the auth tests: each with the scopes its name says.
const authTokens = `[
    {name: admin, token: admin-8b0c4507e41e72b0ec05a52b3cd07691, scopes: [rules:read, rules:write, alerts:read, events:write]},
    {name: reader, token: reader-095f9ca68670cc1d8221a9754603a253, scopes: [rules:read, alerts:read]},
    {name: producer, token: producer-ed4598d90e8b49e66cb7a13e077d6fca, scopes: [events:write]}]`

// TestAPIAuth checks every scope with curl: no token or an unknown one is
// 401, a known token without the method's scope 403, with it 200; gRPC
// says Unauthenticated the same way.
func TestAPIAuth(t *testing.T) {
	requireAPIClients(t)
	s := startAPIServe(t, apiServeOptions{Tokens: authTokens})
	if r := s.putRuleset(t, "admin-8b0c4507e41e72b0ec05a52b3cd07691", "auth", apiRuleset("auth", "auth-events")); r.code != http.StatusOK {
		t.Fatalf("PUT with the admin token = %d %s", r.code, r.body)
	}
	source, err := json.Marshal(map[string]string{"source": apiRuleset("auth", "auth-events")})
	if err != nil {
		t.Fatal(err)
	}
	events, err := json.Marshal(map[string]any{"topic": "auth-events", "events": []restEvent{bigPayment("acct-auth")}})
	if err != nil {
		t.Fatal(err)
	}
	type request struct{ method, path, body string }
	var (
		listRulesets = request{"GET", "/v1/rulesets", ""}
		getRuleset   = request{"GET", "/v1/rulesets/auth", ""}
		putRuleset   = request{"PUT", "/v1/rulesets/auth", string(source)}
		deleteRS     = request{"DELETE", "/v1/rulesets/nosuch", ""}
		publish      = request{"POST", "/v1/events:publish", string(events)}
		listAlerts   = request{"GET", "/v1/alerts", ""}
	)
	tests := []struct {
		name  string
		token string
		req   request
		want  int
	}{
		{"list rulesets without a token", "", listRulesets, http.StatusUnauthorized},
		{"list rulesets with an unknown token", "nope", listRulesets, http.StatusUnauthorized},
		{"list rulesets with rules:read", "reader-095f9ca68670cc1d8221a9754603a253", listRulesets, http.StatusOK},
		{"list rulesets without rules:read", "producer-ed4598d90e8b49e66cb7a13e077d6fca", listRulesets, http.StatusForbidden},
		{"get a ruleset without a token", "", getRuleset, http.StatusUnauthorized},
		{"get a ruleset without rules:read", "producer-ed4598d90e8b49e66cb7a13e077d6fca", getRuleset, http.StatusForbidden},
		{"put a ruleset without a token", "", putRuleset, http.StatusUnauthorized},
		{"put a ruleset without rules:write", "reader-095f9ca68670cc1d8221a9754603a253", putRuleset, http.StatusForbidden},
		{"put a ruleset with rules:write", "admin-8b0c4507e41e72b0ec05a52b3cd07691", putRuleset, http.StatusOK},
		{"delete without rules:write", "reader-095f9ca68670cc1d8221a9754603a253", deleteRS, http.StatusForbidden},
		{"delete with rules:write", "admin-8b0c4507e41e72b0ec05a52b3cd07691", deleteRS, http.StatusNotFound},
		{"publish without a token", "", publish, http.StatusUnauthorized},
		{"publish without events:write", "reader-095f9ca68670cc1d8221a9754603a253", publish, http.StatusForbidden},
		{"publish with events:write", "producer-ed4598d90e8b49e66cb7a13e077d6fca", publish, http.StatusOK},
		{"list alerts with an unknown token", "admin-8b0c4507e41e72b0ec05a52b3cd076912", listAlerts, http.StatusUnauthorized},
		{"list alerts without alerts:read", "producer-ed4598d90e8b49e66cb7a13e077d6fca", listAlerts, http.StatusForbidden},
		{"list alerts with alerts:read", "reader-095f9ca68670cc1d8221a9754603a253", listAlerts, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(bearer(tt.token), "-X", tt.req.method)
			if tt.req.body != "" {
				args = append(args, "-H", "Content-Type: application/json", "--data-binary", tt.req.body)
			}
			r := curl(t, append(args, s.url(tt.req.path))...)
			if r.code != tt.want {
				t.Errorf("%s %s = %d %s, want %d", tt.req.method, tt.req.path, r.code, r.body, tt.want)
			}
		})
	}

	t.Run("subscribe", func(t *testing.T) {
		for _, tt := range []struct {
			token string
			want  int
		}{{"", http.StatusUnauthorized}, {"producer-ed4598d90e8b49e66cb7a13e077d6fca", http.StatusForbidden}} {
			r := curl(t, append(bearer(tt.token), "-N", "--max-time", "5", s.url("/v1/alerts:subscribe"))...)
			if r.code != tt.want {
				t.Errorf("GET /v1/alerts:subscribe with token %q = %d %s, want %d", tt.token, r.code, r.body, tt.want)
			}
		}
	})

	t.Run("grpc", func(t *testing.T) {
		tests := []struct {
			name string
			args []string
			want string
		}{
			{"no token", nil, "Unauthenticated"},
			{"unknown token", []string{"-H", "authorization: Bearer nope"}, "Unauthenticated"},
			{"no scope", []string{"-H", "authorization: Bearer producer-ed4598d90e8b49e66cb7a13e077d6fca"}, "PermissionDenied"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				args := append(slices.Clone(tt.args), s.grpc, "shrike.v1.RulesetService/ListRulesets")
				if out, ok := grpcurl(t, args...); ok || !strings.Contains(out, tt.want) {
					t.Errorf("grpcurl ListRulesets: want %s, got:\n%s", tt.want, out)
				}
			})
		}
		if out, ok := grpcurl(t, "-H", "authorization: Bearer reader-095f9ca68670cc1d8221a9754603a253", s.grpc, "shrike.v1.RulesetService/ListRulesets"); !ok || !strings.Contains(out, `"auth"`) {
			t.Errorf("grpcurl ListRulesets with rules:read: %s", out)
		}
	})
}

// TestAPINonLoopbackWithoutTokens checks that serve refuses to start when a
// listener is reachable beyond this machine and no token is configured:
// it exits with status 2 and an error naming api.tokens before it listens
// on anything.
func TestAPINonLoopbackWithoutTokens(t *testing.T) {
	tests := []struct{ name, http, grpc string }{
		{"gRPC on every interface", "127.0.0.1:%d", "0.0.0.0:%d"},
		{"HTTP on every interface", "0.0.0.0:%d", "127.0.0.1:%d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			httpAddr := fmt.Sprintf(tt.http, freePort(t))
			cfg := fmt.Sprintf("http:\n  listen: %q\ngrpc:\n  listen: %q\nkafka:\n  embedded:\n    port: %d\nredis:\n  embedded:\n    port: %d\n",
				httpAddr, fmt.Sprintf(tt.grpc, freePort(t)), freePort(t), freePort(t))
			s := startServeConfig(t, "shrike serve beyond loopback", cfg, httpAddr)
			select {
			case <-s.exited:
			case <-time.After(30 * time.Second):
				t.Fatalf("serve still runs 30 s after starting without tokens on a non-loopback listener")
			}
			// A configuration that cannot run is a usage error: status 2.
			if code := s.cmd.ProcessState.ExitCode(); code != 2 {
				t.Errorf("serve exited with status %d, want 2", code)
			}
			if log := s.log(); !strings.Contains(log, "api.tokens") || strings.Contains(log, "listening") {
				t.Errorf("serve did not refuse before listening, naming api.tokens:\n%s", log)
			}
		})
	}
}

// TestAPICLI runs the shrike binary's API client commands against serve:
// push, list, get, versions, rollback, delete, and alerts tail receiving an
// alert. A refused push prints exactly what shrike check prints for the
// same file.
func TestAPICLI(t *testing.T) {
	requireAPIClients(t)
	s := startAPIServe(t, apiServeOptions{Tokens: authTokens})
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	v1 := apiRuleset("cli", "cli-events")
	v2 := strings.Replace(v1, "amount > 1000.0", "amount > 2000.0", 1)
	write("cli.yaml", v1)
	write("bad.yaml", badRuleset)
	env := []string{"SHRIKE_SERVER=" + s.grpc, "SHRIKE_TOKEN=admin-8b0c4507e41e72b0ec05a52b3cd07691"}
	shrike := func(args ...string) (stdout, stderr string, code int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, shrikeBin(t), args...)
		cmd.Dir = dir
		cmd.Env = append(childEnviron(), env...)
		var out, errb syncBuffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code = cmd.ProcessState.ExitCode()
		if err != nil && code < 0 {
			t.Fatalf("shrike %s: %v", strings.Join(args, " "), err)
		}
		return out.String(), errb.String(), code
	}
	expect := func(args []string, wantCode int, wantOut string) {
		t.Helper()
		out, errOut, code := shrike(args...)
		if code != wantCode || out != wantOut {
			t.Errorf("shrike %s: exit %d, stdout:\n%s\nwant exit %d, stdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, wantCode, wantOut, errOut)
		}
	}

	expect([]string{"rules", "push", "cli.yaml"}, 0, "cli.yaml: ruleset cli version 1, 1 rule\n")
	t.Run("refused push prints as check", func(t *testing.T) {
		_, checkErr, _ := shrike("check", "bad.yaml")
		out, pushErr, code := shrike("rules", "push", "bad.yaml")
		if code != 1 || out != "" {
			t.Errorf("push bad.yaml: exit %d, stdout %q; want 1 and nothing", code, out)
		}
		if diff := cmp.Diff(checkErr, pushErr); diff != "" || !strings.Contains(pushErr, "bad.yaml:7:25: ") {
			t.Errorf("push's errors against check's (-check +push):\n%s", diff)
		}
	})
	t.Run("a token without rules:write", func(t *testing.T) {
		_, errOut, code := shrike("rules", "push", "cli.yaml", "--token", "reader-095f9ca68670cc1d8221a9754603a253")
		if code != 1 || !strings.Contains(errOut, "lacks scope rules:write") {
			t.Errorf("push with a read-only token: exit %d, stderr:\n%s", code, errOut)
		}
	})
	write("cli.yaml", v2)
	expect([]string{"rules", "push", "cli.yaml"}, 0, "cli.yaml: ruleset cli version 2, 1 rule\n")
	expect([]string{"rules", "get", "cli", "-o", "yaml"}, 0, v2)
	expect([]string{"rules", "get", "cli", "--version", "1", "-o", "yaml"}, 0, v1)
	out, errOut, code := shrike("rules", "list")
	if code != 0 || !regexpMatch(`(?m)^NAME +VERSION +TOPIC +RULES +UPDATED\n(.*\n)*cli +2 +cli-events +1 +\d{4}-`, out) {
		t.Errorf("rules list: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = shrike("rules", "versions", "cli")
	if code != 0 || !regexpMatch(`^VERSION +CREATED +NOTE\n2 +\S+ +current\n1 +\S+ +-\n$`, out) {
		t.Errorf("rules versions cli: exit %d\n%s%s", code, out, errOut)
	}
	expect([]string{"rules", "rollback", "cli", "--version", "1"}, 0, "ruleset cli version 3: the source of version 1, 1 rule\n")
	expect([]string{"rules", "get", "cli", "-o", "yaml"}, 0, v1)

	t.Run("alerts tail", func(t *testing.T) {
		tail := startJSONStream(t, "shrike alerts tail", env, shrikeBin(t), "alerts", "tail", "-o", "json", "--ruleset", "cli", "--severity", "high", "-n", "1")
		publish := func(account string) {
			if r := s.publish(t, "admin-8b0c4507e41e72b0ec05a52b3cd07691", "cli-events", bigPayment(account)); r.code != http.StatusOK {
				t.Fatalf("publish: %d %s", r.code, r.body)
			}
		}
		v, accounts := firstAlert(t, publish, tail.next)
		var a streamedAlert
		if err := json.Unmarshal(v, &a); err != nil {
			t.Fatalf("alerts tail -o json printed %s: %v", v, err)
		}
		if a.Ruleset != "cli" || a.Rule != "big" || !slices.Contains(accounts, a.Key) || a.Position == "" {
			t.Errorf("alerts tail: %s, want a cli/big alert for one of %v with its position", v, accounts)
		}
		if _, more := tail.next(5 * time.Second); more {
			t.Errorf("alerts tail -n 1 printed a second alert")
		}
	})

	expect([]string{"rules", "delete", "cli"}, 0, "ruleset cli deleted\n")
	_, errOut, code = shrike("rules", "get", "cli")
	if code != 1 || !strings.Contains(errOut, "get ruleset cli: ") {
		t.Errorf("get of a deleted ruleset: exit %d, stderr:\n%s", code, errOut)
	}
}
