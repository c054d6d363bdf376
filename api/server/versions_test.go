package server_test

import (
	"fmt"
	"strings"
	"testing"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
)

// TestRulesetVersionsBounded stores more versions of a large ruleset than
// the registry keeps: the listing pages without sources by default (kilobytes,
// not the history's megabytes), with sources on request in pages that fit a
// gRPC client's default limit, and only the versions kept; an older version
// is NOT_FOUND naming the bound, on GetRuleset and on RollbackRuleset.
func TestRulesetVersionsBounded(t *testing.T) {
	const puts, kept = 120, 100 // the registry's default bound
	e := newEnv(t, envOptions{})
	pad := "#" + strings.Repeat("x", 200) + "\n"
	for i := 1; i <= puts; i++ {
		src := strings.Repeat(pad, 320) + strings.Replace(paymentsSrc, "100.0", fmt.Sprintf("%d.0", i), 1)
		e.put(t, "payments", src)
	}

	code, raw := e.restRaw(t, "GET", "/v1/rulesets/payments/versions?page_size=1000", nil)
	if code != 200 {
		t.Fatalf("GET versions: %d %s", code, raw)
	}
	if strings.Contains(string(raw), `"source"`) && !strings.Contains(string(raw), `"source":""`) {
		t.Errorf("the listing carries sources by default")
	}
	if n := strings.Count(string(raw), `"version":`); n != kept {
		t.Errorf("%d versions listed, want the %d kept", n, kept)
	}
	if len(raw) > kept*300 {
		t.Errorf("listing of %d versions without sources is %d bytes", kept, len(raw))
	}
	t.Logf("listing without sources: %d bytes", len(raw))

	// With sources: every version kept, over pages under 4 MiB.
	rs := e.rulesets()
	var got []int64
	tok := ""
	for range puts {
		resp, err := rs.ListRulesetVersions(e.ctx(t), &shrikev1.ListRulesetVersionsRequest{Name: "payments", PageSize: 1000, PageToken: tok, IncludeSource: true})
		if err != nil {
			t.Fatalf("ListRulesetVersions with sources: %v", err)
		}
		size := 0
		for _, v := range resp.GetVersions() {
			if !strings.Contains(v.GetSource(), "ruleset: payments") {
				t.Errorf("version %d: no source", v.GetVersion())
			}
			size += len(v.GetSource())
			got = append(got, v.GetVersion())
		}
		if size > 3<<20 {
			t.Errorf("a page of %d bytes of sources", size)
		}
		if tok = resp.GetNextPageToken(); tok == "" {
			break
		}
	}
	if len(got) != kept || got[0] != puts || got[len(got)-1] != puts-kept+1 {
		t.Errorf("versions with sources: %d, from %d to %d; want %d from %d to %d", len(got), got[0], got[len(got)-1], kept, puts, puts-kept+1)
	}

	for _, tc := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/v1/rulesets/payments?version=3", nil},
		{"POST", "/v1/rulesets/payments:rollback", map[string]any{"version": 3}},
	} {
		code, body := e.rest(t, tc.method, tc.path, tc.body)
		msg, _ := body["message"].(string)
		if got := restStatus(code, body); got != "404 VERSION_NOT_FOUND" || !strings.Contains(msg, "trimmed") || !strings.Contains(msg, "rules.max_versions") {
			t.Errorf("%s %s: %s %q, want 404 VERSION_NOT_FOUND naming the bound", tc.method, tc.path, got, msg)
		}
	}
}
