package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/config"
	"github.com/shrike-cep/shrike/internal/testkit"
)

// The operator's files that query serve's metrics.
const (
	dashboardFile   = "../../deploy/grafana/shrike-dashboard.json"
	alertRulesFile  = "../../deploy/prometheus/shrike-alerts.yml"
	operationsDoc   = "../../docs/operations.md"
	paymentsRuleset = "../../rulesets/payments.yaml"
)

// webhookMetrics exist once serve delivers alerts to a webhook: the test
// requires them when serve's configuration can name webhooks
// (alerts.webhooks), and configures one then.
var webhookMetrics = []string{
	"shrike_webhook_deliveries_total",
	"shrike_webhook_retries_total",
	"shrike_webhook_delivery_seconds",
}

// metricNameRE finds the names of Shrike's, Go's and the process's
// metrics in a PromQL expression; label names and values, functions and
// Grafana's variables never match.
var metricNameRE = regexp.MustCompile(`\b(?:shrike|go|process)_[a-zA-Z0-9_]*[a-zA-Z0-9]`)

// TestServeMetricsCoverDashboardAndAlerts runs serve on the shipped
// payments rulesets with traffic of every kind (events, late and
// undecodable ones, alerts, REST and gRPC calls, a shadow version) and
// checks that every metric the Grafana dashboard and the Prometheus
// alerting rules query is on /metrics, that docs/operations.md
// describes every metric of serve and every alert, and that the metrics
// follow Prometheus' naming: counters end in _total, nothing else does.
func TestServeMetricsCoverDashboardAndAlerts(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	queried := map[string][]string{} // metric name → where it is queried
	for _, q := range dashboardQueries(t, dashboardFile) {
		for _, name := range metricNameRE.FindAllString(q.expr, -1) {
			queried[name] = append(queried[name], "dashboard: "+q.where)
		}
	}
	for _, r := range loadAlertRules(t, alertRulesFile) {
		for _, name := range metricNameRE.FindAllString(r.Expr, -1) {
			queried[name] = append(queried[name], "alert "+r.Alert)
		}
	}
	if len(queried) < 20 {
		t.Fatalf("the dashboard and the rules query %d metrics; the tokenizer lost some", len(queried))
	}
	for _, name := range webhookMetrics {
		if queried[name] == nil && queried[name+"_bucket"] == nil {
			t.Errorf("webhookMetrics names %s, which neither the dashboard nor the rules query", name)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cfg, webhooks, stopReceiver := metricsTestConfig(t)
	defer stopReceiver()
	var logs testkit.Buffer
	s, err := startServer(ctx, env{stderr: newOutput(&logs), clock: time.Now}, cfg)
	if err != nil {
		t.Fatalf("start: %v\n%s", err, logs.String())
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- s.run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	api, admin := "http://"+s.http.Addr(), "http://"+s.admin.Addr()
	waitReady(ctx, t, client, api)

	generateTraffic(ctx, t, s, client, api)
	for _, re := range []string{
		`(?m)^shrike_engine_alerts_total\{rule="[^"]+",ruleset="payments",shadow="false"\} [1-9]`,
		`(?m)^shrike_engine_late_events_total\{topic="payments"\} [1-9]`,
		`(?m)^shrike_engine_deadlettered_events_total\{reason="invalid_event",topic="payments"\} [1-9]`,
		`(?m)^shrike_rules_shadow_errors_total\{ruleset="payments"\} 0`,
		`(?m)^shrike_engine_alert_detection_delay_seconds_count [1-9]`,
	} {
		waitMetric(ctx, t, client, admin, re)
	}
	_, text := httpGet(t, client, admin+"/metrics")
	families := metricFamilies(text)

	doc, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	for name := range families {
		if !documented(string(doc), name) {
			t.Errorf("%s does not describe metric %s", operationsDoc, name)
		}
	}
	for _, r := range loadAlertRules(t, alertRulesFile) {
		if !strings.Contains(string(doc), "| `"+r.Alert+"` |") {
			t.Errorf("%s does not describe alert %s in its table of alerts", operationsDoc, r.Alert)
		}
	}

	var missing []string
	for name, where := range queried {
		if families[name] != "" || isHistogramSeries(families, name) {
			continue
		}
		if slices.Contains(webhookMetrics, strings.TrimSuffix(name, "_bucket")) && !webhooks {
			t.Logf("%s is not required: serve's configuration has no webhooks to deliver to", name)
			continue
		}
		slices.Sort(where)
		missing = append(missing, fmt.Sprintf("%s (%s)", name, strings.Join(slices.Compact(where), "; ")))
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("metrics queried but not on serve's /metrics:\n  %s", strings.Join(missing, "\n  "))
	}

	for name, typ := range families {
		switch {
		case typ == "counter" && !strings.HasSuffix(name, "_total"):
			t.Errorf("counter %s does not end in _total", name)
		case typ != "counter" && strings.HasSuffix(name, "_total"):
			t.Errorf("%s %s ends in _total, which Prometheus keeps for counters", typ, name)
		}
	}
	if families["shrike_build_info"] != "gauge" || !regexp.MustCompile(`(?m)^shrike_build_info\{goversion="go[^"]+",revision="[^"]+",version="[^"]+"\} 1$`).MatchString(text) {
		t.Errorf("no shrike_build_info gauge of 1 with its version, revision and goversion:\n%s", grepLines(text, "build_info"))
	}
}

// metricsTestConfig is serve's test configuration, with a webhook that
// accepts every alert when the configuration has webhooks (then
// webhooks is true); stop stops its receiver.
func metricsTestConfig(t *testing.T) (cfg config.Config, webhooks bool, stop func()) {
	t.Helper()
	cfg = testServeConfig("../../rulesets")
	alerts, ok := reflect.TypeFor[config.Config]().FieldByName("Alerts")
	if !ok || alerts.Type.Kind() != reflect.Struct {
		return cfg, false, func() {}
	}
	if _, ok := alerts.Type.FieldByName("Webhooks"); !ok {
		return cfg, false, func() {}
	}
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	addr := receiver.Listener.Addr().String()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "hook.secret"), "5b1e9c3f7a2d4e6b8c0f1a3d5e7b9c2f4a6d8e0b1c3f5a7d9e2b4c6f8a0d1e3b")
	file := filepath.Join(dir, "shrike.yaml")
	writeFile(t, file, fmt.Sprintf("alerts:\n  webhooks:\n    - name: metrics-test\n      url: http://%s/hook\n      secret_file: hook.secret\n", addr))
	loaded, err := config.LoadConfigFile(file)
	if err != nil {
		receiver.Close()
		t.Fatalf("a configuration with a webhook: %v", err)
	}
	loaded.Rules, loaded.Kafka.Embedded, loaded.Redis.Embedded = cfg.Rules, cfg.Kafka.Embedded, cfg.Redis.Embedded
	loaded.HTTP.Listen, loaded.GRPC.Listen, loaded.Admin.Listen = cfg.HTTP.Listen, cfg.GRPC.Listen, cfg.Admin.Listen
	loaded.State.CheckpointInterval = cfg.State.CheckpointInterval
	return loaded, true, receiver.Close
}

// generateTraffic makes serve count something in every metric the
// operator's files query: the payments recording and then an event two
// days later in each partition (alerts, suppressed alerts and
// timeouts), an event older than those (late) and a record that is not
// JSON (dead-lettered), REST and gRPC calls, and a shadow version.
func generateTraffic(ctx context.Context, t *testing.T, s *server, client *http.Client, api string) {
	t.Helper()
	broker := s.kafka.Addrs()[0]
	produce(ctx, t, broker, "payments", "account_id", readLines(t, "../../rulesets/testdata/payments.jsonl"))
	var closers [][]byte
	for p := range s.cfg.Kafka.Embedded.Partitions {
		closers = append(closers, fmt.Appendf(nil, `{"type":"card_auth","account_id":"acct-end-%d","amount":1.00,"currency":"USD","country":"US","ip":"10.0.0.1","device":"ios-1","success":true,"merchant":"m-1","card_id":"card-1","lat":0,"lon":0,"ts":"2026-11-22T10:00:00.000Z"}`, p))
	}
	produceToPartitions(ctx, t, broker, "payments", closers)
	produce(ctx, t, broker, "payments", "account_id", [][]byte{
		[]byte(`{"type":"login","account_id":"acct-late","ip":"10.0.0.2","device":"ios-2","success":true,"ts":"2026-11-01T00:00:00.000Z"}`),
		[]byte(`not json`),
	})

	src, err := os.ReadFile(paymentsRuleset)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(map[string]string{"source": string(src)})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, api+"/v1/rulesets/payments/shadow", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close() // the status is what counts
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT /v1/rulesets/payments/shadow = %s", resp.Status)
	}
	if code, _ := httpGet(t, client, api+"/v1/rulesets/no-such-ruleset"); code != http.StatusNotFound {
		t.Fatalf("GET /v1/rulesets/no-such-ruleset = %d, want 404", code)
	}

	conn, err := grpc.NewClient(s.api.srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	if _, err := shrikev1.NewRulesetServiceClient(conn).ListRulesets(ctx, &shrikev1.ListRulesetsRequest{}); err != nil {
		t.Fatalf("ListRulesets: %v", err)
	}
}

// documented reports whether doc describes metric name: Shrike's by
// name, the Kafka client's by the name after shrike_kafka_, the Go
// runtime's and the process's as go_* and process_*.
func documented(doc, name string) bool {
	switch {
	case strings.HasPrefix(name, "go_"):
		return strings.Contains(doc, "`go_*`")
	case strings.HasPrefix(name, "process_"):
		return strings.Contains(doc, "`process_*`")
	case strings.HasPrefix(name, "shrike_kafka_"):
		return regexp.MustCompile("`(?:shrike_kafka_)?" + regexp.QuoteMeta(strings.TrimPrefix(name, "shrike_kafka_")) + "`").MatchString(doc)
	}
	return strings.Contains(doc, "`"+name+"`") || strings.Contains(doc, "`"+name+"{")
}

// metricFamilies reads the families of a text exposition: name → type.
func metricFamilies(text string) map[string]string {
	out := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (\S+) (\S+)$`).FindAllStringSubmatch(text, -1) {
		out[m[1]] = m[2]
	}
	return out
}

// isHistogramSeries reports whether name is a series of a histogram or
// summary family: its _bucket, _sum or _count.
func isHistogramSeries(families map[string]string, name string) bool {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if typ := families[base]; typ == "histogram" || (typ == "summary" && suffix != "_bucket") {
				return true
			}
		}
	}
	return false
}

// grepLines are the lines of text that hold s.
func grepLines(text, s string) string {
	var out []string
	for line := range strings.SplitSeq(text, "\n") {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// dashboardQuery is one PromQL query of the dashboard, and where.
type dashboardQuery struct {
	expr, where string
}

// dashboardQueries reads the PromQL queries of a Grafana dashboard: the
// panels' targets (rows' nested panels too) and the query variables.
func dashboardQueries(t *testing.T, file string) []dashboardQuery {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	}
	type panel struct {
		Title   string   `json:"title"`
		Targets []target `json:"targets"`
		Panels  []panel  `json:"panels"`
	}
	var d struct {
		Title      string  `json:"title"`
		UID        string  `json:"uid"`
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if d.Title == "" || d.UID == "" {
		t.Errorf("%s: the dashboard needs a title and a uid (provisioning and links find it by uid)", file)
	}
	var out []dashboardQuery
	hasDatasource := false
	for _, v := range d.Templating.List {
		switch v.Type {
		case "datasource":
			hasDatasource = v.Name == "datasource" && strings.Contains(string(v.Query), "prometheus")
		case "query":
			var q struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &q); err != nil {
				t.Fatalf("%s: variable %s: %v", file, v.Name, err)
			}
			out = append(out, dashboardQuery{q.Query, "variable " + v.Name})
		}
	}
	if !hasDatasource {
		t.Errorf("%s: no Prometheus datasource variable named datasource", file)
	}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("%s: panel %q, target %s has no expression", file, p.Title, tg.RefID)
				}
				out = append(out, dashboardQuery{tg.Expr, fmt.Sprintf("panel %q", p.Title)})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// alertRule is one alerting rule of a Prometheus rule file.
type alertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// loadAlertRules reads a Prometheus rule file of alerting rules, strictly
// (an unknown field is an error), and checks what an operator relies on:
// each rule has an expression, a for: duration, a severity, a summary and
// a description, and a name of its own.
func loadAlertRules(t *testing.T, file string) []alertRule {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rf struct {
		Groups []struct {
			Name  string      `yaml:"name"`
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var out []alertRule
	groups, names := map[string]bool{}, map[string]bool{}
	for _, g := range rf.Groups {
		if g.Name == "" || groups[g.Name] {
			t.Errorf("%s: group %q: a group needs a name of its own", file, g.Name)
		}
		groups[g.Name] = true
		for _, r := range g.Rules {
			at := fmt.Sprintf("%s: group %s, alert %q", file, g.Name, r.Alert)
			if r.Alert == "" || names[r.Alert] {
				t.Errorf("%s: an alert needs a name of its own", at)
			}
			names[r.Alert] = true
			if strings.TrimSpace(r.Expr) == "" {
				t.Errorf("%s: no expr", at)
			}
			if d, err := time.ParseDuration(r.For); err != nil || d <= 0 {
				t.Errorf("%s: for: %q is not a duration over zero", at, r.For)
			}
			if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" && sev != "info" {
				t.Errorf("%s: severity %q is not critical, warning or info", at, sev)
			}
			for _, a := range []string{"summary", "description"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s: no %s annotation", at, a)
				}
			}
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no alerting rule", file)
	}
	return out
}
