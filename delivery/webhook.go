package delivery

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"
)

// Format is how a webhook's request body is made from an alert.
type Format string

// The formats of Webhook.Format.
const (
	// FormatJSON posts the alert JSON exactly as the alerts topic holds it.
	FormatJSON Format = "json"
	// FormatSlack posts a Slack incoming-webhook message: a text and
	// blocks summarizing severity, rule, key and summary.
	FormatSlack Format = "slack"
	// FormatPagerDuty posts a PagerDuty Events API v2 trigger event whose
	// dedup_key is the alert id and whose routing_key is the secret.
	FormatPagerDuty Format = "pagerduty"
)

// Formats lists the formats in the order the documentation gives them.
func Formats() []Format { return []Format{FormatJSON, FormatSlack, FormatPagerDuty} }

// Known reports whether f is one of Formats.
func (f Format) Known() bool {
	switch f {
	case FormatJSON, FormatSlack, FormatPagerDuty:
		return true
	}
	return false
}

// Defaults of a Webhook's fields, filled in by New where they are zero.
const (
	DefaultFormat      = FormatJSON
	DefaultTimeout     = 5 * time.Second
	DefaultMaxAttempts = 8
	// DefaultBackoff is the wait before the second attempt; each later
	// wait doubles, up to DefaultMaxBackoff, and is jittered.
	DefaultBackoff    = time.Second
	DefaultMaxBackoff = time.Minute
	// DefaultMaxInFlight bounds the alerts of one webhook being delivered
	// at once (in their attempts or waiting between them).
	DefaultMaxInFlight = 16
)

// Headers of every delivery.
const (
	// HeaderSignature is "sha256=" and the hex HMAC-SHA256 of the body,
	// keyed with the webhook's secret (Sign).
	HeaderSignature = "X-Shrike-Signature"
	// HeaderTimestampedSignature is "sha256=" and the hex HMAC-SHA256 of
	// the timestamp, a '.', and the body (SignTimestamped): what a
	// receiver checks to refuse a request replayed later.
	HeaderTimestampedSignature = "X-Shrike-Signature-Timestamped"
	// HeaderTimestamp is the Unix time in seconds at which the attempt
	// was signed; every attempt is signed anew.
	HeaderTimestamp = "X-Shrike-Timestamp"
	// HeaderAlertID is the alert's id, the same in every attempt and
	// every duplicate: receivers drop duplicates by it.
	HeaderAlertID = "X-Shrike-Alert-Id"
	// HeaderWebhook is the webhook's name.
	HeaderWebhook = "X-Shrike-Webhook"
	// HeaderAttempt is the attempt's number, from 1.
	HeaderAttempt = "X-Shrike-Attempt"
)

// Webhook is one configured receiver of alerts.
type Webhook struct {
	// Name identifies the webhook in metrics, logs, its consumer group
	// and the undelivered topic's records. Required.
	Name string
	// URL is where alerts are POSTed: http or https. Required; it is
	// never logged (a Slack URL is itself a secret), only its host.
	URL string
	// Secret keys the HMAC-SHA256 signature; for FormatPagerDuty it is
	// also the routing key. Empty sends no signature (FormatSlack only).
	Secret []byte
	// Filter is a CEL expression over `alert` (the alert JSON as a map);
	// the webhook gets only the alerts for which it is true. Empty: all.
	Filter string
	// Format: default DefaultFormat.
	Format Format
	// Timeout bounds one attempt, from connecting to reading the
	// response. Default DefaultTimeout.
	Timeout time.Duration
	// MaxAttempts is how many attempts an alert gets before it goes to
	// the undelivered topic. Default DefaultMaxAttempts.
	MaxAttempts int
	// Backoff and MaxBackoff shape the waits between attempts: Backoff
	// before the second, doubling each time up to MaxBackoff, each drawn
	// at random between half and all of it. A Retry-After the receiver
	// sends replaces the wait, up to MaxRetryAfter. Defaults
	// DefaultBackoff and DefaultMaxBackoff.
	Backoff, MaxBackoff time.Duration
	// MaxInFlight: default DefaultMaxInFlight.
	MaxInFlight int
}

