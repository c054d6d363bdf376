package check

import (
	"encoding/json"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

const (
	alertRulesFile = "../prometheus/shrike-alerts.yml"
	dashboardFile  = "../grafana/shrike-dashboard.json"
)

// metricNameRE is the tokenizer of cmd/shrike's
// TestServeMetricsCoverDashboardAndAlerts, which finds the metric names
// of a query without a PromQL parser: these tests check that it finds
// exactly the names the parser does.
var metricNameRE = regexp.MustCompile(`\b(?:shrike|go|process)_[a-zA-Z0-9_]*[a-zA-Z0-9]`)

var promql = parser.NewParser(parser.Options{})

// TestAlertRules loads the alerting rules as Prometheus does, and each
// rule's expression gives the names the tokenizer finds.
func TestAlertRules(t *testing.T) {
	groups, errs := rulefmt.ParseFile(alertRulesFile, false, model.UTF8Validation, promql, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Error(err)
	}
	if groups == nil {
		t.Fatalf("%s: not loaded", alertRulesFile)
	}
	n := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("%s: group %s: recording rule %q: the file holds alerting rules only", alertRulesFile, g.Name, r.Record)
				continue
			}
			n++
			expr, err := promql.ParseExpr(r.Expr)
			if err != nil {
				t.Errorf("alert %s: %v", r.Alert, err)
				continue
			}
			checkTokenizer(t, "alert "+r.Alert, r.Expr, expr)
		}
	}
	if n == 0 {
		t.Errorf("%s: no alerting rule", alertRulesFile)
	}
}

// grafanaVariables are the dashboard's variables and Grafana's own, with
// values that make its queries PromQL.
var grafanaVariables = strings.NewReplacer(
	"$__rate_interval", "5m",
	"$__interval", "1m",
	"$__range", "1h",
	"$instance", ".*",
	"${instance}", ".*",
)

// TestDashboardQueries parses every query of the dashboard's panels as
// PromQL, with Grafana's variables filled in, and the query variables'
// label_values() selectors; each gives the names the tokenizer finds.
func TestDashboardQueries(t *testing.T) {
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []panel `json:"panels"`
	}
	var d struct {
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	n := 0
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				n++
				q := grafanaVariables.Replace(tg.Expr)
				if strings.Contains(q, "$") {
					t.Errorf("panel %q: a variable the dashboard does not define in %s", p.Title, tg.Expr)
					continue
				}
				expr, err := promql.ParseExpr(q)
				if err != nil {
					t.Errorf("panel %q: %s: %v", p.Title, tg.Expr, err)
					continue
				}
				checkTokenizer(t, "panel "+p.Title, tg.Expr, expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	if n == 0 {
		t.Fatalf("%s: no query", dashboardFile)
	}
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(map[string]any)["query"].(string)
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("variable %s: %q is not label_values(SELECTOR, LABEL)", v.Name, q)
			continue
		}
		if _, err := promql.ParseMetricSelector(m[1]); err != nil {
			t.Errorf("variable %s: %s: %v", v.Name, m[1], err)
		}
	}
}

// checkTokenizer checks that the tokenizer finds in source the metric
// names of expr's selectors, no more, no less.
func checkTokenizer(t *testing.T, where, source string, expr parser.Expr) {
	t.Helper()
	var parsed []string
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok && metricNameRE.MatchString(vs.Name) {
			parsed = append(parsed, vs.Name)
		}
		return nil
	})
	tokens := metricNameRE.FindAllString(source, -1)
	slices.Sort(parsed)
	slices.Sort(tokens)
	parsed, tokens = slices.Compact(parsed), slices.Compact(tokens)
	if !slices.Equal(parsed, tokens) {
		t.Errorf("%s: the parser finds metrics %v, the tokenizer %v", where, parsed, tokens)
	}
}
