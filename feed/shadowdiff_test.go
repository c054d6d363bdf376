package feed

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
)

// shadowAlertJSON is the alert of rule for the transfer of amount by key,
// as the live or the shadow version writes it.
func shadowAlertJSON(t *testing.T, ruleset, rule, key string, amount int, shadow bool) []byte {
	t.Helper()
	ev, err := rules.ParseEvent(fmt.Appendf(nil, `{"account_id":%q,"amount":%d}`, key, amount))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	a := &matcher.Alert{
		ID: fmt.Sprintf("%s-%d-%v", key, amount, shadow), Ruleset: ruleset, Rule: rule, RuleVersion: "v1", Severity: "high",
		Key: key, Start: at, End: at, DetectedAt: at, Shadow: shadow,
		Steps: []matcher.StepRecords{{Step: "event", Records: []*matcher.Record{{Event: ev}}}},
	}
	return a.AppendJSON(nil)
}

// TestShadowDiff compares the alerts of the two topics since a time: what
// came before is left out, as are other rulesets and the records of an
// aborted transaction; the rest is told apart by rule, key and events.
func TestShadowDiff(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "live", "shadow"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID("shadow-diff-test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx := context.Background()
	type alert struct {
		topic, ruleset, key string
		amount              int
	}
	write := func(at time.Time, commit bool, as ...alert) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			r := &kgo.Record{
				Topic: a.topic, Timestamp: at, Key: []byte(a.key),
				Value: shadowAlertJSON(t, a.ruleset, "big", a.key, a.amount, a.topic == "shadow"),
			}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	since := time.Now().Truncate(time.Millisecond)
	write(since.Add(-time.Minute), true, alert{"live", "payments", "k0", 1}, alert{"shadow", "payments", "k0", 1})
	write(since.Add(time.Second), true,
		alert{"live", "payments", "k1", 20000}, alert{"shadow", "payments", "k1", 20000},
		alert{"live", "payments", "k2", 15000}, alert{"live", "payments", "k3", 12000},
		alert{"live", "other", "k4", 99}, alert{"shadow", "payments", "k5", 30000})
	write(since.Add(2*time.Second), false, alert{"shadow", "payments", "k2", 15000})

	d, err := NewShadowDiffer(ShadowDiffOptions{Brokers: brokers, AlertsTopic: "live", ShadowAlertsTopic: "shadow", ReadCommitted: true})
	if err != nil {
		t.Fatal(err)
	}
	diff, err := d.ShadowDiff(ctx, "payments", since, 5)
	if err != nil {
		t.Fatal(err)
	}
	got := diff.Rules()
	if len(got) != 1 || got[0].Rule != "big" || got[0].Both != 1 || got[0].OnlyOld != 2 || got[0].OnlyNew != 1 {
		t.Fatalf("rules %+v: want big with 1 in both, 2 only live (k2, k3), 1 only shadow (k5)", got)
	}
	keys := map[string]bool{}
	for _, a := range got[0].OnlyOldExamples {
		keys[a.Key] = true
	}
	if !keys["k2"] || !keys["k3"] {
		t.Errorf("only-live examples %v: want k2 and k3", keys)
	}

	small, err := NewShadowDiffer(ShadowDiffOptions{Brokers: brokers, AlertsTopic: "live", ShadowAlertsTopic: "shadow", MaxAlerts: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := small.ShadowDiff(ctx, "payments", since, 5); !errors.Is(err, ErrTooManyAlerts) {
		t.Errorf("over the bound: err = %v, want ErrTooManyAlerts", err)
	}
	if _, err := NewShadowDiffer(ShadowDiffOptions{Brokers: brokers, AlertsTopic: "live"}); err == nil {
		t.Error("no shadow alerts topic: no error")
	}
}
