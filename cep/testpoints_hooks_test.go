//go:build shrike_testhooks

package cep

import (
	"bytes"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kgo"
)

// fakeSignals replaces signalSelf and the log for the test, and restores
// them and the test points afterwards. It returns the signals sent so
// far and the log.
func fakeSignals(t *testing.T) (func() []syscall.Signal, *bytes.Buffer) {
	t.Helper()
	oldSignal, oldLog, oldPoint, oldOpts := signalSelf, testPointLog, crashPoint, testKafkaOpts
	t.Cleanup(func() {
		signalSelf, testPointLog, crashPoint, testKafkaOpts = oldSignal, oldLog, oldPoint, oldOpts
	})
	var (
		mu   sync.Mutex
		sent []syscall.Signal
		log  bytes.Buffer
	)
	signalSelf = func(sig syscall.Signal) error {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, sig)
		return nil
	}
	testPointLog = &log
	return func() []syscall.Signal {
		mu.Lock()
		defer mu.Unlock()
		return append([]syscall.Signal(nil), sent...)
	}, &log
}

func pointEnv(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestTestPointsCount(t *testing.T) {
	signals, log := fakeSignals(t)
	if err := setupTestPoints(pointEnv(map[string]string{envCrashAt: "staged:3", envPauseAt: "work:2"})); err != nil {
		t.Fatal(err)
	}
	calls := []struct {
		point string
		want  []syscall.Signal // after the call
	}{
		{"work", nil},
		{"staged", nil},
		{"work", []syscall.Signal{syscall.SIGSTOP}},
		{"staged", []syscall.Signal{syscall.SIGSTOP}},
		{"promoted", []syscall.Signal{syscall.SIGSTOP}},
		{"stage", []syscall.Signal{syscall.SIGSTOP}},
		{"staged", []syscall.Signal{syscall.SIGSTOP, syscall.SIGKILL}},
		{"staged", []syscall.Signal{syscall.SIGSTOP, syscall.SIGKILL}},
		{"work", []syscall.Signal{syscall.SIGSTOP, syscall.SIGKILL}},
	}
	for i, c := range calls {
		crashPoint(c.point)
		if diff := cmp.Diff(c.want, signals()); diff != "" {
			t.Fatalf("after call %d (%s), signals (-want +got):\n%s", i+1, c.point, diff)
		}
	}
	for _, want := range []string{envPauseAt + " work:2", envCrashAt + " staged:3"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log %q does not name %q", log.String(), want)
		}
	}
}

// TestTestPointsConcurrent: of calls from many goroutines at once,
// exactly the n-th signals.
func TestTestPointsConcurrent(t *testing.T) {
	signals, _ := fakeSignals(t)
	if err := setupTestPoints(pointEnv(map[string]string{envCrashAt: "work:250"})); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				crashPoint("work")
			}
		})
	}
	wg.Wait()
	if diff := cmp.Diff([]syscall.Signal{syscall.SIGKILL}, signals()); diff != "" {
		t.Errorf("signals (-want +got):\n%s", diff)
	}
}

func TestTestPointsNone(t *testing.T) {
	signals, _ := fakeSignals(t)
	if err := setupTestPoints(pointEnv(nil)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"work", "staged", "committed", "promoted", "txn-offsets", "endtxn-sent"} {
		crashPoint(p)
	}
	if got := signals(); len(got) != 0 {
		t.Errorf("signals %v without a target", got)
	}
}

func TestTestPointsBadEnv(t *testing.T) {
	for _, val := range []string{"staged", ":2", "staged:", "staged:0", "staged:-1", "staged:x", "staged:2:3"} {
		t.Run(val, func(t *testing.T) {
			fakeSignals(t)
			err := setupTestPoints(pointEnv(map[string]string{envPauseAt: val}))
			if err == nil {
				t.Fatalf("%s=%q accepted", envPauseAt, val)
			}
			if !strings.Contains(err.Error(), envPauseAt) {
				t.Errorf("error %q does not name %s", err, envPauseAt)
			}
		})
	}
}

// TestTestPointsBrokerHooks drives a transaction's offset commit and end
// through a client with testKafkaOpts on kfake: the points fire on the
// TxnOffsetCommit response and the EndTxn request.
func TestTestPointsBrokerHooks(t *testing.T) {
	signals, _ := fakeSignals(t)
	if err := setupTestPoints(pointEnv(map[string]string{envCrashAt: "txn-offsets:1", envPauseAt: "endtxn-sent:1"})); err != nil {
		t.Fatal(err)
	}
	c, plain := oracleCluster(t)
	commitOffsetMeta(t, plain, "g", "payments", 0, 1, "x")
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, testKafkaOpts()...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)

	x := newTxnCommitter(t, cl, "shrike-test-txn", time.Minute)
	if got := signals(); len(got) != 0 {
		t.Fatalf("signals %v before the offset commit", got)
	}
	x.commitOffsets(t, "g", "payments", 0, 5, "y")
	if diff := cmp.Diff([]syscall.Signal{syscall.SIGKILL}, signals()); diff != "" {
		t.Fatalf("after TxnOffsetCommit, signals (-want +got):\n%s", diff)
	}
	x.end(t, true)
	if diff := cmp.Diff([]syscall.Signal{syscall.SIGKILL, syscall.SIGSTOP}, signals()); diff != "" {
		t.Errorf("after EndTxn, signals (-want +got):\n%s", diff)
	}
}
