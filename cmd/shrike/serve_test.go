package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/shrike-cep/shrike/cep"
	"github.com/shrike-cep/shrike/config"
	"github.com/shrike-cep/shrike/internal/embedded"
	"github.com/shrike-cep/shrike/internal/testkit"
	"github.com/shrike-cep/shrike/rules"
)

// alertSig is what an alert from serve and the same alert from run share:
// ids differ, as they hash Kafka positions in one and file lines in the
// other.
type alertSig struct {
	Rule, Key, Start, End, Summary string
}

func sigOf(t *testing.T, line []byte) alertSig {
	t.Helper()
	var a struct {
		Rule, Key, Start, End, Summary string
	}
	if err := json.Unmarshal(line, &a); err != nil {
		t.Fatalf("alert %s: %v", line, err)
	}
	return alertSig(a)
}

func sortSigs(s []alertSig) []alertSig {
	slices.SortFunc(s, func(a, b alertSig) int {
		return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
	})
	return s
}

// TestServe runs serve in-process on embedded Kafka and Redis: /readyz is
// 503 before the engine runs and 200 once it has its partitions; the
// recorded payments stream produced to Kafka yields the alerts `shrike run`
// finds in the same events; /metrics shows the engine's counters and the
// Go and process collectors; cancelling shuts everything down and leaves
// no goroutine behind.
func TestServe(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	// The recorded stream, then in every partition an event two days later
	// for a new account, which moves the partition's watermark past every
	// window of the recording: serve must then have emitted everything run
	// emits at the end of its input.
	events := readLines(t, "../../rulesets/testdata/payments.jsonl")
	cfg := testServeConfig("../../rulesets")
	var closers [][]byte
	for p := range cfg.Kafka.Embedded.Partitions {
		closers = append(closers, fmt.Appendf(nil, `{"type":"card_auth","account_id":"acct-end-%d","amount":1.00,"currency":"USD","country":"US","ip":"10.0.0.1","device":"ios-1","success":true,"merchant":"m-1","card_id":"card-1","lat":0,"lon":0,"ts":"2026-11-22T10:00:00.000Z"}`, p))
	}
	want := runAlerts(t, "../../rulesets/payments.yaml", append(slices.Clone(events), closers...))
	if len(want) < 10 {
		t.Fatalf("run found %d alerts; the recording should give more", len(want))
	}

	var logs testkit.Buffer
	s, err := startServer(ctx, env{stderr: newOutput(&logs), clock: time.Now}, cfg)
	if err != nil {
		t.Fatalf("start: %v\n%s", err, logs.String())
	}
	rec := httptest.NewRecorder()
	s.http.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.HasPrefix(rec.Body.String(), "not ready: ") {
		t.Errorf("/readyz before the engine runs = %d %q, want 503 with a reason", rec.Code, rec.Body.String())
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- s.run(runCtx) }()

	base := "http://" + s.http.Addr()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if code, body := httpGet(t, client, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q, want 200 ok", code, body)
	}
	waitReady(ctx, t, client, base)

	broker := s.kafka.Addrs()[0]
	produce(ctx, t, broker, "payments", "account_id", events)
	produceToPartitions(ctx, t, broker, "payments", closers)
	var got []alertSig
	for _, r := range consumeAll(ctx, t, broker, cep.DefaultAlertsTopic, len(want)) {
		if a := sigOf(t, r.Value); string(r.Key) == "" {
			t.Errorf("alert %s has no record key", r.Value)
		} else {
			got = append(got, a)
		}
	}
	if diff := cmp.Diff(sortSigs(want), sortSigs(got)); diff != "" {
		t.Errorf("alerts of serve (-run +serve):\n%s", diff)
	}

	admin := "http://" + s.admin.Addr()
	_, metrics := httpGet(t, client, admin+"/metrics")
	for _, re := range []string{
		`(?m)^shrike_engine_events_total\{topic="payments"\} 2003$`,
		`(?m)^shrike_engine_alerts_total\{rule="big-foreign-transfer",ruleset="payments",shadow="false"\} [1-9]`,
		`(?m)^shrike_engine_ready 1$`,
		`(?m)^shrike_kafka_fetch_records_total\{node_id="0",topic="payments"\} 2003$`,
		`(?m)^go_goroutines `,
		`(?m)^process_resident_memory_bytes `,
		`(?m)^go_build_info\{`,
	} {
		if !regexp.MustCompile(re).MatchString(metrics) {
			t.Errorf("/metrics has no line matching %s", re)
		}
	}
	// Every alert the engine made was read: none beyond run's.
	var total int
	for _, m := range regexp.MustCompile(`(?m)^shrike_engine_alerts_total\{[^}]*\} (\d+)$`).FindAllStringSubmatch(metrics, -1) {
		var n int
		if _, err := fmt.Sscan(m[1], &n); err != nil {
			t.Fatalf("shrike_engine_alerts_total value %q: %v", m[1], err)
		}
		total += n
	}
	if total != len(want) {
		t.Errorf("shrike_engine_alerts_total sums to %d, want %d", total, len(want))
	}
	if code, body := httpGet(t, client, admin+"/debug/pprof/cmdline"); code != 200 || body == "" {
		t.Errorf("/debug/pprof/cmdline = %d %q, want 200 and the command line", code, body)
	}

	stop()
	if err := <-done; err != nil {
		t.Errorf("run after cancel = %v, want nil", err)
	}
	for _, msg := range []string{`msg="embedded kafka started"`, `msg="embedded redis started"`, "kcat -b " + broker + " -P -t payments", `msg="shut down cleanly"`} {
		if !strings.Contains(logs.String(), msg) {
			t.Errorf("log does not say %s:\n%s", msg, logs.String())
		}
	}
}

