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

const listsSrc = `ruleset: fraud
stream: {topic: payments, key: event.account}
lists:
  mules: {managed: true, type: string}
  nets: {managed: true, type: cidr}
rules:
  - id: mule
    when: event.account in lists.mules || event.ip in lists.nets
`

const curatorToken = "curator-5d0c3b41f0e84b7c9a3f1d2e6b7a8c90"

func TestListService(t *testing.T) {
	toks := append([]server.Token{{Name: "curator", Secret: curatorToken, Scopes: []shrikev1.Scope{"lists:write", "rules:read"}}}, tokens...)
	e := newEnv(t, envOptions{tokens: toks})
	e.token = "writer-7507a84de02d4003977593f783f43ca6"

	code, body := e.rest(t, "GET", "/v1/lists/mules", nil)
	if got := restStatus(code, body); got != "404 LIST_NOT_FOUND" || !strings.Contains(fmt.Sprint(body["message"]), `no ruleset declares a managed list "mules"`) {
		t.Errorf("GET of an undeclared list: %s %v", got, body["message"])
	}
	e.put(t, "fraud", listsSrc)

	// Writes need lists:write, which the rules writer lacks.
	code, body = e.rest(t, "PUT", "/v1/lists/mules", map[string]any{"items": []string{"a"}})
	if got := restStatus(code, body); got != "403 SCOPE_MISSING" {
		t.Errorf("PUT with rules:write only: %s", got)
	}
	e.token = curatorToken
	code, body = e.rest(t, "PUT", "/v1/lists/mules", map[string]any{"items": []string{"acct-2", "acct-1", "acct-3"}})
	if code != http.StatusOK {
		t.Fatalf("PUT: %d %v", code, body)
	}
	if diff := cmp.Diff(map[string]any{"name": "mules", "version": "1", "item_count": "3", "changed_items": "3"}, body); diff != "" {
		t.Errorf("PUT answer (-want +got):\n%s", diff)
	}
	code, body = e.rest(t, "POST", "/v1/lists/mules:add", map[string]any{"items": []string{"acct-4", "acct-1"}})
	if code != http.StatusOK || body["changed_items"] != "1" || body["item_count"] != "4" || body["version"] != "2" {
		t.Errorf("add: %d %v", code, body)
	}
	code, body = e.rest(t, "POST", "/v1/lists/mules:remove", map[string]any{"items": []string{"acct-2", "nope"}})
	if code != http.StatusOK || body["changed_items"] != "1" || body["item_count"] != "3" || body["version"] != "3" {
		t.Errorf("remove: %d %v", code, body)
	}

	// Reading needs rules:read.
	e.token = "reader-2666b541a9ca9cfc00f5a5121c23732a"
	code, body = e.rest(t, "GET", "/v1/lists/mules?page_size=2", nil)
	if code != http.StatusOK {
		t.Fatalf("GET: %d %v", code, body)
	}
	if diff := cmp.Diff([]any{"acct-1", "acct-3"}, body["items"]); diff != "" || body["item_count"] != "3" || body["version"] != "3" ||
		!cmp.Equal(body["types"], []any{"string"}) || !cmp.Equal(body["rulesets"], []any{"fraud"}) {
		t.Errorf("GET page 1: %v %s", body, diff)
	}
	next, _ := body["next_page_token"].(string)
	code, body = e.rest(t, "GET", "/v1/lists/mules?page_size=2&page_token="+next, nil)
	if code != http.StatusOK || !cmp.Equal(body["items"], []any{"acct-4"}) || body["next_page_token"] != "" {
		t.Errorf("GET page 2: %d %v", code, body)
	}
	code, body = e.rest(t, "GET", "/v1/lists/mules?contains=4", nil)
	if code != http.StatusOK || !cmp.Equal(body["items"], []any{"acct-4"}) {
		t.Errorf("GET contains: %d %v", code, body)
	}
	code, body = e.rest(t, "GET", "/v1/lists/mules?prefix=acct-3", nil)
	if code != http.StatusOK || !cmp.Equal(body["items"], []any{"acct-3"}) {
		t.Errorf("GET prefix: %d %v", code, body)
	}
	code, body = e.rest(t, "POST", "/v1/lists/mules:add", map[string]any{"items": []string{"x"}})
	if got := restStatus(code, body); got != "403 SCOPE_MISSING" {
		t.Errorf("add with rules:read only: %s", got)
	}

	// gRPC sees the same.
	lists := shrikev1.NewListServiceClient(e.conn)
	l, err := lists.GetList(e.ctx(t), &shrikev1.GetListRequest{Name: "mules"})
	if err != nil || !cmp.Equal(l.GetItems(), []string{"acct-1", "acct-3", "acct-4"}) {
		t.Errorf("gRPC GetList = %v, %v", l, err)
	}

	e.token = curatorToken
	long := strings.Repeat("x", 257)
	for _, tc := range []struct {
		name, method, path string
		body               any
		want               string
	}{
		{
			"bad cidr items", "PUT", "/v1/lists/nets",
			map[string]any{"items": []string{"10.0.0.0/8", "10.1.0.0/8", "host"}},
			`400 LIST_ITEMS_INVALID [items[1]: "10.1.0.0/8": host bits set (the network is 10.0.0.0/8); items[2]: "host": not an IP address or CIDR network]`,
		},
		{
			"empty item", "POST", "/v1/lists/mules:add",
			map[string]any{"items": []string{"ok", ""}},
			`400 LIST_ITEMS_INVALID [items[1]: "": empty item]`,
		},
		{
			"long item", "POST", "/v1/lists/mules:add",
			map[string]any{"items": []string{long}},
			`400 LIST_ITEMS_INVALID [items[0]: "` + long[:64] + `…": 257 bytes, over the limit of 256]`,
		},
		{
			"control character", "POST", "/v1/lists/mules:add",
			map[string]any{"items": []string{"a\nb"}},
			`400 LIST_ITEMS_INVALID [items[0]: "a\nb": holds a control character]`,
		},
		{
			"bad name", "PUT", "/v1/lists/mule-accounts",
			map[string]any{"items": []string{"a"}},
			`400 INVALID_REQUEST [name: invalid list name "mule-accounts": a letter or '_', then letters, digits and '_', at most 128 bytes (a CEL identifier, as in lists.NAME)]`,
		},
		{"undeclared", "POST", "/v1/lists/other:remove", map[string]any{"items": []string{"a"}}, "404 LIST_NOT_FOUND"},
		{"too many items", "PUT", "/v1/lists/mules", map[string]any{"items": make([]string, 50001)}, "429 LIST_TOO_LARGE"},
		{"unknown field", "PUT", "/v1/lists/mules", map[string]any{"itemz": []string{"a"}}, "400 INVALID_REQUEST"},
		{"items not strings", "PUT", "/v1/lists/mules", map[string]any{"items": []int{1}}, "400 INVALID_REQUEST"},
		{"negative page size", "GET", "/v1/lists/mules?page_size=-1", nil, "400 INVALID_REQUEST [page_size: must not be negative, not -1]"},
		{"bad page token", "GET", "/v1/lists/mules?page_token=zzz", nil, `400 INVALID_REQUEST [page_token: invalid page token: "zzz"]`},
		{"long prefix", "GET", "/v1/lists/mules?prefix=" + long, nil, "400 INVALID_REQUEST [prefix: 257 bytes, over the limit of 256 (the longest item)]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.rest(t, tc.method, tc.path, tc.body)
			got := restStatus(code, body)
			if !strings.HasPrefix(got, tc.want) {
				t.Errorf("%s %s: %s, want %s", tc.method, tc.path, got, tc.want)
			}
		})
	}
	// gRPC: an empty name, and items with a NUL byte.
	if _, err := lists.PutList(e.ctx(t), &shrikev1.PutListRequest{Name: "", Items: []string{"a"}}); statusOf(err) != "InvalidArgument INVALID_REQUEST [name: invalid list name: empty: a list name is a CEL identifier, as in lists.NAME]" {
		t.Errorf("PutList with no name: %s", statusOf(err))
	}
	if _, err := lists.AddListItems(e.ctx(t), &shrikev1.ChangeListItemsRequest{Name: "mules", Items: []string{"a\x00b"}}); statusOf(err) != `InvalidArgument LIST_ITEMS_INVALID [items[0]: "a\x00b": holds a control character]` {
		t.Errorf("AddListItems with a NUL byte: %s", statusOf(err))
	}
	// Nothing of the refused changes landed.
	l, err = lists.GetList(e.ctx(t), &shrikev1.GetListRequest{Name: "mules"})
	if err != nil || l.GetVersion() != 3 || l.GetItemCount() != 3 {
		t.Errorf("after refused changes: %v, %v", l, err)
	}
}

