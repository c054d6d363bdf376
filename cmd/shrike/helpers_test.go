package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shrike-cep/shrike/config"
	"github.com/shrike-cep/shrike/internal/testkit"
)

// The helpers the command's tests share: a serve configuration for tests,
// producing and consuming records, polling the admin endpoints, files and
// certificates.

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	// Closing frees the port, which is all that is wanted of it.
	_ = ln.Close()
	return addr
}

// writeSelfSigned writes a self-signed certificate for 127.0.0.1, which is
// its own CA, and its key, and returns their paths.
func writeSelfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	return testkit.WriteSelfSigned(t, t.TempDir())
}

// consumeAll reads n records of topic from the start.
func consumeAll(ctx context.Context, t *testing.T, broker, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("consume %s: %v after %d records", topic, err, len(recs))
		}
		recs = append(recs, fs.Records()...)
	}
	return recs
}

// waitMetric polls /metrics (on the admin listener, base) until a line
// matches re.
func waitMetric(ctx context.Context, t *testing.T, client *http.Client, base, re string) {
	t.Helper()
	rx := regexp.MustCompile(re)
	for {
		_, body := httpGet(t, client, base+"/metrics")
		if rx.MatchString(body) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("/metrics never matched %s:\n%s", re, body)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// testServeConfig is serve's configuration for tests: embedded Kafka and
// Redis and HTTP on free ports, frequent checkpoints.
func testServeConfig(rulesDir string) config.Config {
	cfg := config.DefaultConfig()
	cfg.Rules.Dir = rulesDir
	cfg.Kafka.Embedded.Port = 0
	cfg.Redis.Embedded.Port = 0
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.GRPC.Listen = "127.0.0.1:0"
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.State.CheckpointInterval = 100 * time.Millisecond
	return cfg
}

// waitReady polls /readyz until it answers 200; ctx bounds the wait.
func waitReady(ctx context.Context, t *testing.T, client *http.Client, base string) {
	t.Helper()
	for {
		code, body := httpGet(t, client, base+"/readyz")
		if code == http.StatusOK {
			return
		}
		if code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "not ready: ") {
			t.Fatalf("/readyz = %d %q, want 200, or 503 with a reason", code, body)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("never ready; last /readyz: %q", body)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func httpGet(t *testing.T, client *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }() // read to the end: nothing is lost
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// produce writes events to topic keyed by keyField, as a producer
// independent of Shrike's would.
func produce(ctx context.Context, t *testing.T, broker, topic, keyField string, events [][]byte) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(events))
	for i, ev := range events {
		recs[i] = &kgo.Record{Topic: topic, Key: eventKey(ev, keyField), Value: ev}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
