package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestScaleOut runs two instances in one consumer group: they split the
// topic's partitions and both process events; then one shuts down mid-stream
// and the other takes its partitions over, restoring their state from
// Redis. The alerts are still `shrike run`'s. State goes to the Redis
// Cluster named by SHRIKE_REDIS_CLUSTER when set (as in CI), else to a
// redis-server of the test's own.
func TestScaleOut(t *testing.T) {
	requireTools(t, "redis-server", "kcat")
	_, payments, _ := shipped(t)
	rulesDir := t.TempDir()
	copyFile(t, payments, filepath.Join(rulesDir, "payments.yaml"))
	broker, _ := startBroker(t, "")
	redisAddrs := os.Getenv("SHRIKE_REDIS_CLUSTER")
	// A group and key prefix of this run's own: a shared Cluster may hold
	// other runs' state, which is kept per group and prefix.
	suffix := randSuffix(t)
	group := "e2e-scale-" + suffix
	if redisAddrs == "" {
		redisAddrs = startRedis(t, false)
	} else {
		t.Logf("state in the Redis Cluster at %s", redisAddrs)
		t.Cleanup(func() { deleteKeys(t, strings.Split(redisAddrs, ","), "shrike-e2e-"+suffix+":*") })
	}
	opts := serveOptions{Rules: rulesDir, Kafka: broker, Redis: redisAddrs, Group: group, KeyPrefix: "shrike-e2e-" + suffix}
	opts.LogName = "instance A"
	a := startServe(t, opts)
	opts.LogName = "instance B"
	b := startServe(t, opts)
	a.waitReady(t, 60*time.Second)
	b.waitReady(t, 60*time.Second)
	waitFor(t, 30*time.Second, "the partitions to be split between the instances", func() bool {
		na := metricSum(a.metrics(t), "shrike_engine_assigned_partitions")
		nb := metricSum(b.metrics(t), "shrike_engine_assigned_partitions")
		return na >= 1 && nb >= 1 && na+nb == partitions
	})

	events := genEvents(t, 4000)
	half := len(events) / 2
	p := newProducer(t, broker)
	p.produce(keyed(t, events[:half]))
	waitFor(t, 30*time.Second, "the first half to be processed", func() bool {
		ra := metricSum(a.metrics(t), "shrike_engine_records_total")
		rb := metricSum(b.metrics(t), "shrike_engine_records_total")
		return ra+rb >= float64(half)
	})
	ra := metricSum(a.metrics(t), "shrike_engine_records_total")
	rb := metricSum(b.metrics(t), "shrike_engine_records_total")
	t.Logf("first half: instance A processed %v records, B %v", ra, rb)
	if ra == 0 || rb == 0 {
		t.Errorf("instance A processed %v records and B %v: both have partitions, both must work", ra, rb)
	}

	// B leaves: its partitions move to A, with their state and offsets.
	b.exitedCleanly(t)
	waitFor(t, 30*time.Second, "instance A to own every partition", func() bool {
		return metricSum(a.metrics(t), "shrike_engine_assigned_partitions") == partitions
	})
	a.waitReady(t, 30*time.Second)
	p.produce(keyed(t, events[half:]))
	p.flush()
	all := append(append([]string{}, events...), flushEvent(0), flushEvent(1), flushEvent(2))
	want := runAlerts(t, payments, all)
	waitAlerts(t, broker, want, 60*time.Second)
	a.exitedCleanly(t)
}

// deleteKeys deletes the keys matching pattern from every master of a
// Redis Cluster.
func deleteKeys(t *testing.T, seeds []string, pattern string) {
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: seeds})
	defer func() {
		if err := c.Close(); err != nil {
			t.Errorf("close the cluster client: %v", err)
		}
	}()
	ctx := context.Background()
	err := c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		iter := m.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			if err := m.Del(ctx, iter.Val()).Err(); err != nil {
				return err
			}
		}
		return iter.Err()
	})
	if err != nil {
		t.Errorf("delete %s from the Redis Cluster: %v", pattern, err)
	}
}

func randSuffix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
