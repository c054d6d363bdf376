package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shrike-cep/shrike/internal/testkit"
)

// The exactly-once tests: two `shrike serve` instances in one group, with
// kafka.exactly_once on, the helper broker in a process of its own and a
// redis-server, killed (SIGKILL) or stopped (SIGSTOP) at each point of the
// checkpoint barrier by the test points compiled in with testHooksTag, and
// at random times. A consumer reading the alerts topic with
// isolation.level=read_committed must then read every alert `shrike run`
// finds on the same events exactly once.

// Environment of the test points (cep/testpoints_hooks.go): the process
// kills itself with SIGKILL, or stops itself with SIGSTOP, the n-th time it
// reaches the point ("staged:2").
const (
	crashAtEnv = "SHRIKE_TEST_CRASH_AT"
	pauseAtEnv = "SHRIKE_TEST_PAUSE_AT"
)

// testPoints are the points of a checkpoint barrier, in order: outputs
// produced into the open transaction (work); the partitions' checkpoints
// staged in Redis (staged); the transaction's offsets and their tags sent
// (txn-offsets); EndTxn sent, its answer not read (endtxn-sent); the
// transaction committed, the staged checkpoints not yet promoted
// (committed); promoted (promoted). See docs/design.md#exactly-once-outputs.
var testPoints = []string{"work", "staged", "txn-offsets", "endtxn-sent", "committed", "promoted"}

// Timing of the exactly-once runs: a checkpoint (and transaction) every
// 500 ms, a killed instance's transaction aborted by the broker after 3 s,
// its partitions moved after 6 s (the least session timeout Kafka allows).
const (
	eosInterval       = 500 * time.Millisecond
	eosTxnTimeout     = 3 * time.Second
	eosSessionTimeout = 6 * time.Second
)

// eosKafka is the kafka section's extra YAML of an exactly-once instance.
func eosKafka(transactionalID string) string {
	return fmt.Sprintf("  exactly_once: true\n  transactional_id: %q\n  transaction_timeout: %s\n  session_timeout: %s\n",
		transactionalID, eosTxnTimeout, eosSessionTimeout)
}

// eosPair is two `shrike serve` instances, A and B, in one group with
// distinct transactional ids, which a test kills and restarts. Their
// processes belong to the test that created the pair (t), not to a
// subtest, so that they outlive it.
type eosPair struct {
	t      *testing.T
	opts   serveOptions
	names  [2]string
	inst   [2]*serve
	starts [2]int
	// kills counts the instances that died by SIGKILL: by a test point
	// (selfKills) or by the test.
	kills, selfKills int
}

func newEOSPair(t *testing.T, opts serveOptions) *eosPair {
	return &eosPair{t: t, opts: opts, names: [2]string{"a", "b"}}
}

// start (re)starts instance i with env added to its environment; it
// keeps its transactional id across restarts, as a deployment does.
func (p *eosPair) start(i int, env ...string) {
	p.t.Helper()
	// A port picked free may be taken by another process before serve
	// binds it (an outgoing connection's ephemeral port): such a start is
	// tried again, as it says nothing about the engine.
	for attempt := 1; ; attempt++ {
		p.starts[i]++
		o := p.opts
		o.LogName = fmt.Sprintf("engine %s run %d", p.names[i], p.starts[i])
		o.KafkaExtra = eosKafka("shrike-e2e-" + p.names[i])
		o.Env = env
		s := startServe(p.t, o)
		p.inst[i] = s
		poll(10*time.Second, 20*time.Millisecond, func() bool {
			return !s.running() || strings.Contains(s.log(), "engine started")
		})
		if s.running() || attempt == 3 || !strings.Contains(s.log(), "address already in use") {
			return
		}
		p.t.Logf("%s could not bind a port picked free: started again", o.LogName)
	}
}

