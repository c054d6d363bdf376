package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	apiserver "github.com/shrike-cep/shrike/api/server"
	"github.com/shrike-cep/shrike/cep"
)

func TestAPITokens(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.token", "  s3cret\n")
	empty := write("empty.token", "\n")
	tests := []struct {
		name    string
		tokens  []cep.TokenConfig
		want    []apiserver.Token
		wantErr string
	}{
		{"inline and from a file, trimmed", []cep.TokenConfig{
			{Name: "a", Token: "inline", Scopes: []string{"rules:read"}},
			{Name: "b", TokenFile: good, Scopes: []string{"alerts:read"}},
		}, []apiserver.Token{
			{Name: "a", Secret: "inline", Scopes: []string{"rules:read"}},
			{Name: "b", Secret: "s3cret", Scopes: []string{"alerts:read"}},
		}, ""},
		{"missing file", []cep.TokenConfig{{Name: "c", TokenFile: filepath.Join(dir, "nope")}}, nil, `api token "c": open `},
		{"empty file", []cep.TokenConfig{{Name: "d", TokenFile: empty}}, nil, `api token "d": ` + empty + " is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := apiTokens(cep.APIConfig{Tokens: tt.tokens})
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want %q…", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("tokens (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAPITLS(t *testing.T) {
	if c, err := apiTLS(cep.TLSConfig{}); c != nil || err != nil {
		t.Errorf("no files: %v, %v; want no TLS", c, err)
	}
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := os.WriteFile(cert, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := apiTLS(cep.TLSConfig{CertFile: cert, KeyFile: key}); err == nil || !strings.HasPrefix(err.Error(), "api tls: ") {
		t.Errorf("bad PEM: %v", err)
	}
}
