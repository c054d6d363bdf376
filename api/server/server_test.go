package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/shrike-cep/shrike/api/server"
	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
)

// badSrc has two errors, each reported with its position.
const badSrc = `ruleset: payments
stream: {topic: payments}
rules:
  - id: big
    severity: loud
    when: event.amount >
`

func TestRulesetsREST(t *testing.T) {
	e := newEnv(t, envOptions{})

	code, body := e.rest(t, "PUT", "/v1/rulesets/payments", map[string]string{"source": paymentsSrc})
	if code != http.StatusOK {
		t.Fatalf("PUT: %d %v", code, body)
	}
	want := map[string]any{
		"name": "payments", "version": "1", "description": "big payments", "topic": "payments",
		"rules": []any{
			map[string]any{"id": "big", "description": "", "severity": "high", "enabled": true, "steps": []any{}},
			map[string]any{"id": "off", "description": "", "severity": "medium", "enabled": false, "version": "", "steps": []any{}},
		},
	}
	for _, k := range []string{"source", "create_time", "update_time"} {
		if body[k] == nil || body[k] == "" {
			t.Errorf("PUT response has no %s", k)
		}
		delete(body, k)
	}
	rulesOut, _ := body["rules"].([]any)
	if len(rulesOut) > 0 {
		big, _ := rulesOut[0].(map[string]any)
		if v, _ := big["version"].(string); len(v) < 4 {
			t.Errorf("rule big has version %q", v)
		}
		delete(big, "version")
	}
	if diff := cmp.Diff(want, body); diff != "" {
		t.Errorf("PUT response (-want +got):\n%s", diff)
	}

	tests := []struct {
		name, method, path string
		body               any
		want               string
	}{
		{
			"bad source: 400 with every line:col", "PUT", "/v1/rulesets/payments",
			map[string]string{"source": badSrc},
			`400 RULESET_INVALID [source: 5:15: rule "big": unknown severity "loud" (want info, low, medium, high or critical); source: 6:25: rule "big": Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}]`,
		},
		{
			"no stream topic: 400 at stream", "PUT", "/v1/rulesets/notopic",
			map[string]string{"source": "ruleset: notopic\nstream:\n  key: event.account_id\nrules:\n  - id: big\n    severity: high\n    when: event.amount > 1.0\n"},
			`400 RULESET_INVALID [source: 2:1: stream: no topic: serve needs the Kafka topic the rules read (only the offline check, test and run do without)]`,
		},
		{
			"no stream at all: 400 at the start", "PUT", "/v1/rulesets/notopic",
			map[string]string{"source": "ruleset: notopic\nrules:\n  - id: big\n    severity: high\n    when: event.amount > 1.0\n"},
			`400 RULESET_INVALID [source: 1:1: stream: no topic: serve needs the Kafka topic the rules read (only the offline check, test and run do without)]`,
		},
		{"the refused ruleset was not stored", "GET", "/v1/rulesets/notopic", nil, "404 RULESET_NOT_FOUND"},
		{
			"name differs from the source's", "PUT", "/v1/rulesets/other",
			map[string]string{"source": paymentsSrc},
			`400 RULESET_INVALID [source: 1:10: ruleset name "payments" differs from "other", the name it is stored under]`,
		},
		{
			"bad name", "PUT", "/v1/rulesets/-x",
			map[string]string{"source": paymentsSrc},
			`400 INVALID_REQUEST [name: invalid ruleset name "-x": a letter or digit, then letters, digits, '_', '.' and '-', at most 256 bytes]`,
		},
		{"unknown field in the body", "PUT", "/v1/rulesets/payments", map[string]string{"sorce": paymentsSrc}, "400 "},
		{"not found", "GET", "/v1/rulesets/nope", nil, "404 RULESET_NOT_FOUND"},
		{"version not found", "GET", "/v1/rulesets/payments?version=7", nil, "404 VERSION_NOT_FOUND"},
		{"rollback to nothing", "POST", "/v1/rulesets/payments:rollback", map[string]any{"version": 9}, "404 VERSION_NOT_FOUND"},
		{"rollback with no version and no previous one", "POST", "/v1/rulesets/payments:rollback", map[string]any{}, "400 NO_PREVIOUS_VERSION"},
		{"rollback with no body and no previous one", "POST", "/v1/rulesets/payments:rollback", nil, "400 NO_PREVIOUS_VERSION"},
		{"negative page size", "GET", "/v1/rulesets?page_size=-1", nil, "400 INVALID_REQUEST [page_size: must not be negative, not -1]"},
		{"bad page token", "GET", "/v1/rulesets?page_token=zzz", nil, "400 INVALID_REQUEST"},
		{"unknown path", "GET", "/v1/nothing", nil, "404 "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := e.rest(t, tt.method, tt.path, tt.body)
			got := restStatus(code, body)
			if !strings.HasPrefix(got, tt.want) || (strings.Contains(tt.want, "[") && got != tt.want) {
				t.Errorf("%s %s = %s\nwant %s", tt.method, tt.path, got, tt.want)
			}
		})
	}

	t.Run("the 400 message lists every error too", func(t *testing.T) {
		_, body := e.rest(t, "PUT", "/v1/rulesets/payments", map[string]string{"source": badSrc})
		msg, _ := body["message"].(string)
		if !strings.Contains(msg, "5:15: ") || !strings.Contains(msg, "6:25: ") {
			t.Errorf("message %q lacks the positions", msg)
		}
	})

	t.Run("validate refuses what put refuses: no topic", func(t *testing.T) {
		code, body := e.rest(t, "POST", "/v1/rulesets:validate", map[string]string{"source": "ruleset: x\nstream:\n  key: event.k\nrules: []\n"})
		errs, _ := body["errors"].([]any)
		if code != http.StatusOK || body["valid"] != any(false) || len(errs) != 1 {
			t.Fatalf("validate: %d %v", code, body)
		}
		if e, _ := errs[0].(map[string]any); e["line"] != float64(2) || !strings.Contains(fmt.Sprint(e["message"]), "no topic") {
			t.Errorf("validate error: %v", e)
		}
	})

	t.Run("validate", func(t *testing.T) {
		code, body := e.rest(t, "POST", "/v1/rulesets:validate", map[string]string{"source": badSrc})
		if code != http.StatusOK || body["valid"] != any(false) || body["name"] != "payments" {
			t.Fatalf("validate: %d %v", code, body)
		}
		errs, _ := body["errors"].([]any)
		var got []string
		for _, e := range errs {
			e, _ := e.(map[string]any)
			got = append(got, fmt.Sprintf("%v:%v %v", e["line"], e["column"], e["rule"]))
			if e["line"] == float64(6) && !strings.Contains(fmt.Sprint(e["snippet"]), "^") {
				t.Errorf("CEL error without a caret snippet: %v", e)
			}
		}
		if diff := cmp.Diff([]string{"5:15 big", "6:25 big"}, got); diff != "" {
			t.Errorf("errors (-want +got):\n%s", diff)
		}
		code, body = e.rest(t, "POST", "/v1/rulesets:validate", map[string]string{"source": paymentsSrc})
		if code != http.StatusOK || body["valid"] != any(true) || len(body["rules"].([]any)) != 2 {
			t.Errorf("validate a good source: %d %v", code, body)
		}
	})

	t.Run("validate returns warnings", func(t *testing.T) {
		src := `ruleset: w
stream: {topic: payments, key: event.account_id, time: event.ts}
rules:
  - id: slow
    within: 1m
    pattern:
      - step: a
        where: event.type == "a"
      - step: b
        where: event.type == "b"
    alert:
      summary: 'a.account_id + " then " + b.account_id'
      on_timeout: true
`
		code, body := e.rest(t, "POST", "/v1/rulesets:validate", map[string]string{"source": src})
		warns, _ := body["warnings"].([]any)
		if code != http.StatusOK || body["valid"] != any(true) || len(warns) != 1 {
			t.Fatalf("validate: %d %v", code, body)
		}
		w, _ := warns[0].(map[string]any)
		if w["line"] != float64(12) || w["rule"] != "slow" || !strings.Contains(fmt.Sprint(w["message"]), `step "b"`) {
			t.Errorf("warning: %v", w)
		}
		_, body = e.rest(t, "POST", "/v1/rulesets:validate", map[string]string{"source": paymentsSrc})
		if warns, _ := body["warnings"].([]any); len(warns) != 0 {
			t.Errorf("warnings of a clean source: %v", warns)
		}
	})

	t.Run("openapi document", func(t *testing.T) {
		code, body := e.rest(t, "GET", "/v1/openapi.json", nil)
		paths, _ := body["paths"].(map[string]any)
		if code != http.StatusOK || paths["/v1/rulesets/{name}"] == nil {
			t.Errorf("GET /v1/openapi.json: %d, paths %v", code, paths)
		}
	})
}

