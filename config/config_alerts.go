package config

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/shrike-cep/shrike/delivery"
	"github.com/shrike-cep/shrike/internal/tokencheck"
)

// AlertsConfig says where alerts go besides the alerts topic and the API:
// webhooks (README.md#webhooks).
type AlertsConfig struct {
	// Webhooks each get, at least once, every alert their filter passes,
	// read from the alerts topic by a consumer group of their own.
	Webhooks []WebhookConfig `yaml:"webhooks"`
	// UndeliveredTopic receives the alerts a webhook gave up on, with
	// the webhook's name and the last error in headers. Default
	// delivery.DefaultUndeliveredTopic.
	UndeliveredTopic string `yaml:"undelivered_topic"`
}

// WebhookConfig is one receiver of alerts. A field left out takes
// delivery's default (delivery.Webhook).
type WebhookConfig struct {
	// Name identifies the webhook in metrics and logs, and names its
	// consumer group, <kafka.group>-webhooks-<name>. Letters, digits, '.',
	// '_' and '-'.
	Name string `yaml:"name"`
	// URL is where alerts are POSTed, http or https. --print-config shows
	// its scheme and host only: a path may hold a secret.
	URL string `yaml:"url" secret:"url"`
	// SecretFile holds the HMAC-SHA256 key of the signature (surrounding
	// white space dropped), for format pagerduty the routing key. Required
	// but for format slack. Relative to the configuration file.
	SecretFile string `yaml:"secret_file"`
	// Filter is a CEL expression over `alert`; empty: every alert.
	Filter string `yaml:"filter"`
	// Format is json, slack or pagerduty. Default json.
	Format string `yaml:"format"`
	// Timeout bounds one attempt. Default 5s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxAttempts before the alert goes to the undelivered topic.
	// Default 8.
	MaxAttempts int `yaml:"max_attempts"`
	// Backoff is the wait before the second attempt, doubling after
	// each failed one up to MaxBackoff, with jitter. Default 1s.
	Backoff time.Duration `yaml:"backoff"`
	// MaxBackoff bounds the wait between two attempts. Default 1m.
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// MaxInFlight bounds the alerts being delivered at once. Default 16.
	MaxInFlight int `yaml:"max_in_flight"`
}

// Bounds of a webhook's fields.
const (
	maxWebhookTimeout     = 10 * time.Minute
	maxWebhookAttempts    = 100
	maxWebhookInFlight    = 1000
	maxWebhookBackoff     = time.Hour
	maxWebhookNameLen     = 100
	minWebhookSecretBytes = 16
)

var webhookNameRE = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// alertPaths are the webhooks' secret files, which a configuration file
// gives relative to its own folder.
func (c *Config) alertPaths() []configPath {
	var ps []configPath
	for i := range c.Alerts.Webhooks {
		ps = append(ps, configPath{fmt.Sprintf("alerts.webhooks[%d].secret_file", i), &c.Alerts.Webhooks[i].SecretFile})
	}
	return ps
}

// validateAlerts checks the alerts section: every webhook's fields, its
// URL and its filter, compiled here so that a broken filter stops serve
// at start with its position.
func (c *Config) validateAlerts(bad func(path, format string, args ...any)) {
	if t := c.Alerts.UndeliveredTopic; !topicRE.MatchString(t) || t == "." || t == ".." {
		bad("alerts.undelivered_topic", "%q is not a Kafka topic name (letters, digits, '.', '_' and '-', at most 249)", t)
	} else {
		for _, o := range []struct{ path, name string }{
			{"kafka.topics.alerts", c.Kafka.Topics.Alerts},
			{"kafka.topics.shadow_alerts", c.Kafka.Topics.ShadowAlerts},
			{"kafka.topics.deadletter", c.Kafka.Topics.DeadLetter},
			{"kafka.topics.late", c.Kafka.Topics.Late},
		} {
			if t == o.name {
				bad("alerts.undelivered_topic", "topic %q is also %s", t, o.path)
			}
		}
	}
	names := map[string]bool{}
	for i, w := range c.Alerts.Webhooks {
		at := fmt.Sprintf("alerts.webhooks[%d]", i)
		_, hasName := c.origin[at+".name"]
		switch {
		case !hasName || w.Name == "":
			bad(at, "every webhook needs a name")
		case len(w.Name) > maxWebhookNameLen || !webhookNameRE.MatchString(w.Name):
			bad(at+".name", "%q is not a webhook name (letters, digits, '.', '_' and '-', at most %d): it names a consumer group and a metric label",
				w.Name, maxWebhookNameLen)
		case names[w.Name]:
			bad(at+".name", "webhook name %q is used twice", w.Name)
		}
		names[w.Name] = true
		if _, ok := c.origin[at+".url"]; !ok {
			bad(at, "webhook %q has no url", w.Name)
		} else if err := delivery.CheckURL(w.URL); err != nil {
			bad(at+".url", "%v", err)
		}
		format := delivery.Format(w.Format)
		if w.Format == "" {
			format = delivery.DefaultFormat
		}
		if !format.Known() {
			bad(at+".format", "%q is not one of json, slack, pagerduty", w.Format)
		}
		if w.SecretFile == "" && format != delivery.FormatSlack {
			what := "the HMAC-SHA256 key of its signatures"
			if format == delivery.FormatPagerDuty {
				what = "the PagerDuty routing key"
			}
			bad(at, "webhook %q has no secret_file (%s)", w.Name, what)
		}
		if strings.TrimSpace(w.Filter) != "" {
			if _, err := delivery.CompileFilter(w.Filter); err != nil {
				var fe *delivery.FilterError
				if errors.As(err, &fe) {
					for _, p := range fe.Problems {
						msg := fmt.Sprintf("%d:%d in the expression: %s", p.Line, p.Col, p.Msg)
						if p.Snippet != "" {
							msg += "\n" + p.Snippet
						}
						bad(at+".filter", "%s", msg)
					}
				} else {
					bad(at+".filter", "%v", err)
				}
			}
		}
		c.validateWebhookBounds(at, w, bad)
	}
}

