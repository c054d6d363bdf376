package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestConfigAdminValidate(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		flags   [][3]string
		want    []string
		enabled bool
	}{
		{name: "defaults", enabled: true},
		{name: "off", src: "admin: {listen: off}\n"},
		{name: "empty", src: "admin: {listen: ''}\n"},
		{name: "off by flag", flags: [][3]string{{"admin.listen", "off", "--admin-listen"}}},
		{name: "beyond loopback is allowed", src: "admin: {listen: '0.0.0.0:9100'}\n", enabled: true},
		{name: "port 0 twice", src: "http: {listen: '127.0.0.1:0'}\nadmin: {listen: '127.0.0.1:0'}\n", enabled: true},
		{
			name:  "not an address",
			flags: [][3]string{{"admin.listen", "8081", "--admin-listen"}},
			want:  []string{`--admin-listen: "8081": want host:port (or "off" for no admin listener)`},
		},
		{
			name: "the API's port",
			src:  "http: {listen: '127.0.0.1:8080'}\ngrpc: {listen: 'localhost:9090'}\nadmin: {listen: ':8080'}\n",
			want: []string{`c.yaml:3:17: admin.listen: ":8080" is also http.listen: the admin listener (no authentication) needs its own port`},
		},
		{
			name: "the gRPC port",
			src:  "admin: {listen: 'localhost:9090'}\ngrpc: {listen: 'LOCALHOST:9090'}\n",
			want: []string{`c.yaml:1:17: admin.listen: "localhost:9090" is also grpc.listen: the admin listener (no authentication) needs its own port`},
		},
		{
			name: "limits",
			src:  "http: {read_header_timeout: 0s, read_timeout: -1s, idle_timeout: 0s, max_header_bytes: 100}\n",
			want: []string{
				`c.yaml:1:29: http.read_header_timeout: must be positive, not 0s`,
				`c.yaml:1:47: http.read_timeout: must be positive, not -1s`,
				`c.yaml:1:66: http.idle_timeout: must be positive, not 0s`,
				`c.yaml:1:88: http.max_header_bytes: must be at least 4096, not 100`,
			},
		},
		{
			name: "headers longer than the request",
			src:  "http: {read_header_timeout: 2m, read_timeout: 1m}\n",
			want: []string{`c.yaml:1:29: http.read_header_timeout: 2m0s is longer than http.read_timeout (1m0s), which includes the headers`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := LoadConfig("c.yaml", []byte(tt.src))
			for _, f := range tt.flags {
				if err == nil {
					err = cfg.Set(f[0], f[1], f[2])
				}
			}
			if err == nil {
				err = cfg.Validate()
			}
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if err == nil && cfg.Admin.Enabled() != tt.enabled {
				t.Errorf("Admin.Enabled() = %v, want %v", cfg.Admin.Enabled(), tt.enabled)
			}
		})
	}
}
