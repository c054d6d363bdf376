//go:build shrike_testhooks

package cep

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// In a binary built with the tag shrike_testhooks, the environment picks
// one call of a test point at which the process kills or stops itself, so
// that the end-to-end crash tests can stop an engine at an exact step of a
// checkpoint barrier rather than at a random time:
//
//	SHRIKE_TEST_CRASH_AT=<point>:<n>  SIGKILL at the n-th call of point
//	SHRIKE_TEST_PAUSE_AT=<point>:<n>  SIGSTOP at the n-th call of point
//	                                  (the test sends SIGCONT later, as to
//	                                  a zombie that comes back)
//
// n counts from 1, per point and per variable, over the whole process.
// Any name works; the engine calls crashPoint with "work" (outputs
// produced into the open transaction), "staged" (the partitions'
// checkpoints are staged in the Store), "committed" (the transaction
// committed, the staged checkpoints are not promoted yet) and "promoted".
// The Kafka client adds, from broker hooks:
//
//	txn-offsets   a TxnOffsetCommit response was read: the tags are in the
//	              open transaction, which is not ended yet
//	endtxn-sent   an EndTxn request was written: the broker may decide
//	              either way, the process will not learn which
//
// Before the signal the process writes a line naming the point to
// stderr, so that a test can check that the point was reached.
// Without the variables nothing happens.

// Environment variables of the test points.
const (
	envCrashAt = "SHRIKE_TEST_CRASH_AT"
	envPauseAt = "SHRIKE_TEST_PAUSE_AT"
)

// Kafka request keys the broker hooks watch.
var (
	keyTxnOffsetCommit = kmsg.TxnOffsetCommit.Int16()
	keyEndTxn          = kmsg.EndTxn.Int16()
)

// signalSelf sends sig to the process; tests replace it.
var signalSelf = func(sig syscall.Signal) error { return syscall.Kill(os.Getpid(), sig) }

// testPointLog receives the line written before the signal.
var testPointLog io.Writer = os.Stderr

func init() {
	if err := setupTestPoints(os.Getenv); err != nil {
		// A crash test that misspells its target must not run as if
		// nothing were asked.
		panic(err)
	}
}

// setupTestPoints installs crashPoint and testKafkaOpts from the
// environment read with getenv.
func setupTestPoints(getenv func(string) string) error {
	var targets []*pointTarget
	for _, v := range []struct {
		env string
		sig syscall.Signal
	}{{envCrashAt, syscall.SIGKILL}, {envPauseAt, syscall.SIGSTOP}} {
		val := getenv(v.env)
		if val == "" {
			continue
		}
		tg, err := parsePointTarget(val)
		if err != nil {
			return fmt.Errorf("%s=%q: %w", v.env, val, err)
		}
		tg.env, tg.sig = v.env, v.sig
		targets = append(targets, tg)
	}
	crashPoint = func(point string) {
		for _, tg := range targets {
			tg.hit(point)
		}
	}
	testKafkaOpts = func() []kgo.Opt { return []kgo.Opt{kgo.WithHooks(brokerPoints{})} }
	return nil
}

// pointTarget is the call that signals: the n-th of point.
type pointTarget struct {
	env   string
	point string
	n     int64
	sig   syscall.Signal
	calls atomic.Int64
}

func parsePointTarget(s string) (*pointTarget, error) {
	point, num, ok := strings.Cut(s, ":")
	if !ok || point == "" {
		return nil, fmt.Errorf("want <point>:<n>")
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 1 {
		return nil, fmt.Errorf("call number %q: want an integer from 1", num)
	}
	return &pointTarget{point: point, n: n}, nil
}

// hit counts a call of point and signals at the target's; the counter
// is atomic as the points are reached from workers, the poll goroutine
// and the Kafka client's connections at once.
func (tg *pointTarget) hit(point string) {
	if point != tg.point || tg.calls.Add(1) != tg.n {
		return
	}
	_, _ = fmt.Fprintf(testPointLog, "shrike test point: %s %s:%d, sending %v to self\n", tg.env, tg.point, tg.n, tg.sig)
	if err := signalSelf(tg.sig); err != nil {
		_, _ = fmt.Fprintf(testPointLog, "shrike test point: send %v: %v\n", tg.sig, err)
	}
}

// brokerPoints reaches the points inside the client's transaction
// commit, which the engine cannot reach: End sends TxnOffsetCommit and
// EndTxn itself.
type brokerPoints struct{}

var (
	_ kgo.HookBrokerRead  = brokerPoints{}
	_ kgo.HookBrokerWrite = brokerPoints{}
)

// OnBrokerRead implements kgo.HookBrokerRead.
func (brokerPoints) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == keyTxnOffsetCommit && err == nil {
		crashPoint("txn-offsets")
	}
}

// OnBrokerWrite implements kgo.HookBrokerWrite.
func (brokerPoints) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == keyEndTxn && err == nil {
		crashPoint("endtxn-sent")
	}
}