// TestServeCommand runs `shrike serve` as a user would, through the
// command line with a config file and flags, until it is interrupted.
func TestServeCommand(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()
	conf := filepath.Join(dir, "shrike.yaml")
	writeFile(t, conf, `kafka:
  embedded: {port: 0, partitions: 2}
redis:
  embedded: {port: 0}
http: {listen: "127.0.0.1:1"}   # the flag wins
log: {format: json}
`)
	var stderr testkit.Buffer
	runCtx, interrupt := context.WithCancel(ctx)
	defer interrupt()
	code := make(chan int, 1)
	go func() {
		code <- run(runCtx, []string{"serve", "--config", conf, "--rules", "../../rulesets", "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0", "--group", "g1"},
			env{stdout: newOutput(io.Discard), stderr: newOutput(&stderr), clock: time.Now})
	}()
	addrRE := regexp.MustCompile(`"msg":"http listening","addr":"([^"]+)"`)
	var addr string
	for addr == "" {
		if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
			break
		}
		select {
		case c := <-code:
			t.Fatalf("serve exited %d before listening:\n%s", c, stderr.String())
		case <-ctx.Done():
			t.Fatalf("serve did not listen:\n%s", stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	waitReady(ctx, t, client, "http://"+addr)
	interrupt()
	if c := <-code; c != 0 {
		t.Errorf("exit status after interrupt = %d, want 0:\n%s", c, stderr.String())
	}
	for _, s := range []string{`"msg":"engine started","group":"g1"`, `"msg":"shut down cleanly"`} {
		if !strings.Contains(stderr.String(), s) {
			t.Errorf("log does not say %s:\n%s", s, stderr.String())
		}
	}
	// A JSON log is JSON throughout: the quick-start lines are for text.
	for line := range strings.Lines(stderr.String()) {
		if !json.Valid([]byte(line)) {
			t.Errorf("log line is not JSON: %q", line)
		}
	}
}

func TestServeErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "bad.yaml"), "kafka: {brokerz: [x]}\nlog: {level: loud}\n")
	writeFile(t, filepath.Join(dir, "rules", "broken.yaml"), "ruleset: broken\nrules:\n  - id: r\n    when: event.x ==\n")
	writeFile(t, filepath.Join(dir, "notopic", "a.yaml"), "ruleset: a\nstream:\n  key: event.k\nrules:\n  - id: r\n    severity: low\n    when: event.x == 1\n")
	writeFile(t, filepath.Join(dir, "badfilter.yaml"), "alerts:\n  webhooks:\n    - {name: soc, url: 'http://127.0.0.1:9/', secret_file: s, filter: 'alert.sev ==='}\n")
	writeFile(t, filepath.Join(dir, "weak.secret"), "changeme\n")
	writeFile(t, filepath.Join(dir, "weak.yaml"), "kafka: {embedded: {port: 0}}\nredis: {embedded: {port: 0}}\n"+
		"http: {listen: '127.0.0.1:0'}\ngrpc: {listen: '127.0.0.1:0'}\nadmin: {listen: 'off'}\n"+
		"alerts:\n  webhooks:\n    - {name: soc, url: 'http://127.0.0.1:9/', secret_file: weak.secret}\n")
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{name: "argument", args: []string{"serve", "rulesets"}, code: 2, want: `unexpected argument "rulesets"`},
		{
			name: "bad config file", args: []string{"serve", "--config", filepath.Join(dir, "bad.yaml")}, code: 2,
			want: filepath.Join(dir, "bad.yaml") + `:1:9: unknown field "brokerz" in kafka`,
		},
		{name: "missing config file", args: []string{"serve", "--config", filepath.Join(dir, "nope.yaml")}, code: 1, want: "no such file"},
		{name: "bad flag value", args: []string{"serve", "--rules", "x", "--listen", "nope"}, code: 2, want: `--listen: "nope": want host:port`},
		{name: "bad redis list", args: []string{"serve", "--rules", "x", "--redis", "a:1,b"}, code: 2, want: `--redis: address "b": want host:port`},
		{name: "missing rules dir", args: []string{"serve", "--rules", filepath.Join(dir, "none")}, code: 1, want: "no such file or directory"},
		{name: "invalid ruleset", args: []string{"serve", "--rules", filepath.Join(dir, "rules")}, code: 1, want: "broken.yaml:4:"},
		{
			name: "webhook filter", args: []string{"serve", "--config", filepath.Join(dir, "badfilter.yaml")}, code: 2,
			want: filepath.Join(dir, "badfilter.yaml") + `:3:71: alerts.webhooks[0].filter: 1:13 in the expression: Syntax error: token recognition error at: '='`,
		},
		{
			name: "weak webhook secret", args: []string{"serve", "--config", filepath.Join(dir, "weak.yaml")}, code: 2,
			want: `alerts.webhooks: webhook "soc": the key in ` + filepath.Join(dir, "weak.secret") + ` is 8 bytes, at least 16 needed`,
		},
		{name: "ruleset without a topic", args: []string{"serve", "--rules", filepath.Join(dir, "notopic")}, code: 1, want: "a.yaml:2:1: stream: no topic: serve needs the Kafka topic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(t.Context(), tt.args, env{stdout: newOutput(io.Discard), stderr: newOutput(&stderr), clock: time.Now})
			if code != tt.code || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d and %q", code, stderr.String(), tt.code, tt.want)
			}
		})
	}
}