func TestRulesetVersionsAndPages(t *testing.T) {
	e := newEnv(t, envOptions{})
	rs := e.rulesets()
	for _, name := range []string{"e", "a", "d", "b", "c"} {
		e.put(t, name, strings.Replace(paymentsSrc, "ruleset: payments", "ruleset: "+name, 1))
	}
	var names []string
	tok := ""
	for {
		resp, err := rs.ListRulesets(e.ctx(t), &shrikev1.ListRulesetsRequest{PageSize: 2, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetRulesets()) > 2 {
			t.Errorf("a page of %d rulesets, want at most 2", len(resp.GetRulesets()))
		}
		for _, r := range resp.GetRulesets() {
			names = append(names, r.GetName())
		}
		if tok = resp.GetNextPageToken(); tok == "" {
			break
		}
	}
	if diff := cmp.Diff([]string{"a", "b", "c", "d", "e"}, names); diff != "" {
		t.Errorf("rulesets over pages (-want +got):\n%s", diff)
	}

	// Versions: 1 put, 2 a change, 3 a rollback to 1, 4 a deletion.
	changed := strings.Replace(strings.Replace(paymentsSrc, "ruleset: payments", "ruleset: a", 1), "100.0", "500.0", 1)
	if v := e.put(t, "a", changed).GetVersion(); v != 2 {
		t.Errorf("changed version = %d, want 2", v)
	}
	rb, err := rs.RollbackRuleset(e.ctx(t), &shrikev1.RollbackRulesetRequest{Name: "a", Version: 1})
	if err != nil || rb.GetVersion() != 3 || !strings.Contains(rb.GetSource(), "100.0") {
		t.Fatalf("rollback: %v, %v", rb, err)
	}
	if _, err := rs.DeleteRuleset(e.ctx(t), &shrikev1.DeleteRulesetRequest{Name: "a"}); err != nil {
		t.Fatal(err)
	}
	var versions []string
	tok = ""
	for {
		resp, err := rs.ListRulesetVersions(e.ctx(t), &shrikev1.ListRulesetVersionsRequest{Name: "a", PageSize: 3, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range resp.GetVersions() {
			versions = append(versions, fmt.Sprintf("%d deleted=%v rollback_of=%d", v.GetVersion(), v.GetDeleted(), v.GetRollbackOf()))
		}
		if tok = resp.GetNextPageToken(); tok == "" {
			break
		}
	}
	want := []string{"4 deleted=true rollback_of=0", "3 deleted=false rollback_of=1", "2 deleted=false rollback_of=0", "1 deleted=false rollback_of=0"}
	if diff := cmp.Diff(want, versions); diff != "" {
		t.Errorf("versions, newest first (-want +got):\n%s", diff)
	}

	errTests := []struct {
		name string
		call func() error
		want string
	}{
		{"get a deleted ruleset", func() error {
			_, err := rs.GetRuleset(e.ctx(t), &shrikev1.GetRulesetRequest{Name: "a"})
			return err
		}, "NotFound RULESET_NOT_FOUND"},
		{"get a deletion by number", func() error {
			_, err := rs.GetRuleset(e.ctx(t), &shrikev1.GetRulesetRequest{Name: "a", Version: 4})
			return err
		}, "NotFound VERSION_NOT_FOUND"},
		{"rollback to a deletion", func() error {
			_, err := rs.RollbackRuleset(e.ctx(t), &shrikev1.RollbackRulesetRequest{Name: "a", Version: 4})
			return err
		}, "FailedPrecondition VERSION_IS_DELETION"},
		{"rollback to a negative version", func() error {
			_, err := rs.RollbackRuleset(e.ctx(t), &shrikev1.RollbackRulesetRequest{Name: "a", Version: -1})
			return err
		}, "InvalidArgument INVALID_REQUEST [version: must be a version number (1 or more), or none for the previous version, not -1]"},
		{"delete twice", func() error {
			_, err := rs.DeleteRuleset(e.ctx(t), &shrikev1.DeleteRulesetRequest{Name: "a"})
			return err
		}, "NotFound RULESET_NOT_FOUND"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			if got := statusOf(tt.call()); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}

	// An earlier version is still there after the deletion.
	old, err := rs.GetRuleset(e.ctx(t), &shrikev1.GetRulesetRequest{Name: "a", Version: 2})
	if err != nil || !strings.Contains(old.GetSource(), "500.0") {
		t.Errorf("GetRuleset(a, 2) = %v, %v", old, err)
	}

	// A rollback with no version goes to the previous version: the
	// deleted ruleset comes back as it was (3, the source of 1), then the
	// one before it with another source (2).
	for _, want := range []struct {
		version, of int64
		amount      string
	}{{5, 3, "100.0"}, {6, 2, "500.0"}} {
		rb, err := rs.RollbackRuleset(e.ctx(t), &shrikev1.RollbackRulesetRequest{Name: "a"})
		if err != nil || rb.GetVersion() != want.version || !strings.Contains(rb.GetSource(), want.amount) {
			t.Fatalf("rollback with no version: %v, %v; want version %d with %s", rb, err, want.version, want.amount)
		}
	}
	vs, err := rs.ListRulesetVersions(e.ctx(t), &shrikev1.ListRulesetVersionsRequest{Name: "a", PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%d of %d, %d of %d", vs.GetVersions()[0].GetVersion(), vs.GetVersions()[0].GetRollbackOf(),
		vs.GetVersions()[1].GetVersion(), vs.GetVersions()[1].GetRollbackOf()); got != "6 of 2, 5 of 3" {
		t.Errorf("versions after rolling back twice: %s, want 6 of 2, 5 of 3", got)
	}
}

func TestTestRuleset(t *testing.T) {
	e := newEnv(t, envOptions{api: func(o *server.Options) { o.RecordingsDir = "testdata" }})
	e.put(t, "payments", paymentsSrc)
	events := strings.Join([]string{
		`{"account_id":"a1","amount":50.0,"ts":"2026-11-20T10:00:00Z"}`,
		`{"account_id":"a1","amount":150.0,"ts":"2026-11-20T10:00:01Z"}`,
		`not json`,
		`{"account_id":"a2","amount":250.0,"ts":"2026-11-20T10:00:02Z"}`,
	}, "\n")
	tests := []struct {
		name string
		req  *shrikev1.TestRulesetRequest
		want string
	}{
		{"inline source, inline events", &shrikev1.TestRulesetRequest{
			Ruleset: &shrikev1.TestRulesetRequest_Source{Source: paymentsSrc},
			Input:   &shrikev1.TestRulesetRequest_Events{Events: events},
		}, "alerts [big/a1 big/a2] lines 4 events 3 dead 1 [3] stats [big:2]"},
		{"inline source without a topic: offline, it needs none", &shrikev1.TestRulesetRequest{
			Ruleset: &shrikev1.TestRulesetRequest_Source{Source: strings.Replace(paymentsSrc, "  topic: payments\n", "", 1)},
			Input:   &shrikev1.TestRulesetRequest_Events{Events: events},
		}, "alerts [big/a1 big/a2] lines 4 events 3 dead 1 [3] stats [big:2]"},
		{"stored ruleset, a recording", &shrikev1.TestRulesetRequest{
			Ruleset: &shrikev1.TestRulesetRequest_Name{Name: "payments"},
			Input:   &shrikev1.TestRulesetRequest_Recording{Recording: "payments.jsonl"},
		}, "alerts [big/r1] lines 2 events 2 dead 0 [] stats [big:1]"},
		{"a bad inline source", &shrikev1.TestRulesetRequest{
			Ruleset: &shrikev1.TestRulesetRequest_Source{Source: badSrc},
			Input:   &shrikev1.TestRulesetRequest_Events{Events: events},
		}, "InvalidArgument RULESET_INVALID"},
		{"no such stored ruleset", &shrikev1.TestRulesetRequest{
			Ruleset: &shrikev1.TestRulesetRequest_Name{Name: "nope"},
			Input:   &shrikev1.TestRulesetRequest_Events{Events: events},
		}, "NotFound RULESET_NOT_FOUND"},
		{"no such recording", &shrikev1.TestRulesetRequest{
			Ruleset: &shrikev1.TestRulesetRequest_Name{Name: "payments"},
			Input:   &shrikev1.TestRulesetRequest_Recording{Recording: "nope.jsonl"},
		}, "NotFound RECORDING_NOT_FOUND"},
		{"a recording outside the folder", &shrikev1.TestRulesetRequest{
			Ruleset: &shrikev1.TestRulesetRequest_Name{Name: "payments"},
			Input:   &shrikev1.TestRulesetRequest_Recording{Recording: "../server_test.go"},
		}, "InvalidArgument INVALID_REQUEST"},
		{"no input", &shrikev1.TestRulesetRequest{
			Ruleset: &shrikev1.TestRulesetRequest_Name{Name: "payments"},
		}, "InvalidArgument INVALID_REQUEST [input: give events (JSON lines) or recording (a file name)]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := e.rulesets().TestRuleset(e.ctx(t), tt.req)
			var got string
			if err != nil {
				got = statusOf(err)
				if !strings.Contains(tt.want, "[") {
					got = strings.SplitN(got, " [", 2)[0]
				}
			} else {
				got = describeTest(resp)
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}

	t.Run("recordings disabled", func(t *testing.T) {
		e := newEnv(t, envOptions{})
		e.put(t, "payments", paymentsSrc)
		_, err := e.rulesets().TestRuleset(e.ctx(t), &shrikev1.TestRulesetRequest{
			Ruleset: &shrikev1.TestRulesetRequest_Name{Name: "payments"},
			Input:   &shrikev1.TestRulesetRequest_Recording{Recording: "payments.jsonl"},
		})
		if got := statusOf(err); got != "FailedPrecondition RECORDINGS_DISABLED" {
			t.Errorf("got %s", got)
		}
	})
}

func describeTest(r *shrikev1.TestRulesetResponse) string {
	var alerts, dead, stats []string
	for _, a := range r.GetAlerts() {
		alerts = append(alerts, a.GetRule()+"/"+a.GetKey())
	}
	for _, d := range r.GetDeadLetters() {
		dead = append(dead, fmt.Sprint(d.GetLine()))
	}
	for _, s := range r.GetRuleStats() {
		stats = append(stats, fmt.Sprintf("%s:%d", s.GetRule(), s.GetAlerts()))
	}
	return fmt.Sprintf("alerts %v lines %d events %d dead %d %v stats %v", alerts, r.GetLines(), r.GetEvents(), r.GetDeadLettered(), dead, stats)
}

func TestPublishEventsErrors(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.put(t, "payments", paymentsSrc)
	tests := []struct {
		name string
		body any
		want string
	}{
		{"topic no ruleset reads", map[string]any{"topic": "shrike-alerts", "events": []any{map[string]any{"value": map[string]any{}}}}, "400 TOPIC_NOT_READ"},
		{"no topic", map[string]any{"events": []any{map[string]any{"value": map[string]any{}}}}, "400 INVALID_REQUEST [topic: required: the topic of a stored ruleset]"},
		{"no events", map[string]any{"topic": "payments"}, "400 INVALID_REQUEST [events: at least one event]"},
		{"raw JSON not an object", map[string]any{"topic": "payments", "events": []any{
			map[string]any{"value": map[string]any{"a": 1}}, map[string]any{"raw_json": "[1]"},
		}}, "400 INVALID_REQUEST [events[1].raw_json: not one JSON object"},
		{"raw JSON with a number beyond float64", map[string]any{"topic": "payments", "events": []any{
			map[string]any{"raw_json": `{"n": 1e999}`},
		}}, `400 INVALID_REQUEST [events[0].raw_json: field "n": number 1e999 out of range at byte 6: value cannot be represented]`},
		{"raw JSON kept byte for byte", map[string]any{"topic": "payments", "events": []any{
			map[string]any{"key": "k", "raw_json": `{"n": 12345678901234567890}`},
		}}, "200 "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := e.rest(t, "POST", "/v1/events:publish", tt.body)
			if got := restStatus(code, body); !strings.HasPrefix(got, tt.want) {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestAlertsEndToEnd runs the engine too: events published through REST
// are matched, the alert goes to the alerts topic, and the feed serves it
// to a gRPC and a REST subscriber.
func TestAlertsEndToEnd(t *testing.T) {
	e := newEnv(t, envOptions{})
	stored := e.put(t, "payments", paymentsSrc)
	startEngine(t, e.brokers, paymentsSrc)

	grpcSub := e.subscribeGRPC(t, &shrikev1.SubscribeAlertsRequest{})
	restSub := e.subscribeREST(t, "")
	filtered := e.subscribeGRPC(t, &shrikev1.SubscribeAlertsRequest{Filter: `alert.key == "a2" && alert.events.event[0].amount > 200`})

	// a1's 150 alerts once the next event of its partition arrives.
	e.publish(t, "a1", 150, 10)
	a := grpcSub.next(t)
	if a.GetRule() != "big" || a.GetKey() != "a1" || a.GetSeverity() != "high" || a.GetRuleVersion() != stored.GetRules()[0].GetVersion() ||
		a.GetLabels()["team"] != "fraud" || a.GetEvents()["event"].GetValues()[0].GetStructValue().GetFields()["amount"].GetNumberValue() != 150 ||
		a.GetPosition() == "" {
		t.Errorf("gRPC alert = %v", a)
	}
	r := restSub.next(t)
	if r["id"] != a.GetId() || r["position"] != a.GetPosition() || r["timeout"] != any(false) || r["detected_at"] == nil {
		t.Errorf("REST alert = %v, gRPC had %v", r, a)
	}

	e.publish(t, "a2", 300, 20)
	second := grpcSub.next(t)
	if f := filtered.next(t); f.GetId() != second.GetId() || f.GetKey() != "a2" {
		t.Errorf("filtered subscription got %v, want the a2 alert", f)
	}
	e.publish(t, "a3", 400, 30)
	third := grpcSub.next(t)

	t.Run("resume after a position", func(t *testing.T) {
		resumed := e.subscribeGRPC(t, &shrikev1.SubscribeAlertsRequest{After: a.GetPosition()})
		var got []string
		for range 2 {
			got = append(got, resumed.next(t).GetId())
		}
		if diff := cmp.Diff([]string{second.GetId(), third.GetId()}, got); diff != "" {
			t.Errorf("resumed alerts (-want +got):\n%s", diff)
		}
		rest := e.subscribeREST(t, "?after="+second.GetPosition())
		if r := rest.next(t); r["id"] != third.GetId() {
			t.Errorf("REST resumed with %v, want %s", r["id"], third.GetId())
		}
	})

	t.Run("list pages", func(t *testing.T) {
		var got []string
		tok := ""
		for {
			code, body := e.rest(t, "GET", "/v1/alerts?page_size=2&page_token="+tok, nil)
			if code != http.StatusOK {
				t.Fatalf("list: %d %v", code, body)
			}
			for _, al := range body["alerts"].([]any) {
				got = append(got, al.(map[string]any)["id"].(string))
			}
			if tok, _ = body["next_page_token"].(string); tok == "" {
				break
			}
		}
		if diff := cmp.Diff([]string{third.GetId(), second.GetId(), a.GetId()}, got); diff != "" {
			t.Errorf("alerts over pages, newest first (-want +got):\n%s", diff)
		}
		resp, err := e.alerts().ListAlerts(e.ctx(t), &shrikev1.ListAlertsRequest{MinSeverity: "critical"})
		if err != nil || len(resp.GetAlerts()) != 0 {
			t.Errorf("critical alerts: %v, %v", resp, err)
		}
	})

	t.Run("bad filters", func(t *testing.T) {
		tests := []struct{ query, want string }{
			{"?filter=alert.key%20==", "400 INVALID_REQUEST [filter: 1:13: Syntax error: mismatched input '<EOF>'"},
			{"?filter=%22x%22", "400 INVALID_REQUEST [filter: 1:1: the filter must be a bool expression, not string]"},
			{"?min_severity=loud", `400 INVALID_REQUEST [min_severity: "loud" is not a severity (info, low, medium, high, critical)]`},
			{"?after=0:999999", "400 INVALID_REQUEST [after: invalid alert cursor"},
		}
		for _, tt := range tests {
			code, body := e.rest(t, "GET", "/v1/alerts:subscribe"+tt.query, nil)
			if got := restStatus(code, body); !strings.HasPrefix(got, tt.want) {
				t.Errorf("subscribe%s = %s, want %s", tt.query, got, tt.want)
			}
		}
		_, err := e.alerts().ListAlerts(e.ctx(t), &shrikev1.ListAlertsRequest{Filter: "alert.severity +"})
		if got := statusOf(err); !strings.HasPrefix(got, "InvalidArgument INVALID_REQUEST [filter: 1:17: ") {
			t.Errorf("ListAlerts with a bad filter: %s", got)
		}
	})
}

func TestVersionsOfNothing(t *testing.T) {
	// Errors of the registry that are the caller's never read as an outage.
	e := newEnv(t, envOptions{})
	_, err := e.rulesets().ListRulesetVersions(e.ctx(t), &shrikev1.ListRulesetVersionsRequest{Name: "nope"})
	if got := statusOf(err); got != "NotFound RULESET_NOT_FOUND" {
		t.Errorf("versions of nothing: %s", got)
	}
}