// TestListLists lists the managed lists of the live rulesets without
// knowing their names, through REST a page at a time and through gRPC.
func TestListLists(t *testing.T) {
	toks := append([]server.Token{{Name: "curator", Secret: curatorToken, Scopes: []shrikev1.Scope{"lists:write", "rules:read"}}}, tokens...)
	e := newEnv(t, envOptions{tokens: toks})
	e.token = "reader-2666b541a9ca9cfc00f5a5121c23732a"
	code, body := e.rest(t, "GET", "/v1/lists", nil)
	if code != http.StatusOK || len(body["lists"].([]any)) != 0 || body["next_page_token"] != "" {
		t.Errorf("no rulesets: %d %v", code, body)
	}

	e.token = "writer-7507a84de02d4003977593f783f43ca6"
	e.put(t, "fraud", listsSrc)
	e.token = curatorToken
	if code, body := e.rest(t, "PUT", "/v1/lists/mules", map[string]any{"items": []string{"acct-1", "acct-2"}}); code != http.StatusOK {
		t.Fatalf("PUT: %d %v", code, body)
	}
	e.token = "reader-2666b541a9ca9cfc00f5a5121c23732a"
	code, body = e.rest(t, "GET", "/v1/lists?page_size=1", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /v1/lists: %d %v", code, body)
	}
	want := []any{map[string]any{"name": "mules", "types": []any{"string"}, "rulesets": []any{"fraud"}, "version": "1", "item_count": "2"}}
	if d := cmp.Diff(want, body["lists"]); d != "" {
		t.Errorf("page 1 (-want +got):\n%s", d)
	}
	next, _ := body["next_page_token"].(string)
	code, body = e.rest(t, "GET", "/v1/lists?page_size=1&page_token="+next, nil)
	want = []any{map[string]any{"name": "nets", "types": []any{"cidr"}, "rulesets": []any{"fraud"}, "version": "0", "item_count": "0"}}
	if d := cmp.Diff(want, body["lists"]); code != http.StatusOK || d != "" || body["next_page_token"] != "" {
		t.Errorf("page 2: %d %v (-want +got):\n%s", code, body, d)
	}

	resp, err := shrikev1.NewListServiceClient(e.conn).ListLists(e.ctx(t), &shrikev1.ListListsRequest{})
	if err != nil || len(resp.GetLists()) != 2 || resp.GetLists()[0].GetItemCount() != 2 {
		t.Errorf("gRPC ListLists = %v, %v", resp, err)
	}

	for _, tc := range []struct{ query, want string }{
		{"?page_token=zzz", `400 INVALID_REQUEST [page_token: invalid page token: "zzz"]`},
		{"?page_size=-1", "400 INVALID_REQUEST [page_size: must not be negative, not -1]"},
	} {
		code, body := e.rest(t, "GET", "/v1/lists"+tc.query, nil)
		if got := restStatus(code, body); got != tc.want {
			t.Errorf("GET /v1/lists%s: %s, want %s", tc.query, got, tc.want)
		}
	}
	e.token = "watcher-d15effcb07db80c20f9f3aaa07df3aec"
	code, body = e.rest(t, "GET", "/v1/lists", nil)
	if got := restStatus(code, body); got != "403 SCOPE_MISSING" {
		t.Errorf("GET /v1/lists without rules:read: %s", got)
	}
}
