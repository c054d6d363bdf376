package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// listsRuleset reads the managed lists mules (string) and nets (cidr):
// probe fires on every probe event (to see the ruleset live), mule and
// net on logins of listed accounts and addresses, and seq on a transfer
// of a listed account after an open of the same account.
const listsRuleset = `ruleset: watch
stream:
  topic: watch
  key: event.account
  time: event.ts
  max_out_of_orderness: 1s
  idle_timeout: 1s
lists:
  mules: {managed: true, type: string}
  nets: {managed: true, type: cidr}
rules:
  - id: probe
    when: event.type == "probe"
    alert: {summary: '"probe " + event.round + " " + event.account'}
  - id: mule
    when: event.type == "login" && event.account in lists.mules
    alert: {summary: '"mule " + event.round + " " + event.account'}
  - id: net
    when: event.type == "login" && event.ip in lists.nets
    alert: {summary: '"net " + event.round + " " + event.account'}
  - id: seq
    within: 10m
    skip: past_last_event
    pattern:
      - step: open
        where: event.type == "open"
      - step: drain
        where: event.type == "transfer" && event.account in lists.mules
    alert: {summary: '"seq " + drain.round + " " + drain.account'}
`

// listsSeen collects one subscriber's alerts of the watch ruleset: by
// rule and round, the accounts and the rule versions.
type listsSeen struct {
	mu       sync.Mutex
	accounts map[string]map[string]bool // "rule round" → account
	versions map[string]string          // rule → rule_version
}

func followLists(s *jsonStream) *listsSeen {
	m := &listsSeen{accounts: map[string]map[string]bool{}, versions: map[string]string{}}
	go func() {
		for v := range s.values {
			var line struct {
				Result struct {
					Rule        string `json:"rule"`
					RuleVersion string `json:"rule_version"`
					Summary     string `json:"summary"`
				} `json:"result"`
			}
			if json.Unmarshal(v, &line) != nil {
				continue
			}
			f := strings.Fields(line.Result.Summary)
			if len(f) != 3 {
				continue
			}
			m.mu.Lock()
			k := f[0] + " " + f[1]
			if m.accounts[k] == nil {
				m.accounts[k] = map[string]bool{}
			}
			m.accounts[k][f[2]] = true
			m.versions[line.Result.Rule] = line.Result.RuleVersion
			m.mu.Unlock()
		}
	}()
	return m
}

func (m *listsSeen) count(rule string, round int) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.accounts[fmt.Sprintf("%s %d", rule, round)])
}

func (m *listsSeen) version(rule string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.versions[rule]
}

// putList replaces a managed list's items with curl.
func (a *apiServe) putList(t *testing.T, name string, items []string) curlResult {
	t.Helper()
	body, err := json.Marshal(map[string]any{"items": items})
	if err != nil {
		t.Fatal(err)
	}
	return curl(t, "-X", "PUT", "-H", "Content-Type: application/json", "--data-binary", string(body), a.url("/v1/lists/"+name))
}