// MaxRetryAfter bounds the wait a receiver's Retry-After header asks for.
const MaxRetryAfter = 5 * time.Minute

func (w *Webhook) fill() {
	if w.Format == "" {
		w.Format = DefaultFormat
	}
	if w.Timeout <= 0 {
		w.Timeout = DefaultTimeout
	}
	if w.MaxAttempts <= 0 {
		w.MaxAttempts = DefaultMaxAttempts
	}
	if w.Backoff <= 0 {
		w.Backoff = DefaultBackoff
	}
	if w.MaxBackoff <= 0 {
		w.MaxBackoff = DefaultMaxBackoff
	}
	w.MaxBackoff = max(w.MaxBackoff, w.Backoff)
	if w.MaxInFlight <= 0 {
		w.MaxInFlight = DefaultMaxInFlight
	}
}

// check returns what is wrong with a filled-in webhook.
func (w *Webhook) check() error {
	var errs []error
	if strings.TrimSpace(w.Name) == "" {
		errs = append(errs, errors.New("name: must not be empty"))
	}
	if err := CheckURL(w.URL); err != nil {
		errs = append(errs, fmt.Errorf("url: %w", err))
	}
	if !w.Format.Known() {
		errs = append(errs, fmt.Errorf("format: %q is not one of %s", w.Format, formatList()))
	}
	if len(w.Secret) == 0 && w.Format != FormatSlack {
		errs = append(errs, fmt.Errorf("secret: required for format %s", w.Format))
	}
	return errors.Join(errs...)
}

func formatList() string {
	var names []string
	for _, f := range Formats() {
		names = append(names, string(f))
	}
	return strings.Join(names, ", ")
}

// CheckURL accepts an absolute http or https URL with a host and no
// fragment. Its errors never repeat the URL, which may hold a secret.
func CheckURL(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("must not be empty")
	}
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("not a URL: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("scheme %q is not http or https", u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		return errors.New("has no host")
	case u.Fragment != "":
		return errors.New("has a fragment (#…), which is never sent")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q is not a port", p)
		}
	}
	return nil
}

// Sign returns the value of X-Shrike-Signature for a body: "sha256=" and
// the lowercase hex HMAC-SHA256 of the body, keyed with secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// SignTimestamped returns the value of X-Shrike-Signature-Timestamped for
// a body sent at timestamp (Unix seconds): "sha256=" and the lowercase hex
// HMAC-SHA256, keyed with secret, of the decimal timestamp, a '.', and the
// body. The timestamp is signed so that a receiver can refuse a replay of
// an old request (README.md#verifying-a-delivery).
func SignTimestamped(secret []byte, timestamp int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	var ts [20]byte
	m.Write(strconv.AppendInt(ts[:0], timestamp, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a delivery's X-Shrike-Signature against the body it
// carried, as a receiver in Go does.
func Verify(secret []byte, signature string, body []byte) error {
	if !hmac.Equal([]byte(signature), []byte(Sign(secret, body))) {
		return errors.New("signature mismatch")
	}
	return nil
}

// VerifyTimestamped checks a delivery's X-Shrike-Signature-Timestamped and
// X-Shrike-Timestamp against the body it carried: the signature must be
// SignTimestamped's, and the timestamp within window of now (either
// side). It is the reference for the documentation's snippet.
func VerifyTimestamped(secret []byte, signature, timestamp string, body []byte, now time.Time, window time.Duration) error {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return errors.New("bad timestamp")
	}
	if d := now.Sub(time.Unix(ts, 0)).Abs(); d > window {
		return fmt.Errorf("timestamp %s away from now, more than %s", d.Truncate(time.Second), window)
	}
	if !hmac.Equal([]byte(signature), []byte(SignTimestamped(secret, ts, body))) {
		return errors.New("signature mismatch")
	}
	return nil
}

// DefaultFilterCostLimit bounds one evaluation of a webhook's filter.
const DefaultFilterCostLimit = 100_000

// Filter is a compiled webhook filter.
type Filter struct {
	prg cel.Program
}

// filterEnv is the CEL environment of webhook filters, the same as the
// API's alert filters: `alert` is the alert JSON as a map, with the
// standard library, the strings and lists extensions, and numbers
// comparable across int and double (JSON numbers are doubles).
var filterEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("alert", cel.MapType(cel.StringType, cel.DynType)),
		ext.Strings(),
		ext.Lists(),
		cel.CrossTypeNumericComparisons(true),
	)
})

