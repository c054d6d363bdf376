package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The API tests (api_*_test.go) drive `shrike serve`'s API with real
// clients, each a process of its own: curl for REST (TestAPICurl,
// TestAPIAuth), grpcurl for gRPC through server reflection
// (TestAPIGrpcurl), and the shrike binary's client commands (TestAPICLI).
// TestHotReloadUnderLoad replaces a ruleset through the API while events
// flow, TestTwoInstances shares one Kafka and one Redis between two serves,
// TestAPINonLoopbackWithoutTokens checks that serve refuses to listen
// beyond loopback without tokens. Rulesets come only from the API: serve
// runs without --rules.

// requireAPIClients skips the test when curl or grpcurl is missing, unless
// CI is set: .ci/run installs both, so there a missing one is a failure.
func requireAPIClients(t *testing.T) {
	t.Helper()
	var missing []string
	for _, tool := range []string{"curl", "grpcurl"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("%s not installed (apt-get install -y curl; go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4)", strings.Join(missing, ", "))
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatalf("%s, and CI is set: CI must run this test", msg)
	}
	t.Skip(msg + "; CI=true makes this a failure")
}

// apiServe is a `shrike serve` process with its API: REST on the HTTP
// listener, gRPC on its own.
type apiServe struct {
	*serve
	grpc  string // host:port of the gRPC API
	redis string // the Redis it uses, embedded or not
}

// apiServeOptions shape one `shrike serve` process of the API tests.
type apiServeOptions struct {
	Name   string // in messages; default "shrike serve"
	Kafka  string // brokers; empty: embedded on a free port
	Redis  string // address; empty: embedded on a free port
	Tokens string // YAML of api.tokens (a flow sequence); empty: none
	Extra  string // more YAML appended to the config file
}

// startAPIServe starts `shrike serve` without rulesets, with every
// listener on a free loopback port, and waits until it is ready. The tests
// upload their rulesets through the API.
func startAPIServe(t *testing.T, o apiServeOptions) *apiServe {
	t.Helper()
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	grpcAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "http:\n  listen: %q\ngrpc:\n  listen: %q\n", httpAddr, grpcAddr)
	fmt.Fprintf(&cfg, "state:\n  checkpoint_interval: 200ms\n")
	kafka, redis := o.Kafka, o.Redis
	fmt.Fprintf(&cfg, "kafka:\n")
	if kafka != "" {
		fmt.Fprintf(&cfg, "  brokers: [%s]\n", quoteList(kafka))
	} else {
		port := freePort(t)
		kafka = fmt.Sprintf("127.0.0.1:%d", port)
		fmt.Fprintf(&cfg, "  embedded:\n    port: %d\n", port)
	}
	fmt.Fprintf(&cfg, "redis:\n")
	if redis != "" {
		fmt.Fprintf(&cfg, "  addrs: [%s]\n", quoteList(redis))
	} else {
		port := freePort(t)
		redis = fmt.Sprintf("127.0.0.1:%d", port)
		fmt.Fprintf(&cfg, "  embedded:\n    port: %d\n", port)
	}
	if o.Tokens != "" {
		fmt.Fprintf(&cfg, "api:\n  tokens: %s\n", o.Tokens)
	}
	cfg.WriteString(o.Extra)
	s := startServeConfig(t, o.Name, cfg.String(), httpAddr)
	s.kafka = kafka
	a := &apiServe{serve: s, grpc: grpcAddr, redis: redis}
	s.waitReady(t, 60*time.Second)
	return a
}

// url is the REST URL of path on the server.
func (a *apiServe) url(path string) string { return "http://" + a.http + path }

// curlResult is what curl got: the HTTP status and the body.
type curlResult struct {
	code int
	body string
}

// curl runs curl with args (method, headers, data, URL) and returns the
// response's status and body. A transport failure fails the test.
func curl(t *testing.T, args ...string) curlResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	argv := append([]string{"-sS", "--max-time", "20", "-w", "\n%{http_code}"}, args...)
	cmd := exec.CommandContext(ctx, "curl", argv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	s := string(out)
	i := strings.LastIndexByte(s, '\n')
	code, err := strconv.Atoi(s[i+1:])
	if err != nil {
		t.Fatalf("curl %s: no status code in %q", strings.Join(args, " "), s)
	}
	return curlResult{code: code, body: s[:i]}
}

// bearer is curl's header argument for a token.
func bearer(token string) []string {
	if token == "" {
		return nil
	}
	return []string{"-H", "Authorization: Bearer " + token}
}

