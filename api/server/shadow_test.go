package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/shrike-cep/shrike/api/server"
	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/feed"
	"github.com/shrike-cep/shrike/internal/alertdiff"
	"github.com/shrike-cep/shrike/matcher"
)

// fakeShadowAlerts answers ShadowDiff with a Diff it fills with alerts of
// both versions, and records what it was asked.
type fakeShadowAlerts struct {
	err error

	mu       sync.Mutex
	ruleset  string
	since    time.Time
	examples int
}

func (f *fakeShadowAlerts) ShadowDiff(_ context.Context, ruleset string, since time.Time, examples int) (*alertdiff.Diff, error) {
	f.mu.Lock()
	f.ruleset, f.since, f.examples = ruleset, since, examples
	f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	d := alertdiff.NewDiff(alertdiff.Options{Examples: examples})
	alert := func(key string, shadow bool) *matcher.Alert {
		return &matcher.Alert{ID: "id-" + key, Ruleset: ruleset, Rule: "big", Severity: "high", Key: key, Shadow: shadow}
	}
	// k1 both, k2 and k3 only live, k4 only shadow.
	d.Add(alertdiff.Old, alert("k1", false))
	d.Add(alertdiff.New, alert("k1", true))
	d.Add(alertdiff.Old, alert("k2", false))
	d.Add(alertdiff.Old, alert("k3", false))
	d.Add(alertdiff.New, alert("k4", true))
	return d, nil
}

func (f *fakeShadowAlerts) asked() (string, time.Time, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ruleset, f.since, f.examples
}

// shadowSrc is paymentsSrc with a lower threshold and a rule of its own.
var shadowSrc = strings.Replace(paymentsSrc, "event.amount > 100.0", "event.amount > 50.0", 1) + `  - id: tiny
    when: event.amount < 1.0
`

