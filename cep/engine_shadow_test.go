package cep

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	alertfeed "github.com/shrike-cep/shrike/feed"
	"github.com/shrike-cep/shrike/internal/testkit"
	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
	"github.com/shrike-cep/shrike/state"
)

// TestEngineShadowVersion runs a shadow version with a higher threshold
// beside the live ruleset, added by a reload: the live alerts go to the
// alerts topic only, the shadow's to the shadow alerts topic only, marked
// and with ids of their own, and the per-rule metrics tell them apart.
func TestEngineShadowVersion(t *testing.T) {
	brokers := cluster(t, "payments")
	live := loadPayments(t)
	shadow, err := rules.Load("payments.yaml", bytes.Replace(live.Source, []byte("event.amount > 10000.0"), []byte("event.amount > 22000.0"), 1), rules.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	shadow.Shadow = true
	log := newAlertLog()
	reg := prometheus.NewRegistry()
	e := start(t, EngineOptions{
		Brokers: brokers, Rulesets: []*rules.Compiled{live}, Store: state.NewMemory(),
		Clock: newFakeClock().Now, OnAlert: log.add, Registerer: reg,
	})
	testkit.WaitFor(t, 0, "the engine to be ready", e.Ready)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.SetRulesets(ctx, []*rules.Compiled{live, shadow}); err != nil {
		t.Fatal(err)
	}
	transfer := func(at time.Duration, amount float64) *kgo.Record {
		return &kgo.Record{Topic: "payments", Key: []byte("acct-1"), Value: fmt.Appendf(nil,
			`{"type":"transfer","account_id":"acct-1","amount":%.1f,"currency":"EUR","country":"KP","ts":%q}`, amount, ts(at))}
	}
	produceRecords(t, brokers, transfer(0, 20000), transfer(10*time.Second, 25000), transfer(20*time.Second, 5))
	// OnAlert hears of an alert as it is produced; a checkpoint waits for
	// the broker to acknowledge every output first.
	testkit.WaitFor(t, 0, "three alerts, in their topics", func() bool { return log.count() >= 3 && checkpointed(e) })

	amounts := func(topic string, wantShadow bool) []string {
		var got []string
		ids := map[string]bool{}
		for _, r := range readTopic(t, brokers, topic) {
			a, err := alertfeed.ParseAlert(r.Value)
			if err != nil {
				t.Fatalf("%s: %v", topic, err)
			}
			if a.Shadow != wantShadow {
				t.Errorf("%s carries an alert with shadow %v: %s", topic, a.Shadow, r.Value)
			}
			if a.Rule != "big-foreign-transfer" {
				continue
			}
			ids[a.ID] = true
			got = append(got, string(a.Steps[0].Records[0].Event.Raw()))
		}
		return got
	}
	liveGot := amounts(DefaultAlertsTopic, false)
	shadowGot := amounts(DefaultShadowAlertsTopic, true)
	if len(liveGot) != 2 || len(shadowGot) != 1 || !strings.Contains(shadowGot[0], "25000") {
		t.Errorf("live alerts %q (want the transfers of 20000 and 25000), shadow alerts %q (want the one of 25000)", liveGot, shadowGot)
	}
	text := testkit.MetricsText(t, reg)
	for _, m := range []string{
		`shrike_engine_alerts_total{rule="big-foreign-transfer",ruleset="payments",shadow="false"} 2`,
		`shrike_engine_alerts_total{rule="big-foreign-transfer",ruleset="payments",shadow="true"} 1`,
	} {
		if !strings.Contains(text, m+"\n") {
			t.Errorf("metrics lack %s", m)
		}
	}

	// Without the shadow, its series go and the live ones stay.
	if err := e.SetRulesets(ctx, []*rules.Compiled{live}); err != nil {
		t.Fatal(err)
	}
	text = testkit.MetricsText(t, reg)
	if strings.Contains(text, `shadow="true"`) || !strings.Contains(text, `shadow="false"`) {
		t.Errorf("after the shadow was removed, metrics:\n%s", text)
	}
}

// TestEngineShadowStateSurvivesRestart: a shadow version's partial matches
// are checkpointed with its partition, apart from the live ones, and a
// second engine on the same Store completes them: three failed logins and a
// login from a new IP before the restart, the transfer after it, alert in
// the live version and in the shadow alike.
func TestEngineShadowStateSurvivesRestart(t *testing.T) {
	brokers := cluster(t, "payments")
	live := loadPayments(t)
	shadow, err := rules.Load("payments.yaml", live.Source, rules.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	shadow.Shadow = true
	clock := newFakeClock()
	var mu sync.Mutex
	took := map[bool]int{} // account-takeover alerts by shadow
	store := state.NewMemory()
	opts := EngineOptions{
		Brokers: brokers, Rulesets: []*rules.Compiled{live, shadow}, Store: store, Clock: clock.Now,
		OnAlert: func(a *matcher.Alert) {
			if a.Rule == "account-takeover" {
				mu.Lock()
				took[a.Shadow]++
				mu.Unlock()
			}
		},
	}
	login := func(at time.Duration, success bool, ip string) *kgo.Record {
		return &kgo.Record{Topic: "payments", Key: []byte("acct-7"), Value: fmt.Appendf(nil,
			`{"type":"login","account_id":"acct-7","success":%v,"ip":%q,"ts":%q}`, success, ip, ts(at))}
	}
	first := start(t, opts)
	testkit.WaitFor(t, 0, "the first engine to be ready", first.Ready)
	produceRecords(t, brokers,
		login(0, false, "10.0.0.1"), login(10*time.Second, false, "10.0.0.1"), login(20*time.Second, false, "10.0.0.1"),
		login(30*time.Second, true, "203.0.113.7"))
	prod := endOf(t, brokers, "payments")
	testkit.WaitFor(t, 0, "the logins to be processed and checkpointed", func() bool {
		return consumed(prod, first) && checkpointed(first)
	})
	first.stop(t)

	second := start(t, opts)
	testkit.WaitFor(t, 0, "the second engine to be ready", second.Ready)
	produceRecords(t, brokers, &kgo.Record{Topic: "payments", Key: []byte("acct-7"), Value: []byte(
		`{"type":"transfer","account_id":"acct-7","amount":5000.0,"currency":"EUR","country":"DE","ts":"` + ts(time.Minute) + `"}`)})
	prod = endOf(t, brokers, "payments")
	testkit.WaitFor(t, 0, "the transfer to be processed", func() bool { return consumed(prod, second) })
	closeWindows(t, clock, prod, second)
	testkit.WaitFor(t, 0, "the takeover alerts", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return took[false]+took[true] >= 2
	})
	second.stop(t)
	mu.Lock()
	defer mu.Unlock()
	if took[false] != 1 || took[true] != 1 {
		t.Errorf("account-takeover alerts: %d live, %d shadow; want one each, from partial matches restored after the restart", took[false], took[true])
	}
}