// TestServePortInUse: a taken port fails the start with a hint, and
// releases what was started before it.
func TestServePortInUse(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg := testServeConfig("../../rulesets")
	s, err := startServer(t.Context(), env{stderr: newOutput(io.Discard), clock: time.Now}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	tests := []struct {
		name string
		set  func(c *config.Config)
		want string
	}{
		{name: "kafka", set: func(c *config.Config) { c.Kafka.Embedded.Port = portOf(t, s.kafka.Addrs()[0]) }, want: "then pass --kafka 127.0.0.1:"},
		{name: "redis", set: func(c *config.Config) { c.Redis.Embedded.Port = portOf(t, s.redis.Addr()) }, want: "then pass --redis 127.0.0.1:"},
		{name: "http", set: func(c *config.Config) { c.HTTP.Listen = s.http.Addr() }, want: "address already in use"},
		{name: "admin", set: func(c *config.Config) { c.Admin.Listen = s.admin.Addr() }, want: "address already in use (admin.listen, --admin-listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testServeConfig("../../rulesets")
			tt.set(&c)
			s2, err := startServer(t.Context(), env{stderr: newOutput(io.Discard), clock: time.Now}, c)
			if err == nil {
				s2.close()
				t.Fatal("start succeeded on a port in use")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	var p int
	if _, err := fmt.Sscanf(addr[strings.LastIndexByte(addr, ':')+1:], "%d", &p); err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return p
}

// produceToPartitions writes events[i] to partition i of topic.
func produceToPartitions(ctx context.Context, t *testing.T, broker, topic string, events [][]byte) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(events))
	for i, ev := range events {
		recs[i] = &kgo.Record{Topic: topic, Partition: int32(i), Key: eventKey(ev, "account_id"), Value: ev}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// runAlerts is what `shrike run` says about events.
func runAlerts(t *testing.T, ruleset string, events [][]byte) []alertSig {
	t.Helper()
	src, err := os.ReadFile(ruleset)
	if err != nil {
		t.Fatal(err)
	}
	c, err := rules.Load(ruleset, src, rules.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	_, err = cep.Replay(t.Context(), cep.ReplayOptions{
		Rulesets: []*rules.Compiled{c},
		Inputs:   []cep.Input{{Name: "events.jsonl", R: bytes.NewReader(bytes.Join(events, []byte("\n")))}},
		Alerts:   &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	var sigs []alertSig
	for line := range bytes.Lines(out.Bytes()) {
		sigs = append(sigs, sigOf(t, line))
	}
	return sigs
}

func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }() // read only: a close error loses nothing
	var lines [][]byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, bytes.Clone(sc.Bytes()))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// TestServeEmbeddedPortFlags: --embedded-kafka-port and --embedded-redis-port
// set the embedded servers' ports over the file's, are listed by
// `serve --help`, and a bad value is a usage error naming the flag.
func TestServeEmbeddedPortFlags(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "shrike.yaml")
	writeFile(t, conf, "kafka: {embedded: {port: 1111}}\nredis: {embedded: {port: 2222}}\n")
	cmd := newServeCmd(env{stdout: newOutput(io.Discard), stderr: newOutput(io.Discard), clock: time.Now})
	if err := cmd.ParseFlags([]string{"--embedded-kafka-port", "19092", "--embedded-redis-port", "0"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := serveConfig(conf, nil, cmd)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Kafka.Embedded.Port != 19092 || cfg.Redis.Embedded.Port != 0 {
		t.Errorf("embedded ports = kafka %d, redis %d; want 19092 and 0", cfg.Kafka.Embedded.Port, cfg.Redis.Embedded.Port)
	}

	var out bytes.Buffer
	if code := run(t.Context(), []string{"serve", "--help"}, env{stdout: newOutput(&out), stderr: newOutput(&out), clock: time.Now}); code != 0 {
		t.Fatalf("serve --help exit %d:\n%s", code, out.String())
	}
	for _, want := range []string{"--embedded-kafka-port PORT", "--embedded-redis-port PORT"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("serve --help does not list %s:\n%s", want, out.String())
		}
	}

	for _, args := range [][]string{
		{"serve", "--embedded-kafka-port", "x"},
		{"serve", "--embedded-redis-port", "70000"},
	} {
		var stderr bytes.Buffer
		code := run(t.Context(), args, env{stdout: newOutput(io.Discard), stderr: newOutput(&stderr), clock: time.Now})
		if code != 2 || !strings.Contains(stderr.String(), args[1]+":") {
			t.Errorf("%v: exit %d, stderr:\n%s\nwant exit 2 naming %s", args, code, stderr.String(), args[1])
		}
	}
}

// TestREADMEScaleOutCommands parses the README's commands for two
// instances on one machine with serve's own flags: every address one of
// them listens on (HTTP, gRPC, an embedded broker or Redis) must be free
// of the other's, or the second one would not start.
func TestREADMEScaleOutCommands(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n### Scaling out\n")
	if !ok {
		t.Fatal("README.md has no Scaling out section")
	}
	sec, _, _ = strings.Cut(sec, "\n### ")
	_, block, ok := strings.Cut(sec, "```sh\n")
	if !ok {
		t.Fatal("the Scaling out section has no sh block")
	}
	block, _, _ = strings.Cut(block, "```")
	owner := map[string]string{}
	var n int
	for line := range strings.Lines(block) {
		line, _, _ = strings.Cut(line, "#")
		args := strings.Fields(line)
		if len(args) < 2 || args[0] != "shrike" || args[1] != "serve" {
			continue
		}
		n++
		cmd := newServeCmd(env{stdout: newOutput(io.Discard), stderr: newOutput(io.Discard), clock: time.Now})
		if err := cmd.ParseFlags(args[2:]); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		cfg, err := serveConfig("", nil, cmd)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		addrs := []string{cfg.HTTP.Listen, cfg.GRPC.Listen}
		if cfg.Admin.Enabled() {
			addrs = append(addrs, cfg.Admin.Listen)
		}
		if cfg.EmbeddedKafka() {
			addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", cfg.Kafka.Embedded.Port))
		}
		if cfg.EmbeddedRedis() {
			addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", cfg.Redis.Embedded.Port))
		}
		for _, a := range addrs {
			if prev, ok := owner[a]; ok {
				t.Errorf("%s and %s both listen on %s", strings.TrimSpace(prev), strings.TrimSpace(line), a)
			}
			owner[a] = line
		}
	}
	if n < 2 {
		t.Errorf("the Scaling out block has %d serve commands, want two instances", n)
	}
}

// TestServeBanner: the lines serve prints for a person on the embedded
// broker say where the data lives and how to reach the listeners: the
// broker's records in memory always, a Redis of its own when one is
// configured, https when TLS is on.
func TestServeBanner(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	realRedis, err := embedded.NewRedis(embedded.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer realRedis.Close()
	cert, key := writeSelfSigned(t)
	tests := []struct {
		name          string
		set           func(c *config.Config)
		want, notWant []string
	}{
		{
			name: "all embedded",
			set:  func(*config.Config) {},
			want: []string{"and an embedded Redis (127.0.0.1:", "Both keep their data in memory", "REST http://", "gRPC 127.0.0.1:", "metrics:      http://"},
		},
		{
			name: "real redis, tls",
			set: func(c *config.Config) {
				c.Redis.Addrs = []string{realRedis.Addr()}
				c.API.TLS = config.TLSConfig{CertFile: cert, KeyFile: key}
			},
			want:    []string{"with Redis at " + realRedis.Addr() + ".", "The broker keeps its records in memory", "use a real Kafka (--kafka)", "REST https://", "gRPC (TLS) 127.0.0.1:", "metrics:      https://"},
			notWant: []string{"Both keep", "embedded Redis", "http://"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testServeConfig("../../rulesets")
			tt.set(&cfg)
			var stderr testkit.Buffer
			s, err := startServer(t.Context(), env{stderr: newOutput(&stderr), clock: time.Now}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			s.close()
			_, banner, _ := strings.Cut(stderr.String(), "\nShrike is running")
			for _, w := range tt.want {
				if !strings.Contains(banner, w) {
					t.Errorf("banner does not say %q:\n%s", w, banner)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(banner, w) {
					t.Errorf("banner says %q:\n%s", w, banner)
				}
			}
		})
	}
}