// FilterError is a filter that does not compile: each problem with its
// line and column in the expression (from 1) and a caret snippet.
type FilterError struct {
	Problems []FilterProblem
}

// FilterProblem is one error in a filter expression.
type FilterProblem struct {
	Line, Col int // from 1, in the expression
	Msg       string
	// Snippet is the expression's line and a caret under Col.
	Snippet string
}

// Error lists the problems, "line:col: message" and the snippet each.
func (e *FilterError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%d:%d: %s", p.Line, p.Col, p.Msg)
		if p.Snippet != "" {
			b.WriteByte('\n')
			b.WriteString(p.Snippet)
		}
	}
	return b.String()
}

// CompileFilter compiles a webhook filter; an empty one passes every
// alert. Its errors are *FilterError.
func CompileFilter(expr string) (*Filter, error) {
	if strings.TrimSpace(expr) == "" {
		return &Filter{}, nil
	}
	env, err := filterEnv()
	if err != nil {
		return nil, fmt.Errorf("filter environment: %w", err)
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		fe := &FilterError{}
		for _, e := range iss.Errors() {
			line, col := 1, 1
			if loc := e.Location; loc != nil && loc.Line() > 0 {
				line, col = loc.Line(), loc.Column()+1
			}
			fe.Problems = append(fe.Problems, FilterProblem{Line: line, Col: col, Msg: e.Message, Snippet: caret(expr, line, col)})
		}
		return nil, fe
	}
	if k := ast.OutputType().Kind(); k != types.BoolKind && k != types.DynKind {
		return nil, &FilterError{Problems: []FilterProblem{{
			Line: 1, Col: 1, Msg: fmt.Sprintf("a filter must be a bool expression, not %s", ast.OutputType()),
		}}}
	}
	prg, err := env.Program(ast, cel.CostLimit(DefaultFilterCostLimit), cel.InterruptCheckFrequency(100))
	if err != nil {
		return nil, fmt.Errorf("filter: %w", err)
	}
	return &Filter{prg: prg}, nil
}

// caret returns line of src and a caret under col, each behind " | ".
func caret(src string, line, col int) string {
	lines := strings.Split(src, "\n")
	if line < 1 || line > len(lines) {
		return ""
	}
	l := lines[line-1]
	pad := make([]byte, 0, col)
	for i := 0; i < col-1 && i < len(l); i++ {
		if l[i] == '\t' {
			pad = append(pad, '\t')
		} else {
			pad = append(pad, ' ')
		}
	}
	return " | " + l + "\n | " + string(pad) + "^"
}

// Match reports whether the alert (decoded from its JSON) passes. An
// evaluation error (a missing field, the cost limit) is returned: the
// alert does not pass.
func (f *Filter) Match(alert map[string]any) (bool, error) {
	if f == nil || f.prg == nil {
		return true, nil
	}
	out, _, err := f.prg.Eval(map[string]any{"alert": alert})
	if err != nil {
		return false, err
	}
	return out == types.True, nil
}

// decodeAlert decodes an alert record's value for filters and formats.
func decodeAlert(raw []byte) (map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("not an alert: %w", err)
	}
	if m == nil {
		return nil, errors.New("not an alert: null")
	}
	return m, nil
}
