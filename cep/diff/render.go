package diff

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/internal/alertdiff"
	"github.com/shrike-cep/shrike/matcher"
)

// jsonOptions are the REST gateway's: the proto field names and every
// field, zero or not, so that `shrike diff --json` and POST
// /v1/rulesets:diff write the same object.
var jsonOptions = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

// Response is the result as the API's DiffRulesetsResponse, the JSON of
// `shrike diff --json`. Example alerts are converted through their alert
// JSON, as `shrike run` prints them.
func (r *Result) Response() (*shrikev1.DiffRulesetsResponse, error) {
	out := &shrikev1.DiffRulesetsResponse{
		Differ: r.Differs,
		Lines:  int64(r.Summary.Lines),
		Events: int64(r.Summary.Events),
		Rules:  make([]*shrikev1.RuleDiff, 0, len(r.Rules)),
	}
	for i := range r.Rules {
		rule := &r.Rules[i]
		rd := &shrikev1.RuleDiff{
			Ruleset: rule.Ruleset, Rule: rule.Rule,
			Both: int64(rule.Both), OnlyOld: int64(rule.OnlyOld), OnlyNew: int64(rule.OnlyNew),
			InOld: rule.InOld, InNew: rule.InNew,
		}
		var err error
		if rd.BothExamples, err = alertsProto(rule.BothExamples); err != nil {
			return nil, err
		}
		if rd.OnlyOldExamples, err = alertsProto(rule.OnlyOldExamples); err != nil {
			return nil, err
		}
		if rd.OnlyNewExamples, err = alertsProto(rule.OnlyNewExamples); err != nil {
			return nil, err
		}
		out.Rules = append(out.Rules, rd)
	}
	return out, nil
}

func alertsProto(alerts []*matcher.Alert) ([]*shrikev1.Alert, error) {
	out := make([]*shrikev1.Alert, len(alerts))
	for i, a := range alerts {
		out[i] = &shrikev1.Alert{}
		if err := protojson.Unmarshal(a.AppendJSON(nil), out[i]); err != nil {
			return nil, fmt.Errorf("diff: alert %s: %w", a.ID, err)
		}
	}
	return out, nil
}

// WriteJSON writes the result as one line of JSON: the API's
// DiffRulesetsResponse with every field (counts, being int64, are
// strings).
func (r *Result) WriteJSON(w io.Writer) error {
	resp, err := r.Response()
	if err != nil {
		return err
	}
	return WriteResponseJSON(w, resp)
}

// WriteResponseJSON writes a DiffRulesetsResponse as `shrike diff --json`
// does: one line, compacted, since protojson varies its whitespace.
func WriteResponseJSON(w io.Writer, resp *shrikev1.DiffRulesetsResponse) error {
	b, err := jsonOptions.Marshal(resp)
	if err != nil {
		return fmt.Errorf("diff: encode json: %w", err)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return fmt.Errorf("diff: encode json: %w", err)
	}
	buf.WriteByte('\n')
	_, err = w.Write(buf.Bytes())
	return err
}

// ruleView is what the text shows of a rule, from a Result or from a
// DiffRulesetsResponse.
type ruleView struct {
	ruleset, rule          string
	inOld, inNew           bool
	both, onlyOld, onlyNew int64
	onlyOldEx, onlyNewEx   []exampleView
}

// exampleView is one example alert's line. matched lists the matched
// records by step: their positions when known (a local replay), else
// their events (an API response carries no positions).
type exampleView struct {
	id, key, start, matched string
	timeout                 bool
}

// WriteText writes the result for people: a line of totals, an aligned
// table of the rules with their counts, then for each rule that differs
// the example alerts of only one version, with their matched positions.
func (r *Result) WriteText(w io.Writer) error {
	views := make([]ruleView, len(r.Rules))
	for i := range r.Rules {
		views[i] = ruleViewOf(&r.Rules[i])
	}
	return writeText(w, int64(r.Summary.Lines), int64(r.Summary.Events), views)
}

// WriteResponseText writes a DiffRulesetsResponse as WriteText writes a
// Result (`shrike rules diff`): the examples show the matched events,
// since the response has no positions.
func WriteResponseText(w io.Writer, resp *shrikev1.DiffRulesetsResponse) error {
	views := make([]ruleView, len(resp.GetRules()))
	for i, rd := range resp.GetRules() {
		views[i] = ruleView{
			ruleset: rd.GetRuleset(), rule: rd.GetRule(), inOld: rd.GetInOld(), inNew: rd.GetInNew(),
			both: rd.GetBoth(), onlyOld: rd.GetOnlyOld(), onlyNew: rd.GetOnlyNew(),
			onlyOldEx: protoExamples(rd.GetOnlyOldExamples()),
			onlyNewEx: protoExamples(rd.GetOnlyNewExamples()),
		}
	}
	return writeText(w, resp.GetLines(), resp.GetEvents(), views)
}

func ruleViewOf(r *alertdiff.Rule) ruleView {
	return ruleView{
		ruleset: r.Ruleset, rule: r.Rule, inOld: r.InOld, inNew: r.InNew,
		both: int64(r.Both), onlyOld: int64(r.OnlyOld), onlyNew: int64(r.OnlyNew),
		onlyOldEx: alertExamples(r.OnlyOldExamples),
		onlyNewEx: alertExamples(r.OnlyNewExamples),
	}
}