// validateWebhookBounds checks the numbers of a webhook that the file
// sets; those it leaves out take delivery's defaults.
func (c *Config) validateWebhookBounds(at string, w WebhookConfig, bad func(path, format string, args ...any)) {
	set := func(field string) bool { _, ok := c.origin[at+"."+field]; return ok }
	if set("timeout") && (w.Timeout <= 0 || w.Timeout > maxWebhookTimeout) {
		bad(at+".timeout", "must be positive and at most %s, not %s", maxWebhookTimeout, w.Timeout)
	}
	if set("max_attempts") && (w.MaxAttempts < 1 || w.MaxAttempts > maxWebhookAttempts) {
		bad(at+".max_attempts", "must be 1 to %d, not %d", maxWebhookAttempts, w.MaxAttempts)
	}
	if set("backoff") && (w.Backoff <= 0 || w.Backoff > maxWebhookBackoff) {
		bad(at+".backoff", "must be positive and at most %s, not %s", maxWebhookBackoff, w.Backoff)
	}
	if set("max_backoff") && (w.MaxBackoff <= 0 || w.MaxBackoff > maxWebhookBackoff) {
		bad(at+".max_backoff", "must be positive and at most %s, not %s", maxWebhookBackoff, w.MaxBackoff)
	}
	backoff := w.Backoff
	if !set("backoff") {
		backoff = delivery.DefaultBackoff
	}
	if set("max_backoff") && w.MaxBackoff > 0 && w.MaxBackoff < backoff {
		bad(at+".max_backoff", "%s is less than backoff (%s)", w.MaxBackoff, backoff)
	}
	if set("max_in_flight") && (w.MaxInFlight < 1 || w.MaxInFlight > maxWebhookInFlight) {
		bad(at+".max_in_flight", "must be 1 to %d, not %d", maxWebhookInFlight, w.MaxInFlight)
	}
}

// Secret reads the webhook's secret from SecretFile (without surrounding
// white space): nil for a slack webhook without one. An HMAC key must be
// strong (tokencheck.Check), as a key an attacker guesses lets them sign
// alerts of their own; a PagerDuty routing key must be one word.
func (w WebhookConfig) Secret() ([]byte, error) {
	if w.SecretFile == "" {
		if w.Format == string(delivery.FormatSlack) {
			return nil, nil
		}
		return nil, fmt.Errorf("webhook %q: no secret_file", w.Name)
	}
	b, err := os.ReadFile(w.SecretFile)
	if err != nil {
		return nil, fmt.Errorf("webhook %q: %w", w.Name, err)
	}
	secret := strings.TrimSpace(string(b))
	switch {
	case secret == "":
		return nil, fmt.Errorf("webhook %q: %s is empty; %s", w.Name, w.SecretFile, tokencheck.Generate)
	case w.Format == string(delivery.FormatPagerDuty):
		if strings.ContainsAny(secret, " \t\r\n") {
			return nil, fmt.Errorf("webhook %q: %s holds white space: a PagerDuty routing key is one word", w.Name, w.SecretFile)
		}
	case len(secret) < minWebhookSecretBytes:
		return nil, fmt.Errorf("webhook %q: the key in %s is %d bytes, at least %d needed; %s",
			w.Name, w.SecretFile, len(secret), minWebhookSecretBytes, tokencheck.Generate)
	default:
		if err := tokencheck.Check(secret); err != nil {
			return nil, fmt.Errorf("webhook %q: the key in %s: %w", w.Name, w.SecretFile, err)
		}
	}
	return []byte(secret), nil
}

// Webhook is the webhook as delivery takes it, with its secret.
func (w WebhookConfig) Webhook(secret []byte) delivery.Webhook {
	return delivery.Webhook{
		Name:        w.Name,
		URL:         w.URL,
		Secret:      secret,
		Filter:      w.Filter,
		Format:      delivery.Format(w.Format),
		Timeout:     w.Timeout,
		MaxAttempts: w.MaxAttempts,
		Backoff:     w.Backoff,
		MaxBackoff:  w.MaxBackoff,
		MaxInFlight: w.MaxInFlight,
	}
}
