package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shrike-cep/shrike/internal/gen"
	"github.com/shrike-cep/shrike/internal/testkit"
)

// The helpers the end-to-end tests share, by subject.

// The binary under test, the tools it needs, the shipped rulesets.

// partitions is the partition count of every topic in these tests: the
// embedded broker's default, and what the helper broker creates.
const partitions = 3

// requireTools skips the test when a tool is missing, unless CI is set:
// CI installs them (.ci/run), so there a missing tool is a failure.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	requireInstalled(t, "apt-get install -y redis-server redis-tools kcat curl jq", tools...)
}

// requireInstalled is requireTools with the install command to suggest.
func requireInstalled(t *testing.T, install string, tools ...string) {
	t.Helper()
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("%s not installed (%s)", strings.Join(missing, ", "), install)
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatalf("%s, and CI is set: CI must run this test", msg)
	}
	t.Skip(msg + "; CI=true makes this a failure")
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binEnv names a shrike binary to test instead of building one (a release
// build, say).
const binEnv = "SHRIKE_E2E_BIN"

// testHooksTag is the build tag of the binary under test: it compiles in
// the test points of the checkpoint barrier, which kill or stop the
// process where the environment says (SHRIKE_TEST_CRASH_AT=<point>:<n>,
// SHRIKE_TEST_PAUSE_AT=<point>:<n>; cep/testpoints_hooks.go), and do
// nothing otherwise, so the other tests run it as a release build.
const testHooksTag = "shrike_testhooks"

// shrikeBin builds the shrike binary, with testHooksTag, once per test
// process, unless binEnv names one, and returns its path.
func shrikeBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv(binEnv); p != "" {
			binPath, buildErr = filepath.Abs(p)
			return
		}
		binPath = filepath.Join(tmpRoot, "shrike")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-tags", testHooksTag, "-o", binPath, "github.com/shrike-cep/shrike/cmd/shrike")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/shrike: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// shipped returns the paths of the shipped rulesets, the payments ruleset
// and its recording.
func shipped(t *testing.T) (rulesDir, payments, recording string) {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "rulesets"))
	if err != nil {
		t.Fatal(err)
	}
	return dir, filepath.Join(dir, "payments.yaml"), filepath.Join(dir, "testdata", "payments.jsonl")
}

// Waiting: every wait that polls goes through poll.

// poll calls cond every interval until it holds or timeout passes, and
// reports whether it held. Waits whose failure says more than "timed out"
// (what was missing, how far it got) poll and report themselves.
func poll(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
	return true
}

// waitFor polls cond every 100 ms until it holds, and fails the test when
// timeout passes first.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !poll(timeout, 100*time.Millisecond, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// Processes: children of the test with their output in a log file, `shrike
// serve` and its readiness and metrics, free ports, files.

// proc is a child process whose output goes to a log file, shown when the
// test fails.
type proc struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	err     error // of Wait, once exited is closed
}

// startProc starts name (for messages) as argv with extra environment. At
// cleanup a process still running is stopped with SIGTERM (SIGKILL after
// 20 s); when the test failed, the tail of its log is printed.
func startProc(t *testing.T, name string, env []string, argv ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), strings.ReplaceAll(name, " ", "-")+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(childEnviron(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		_ = logf.Close() // nothing was written: the process never started
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{t: t, name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		// The log serves dumpLog only; a Close error there cannot be
		// reported (the test may be over) and would cost at most its tail.
		_ = logf.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if p.running() {
			// A process the test left running is not under test: its exit
			// status (SIGTERM's, for kcat) says nothing; stop reports a hang.
			_ = p.stop(20 * time.Second)
		}
		if t.Failed() {
			p.dumpLog()
		}
	})
	return p
}

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits up to timeout for the exit, then kills. It
// returns the exit error (nil for status 0).
func (p *proc) stop(timeout time.Duration) error {
	p.t.Helper()
	if !p.running() {
		return p.err
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.err
	case <-time.After(timeout):
		p.t.Errorf("%s did not exit within %v of SIGTERM: killed", p.name, timeout)
		p.kill()
		return p.err
	}
}

// kill sends SIGKILL, as a crash would, and waits for the exit.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// log returns what the process wrote so far.
func (p *proc) log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

