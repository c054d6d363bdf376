package jsonstr

import (
	"encoding/json"
	"testing"
)

func TestAppendMatchesEncodingJSON(t *testing.T) {
	for _, body := range []string{
		``, `plain`, `caf\u00e9`, `tab\there`, `quote\"slash\/back\\`, `\ud83d\ude00`,
		`lone \ud83d here`, `\udc00 low first`, "raw \xff byte", "caf\xc3\xa9", `\b\f\n\r`,
	} {
		var want string
		if err := json.Unmarshal([]byte(`"`+body+`"`), &want); err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		if got := string(Append(nil, []byte(body))); got != want {
			t.Errorf("Append(%q) = %q, encoding/json %q", body, got, want)
		}
		if Plain([]byte(body)) != (want == body) {
			t.Errorf("Plain(%q) = %v, but it decodes to %q", body, Plain([]byte(body)), want)
		}
	}
}

func TestAppendKeepsMalformedEscapes(t *testing.T) {
	for body, want := range map[string]string{`a\q`: `a\q`, `x\u12`: `x\u12`, `end\`: `end\`} {
		if got := string(Append(nil, []byte(body))); got != want {
			t.Errorf("Append(%q) = %q, want %q", body, got, want)
		}
	}
}

func FuzzAppend(f *testing.F) {
	f.Add(`caf\u00e9 \ud83d\ude00`)
	f.Fuzz(func(t *testing.T, body string) {
		var want string
		if json.Unmarshal([]byte(`"`+body+`"`), &want) != nil {
			Append(nil, []byte(body)) // malformed: must not panic
			return
		}
		if got := string(Append(nil, []byte(body))); got != want {
			t.Fatalf("Append(%q) = %q, encoding/json %q", body, got, want)
		}
	})
}
