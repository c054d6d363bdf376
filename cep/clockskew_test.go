package cep

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shrike-cep/shrike/internal/testkit"
	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
	"github.com/shrike-cep/shrike/state"
)

// poisonTime is the event time of the hostile event: far ahead of any
// wall clock the tests run under.
var poisonTime = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)

// resetsWithPoison is a payments stream for the absence rule
// reset-without-2fa (within 15m): accounts acct-0 … acct-(n-1) reset their
// password a minute apart, the even ones confirm with 2fa five minutes
// later (no alert), the odd ones never do (an alert each). It returns the
// lines in event-time order and, apart, the same lines with one event
// dated 2100 inserted in the middle, for an account of its own.
func resetsWithPoison(n int) (clean, poisoned [][]byte, poisonAt int) {
	type ev struct {
		at   time.Duration
		line string
	}
	var evs []ev
	for i := range n {
		acct := fmt.Sprintf("acct-%d", i)
		at := time.Duration(i) * time.Minute
		evs = append(evs, ev{at, fmt.Sprintf(`{"type":"password_reset","account_id":%q,"ts":%q}`, acct, ts(at))})
		if i%2 == 0 {
			evs = append(evs, ev{at + 5*time.Minute, fmt.Sprintf(`{"type":"2fa_verified","account_id":%q,"ts":%q}`, acct, ts(at+5*time.Minute))})
		}
	}
	// In event-time order (stable: a reset and an earlier confirmation of
	// the same minute keep the order written).
	for i := 1; i < len(evs); i++ {
		for j := i; j > 0 && evs[j].at < evs[j-1].at; j-- {
			evs[j], evs[j-1] = evs[j-1], evs[j]
		}
	}
	poison := fmt.Sprintf(`{"type":"login","account_id":"mallory","success":true,"ts":%q}`, poisonTime.Format(gen3339))
	poisonAt = len(evs) / 3
	for i, e := range evs {
		if i == poisonAt {
			poisoned = append(poisoned, []byte(poison))
		}
		clean = append(clean, []byte(e.line))
		poisoned = append(poisoned, []byte(e.line))
	}
	return clean, poisoned, poisonAt
}

// produceToPartition writes lines to one partition of topic, in order,
// keyed by the ruleset's key expression: an attacker's event shares the
// partition of its victims.
func produceToPartition(t *testing.T, brokers []string, topic string, partition int32, rs *rules.Compiled, lines [][]byte) produced {
	t.Helper()
	return produceKeyed(t, brokers, rs, lines, func(r *kgo.Record) { r.Topic, r.Partition = topic, partition },
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
}

// TestEngineFutureEventDeadLettered feeds a partition password resets
// with one event dated 2100 among them. Taken, that event would move the
// partition's watermark to 2100: every open 15-minute window would close
// at once (false absence alerts for the accounts that confirm with 2fa
// later) and every later event would be late (the alerts of the later
// resets lost). The engine must dead-letter it with a reason that names
// the times and the bound, count it, and give exactly the alerts of the
// stream without it.
func TestEngineFutureEventDeadLettered(t *testing.T) {
	brokers := cluster(t, "payments")
	rs := loadPayments(t)
	clock := newFakeClock() // a day after the events
	wall := clock.Now()
	log := newAlertLog()
	reg := prometheus.NewRegistry()
	e := start(t, EngineOptions{
		Brokers: brokers, Rulesets: []*rules.Compiled{rs}, Store: state.NewMemory(),
		Clock: clock.Now, OnAlert: log.add, Registerer: reg,
	})
	testkit.WaitFor(t, 0, "the engine to be ready", e.Ready)

	clean, poisoned, poisonAt := resetsWithPoison(24)
	prod := produceToPartition(t, brokers, "payments", 1, rs, poisoned)
	// The positions of the good events, for the alerts of a replay of the
	// stream without the poison.
	good := produced{end: prod.end, pos: append(append([]matcher.Position(nil), prod.pos[:poisonAt]...), prod.pos[poisonAt+1:]...)}
	want := replayAlerts(t, rs, clean, good)

	testkit.WaitFor(t, 0, "every record to be processed", func() bool { return consumed(prod, e) })
	closeWindows(t, clock, prod, e)
	// Bounded, and not fatal: when alerts are missing, the diff below
	// says which.
	for deadline := time.Now().Add(10 * time.Second); log.count() < len(want) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	e.stop(t)
	log.check(t, want)

	dead := readTopic(t, brokers, DefaultDeadLetterTopic)
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want the future event only", len(dead))
	}
	if !bytes.Equal(dead[0].Value, poisoned[poisonAt]) || string(dead[0].Key) != "mallory" {
		t.Errorf("dead letter %s=%s, want mallory=%s", dead[0].Key, dead[0].Value, poisoned[poisonAt])
	}
	var reason string
	for _, h := range dead[0].Headers {
		if h.Key == ReasonHeader {
			reason = string(h.Value)
		}
	}
	wantReason := fmt.Sprintf(`clock skew: event time 2100-01-01T00:00:00Z is ahead of the wall clock %s by more than max_clock_skew 5m0s (ruleset "payments", topic "payments")`,
		wall.UTC().Format(time.RFC3339Nano))
	if reason != wantReason {
		t.Errorf("reason:\n got %s\nwant %s", reason, wantReason)
	}
	text := testkit.MetricsText(t, reg)
	for _, m := range []string{
		`shrike_engine_deadlettered_events_total{reason="clock_skew",topic="payments"} 1`,
		`shrike_engine_late_events_total{topic="payments"} 0`,
	} {
		if !strings.Contains(text, m+"\n") {
			t.Errorf("metrics lack %s", m)
		}
	}
}

