package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shrike-cep/shrike/delivery"
)

func TestConfigAlertsValidate(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "the documented example",
			src: `alerts:
  webhooks:
    - name: soc
      url: https://cases.example/hooks/shrike
      secret_file: soc.secret
      filter: 'alert.severity in ["high", "critical"]'
      format: json
      timeout: 5s
      max_attempts: 8
    - {name: chat, url: "https://hooks.slack.com/services/T0/B0/X", format: slack}
    - {name: pd, url: "https://events.pagerduty.com/v2/enqueue", format: pagerduty, secret_file: pd.key}
`,
		},
		{
			name: "bad webhooks",
			src: `alerts:
  undelivered_topic: shrike-late
  webhooks:
    - {url: "https://a.example/"}
    - {name: "s o c", url: "ftp://a.example/", secret_file: s}
    - {name: b, url: "https://b.example/", format: xml, secret_file: s, timeout: 0s, max_attempts: 0}
    - {name: b, url: "https:///nohost", secret_file: s, backoff: 2m, max_backoff: 1m, max_in_flight: 5000}
    - {name: c, format: pagerduty}
    - name: d
      url: http://127.0.0.1:9/
      secret_file: s
      filter: 'alert.severity in ["high"] && nosuch'
    - {name: e, url: "http://127.0.0.1:9/", secret_file: s, filter: '"high"'}
`,
			want: []string{
				`c.yaml:2:22: alerts.undelivered_topic: topic "shrike-late" is also kafka.topics.late`,
				`c.yaml:4:7: alerts.webhooks[0]: every webhook needs a name`,
				`c.yaml:4:7: alerts.webhooks[0]: webhook "" has no secret_file (the HMAC-SHA256 key of its signatures)`,
				`c.yaml:5:14: alerts.webhooks[1].name: "s o c" is not a webhook name (letters, digits, '.', '_' and '-', at most 100): it names a consumer group and a metric label`,
				`c.yaml:5:28: alerts.webhooks[1].url: scheme "ftp" is not http or https`,
				`c.yaml:6:52: alerts.webhooks[2].format: "xml" is not one of json, slack, pagerduty`,
				`c.yaml:6:82: alerts.webhooks[2].timeout: must be positive and at most 10m0s, not 0s`,
				`c.yaml:6:100: alerts.webhooks[2].max_attempts: must be 1 to 100, not 0`,
				`c.yaml:7:14: alerts.webhooks[3].name: webhook name "b" is used twice`,
				`c.yaml:7:22: alerts.webhooks[3].url: has no host`,
				`c.yaml:7:83: alerts.webhooks[3].max_backoff: 1m0s is less than backoff (2m0s)`,
				`c.yaml:7:102: alerts.webhooks[3].max_in_flight: must be 1 to 1000, not 5000`,
				`c.yaml:8:7: alerts.webhooks[4]: webhook "c" has no url`,
				`c.yaml:8:7: alerts.webhooks[4]: webhook "c" has no secret_file (the PagerDuty routing key)`,
				`c.yaml:12:15: alerts.webhooks[5].filter: 1:31 in the expression: undeclared reference to 'nosuch'`,
				` | alert.severity in ["high"] && nosuch`,
				` |                               ^`,
				`c.yaml:13:69: alerts.webhooks[6].filter: 1:1 in the expression: a filter must be a bool expression, not string`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := LoadConfig("c.yaml", []byte(tt.src))
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
		})
	}
}

func TestConfigWebhookFieldsAndPaths(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "shrike.yaml")
	src := `alerts:
  webhooks:
    - name: soc
      url: https://cases.example/hooks/shrike
      secret_file: secrets/soc.secret
      filter: alert.severity == "high"
      format: pagerduty
      timeout: 2s
      max_attempts: 3
      backoff: 100ms
      max_backoff: 1s
      max_in_flight: 4
`
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfigFile(path)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Alerts.Webhooks[0].Webhook([]byte("key"))
	want := delivery.Webhook{
		Name: "soc", URL: "https://cases.example/hooks/shrike", Secret: []byte("key"), Filter: `alert.severity == "high"`,
		Format: delivery.FormatPagerDuty, Timeout: 2 * time.Second, MaxAttempts: 3,
		Backoff: 100 * time.Millisecond, MaxBackoff: time.Second, MaxInFlight: 4,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("webhook (-want +got):\n%s", diff)
	}
	if got, want := cfg.Alerts.Webhooks[0].SecretFile, filepath.Join(dir, "secrets/soc.secret"); got != want {
		t.Errorf("secret_file = %s, want %s (relative to the file)", got, want)
	}
	if cfg.Alerts.UndeliveredTopic != delivery.DefaultUndeliveredTopic {
		t.Errorf("undelivered_topic = %q", cfg.Alerts.UndeliveredTopic)
	}
}

func TestWebhookSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const strong = "9f2c4e7a1b6d8f3e0a5c2b7d4e9f1a6c"
	good := write("good", "  "+strong+"\n")
	short := write("short", "abc123\n")
	weak := write("weak", strings.Repeat("ab", 20))
	empty := write("empty", "\n")
	pd := write("pd", "R0123456789abcdefR0123456789abcd\n")
	pdSpaced := write("pd2", "R01234 56789\n")
	for _, tt := range []struct {
		name    string
		w       WebhookConfig
		want    string
		wantErr string
	}{
		{"trimmed", WebhookConfig{Name: "a", SecretFile: good}, strong, ""},
		{"slack without one", WebhookConfig{Name: "a", Format: "slack"}, "", ""},
		{"json without one", WebhookConfig{Name: "a"}, "", `webhook "a": no secret_file`},
		{"short", WebhookConfig{Name: "a", SecretFile: short}, "", `webhook "a": the key in ` + short + ` is 6 bytes, at least 16 needed`},
		{"weak", WebhookConfig{Name: "a", SecretFile: weak}, "", `webhook "a": the key in ` + weak + `: too weak`},
		{"empty", WebhookConfig{Name: "a", SecretFile: empty}, "", `webhook "a": ` + empty + ` is empty`},
		{"missing", WebhookConfig{Name: "a", SecretFile: filepath.Join(dir, "nope")}, "", `webhook "a": open `},
		{"routing key", WebhookConfig{Name: "a", Format: "pagerduty", SecretFile: pd}, "R0123456789abcdefR0123456789abcd", ""},
		{"routing key with a space", WebhookConfig{Name: "a", Format: "pagerduty", SecretFile: pdSpaced}, "", "holds white space"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.w.Secret()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Secret() = %q, %v; want an error with %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Errorf("Secret() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
