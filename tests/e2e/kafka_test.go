package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shrike-cep/shrike/internal/gen"
)

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

// flushEvent is an event far in the future for one partition: it moves that
// partition's watermark past every window of the test's events, so that
// every match is emitted without waiting for the wall clock. No payments
// rule takes a logout.
func flushEvent(partition int) string {
	return fmt.Sprintf(`{"type":"logout","account_id":"zz-flush-%d","ts":"2099-01-01T00:00:00.000Z"}`, partition)
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
// -J, as the README says, and returns kcat's envelope lines.
func kcatJSON(t *testing.T, broker, topic string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kcat", "-b", broker, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-J")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat -C -J -t %s: %v\n%s", topic, err, stderr.String())
	}
	return out
}

// kcatConsume reads topic from the beginning to its current end with kcat.
func kcatConsume(t *testing.T, broker, topic string) []kcatRecord {
	t.Helper()
	out := kcatJSON(t, broker, topic)
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