// TestEngineClockSkewBound checks which bound a stream gets: a ruleset's
// own, else the engine's, the tightest of the rulesets of a stream, and
// none once every ruleset turns it off.
func TestEngineClockSkewBound(t *testing.T) {
	withSkew := func(name string, d time.Duration) *rules.Compiled {
		return &rules.Compiled{Ruleset: &rules.Ruleset{Name: name, Stream: rules.Stream{MaxClockSkew: d}}}
	}
	for _, tt := range []struct {
		name string
		skew []time.Duration // one ruleset each
		def  time.Duration
		want time.Duration
	}{
		{"default", []time.Duration{0}, DefaultMaxClockSkew, DefaultMaxClockSkew},
		{"own", []time.Duration{time.Hour}, DefaultMaxClockSkew, time.Hour},
		{"tightest", []time.Duration{time.Hour, 0, 2 * time.Minute}, DefaultMaxClockSkew, 2 * time.Minute},
		{"one off", []time.Duration{rules.NoMaxClockSkew, 0}, DefaultMaxClockSkew, DefaultMaxClockSkew},
		{"all off", []time.Duration{rules.NoMaxClockSkew}, DefaultMaxClockSkew, 0},
		{"engine off", []time.Duration{0}, -1, 0},
		{"engine off, own", []time.Duration{0, time.Hour}, -1, time.Hour},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &stream{}
			for i, d := range tt.skew {
				s.rulesets = append(s.rulesets, withSkew(fmt.Sprint("r", i), d))
			}
			if got := maxClockSkew(s, tt.def); got != tt.want {
				t.Errorf("maxClockSkew = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestReplayFutureEvent replays the poisoned stream: without a bound the
// event dated 2100 costs alerts and makes false ones (the attack), with
// MaxClockSkew it is dead-lettered with its reason and the alerts are
// those of the stream without it. An event dated 2100 as the very first
// line has no watermark to be compared with and is taken.
func TestReplayFutureEvent(t *testing.T) {
	rs := loadPayments(t)
	clean, poisoned, poisonAt := resetsWithPoison(24)
	run := func(lines [][]byte, skew time.Duration) ([]string, Summary, []string) {
		t.Helper()
		var alerts, dead []string
		sum, err := Replay(context.Background(), ReplayOptions{
			Rulesets:     []*rules.Compiled{rs},
			Inputs:       []Input{{Name: "events.jsonl", R: bytes.NewReader(append(bytes.Join(lines, []byte("\n")), '\n'))}},
			MaxClockSkew: skew,
			OnAlert: func(a *matcher.Alert) {
				alerts = append(alerts, fmt.Sprintf("%s %s timeout=%v", a.Rule, a.Key, a.Timeout))
			},
			OnDeadLetter: func(_ string, line int64, reason error) {
				if !errors.Is(reason, ErrClockSkew) {
					t.Errorf("line %d dead-lettered for %v", line, reason)
				}
				dead = append(dead, fmt.Sprintf("%d: %v", line, reason))
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		return sorted(alerts), sum, dead
	}
	want, _, _ := run(clean, 0)
	if len(want) == 0 {
		t.Fatal("no alert from the clean stream: the fixture tests nothing")
	}

	attacked, sum, _ := run(poisoned, 0)
	if cmp.Equal(want, attacked) || sum.Late == 0 {
		t.Fatalf("without a bound the poisoned replay gave the clean alerts (late %d): the fixture shows no attack", sum.Late)
	}

	got, sum, dead := run(poisoned, time.Hour)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("alerts with max clock skew 1h (-clean +poisoned):\n%s", diff)
	}
	wantDead := []string{fmt.Sprintf(`%d: clock skew: event time 2100-01-01T00:00:00Z is ahead of the watermark `, poisonAt+1)}
	if len(dead) != 1 || !strings.HasPrefix(dead[0], wantDead[0]) ||
		!strings.HasSuffix(dead[0], ` by more than max_clock_skew 1h0m0s (ruleset "payments", topic "payments")`) {
		t.Errorf("dead letters %q, want one starting %q", dead, wantDead[0])
	}
	if sum.DeadLettered != 1 || sum.TooFarAhead != 1 || sum.Late != 0 || sum.Events != uint64(len(clean)) {
		t.Errorf("summary: %d dead-lettered, %d too far ahead, %d late, %d events; want 1, 1, 0, %d",
			sum.DeadLettered, sum.TooFarAhead, sum.Late, sum.Events, len(clean))
	}

	first := append([][]byte{poisoned[poisonAt]}, clean...)
	_, sum, dead = run(first, time.Hour)
	if sum.TooFarAhead != 0 || len(dead) != 0 {
		t.Errorf("a first event dated 2100 was refused (%q): there is no watermark to compare it with", dead)
	}
}