// putRuleset uploads a ruleset with curl (PUT /v1/rulesets/{name}).
func (a *apiServe) putRuleset(t *testing.T, token, name, source string) curlResult {
	t.Helper()
	body, err := json.Marshal(map[string]string{"source": source})
	if err != nil {
		t.Fatal(err)
	}
	args := append(bearer(token), "-X", "PUT", "-H", "Content-Type: application/json", "--data-binary", string(body), a.url("/v1/rulesets/"+name))
	return curl(t, args...)
}

// restEvent is one event of POST /v1/events:publish.
type restEvent struct {
	Key   string         `json:"key"`
	Value map[string]any `json:"value"`
}

// publish produces events with curl (POST /v1/events:publish).
func (a *apiServe) publish(t *testing.T, token, topic string, events ...restEvent) curlResult {
	t.Helper()
	body, err := json.Marshal(map[string]any{"topic": topic, "events": events})
	if err != nil {
		t.Fatal(err)
	}
	args := append(bearer(token), "-X", "POST", "-H", "Content-Type: application/json", "--data-binary", string(body), a.url("/v1/events:publish"))
	return curl(t, args...)
}

// rulesetVersion returns the rule versions of the current version of a
// ruleset, by rule id, and the ruleset's version number, read with curl.
func (a *apiServe) rulesetVersion(t *testing.T, token, name string) (int64, map[string]string) {
	t.Helper()
	r := curl(t, append(bearer(token), a.url("/v1/rulesets/"+name))...)
	if r.code != http.StatusOK {
		t.Fatalf("GET /v1/rulesets/%s = %d %s", name, r.code, r.body)
	}
	var rs struct {
		Version json.Number `json:"version"`
		Rules   []struct {
			ID      string `json:"id"`
			Version string `json:"version"`
		} `json:"rules"`
	}
	if err := json.Unmarshal([]byte(r.body), &rs); err != nil {
		t.Fatalf("GET /v1/rulesets/%s: %v\n%s", name, err, r.body)
	}
	v, err := rs.Version.Int64()
	if err != nil {
		t.Fatalf("GET /v1/rulesets/%s: version %q: %v", name, rs.Version, err)
	}
	out := map[string]string{}
	for _, r := range rs.Rules {
		out[r.ID] = r.Version
	}
	return v, out
}

// jsonStream is a client process printing a stream of JSON values (curl -N
// on the REST stream: one {"result": …} per line; grpcurl: one indented
// message after another), decoded as they come.
type jsonStream struct {
	name   string
	cmd    *exec.Cmd
	values chan json.RawMessage
	stderr *syncBuffer
	done   chan struct{}
	err    error // the decoder's, once done is closed
}

// startJSONStream runs argv, with env added to the environment, and
// decodes its stdout. At cleanup the process is killed.
func startJSONStream(t *testing.T, name string, env []string, argv ...string) *jsonStream {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	s := &jsonStream{name: name, cmd: cmd, values: make(chan json.RawMessage, 100000), stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = s.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		defer close(s.done)
		defer close(s.values)
		dec := json.NewDecoder(bufio.NewReader(stdout))
		for {
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				if err != io.EOF {
					s.err = err
				}
				return
			}
			s.values <- v
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-s.done
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("---- %s stderr ----\n%s", name, s.stderr.String())
		}
	})
	return s
}

// next returns the next value, or false when none came within timeout or
// the stream ended.
func (s *jsonStream) next(timeout time.Duration) (json.RawMessage, bool) {
	select {
	case v, ok := <-s.values:
		return v, ok
	case <-time.After(timeout):
		return nil, false
	}
}

// syncBuffer is a bytes.Buffer for a writer and readers in other
// goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// streamedAlert is the part of an alert the API tests look at.
type streamedAlert struct {
	ID          string `json:"id"`
	Ruleset     string `json:"ruleset"`
	Rule        string `json:"rule"`
	RuleVersion string `json:"rule_version"`
	Severity    string `json:"severity"`
	Key         string `json:"key"`
	Summary     string `json:"summary"`
	Position    string `json:"position"`
}

// restAlert decodes one line of the REST stream, {"result": ALERT}; an
// {"error": …} line fails the test.
func restAlert(t *testing.T, v json.RawMessage) (streamedAlert, json.RawMessage) {
	t.Helper()
	var line struct {
		Result json.RawMessage `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(v, &line); err != nil || line.Result == nil {
		t.Fatalf("REST stream line %s: want {\"result\": alert} (%v)", v, err)
	}
	var a streamedAlert
	if err := json.Unmarshal(line.Result, &a); err != nil {
		t.Fatalf("REST stream alert %s: %v", line.Result, err)
	}
	return a, line.Result
}
