// Package testkit holds the test helpers several packages share: polling
// for a condition and reading Prometheus metrics as text. Only tests
// import it.
package testkit

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// DefaultWait is how long WaitFor waits when given no timeout: long, since
// what it catches is a hang, not a slow machine.
const DefaultWait = 20 * time.Second

// WaitFor polls cond every 10 ms until it holds, failing the test once
// timeout (DefaultWait when 0) has passed.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if timeout <= 0 {
		timeout = DefaultWait
	}
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// MetricsText returns g's metrics one per line, as `name{label="v",...} value`
// (a histogram as its `_count`), for tests to search.
func MetricsText(t testing.TB, g prometheus.Gatherer) string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			name := mf.GetName()
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				fmt.Fprintf(&b, "%s %g\n", name, m.Counter.GetValue())
			case m.Gauge != nil:
				fmt.Fprintf(&b, "%s %g\n", name, m.Gauge.GetValue())
			case m.Histogram != nil:
				fmt.Fprintf(&b, "%s_count %d\n", name, m.Histogram.GetSampleCount())
			}
		}
	}
	return b.String()
}

// Buffer is a bytes.Buffer that goroutines may write concurrently while
// the test reads it, such as a logger's output.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// DeleteRedisKeys deletes the keys matching pattern (a SCAN MATCH pattern)
// on the Redis at addrs (a Cluster with several addresses or cluster set:
// on every master), with a client of its own, since the test may have
// closed its own. It is for cleaning a real server that tests share.
func DeleteRedisKeys(t testing.TB, addrs []string, cluster bool, pattern string) {
	t.Helper()
	ctx := context.Background()
	raw := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs, IsClusterMode: cluster || len(addrs) > 1})
	defer func() { _ = raw.Close() }() // a cleanup connection: nothing to report
	del := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			if err := c.Del(ctx, iter.Val()).Err(); err != nil {
				return err
			}
		}
		return iter.Err()
	}
	var err error
	switch c := raw.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, del)
	case *redis.Client:
		err = del(ctx, c)
	}
	if err != nil {
		t.Errorf("delete the keys %s: %v", pattern, err)
	}
}

// EnvironWithout is the test's environment without the variables whose
// "NAME=VALUE" starts with one of prefixes: what a process the test starts
// must not inherit (serve reads SHRIKE_* as its configuration).
func EnvironWithout(prefixes ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(kv, p) }) {
			env = append(env, kv)
		}
	}
	return env
}
