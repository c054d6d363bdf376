package server_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shrike-cep/shrike/api/server"
	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/internal/pagetoken"
)

// recordingsDir makes a recordings folder: files at the top and in a
// subfolder, a link to a file inside (listed), links out of the folder
// and to a folder (not listed).
func recordingsDir(t *testing.T) string {
	t.Helper()
	dir, outside := t.TempDir(), t.TempDir()
	write := func(p, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "b.jsonl"), "{}\n")
	write(filepath.Join(dir, "a.jsonl.gz"), "gzip")
	write(filepath.Join(dir, "day1", "payments.jsonl"), "{}\n{}\n")
	write(filepath.Join(dir, "day1.jsonl"), "")
	write(filepath.Join(outside, "secret.jsonl"), "secret")
	for link, target := range map[string]string{
		"latest.jsonl":       filepath.Join("day1", "payments.jsonl"),
		"escape.jsonl":       filepath.Join(outside, "secret.jsonl"),
		"up.jsonl":           filepath.Join("..", filepath.Base(outside), "secret.jsonl"),
		"outside":            outside,
		"day1/dangling.json": "nowhere.jsonl",
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	mtime := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(dir, "b.jsonl"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestListRecordings lists the folder through REST, a page at a time, and
// through gRPC: what TestRuleset may open, nothing a link leads to outside.
func TestListRecordings(t *testing.T) {
	dir := recordingsDir(t)
	e := newEnv(t, envOptions{tokens: tokens, api: func(o *server.Options) { o.RecordingsDir = dir }})
	e.token = "reader-2666b541a9ca9cfc00f5a5121c23732a"

	var names []string
	var first map[string]any
	tok := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("the pages never end")
		}
		code, body := e.rest(t, "GET", "/v1/recordings?page_size=2&page_token="+url.QueryEscape(tok), nil)
		if code != http.StatusOK {
			t.Fatalf("GET /v1/recordings: %d %v", code, body)
		}
		recs, _ := body["recordings"].([]any)
		if len(recs) > 2 {
			t.Fatalf("a page of %d, page size 2", len(recs))
		}
		for _, r := range recs {
			r := r.(map[string]any)
			names = append(names, r["name"].(string))
			if r["name"] == "b.jsonl" {
				first = r
			}
		}
		if tok, _ = body["next_page_token"].(string); tok == "" {
			break
		}
	}
	want := []string{"a.jsonl.gz", "b.jsonl", "day1/payments.jsonl", "day1.jsonl", "latest.jsonl"}
	if d := cmp.Diff(want, names); d != "" {
		t.Errorf("recordings (-want +got):\n%s", d)
	}
	if d := cmp.Diff(map[string]any{"name": "b.jsonl", "size_bytes": "3", "modify_time": "2026-11-20T10:00:00Z"}, first); d != "" {
		t.Errorf("b.jsonl (-want +got):\n%s", d)
	}

	resp, err := shrikev1.NewRecordingServiceClient(e.conn).ListRecordings(e.ctx(t), &shrikev1.ListRecordingsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range resp.GetRecordings() {
		got = append(got, r.GetName())
	}
	if !cmp.Equal(want, got) || resp.GetNextPageToken() != "" || resp.GetRecordings()[4].GetSizeBytes() != 6 {
		t.Errorf("gRPC ListRecordings = %v", resp)
	}
	// Every name listed is one TestRuleset opens.
	for _, name := range got {
		_, err := e.rulesets().TestRuleset(e.ctx(t), &shrikev1.TestRulesetRequest{
			Ruleset: &shrikev1.TestRulesetRequest_Source{Source: paymentsSrc},
			Input:   &shrikev1.TestRulesetRequest_Recording{Recording: name},
		})
		if err != nil && strings.Contains(statusOf(err), "RECORDING_NOT_FOUND") {
			t.Errorf("TestRuleset of listed %s: %s", name, statusOf(err))
		}
	}

	for _, tc := range []struct{ query, want string }{
		{"?page_token=zzz", `400 INVALID_REQUEST [page_token: invalid page token: "zzz"]`},
		{"?page_size=-1", "400 INVALID_REQUEST [page_size: must not be negative, not -1]"},
	} {
		code, body := e.rest(t, "GET", "/v1/recordings"+tc.query, nil)
		if got := restStatus(code, body); got != tc.want {
			t.Errorf("GET /v1/recordings%s: %s, want %s", tc.query, got, tc.want)
		}
	}
	e.token = "watcher-d15effcb07db80c20f9f3aaa07df3aec"
	code, body := e.rest(t, "GET", "/v1/recordings", nil)
	if got := restStatus(code, body); got != "403 SCOPE_MISSING" {
		t.Errorf("GET /v1/recordings without rules:read: %s", got)
	}
}

func TestListRecordingsDisabled(t *testing.T) {
	e := newEnv(t, envOptions{})
	code, body := e.rest(t, "GET", "/v1/recordings", nil)
	if got := restStatus(code, body); got != "400 RECORDINGS_DISABLED" {
		t.Errorf("GET /v1/recordings without a folder: %s", got)
	}
	if _, err := shrikev1.NewRecordingServiceClient(e.conn).ListRecordings(e.ctx(t), &shrikev1.ListRecordingsRequest{}); statusOf(err) != "FailedPrecondition RECORDINGS_DISABLED" {
		t.Errorf("gRPC: %s", statusOf(err))
	}
}

// TestListRecordingsScan: a call that reads its bound of folder entries
// ends its page early, with a token that goes on after the last entry
// read, and the pages together list every file once.
func TestListRecordingsScan(t *testing.T) {
	dir := recordingsDir(t)
	for _, scan := range []int{1, 2, 3} {
		var got []string
		after, calls := "", 0
		for {
			calls++
			if calls > 100 {
				t.Fatalf("scan %d: the pages never end", scan)
			}
			resp, err := server.ListRecordings(context.Background(), dir, 50, after, scan)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range resp.GetRecordings() {
				got = append(got, r.GetName())
			}
			if resp.GetNextPageToken() == "" {
				break
			}
			if after, err = pagetoken.Decode(resp.GetNextPageToken(), "recordings", ""); err != nil {
				t.Fatal(err)
			}
		}
		want := []string{"a.jsonl.gz", "b.jsonl", "day1/payments.jsonl", "day1.jsonl", "latest.jsonl"}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("scan %d: recordings (-want +got):\n%s", scan, d)
		}
	}
}