func alertExamples(alerts []*matcher.Alert) []exampleView {
	out := make([]exampleView, len(alerts))
	for i, a := range alerts {
		var steps []string
		for _, s := range a.Steps {
			pos := make([]string, len(s.Records))
			for j, rec := range s.Records {
				pos[j] = rec.Pos.Source + ":" + strconv.FormatInt(rec.Pos.Offset, 10)
			}
			steps = append(steps, s.Step+"@"+strings.Join(pos, ","))
		}
		out[i] = exampleView{
			id: a.ID, key: a.Key, start: a.Start.UTC().Format(time.RFC3339Nano),
			matched: strings.Join(steps, " "), timeout: a.Timeout,
		}
	}
	return out
}

// maxTextEvents is how much of an example's matched events the text of
// an API response shows.
const maxTextEvents = 120

func protoExamples(alerts []*shrikev1.Alert) []exampleView {
	out := make([]exampleView, len(alerts))
	for i, a := range alerts {
		// The events are a map: steps in name order, for stable output.
		names := make([]string, 0, len(a.GetEvents()))
		for name := range a.GetEvents() {
			names = append(names, name)
		}
		slices.Sort(names)
		var steps []string
		for _, name := range names {
			var evs []string
			for _, v := range a.GetEvents()[name].GetValues() {
				b, err := protojson.Marshal(v)
				if err != nil {
					b = []byte("?")
				}
				var c bytes.Buffer
				if json.Compact(&c, b) == nil {
					b = c.Bytes()
				}
				evs = append(evs, string(b))
			}
			steps = append(steps, name+"@"+strings.Join(evs, ","))
		}
		matched := strings.Join(steps, " ")
		if len(matched) > maxTextEvents {
			n := maxTextEvents
			for n > 0 && !utf8.RuneStart(matched[n]) {
				n--
			}
			matched = matched[:n] + "…"
		}
		start := "-"
		if a.GetStart() != nil {
			start = a.GetStart().AsTime().UTC().Format(time.RFC3339Nano)
		}
		out[i] = exampleView{id: a.GetId(), key: a.GetKey(), start: start, matched: matched, timeout: a.GetTimeout()}
	}
	return out
}

// printf writes to a buffered writer, which keeps the first error for its
// Flush to return: the writes need no check of their own.
func printf(w io.Writer, format string, args ...any) {
	_, _ = fmt.Fprintf(w, format, args...)
}

func writeText(w io.Writer, lines, events int64, rules []ruleView) error {
	bw := bufio.NewWriter(w)
	differ := 0
	for _, r := range rules {
		if r.onlyOld > 0 || r.onlyNew > 0 {
			differ++
		}
	}
	verdict := "no rule differs"
	if differ > 0 {
		verdict = fmt.Sprintf("%d of %d rules differ", differ, len(rules))
	}
	printf(bw, "%d lines, %d events: %s\n\n", lines, events, verdict)
	// The notes column has no header: the table is aligned in a buffer
	// and the header's trailing blanks cut.
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	printf(tw, "RULE\tBOTH\tONLY-OLD\tONLY-NEW\t\n")
	for _, r := range rules {
		var notes []string
		switch {
		case r.inOld && !r.inNew:
			notes = append(notes, "rule only in old")
		case r.inNew && !r.inOld:
			notes = append(notes, "rule only in new")
		}
		if r.onlyOld > 0 || r.onlyNew > 0 {
			notes = append(notes, "differs")
		}
		printf(tw, "%s/%s\t%d\t%d\t%d\t%s\n", r.ruleset, r.rule, r.both, r.onlyOld, r.onlyNew, strings.Join(notes, ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for line := range strings.Lines(table.String()) {
		printf(bw, "%s\n", strings.TrimRight(line, " \n"))
	}
	for _, r := range rules {
		writeExamples(bw, r, "old", r.onlyOld, r.onlyOldEx)
		writeExamples(bw, r, "new", r.onlyNew, r.onlyNewEx)
	}
	return bw.Flush()
}

// writeExamples lists a rule's example alerts of one version only.
func writeExamples(bw *bufio.Writer, r ruleView, side string, count int64, ex []exampleView) {
	if count == 0 {
		return
	}
	alerts := "alerts"
	if count == 1 {
		alerts = "alert"
	}
	printf(bw, "\n%s/%s: %d %s only in %s", r.ruleset, r.rule, count, alerts, side)
	if len(ex) == 0 {
		printf(bw, "\n")
		return
	}
	if int64(len(ex)) < count {
		printf(bw, ", the first %d:\n", len(ex))
	} else {
		printf(bw, ":\n")
	}
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
	printf(tw, "  ID\tKEY\tSTART\tMATCHED\n")
	for _, e := range ex {
		matched := e.matched
		if e.timeout {
			matched = "(timeout) " + matched
		}
		printf(tw, "  %s\t%s\t%s\t%s\n", e.id, e.key, e.start, matched)
	}
	_ = tw.Flush() // bw keeps the error for the caller's Flush
}