// TestManagedListsTwoInstances: a managed list changed through the API of
// one instance takes effect on both instances (sharing Redis and Kafka)
// without a ruleset reload: the ruleset and rule versions stay, and a
// sequence's partial matches opened before the change complete after it.
func TestManagedListsTwoInstances(t *testing.T) {
	requireAPIClients(t)
	a := startAPIServe(t, apiServeOptions{Name: "serve A"})
	b := startAPIServe(t, apiServeOptions{Name: "serve B", Kafka: a.kafka, Redis: a.redis})
	a.waitReady(t, 60*time.Second)

	subA := followLists(startJSONStream(t, "curl -N on A", nil, "curl", "-sS", "-N", a.url("/v1/alerts:subscribe?ruleset=watch")))
	subB := followLists(startJSONStream(t, "curl -N on B", nil, "curl", "-sS", "-N", b.url("/v1/alerts:subscribe?ruleset=watch")))

	accounts := make([]string, multiAccounts)
	for i := range accounts {
		accounts[i] = fmt.Sprintf("acct-%02d", i)
	}
	round := 0
	publish := func(via *apiServe, typ string) int {
		t.Helper()
		round++
		events := make([]restEvent, len(accounts))
		for i, acct := range accounts {
			events[i] = restEvent{Key: acct, Value: map[string]any{
				"type": typ, "account": acct, "round": fmt.Sprint(round), "ip": fmt.Sprintf("10.0.%d.%d", round%256, i),
				"ts": time.Now().UTC().Format(time.RFC3339Nano),
			}}
		}
		if r := via.publish(t, "", "watch", events...); r.code != http.StatusOK {
			t.Fatalf("publish round %d: %d %s", round, r.code, r.body)
		}
		return round
	}
	// everyone reports whether both subscribers saw rule's alerts of round
	// for every account, waiting up to 5 s.
	everyone := func(round int, rules ...string) bool {
		return poll(5*time.Second, 100*time.Millisecond, func() bool {
			for _, rule := range rules {
				if subA.count(rule, round) < len(accounts) || subB.count(rule, round) < len(accounts) {
					return false
				}
			}
			return true
		})
	}

	if r := a.putRuleset(t, "", "watch", listsRuleset); r.code != http.StatusOK {
		t.Fatalf("PUT ruleset: %d %s", r.code, r.body)
	}
	live := false
	for range 30 {
		if everyone(publish(a, "probe"), "probe") {
			live = true
			break
		}
	}
	if !live {
		t.Fatalf("the ruleset never fired on every partition")
	}
	_, rulesBefore := a.rulesetVersion(t, "", "watch")

	// Partial matches of seq, opened while mules is empty.
	openRound := publish(b, "open")
	if !poll(30*time.Second, 100*time.Millisecond, func() bool {
		var open float64
		for _, s := range []*apiServe{a, b} {
			for series, v := range s.metrics(t) {
				if strings.HasPrefix(series, "shrike_engine_partial_matches{") && strings.Contains(series, `topic="watch"`) {
					open += v
				}
			}
		}
		return open >= float64(len(accounts))
	}) {
		t.Fatalf("the open events of round %d made no partial match for every account", openRound)
	}
	// A login of an account to be listed does not alert yet: nothing is
	// listed. Events are matched once the watermark passes them: a probe
	// round published after the logins, alerting everywhere, shows that
	// they were matched before the change.
	quiet := publish(a, "login")
	if !everyone(publish(a, "probe"), "probe") {
		t.Fatalf("the probe round after round %d did not alert for every account", quiet)
	}

	start := time.Now()
	if r := b.putList(t, "mules", accounts); r.code != http.StatusOK || !strings.Contains(r.body, `"item_count":"30"`) {
		t.Fatalf("PUT /v1/lists/mules through B: %d %s", r.code, r.body)
	}
	if r := a.putList(t, "nets", []string{"10.0.0.0/16", "2001:db8::/32"}); r.code != http.StatusOK {
		t.Fatalf("PUT /v1/lists/nets through A: %d %s", r.code, r.body)
	}
	applied := false
	for range 30 {
		// Logins come from 10.0.R.x, inside 10.0.0.0/16 (rounds stay
		// below 256).
		r := publish(a, "login")
		if everyone(r, "mule", "net") {
			t.Logf("the list change took effect on both instances %v after its PUT returned (round %d)", time.Since(start).Round(time.Millisecond), r)
			applied = true
			break
		}
	}
	if !applied {
		t.Fatalf("the list change never took effect on every partition")
	}
	if n := subA.count("mule", quiet) + subB.count("mule", quiet) + subA.count("net", quiet); n != 0 {
		t.Errorf("logins published before the list change alerted %d times", n)
	}
	// The partial matches opened before the change complete after it.
	drain := publish(b, "transfer")
	if !everyone(drain, "seq") {
		t.Fatalf("the transfers of round %d did not complete seq's partial matches of round %d for every account: A %d, B %d of %d",
			drain, openRound, subA.count("seq", drain), subB.count("seq", drain), len(accounts))
	}

	// No reload: the ruleset's version and its rules' versions stayed,
	// and the alerts carry them.
	for _, s := range []*apiServe{a, b} {
		v, rulesAfter := s.rulesetVersion(t, "", "watch")
		if v != 1 {
			t.Errorf("%s: ruleset version %d after the list changes, want 1", s.name, v)
		}
		for id, rv := range rulesBefore {
			if rulesAfter[id] != rv {
				t.Errorf("%s: rule %s version %s after the list changes, was %s", s.name, id, rulesAfter[id], rv)
			}
		}
	}
	for _, rule := range []string{"probe", "mule", "net", "seq"} {
		for _, sub := range []*listsSeen{subA, subB} {
			if got := sub.version(rule); got != rulesBefore[rule] {
				t.Errorf("alerts of %s carry rule version %q, want %q", rule, got, rulesBefore[rule])
			}
		}
	}
}
