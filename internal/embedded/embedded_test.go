package embedded

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestKafkaTopicsAndRoundTrip(t *testing.T) {
	tests := []struct {
		name       string
		partitions int
		want       int
	}{
		{name: "default partition count", partitions: 0, want: DefaultPartitions},
		{name: "configured partition count", partitions: 5, want: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			k, err := NewKafka(ctx, KafkaOptions{Partitions: tt.partitions, Topics: []string{"payments", "shrike-alerts", "payments"}})
			if err != nil {
				t.Fatalf("NewKafka: %v", err)
			}
			defer k.Close()
			if got := topicPartitions(ctx, t, k.Addrs()); !cmp.Equal(got, map[string]int{"payments": tt.want, "shrike-alerts": tt.want}) {
				t.Errorf("topics = %v, want payments and shrike-alerts with %d partitions", got, tt.want)
			}
			produceConsume(ctx, t, k.Addrs(), "payments", "acct-1", `{"x":1}`)
		})
	}
}

// TestKafkaGrantsKafkasSessionTimeouts: a group member may ask for a
// session up to MaxSessionTimeout, as with Kafka's defaults, beyond
// kfake's own 5 minutes; a longer one is refused.
func TestKafkaGrantsKafkasSessionTimeouts(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	k, err := NewKafka(ctx, KafkaOptions{Topics: []string{"events"}})
	if err != nil {
		t.Fatalf("NewKafka: %v", err)
	}
	defer k.Close()
	for _, tt := range []struct {
		session time.Duration
		ok      bool
	}{{10 * time.Minute, true}, {MaxSessionTimeout + time.Minute, false}} {
		cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs()...), kgo.ConsumerGroup("g"), kgo.ConsumeTopics("events"),
			kgo.SessionTimeout(tt.session), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "events", Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		fs := cl.PollFetches(pctx)
		pcancel()
		err = fs.Err0()
		switch {
		case tt.ok && (err != nil || len(fs.Records()) == 0):
			t.Errorf("session %v: joined and fetched %d records, err %v; want the group to take it", tt.session, len(fs.Records()), err)
		case !tt.ok && !errors.Is(err, kerr.InvalidSessionTimeout):
			t.Errorf("session %v: err %v, want %v", tt.session, err, kerr.InvalidSessionTimeout)
		}
		cl.Close()
	}
}

func TestKafkaBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts KafkaOptions
		want string
	}{
		{name: "port", opts: KafkaOptions{Port: 70000}, want: "embedded kafka: bad port 70000"},
		{name: "partitions", opts: KafkaOptions{Partitions: -1}, want: "embedded kafka: bad partition count -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewKafka(t.Context(), tt.opts)
			if err == nil || err.Error() != tt.want {
				t.Errorf("error = %v, want %s", err, tt.want)
			}
		})
	}
}

func TestKafkaPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Closing a listener that only held a port cannot fail in a way the
	// test cares about.
	defer func() { _ = ln.Close() }()
	port := ln.Addr().(*net.TCPAddr).Port
	if _, err := NewKafka(t.Context(), KafkaOptions{Port: port}); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("error = %v, want address already in use", err)
	}
}

func TestRedis(t *testing.T) {
	r, err := NewRedis(RedisOptions{})
	if err != nil {
		t.Fatalf("NewRedis: %v", err)
	}
	defer r.Close()
	conn, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	// Only the replies read above are under test; closing the client's
	// end afterwards says nothing about the server.
	defer func() { _ = conn.Close() }()
	br := bufio.NewReader(conn)
	var got []string
	for _, cmd := range []string{
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
		"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
	} {
		if _, err := conn.Write([]byte(cmd)); err != nil {
			t.Fatal(err)
		}
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, line)
		if strings.HasPrefix(line, "$") {
			line, _ = br.ReadString('\n')
			got = append(got, line)
		}
	}
	if diff := cmp.Diff([]string{"+OK\r\n", "$1\r\n", "v\r\n"}, got); diff != "" {
		t.Errorf("replies (-want +got):\n%s", diff)
	}
	r.Close()
	if _, err := net.Dial("tcp", r.Addr()); err == nil {
		t.Error("the server still accepts connections after Close")
	}
}

func TestKafkaLoggerKeepsTheMessageKey(t *testing.T) {
	var buf bytes.Buffer
	l := kfakeLogger{slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	l.Logf(kfake.LogLevelError, "broker %d: %s", 1, "listener closed")
	l.Logf(kfake.LogLevelInfo, "request %s", "Fetch")
	var got []map[string]any
	for line := range strings.Lines(buf.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		delete(rec, "time")
		got = append(got, rec)
	}
	want := []map[string]any{
		{"level": "WARN", "msg": "embedded kafka", "detail": "broker 1: listener closed"},
		{"level": "DEBUG", "msg": "embedded kafka", "detail": "request Fetch"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log records (-want +got):\n%s", diff)
	}
	if n := strings.Count(buf.String(), `"msg":`); n != 2 {
		t.Errorf("%d \"msg\" keys in two records:\n%s", n, buf.String())
	}
}

func topicPartitions(ctx context.Context, t *testing.T, addrs []string) map[string]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	td, err := kadm.NewClient(cl).ListTopics(ctx)
	if err != nil {
		t.Fatalf("list topics: %v", err)
	}
	got := map[string]int{}
	for _, d := range td.Sorted() {
		got[d.Topic] = len(d.Partitions)
	}
	return got
}

func produceConsume(ctx context.Context, t *testing.T, addrs []string, topic, key, value string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte(value)}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	fs := cl.PollFetches(ctx)
	if err := fs.Err0(); err != nil {
		t.Fatalf("poll: %v", err)
	}
	recs := fs.Records()
	if len(recs) != 1 || string(recs[0].Key) != key || string(recs[0].Value) != value {
		t.Fatalf("consumed %d records, want the one produced", len(recs))
	}
}