// dumpLog prints the end of the log into the test output.
func (p *proc) dumpLog() {
	const tail = 12 << 10
	s := p.log()
	if len(s) > tail {
		s = "…" + s[len(s)-tail:]
	}
	p.t.Logf("---- %s (pid %d) log, %s ----\n%s", p.name, p.cmd.Process.Pid, p.logPath, s)
}

// freePort returns a loopback port that was free a moment ago. Another
// process may take it before it is used: rare enough for tests, and the
// failure is clear (address in use).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The listener only found a free port; its Close cannot change it.
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port
}

// serve is a running `shrike serve` process.
type serve struct {
	*proc
	http  string // host:port of the REST API and /readyz
	admin string // host:port of /metrics and /debug/pprof/
	kafka string // the brokers it uses, embedded or not
}

// serveOptions shape one `shrike serve` process.
type serveOptions struct {
	Rules string // rules directory
	Kafka string // brokers; empty: embedded
	Redis string // addresses; empty: embedded
	Group string // consumer group; empty: the default
	// KeyPrefix is redis.key_prefix; empty: the default.
	KeyPrefix string
	Extra     string // more YAML appended to the config file
	LogName   string // name in messages; default "shrike serve"
	// CheckpointInterval is state.checkpoint_interval; default 200ms, so
	// that tests do not wait long for commits.
	CheckpointInterval time.Duration
	// KafkaExtra is more YAML in the kafka section, each line indented by
	// two spaces ("  exactly_once: false\n").
	KafkaExtra string
	// Env is added to the process's environment.
	Env []string
}

// startServe starts `shrike serve` with a config file that puts every
// listener (HTTP, gRPC, and the embedded Kafka and Redis when used) on a
// free loopback port.
func startServe(t *testing.T, o serveOptions) *serve {
	t.Helper()
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "rules:\n  dir: %q\n", o.Rules)
	fmt.Fprintf(&cfg, "http:\n  listen: %q\ngrpc:\n  listen: \"127.0.0.1:%d\"\n", httpAddr, freePort(t))
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = 200 * time.Millisecond
	}
	fmt.Fprintf(&cfg, "state:\n  checkpoint_interval: %s\n", o.CheckpointInterval)
	fmt.Fprintf(&cfg, "kafka:\n")
	kafka := o.Kafka
	if kafka != "" {
		fmt.Fprintf(&cfg, "  brokers: [%s]\n", quoteList(kafka))
	} else {
		port := freePort(t)
		kafka = fmt.Sprintf("127.0.0.1:%d", port)
		fmt.Fprintf(&cfg, "  embedded:\n    port: %d\n", port)
	}
	if o.Group != "" {
		fmt.Fprintf(&cfg, "  group: %q\n", o.Group)
	}
	cfg.WriteString(o.KafkaExtra)
	fmt.Fprintf(&cfg, "redis:\n")
	if o.Redis != "" {
		fmt.Fprintf(&cfg, "  addrs: [%s]\n", quoteList(o.Redis))
	} else {
		fmt.Fprintf(&cfg, "  embedded:\n    port: %d\n", freePort(t))
	}
	if o.KeyPrefix != "" {
		fmt.Fprintf(&cfg, "  key_prefix: %q\n", o.KeyPrefix)
	}
	cfg.WriteString(o.Extra)
	s := startServeEnv(t, o.LogName, cfg.String(), httpAddr, o.Env)
	s.kafka = kafka
	return s
}

// startServeConfig starts `shrike serve --config` with the given YAML,
// whose http.listen is httpAddr. Unless the YAML has an admin section, the
// admin listener goes to a free loopback port.
func startServeConfig(t *testing.T, name, yaml, httpAddr string) *serve {
	t.Helper()
	return startServeEnv(t, name, yaml, httpAddr, nil)
}

