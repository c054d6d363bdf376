package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// multiRuleset is upload v of the two-instance test's ruleset: one
// single-event rule whose summary names v and the event's round. Its
// stream is apiRuleset's.
func multiRuleset(v int) string {
	return fmt.Sprintf(`ruleset: multi
stream:
  topic: multi
  key: event.account
  time: event.ts
  max_out_of_orderness: 1s
  idle_timeout: 1s
rules:
  - id: big
    severity: high
    when: event.amount > 1000.0
    alert:
      summary: '"v%d round " + event.round + " " + event.account'
`, v)
}

// multiAccounts is the number of accounts of each round of events: enough
// that every partition gets some.
const multiAccounts = 30

// multiSeen collects one subscriber's alerts of the multi ruleset.
type multiSeen struct {
	mu     sync.Mutex
	ids    map[string]bool
	rounds map[int]map[string]int // round → account → upload
	err    error
}

func followMulti(s *jsonStream) *multiSeen {
	m := &multiSeen{ids: map[string]bool{}, rounds: map[int]map[string]int{}}
	go func() {
		for v := range s.values {
			var line struct {
				Result struct {
					ID      string `json:"id"`
					Summary string `json:"summary"`
				} `json:"result"`
			}
			err := json.Unmarshal(v, &line)
			var upload, round int
			var account string
			if err == nil {
				_, err = fmt.Sscanf(line.Result.Summary, "v%d round %d %s", &upload, &round, &account)
			}
			m.mu.Lock()
			if err != nil {
				if m.err == nil {
					m.err = fmt.Errorf("stream line %s: %w", v, err)
				}
			} else {
				m.ids[line.Result.ID] = true
				if m.rounds[round] == nil {
					m.rounds[round] = map[string]int{}
				}
				m.rounds[round][account] = upload
			}
			m.mu.Unlock()
		}
	}()
	return m
}

// round returns the upload of each account's alert of a round so far.
func (m *multiSeen) round(r int) map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]int{}
	for k, v := range m.rounds[r] {
		out[k] = v
	}
	return out
}

func (m *multiSeen) alertIDs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for id := range m.ids {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// TestTwoInstances runs two instances of serve in one consumer group on
// one Kafka and one Redis (the first's embedded ones). The only topic they
// read is the uploaded ruleset's, so that each owns some of its three
// partitions. A
// ruleset put through the first is live on both, a change through the
// second too: a round of events over every partition is then matched by
// the new version everywhere. A subscriber on each instance receives the
// alerts of both, which is all of the alerts topic.
func TestTwoInstances(t *testing.T) {
	requireAPIClients(t)
	requireTools(t, "kcat")
	a := startAPIServe(t, apiServeOptions{Name: "serve A"})
	b := startAPIServe(t, apiServeOptions{Name: "serve B", Kafka: a.kafka, Redis: a.redis})
	a.waitReady(t, 60*time.Second)

	subA := followMulti(startJSONStream(t, "curl -N on A", nil, "curl", "-sS", "-N", a.url("/v1/alerts:subscribe?ruleset=multi")))
	subB := followMulti(startJSONStream(t, "curl -N on B", nil, "curl", "-sS", "-N", b.url("/v1/alerts:subscribe?ruleset=multi")))

	round := 0
	// liveOn publishes rounds through via until a round's alerts on both
	// subscribers are all of upload v, for every account: then every
	// partition, on whichever instance owns it, runs v.
	liveOn := func(via *apiServe, v int, since time.Time) {
		t.Helper()
		for range 30 {
			round++
			events := make([]restEvent, multiAccounts)
			for i := range events {
				account := fmt.Sprintf("acct-%02d", i)
				events[i] = restEvent{Key: account, Value: map[string]any{
					"account": account, "amount": 5000.0, "round": fmt.Sprint(round),
					"ts": time.Now().UTC().Format(time.RFC3339Nano),
				}}
			}
			if r := via.publish(t, "", "multi", events...); r.code != http.StatusOK {
				t.Fatalf("publish round %d: %d %s", round, r.code, r.body)
			}
			var gotA, gotB map[string]int
			if !poll(5*time.Second, 100*time.Millisecond, func() bool {
				gotA, gotB = subA.round(round), subB.round(round)
				return len(gotA) == multiAccounts && len(gotB) == multiAccounts
			}) {
				t.Fatalf("round %d: alerts for %d accounts on A and %d on B within 5 s, want %d on both", round, len(gotA), len(gotB), multiAccounts)
			}
			all := true
			for _, got := range []map[string]int{gotA, gotB} {
				for _, u := range got {
					all = all && u == v
				}
			}
			if all {
				t.Logf("upload %d live on both instances %v after its PUT returned (round %d)", v, time.Since(since).Round(time.Millisecond), round)
				return
			}
		}
		t.Fatalf("upload %d not live on every partition after %d rounds", v, round)
	}

	start := time.Now()
	if r := a.putRuleset(t, "", "multi", multiRuleset(1)); r.code != http.StatusOK {
		t.Fatalf("PUT through A = %d %s", r.code, r.body)
	}
	if v, _ := b.rulesetVersion(t, "", "multi"); v != 1 {
		t.Errorf("GET through B after a PUT through A: version %d, want 1", v)
	}
	liveOn(b, 1, start)

	start = time.Now()
	if r := b.putRuleset(t, "", "multi", multiRuleset(2)); r.code != http.StatusOK {
		t.Fatalf("PUT through B = %d %s", r.code, r.body)
	}
	if v, _ := a.rulesetVersion(t, "", "multi"); v != 2 {
		t.Errorf("GET through A after a PUT through B: version %d, want 2", v)
	}
	liveOn(a, 2, start)

	// Both instances matched events of the topic, and both produced
	// alerts: each owns partitions of it.
	for _, s := range []*apiServe{a, b} {
		ms := s.metrics(t)
		if n := metricSum(ms, `shrike_engine_events_total{topic="multi"}`); n == 0 {
			t.Errorf("%s matched no event of the topic multi: it owns none of its partitions", s.name)
		}
		var alerts float64
		for series, v := range ms {
			if strings.HasPrefix(series, "shrike_engine_alerts_total{") && strings.Contains(series, `ruleset="multi"`) {
				alerts += v
			}
		}
		if alerts == 0 {
			t.Errorf("%s produced no alert of the ruleset multi", s.name)
		}
	}

	// Each subscriber received every alert the topic holds: those of both
	// instances.
	var want []string
	for _, r := range kcatConsume(t, a.kafka, alertsTopic) {
		if r.Payload == nil || !strings.Contains(*r.Payload, `"ruleset":"multi"`) {
			continue
		}
		var al struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal([]byte(*r.Payload), &al); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(want, al.ID) {
			want = append(want, al.ID)
		}
	}
	sort.Strings(want)
	for _, sub := range []struct {
		name string
		m    *multiSeen
	}{{"A", subA}, {"B", subB}} {
		var got []string
		waitFor(t, 10*time.Second, "the subscriber on "+sub.name+" to have every alert", func() bool {
			got = sub.m.alertIDs()
			return len(got) >= len(want)
		})
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("alert ids of the subscriber on %s against the alerts topic's (-topic +subscriber):\n%s", sub.name, diff)
		}
		sub.m.mu.Lock()
		if err := sub.m.err; err != nil {
			t.Errorf("subscriber on %s: %v", sub.name, err)
		}
		sub.m.mu.Unlock()
	}
}
