package delivery

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// body makes the request body of an alert in format f. raw is the alert
// record's value and alert its decoding.
func body(f Format, secret []byte, raw []byte, alert map[string]any) ([]byte, error) {
	switch f {
	case FormatSlack:
		return json.Marshal(slackMessage(alert))
	case FormatPagerDuty:
		return json.Marshal(pagerDutyEvent(string(secret), alert))
	}
	return raw, nil
}

// str returns the alert's string field, or "".
func str(alert map[string]any, field string) string {
	s, _ := alert[field].(string)
	return s
}

// cut shortens s to at most n bytes on a rune boundary, marking the cut
// with an ellipsis.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ell = "…"
	i := n - len(ell)
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + ell
}

// Bounds of Slack's Block Kit: a header's text, a section's text, a
// field's text; the message's fallback text is kept to a section's.
const (
	slackHeaderMax  = 150
	slackSectionMax = 3000
	slackFieldMax   = 2000
)

// slackEscape escapes the three characters Slack's mrkdwn gives meaning
// to, so that an alert's key or summary cannot make links or mentions.
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type slackBlock struct {
	Type     string      `json:"type"`
	Text     *slackText  `json:"text,omitempty"`
	Fields   []slackText `json:"fields,omitempty"`
	Elements []slackText `json:"elements,omitempty"`
}

type slackMsg struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks"`
}

// slackMessage is an incoming-webhook message: a fallback text (shown in
// notifications) and blocks with the summary, then severity, rule, key
// and times as fields, then the alert id.
func slackMessage(alert map[string]any) slackMsg {
	sev, rule, ruleset := str(alert, "severity"), str(alert, "rule"), str(alert, "ruleset")
	key, summary := str(alert, "key"), str(alert, "summary")
	kind := ""
	if t, _ := alert["timeout"].(bool); t {
		kind = " (timed out)"
	}
	mrk := func(s string, n int) string { return cut(slackEscape.Replace(s), n) }
	text := fmt.Sprintf("[%s] %s/%s%s, key %s: %s", strings.ToUpper(sev), ruleset, rule, kind, key, summary)
	fields := []slackText{
		{Type: "mrkdwn", Text: mrk("*Severity*\n"+sev, slackFieldMax)},
		{Type: "mrkdwn", Text: mrk("*Rule*\n"+ruleset+"/"+rule+kind, slackFieldMax)},
		{Type: "mrkdwn", Text: mrk("*Key*\n"+key, slackFieldMax)},
		{Type: "mrkdwn", Text: mrk("*Detected at*\n"+str(alert, "detected_at"), slackFieldMax)},
	}
	return slackMsg{
		Text: mrk(text, slackSectionMax),
		Blocks: []slackBlock{
			{Type: "header", Text: &slackText{Type: "plain_text", Text: cut(strings.ToUpper(sev)+": "+rule, slackHeaderMax)}},
			{Type: "section", Text: &slackText{Type: "mrkdwn", Text: mrk(cmpOr(summary, rule), slackSectionMax)}},
			{Type: "section", Fields: fields},
			{Type: "context", Elements: []slackText{{Type: "mrkdwn", Text: mrk("alert "+str(alert, "id"), slackFieldMax)}}},
		},
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// pagerDutySummaryMax is the Events API v2 bound on payload.summary.
const pagerDutySummaryMax = 1024

// pagerDutySeverity maps an alert's severity to the Events API's.
func pagerDutySeverity(s string) string {
	switch s {
	case "medium":
		return "warning"
	case "high":
		return "error"
	case "critical":
		return "critical"
	}
	return "info" // info, low, and anything else
}

type pdPayload struct {
	Summary       string         `json:"summary"`
	Source        string         `json:"source"`
	Severity      string         `json:"severity"`
	Timestamp     string         `json:"timestamp,omitempty"`
	Component     string         `json:"component,omitempty"`
	Group         string         `json:"group,omitempty"`
	Class         string         `json:"class,omitempty"`
	CustomDetails map[string]any `json:"custom_details"`
}

type pdEvent struct {
	RoutingKey  string    `json:"routing_key"`
	EventAction string    `json:"event_action"`
	DedupKey    string    `json:"dedup_key"`
	Client      string    `json:"client"`
	Payload     pdPayload `json:"payload"`
}

// pagerDutyEvent is an Events API v2 trigger. The alert id is the
// dedup_key, so a duplicate delivery updates the same incident; the
// matched events stay out of custom_details (they can be large), which
// holds every other field of the alert.
func pagerDutyEvent(routingKey string, alert map[string]any) pdEvent {
	details := make(map[string]any, len(alert))
	for k, v := range alert {
		if k != "events" {
			details[k] = v
		}
	}
	rule, ruleset := str(alert, "rule"), str(alert, "ruleset")
	summary := fmt.Sprintf("%s/%s, key %s: %s", ruleset, rule, str(alert, "key"), cmpOr(str(alert, "summary"), rule))
	return pdEvent{
		RoutingKey:  routingKey,
		EventAction: "trigger",
		DedupKey:    str(alert, "id"),
		Client:      "Shrike",
		Payload: pdPayload{
			Summary:       cut(summary, pagerDutySummaryMax),
			Source:        "shrike/" + ruleset,
			Severity:      pagerDutySeverity(str(alert, "severity")),
			Timestamp:     str(alert, "detected_at"),
			Component:     ruleset,
			Group:         ruleset,
			Class:         rule,
			CustomDetails: details,
		},
	}
}