// startServeEnv is startServeConfig with env added to the process's
// environment.
func startServeEnv(t *testing.T, name, yaml, httpAddr string, env []string) *serve {
	t.Helper()
	if name == "" {
		name = "shrike serve"
	}
	var admin string
	if !strings.HasPrefix(yaml, "admin:") && !strings.Contains(yaml, "\nadmin:") {
		admin = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		yaml += fmt.Sprintf("admin:\n  listen: %q\n", admin)
	}
	path := filepath.Join(t.TempDir(), "shrike.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, name, env, shrikeBin(t), "serve", "--config", path)
	return &serve{proc: p, http: httpAddr, admin: admin}
}

func quoteList(csv string) string {
	var qs []string
	for _, s := range strings.Split(csv, ",") {
		qs = append(qs, strconv.Quote(s))
	}
	return strings.Join(qs, ", ")
}

// readyz returns /readyz's status code and body; code 0 when the server
// does not answer.
func (s *serve) readyz() (int, string) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + s.http + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer func() { _ = resp.Body.Close() }() // read to the end: a Close error loses nothing
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// waitReady waits for /readyz to answer 200, failing at once when the
// process exits.
func (s *serve) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	var code int
	var body string
	ready := poll(timeout, 100*time.Millisecond, func() bool {
		code, body = s.readyz()
		if code == http.StatusOK {
			return true
		}
		if !s.running() {
			t.Fatalf("%s exited before it was ready: %v", s.name, s.err)
		}
		return false
	})
	if !ready {
		t.Fatalf("%s not ready after %v: %d %s", s.name, timeout, code, body)
	}
}

// metrics scrapes /metrics (on the admin listener) into series (name with labels, as exposed) →
// value.
func (s *serve) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + s.admin + "/metrics")
	if err != nil {
		t.Fatalf("%s: scrape metrics: %v", s.name, err)
	}
	defer func() { _ = resp.Body.Close() }() // read to the end: a Close error loses nothing
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: read metrics: %v", s.name, err)
	}
	return out
}

// metricSum adds up every series of the metric name.
func metricSum(ms map[string]float64, name string) float64 {
	var sum float64
	for series, v := range ms {
		if series == name || strings.HasPrefix(series, name+"{") {
			sum += v
		}
	}
	return sum
}

// exitedCleanly stops the process with SIGTERM and checks it exits 0, as
// `shrike serve` must after a graceful shutdown.
func (s *serve) exitedCleanly(t *testing.T) {
	t.Helper()
	err := s.stop(40 * time.Second)
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		t.Errorf("%s exited with %v after SIGTERM, want status 0", s.name, ee)
	default:
		t.Errorf("%s: %v", s.name, err)
	}
	if log := s.log(); !strings.Contains(log, "shut down cleanly") {
		t.Errorf("%s: no \"shut down cleanly\" in its log", s.name)
	}
}

// copyFile copies src to dst.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// tail keeps the last 4 KiB of s, enough of a log or an output for a failure
// message.
func tail(s string) string {
	const n = 4 << 10
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// Kafka: the helper broker process, kcat, a franz-go producer, committed
// offsets, generated events.

// Topics of the payments ruleset and the engine's default outputs.
const (
	paymentsTopic   = "payments"
	alertsTopic     = "shrike-alerts"
	deadLetterTopic = "shrike-deadletter"
	lateTopic       = "shrike-late"
)

// startBroker runs the helper broker (runBroker) as a separate process,
// with its log in dataDir when dataDir is not empty, and returns its
// address.
func startBroker(t *testing.T, dataDir string) (string, *proc) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	env := []string{
		brokerEnv + "=1",
		brokerDataEnv + "=" + dataDir,
		brokerTopicsEnv + "=" + strings.Join([]string{paymentsTopic, alertsTopic, deadLetterTopic, lateTopic}, ","),
	}
	p := startProc(t, "kafka broker", env, self, "-test.run=^$")
	var addr string
	waitFor(t, 20*time.Second, "the broker to print its address", func() bool {
		if !p.running() {
			t.Fatalf("the broker exited: %v\n%s", p.err, p.log())
		}
		line, _, ok := strings.Cut(p.log(), "\n")
		if ok && strings.HasPrefix(line, "127.0.0.1:") {
			addr = line
			return true
		}
		return false
	})
	return addr, p
}

// kv is a Kafka record's key and value.
type kv struct{ key, value string }

