package e2e

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shrike-cep/shrike/internal/testkit"
)

// TestRedisOutage cuts the engine off from Redis for a while (every
// connection through a proxy dropped, new ones refused) while events keep
// coming: the engine reports not ready with the reason, keeps running and
// retrying, commits no offset to Kafka (no checkpoint can be written), and
// once Redis is reachable again it becomes ready, catches up, commits, and
// every alert arrives.
func TestRedisOutage(t *testing.T) {
	requireTools(t, "redis-server", "kcat")
	_, payments, _ := shipped(t)
	rulesDir := t.TempDir()
	copyFile(t, payments, filepath.Join(rulesDir, "payments.yaml"))
	broker, _ := startBroker(t, "")
	proxy := testkit.StartProxy(t, startRedis(t, false))
	s := startServe(t, serveOptions{Rules: rulesDir, Kafka: broker, Redis: proxy.Addr()})
	s.waitReady(t, 60*time.Second)

	events := genEvents(t, 4000)
	half := len(events) / 2
	p := newProducer(t, broker)
	p.produce(keyed(t, events[:half]))
	waitFor(t, 30*time.Second, "the first half to be processed", func() bool {
		return metricSum(s.metrics(t), "shrike_engine_records_total") >= float64(half)
	})
	// A few checkpoints later the committed offsets are those of the
	// oldest records still waiting for the watermark, and stay there.
	time.Sleep(time.Second)
	before := committed(t, broker, "shrike")
	if sumOffsets(before) == 0 {
		t.Fatalf("no offset committed before the outage: %v", before)
	}

	proxy.SetDown(true)
	t.Log("redis unreachable")
	p.produce(keyed(t, events[half:]))
	waitFor(t, 30*time.Second, "/readyz to report the store failing", func() bool {
		code, _ := s.readyz()
		return code == http.StatusServiceUnavailable
	})
	code, body := s.readyz()
	t.Logf("/readyz during the outage: %d %s", code, body)
	// The engine retries with backoff meanwhile: key loads for the new
	// records and checkpoints alike fail.
	time.Sleep(3 * time.Second)
	if !s.running() {
		t.Fatalf("the engine exited during the outage: %v", s.err)
	}
	if code, body := s.readyz(); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz during the outage = %d %s, want 503", code, body)
	}
	if diff := cmp.Diff(before, committed(t, broker, "shrike")); diff != "" {
		t.Errorf("offsets committed to Kafka while no checkpoint could be written (-before +during):\n%s", diff)
	}
	ms := s.metrics(t)
	if n := metricSum(ms, "shrike_state_store_errors_total"); n < 2 {
		t.Errorf("shrike_state_store_errors_total = %v during the outage, want retries", n)
	}

	proxy.SetDown(false)
	t.Log("redis reachable again")
	s.waitReady(t, 30*time.Second)
	p.flush()
	all := append(append([]string{}, events...), flushEvent(0), flushEvent(1), flushEvent(2))
	want := runAlerts(t, payments, all)
	waitAlerts(t, broker, want, 60*time.Second)
	// Only the flush events, which no watermark passes, are left to re-read.
	waitFor(t, 30*time.Second, "the offsets of every event to be committed", func() bool {
		return sumOffsets(committed(t, broker, "shrike")) == int64(len(events))
	})
	s.exitedCleanly(t)
}

func sumOffsets(m map[int32]int64) int64 {
	var n int64
	for _, o := range m {
		n += o
	}
	return n
}