// TestShadowService: put, get, diff, promote and delete a shadow over
// REST, with the scopes of the proto and the errors of the API.
func TestShadowService(t *testing.T) {
	alerts := &fakeShadowAlerts{}
	e := newEnv(t, envOptions{tokens: tokens, api: func(o *server.Options) { o.ShadowAlerts = alerts }})
	e.token = "writer-7507a84de02d4003977593f783f43ca6"
	put := func(name, src string) (int, map[string]any) {
		return e.rest(t, "PUT", "/v1/rulesets/"+name+"/shadow", map[string]any{"source": src})
	}

	code, body := put("payments", shadowSrc)
	if got := restStatus(code, body); got != "404 RULESET_NOT_FOUND" || !strings.Contains(fmt.Sprint(body["message"]), "put the ruleset first") {
		t.Errorf("PutShadow of no ruleset: %s %v, want 404 RULESET_NOT_FOUND saying why", got, body["message"])
	}
	e.put(t, "payments", paymentsSrc)
	code, body = put("payments", strings.Replace(shadowSrc, "ruleset: payments", "ruleset: cards", 1))
	if got := restStatus(code, body); got != `400 RULESET_INVALID [source: 1:10: ruleset name "cards" differs from "payments", the name it is stored under]` {
		t.Errorf("PutShadow of another ruleset's source: %s", got)
	}
	code, body = put("payments", strings.Replace(shadowSrc, "event.amount < 1.0", "event.amount <", 1))
	if got := restStatus(code, body); !strings.HasPrefix(got, "400 RULESET_INVALID [source: 18:") {
		t.Errorf("PutShadow of a broken source: %s, want 400 RULESET_INVALID at line 18", got)
	}
	code, body = e.rest(t, "GET", "/v1/rulesets/payments/shadow", nil)
	if got := restStatus(code, body); got != "404 SHADOW_NOT_FOUND" {
		t.Errorf("GetShadow with none: %s, want 404 SHADOW_NOT_FOUND", got)
	}

	before := time.Now()
	code, body = put("payments", shadowSrc)
	if code != http.StatusOK {
		t.Fatalf("PutShadow: %d %v", code, body)
	}
	if body["name"] != "payments" || body["live_version"] != "1" || body["source"] != shadowSrc {
		t.Errorf("PutShadow answered %v", body)
	}
	var ids []string
	rules, _ := body["rules"].([]any)
	for _, r := range rules {
		r, _ := r.(map[string]any)
		ids = append(ids, fmt.Sprint(r["id"]))
	}
	if diff := cmp.Diff([]string{"big", "off", "tiny"}, ids); diff != "" {
		t.Errorf("the shadow's rules (-want +got):\n%s", diff)
	}

	// gRPC: the same shadow, to every reader.
	e.token = "reader-2666b541a9ca9cfc00f5a5121c23732a"
	shadows := shrikev1.NewShadowServiceClient(e.conn)
	sh, err := shadows.GetShadow(e.ctx(t), &shrikev1.GetShadowRequest{Name: "payments"})
	if err != nil {
		t.Fatalf("GetShadow: %v", err)
	}
	start := sh.GetStartTime().AsTime()
	if sh.GetSource() != shadowSrc || sh.GetLiveVersion() != 1 || start.Before(before.Add(-time.Second)) || len(sh.GetRules()) != 3 {
		t.Errorf("GetShadow = %v", sh)
	}
	for _, call := range []func() error{
		func() error {
			_, err := shadows.PutShadow(e.ctx(t), &shrikev1.PutShadowRequest{Name: "payments", Source: shadowSrc})
			return err
		},
		func() error {
			_, err := shadows.PromoteShadow(e.ctx(t), &shrikev1.PromoteShadowRequest{Name: "payments"})
			return err
		},
		func() error {
			_, err := shadows.DeleteShadow(e.ctx(t), &shrikev1.DeleteShadowRequest{Name: "payments"})
			return err
		},
		func() error {
			_, err := shadows.GetShadowDiff(e.ctx(t), &shrikev1.GetShadowDiffRequest{Name: "payments"})
			return err
		},
	} {
		if got := statusOf(call()); got != "PermissionDenied SCOPE_MISSING" {
			t.Errorf("a reader's call: %s, want PermissionDenied SCOPE_MISSING", got)
		}
	}

	// The diff, with alerts:read: the fake's Diff, with the rules no
	// alert named, from the shadow's start.
	e.token = "watcher-d15effcb07db80c20f9f3aaa07df3aec"
	for _, n := range []int32{-1, 21} {
		_, err := shadows.GetShadowDiff(e.ctx(t), &shrikev1.GetShadowDiffRequest{Name: "payments", Examples: n})
		if got := statusOf(err); got != fmt.Sprintf("InvalidArgument INVALID_REQUEST [examples: must be from 0 (the default, 3) to 20, not %d]", n) {
			t.Errorf("GetShadowDiff with %d examples: %s", n, got)
		}
	}
	d, err := shadows.GetShadowDiff(e.ctx(t), &shrikev1.GetShadowDiffRequest{Name: "payments", Examples: 1})
	if err != nil {
		t.Fatalf("GetShadowDiff: %v", err)
	}
	if name, since, n := alerts.asked(); name != "payments" || !since.Equal(start) || n != 1 {
		t.Errorf("ShadowDiff asked for %s since %v with %d examples, want payments since %v with 1", name, since, n, start)
	}
	alert := func(key string, shadow bool) *shrikev1.Alert {
		a := &shrikev1.Alert{Id: "id-" + key, Ruleset: "payments", Rule: "big", Severity: "high", Key: key}
		if shadow {
			a.Shadow = new(bool)
			*a.Shadow = true
		}
		return a
	}
	want := &shrikev1.ShadowDiff{
		Name: "payments", StartTime: sh.GetStartTime(), Differ: true,
		Rules: []*shrikev1.RuleDiff{
			{
				Ruleset: "payments", Rule: "big", Both: 1, OnlyOld: 2, OnlyNew: 1, InOld: true, InNew: true,
				BothExamples:    []*shrikev1.Alert{alert("k1", true)},
				OnlyOldExamples: []*shrikev1.Alert{alert("k2", false)},
				OnlyNewExamples: []*shrikev1.Alert{alert("k4", true)},
			},
			// Declared by the shadow only; "off" is disabled in both.
			{Ruleset: "payments", Rule: "tiny", InNew: true},
		},
	}
	if diff := cmp.Diff(want, d, protocmp.Transform()); diff != "" {
		t.Errorf("GetShadowDiff (-want +got):\n%s", diff)
	}
	code, body = e.rest(t, "GET", "/v1/rulesets/payments/shadow:diff", nil)
	differ, _ := body["differ"].(bool)
	if _, _, n := alerts.asked(); code != http.StatusOK || !differ || n != 3 {
		t.Errorf("GetShadowDiff over REST: %d %v, %d examples asked; want 200, differ, 3 examples (the default)", code, body, n)
	}
	code, body = e.rest(t, "GET", "/v1/rulesets/nothing/shadow:diff", nil)
	if got := restStatus(code, body); got != "404 SHADOW_NOT_FOUND" {
		t.Errorf("GetShadowDiff of no shadow: %s, want 404 SHADOW_NOT_FOUND", got)
	}
	alerts.err = errors.New("kafka: broker down")
	code, body = e.rest(t, "GET", "/v1/rulesets/payments/shadow:diff", nil)
	if got := restStatus(code, body); got != "503 BACKEND_UNAVAILABLE" {
		t.Errorf("GetShadowDiff with the alerts unreadable: %s, want 503 BACKEND_UNAVAILABLE", got)
	}
	alerts.err = fmt.Errorf("%w: 2000000 records since then", feed.ErrTooManyAlerts)
	code, body = e.rest(t, "GET", "/v1/rulesets/payments/shadow:diff", nil)
	if got := restStatus(code, body); got != "400 SHADOW_DIFF_TOO_LARGE" || !strings.Contains(fmt.Sprint(body["message"]), "2000000 records") {
		t.Errorf("GetShadowDiff over too many alerts: %s %v, want 400 SHADOW_DIFF_TOO_LARGE saying how many", got, body["message"])
	}

	// Promote: the shadow's source as version 2, the shadow gone.
	e.token = "writer-7507a84de02d4003977593f783f43ca6"
	code, body = e.rest(t, "POST", "/v1/rulesets/payments/shadow:promote", map[string]any{})
	if code != http.StatusOK || body["version"] != "2" || body["source"] != shadowSrc {
		t.Fatalf("PromoteShadow: %d %v", code, body)
	}
	rs, err := e.rulesets().GetRuleset(e.ctx(t), &shrikev1.GetRulesetRequest{Name: "payments"})
	if err != nil || rs.GetVersion() != 2 || rs.GetSource() != shadowSrc {
		t.Errorf("GetRuleset after the promote: version %d, %v; want version 2 with the shadow's source", rs.GetVersion(), err)
	}
	for _, tc := range []struct{ method, path string }{
		{"GET", "/v1/rulesets/payments/shadow"},
		{"POST", "/v1/rulesets/payments/shadow:promote"},
		{"DELETE", "/v1/rulesets/payments/shadow"},
	} {
		code, body := e.rest(t, tc.method, tc.path, nil)
		if got := restStatus(code, body); got != "404 SHADOW_NOT_FOUND" {
			t.Errorf("%s %s after the promote: %s, want 404 SHADOW_NOT_FOUND", tc.method, tc.path, got)
		}
	}

	// Delete; and a ruleset's deletion takes its shadow.
	if code, body := put("payments", paymentsSrc); code != http.StatusOK {
		t.Fatalf("PutShadow: %d %v", code, body)
	}
	if code, body := e.rest(t, "DELETE", "/v1/rulesets/payments/shadow", nil); code != http.StatusOK {
		t.Errorf("DeleteShadow: %d %v", code, body)
	}
	if code, body := put("payments", paymentsSrc); code != http.StatusOK {
		t.Fatalf("PutShadow: %d %v", code, body)
	}
	if code, body := e.rest(t, "DELETE", "/v1/rulesets/payments", nil); code != http.StatusOK {
		t.Fatalf("DeleteRuleset: %d %v", code, body)
	}
	code, body = e.rest(t, "GET", "/v1/rulesets/payments/shadow", nil)
	if got := restStatus(code, body); got != "404 SHADOW_NOT_FOUND" {
		t.Errorf("GetShadow after the ruleset's deletion: %s, want 404 SHADOW_NOT_FOUND", got)
	}
}

// TestShadowDiffDisabled: without ShadowAlerts the diff is UNAVAILABLE,
// saying why, while the rest of the service works.
func TestShadowDiffDisabled(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.put(t, "payments", paymentsSrc)
	code, body := e.rest(t, "PUT", "/v1/rulesets/payments/shadow", map[string]any{"source": shadowSrc})
	if code != http.StatusOK {
		t.Fatalf("PutShadow: %d %v", code, body)
	}
	code, body = e.rest(t, "GET", "/v1/rulesets/payments/shadow:diff", nil)
	if got := restStatus(code, body); got != "503 SHADOW_DIFF_DISABLED" || !strings.Contains(fmt.Sprint(body["message"]), "does not compare shadow alerts") {
		t.Errorf("GetShadowDiff without ShadowAlerts: %s %v, want 503 SHADOW_DIFF_DISABLED saying why", got, body["message"])
	}
}