// killedBySignal reports whether s exited by SIGKILL; when the test did
// not send it, a test point did.
func killedBySignal(s *serve) bool {
	if s.running() {
		return false
	}
	var ee *exec.ExitError
	if !errors.As(s.err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// awaitSelfKill waits until deadline for instance i to kill itself at
// point. When it does not (a binary without the test points, or a point
// never reached), the test fails and the instance is killed now instead,
// so that the run goes on and still reports what it finds.
func (p *eosPair) awaitSelfKill(t *testing.T, i int, point string, deadline time.Time) {
	t.Helper()
	s := p.inst[i]
	poll(time.Until(deadline), 50*time.Millisecond, func() bool { return !s.running() })
	p.kills++
	if killedBySignal(s) {
		p.selfKills++
		t.Logf("%s killed itself at %s", s.name, point)
		return
	}
	if !s.running() {
		t.Errorf("%s exited with %v, want a SIGKILL at %s", s.name, s.err, point)
		return
	}
	t.Errorf("%s did not kill itself at %s within its time (built without -tags %s?): killed by the test",
		s.name, point, testHooksTag)
	s.kill()
}

// isStopped reports whether the process is stopped (SIGSTOP), from the
// state field of /proc/PID/stat.
func isStopped(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state …: comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && (s[i+2] == 'T' || s[i+2] == 't')
}

// committedEnds waits until no transaction is open on topic (every
// partition's last stable offset equals its high watermark: the killed
// instances' transactions were aborted by the broker's timeout, the live
// ones' ended) and returns the high watermarks by partition.
func committedEnds(t *testing.T, broker, topic string, timeout time.Duration) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var hwm, lso map[int32]int64
	list := func(f func(context.Context, ...string) (kadm.ListedOffsets, error)) map[int32]int64 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		l, err := f(ctx, topic)
		if err != nil {
			t.Fatalf("list offsets of %s: %v", topic, err)
		}
		out := map[int32]int64{}
		l.Each(func(o kadm.ListedOffset) {
			if o.Err != nil {
				t.Fatalf("list offsets of %s/%d: %v", topic, o.Partition, o.Err)
			}
			out[o.Partition] = o.Offset
		})
		return out
	}
	if !poll(timeout, 200*time.Millisecond, func() bool {
		hwm, lso = list(adm.ListEndOffsets), list(adm.ListCommittedOffsets)
		for p, end := range hwm {
			if lso[p] != end {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("a transaction still open on %s after %v: high watermarks %v, last stable offsets %v", topic, timeout, hwm, lso)
	}
	return hwm
}

// alertCount is the alerts read from the alerts topic by one reader:
// canonical form → records, and the ids seen for each.
type alertCount struct {
	reader  string
	counts  map[string]int
	ids     map[string]map[string]bool
	records int
}

func newAlertCount(reader string) *alertCount {
	return &alertCount{reader: reader, counts: map[string]int{}, ids: map[string]map[string]bool{}}
}

func (a *alertCount) add(t *testing.T, key, value []byte) {
	t.Helper()
	c, id := canonAlert(t, value)
	if string(key) != id {
		t.Errorf("%s: alert record keyed %q, its id is %q", a.reader, key, id)
	}
	a.records++
	a.counts[c]++
	if a.ids[c] == nil {
		a.ids[c] = map[string]bool{}
	}
	a.ids[c][id] = true
}

// duplicates is the records beyond the first of each alert.
func (a *alertCount) duplicates() int { return a.records - len(a.counts) }

// check compares the alerts with want, `shrike run`'s: each must be
// there, exactly once when once, at least once otherwise; none other; one
// id per alert. It logs the counts.
func (a *alertCount) check(t *testing.T, want []string, once bool) {
	t.Helper()
	wanted := map[string]bool{}
	var missing, dups int
	for _, w := range want {
		wanted[w] = true
		switch n := a.counts[w]; {
		case n == 0:
			missing++
			if missing <= 5 {
				t.Errorf("%s: missing: %s", a.reader, w)
			}
		case n > 1 && once:
			dups++
			if dups <= 5 {
				t.Errorf("%s: read %d times: %s", a.reader, n, w)
			}
		}
	}
	var unexpected int
	for c, n := range a.counts {
		if !wanted[c] {
			unexpected++
			if unexpected <= 5 {
				t.Errorf("%s: unexpected (%d records): %s", a.reader, n, c)
			}
		}
	}
	for c, ids := range a.ids {
		if len(ids) > 1 {
			t.Errorf("%s: one alert under %d ids: %s", a.reader, len(ids), c)
		}
	}
	if missing > 0 || unexpected > 0 || (once && dups > 0) {
		t.Errorf("%s: %d of %d expected alerts missing, %d read more than once (%d duplicate records), %d unexpected",
			a.reader, missing, len(want), dups, a.duplicates(), unexpected)
	}
	t.Logf("%s: %d records, %d distinct alerts of %d expected, %d duplicate records, %d missing, %d unexpected",
		a.reader, a.records, len(a.counts), len(want), a.duplicates(), missing, unexpected)
}

// franzAlerts reads the alerts topic from the start to ends (committedEnds)
// with a franz-go consumer at isolation level read_committed. It keeps
// the control records (transaction markers) to know where it is: the last
// offset of a partition is often one.
func franzAlerts(t *testing.T, broker string, ends map[int32]int64) *alertCount {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(broker),
		kgo.ConsumeTopics(alertsTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	a := newAlertCount("franz-go read_committed")
	next := map[int32]int64{}
	done := func() bool {
		for p, end := range ends {
			if next[p] < end {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(60 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: read up to %v of %v after 60 s", a.reader, next, ends)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%s: fetch %s/%d: %v", a.reader, topic, p, err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			next[r.Partition] = r.Offset + 1
			if !r.Attrs.IsControl() {
				a.add(t, r.Key, r.Value)
			}
		})
	}
	return a
}

// kcatAlerts reads the alerts topic to its end with kcat at the isolation
// level given.
func kcatAlerts(t *testing.T, broker, isolation string) *alertCount {
	t.Helper()
	a := newAlertCount("kcat " + isolation)
	for _, r := range kcatConsume(t, broker, alertsTopic, "-X", "isolation.level="+isolation) {
		if r.Payload == nil {
			t.Errorf("%s: alert record %d@%d without value", a.reader, r.Partition, r.Offset)
			continue
		}
		var key []byte
		if r.Key != nil {
			key = []byte(*r.Key)
		}
		a.add(t, key, []byte(*r.Payload))
	}
	return a
}

// finishAndCheck feeds the rest of events at once, then a flush event
// per partition to close every window, and checks that the alerts topic
// holds exactly `shrike run`'s alerts over the same events
// (checkExactlyOnce).
func finishAndCheck(t *testing.T, f *feeder, p *producer, events []string, broker, payments string, running ...*serve) {
	t.Helper()
	f.hurry.Store(true)
	f.wait(t)
	p.flush()
	all := events
	for part := range partitions {
		all = append(all, flushEvent(part))
	}
	checkExactlyOnce(t, broker, runAlerts(t, payments, all), running...)
}

// checkExactlyOnce waits for every wanted alert to be committed, stops the
// running instances cleanly, waits for every transaction on the alerts
// topic to end, then reads the topic three ways: read_committed with
// franz-go and with kcat (each alert exactly once), and read_uncommitted
// with kcat (each at least once, aborted copies included).
func checkExactlyOnce(t *testing.T, broker string, want []string, running ...*serve) {
	t.Helper()
	if !poll(90*time.Second, 500*time.Millisecond, func() bool { return readAlerts(t, broker).hasAll(want) }) {
		t.Error("not every alert was committed within 90 s (the counts below say which are missing)")
	}
	for _, s := range running {
		if s.running() {
			s.exitedCleanly(t)
		}
	}
	ends := committedEnds(t, broker, alertsTopic, 3*eosTxnTimeout)
	franzAlerts(t, broker, ends).check(t, want, true)
	kcatAlerts(t, broker, "read_committed").check(t, want, true)
	kcatAlerts(t, broker, "read_uncommitted").check(t, want, false)
}

// TestCrashRecoveryExactlyOnce is TestCrashRecovery with exactly-once
// outputs and two instances in one group: while the payments stream is
// fed, each instance kills itself (SIGKILL) at each test point of the
// checkpoint barrier in turn and is restarted (12 kills), then three
// rounds kill a random instance at a random moment three times each (9
// kills). Every alert `shrike run` finds on the same events must then be
// read exactly once by read_committed consumers (franz-go and kcat), and
// at least once, with one id, by a read_uncommitted one.
func TestCrashRecoveryExactlyOnce(t *testing.T) {
	requireTools(t, "redis-server", "kcat")
	_, payments, _ := shipped(t)
	rulesDir := t.TempDir()
	copyFile(t, payments, filepath.Join(rulesDir, "payments.yaml"))
	broker, _ := startBroker(t, t.TempDir())
	redisAddr := startRedis(t, true)
	pair := newEOSPair(t, serveOptions{Rules: rulesDir, Kafka: broker, Redis: redisAddr, CheckpointInterval: eosInterval})

	// More events than the kills take to feed at this pace (about 300 a
	// second); once they are done the rest is fed at once.
	const n = 60000
	events := genEvents(t, n)
	p := newProducer(t, broker)

	// Instance a dies the 2nd time it reaches a point, b the 3rd: they die
	// at different moments, each while the other runs (or rebalances).
	crashEnv := func(i int, point string) string { return fmt.Sprintf("%s=%s:%d", crashAtEnv, point, 2+i) }
	for i := range 2 {
		pair.start(i, crashEnv(i, testPoints[0]))
	}
	pair.inst[0].waitReady(t, 60*time.Second)
	f := startFeeder(t, p, keyed(t, events), []int{n}, 30, 100*time.Millisecond)

	for k, point := range testPoints {
		t.Run(point, func(t *testing.T) {
			// Time for a restarted instance to get its partitions back
			// (the killed member's session to expire, a transaction it
			// left open to time out), restore and reach the point; a
			// loaded machine takes 20 s and more.
			deadline := time.Now().Add(45 * time.Second)
			for i := range 2 {
				pair.awaitSelfKill(t, i, point, deadline)
				if k+1 < len(testPoints) {
					pair.start(i, crashEnv(i, testPoints[k+1]))
				} else {
					pair.start(i)
				}
			}
		})
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("random kills with seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	for round := 1; round <= 3; round++ {
		t.Run(fmt.Sprintf("random-%d", round), func(t *testing.T) {
			for range 3 {
				// The victim is killed while it works: once it holds
				// partitions and emits alerts, at a random moment.
				i := rng.IntN(2)
				s := pair.inst[i]
				s.waitReady(t, 60*time.Second)
				before := metricSum(s.metrics(t), "shrike_engine_alerts_total")
				waitFor(t, 30*time.Second, s.name+" to emit an alert", func() bool {
					return metricSum(s.metrics(t), "shrike_engine_alerts_total") > before
				})
				time.Sleep(time.Duration(rng.Int64N(int64(1500 * time.Millisecond))))
				if !s.running() {
					t.Errorf("%s exited by itself: %v", s.name, s.err)
					pair.start(i)
					continue
				}
				t.Logf("kill -9 %s with %d of %d events fed", s.name, f.sent.Load(), n)
				s.kill()
				pair.kills++
				pair.start(i)
			}
		})
	}
	t.Logf("%d kills (%d by a test point) with %d of %d events fed", pair.kills, pair.selfKills, f.sent.Load(), n)
	if pair.kills < 21 {
		t.Errorf("%d kills, want at least 21", pair.kills)
	}
	if f.sent.Load() >= n {
		t.Error("every event was fed before the kills were over: the last kills were not mid-stream")
	}

	finishAndCheck(t, f, p, events, broker, payments, pair.inst[0], pair.inst[1])
}

// fencedLog is what a zombie instance's log says when its transaction or
// checkpoint is refused: fenced by a newer owner, or its transaction
// aborted.
var fencedLog = regexp.MustCompile(`(?i)fenced|abort`)

// TestZombieFenced stops instance a (SIGSTOP) in the middle of a
// checkpoint barrier, its checkpoints staged in Redis and its transaction
// open, until instance b has taken its partitions (a's session expired);
// then resumes it (SIGCONT). The zombie must not commit: it is fenced (it
// logs so, or exits), every alert is read exactly once by read_committed
// consumers, and Redis holds a checkpoint for every partition and no staged
// one left behind.
func TestZombieFenced(t *testing.T) {
	requireTools(t, "redis-server", "redis-cli", "kcat")
	_, payments, _ := shipped(t)
	rulesDir := t.TempDir()
	copyFile(t, payments, filepath.Join(rulesDir, "payments.yaml"))
	broker, _ := startBroker(t, "")
	redisAddr := startRedis(t, false)
	pair := newEOSPair(t, serveOptions{Rules: rulesDir, Kafka: broker, Redis: redisAddr, CheckpointInterval: eosInterval})

	const n = 20000
	events := genEvents(t, n)
	p := newProducer(t, broker)
	pair.start(0, pauseAtEnv+"=staged:3")
	a := pair.inst[0]
	a.waitReady(t, 60*time.Second)
	f := startFeeder(t, p, keyed(t, events), []int{n}, 30, 100*time.Millisecond)

	pid := a.cmd.Process.Pid
	if !poll(30*time.Second, 50*time.Millisecond, func() bool { return isStopped(pid) || !a.running() }) {
		t.Errorf("%s did not stop itself at staged within 30 s (built without -tags %s?): stopped by the test after an alert",
			a.name, testHooksTag)
		before := metricSum(a.metrics(t), "shrike_engine_alerts_total")
		waitFor(t, 30*time.Second, a.name+" to emit an alert", func() bool {
			return metricSum(a.metrics(t), "shrike_engine_alerts_total") > before
		})
		if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, a.name+" to stop", func() bool { return isStopped(pid) })
	}
	if !a.running() {
		t.Fatalf("%s exited instead of stopping: %v", a.name, a.err)
	}
	stoppedAt := f.sent.Load()
	t.Logf("%s stopped with %d of %d events fed", a.name, stoppedAt, n)

	// b gets every partition once a's session expires, and works on.
	pair.start(1)
	b := pair.inst[1]
	b.waitReady(t, 60*time.Second)
	waitFor(t, 60*time.Second, b.name+" to process records fed after a stopped", func() bool {
		return metricSum(b.metrics(t), "shrike_engine_records_total") > 600
	})

	logBefore := len(a.log())
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s resumed with %d of %d events fed", a.name, f.sent.Load(), n)
	if !poll(30*time.Second, 100*time.Millisecond, func() bool {
		return !a.running() || fencedLog.MatchString(a.log()[logBefore:])
	}) {
		t.Errorf("%s, resumed after its partitions moved, neither exited nor logged being fenced or aborting within 30 s", a.name)
	}
	if a.running() {
		t.Logf("%s after SIGCONT: %q", a.name, fencedLog.FindString(a.log()[logBefore:]))
	} else {
		t.Logf("%s exited after SIGCONT: %v", a.name, a.err)
	}
	if f.sent.Load() >= n {
		t.Error("every event was fed before the zombie resumed: not mid-stream")
	}

	finishAndCheck(t, f, p, events, broker, payments, b, a)

	// Both stopped: every partition has its checkpoint, and no staged one
	// is left that a later owner would have to resolve.
	cps, pends := redisKeys(t, redisAddr, "shrike:*:cp"), redisKeys(t, redisAddr, "shrike:*:pend")
	t.Logf("redis: checkpoints %v, staged %v", cps, pends)
	var payCPs int
	for _, k := range cps {
		if strings.Contains(k, "/"+paymentsTopic+"/") {
			payCPs++
		}
	}
	if payCPs != partitions {
		t.Errorf("redis holds %d checkpoints of %s, want %d: %v", payCPs, paymentsTopic, partitions, cps)
	}
	if len(pends) != 0 {
		t.Errorf("staged checkpoints left in redis after a clean shutdown: %v", pends)
	}
}

// redisKeys lists the keys matching pattern with redis-cli --scan.
func redisKeys(t *testing.T, addr, pattern string) []string {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "redis-cli", "-h", host, "-p", port, "--scan", "--pattern", pattern).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --scan --pattern %s: %v\n%s", pattern, err, out)
	}
	keys := strings.Fields(string(out))
	sort.Strings(keys)
	return keys
}

// TestRedisOutageExactlyOnce cuts an exactly-once instance off from Redis
// for 20 s while events flow: no checkpoint can be staged, so the
// transactions of the outage abort and their work is redone once Redis is
// back. Afterwards every alert is read exactly once by read_committed
// consumers, and at least once by a read_uncommitted one (which also sees
// the aborted copies, with the same ids).
func TestRedisOutageExactlyOnce(t *testing.T) {
	requireTools(t, "redis-server", "kcat")
	_, payments, _ := shipped(t)
	rulesDir := t.TempDir()
	copyFile(t, payments, filepath.Join(rulesDir, "payments.yaml"))
	broker, _ := startBroker(t, "")
	proxy := testkit.StartProxy(t, startRedis(t, false))
	s := startServe(t, serveOptions{
		Rules: rulesDir, Kafka: broker, Redis: proxy.Addr(), CheckpointInterval: eosInterval,
		KafkaExtra: eosKafka("shrike-e2e-a"), LogName: "engine a",
	})
	s.waitReady(t, 60*time.Second)

	const n = 15000
	events := genEvents(t, n)
	p := newProducer(t, broker)
	f := startFeeder(t, p, keyed(t, events), []int{n}, 30, 100*time.Millisecond)
	waitFor(t, 60*time.Second, "a fifth of the events to be fed", func() bool { return f.sent.Load() >= n/5 })
	before := metricSum(s.metrics(t), "shrike_engine_alerts_total")
	waitFor(t, 30*time.Second, s.name+" to emit an alert", func() bool {
		return metricSum(s.metrics(t), "shrike_engine_alerts_total") > before
	})

	proxy.SetDown(true)
	cut := time.Now()
	t.Logf("redis unreachable with %d of %d events fed", f.sent.Load(), n)
	waitFor(t, 30*time.Second, "/readyz to report the store failing", func() bool {
		code, _ := s.readyz()
		return code == http.StatusServiceUnavailable
	})
	time.Sleep(time.Until(cut.Add(20 * time.Second)))
	if !s.running() {
		t.Fatalf("the engine exited during the outage: %v", s.err)
	}
	proxy.SetDown(false)
	t.Logf("redis reachable again with %d of %d events fed", f.sent.Load(), n)
	if f.sent.Load() >= n {
		t.Error("every event was fed before redis came back: not mid-stream")
	}
	s.waitReady(t, 60*time.Second)

	finishAndCheck(t, f, p, events, broker, payments, s)
}