// keyed keys each event by its account, as a producer keyed by the stream's
// natural key would (the stream's key expression is event.account_id), so
// that all events of an account land in one partition.
func keyed(t *testing.T, lines []string) []kv {
	t.Helper()
	out := make([]kv, len(lines))
	for i, line := range lines {
		var ev struct {
			AccountID string `json:"account_id"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.AccountID == "" {
			t.Fatalf("event %d has no account_id: %q", i+1, line)
		}
		out[i] = kv{ev.AccountID, line}
	}
	return out
}

// flushTime is the event time of the flush events: a minute after the
// tests started, which is past every window of the test's events (from
// 2026-11-20) and within the engine's bound on clock skew (5 minutes
// ahead of the wall clock), so that serve takes it.
var flushTime = time.Now().UTC().Add(time.Minute).Format("2006-01-02T15:04:05.000Z")

// flushEvent is an event in the future of the test's events for one
// partition: it moves that partition's watermark past every window of
// them, so that every match is emitted without waiting for the wall clock.
// No payments rule takes a logout.
func flushEvent(partition int) string {
	return fmt.Sprintf(`{"type":"logout","account_id":"zz-flush-%d","ts":%q}`, partition, flushTime)
}

// kcatProduce produces recs to topic with kcat, into the given partition
// or, when partition is negative, into the one kcat's partitioner picks by
// key.
func kcatProduce(t *testing.T, broker, topic string, partition int, recs []kv) {
	t.Helper()
	var b strings.Builder
	for _, r := range recs {
		if strings.ContainsAny(r.key+r.value, "\t\n") {
			t.Fatalf("record %q/%q holds a tab or newline, kcat's separators", r.key, r.value)
		}
		b.WriteString(r.key + "\t" + r.value + "\n")
	}
	path := filepath.Join(t.TempDir(), "records.txt")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-b", broker, "-P", "-t", topic, "-K", "\t", "-l", path}
	if partition >= 0 {
		args = append(args, "-p", strconv.Itoa(partition))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "kcat", args...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		// kcat reports failed deliveries on stderr, and may still exit 0.
		t.Fatalf("kcat %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// kcatRecord is a record as kcat -J prints it.
type kcatRecord struct {
	Partition int32    `json:"partition"`
	Offset    int64    `json:"offset"`
	Key       *string  `json:"key"`
	Payload   *string  `json:"payload"`
	Headers   []string `json:"headers"` // name, value, name, value…
}

// header returns the value of the record's header name.
func (r kcatRecord) header(name string) (string, bool) {
	for i := 0; i+1 < len(r.Headers); i += 2 {
		if r.Headers[i] == name {
			return r.Headers[i+1], true
		}
	}
	return "", false
}

// kcatJSON reads topic from the beginning to its current end with kcat -C
// -J, as the README says, and returns kcat's envelope lines. extra are
// more kcat arguments (-X isolation.level=…: librdkafka reads
// read_committed unless told otherwise).
func kcatJSON(t *testing.T, broker, topic string, extra ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"-b", broker, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-J"}, extra...)
	cmd := exec.CommandContext(ctx, "kcat", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat -C -J -t %s: %v\n%s", topic, err, stderr.String())
	}
	return out
}

// kcatConsume reads topic from the beginning to its current end with kcat,
// with extra kcat arguments.
func kcatConsume(t *testing.T, broker, topic string, extra ...string) []kcatRecord {
	t.Helper()
	out := kcatJSON(t, broker, topic, extra...)
	var recs []kcatRecord
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var r kcatRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("kcat -J line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

// producer is a franz-go producer for the tests that feed the engine from
// Go: keyed records go where franz-go's default partitioner puts them,
// records with a partition of their own (flush events) there.
type producer struct {
	t  *testing.T
	cl *kgo.Client
}

func newProducer(t *testing.T, broker string) *producer {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(broker),
		kgo.DefaultProduceTopic(paymentsTopic),
		kgo.RecordPartitioner(flushPartitioner{kgo.StickyKeyPartitioner(nil)}),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &producer{t: t, cl: cl}
}

// flushPartitioner sends a record with an e2e-partition header into that
// partition, and the others where keyed puts them.
type flushPartitioner struct{ keyed kgo.Partitioner }

func (f flushPartitioner) ForTopic(topic string) kgo.TopicPartitioner {
	return flushTopicPartitioner{f.keyed.ForTopic(topic)}
}

type flushTopicPartitioner struct{ kgo.TopicPartitioner }

func (f flushTopicPartitioner) Partition(r *kgo.Record, n int) int {
	for _, h := range r.Headers {
		if h.Key == "e2e-partition" {
			p, _ := strconv.Atoi(string(h.Value))
			return p % n
		}
	}
	return f.TopicPartitioner.Partition(r, n)
}

// produce writes recs synchronously, in order.
func (p *producer) produce(recs []kv) {
	p.t.Helper()
	rs := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		rs[i] = &kgo.Record{Key: []byte(r.key), Value: []byte(r.value)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		p.t.Fatalf("produce: %v", err)
	}
}

// flush produces one flushEvent into every partition.
func (p *producer) flush() {
	p.t.Helper()
	var rs []*kgo.Record
	for part := range partitions {
		rs = append(rs, &kgo.Record{
			Key:     []byte(fmt.Sprintf("zz-flush-%d", part)),
			Value:   []byte(flushEvent(part)),
			Headers: []kgo.RecordHeader{{Key: "e2e-partition", Value: []byte(strconv.Itoa(part))}},
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		p.t.Fatalf("produce flush events: %v", err)
	}
}

// committed returns the consumer group's committed offsets of the
// payments topic by partition.
func committed(t *testing.T, broker, group string) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch committed offsets of %s: %v", group, err)
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == paymentsTopic && o.Err == nil {
			out[o.Partition] = o.At
		}
	})
	return out
}

// genEvents generates a payments stream with many injected fraud patterns
// (so that many alerts fire) and some disorder, all within the ruleset's
// max_out_of_orderness so that no event is late, per partition or over the
// whole stream alike.
func genEvents(t *testing.T, n int) []string {
	t.Helper()
	g, err := gen.New(gen.Options{
		Stream: gen.StreamPayments, Seed: 4, Events: n, Keys: 300, Rate: 20,
		FraudRate: 0.02, OutOfOrder: 0.05, MaxLateness: 1500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for {
		line, ok := g.Next()
		if !ok {
			return lines
		}
		lines = append(lines, string(line))
	}
}

// readLines returns the non-empty lines of a file.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// Redis: a redis-server of the test's own and a TCP proxy that can cut it off.

// startRedis runs a redis-server of the test's own on a free port, its data
// in a temporary directory: with appendonly, every write is in the AOF
// (fsync every second) and survives a restart of the server.
func startRedis(t *testing.T, appendonly bool) string {
	t.Helper()
	port := freePort(t)
	aof := "no"
	if appendonly {
		aof = "yes"
	}
	startProc(t, "redis-server", nil, "redis-server",
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", t.TempDir(),
		"--save", "", "--appendonly", aof, "--daemonize", "no")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitFor(t, 10*time.Second, "redis-server to answer PING", func() bool { return redisPing(addr) == nil })
	return addr
}

// redisPing sends PING in the Redis protocol and expects +PONG.
func redisPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }() // a probe: only the PONG read below matters
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// Alerts: `shrike run`'s alerts and serve's alerts read back from the alerts
// topic, compared without the fields that depend on where events were read.

// canonAlert returns an alert's JSON without "id" and "detected_at", keys
// sorted: what `shrike serve` and `shrike run` must agree on for the same
// events (ruleset, rule and version, key, summary, labels, start, end,
// timeout, and the matched events by step). It also returns the id.
func canonAlert(t *testing.T, line []byte) (canon, id string) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("alert %q: %v", line, err)
	}
	id, _ = m["id"].(string)
	if id == "" {
		t.Errorf("alert without id: %s", line)
	}
	delete(m, "id")
	delete(m, "detected_at")
	b, err := json.Marshal(m) // map keys sorted
	if err != nil {
		t.Fatal(err)
	}
	return string(b), id
}

// runAlerts runs `shrike run --rules RULESET` over the events (in order)
// and returns its alerts' canonical forms, sorted.
func runAlerts(t *testing.T, ruleset string, events []string) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(events, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want, _ := runFile(t, ruleset, path)
	return want
}

// runFile runs `shrike run --rules RULESET FILE` and returns its alerts'
// canonical forms, sorted, and its stderr.
func runFile(t *testing.T, ruleset, path string) ([]string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, shrikeBin(t), "run", "--rules", ruleset, path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("shrike run: %v\n%s", err, stderr.String())
	}
	var want []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		c, _ := canonAlert(t, sc.Bytes())
		want = append(want, c)
	}
	if len(want) == 0 {
		t.Fatalf("shrike run found no alert: the test would show nothing\n%s", stderr.String())
	}
	sort.Strings(want)
	return want, stderr.String()
}

// alertSet is the alerts read from the alerts topic.
type alertSet struct {
	ids     map[string]string // canonical form → id
	raw     map[string]string // canonical form → the first record's value
	records int
	errs    []string
}

// readAlerts reads the alerts topic with kcat. Each record must be keyed by
// its alert's id, and equal alerts must carry equal ids.
func readAlerts(t *testing.T, broker string) alertSet {
	t.Helper()
	s := alertSet{ids: map[string]string{}, raw: map[string]string{}}
	for _, r := range kcatConsume(t, broker, alertsTopic) {
		if r.Payload == nil {
			s.errs = append(s.errs, fmt.Sprintf("alert record %d@%d without value", r.Partition, r.Offset))
			continue
		}
		s.records++
		c, id := canonAlert(t, []byte(*r.Payload))
		if r.Key == nil || *r.Key != id {
			s.errs = append(s.errs, fmt.Sprintf("alert record %d@%d keyed %v, its id is %q", r.Partition, r.Offset, r.Key, id))
		}
		if prev, ok := s.ids[c]; ok && prev != id {
			s.errs = append(s.errs, fmt.Sprintf("a duplicate alert with another id (%s, %s): %s", prev, id, c))
		}
		if _, ok := s.raw[c]; !ok {
			s.raw[c] = fmt.Sprintf("partition %d offset %d: %s", r.Partition, r.Offset, *r.Payload)
		}
		s.ids[c] = id
	}
	return s
}

func (s alertSet) distinct() []string {
	out := make([]string, 0, len(s.ids))
	for c := range s.ids {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// hasAll reports whether every wanted alert is in the set.
func (s alertSet) hasAll(want []string) bool {
	for _, w := range want {
		if _, ok := s.ids[w]; !ok {
			return false
		}
	}
	return true
}

// waitAlerts waits until every wanted alert arrived on the alerts topic
// (or timeout passes), then checks that the distinct alerts are exactly
// want and that duplicates carry their original's id. It returns the set.
func waitAlerts(t *testing.T, broker string, want []string, timeout time.Duration) alertSet {
	t.Helper()
	// Every 500 ms: each look reads the whole alerts topic with kcat. On a
	// timeout the comparison below says what is missing.
	var got alertSet
	poll(timeout, 500*time.Millisecond, func() bool {
		got = readAlerts(t, broker)
		return got.hasAll(want)
	})
	for _, e := range got.errs {
		t.Error(e)
	}
	if diff := cmp.Diff(want, got.distinct()); diff != "" {
		t.Errorf("alerts of shrike serve, against shrike run's (-want +got):\n%s", shortDiff(diff))
		// In full, for the investigation: the diff cuts long lines.
		for _, w := range want {
			if _, ok := got.ids[w]; !ok {
				t.Logf("missing: %s", w)
			}
		}
		wanted := map[string]bool{}
		for _, w := range want {
			wanted[w] = true
		}
		for _, g := range got.distinct() {
			if !wanted[g] {
				t.Logf("unexpected: %s", got.raw[g])
			}
		}
	}
	t.Logf("%d distinct alerts as shrike run's, in %d records", len(got.ids), got.records)
	return got
}

// shortDiff keeps a diff of long JSON lines readable: each line is cut to
// 300 characters, and at most 40 lines are shown.
func shortDiff(diff string) string {
	lines := strings.Split(diff, "\n")
	for i, l := range lines {
		if len(l) > 300 {
			lines[i] = l[:300] + "…"
		}
	}
	if len(lines) > 40 {
		lines = append(slices.Clip(lines[:40]), fmt.Sprintf("… %d more lines", len(lines)-40))
	}
	return strings.Join(lines, "\n")
}

// API: `shrike serve` with its API, curl, and long-running streams of JSON.

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
	requireInstalled(t, "apt-get install -y curl; go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4", "curl", "grpcurl")
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
	cmd.Env = append(childEnviron(), env...)
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

// childEnviron is the environment of the processes the tests start: the
// test's own, without the variables that name the test harness's Redis
// servers (SHRIKE_REDIS_ADDR, SHRIKE_REDIS_CLUSTER, scripts/redis-servers'
// ports). serve reads SHRIKE_REDIS_* as its configuration
// (docs/configuration.md), where they would be a wrong redis.cluster and
// unknown variables; the tests pass the servers they use as flags.
func childEnviron() []string {
	return testkit.EnvironWithout("SHRIKE_REDIS_ADDR=", "SHRIKE_REDIS_CLUSTER=", "SHRIKE_REDIS_PORT=", "SHRIKE_REDIS_CLUSTER_PORTS=")
}
