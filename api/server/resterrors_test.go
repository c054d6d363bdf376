package server_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestRESTErrorsPlain: every REST error, also those the gateway raises
// itself (a body or a query parameter it cannot decode, a path no method
// is mapped to), is a google.rpc.Status whose details hold an ErrorInfo
// (never an empty list) and whose text is plain ASCII-spaced: protobuf's
// errors carry a U+00A0 at random.
func TestRESTErrorsPlain(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, tt := range []struct {
		name, method, path, body string
		code                     int
		reason, field            string
	}{
		{"a number for a string", "PUT", "/v1/rulesets/x", `{"source": 12}`, 400, "INVALID_REQUEST", "body"},
		{"an unknown field", "PUT", "/v1/rulesets/x", `{"nope": "a"}`, 400, "INVALID_REQUEST", "body"},
		{"a JSON syntax error", "PUT", "/v1/rulesets/x", `{"source": "a",}`, 400, "INVALID_REQUEST", "body"},
		{"a number out of range", "POST", "/v1/events:publish", `{"topic":"payments","events":[{"key":"a","value":{"x":1e999}}]}`, 400, "INVALID_REQUEST", "body"},
		{"a bad query parameter", "GET", "/v1/rulesets?page_size=abc", ``, 400, "INVALID_REQUEST", "page_size"},
		{"an unknown path", "GET", "/v1/nothing", ``, 404, "UNKNOWN_PATH", ""},
		{"a method the path does not take", "DELETE", "/v1/rulesets", ``, 405, "UNKNOWN_PATH", ""},
		{"the service's own error", "GET", "/v1/rulesets/nope", ``, 404, "RULESET_NOT_FOUND", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, raw := e.restRaw(t, tt.method, tt.path, strings.NewReader(tt.body))
			if code != tt.code {
				t.Errorf("HTTP %d, want %d: %s", code, tt.code, raw)
			}
			if bytes.ContainsRune(raw, '\u00a0') || bytes.Contains(raw, []byte(`\u00a0`)) {
				t.Errorf("a non-breaking space in the error: %q", raw)
			}
			var st struct {
				Message string `json:"message"`
				Details []struct {
					Type            string `json:"@type"`
					Reason          string `json:"reason"`
					Domain          string `json:"domain"`
					FieldViolations []struct {
						Field       string `json:"field"`
						Description string `json:"description"`
					} `json:"field_violations"`
				} `json:"details"`
			}
			if err := json.Unmarshal(raw, &st); err != nil {
				t.Fatalf("%s: %v", raw, err)
			}
			if st.Message == "" || strings.HasPrefix(st.Message, "proto:") {
				t.Errorf("message %q", st.Message)
			}
			var reason, field string
			for _, d := range st.Details {
				switch d.Type {
				case "type.googleapis.com/google.rpc.ErrorInfo":
					if d.Domain != "shrike" {
						t.Errorf("ErrorInfo domain %q", d.Domain)
					}
					reason = d.Reason
				case "type.googleapis.com/google.rpc.BadRequest":
					for _, v := range d.FieldViolations {
						field = v.Field
						if v.Description == "" {
							t.Errorf("field violation of %q without a description", v.Field)
						}
					}
				}
			}
			if reason != tt.reason || field != tt.field {
				t.Errorf("reason %q, field %q; want %q, %q in %s", reason, field, tt.reason, tt.field, raw)
			}
		})
	}
}
